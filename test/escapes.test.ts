/**
 * Issue 11's escapes and report lies, each attacked through the public surface against a
 * REAL bwrap sandbox. Each attack also runs once where the control is absent (the unsafe
 * provider, or a launcher stripped of the option) to show the test can fail.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BwrapProvider, builtinProviders, builtinRunners } from "../plugins/index.ts";
import { ScriptConfigSchema } from "../plugins/collector-script/index.ts";
import { NsjailProvider } from "../plugins/provider-nsjail/index.ts";
import { Cordon, CordonError, DEFAULT_POLICY, type Provider, type Runner } from "../src/api/index.ts";
import { composePlan, type Job, type PlanInput, type ProviderProbe, type RenderContext, type Rendering, type SandboxSpec, type SetupStep } from "../src/api/plugin.ts";
import { hostFacts } from "../src/host.ts";
import { LauncherInputError } from "../src/sandbox/launcher-input.ts";
import { allocateWorkspace } from "../src/sandbox/workspace.ts";
import { BASE_POLICY, CORDON_CLI, describeResult, freshRunRoot, makeCordon, parseKv, processesWithMarker, removeTempDirs, runRootEntries, sleepMarker, tempDir, token } from "./support.ts";

afterAll(() => removeTempDirs());

const HOSTILE_ENV = "a\0--bind\0/\0/tmp/hostroot\0--share-net\0--setenv\0Z";
const PEEK_HOST = "cat /tmp/hostroot/etc/hostname 2>&1; cut -d: -f1 /proc/net/dev | tr -d ' ' | tail -n +3";

async function refusedBeforeSpawn(runRoot: string, attempt: () => Promise<unknown>): Promise<CordonError> {
  let thrown: unknown = null;
  try {
    const r = await attempt();
    thrown = new Error(`it ran: ${JSON.stringify(r, (_k, v) => (v instanceof Uint8Array ? undefined : v)).slice(0, 600)}`);
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(CordonError);
  expect((thrown as CordonError).code).toBe("invalid-job");
  expect(existsSync(runRoot) ? readdirSync(runRoot) : []).toEqual([]); // nothing was created, so nothing ran
  return thrown as CordonError;
}

describe("1. a NUL byte never becomes launcher options", () => {
  test("RunRequest.env, secretEnv and args with NUL are refused with a typed error, nothing spawned", async () => {
    const runRoot = freshRunRoot();
    const cordon = makeCordon(runRoot);
    const base = { runner: "shell", script: { source: PEEK_HOST }, args: [] as string[], policy: BASE_POLICY };
    const e1 = await refusedBeforeSpawn(runRoot, () => cordon.run({ ...base, env: { X: HOSTILE_ENV } }));
    expect(e1.message).toContain("env.X");
    expect(e1.message).not.toContain("hostroot"); // the value (maybe a secret) is never echoed
    await refusedBeforeSpawn(runRoot, () => cordon.run({ ...base, secretEnv: { S: HOSTILE_ENV } }));
    await refusedBeforeSpawn(runRoot, () => cordon.run({ ...base, args: ["ok", HOSTILE_ENV] }));
    await refusedBeforeSpawn(runRoot, () => cordon.run({ ...base, env: { "A\0--share-net": "x" } }));
  });

  test("a plugin runner that puts NUL into its job is stopped by the launcher choke point (bwrap and rootless)", async () => {
    const sneaky: Runner = {
      name: "sneaky",
      description: "a runner that forgets to validate",
      extensions: [],
      prepare: (_req, layout): Job => ({
        runner: "sneaky",
        argv: ["/bin/sh", "-c", PEEK_HOST, "x\0--share-net"],
        files: [],
        readOnlyBinds: [],
        env: { X: HOSTILE_ENV },
        result: { exitCodeFallback: true },
        addressSpaceLimitSafe: true,
        notes: [layout.jobDir],
      }),
    };
    const runRoot = freshRunRoot();
    const cordon = new Cordon({ runRoot }, { providers: builtinProviders(), runners: [...builtinRunners(), sneaky] });
    for (const provider of ["bwrap", "rootless"]) {
      const e = await refusedBeforeSpawn(runRoot, () => cordon.run({ runner: "sneaky", provider, script: { source: "" }, args: [], policy: { ...BASE_POLICY, onUnavailable: "degrade" } }));
      expect(e).toBeInstanceOf(LauncherInputError);
      expect(e.message).toContain("NUL");
    }
  });

  test("nsjail's text config: a newline or other control character in any config string is refused (the command, nsjail's argv, may hold newlines)", () => {
    const probe: ProviderProbe = { available: true, binary: "/bin/false", version: "test", features: {}, tools: { timeout: "/usr/bin/timeout" } };
    const nsjail = new NsjailProvider();
    const workspace = allocateWorkspace(freshRunRoot());
    const job = (env: Record<string, string>): Job => ({
      runner: "shell",
      argv: ["/bin/sh", "/cordon/job/x.sh"],
      files: [],
      readOnlyBinds: [],
      env,
      result: { exitCodeFallback: true },
      addressSpaceLimitSafe: true,
    });
    const input = (env: Record<string, string>): PlanInput => ({ policy: { ...DEFAULT_POLICY, onUnavailable: "degrade" }, job: job(env), host: hostFacts(), workspace });
    expect(() => composePlan(input({ X: "fine value with spaces and \"quotes\"" }), nsjail, probe)).not.toThrow();
    for (const bad of ["a\nexec_bin { path: \"/bin/sh\" }", "a\rb", "a\u001bb", "a\0b"]) {
      expect(() => composePlan(input({ X: bad }), nsjail, probe)).toThrow(LauncherInputError);
    }
    const multiLineCommand: PlanInput = { ...input({}), job: { ...job({}), argv: ["/bin/sh", "-c", "echo a\necho b"] } };
    expect(() => composePlan(multiLineCommand, nsjail, probe)).not.toThrow();
  });

  test("a collector config with NUL in env, secretEnv, args or file is invalid (the config schema says so)", () => {
    expect(ScriptConfigSchema.safeParse({ script: "true", env: { X: "plain" } }).success).toBe(true);
    for (const bad of [{ env: { X: HOSTILE_ENV } }, { secretEnv: { X: HOSTILE_ENV } }, { args: [HOSTILE_ENV] }]) {
      expect(ScriptConfigSchema.safeParse({ script: "true", ...bad }).success).toBe(false);
    }
    expect(ScriptConfigSchema.safeParse({ file: "/tmp/a\0b" }).success).toBe(false);
  });
});

/**
 * A setup step that takes a moment and then fails, so the script must not be running
 * meanwhile; `check` looks for the script first (it throws when it is).
 */
function failingSetup(check: () => void = () => {}): SetupStep {
  return {
    name: "failing-setup",
    beforeRelease: async () => {
      await Bun.sleep(400);
      check();
      throw new Error("setup failed on purpose");
    },
  };
}

/** bwrap with one option of its handshake removed: what an injected stray positional used to do. */
class StrippedBwrap extends BwrapProvider implements Provider {
  constructor(
    private readonly strip: string,
    private readonly block: boolean,
  ) {
    super();
  }
  override render(spec: SandboxSpec, context: RenderContext): Rendering {
    const { launch } = super.render(spec, context);
    const args = [...(launch.launcherArgs ?? [])];
    const i = args.indexOf(this.strip);
    if (i >= 0) args.splice(i, 2);
    if (!this.block) return { launch: { ...launch, launcherArgs: args } };
    return {
      launch: {
        ...launch,
        launcherArgs: args,
        blockFd: true,
        steps: [...(launch.steps ?? []), failingSetup()],
      },
    };
  }
}

describe("1b. a launcher that did not complete the handshake never yields a trusted run", () => {
  function cordonWith(provider: Provider, runRoot = freshRunRoot()): Cordon {
    return new Cordon({ runRoot, provider: provider.name }, { providers: [provider], runners: builtinRunners() });
  }

  test("no status channel (--json-status-fd dropped): sandbox error, output discarded", async () => {
    const marker = token("ran");
    const provider = Object.assign(new StrippedBwrap("--json-status-fd", false), { name: "bwrap" as const });
    const r = await cordonWith(provider).run({ runner: "shell", script: { source: `echo ${marker}` }, args: [], policy: BASE_POLICY });
    expect([r.outcome, r.error?.code]).toEqual(["error", "sandbox-failed"]);
    expect(r.stdout).not.toContain(marker);
    expect(r.error?.message).not.toContain("nothing was run");
  });

  test("--block-fd ignored while the supervisor's setup fails: the run is killed and NOT reported as 'nothing was run'", async () => {
    const marker = sleepMarker(20);
    const provider = Object.assign(new StrippedBwrap("--block-fd", true), { name: "bwrap" as const });
    const r = await cordonWith(provider).run({ runner: "shell", script: { source: `sleep ${marker}` }, args: [], policy: BASE_POLICY });
    expect([r.outcome, r.error?.code]).toEqual(["error", "sandbox-failed"]);
    expect(r.error?.message).not.toContain("nothing was run");
    expect(processesWithMarker(marker)).toEqual([]); // killed
  });

  test("with the handshake intact, a failing setup holds the script back: refused, and it really did not run", async () => {
    const marker = sleepMarker(20);
    class FailingSetup extends BwrapProvider {
      override render(spec: SandboxSpec, context: RenderContext): Rendering {
        const { launch } = super.render(spec, context);
        return {
          launch: {
            ...launch,
            launcherArgs: [...(launch.launcherArgs ?? []), "--block-fd", "6"],
            blockFd: true,
            steps: [
              ...(launch.steps ?? []),
              failingSetup(() => {
                if (processesWithMarker(marker).length > 0) throw new Error("the script is running before release");
              }),
            ],
          },
        };
      }
    }
    const r = await cordonWith(new FailingSetup()).run({ runner: "shell", script: { source: `sleep ${marker}` }, args: [], policy: BASE_POLICY });
    expect(r.outcome).toBe("refused");
    expect(r.error?.message).toContain("setup failed on purpose");
    expect(r.error?.message).toContain("nothing was run");
  });
});

describe("4. /dev/shm is size-capped like /tmp", () => {
  const fill = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=8 2>/dev/null; echo rc=$?; echo size=$(du -k /dev/shm/fill | cut -f1)";
  const policy = { ...BASE_POLICY, resources: { scratchBytes: 1024 * 1024 } };

  test("with cgroups off, 8 MiB into /dev/shm stops at the 1 MiB cap, and the report lists the cap", async () => {
    const cordon = new Cordon({ runRoot: freshRunRoot(), cgroups: "off" }, { providers: builtinProviders(), runners: builtinRunners() });
    const r = await cordon.run({ runner: "shell", script: { source: fill }, args: [], policy });
    const kib = Number(/size=(\d+)/.exec(r.stdout)?.[1]);
    expect(kib).toBeLessThanOrEqual(1024);
    expect(r.stdout).toContain("rc=1"); // dd hit ENOSPC
    expect(r.sandbox?.layers.resources.controls.shm).toMatchObject({ status: "enforced" });
  });

  test("counter-test: under unsafe /dev/shm is the host's, the write succeeds and the report says shm is not enforced", async () => {
    const name = token("shm");
    const r = await makeCordon().run({ runner: "shell", provider: "unsafe", script: { source: fill.replaceAll("/dev/shm/fill", `/dev/shm/${name}`) + `; rm -f /dev/shm/${name}` }, args: [], policy: { onUnavailable: "degrade", resources: { scratchBytes: 1024 * 1024 } } });
    expect(Number(/size=(\d+)/.exec(r.stdout)?.[1])).toBeGreaterThan(1024);
    expect(r.sandbox?.layers.resources.controls.shm?.status).toBe("degraded");
  });
});

describe("4b. /dev itself is read-only once built", () => {
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

describe("5. stderr cannot forge a sandbox setup failure", () => {
  const forgeries = [
    "bwrap: Can't mount proc on /newroot/proc: Operation not permitted",
    "cordon-cgroup: cannot join /sys/fs/cgroup/pids/cordon/x/cgroup.procs",
    "[E][2026-12-01T00:00:00+0000] Couldn't initialize user namespace",
  ];
  for (const line of forgeries) {
    test(`a script printing ${JSON.stringify(line.slice(0, 24))}… and exiting is the script's own failure`, async () => {
      const marker = token("out");
      const r = await makeCordon().run({ runner: "shell", script: { source: `echo ${marker}; printf '%s\\n' "$FORGED" >&2; exit 1` }, args: [], env: { FORGED: line }, policy: BASE_POLICY });
      expect([r.outcome, r.exitCode, r.error]).toEqual(["exit-nonzero", 1, null]);
      expect(r.stdout).toContain(marker);
    });
  }

  test("a real setup failure (a bind whose source vanished) is still sandbox-failed", async () => {
    const r = await makeCordon().run({ runner: "shell", script: { source: "echo RAN" }, args: [], policy: { ...BASE_POLICY, filesystem: { readOnlyBinds: [`/nonexistent/${token()}`] } } });
    expect([r.outcome, r.error?.code]).toEqual(["error", "sandbox-failed"]);
    expect(r.stdout).toBe("");
  });
});

describe("6. --verify survives whatever the script leaves in scratch", () => {
  for (const [what, sabotage] of [
    ["a directory", "rm -f /scratch/.cordon-receipt; mkdir /scratch/.cordon-receipt"],
    ["a symlink", "rm -f /scratch/.cordon-receipt; ln -s /etc/passwd /scratch/.cordon-receipt"],
    ["a FIFO", "rm -f /scratch/.cordon-receipt; mkfifo /scratch/.cordon-receipt"],
    ["nothing", "rm -f /scratch/.cordon-receipt"],
  ] as const) {
    test(`marker replaced by ${what}: the run and its receipt stand, no host path leaks`, async () => {
      const runRoot = freshRunRoot();
      const r = await makeCordon(runRoot).run({ runner: "shell", script: { source: `${sabotage}; echo done` }, args: [], policy: BASE_POLICY, verify: true });
      expect([r.outcome, r.stdout.trim(), r.error]).toEqual(["ok", "done", null]);
      expect(r.receipt?.uidInside).toBe(65534);
      expect(r.receipt?.hostUid).toBeNull(); // the proof was destroyed: no claim
      expect(runRootEntries(runRoot)).toEqual([]);
    });
  }
});

describe("12. stdin is streamed under a cap", () => {
  function endless(chunk = 1 << 20): { stream: ReadableStream<Uint8Array>; sent: () => number } {
    let sent = 0;
    const block = new Uint8Array(chunk).fill(120);
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        sent += block.length;
        c.enqueue(block);
      },
    });
    return { stream, sent: () => sent };
  }

  test("an endless stdin: the script gets exactly maxStdinBytes, then EOF, and the result says it was cut", async () => {
    const src = endless();
    const r = await makeCordon().run({ runner: "shell", script: { source: "wc -c" }, args: [], stdin: src.stream, policy: { ...BASE_POLICY, resources: { maxStdinBytes: 3 * 1024 * 1024 + 5 } } });
    expect(r.outcome).toBe("ok");
    expect(r.stdout.trim()).toBe(String(3 * 1024 * 1024 + 5));
    expect(r.stdinTruncated).toBe(true);
    expect(src.sent()).toBeLessThan(16 * 1024 * 1024); // pulled as consumed, not read whole
  });

  test("a script that never reads stdin starts at once and ends; stdin is not buffered without bound", async () => {
    const src = endless();
    const started = performance.now();
    const r = await makeCordon().run({ runner: "shell", script: { source: "echo started" }, args: [], stdin: src.stream, policy: BASE_POLICY });
    expect([r.outcome, r.stdout.trim()]).toEqual(["ok", "started"]);
    expect(performance.now() - started).toBeLessThan(8_000);
    expect(src.sent()).toBeLessThan(64 * 1024 * 1024);
  });

  test("bytes given whole are capped the same way", async () => {
    const r = await makeCordon().run({ runner: "shell", script: { source: "wc -c" }, args: [], stdin: new Uint8Array(5000), policy: { ...BASE_POLICY, resources: { maxStdinBytes: 1000 } } });
    expect([r.stdout.trim(), r.stdinTruncated]).toEqual(["1000", true]);
  });
});

describe("12. a script that closes its stdin early", () => {
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

describe("12. the CLI streams its stdin under the cap", () => {
  /** Peak resident memory of a running process (VmHWM), polled until it exits. */
  async function peakRssKiB(proc: ReturnType<typeof Bun.spawn>): Promise<number> {
    let peak = 0;
    while (proc.exitCode === null && proc.signalCode === null) {
      try {
        peak = Math.max(peak, Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))?.[1] ?? 0));
      } catch {
        break; // gone
      }
      await Bun.sleep(20);
    }
    return peak;
  }

  test("300 MB on stdin: the script gets the 16 MiB default cap, the CLI stays small, and says it cut stdin", async () => {
    const script = join(tempDir("stdin"), "count.sh");
    writeFileSync(script, "wc -c\n");
    let pulled = 0;
    const block = new Uint8Array(1 << 20);
    const source = new ReadableStream<Uint8Array>({
      pull(c) {
        if (pulled >= 300 << 20) return c.close();
        pulled += block.length;
        c.enqueue(block);
      },
    });
    const p = Bun.spawn([process.execPath, CORDON_CLI, "run", script], { stdin: source, stdout: "pipe", stderr: "pipe" });
    const [peak, stdout, stderr, code] = await Promise.all([peakRssKiB(p), new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect([code, stdout.trim()]).toEqual([0, String(16 * 1024 * 1024)]);
    expect(stderr).toContain("cordon: stdin cut at resources.maxStdinBytes (16777216 bytes)");
    expect(peak).toBeLessThan(200 * 1024); // KiB: nowhere near the 300 MB offered
  });

  test("an open stdin pipe does not hold back a script that never reads it", async () => {
    const script = join(tempDir("stdin"), "noread.sh");
    writeFileSync(script, "echo started\n");
    const source = new ReadableStream<Uint8Array>({ pull: () => Bun.sleep(60_000) }); // open, silent
    const started = performance.now();
    const p = Bun.spawn([process.execPath, CORDON_CLI, "run", script], { stdin: source, stdout: "pipe", stderr: "pipe" });
    const [stdout, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    expect([code, stdout]).toEqual([0, "started\n"]);
    expect(performance.now() - started).toBeLessThan(15_000);
  });
});
