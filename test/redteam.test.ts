/**
 * Red-team tests: attacks on what landed for the escape and result-integrity issues, each
 * through the public surface (library, CLI) against REAL sandboxes. Every test is named
 * after the attack; each failed on the code it was written against.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { Cordon } from "../src/index.ts";
import { builtinProviders, builtinRunners } from "../plugins/index.ts";
import { BASE_POLICY, describeResult, freshRunRoot, makeCordon, parseKv, removeTempDirs } from "./support.ts";

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
    const cordon = new Cordon({ runRoot: freshRunRoot(), cgroups: "off" }, { providers: builtinProviders(), runners: builtinRunners() });
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
      const { Cordon, JobInputError } = await import(${JSON.stringify(`${import.meta.dir}/../src/index.ts`)});
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

  // Not fixed here (a design choice for the collector surface): a stored check config's `file`
  // is read by the supervisor, often root, wherever it points. `{ file: "/etc/shadow" }` stages
  // the root-only file into the sandbox as the script (0644 in /cordon/job), and the
  // interpreter's errors quote it back (shell: `script.sh: 1: root:$y$…: not found` on stderr;
  // esm: `BuildMessage: Unexpected *` in the check's message). Fix: confine collector files to
  // a configured scripts directory (opened race-free, no symlinks out), or read them as the
  // sandbox uid. Then assert: a collector config naming a file outside it is an invalid config.
  test.todo("a collector config naming a root-only host file as its script (file: /etc/shadow) cannot get it staged into the sandbox");
});
