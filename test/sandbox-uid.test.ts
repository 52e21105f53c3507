/**
 * Issue 17 item 10, under per-run identities (issue 13 item 2): a run's user namespace is
 * owned by the host uid it drops to, so a host process running as that uid could read the
 * run's /proc/<pid>/environ (secret values included) and /proc/<pid>/root. Every run used to
 * drop to 65534 ("nobody"), shared with every service running as nobody; now each run has a
 * host uid of its own from the identity pool, and an id some host process runs as is never
 * handed out. These attackers are real host processes hunting run environments.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Cordon, PolicyOverride, RunResult } from "../src/api/index.ts";
import { DEFAULT_IDENTITY_RANGE, inRange } from "../src/identity/range.ts";
import { IS_ROOT, freshIdentityRange, freshRunRoot, makeCordon, removeTempDirs, runCli, runningAs, runWithSharedHostUid, sleep, spawnAs, tempDir, token, type HostProcessAs } from "./support.ts";

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
  process: HostProcessAs;
}

const running: Snoop[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.process.stop();
});

/** A host process as `uid` (what a service running as nobody is) hunting for `marker` in every environment it can read. */
async function startSnoop(uid: number, marker: string): Promise<Snoop> {
  const loot = join(tempDir("uid-loot", 0o777), "loot");
  const snoop = { loot, process: spawnAs(uid, ["/usr/bin/python3", "-c", SNOOP, marker, loot]) };
  running.push(snoop);
  expect(await runningAs(snoop.process.pid, uid)).toBe(true);
  return snoop;
}

const looted = (s: Snoop) => (existsSync(s.loot) ? readFileSync(s.loot, "utf8") : "");

/** Sleeps long enough for a snoop to find it. */
const SCRIPT = "sleep 1.5; echo RAN";

function run(cordon: Cordon, secret: string, policy: PolicyOverride = {}): Promise<RunResult> {
  return cordon.run({ runner: "shell", script: { source: SCRIPT }, args: [], secretEnv: { TOKEN: secret }, policy, verify: true });
}

describe.skipIf(!IS_ROOT)("10. another host process running as the sandbox uid", () => {
  test("attack: a host process as nobody hunting run environments — the run goes ahead under fail as a uid of its own, the token never leaks", async () => {
    const secret = token("TOKEN");
    const snoop = await startSnoop(65534, secret);
    const r = await run(makeCordon(), secret);
    expect([r.outcome, r.stdout]).toEqual(["ok", "RAN\n"]);
    const hostUid = r.receipt!.hostUid!;
    expect(inRange(DEFAULT_IDENTITY_RANGE, hostUid)).toBe(true);
    expect(r.sandbox!.layers.privilege.controls.uidShared).toBeUndefined(); // the per-run scan is gone with what it warned of
    expect(r.sandbox!.layers.privilege.controls.identity?.mechanism).toContain(`per-run host uid ${hostUid}`);
    await sleep(300);
    expect(looted(snoop).includes(secret)).toBe(false);
  });

  test("control: the same snoop sharing the run's host uid (as every run shared 65534 before) reads the token", async () => {
    const secret = token("TOKEN");
    const uid = freshIdentityRange(1).base;
    const snoop = await startSnoop(uid, secret);
    const r = await runWithSharedHostUid(uid, `import os, time\ntime.sleep(1.5)\nprint("RAN")`, [], { env: { set: { TOKEN: secret } } });
    expect(r.stdout).toBe("RAN\n");
    expect(looted(snoop).includes(secret)).toBe(true);
  });

  test("attack: a host process squatting on an id of the pool — that id is skipped, the run gets another, the squatter reads nothing", async () => {
    const range = freshIdentityRange(2);
    const cordon = makeCordon(freshRunRoot(), { identity: range });
    const secret = token("TOKEN");
    const snoop = await startSnoop(range.base, secret);
    for (let i = 0; i < 2; i++) {
      const r = await run(cordon, secret);
      expect([r.outcome, r.receipt?.hostUid]).toEqual(["ok", range.base + 1]);
    }
    expect(looted(snoop).includes(secret)).toBe(false);
  });

  test("concurrent runs (two supervisors' worth) all go ahead under fail, each as a host uid of its own", async () => {
    const a = makeCordon();
    const b = makeCordon();
    const results = await Promise.all([0, 1, 2, 3].map((i) => (i % 2 ? a : b).run({ runner: "shell", script: { source: "sleep 1; echo RAN" }, args: [], verify: true })));
    expect(results.map((r) => r.outcome)).toEqual(["ok", "ok", "ok", "ok"]);
    expect(new Set(results.map((r) => r.receipt?.hostUid)).size).toBe(4);
  });

  test("CLI: `cordon run --report` names the run's host uid and the pool", async () => {
    const dir = tempDir("uid-cli", 0o755);
    const script = join(dir, "hello.sh");
    writeFileSync(script, "echo RAN\n");
    const config = join(dir, "config.json");
    writeFileSync(config, JSON.stringify({ runRoot: freshRunRoot("uid-cli-runs") }));
    const out = await runCli(["run", "--report", "--config", config, script]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toBe("RAN\n");
    // --report wraps long reasons under their column: read it as one line
    expect(out.stderr.replace(/\s+/g, " ")).toMatch(/identity enforced per-run host uid (\d+) gid \1 from the pool 2000000000–2000000063/);
  });
});
