/**
 * The identity attack: do two concurrent runs share a per-uid kernel quota? Each run
 * opens inotify instances up to the host's fs.inotify.max_user_instances (charged to the
 * host uid that owns the run's user namespace) and holds them. The supervisor, not the
 * scripts, decides when they let go: only after BOTH said how many they got (a file each
 * writes in its own scratch, read from the host; neither script can reach the other's, and
 * `release` is written by the supervisor into each scratch). So both held their instances
 * at the same time, whatever the machine's load: with one quota between them, one of them
 * got fewer than the maximum. Host-side evidence comes with it: the host uid owning a file
 * each run created (as the main probe's scratchOwner).
 *
 * Only a plan that claims an identity of its own for every run is attacked: where the plan
 * admits a shared uid (no isolation, a non-root supervisor) the attack would exhaust the
 * supervisor's own quota on the host, and the plan's reason is the verdict.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import type { RunIdentity } from "../identity/range.ts";
import type { RunResult } from "../result.ts";
import type { Workspace } from "../sandbox/spec.ts";
import { writeExclusive } from "../sandbox/run-root.ts";

/** Above this the probe does not try to exhaust the quota (too many fds and too long to be a probe). */
export const MAX_ATTACKED_INSTANCES = 16_384;
/** How long the supervisor waits for both runs to report before it lets them go anyway. */
const REPORT_WAIT_MS = 20_000;
const POLL_MS = 25;

/** inotify_init1 for perl's syscall(), which has no name table without the full perl package. */
const INOTIFY_INIT1: Partial<Record<NodeJS.Architecture, number>> = { x64: 294, arm64: 26 };

/** fs.inotify.max_user_instances on this host, or null when it cannot be read. */
export function hostMaxUserInstances(): number | null {
  try {
    const n = Number(readFileSync("/proc/sys/fs/inotify/max_user_instances", "utf8").trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

const PYTHON = `
import ctypes, os, sys, time
n, libc, fds, err = int(sys.argv[1]), ctypes.CDLL(None, use_errno=True), [], 0
for _ in range(n):
    fd = libc.inotify_init1(0o2000000)
    if fd < 0:
        err = ctypes.get_errno()
        break
    fds.append(fd)
with open("held.tmp", "w") as f:
    f.write("python3 %d %d\\n" % (len(fds), err))
os.rename("held.tmp", "held")
while not os.path.exists("release"):
    time.sleep(0.02)
`;

const PERL = `
my ($n, $nr) = @ARGV; my @fds; my $err = 0;
for (1 .. $n) { my $fd = syscall($nr, 0); if ($fd < 0) { $err = $! + 0; last } push @fds, $fd }
open(my $h, ">", "held.tmp") or die; print $h "perl " . scalar(@fds) . " $err\\n"; close $h; rename "held.tmp", "held";
select(undef, undef, undef, 0.02) until -e "release";
`;

/**
 * The script of one attacking run (bash, cwd scratch): perl's syscall() where the syscall
 * number is known (perl-base is on every Debian and starts in milliseconds), else python3's
 * ctypes, else it says it has neither.
 */
export function identityProbe(max: number): string {
  const nr = INOTIFY_INIT1[process.arch];
  const perl = nr === undefined ? "" : `if [ -x /usr/bin/perl ]; then exec /usr/bin/perl -e '${PERL}' ${max} ${nr}; fi\n`;
  return `
: > ./owner-probe
${perl}if [ -x /usr/bin/python3 ]; then exec /usr/bin/python3 -I -c '${PYTHON}' ${max}; fi
printf 'none 0 0\\n' > ./held
`;
}

/** What one attacking run reported and what the host saw of it. */
export interface QuotaRun {
  result: RunResult;
  /** The tool that opened the instances ("none": neither python3 nor perl under /usr). */
  tool: string | null;
  held: number | null;
  errno: number | null;
  /** Host uid owning the file the run created in its scratch. */
  owner: number | null;
  identity: RunIdentity | null;
}

export interface IdentityObservation {
  max: number;
  runs: [QuotaRun, QuotaRun];
  /** Both runs reported while the other still held its instances (false: the wait ran out). */
  bothReported: boolean;
  /** The uid of the supervisor that ran them (a run's host uid must not be it). */
  supervisorUid: number;
}

/**
 * A small file in a scratch the sandbox uid owns, read as the supervisor: never through a
 * link (O_NOFOLLOW), never a FIFO or device (O_NONBLOCK, then fstat), at most 256 bytes.
 */
function readReport(scratchDir: string, name: string): string | null {
  let fd: number;
  try {
    fd = openSync(join(scratchDir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    if (!fstatSync(fd).isFile()) return null;
    const buf = Buffer.alloc(256);
    return buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

function ownerOf(scratchDir: string): number | null {
  try {
    return lstatSync(join(scratchDir, "owner-probe")).uid;
  } catch {
    return null;
  }
}

/** A started run: where its scratch is on the host, and its end. */
export interface StartedProbe {
  workspace: Workspace;
  identity: RunIdentity | null;
  result: Promise<RunResult>;
}

/** Tell a run to let go: a fresh file in its scratch (O_EXCL|O_NOFOLLOW: a link planted there is never followed). */
function release(scratchDir: string): void {
  try {
    writeExclusive(join(scratchDir, "release"), "", 0o644);
  } catch {
    // the run is gone already, or planted something there: its wall clock ends it
  }
}

/** The attack on two runs started together (the same script and limits, each with its own identity). */
export async function attackIdentity(max: number, probes: readonly [StartedProbe, StartedProbe]): Promise<IdentityObservation> {
  let ended = 0;
  for (const p of probes) void p.result.then(() => ended++, () => ended++);
  const deadline = performance.now() + REPORT_WAIT_MS;
  const reported = () => probes.every((p) => readReport(p.workspace.scratchDir, "held") !== null);
  while (!reported() && ended === 0 && performance.now() < deadline) await Bun.sleep(POLL_MS);
  // Read while both runs still hold what they got: the files are gone with scratch after the run.
  const reports = probes.map((p) => readReport(p.workspace.scratchDir, "held"));
  const owners = probes.map((p) => ownerOf(p.workspace.scratchDir));
  const bothReported = reports.every((r) => r !== null) && ended === 0;
  for (const p of probes) release(p.workspace.scratchDir);
  const results = await Promise.all(probes.map((p) => p.result));
  const runs = probes.map((p, i): QuotaRun => {
    const [tool, held, errno] = (reports[i] ?? "").trim().split(" ");
    const num = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : null);
    return { result: results[i]!, tool: tool || null, held: num(held), errno: num(errno), owner: owners[i] ?? null, identity: p.identity };
  }) as [QuotaRun, QuotaRun];
  return { max, runs, bothReported, supervisorUid: process.getuid?.() ?? -1 };
}
