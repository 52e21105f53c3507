/**
 * The setup-step lifecycle (src/sandbox/setup.ts): prepare and beforeRelease in order,
 * cleanup in reverse order for every step the run reached, whatever happened.
 */
import { describe, expect, test } from "bun:test";
import { SetupSequence, type SetupStep } from "../src/sandbox/setup.ts";

function recorder() {
  const log: string[] = [];
  const step = (name: string, fail: Partial<Record<"prepare" | "beforeRelease" | "cleanup", true>> = {}): SetupStep => ({
    name,
    async prepare() {
      log.push(`prepare ${name}`);
      if (fail.prepare) throw new Error(`${name} prepare failed`);
    },
    async beforeRelease(pid) {
      log.push(`release ${name} ${pid}`);
      if (fail.beforeRelease) throw new Error(`${name} release failed`);
    },
    async cleanup() {
      log.push(`cleanup ${name}`);
      if (fail.cleanup) throw new Error(`${name} cleanup failed`);
    },
  });
  return { log, step };
}

describe("SetupSequence", () => {
  test("prepare and beforeRelease run in order, cleanup in reverse", async () => {
    const { log, step } = recorder();
    const seq = new SetupSequence([step("dir"), step("cgroup"), step("egress")]);
    await seq.prepare();
    await seq.beforeRelease(42);
    await seq.cleanup();
    expect(log).toEqual(["prepare dir", "prepare cgroup", "prepare egress", "release dir 42", "release cgroup 42", "release egress 42", "cleanup egress", "cleanup cgroup", "cleanup dir"]);
  });

  test("a failed prepare: the failing step and those before it are cleaned, later ones never ran", async () => {
    const { log, step } = recorder();
    const seq = new SetupSequence([step("dir"), step("cgroup", { prepare: true }), step("egress")]);
    await expect(seq.prepare()).rejects.toThrow("cgroup prepare failed");
    await seq.cleanup();
    expect(log).toEqual(["prepare dir", "prepare cgroup", "cleanup cgroup", "cleanup dir"]);
  });

  test("every cleanup runs even when one throws; the first error is rethrown", async () => {
    const { log, step } = recorder();
    const seq = new SetupSequence([step("dir"), step("cgroup", { cleanup: true }), step("egress", { cleanup: true })]);
    await seq.prepare();
    await expect(seq.cleanup()).rejects.toThrow("egress cleanup failed");
    expect(log.filter((l) => l.startsWith("cleanup"))).toEqual(["cleanup egress", "cleanup cgroup", "cleanup dir"]);
  });

  test("needsRelease: only when some step acts before release", () => {
    expect(new SetupSequence([{ name: "dir", prepare: async () => {} }]).needsRelease).toBe(false);
    expect(new SetupSequence([{ name: "egress", beforeRelease: async () => {} }]).needsRelease).toBe(true);
  });
});
