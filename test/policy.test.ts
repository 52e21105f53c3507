import { describe, expect, test } from "bun:test";
import { DEFAULT_POLICY, MiB, mergePolicy, parsePolicy, PolicyValidationError } from "../src/api/index.ts";

function issuesOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyValidationError);
    return [...(e as PolicyValidationError).issues];
  }
  throw new Error("expected a PolicyValidationError");
}

describe("default policy", () => {
  test("is the shipped fail-closed profile", () => {
    expect(DEFAULT_POLICY.onUnavailable).toBe("fail");
    expect(DEFAULT_POLICY.resources).toEqual({
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
    });
    expect(DEFAULT_POLICY.network).toEqual({ mode: "deny", allow: [], blockMetadata: true });
    expect(DEFAULT_POLICY.privilege).toMatchObject({ uid: 65534, gid: 65534, noNewPrivs: true, dropCapabilities: true });
    expect(DEFAULT_POLICY.filesystem.mode).toBe("scratch");
    expect(DEFAULT_POLICY.env).toEqual({ allow: [], set: {} });
  });
});

describe("mergePolicy", () => {
  test("an override of other resources keeps the base policy's maxStdinBytes (no default is filled in)", () => {
    for (const cap of [1024, 64 * MiB]) {
      const base = mergePolicy(DEFAULT_POLICY, { resources: { maxStdinBytes: cap } });
      expect(mergePolicy(base, { resources: { wallMs: 500 } }).resources.maxStdinBytes).toBe(cap);
    }
  });

  test("overrides only the fields the override sets", () => {
    const merged = mergePolicy(DEFAULT_POLICY, { resources: { wallMs: 500 }, env: { allow: ["TZ"] } });
    expect(merged.resources).toEqual({ ...DEFAULT_POLICY.resources, wallMs: 500 });
    expect(merged.env).toEqual({ allow: ["TZ"], set: {} });
    expect(merged.network).toEqual(DEFAULT_POLICY.network);
    expect(merged.onUnavailable).toBe("fail");
  });

  test("arrays replace, they do not append", () => {
    const a = mergePolicy(DEFAULT_POLICY, { filesystem: { readOnlyBinds: ["/opt/a"] } });
    const b = mergePolicy(a, { filesystem: { readOnlyBinds: ["/opt/b"] } });
    expect(b.filesystem.readOnlyBinds).toEqual([{ source: "/opt/b", target: "/opt/b" }]);
  });

  test("an undefined override returns the base unchanged", () => {
    expect(mergePolicy(DEFAULT_POLICY, undefined)).toEqual(DEFAULT_POLICY);
  });
});

describe("validation names the offending field", () => {
  test("wrong type", () => {
    const issues = issuesOf(() => mergePolicy(DEFAULT_POLICY, { resources: { wallMs: "10s" as unknown as number } }));
    expect(issues.map((i) => i.path)).toContain("resources.wallMs");
  });

  test("out of bounds", () => {
    const issues = issuesOf(() => mergePolicy(DEFAULT_POLICY, { resources: { maxOutputBytes: 0, maxProcesses: 10_000_000 } }));
    expect(issues.map((i) => i.path).sort()).toEqual(["resources.maxOutputBytes", "resources.maxProcesses"]);
  });

  test("unknown keys are rejected (strict objects at every depth)", () => {
    expect(issuesOf(() => parsePolicy({ ...DEFAULT_POLICY, extra: 1 }))[0]!.message).toContain("extra");
    const nested = issuesOf(() => mergePolicy(DEFAULT_POLICY, { network: { mode: "deny", allowAll: true } as never }));
    expect(nested[0]!.path).toBe("network");
    expect(nested[0]!.message).toContain("allowAll");
  });

  test("uid 0 is refused", () => {
    const issues = issuesOf(() => mergePolicy(DEFAULT_POLICY, { privilege: { uid: 0 } }));
    expect(issues).toEqual([{ path: "privilege.uid", message: expect.stringContaining("root") }]);
  });

  test("binds must be absolute, normalised and outside the sandbox's own paths", () => {
    const issues = issuesOf(() =>
      mergePolicy(DEFAULT_POLICY, { filesystem: { readOnlyBinds: ["relative", "/opt/../etc", { source: "/opt", target: "/proc/x" }, "/scratch"] } }),
    );
    expect(issues.map((i) => i.path)).toEqual(["filesystem.readOnlyBinds.0", "filesystem.readOnlyBinds.1", "filesystem.readOnlyBinds.2", "filesystem.readOnlyBinds.3"]);
  });

  test("allow entries only with mode allowlist; env names are checked", () => {
    expect(issuesOf(() => mergePolicy(DEFAULT_POLICY, { network: { allow: ["192.0.2.1"] } }))[0]!.path).toBe("network.allow");
    expect(issuesOf(() => mergePolicy(DEFAULT_POLICY, { env: { allow: ["BAD-NAME"] } }))[0]!.path).toBe("env.allow.0");
    expect(issuesOf(() => mergePolicy(DEFAULT_POLICY, { env: { set: { A: "x\0y" } } }))[0]!.path).toBe("env.set.A");
  });

  test("the message is readable and lists every issue", () => {
    try {
      mergePolicy(DEFAULT_POLICY, { onUnavailable: "maybe" as never, resources: { wallMs: -1 } });
    } catch (e) {
      expect((e as Error).message).toContain("onUnavailable:");
      expect((e as Error).message).toContain("resources.wallMs: must be at least 1 ms");
      return;
    }
    throw new Error("expected an error");
  });
});
