/**
 * The warm pool's safety, against real bwrap sandboxes: a pooled sandbox serves exactly one
 * run, so a run never sees a file, process, variable or stdin of another; a run taken warm
 * is the run a cold start gives (same result, same limits, same report); a sandbox that dies
 * idle is replaced; a sandbox built for one policy never runs another; close() leaves no
 * pooled sandbox, process, cgroup, mount or held identity. Nothing here is timed.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import type { Cordon, RunRequest, RunResult } from "../src/api/index.ts";
import { sandboxMismatch } from "../src/pool/match.ts";
import { composePlan } from "../src/sandbox/plan.ts";
import { DEFAULT_POLICY, mergePolicy } from "../src/policy/index.ts";
import { probeOf } from "../src/provider.ts";
import { allocateWorkspace } from "../src/sandbox/workspace.ts";
import { BwrapProvider, ShellRunner } from "../plugins/index.ts";
import { hostFacts } from "../src/host.ts";
import { closePooledCordons, coldThenWarm, describeResult, expectClean, expectOk, freshRunRoot, liveProcessesOf, PLAN_IDENTITY, pooledCordon, removeTempDirs, runCgroupsLeft } from "./support.ts";
import { IdentityPool } from "../src/identity/pool.ts";

afterAll(async () => {
  await closePooledCordons("warm-pool.test");
  removeTempDirs();
});

const pooled = pooledCordon;

/** Run once cold (which starts the shape's pool), wait for the pool, then run warm. */
async function warmRun(cordon: Cordon, request: RunRequest): Promise<RunResult> {
  return (await coldThenWarm(cordon, request)).warm;
}

/** Every control's status and mechanism, but the host uid each sandbox has of its own. */
function controlsBesidesIdentity(r: RunResult): unknown {
  const layers = structuredClone(r.sandbox!.layers);
  for (const name of ["uid", "identity"]) delete layers.privilege.controls[name];
  return layers;
}

const sh = (source: string, extra: Partial<RunRequest> = {}): RunRequest => ({ runner: "shell", script: { source }, args: [], ...extra });

describe("a warm run is the run a cold start gives", () => {
  const ARGS = ["a b", "it's", "line\nbreak", "$HOME `id`", "--flag", ""];
  const ENV = { PLAIN: "x", QUOTED: "it's \"q\"", NEWLINE: "a\nb", DOLLAR: "$PATH;$(id)" };

  test("shell: args, env, stdin, input and output files, the result channel", async () => {
    const { cordon } = pooled();
    const source = 'for a in "$@"; do printf "[%s]" "$a"; done; echo; env | sort | grep -E "^(PLAIN|QUOTED|DOLLAR|NEWLINE)=" ; cat; cat in.txt; echo made > out.txt; cordon-result warn "half" n=3';
    const request = sh(source, { args: ARGS, env: ENV, stdin: new TextEncoder().encode("from stdin\n"), files: [{ path: "in.txt", content: "input file\n" }] });
    // stdin is a stream here, consumed by the run: each run gets its own.
    const cold = await cordon.run({ ...request, stdin: new TextEncoder().encode("from stdin\n") });
    await cordon.poolSettled();
    const warm = await cordon.run(request);
    expect(warm.sandbox!.start?.warm).toBe(true);
    expectOk(cold);
    for (const key of ["outcome", "exitCode", "stdout", "stderr", "result", "files"] as const) expect(warm[key], key).toEqual(cold[key]);
    expect(warm.stdout).toContain("[a b][it's][line\nbreak][$HOME `id`][--flag][]");
    expect(warm.stdout).toContain("from stdin\ninput file\n");
    expect(warm.result?.status).toBe("warn");
    expect(controlsBesidesIdentity(warm)).toEqual(controlsBesidesIdentity(cold));
  });

  test("python: in the started interpreter, args, env, stdin, exceptions", async () => {
    const { cordon } = pooled();
    const source = "import os, sys\nprint(sys.argv[1:], os.environ['QUOTED'], os.environ['NEWLINE'], sys.stdin.read(), __name__)\nimport cordon\ncordon.result('ok', 'py')";
    const request: RunRequest = { runner: "python", script: { source }, args: ARGS, env: ENV, stdin: new TextEncoder().encode("in") };
    const { cold, warm } = await coldThenWarm(cordon, request);
    expectOk(warm);
    expect(warm.stdout).toBe(cold.stdout);
    expect(warm.result).toEqual(cold.result);
    expect(warm.sandbox!.start?.warm && warm.sandbox!.start.waiter.join(" ")).toContain("--cordon-warm");
  });

  test("shell: the whole environment is a cold run's, names the waiter uses included", async () => {
    const { cordon } = pooled();
    const env = { nl: "mine", job: "x'y", IFS: ":", PWD: "/elsewhere", ENV: "/tmp/rc", HOME: "/h", MULTI: "a\nb\n" };
    const { cold, warm } = await coldThenWarm(cordon, sh("env | sort; echo \"[$nl][$job]\"", { env }));
    expect(warm.stdout).toBe(cold.stdout);
    expect(warm.stdout).toContain("nl=mine\n");
    expect(warm.stdout).toContain("[mine][x'y]");
  });

  test("the hand-over fd does not reach the script: its open fds are a cold run's", async () => {
    const { cordon } = pooled();
    const shell = await coldThenWarm(cordon, sh("ls /proc/self/fd | sort -n | tr '\\n' ' '"));
    expect(shell.warm.stdout).toBe(shell.cold.stdout);
    expect(shell.warm.stdout).not.toMatch(/\b8\b/);
    const py = await coldThenWarm(cordon, { runner: "python", script: { source: "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))" }, args: [] });
    expect(py.warm.stdout).toBe(py.cold.stdout);
    const esm = await coldThenWarm(cordon, { runner: "esm", script: { source: "import { readdirSync } from 'node:fs'; export default () => readdirSync('/proc/self/fd').map(Number).filter((fd) => fd === 8)", name: "fds.mjs" }, args: [] });
    expect(esm.warm.result?.value).toEqual([]);
  });

  test("python: a start-up variable the waiter did not start with is exec'd afresh, still warm", async () => {
    const { cordon } = pooled();
    const request: RunRequest = { runner: "python", script: { source: "import os, sys; print(os.environ['LC_ALL'], sys.stdout.encoding)" }, args: [], env: { LC_ALL: "C" } };
    const { cold, warm } = await coldThenWarm(cordon, request);
    expect(warm.stdout).toBe("C utf-8\n");
    expect(warm.stdout).toBe(cold.stdout);
  });

  test("esm: the module imported by the started Bun, its value the result", async () => {
    const { cordon } = pooled();
    const source = "export default (ctx) => ({ args: ctx.args, q: ctx.env.QUOTED, argv: process.argv.slice(2) })";
    const request: RunRequest = { runner: "esm", script: { source, name: "check.mjs" }, args: ARGS, env: ENV };
    const { cold, warm } = await coldThenWarm(cordon, request);
    expectOk(warm);
    expect(warm.result).toEqual(cold.result);
    expect((warm.result?.value as { args: string[] }).args).toEqual(ARGS);
  });

  test("esm: a run that sets a variable Bun reads at start is not handed to the waiter (it starts cold)", async () => {
    const { cordon } = pooled();
    const request: RunRequest = { runner: "esm", script: { source: "export default () => process.env.TZ", name: "tz.mjs" }, args: [], env: { TZ: "Asia/Tokyo" } };
    await cordon.run(request);
    await cordon.poolSettled();
    const r = await cordon.run(request);
    expectOk(r);
    expect(r.sandbox!.start).toEqual({ warm: false, why: expect.stringContaining("start-up variable") });
    expect(r.result?.value).toBe("Asia/Tokyo");
  });

  test("limits hold in a warm sandbox: wall clock from the hand-over, output cap, tree kill", async () => {
    const { cordon } = pooled({ policy: { resources: { wallMs: 1500, maxOutputBytes: 4096 } } });
    const slow = await coldThenWarm(cordon, sh("sleep 30 & sleep 30"));
    expect(slow.warm.outcome).toBe("timeout");
    expect([slow.warm.outcome, slow.warm.limitHit, slow.warm.signalSource]).toEqual([slow.cold.outcome, slow.cold.limitHit, slow.cold.signalSource]);
    // The clock starts at the hand-over, not when the sandbox was built.
    expect(slow.warm.durationMs).toBeGreaterThanOrEqual(1500);
    const flood = await coldThenWarm(pooled({ policy: { resources: { maxOutputBytes: 4096 } } }).cordon, sh("yes"));
    expect(flood.warm.limitHit).toBe("output");
    expect([flood.warm.outcome, flood.warm.stdoutBytes.length]).toEqual([flood.cold.outcome, flood.cold.stdoutBytes.length]);
  });
});

describe("runs in pooled sandboxes never meet", () => {
  test("a run sees no file, process, variable or stdin of the run before it", async () => {
    const { cordon } = pooled({}, 2);
    const first = await warmRun(cordon, sh('echo secret > /tmp/left; echo secret > left; setsid sleep 300 >/dev/null 2>&1 & cat >/dev/null; echo "$$"', { env: { FIRST_ONLY: "first-run-value" }, stdin: new TextEncoder().encode("first stdin") }));
    expectOk(first);
    const second = await cordon.run(sh("ls -A /tmp .; ps -eo pid,args 2>/dev/null || ls /proc | grep -E '^[0-9]+$'; env; cat", { stdin: new TextEncoder().encode("second stdin") }));
    expect(second.sandbox!.start?.warm, describeResult(second)).toBe(true);
    expectOk(second);
    expect(second.stdout).not.toContain("left");
    expect(second.stdout).not.toContain("sleep 300");
    expect(second.stdout).not.toContain("first-run-value");
    expect(second.stdout).not.toContain("first stdin");
    expect(second.stdout).toContain("second stdin");
    // Each sandbox has its own host identity: the second run's uid is not the first's.
    expect(second.sandbox!.layers.privilege.controls.uid).not.toEqual(first.sandbox!.layers.privilege.controls.uid);
  });

  test("an idle sandbox holds no process, file or identity a running script can reach", async () => {
    const { cordon, runRoot } = pooled({}, 2);
    await cordon.run(sh("true"));
    await cordon.poolSettled();
    expect(cordon.poolStats()?.idle).toBeGreaterThanOrEqual(1);
    // While one pooled sandbox waits idle, a run looks for it from inside.
    const r = await cordon.run(sh(`ls ${runRoot} 2>&1; ls /proc | grep -cE '^[0-9]+$'; kill -0 -1 2>&1 && echo can-signal`));
    expect(r.stdout).not.toContain("run-");
    expect(r.stdout).not.toContain("can-signal");
  });
});

describe("the pool's own life", () => {
  test("a sandbox that dies while idle is replaced", async () => {
    const { cordon, identities } = pooled();
    await cordon.run(sh("true"));
    await cordon.poolSettled();
    expect(cordon.poolStats()?.idle).toBe(1);
    for (const pid of liveProcessesOf(identities)) process.kill(pid, "SIGKILL");
    const deadline = Date.now() + 10_000;
    while (cordon.poolStats()!.diedIdle < 1 && Date.now() < deadline) await Bun.sleep(20);
    expect(cordon.poolStats()?.diedIdle, JSON.stringify(cordon.poolStats())).toBe(1);
    await cordon.poolSettled();
    expect(cordon.poolStats()?.idle).toBe(1);
    const r = await cordon.run(sh("echo alive"));
    expect(r.sandbox!.start?.warm).toBe(true);
    expect(r.stdout).toBe("alive\n");
  });

  test("idle sandboxes stay within the memory budget, and are destroyed after idleMs", async () => {
    const tight = pooled({ pool: { size: 3, memoryBytes: 1 } }).cordon;
    await tight.run(sh("true"));
    await tight.poolSettled();
    // The first is started before any is measured; past the budget no more are.
    expect(tight.poolStats()?.idle).toBe(1);
    const brief = pooled({ pool: { size: 2, idleMs: 300 } });
    await brief.cordon.run(sh("true"));
    await brief.cordon.poolSettled();
    expect(brief.cordon.poolStats()?.idle).toBe(2);
    const deadline = Date.now() + 10_000;
    while (brief.cordon.poolStats()!.idle > 0 && Date.now() < deadline) await Bun.sleep(50);
    await brief.cordon.poolSettled();
    expect(brief.cordon.poolStats()?.idle).toBe(0);
    expect(liveProcessesOf(brief.identities)).toEqual([]);
    const after = await brief.cordon.run(sh("true"));
    expect(after.sandbox!.start?.warm).toBe(false);
  });

  test("a shape nobody uses any more is forgotten: one-off policies do not pile up in the pool", async () => {
    const { cordon } = pooled({ pool: { size: 1, idleMs: 200 } }, 1, 4);
    for (let i = 0; i < 6; i++) {
      const r = await cordon.run({ ...sh("true"), policy: { env: { set: { ONE_OFF: `${i}` } } } });
      expect(r.outcome).toBe("ok");
    }
    expect(cordon.poolStats()!.shapes).toBeGreaterThan(0);
    const deadline = Date.now() + 10_000;
    while (cordon.poolStats()!.shapes > 0 && Date.now() < deadline) await Bun.sleep(50);
    await cordon.poolSettled();
    expect(cordon.poolStats()).toMatchObject({ idle: 0, starting: 0, shapes: 0 });
    await cordon.run(sh("true"));
    expect(cordon.poolStats()!.shapes).toBe(1);
    await cordon.drainPool();
    expect(cordon.poolStats()!.shapes).toBe(0);
  });

  test("sandboxes destroyed unused give back every fd they held (drainPool)", async () => {
    const { cordon, runRoot } = pooled({}, 4);
    const fds = () => readdirSync("/proc/self/fd").length;
    await cordon.run(sh("true"));
    await cordon.drainPool();
    const before = fds();
    for (let i = 0; i < 4; i++) {
      await cordon.run(sh("true"));
      await cordon.poolSettled();
      expect((await cordon.run(sh("true"))).sandbox!.start?.warm).toBe(true);
      await cordon.drainPool();
    }
    const deadline = Date.now() + 5_000;
    while (fds() > before && Date.now() < deadline) await Bun.sleep(50);
    expect(fds()).toBeLessThanOrEqual(before);
    expectClean(runRoot);
  });

  test("a policy change never takes a sandbox built for another policy", async () => {
    const { cordon } = pooled();
    await cordon.run(sh("true", { policy: { resources: { maxOpenFiles: 100 } } }));
    await cordon.poolSettled();
    const other = await cordon.run(sh("ulimit -n", { policy: { resources: { maxOpenFiles: 77 } } }));
    expect(other.sandbox!.start?.warm).toBe(false);
    expect(other.stdout).toBe("77\n");
    const same = await cordon.run(sh("ulimit -n", { policy: { resources: { maxOpenFiles: 100 } } }));
    expect(same.sandbox!.start?.warm).toBe(true);
    expect(same.stdout).toBe("100\n");
  });

  test("the match refuses a run planned under another policy, even in the same workspace", async () => {
    const provider = new BwrapProvider();
    const host = hostFacts();
    const probe = await probeOf(provider, host);
    const workspace = allocateWorkspace(freshRunRoot("match"));
    const runner = new ShellRunner();
    const layout = { jobDir: "/cordon/job", scratchDir: "/scratch", tmpDir: "/tmp" };
    const options = { maxScriptBytes: 1 << 20, sandboxUser: null, scriptReader: null };
    const waiter = runner.warm(layout)!.waiter;
    const job = runner.prepare({ script: { source: "true" }, args: [] }, layout, options);
    const plan = (policy: typeof DEFAULT_POLICY, j = job) => composePlan({ policy, job: j, host, workspace, identity: PLAN_IDENTITY }, provider, probe);
    const base = mergePolicy(DEFAULT_POLICY, {});
    expect(sandboxMismatch(plan(base, waiter), plan(base), workspace)).toBeNull();
    for (const change of [{ resources: { maxOpenFiles: 99 } }, { resources: { memoryBytes: 64 << 20 } }, { network: { mode: "unrestricted" as const, blockMetadata: false } }, { privilege: { seccomp: false } }, { filesystem: { readOnlyBinds: [{ source: "/etc", target: "/etc" }] } }, { resources: { wallMs: 999 } }]) {
      const other = mergePolicy(base, { onUnavailable: "degrade", ...change });
      expect(sandboxMismatch(plan(base, waiter), plan(other), workspace), JSON.stringify(change)).not.toBeNull();
    }
  });

  test("close() leaves no pooled sandbox, process, cgroup, mount or held identity", async () => {
    const { cordon, runRoot, identities, parent } = pooled({ policy: { resources: { wallMs: 1000, maxOutputBytes: 4096 } } }, 3);
    for (const runner of ["shell", "python"]) await cordon.run({ runner, script: { source: "true" }, args: [] } as RunRequest);
    await cordon.poolSettled();
    // Warm runs that end every way: killed at the wall clock, at the output cap, leaving processes behind.
    const endings = [await cordon.run(sh("sleep 30")), await cordon.run(sh("yes")), await cordon.run(sh("setsid sleep 60 & sleep 60 & true"))];
    expect(endings.map((r) => [r.sandbox!.start?.warm, r.outcome])).toEqual([[true, "timeout"], [true, "limit"], [true, "ok"]]);
    await cordon.poolSettled();
    expect(cordon.poolStats()?.idle, JSON.stringify(cordon.poolStats())).toBe(6);
    expect(liveProcessesOf(identities).length).toBeGreaterThan(0);
    await cordon.close();
    expect(liveProcessesOf(identities)).toEqual([]);
    expectClean(runRoot);
    expect(runCgroupsLeft(parent)).toEqual([]);
    // Every id is free again: a fresh pool of the same range can take all of them.
    const leases = await new IdentityPool(identities).allocateAll(identities.count);
    expect(leases.length).toBe(identities.count);
    for (const l of leases) l.release();
  });
});
