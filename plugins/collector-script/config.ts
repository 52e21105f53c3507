/**
 * The script collectors' stored config. v1 (the first release) held an inline
 * script, whole seconds and plain env; v2 adds script files, arguments,
 * secrets, a provider and a policy override, and counts milliseconds.
 */
import { z } from "zod";
import { EnvName, EnvValue, MIN_SECRET_BYTES, PolicyOverrideSchema, Versioned, type Migration, type VersionedSpec } from "../../src/api/index.ts";

/** A secret value: at least MIN_SECRET_BYTES bytes (a shorter one would mask ordinary text everywhere). */
const SecretValue = EnvValue.refine((v) => Buffer.byteLength(v, "utf8") >= MIN_SECRET_BYTES, {
  error: `a secret must be at least ${MIN_SECRET_BYTES} bytes (pass a value that is not secret in env)`,
});

const DEFAULT_TIMEOUT_MS = 10_000;

const ScriptConfigShape = z.strictObject({
  /** Inline source (for esm: a function body, `return { success, message, value }`). */
  script: z.string().min(1).optional(),
  /** A script file read by the supervisor (for esm: a module with a default export). */
  file: z.string().min(1).max(4096).refine((f) => !f.includes("\0"), { error: "must not contain NUL bytes" }).optional(),
  args: z.array(z.string().max(128 * 1024).refine((a) => !a.includes("\0"), { error: "must not contain NUL bytes" })).max(256).default([]),
  /** Becomes the policy's wall-clock limit: the whole process tree is killed when it passes. */
  timeoutMs: z.number().int().min(1).max(3_600_000).default(DEFAULT_TIMEOUT_MS),
  env: z.record(EnvName, EnvValue).default({}),
  /** Reach the script as environment; their values (each at least MIN_SECRET_BYTES bytes) are masked as **** in the script's data returned. */
  secretEnv: z.record(EnvName, SecretValue).default({}),
  /** Provider name or "auto"; the Cordon instance's configured provider when absent. */
  provider: z.string().min(1).optional(),
  /** Applied on top of the Cordon instance's policy (an esm check needs `onUnavailable: "degrade"` where no cgroup can cap its memory: Bun cannot run under RLIMIT_AS). */
  policy: PolicyOverrideSchema.optional(),
});

export const ScriptConfigSchema = ScriptConfigShape.superRefine((c, ctx) => {
  if ((c.script === undefined) === (c.file === undefined)) {
    ctx.addIssue({ code: "custom", path: [], message: `set exactly one of "script" (inline source) or "file" (a script path); ${c.script === undefined ? "neither is set" : "both are set"}` });
  }
  // One source of truth for the time limit: two would silently disagree.
  if (c.policy?.resources?.wallMs !== undefined) {
    ctx.addIssue({ code: "custom", path: ["policy", "resources", "wallMs"], message: "set the time limit with timeoutMs, not policy.resources.wallMs" });
  }
});

export type ScriptConfig = z.output<typeof ScriptConfigSchema>;

/** v1: `{ script, timeoutSeconds, env }`. Only reshaped here; v2's schema validates the outcome. */
const v1ToV2: Migration = {
  fromVersion: 1,
  toVersion: 2,
  description: "timeoutSeconds to timeoutMs; add args and secretEnv",
  migrate(data) {
    if (typeof data !== "object" || data === null) throw new Error("v1 config must be an object");
    const { timeoutSeconds, env, ...rest } = data as { script?: unknown; timeoutSeconds?: unknown; env?: unknown };
    const timeoutMs = typeof timeoutSeconds === "number" ? Math.round(timeoutSeconds * 1000) : timeoutSeconds === undefined ? undefined : timeoutSeconds;
    return { ...rest, args: [], env: env ?? {}, secretEnv: {}, ...(timeoutMs === undefined ? {} : { timeoutMs }) };
  },
};

export const scriptConfigSpec: VersionedSpec<ScriptConfig> = { version: 2, schema: ScriptConfigSchema, migrations: [v1ToV2] };
/** The stored config read and validated on its own (cordon's Versioned), e.g. by a backend before it schedules a check. */
export const scriptConfig = new Versioned(scriptConfigSpec);
