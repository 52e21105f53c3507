/**
 * Per-run host identities (issue 13 item 2), attacked with real bwrap runs: every run on a
 * host used to drop to the same host uid (65534), so a per-uid kernel quota was shared by
 * all of them and by every host process running as nobody. fs.inotify.max_user_instances
 * (128 here) is the quota attacked: it is charged to the host uid owning the run's user
 * namespace. Each attack comes with its control: the same attack on runs that share one
 * host uid (planned without an identity, as before) succeeds, so the test would catch a
 * shared uid.
 */
import { afterAll, describe, expect, spyOn, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { IdentityPoolExhaustedError, SandboxUnavailableError, resultFromError, type PolicyOverride, type RunResult } from "../src/api/index.ts";
import { heldIdentities, IdentityPool } from "../src/identity/pool.ts";
import { DEFAULT_IDENTITY_RANGE, inRange } from "../src/identity/range.ts";
import { composePlan, DEFAULT_POLICY, mergePolicy } from "../src/api/plugin.ts";
import { BwrapProvider, UnsafeNoIsolationProvider } from "../plugins/index.ts";
import {
  caught,
  describeResult,
  freshIdentityRange,
  freshRunRoot,
  inotifyHeldByMarked,
  INOTIFY_HOG,
  IS_ROOT,
  makeCordon,
  maxUserInstances,
  parseKv,
  PLAN_JOB,
  privateClaimDir,
  processesWithMarker,
  removeTempDirs,
  runScript,
  runWithSharedHostUid,
  runRootEntries,
  spawnAs,
  tempDir,
  token,
  unusedUid,
  USER_HOST,
  waitFor,
} from "./support.ts";

afterAll(removeTempDirs);

const POOL = `${DEFAULT_IDENTITY_RANGE.base}–${DEFAULT_IDENTITY_RANGE.base + DEFAULT_IDENTITY_RANGE.count - 1}`;
const HAS_PYTHON = Bun.which("/usr/bin/python3") !== null;
if (!HAS_PYTHON) console.warn("run-identity tests: /usr/bin/python3 not found; the inotify attacks are skipped");
const MAX = maxUserInstances();

/** A read-only directory bound at /signal: the test creates `release` in it when the runs may let go. */
function signal(): { dir: string; policy: PolicyOverride; release: () => void } {
  const dir = tempDir("signal", 0o755);
  return { dir, policy: { filesystem: { readOnlyBinds: [{ source: dir, target: "/signal" }] } }, release: () => writeFileSync(join(dir, "release"), "") };
}

/** Python args for INOTIFY_HOG: open `n`, hold until /signal/release (at most 60 s), `mark` tags the command line. */
const hogArgs = (n: number, mark: string) => [String(n), "/signal/release", "60", mark];
const limits = (n: number): PolicyOverride => ({ resources: { maxOpenFiles: n + 64, wallMs: 90_000 } });

function opened(r: RunResult): { opened: number; errno: number } {
  const kv = parseKv(r.stdout);
  expect(kv.opened, describeResult(r)).toBeDefined();
  return { opened: Number(kv.opened), errno: Number(kv.errno) };
}

/** Wait until the marked runs' processes hold what `done` asks, then let them go; returns whether it came. */
async function holdUntil(mark: string, done: (held: Map<number, number>) => boolean, release: () => void): Promise<boolean> {
  const came = await waitFor(() => done(inotifyHeldByMarked(mark)), 30_000, 25);
  release();
  return came;
}

describe.skipIf(!IS_ROOT)("each run has a host uid of its own", () => {
  test("concurrent runs get distinct host uids from the pool (never 65534, never root), and the report names each", async () => {
    const cordon = makeCordon();
    const results = await Promise.all([0, 1, 2].map(() => cordon.run({ runner: "shell", script: { source: "sleep 0.5; id -u" }, args: [], verify: true })));
    const uids = results.map((r) => r.receipt?.hostUid ?? null);
    expect(new Set(uids).size, JSON.stringify(uids)).toBe(3);
    for (const [i, r] of results.entries()) {
      const uid = uids[i]!;
      expect(r.outcome, describeResult(r)).toBe("ok");
      expect(r.stdout).toBe("65534\n"); // the sandbox uid inside stays the policy's
      expect(inRange(DEFAULT_IDENTITY_RANGE, uid)).toBe(true);
      const { identity, uid: uidVerdict } = r.sandbox!.layers.privilege.controls;
      expect(identity).toEqual({
        status: "enforced",
        mechanism: `per-run host uid ${uid} gid ${uid} from the pool ${POOL}: per-uid kernel quotas (inotify instances, keys, processes), signals and same-uid channels are this run's alone`,
      });
      expect(uidVerdict?.mechanism).toContain(`supervisor drops to host uid ${uid} gid ${uid}, this run's own`);
      expect(uidVerdict?.mechanism).toContain("uid 65534 gid 65534 inside");
      expect(r.sandbox!.argv.slice(0, 3)).toEqual(["/usr/bin/setpriv", `--reuid=${uid}`, `--regid=${uid}`]);
      expect(heldIdentities()).not.toContain(uid); // given back once the run was cleaned up
    }
  });

  test("the id is given back after every ending: a one-id pool serves an ok, a failing, a timed-out and a refused run in turn", async () => {
    const cordon = makeCordon(freshRunRoot(), { identity: freshIdentityRange(1) });
    const run = (source: string, policy: PolicyOverride = {}) => cordon.run({ runner: "shell", script: { source }, args: [], policy });
    expect((await run("true")).outcome).toBe("ok");
    expect((await run("exit 3")).outcome).toBe("exit-nonzero");
    expect((await run("sleep 5", { resources: { wallMs: 200 } })).outcome).toBe("timeout");
    expect(await caught(() => run("true", { network: { mode: "allowlist", allow: ["192.0.2.1:443"] } }))).toBeInstanceOf(SandboxUnavailableError);
    expect(await caught(() => cordon.run({ runner: "nope", script: { source: "" }, args: [] }))).toHaveProperty("code", "unknown-runner");
    const last = await run("true");
    expect(last.outcome).toBe("ok");
    expect(heldIdentities().filter((id) => inRange(cordon.config.identity, id))).toEqual([]);
  });

  test("Cordon.plan takes an id and gives it back at once: its report names a real one", async () => {
    const cordon = makeCordon(freshRunRoot(), { identity: freshIdentityRange(1) });
    const { base } = cordon.config.identity;
    for (let i = 0; i < 2; i++) {
      const report = await cordon.plan({ runner: "shell", script: { source: "true" }, args: [] });
      expect(report.layers.privilege.controls.identity?.mechanism).toContain(`per-run host uid ${base} gid ${base}`);
    }
    expect(heldIdentities()).not.toContain(base);
  });

  test("pool exhausted: a typed refusal naming the pool and the config key; nothing is created or spawned", async () => {
    const range = freshIdentityRange(1);
    const runRoot = freshRunRoot();
    const cordon = makeCordon(runRoot, { identity: range });
    const holder = await new IdentityPool(range, privateClaimDir()).allocate(); // another run of this process holds the only id
    const mark = token("exhausted");
    const spawn = spyOn(Bun, "spawn");
    try {
      const err = await caught(() => cordon.run({ runner: "shell", script: { source: `sleep 1 # ${mark}` }, args: [] }));
      expect(spawn).not.toHaveBeenCalled();
      expect(err).toBeInstanceOf(IdentityPoolExhaustedError);
      expect((err as Error).message).toContain(`all 1 ids of the pool ${range.base}–${range.base}`);
      expect((err as Error).message).toContain("identity.count");
      expect(resultFromError(err).outcome).toBe("refused");
      expect(await caught(() => cordon.plan({ runner: "shell", script: { source: "true" }, args: [] }))).toBeInstanceOf(IdentityPoolExhaustedError);
      expect(runRootEntries(runRoot)).toEqual([]);
      expect(processesWithMarker(mark)).toEqual([]);
    } finally {
      spawn.mockRestore();
      holder.release();
    }
    expect((await cordon.run({ runner: "shell", script: { source: "true" }, args: [] })).outcome).toBe("ok");
  });

  test("readiness with a two-id pool: probe runs wait for each other's ids, the identity cell is proven, check() plans with none", async () => {
    const range = freshIdentityRange(2);
    const cordon = makeCordon(freshRunRoot(), { identity: range }, { providers: [new BwrapProvider()] });
    const bwrap = (await cordon.readiness()).find((r) => r.provider === "bwrap")!;
    expect(bwrap.cells.identity.status, bwrap.cells.identity.detail).toBe("proven");
    expect(bwrap.cells.identity.detail).toContain(`from the pool ${range.base}–${range.base + 1}`);
    expect(bwrap.cells.identity.detail).toContain(`each held all ${MAX} inotify instances`);
    expect(bwrap.cells.privilege.detail).toMatch(new RegExp(`^host uid (${range.base}|${range.base + 1}),`));
    const holder = await new IdentityPool(range, privateClaimDir()).allocateAll(2); // every id taken: a trial plan needs none
    try {
      const check = await cordon.check();
      expect(check.ready, JSON.stringify(check.reasons)).toBe(true);
    } finally {
      for (const l of holder) l.release();
    }
  });

  test("the unsafe provider has no identity (and takes none from the pool)", async () => {
    const cordon = makeCordon(freshRunRoot(), { identity: freshIdentityRange(1) });
    const r = await runScript(cordon, "shell", "id -u", { provider: "unsafe" });
    const identity = r.sandbox!.layers.privilege.controls.identity!;
    expect(identity.status).toBe("degraded");
    expect(identity.status === "degraded" && identity.fix).toBe("use an isolating provider (bwrap)");
    expect(heldIdentities().filter((id) => inRange(cordon.config.identity, id))).toEqual([]);
  });
});

describe("planned without an identity or by a non-root supervisor: the shared uid is reported, never silent", () => {
  const probe = { available: true, binary: "/usr/bin/bwrap", version: "0.8.0", features: { disableUserns: true, tmpfsSize: true }, tools: { setpriv: "/usr/bin/setpriv", prlimit: "/usr/bin/prlimit" } };
  const plan = (host = USER_HOST, identity = true) =>
    composePlan(
      { policy: mergePolicy(DEFAULT_POLICY, { onUnavailable: "degrade" }), job: PLAN_JOB, host, workspace: { root: "/r", stageDir: "/r/stage", jobDir: "/r/stage/job", scratchDir: "/r/scratch" }, ...(identity ? { identity: new IdentityPool(DEFAULT_IDENTITY_RANGE).representative() } : {}) },
      new BwrapProvider(),
      probe,
    );

  test("non-root supervisor: identity degraded, every run shares the supervisor's uid; the fix is root", () => {
    const identity = plan().report.layers.privilege.controls.identity!;
    expect(identity.status).toBe("degraded");
    expect(identity.status === "degraded" && identity.reason).toContain("the supervisor is not root: every run runs as host uid 1000");
    expect(identity.status === "degraded" && identity.fix).toBe("run the supervisor as root: each run then gets its own host uid from the identity pool (config identity)");
    expect(plan().report.downgrades.some((d) => d.startsWith("privilege.identity:"))).toBe(true);
  });

  test("a plan made without an identity drops to the policy uid and says it is shared; under fail it is refused", () => {
    const root = { ...USER_HOST, uid: 0, gid: 0, isRoot: true };
    const p = plan(root, false);
    expect(p.argv.slice(0, 3)).toEqual(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534"]);
    const identity = p.report.layers.privilege.controls.identity!;
    expect(identity.status === "degraded" && identity.reason).toContain("no per-run host identity was allocated: the run drops to host uid 65534, sharing per-uid kernel quotas");
    expect(() =>
      composePlan({ policy: DEFAULT_POLICY, job: PLAN_JOB, host: root, workspace: { root: "/r", stageDir: "/r/stage", jobDir: "/r/stage/job", scratchDir: "/r/scratch" } }, new BwrapProvider(), probe),
    ).toThrow(SandboxUnavailableError);
    // With one (a trial plan's representative), the verdict says per-run.
    expect(plan(root).report.layers.privilege.controls.identity).toEqual({
      status: "enforced",
      mechanism: `per-run host uid and gid from the pool ${POOL}, one per concurrent run: per-uid kernel quotas (inotify instances, keys, processes), signals and same-uid channels are this run's alone`,
    });
  });

  test("the unsafe provider: degraded like its other controls", () => {
    const unsafe = new UnsafeNoIsolationProvider();
    const p = composePlan({ policy: mergePolicy(DEFAULT_POLICY, { onUnavailable: "degrade" }), job: PLAN_JOB, host: { ...USER_HOST, uid: 0, gid: 0, isRoot: true }, workspace: { root: "/r", stageDir: "/r/stage", jobDir: "/r/stage/job", scratchDir: "/r/scratch" } }, unsafe, unsafe.probe());
    const identity = p.report.layers.privilege.controls.identity!;
    expect(identity.status === "degraded" && identity.reason).toBe("no isolation: the script runs as the supervisor (host uid 0), with no host identity of its own");
  });
});

describe.skipIf(!IS_ROOT || !HAS_PYTHON)("attack: a per-uid kernel quota (inotify instances) across runs", () => {
  test("two concurrent runs each open 100 inotify instances and hold them at once", async () => {
    const cordon = makeCordon();
    const mark = token("inotify");
    const s = signal();
    const runs = [0, 1].map(() => runScript(cordon, "python", INOTIFY_HOG, { args: hogArgs(100, mark), policy: { ...limits(100), ...s.policy } }));
    // Both hold 100 at the same moment (seen from the host), then both let go.
    const together = await holdUntil(mark, (held) => [...held.values()].filter((n) => n >= 100).length === 2, s.release);
    const results = await Promise.all(runs);
    for (const r of results) expect(opened(r), describeResult(r)).toEqual({ opened: 100, errno: 0 });
    expect(together).toBe(true);
    expect(new Set(results.map((r) => r.sandbox!.layers.privilege.controls.identity?.mechanism)).size).toBe(2);
  });

  test("control: the same two runs sharing one host uid (as before per-run identities) cannot both have 100", async () => {
    const uid = unusedUid();
    const mark = token("inotify-shared");
    const s = signal();
    const runs = [0, 1].map(() => runWithSharedHostUid(uid, INOTIFY_HOG, hogArgs(100, mark), { ...limits(100), ...s.policy }));
    await holdUntil(mark, (held) => (held.get(uid) ?? 0) >= MAX, s.release); // the shared quota is full
    const got = (await Promise.all(runs)).map((r) => opened(r));
    expect(got.reduce((n, g) => n + g.opened, 0)).toBe(MAX);
    expect(got.some((g) => g.opened < 100 && g.errno === 24 /* EMFILE */)).toBe(true);
  });

  test(`a run holding ALL of its uid's inotify instances (max_user_instances, ${MAX}) hurts neither a concurrent run nor a host process running as nobody`, async () => {
    const cordon = makeCordon();
    const mark = token("hog");
    const s = signal();
    const hog = runScript(cordon, "python", INOTIFY_HOG, { args: hogArgs(MAX + 10, mark), policy: { ...limits(MAX + 10), ...s.policy } });
    let released = false;
    try {
      // The hog holds every instance its host uid may have.
      expect(await waitFor(() => [...inotifyHeldByMarked(mark).values()].some((n) => n === MAX), 30_000, 25)).toBe(true);
      const other = await runScript(cordon, "python", INOTIFY_HOG, { args: ["100"], policy: limits(100) });
      expect(opened(other), describeResult(other)).toEqual({ opened: 100, errno: 0 });
      const nobody = spawnAs(65534, ["/usr/bin/python3", "-I", "-c", INOTIFY_HOG, "10"]);
      expect(await nobody.exited).toBe(0);
      expect(parseKv(await nobody.output())).toEqual({ opened: "10", errno: "0" });
      expect([...inotifyHeldByMarked(mark).values()]).toContain(MAX); // the hog still held them all meanwhile
    } finally {
      s.release();
      released = true;
    }
    const r = await hog;
    expect(released).toBe(true);
    expect(opened(r), describeResult(r)).toEqual({ opened: MAX, errno: 24 });
  });

  test("control: a hog sharing its host uid with the next run and a host process leaves them none", async () => {
    const uid = unusedUid();
    const mark = token("hog-shared");
    const s = signal();
    const hog = runWithSharedHostUid(uid, INOTIFY_HOG, hogArgs(MAX + 10, mark), { ...limits(MAX + 10), ...s.policy });
    try {
      expect(await waitFor(() => (inotifyHeldByMarked(mark).get(uid) ?? 0) === MAX, 30_000, 25)).toBe(true);
      const other = await runWithSharedHostUid(uid, INOTIFY_HOG, ["100"], limits(100));
      expect(opened(other)).toEqual({ opened: 0, errno: 24 });
      const host = spawnAs(uid, ["/usr/bin/python3", "-I", "-c", INOTIFY_HOG, "10"]);
      await host.exited;
      expect(parseKv(await host.output())).toEqual({ opened: "0", errno: "24" });
    } finally {
      s.release();
    }
    expect(opened(await hog).opened).toBe(MAX);
  });
});
