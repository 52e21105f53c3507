/**
 * What a run request may name, refused before anything runs when it is wrong: the runner's
 * interpreter, the provider (and auto's choice), and a script file a caller names (a
 * collector config's `file`), read with the sandbox's permissions.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cordon, JobInputError } from "../src/api/index.ts";
import { buildRunRequest, ScriptConfigSchema } from "../plugins/collector-script/index.ts";
import { builtinProviders, builtinRunners } from "../plugins/index.ts";
import { BASE_POLICY, IS_ROOT, describeResult, freshRunRoot, makeCordon, removeTempDirs, rootOnlyCanary, runCli, tempDir } from "./support.ts";

afterAll(() => removeTempDirs());

describe("runner input", () => {
  test("a missing interpreter is a typed error and nothing runs", async () => {
    const { ShellRunner, BwrapProvider } = await import("../plugins/index.ts");
    const c = new Cordon({}, { providers: [new BwrapProvider()], runners: [new ShellRunner("/nonexistent/sh")] });
    await expect(c.run({ runner: "shell", script: { source: "true" }, args: [] })).rejects.toThrow("shell interpreter /nonexistent/sh not found");
  });

  test("an unknown provider in the config is refused at construction", () => {
    expect(() => new Cordon({ provider: "firejail" }, { providers: builtinProviders(), runners: builtinRunners() })).toThrow('unknown provider "firejail"');
  });

  test("auto picks the first provider in the order that can run the policy, never unsafe under fail", async () => {
    const runRoot = mkdtempSync(join(tmpdir(), "cordon-auto-"));
    chmodSync(runRoot, 0o711);
    try {
      const c = makeCordon(runRoot, { provider: "auto", providerOrder: ["unsafe", "bwrap"] });
      const r = await c.run({ runner: "shell", script: { source: "echo picked" }, args: [] });
      expect(r.sandbox?.provider.name).toBe("bwrap");
      expect(r.stdout).toBe("picked\n");
      expect(readdirSync(runRoot)).toEqual([]);
    } finally {
      rmSync(runRoot, { recursive: true, force: true });
    }
  });
});
describe("script files named by a caller (a collector config's `file`)", () => {
  // Run in a child process: before the fix the read blocked the event loop for good, which
  // no test timeout can interrupt.
  async function loadInChild(file: string): Promise<{ code: number | null; out: string }> {
    const program = `
      const { Cordon, JobInputError } = await import(${JSON.stringify(`${import.meta.dir}/../src/api/index.ts`)});
      const { builtinProviders, builtinRunners } = await import(${JSON.stringify(`${import.meta.dir}/../plugins/index.ts`)});
      const cordon = new Cordon({ runRoot: ${JSON.stringify(freshRunRoot())} }, { providers: builtinProviders(), runners: builtinRunners() });
      try {
        const r = await cordon.run({ runner: "shell", args: [], script: { file: ${JSON.stringify(file)} }, policy: ${JSON.stringify(BASE_POLICY)} });
        console.log("ran " + r.outcome);
      } catch (e) {
        console.log((e instanceof JobInputError ? "refused: " : "threw: ") + e.message);
      }`;
    const child = Bun.spawn([process.execPath, "-e", program], { stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => child.kill("SIGKILL"), 8000);
    const [out, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    clearTimeout(timer);
    return { code, out };
  }

  test("a script file that is a never-ending kernel pseudo file (/proc/kmsg) is refused at once instead of freezing the supervisor", async () => {
    const r = await loadInChild("/proc/kmsg");
    expect(r.code, r.out).toBe(0); // killed after 8 s (null/137) when the read hung
    expect(r.out).toContain("refused: script /proc/kmsg is a kernel pseudo file");
  }, 20_000);

  test("a script file under /proc that reads more than its size says (/proc/self/environ: the supervisor's environment) is refused, not staged", async () => {
    const r = await loadInChild("/proc/self/environ");
    expect(r.out).toContain("refused: script /proc/self/environ");
  }, 20_000);

  // A stored check config's `file` is read by the supervisor, often root, wherever it points:
  // `{ file: "/etc/shadow" }` staged the root-only file into the sandbox as the script, and the
  // interpreter's errors quoted it back. Script files are now read with the sandbox's permissions.
  test.skipIf(!IS_ROOT)("a collector config naming a root-only host file as its script (file: /etc/shadow) cannot get it staged into the sandbox", async () => {
    const secret = rootOnlyCanary("check.sh");
    const cordon = makeCordon();
    for (const runner of ["shell", "python", "esm"] as const) {
      const config = ScriptConfigSchema.parse({ file: secret.file });
      const request = buildRunRequest(runner, config, {});
      let thrown: unknown = null;
      try {
        const r = await cordon.run({ ...request, policy: { ...BASE_POLICY, ...request.policy } });
        thrown = new Error(`it ran: ${describeResult(r)}`);
        expect(`${r.stdout}${r.stderr}${JSON.stringify(r.result)}`).not.toContain(secret.canary);
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(JobInputError);
      expect((thrown as Error).message).toContain("not readable by the sandbox uid");
      expect((thrown as Error).message).not.toContain(secret.canary);
    }
    // The CLI's operator named FILE on their own command line: it is read with the CLI's permissions.
    const cli = await runCli(["run", secret.file]);
    expect([cli.code, cli.stdout]).toEqual([127, ""]); // the canary is no shell command: it ran, as the operator asked
    // A world-readable script file still runs.
    const open = join(tempDir("open-script"), "ok.sh");
    writeFileSync(open, "echo readable\n", { mode: 0o644 });
    const r = await cordon.run({ runner: "shell", script: { file: open }, args: [], policy: BASE_POLICY });
    expect([r.outcome, r.stdout]).toEqual(["ok", "readable\n"]);
  });
});
