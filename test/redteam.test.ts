/**
 * Red-team tests: attacks on what landed for the escape and result-integrity issues, each
 * through the public surface (library, CLI) against REAL sandboxes. Every test is named
 * after the attack; each failed on the code it was written against.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { JobInputError } from "../src/api/index.ts";
import { buildRunRequest, ScriptConfigSchema } from "../plugins/collector-script/index.ts";
import { BASE_POLICY, IS_ROOT, describeResult, freshRunRoot, makeCordon, parseKv, removeTempDirs, rootOnlyCanary, runCli, tempDir } from "./support.ts";

afterAll(() => removeTempDirs());

describe("writable mounts: /dev itself", () => {
  // bwrap's --dev is a tmpfs of the host's default size (half of RAM), owned by the sandbox
  // uid and writable by it. /dev/shm on top of it is capped; /dev was not: with cgroups off
  // a script parked files there without bound while the report said every tmpfs was sized.
  const cap = 1024 * 1024;
  const fill = `
n=0; for i in 1 2 3 4 5 6 7 8; do head -c ${cap / 2} /dev/zero > /dev/.fill$i 2>/dev/null && n=$((n+1)); done
echo "dev_files=$n"; echo "dev_bytes=$(cat /dev/.fill* 2>/dev/null | wc -c)"
mkdir /dev/.d 2>/dev/null && echo dev_mkdir=ok || echo dev_mkdir=blocked
echo x > /dev/null && echo null=ok
head -c 16 /dev/urandom | wc -c | sed 's/^/urandom=/'
: > /dev/shm/.x && echo shm=ok`;

  test("a script filling /dev (not /dev/shm) with cgroups off gets nothing past the size caps: /dev is read-only once built", async () => {
    const cordon = makeCordon(freshRunRoot(), { cgroups: "off" });
    const r = await cordon.run({ runner: "shell", script: { source: fill }, args: [], policy: { ...BASE_POLICY, resources: { scratchBytes: cap, maxFileSizeBytes: cap } } });
    const kv = parseKv(r.stdout);
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(kv.dev_bytes, describeResult(r)).toBe("0"); // 4 MiB parked in an unsized tmpfs before
    expect(kv.dev_mkdir).toBe("blocked");
    // The device nodes and the sized /dev/shm still work.
    expect([kv.null, kv.urandom, kv.shm]).toEqual(["ok", "16", "ok"]);
  });
});

describe("stdin: a script that closes its stdin early", () => {
  test("closing stdin while the supervisor still forwards a large stdin leaves no unhandled EPIPE rejection in the supervisor", async () => {
    // A supervisor (the monitor, any library caller) must not collect unhandled errors (exit
    // status 1 at the end, a crash under strict rejection handling) because a script chose to
    // close fd 0: the pump's writes are the supervisor's, their EPIPE is expected.
    // bun test fails a test during which a promise rejection goes unhandled.
    const cordon = makeCordon();
    for (let i = 0; i < 3; i++) {
      const r = await cordon.run({ runner: "shell", script: { source: "exec 0<&-; echo closed" }, args: [], stdin: new Uint8Array(4 * 1024 * 1024), policy: BASE_POLICY });
      expect([r.outcome, r.stdout], describeResult(r)).toEqual(["ok", "closed\n"]);
    }
    await Bun.sleep(300); // a rejection is reported after the microtask queue drains
  }, 20_000);
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
