/**
 * Issue 17 item 10: a run's user namespace is owned by the host uid the supervisor drops to
 * (policy.privilege.uid, 65534 "nobody" by default), so any other host process running as
 * that uid can read the run's /proc/<pid>/environ and /proc/<pid>/root. Until runs get
 * identities of their own, such a process is reported (privilege.uidShared degraded, so
 * `fail` refuses), and a dedicated uid is the fix.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Cordon, SandboxUnavailableError, type PolicyOverride, type RunResult } from "../src/api/index.ts";
import { UID_SCAN_MAX_AGE_MS } from "../src/host.ts";
import { IS_ROOT, caught, makeCordon, removeTempDirs, sleep, tempDir, token, unusedUid, waitFor } from "./support.ts";

afterAll(removeTempDirs);

/** Reads every /proc/<pid>/environ it can, writing lines that hold the marker into `loot`. */
const SNOOP = `
import os, sys, time
marker, loot = sys.argv[1].encode(), sys.argv[2]
while True:
    for pid in os.listdir("/proc"):
        if not pid.isdigit(): continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        for var in env.split(b"\\0"):
            if marker in var:
                with open(loot, "ab") as out:
                    out.write(var + b"\\n")
    time.sleep(0.002)
`;

interface Snoop {
  loot: string;
  stop(): Promise<void>;
}

const running: Snoop[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
});

/** A host process as `uid` (what a service running as nobody is) hunting for `marker` in every environment it can read. */
async function startSnoop(uid: number, marker: string): Promise<Snoop> {
  const loot = join(tempDir("uid-loot", 0o777), "loot");
  const p = Bun.spawn(["/usr/bin/setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "/usr/bin/python3", "-c", SNOOP, marker, loot], { stdin: "ignore", stdout: "ignore", stderr: "inherit", env: {} });
  const snoop = {
    loot,
    async stop() {
      p.kill("SIGKILL");
      await p.exited;
    },
  };
  running.push(snoop);
  expect(await waitFor(() => readFileSync(`/proc/${p.pid}/status`, "utf8").includes(`Uid:\t${uid}\t`), 5000)).toBe(true);
  await sleep(UID_SCAN_MAX_AGE_MS + 100); // a scan cached before it started has expired
  return snoop;
}

const looted = (s: Snoop) => (existsSync(s.loot) ? readFileSync(s.loot, "utf8") : "");

/** Sleeps long enough for a snoop to find it. */
const SCRIPT = "sleep 1.5; echo RAN";

/** Nobody else ran as the uid: no uidShared verdict, and the uid verdict says it was looked up. */
function expectUnshared(r: RunResult, uid: number): void {
  const { uid: verdict, uidShared } = r.sandbox!.layers.privilege.controls;
  expect(uidShared).toBeUndefined();
  expect(verdict?.status).toBe("enforced");
  expect(verdict?.mechanism).toContain(`no host process outside cordon's runs ran as uid ${uid}`);
}

function run(cordon: Cordon, secret: string, policy: PolicyOverride = {}) {
  return cordon.run({ runner: "shell", script: { source: SCRIPT }, args: [], secretEnv: { TOKEN: secret }, policy, verify: true });
}

describe.skipIf(!IS_ROOT)("10. another host process running as the sandbox uid", () => {
  test("attack: a host process as nobody hunting run environments — the default policy (fail) refuses the run, the token never leaks", async () => {
    const secret = token("TOKEN");
    const snoop = await startSnoop(65534, secret);
    const err = await caught(() => run(makeCordon(), secret));
    expect(err).toBeInstanceOf(SandboxUnavailableError);
    const reasons = (err as SandboxUnavailableError).reasons.join("\n");
    expect(reasons).toContain("privilege.uidShared");
    expect(reasons).toContain("uid 65534");
    expect(reasons).toMatch(/pid \d+ \(python3/);
    expect(reasons).toContain("policy.privilege.uid");
    await sleep(300);
    expect(looted(snoop).includes(secret)).toBe(false);
  });

  test("under degrade the run goes ahead and its report says the uid is shared (and the attack works: that is what the report warns of)", async () => {
    const secret = token("TOKEN");
    const snoop = await startSnoop(65534, secret);
    const r = await run(makeCordon(), secret, { onUnavailable: "degrade" });
    expect(r.outcome).toBe("ok");
    const control = r.sandbox!.layers.privilege.controls.uidShared;
    expect(control?.status).toBe("degraded");
    expect(r.sandbox!.downgrades.some((d) => d.startsWith("privilege.uidShared:"))).toBe(true);
    expect(looted(snoop).includes(secret)).toBe(true);
  });

  test("a dedicated uid nothing else uses: the run works under fail, runs as that uid, and the nobody process reads nothing", async () => {
    const secret = token("TOKEN");
    const snoop = await startSnoop(65534, secret);
    const uid = unusedUid();
    const r = await run(makeCordon(), secret, { privilege: { uid, gid: uid } });
    expect([r.outcome, r.stdout, r.receipt?.hostUid]).toEqual(["ok", "RAN\n", uid]);
    expectUnshared(r, uid);
    expect(looted(snoop).includes(secret)).toBe(false);
  });

  test("cordon's own runs do not count: concurrent runs (two supervisors' worth) under fail all go ahead", async () => {
    const a = makeCordon();
    const b = makeCordon();
    const results = await Promise.all([0, 1, 2, 3].map((i) => (i % 2 ? a : b).run({ runner: "shell", script: { source: "sleep 1; echo RAN" }, args: [] })));
    expect(results.map((r) => r.outcome)).toEqual(["ok", "ok", "ok", "ok"]);
    for (const r of results) expectUnshared(r, 65534);
  });

  test("CLI: `cordon run` refuses with the refused status (125) and names the fix", async () => {
    const secret = token("TOKEN");
    await startSnoop(65534, secret);
    const dir = tempDir("uid-cli", 0o755);
    const script = join(dir, "hello.sh");
    await Bun.write(script, "echo RAN\n");
    const config = join(dir, "config.json");
    await Bun.write(config, JSON.stringify({ runRoot: join(tempDir("uid-cli-runs", 0o711), "runs") }));
    const p = Bun.spawnSync([process.execPath, join(import.meta.dir, "../bin/cordon.ts"), "run", "--config", config, script], { env: { ...process.env } });
    const out = p.stdout.toString() + p.stderr.toString();
    expect(out).not.toContain("RAN");
    expect(out).toContain("uid 65534");
    expect(out).toContain("policy.privilege.uid");
    expect(p.exitCode).toBe(125);
  });
});
