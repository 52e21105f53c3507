/**
 * The operator's policy is a ceiling: a request's override may tighten any control, never
 * loosen one. Each field has a rule saying which way is tighter; a field without a rule must
 * stay exactly as the operator set it, so a policy field added later is held fixed until
 * someone decides its order (fail closed).
 */
import { isDeepStrictEqual } from "node:util";
import type { FieldIssue } from "../errors.ts";
import { isPlainObject } from "../plain-object.ts";
import { mergePolicy, type Policy, type PolicyOverride } from "../policy/index.ts";

/** null: within the ceiling; else why the asked value loosens it. */
type Rule = (asked: unknown, ceiling: unknown) => string | null;

const atMost: Rule = (asked, ceiling) => ((asked as number) <= (ceiling as number) ? null : `${asked} is over the operator's ${ceiling}`);

/** A quota where null means none: none is the loosest. */
const atMostOrNone: Rule = (asked, ceiling) => (ceiling === null ? null : asked === null ? `none is looser than the operator's ${ceiling}` : atMost(asked, ceiling));

/** An enum listed tightest first. */
const ordered =
  (tightestFirst: readonly string[]): Rule =>
  (asked, ceiling) =>
    tightestFirst.indexOf(asked as string) <= tightestFirst.indexOf(ceiling as string) ? null : `"${asked}" is looser than the operator's "${ceiling}"`;

/** A protection the operator turned on stays on. */
const keptOn: Rule = (asked, ceiling) => (ceiling === true && asked !== true ? "the operator's policy turns this on" : null);

/** Only entries the operator's list already has. */
const subsetOf: Rule = (asked, ceiling) => {
  const extra = (asked as unknown[]).filter((a) => !(ceiling as unknown[]).some((c) => isDeepStrictEqual(a, c)));
  return extra.length ? `not in the operator's list: ${extra.map((e) => JSON.stringify(e)).join(", ")}` : null;
};

const anything: Rule = () => null;

const RULES: Record<string, Rule> = {
  onUnavailable: ordered(["fail", "degrade"]),
  "resources.wallMs": atMost,
  "resources.cpuSeconds": atMost,
  "resources.memoryBytes": atMost,
  "resources.maxProcesses": atMost,
  "resources.maxFileSizeBytes": atMost,
  "resources.maxOpenFiles": atMost,
  "resources.maxOutputBytes": atMost,
  "resources.maxStdinBytes": atMost,
  "resources.scratchBytes": atMost,
  "resources.cpuPercent": atMostOrNone,
  "filesystem.mode": ordered(["scratch", "off"]),
  "filesystem.readOnlyBinds": subsetOf,
  "network.mode": ordered(["deny", "allowlist", "unrestricted"]),
  "network.blockMetadata": keptOn,
  "privilege.noNewPrivs": keptOn,
  "privilege.dropCapabilities": keptOn,
  "privilege.seccomp": keptOn,
  // Host variables passed through by name: only those the operator passes.
  "env.allow": subsetOf,
  // Fixed values inside the sandbox: a request sets its own variables anyway (RunRequest.env).
  "env.set": anything,
};

/** Under an unrestricted ceiling any allowlist is tighter; otherwise only the operator's entries. */
function networkAllow(asked: Policy, ceiling: Policy): string | null {
  if (asked.network.mode !== "allowlist" || ceiling.network.mode === "unrestricted") return null;
  return subsetOf(asked.network.allow, ceiling.network.allow);
}

function compare(asked: unknown, ceiling: unknown, path: string, out: FieldIssue[]): void {
  const rule = RULES[path];
  if (rule) {
    const why = rule(asked, ceiling);
    if (why) out.push({ path, message: why });
  } else if (isPlainObject(asked) && isPlainObject(ceiling)) {
    for (const key of new Set([...Object.keys(asked), ...Object.keys(ceiling)])) compare(asked[key], ceiling[key], path ? `${path}.${key}` : key, out);
  } else if (!isDeepStrictEqual(asked, ceiling)) {
    out.push({ path, message: "a request may not change this field" });
  }
}

/**
 * The fields where `override` applied to the operator's policy loosens it (empty: within the
 * ceiling). Throws PolicyValidationError for an override that is not a valid policy at all.
 */
export function loosenedFields(ceiling: Policy, override: PolicyOverride): FieldIssue[] {
  const asked = mergePolicy(ceiling, override);
  const out: FieldIssue[] = [];
  compare({ ...asked, network: { ...asked.network, allow: [] } }, { ...ceiling, network: { ...ceiling.network, allow: [] } }, "", out);
  const allow = networkAllow(asked, ceiling);
  if (allow) out.push({ path: "network.allow", message: allow });
  return out;
}
