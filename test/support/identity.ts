/**
 * Per-run host identities seen from the host: which uids are a sandbox's, how many inotify
 * instances a uid holds, host processes started as a given uid, and pools of their own for
 * tests (a fresh range and a private claim directory), so tests never compete with the
 * runs of other suites for the default pool.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { accountIdsIn } from "../../src/identity/in-use.ts";
import { DEFAULT_IDENTITY_RANGE, type IdentityRange } from "../../src/identity/range.ts";
import { DEFAULT_POLICY, mergePolicy, type PolicyOverride, type RunResult } from "../../src/api/index.ts";
import { hostFacts } from "../../src/host.ts";
import { probeOf } from "../../src/provider.ts";
import { planRun, runInSandbox } from "../../src/sandbox/run.ts";
import { BwrapProvider, PythonRunner } from "../../plugins/index.ts";
import { hostPids, processesWithMarker, readProc, uidOf } from "./processes.ts";
import { freshRunRoot, tempDir } from "./temp.ts";
import { waitFor } from "./wait.ts";

/** The default pool every Cordon of the tests takes its runs' host uids from. */
export const DEFAULT_POOL: IdentityRange = DEFAULT_IDENTITY_RANGE;

/**
 * A range of `count` ids no account names, in the band above the default pool (still inside
 * the range systemd leaves unused), different at every call. (No process runs as any of
 * them unless a test starts one: nothing else on these hosts uses the band.)
 */
export function freshIdentityRange(count: number): IdentityRange {
  for (;;) {
    const base = 2_100_000_000 + Math.floor(Math.random() * 600_000) * 64;
    const range = { base, count };
    if (accountIdsIn(range).size === 0) return range;
  }
}

/** A claim directory of its own (0700, the supervisor's), removed with the temp dirs. */
export function privateClaimDir(): string {
  return tempDir("claims", 0o700);
}

/** How many inotify instances one process holds (its fds that are inotify instances); 0 when it is gone. */
function inotifyFdsOf(pid: number): number {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return 0; // gone meanwhile
  }
  let n = 0;
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === "anon_inode:inotify") n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** How many inotify instances the processes running as `uid` (real uid) hold right now. */
export function inotifyInstancesOf(uid: number): number {
  return hostPids()
    .filter((pid) => uidOf(pid) === uid)
    .reduce((n, pid) => n + inotifyFdsOf(pid), 0);
}

/** fs.inotify.max_user_instances of this host: what one uid may hold in all. */
export function maxUserInstances(): number {
  return Number(readFileSync("/proc/sys/fs/inotify/max_user_instances", "utf8").trim());
}

/**
 * Python that opens up to N inotify instances (argv[1]), prints `opened=K errno=E`, then, when
 * argv[2] names a file, holds them until that file exists (at most argv[3] seconds).
 */
export const INOTIFY_HOG = `
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
n, fds, err = int(sys.argv[1]), [], 0
for _ in range(n):
    fd = libc.inotify_init1(0)
    if fd < 0:
        err = ctypes.get_errno()
        break
    fds.append(fd)
print("opened=%d\\nerrno=%d" % (len(fds), err), flush=True)
if len(sys.argv) > 2:
    deadline = time.time() + float(sys.argv[3])
    while not os.path.exists(sys.argv[2]) and time.time() < deadline:
        time.sleep(0.02)
`;

/** A host process started as `uid`:`uid` (no supplementary groups), its stdout collected; killed by stop(). */
export interface HostProcessAs {
  pid: number;
  output: () => Promise<string>;
  exited: Promise<number>;
  stop(): Promise<void>;
}

export function spawnAs(uid: number, argv: string[]): HostProcessAs {
  const p = Bun.spawn(["/usr/bin/setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", ...argv], { stdin: "ignore", stdout: "pipe", stderr: "inherit", env: {}, cwd: "/" });
  const out = new Response(p.stdout).text();
  return {
    pid: p.pid,
    output: () => out,
    exited: p.exited,
    async stop() {
      p.kill("SIGKILL");
      await p.exited;
    },
  };
}

/** Wait until a host process runs as `uid` (setpriv has switched). */
export function runningAs(pid: number, uid: number, timeoutMs = 5000): Promise<boolean> {
  return waitFor(() => (readProc(pid, "status") ?? "").includes(`Uid:\t${uid}\t`), timeoutMs);
}

/** Inotify instances held, per host uid, by the processes whose command line carries `marker`. */
export function inotifyHeldByMarked(marker: string): Map<number, number> {
  const held = new Map<number, number>();
  for (const p of processesWithMarker(marker)) {
    const uid = uidOf(p.pid);
    if (uid !== null) held.set(uid, (held.get(uid) ?? 0) + inotifyFdsOf(p.pid));
  }
  return held;
}

/**
 * A Python run as runs were before per-run identities: planned with no identity, so it
 * drops to the policy's uid `uid` on the host like every other run planned so (reported
 * degraded, hence `degrade`). The control that shows a test catches a shared uid.
 */
export async function runWithSharedHostUid(uid: number, source: string, args: string[], policy: PolicyOverride = {}): Promise<RunResult> {
  const provider = new BwrapProvider();
  const host = hostFacts();
  const probe = await probeOf(provider, host);
  const user = { uid, gid: uid };
  const planned = planRun({
    provider,
    probe,
    policy: mergePolicy(DEFAULT_POLICY, { ...policy, onUnavailable: "degrade", privilege: user }),
    host,
    runRoot: freshRunRoot("shared-uid"),
    makeJob: (layout) => new PythonRunner().prepare({ script: { source }, args }, layout, { maxScriptBytes: 1 << 20, sandboxUser: user, scriptReader: null }),
  });
  return runInSandbox(planned);
}
