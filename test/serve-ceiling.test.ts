/**
 * The operator's policy as a ceiling (src/serve/ceiling.ts), field by field: every control can
 * be tightened, none loosened, and a field nobody ordered is held fixed (fail closed). Pure:
 * the service's tests (serve.test.ts) show the 400 a real request gets.
 */
import { describe, expect, test } from "bun:test";
import { DEFAULT_POLICY, mergePolicy, type Policy, type PolicyOverride } from "../src/api/index.ts";
import { loosenedFields } from "../src/serve/ceiling.ts";

const paths = (ceiling: Policy, override: PolicyOverride) => loosenedFields(ceiling, override).map((f) => f.path);

/** Every leaf of a policy, dotted. */
function leaves(value: unknown, prefix = ""): string[] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
}

/** A loosening override for one leaf of the default policy. */
const LOOSER: Record<string, PolicyOverride> = {
  onUnavailable: { onUnavailable: "degrade" },
  "resources.wallMs": { resources: { wallMs: DEFAULT_POLICY.resources.wallMs + 1 } },
  "resources.cpuSeconds": { resources: { cpuSeconds: DEFAULT_POLICY.resources.cpuSeconds + 1 } },
  "resources.memoryBytes": { resources: { memoryBytes: DEFAULT_POLICY.resources.memoryBytes * 2 } },
  "resources.maxProcesses": { resources: { maxProcesses: DEFAULT_POLICY.resources.maxProcesses + 1 } },
  "resources.maxFileSizeBytes": { resources: { maxFileSizeBytes: DEFAULT_POLICY.resources.maxFileSizeBytes + 1 } },
  "resources.maxOpenFiles": { resources: { maxOpenFiles: DEFAULT_POLICY.resources.maxOpenFiles + 1 } },
  "resources.maxOutputBytes": { resources: { maxOutputBytes: DEFAULT_POLICY.resources.maxOutputBytes + 1 } },
  "resources.maxStdinBytes": { resources: { maxStdinBytes: DEFAULT_POLICY.resources.maxStdinBytes + 1 } },
  "resources.scratchBytes": { resources: { scratchBytes: DEFAULT_POLICY.resources.scratchBytes * 2 } },
  "resources.cpuPercent": { resources: { cpuPercent: null } },
  "filesystem.mode": { filesystem: { mode: "off" } },
  "filesystem.readOnlyBinds": { filesystem: { readOnlyBinds: ["/etc"] } },
  "network.mode": { network: { mode: "unrestricted" } },
  "network.allow": { network: { mode: "allowlist", allow: ["192.0.2.1:443"] } },
  "network.blockMetadata": { network: { blockMetadata: false } },
  "privilege.uid": { privilege: { uid: 1234 } },
  "privilege.gid": { privilege: { gid: 1234 } },
  "privilege.noNewPrivs": { privilege: { noNewPrivs: false } },
  "privilege.dropCapabilities": { privilege: { dropCapabilities: false } },
  "privilege.seccomp": { privilege: { seccomp: false } },
  "env.allow": { env: { allow: ["HOME"] } },
};

describe("the operator's policy is a ceiling", () => {
  // A ceiling with room in every direction a request could tighten.
  const ceiling = mergePolicy(DEFAULT_POLICY, { resources: { cpuPercent: 100 }, network: { mode: "allowlist", allow: ["192.0.2.7:443", "192.0.2.8"] }, filesystem: { readOnlyBinds: ["/opt"] }, env: { allow: ["LANG", "TZ"] } });

  test("every leaf of the policy has a loosening that is refused, naming that field (none forgotten)", () => {
    const policyLeaves = leaves(DEFAULT_POLICY).filter((p) => p !== "env.set");
    expect(Object.keys(LOOSER).sort()).toEqual(policyLeaves.sort());
    for (const [field, override] of Object.entries(LOOSER)) {
      const base = field === "resources.cpuPercent" ? ceiling : DEFAULT_POLICY;
      expect({ field, refused: paths(base, override) }).toEqual({ field, refused: field === "network.allow" ? ["network.mode", "network.allow"] : [field] });
    }
  });

  test("tightening every control at once is within the ceiling", () => {
    const tighter: PolicyOverride = {
      resources: { wallMs: 10, cpuSeconds: 1, memoryBytes: 8 * 1024 * 1024, maxProcesses: 1, maxFileSizeBytes: 1, maxOpenFiles: 12, maxOutputBytes: 1, maxStdinBytes: 0, scratchBytes: 64 * 1024, cpuPercent: 5 },
      filesystem: { readOnlyBinds: [] },
      network: { mode: "allowlist", allow: ["192.0.2.8"] },
      env: { allow: ["TZ"], set: { A: "b" } },
    };
    expect(paths(ceiling, tighter)).toEqual([]);
    expect(paths(ceiling, { network: { mode: "deny", allow: [] } })).toEqual([]);
    expect(paths(ceiling, { filesystem: { readOnlyBinds: [{ source: "/opt" }] } })).toEqual([]);
  });

  test("allowlist entries: only the operator's, unless the operator allows unrestricted egress", () => {
    expect(paths(ceiling, { network: { allow: ["192.0.2.9"] } })).toEqual(["network.allow"]);
    const open = mergePolicy(DEFAULT_POLICY, { network: { mode: "unrestricted" } });
    expect(paths(open, { network: { mode: "allowlist", allow: ["192.0.2.9"] } })).toEqual([]);
  });

  test("a read-only bind elsewhere, or the same source at another target, is refused", () => {
    expect(paths(ceiling, { filesystem: { readOnlyBinds: [{ source: "/opt", target: "/usr/local" }] } })).toEqual(["filesystem.readOnlyBinds"]);
    expect(paths(ceiling, { filesystem: { readOnlyBinds: ["/opt/x"] } })).toEqual(["filesystem.readOnlyBinds"]);
  });

  test("a field without an ordering rule (the sandbox uid and gid) is held fixed either way (fail closed)", () => {
    for (const uid of [DEFAULT_POLICY.privilege.uid - 1, DEFAULT_POLICY.privilege.uid + 1]) expect(paths(DEFAULT_POLICY, { privilege: { uid } })).toEqual(["privilege.uid"]);
    expect(paths(DEFAULT_POLICY, { privilege: { uid: DEFAULT_POLICY.privilege.uid } })).toEqual([]);
  });
});
