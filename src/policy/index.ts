import { PolicyValidationError, zodIssues } from "../errors.ts";
import { isPlainObject } from "../plain-object.ts";
import { MiB, PolicyFileSchema, PolicySchema, type Policy, type PolicyOverride } from "./schema.ts";

export * from "./schema.ts";

/** Validate a complete policy; throws PolicyValidationError naming every offending field. */
export function parsePolicy(input: unknown): Policy {
  const parsed = PolicySchema.safeParse(input);
  if (!parsed.success) throw new PolicyValidationError(zodIssues(parsed.error));
  return parsed.data;
}

/** Validate a partial policy (a policy file, a collector's override); a file's `$schema` key is accepted and dropped. */
export function parsePolicyOverride(input: unknown): PolicyOverride {
  const parsed = PolicyFileSchema.safeParse(input);
  if (!parsed.success) throw new PolicyValidationError(zodIssues(parsed.error), "policy override");
  const { $schema: _editorHint, ...override } = parsed.data;
  return override;
}

/** The shipped profile: fail-closed, nothing reachable, small caps, unprivileged uid. */
export const DEFAULT_POLICY: Policy = parsePolicy({
  onUnavailable: "fail",
  resources: {
    wallMs: 10_000,
    cpuSeconds: 10,
    memoryBytes: 256 * MiB,
    maxProcesses: 64,
    maxFileSizeBytes: 64 * MiB,
    maxOpenFiles: 256,
    maxOutputBytes: 1 * MiB,
    maxStdinBytes: 16 * MiB,
    scratchBytes: 64 * MiB,
    cpuPercent: null,
  },
  filesystem: { mode: "scratch", readOnlyBinds: [] },
  network: { mode: "deny", allow: [], blockMetadata: true },
  privilege: { uid: 65534, gid: 65534, noNewPrivs: true, dropCapabilities: true, seccomp: true },
  env: { allow: [], set: {} },
});

function deepMerge(base: unknown, override: unknown): unknown {
  if (override === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(override)) return override; // arrays and scalars replace
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) out[key] = deepMerge(base[key], value);
  return out;
}

/**
 * Apply an override on top of a base policy: only the fields the override sets
 * change (arrays replace, objects merge); the result is validated as a whole.
 */
export function mergePolicy(base: Policy, override: PolicyOverride | undefined): Policy {
  if (override === undefined) return base;
  return parsePolicy(deepMerge(base, parsePolicyOverride(override)));
}
