/** How a launch ends when the sandbox, not the script, fails: exit decoding and setup failures. */
import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CordonError } from "../src/api/index.ts";
import { decodeExit } from "../src/sandbox/exit.ts";
import { makeCordon } from "./support.ts";

describe("exit decoding", () => {
  test("bwrap's 128+N is read as signal N, marked as read from the exit status; ordinary codes stay codes", () => {
    expect(decodeExit(137, null, "shell-128")).toEqual({ exitCode: 137, signal: "SIGKILL", signalSource: "exit-status" });
    expect(decodeExit(153, null, "shell-128")).toEqual({ exitCode: 153, signal: "SIGXFSZ", signalSource: "exit-status" });
    expect(decodeExit(3, null, "shell-128")).toEqual({ exitCode: 3, signal: null, signalSource: null });
    expect(decodeExit(128, null, "shell-128")).toEqual({ exitCode: 128, signal: null, signalSource: null });
    expect(decodeExit(137, null, "native")).toEqual({ exitCode: 137, signal: null, signalSource: null });
    expect(decodeExit(null, "SIGTERM", "native")).toEqual({ exitCode: null, signal: "SIGTERM", signalSource: "wait-status" });
  });
});

describe("setup failures are errors, not script failures", () => {
  const dir = mkdtempSync(join(tmpdir(), "cordon-errors-"));
  const cordon = (runRoot: string) => makeCordon(runRoot);

  test("a bind whose source does not exist: outcome error (sandbox-failed) with bwrap's message, nothing left", async () => {
    chmodSync(dir, 0o711);
    const runRoot = join(dir, "runs-a");
    const r = await cordon(runRoot).run({ runner: "shell", script: { source: "echo RAN" }, args: [], policy: { filesystem: { readOnlyBinds: ["/nonexistent/cordon-bogus"] } } });
    expect(r.outcome).toBe("error");
    expect(r.error?.code).toBe("sandbox-failed");
    expect(r.error?.message).toContain("/nonexistent/cordon-bogus");
    expect(r.stdout).toBe("");
    expect(readdirSync(runRoot)).toEqual([]);
  });

  test("a run root the sandbox uid cannot reach: a clear typed error before anything is spawned", async () => {
    const hidden = mkdtempSync(join(tmpdir(), "cordon-hidden-")); // 0700
    try {
      let err: unknown;
      try {
        await cordon(join(hidden, "runs")).run({ runner: "shell", script: { source: "echo RAN" }, args: [] });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CordonError);
      expect((err as CordonError).message).toContain(`${hidden} lacks search (x) permission`);
      expect(readdirSync(join(hidden, "runs"))).toEqual([]);
    } finally {
      rmSync(hidden, { recursive: true, force: true });
    }
  });

  test("a script over the size cap is refused before anything is spawned", async () => {
    const runRoot = join(dir, "runs-b");
    const c = makeCordon(runRoot, { maxScriptBytes: 16 });
    await expect(c.run({ runner: "shell", script: { source: "echo this script is longer than sixteen bytes" }, args: [] })).rejects.toThrow("too large");
    expect(() => readdirSync(runRoot)).toThrow(); // never even created
    rmSync(dir, { recursive: true, force: true });
  });
});
