/**
 * Classify: the ONE place that decides how a spawned run ended, from evidence the script
 * cannot forge, in this order (the first rule that applies decides):
 *
 *   1. setup      a setup step failed between spawn and release: `refused` when the
 *                 launcher provably held the command back (nothing ran), else a
 *                 sandbox failure (the command may have run; its output is discarded)
 *   2. launcher   the status fd says the sandbox never started its command (unless the
 *                 supervisor or the OOM killer killed the launcher: then it could not say)
 *   3. supervisor what the supervisor did: wall timer, output cap, OOM kill it acted on
 *   4. cgroup     what the run cgroup counted: an OOM kill, RLIMIT_CPU proven by the
 *                 tree's CPU, pids.max
 *   5. exit       how the process exited (signal, zero, non-zero): never a limit by itself
 *
 * Refusals, thrown or returned: before the spawn a refusal is THROWN (SandboxUnavailableError
 * from planning, a CordonError from a setup step's prepare): nothing exists yet and the
 * caller's "throws, having spawned nothing" contract holds. From the spawn on, every
 * ending, a refusal included, is RETURNED as a RunResult: a launcher existed, and the
 * result carries its report, stderr and duration.
 */
import type { CgroupEvents, CgroupStats } from "../cgroup/index.ts";
import { CordonError, SandboxUnavailableError } from "../errors.ts";
import type { LimitHit, Outcome } from "../result.ts";
import type { DecodedExit } from "./exit.ts";
import type { LaunchStatus, StatusChannel } from "../protocol/launch-status.ts";
import type { Release } from "./release.ts";
import type { RunEvents } from "./supervise.ts";

export interface RunEvidence {
  release: Release;
  /** Which status channel the launcher has (null: none) and what it said after the run. */
  statusChannel: StatusChannel | null;
  status: LaunchStatus | null;
  events: RunEvents;
  /** The supervisor killed the tree (wall, output, OOM watch). */
  treeKilled: boolean;
  exit: DecodedExit;
  stderr: string;
  cgroup: { events: CgroupEvents; stats: CgroupStats } | null;
  /** The policy's CPU budget, for the cpu verdict. */
  cpuSeconds: number;
}

export type Verdict = { ran: true; outcome: Outcome; limitHit: LimitHit | null } | { ran: false; error: CordonError };

export function classify(e: RunEvidence): Verdict {
  const setup = setupFailure(e.release, e.status);
  if (setup) return { ran: false, error: setup };
  // A launcher that was killed (by the supervisor: wall, output; by the kernel's OOM killer,
  // which may pick bwrap's own processes inside the run cgroup) could not report the exec
  // any more: that reason stands. Otherwise the status fd says whether it ever ran.
  const launcherKilled = e.treeKilled || e.cgroup?.events.oomKilled === true;
  const failed = launcherKilled ? null : launcherFailure(e.statusChannel, e.status, e.exit.exitCode !== 0 || e.exit.signal !== null, e.stderr);
  if (failed) return { ran: false, error: failed };
  const seen = classifyOutcome(e.events, e.exit);
  const { outcome, limitHit } = e.cgroup ? refineWithCgroup({ ...seen, signal: e.exit.signal }, e.cgroup.events, e.cgroup.stats, e.cpuSeconds) : seen;
  return { ran: true, outcome, limitHit };
}

/** Rule 1. "Nothing was run" only when the launcher itself says its command never started. */
function setupFailure(release: Release, status: LaunchStatus | null): CordonError | null {
  if (release.setupError === null) return null;
  if (release.heldBack && status?.commandStarted === false) return new SandboxUnavailableError("launch", [`sandbox setup failed before the script started: ${release.setupError}`]);
  return new CordonError("sandbox-failed", `sandbox setup failed (${release.setupError}) and the command was not held back: it was killed; its output is discarded`);
}

/** Rule 2. Why a run is an error of the sandbox rather than the script's: decided from the status fd only. */
function launcherFailure(channel: StatusChannel | null, status: LaunchStatus | null, exitedNonZero: boolean, stderr: string): CordonError | null {
  if (!channel || !status) return null;
  const said = stderr.trim() ? `: ${stderr.trim()}` : "";
  if (channel === "nsjail-log") {
    return exitedNonZero && status.launcherErrors.length > 0 ? new CordonError("sandbox-failed", `the sandbox failed to start: ${status.launcherErrors.join(" | ")}`) : null;
  }
  if (status.childPid === null) {
    // No child reported: the launcher (or the cgroup join before it) failed, or it was not
    // told to report. Either way nothing about this run can be trusted; say no more than that.
    return new CordonError("sandbox-failed", `the sandbox failed to start (its launcher reported no child; the run is discarded)${said}`);
  }
  if (!status.commandStarted) return new CordonError("sandbox-failed", `the sandbox failed to start (the command was never executed)${said}`);
  return null;
}

/**
 * Rules 3 and 5: why the run ended, from what the supervisor did and how the process
 * exited. Supervisor actions win. How the process exited is never a limit verdict by
 * itself: under bwrap a death by SIGXCPU is exit status 152, which a script's own
 * `exit 152` (or `kill -XCPU $$`) imitates exactly. Limits are decided from the run
 * cgroup's evidence (refineWithCgroup).
 */
function classifyOutcome(events: RunEvents, exit: DecodedExit): { outcome: Outcome; limitHit: LimitHit | null } {
  if (events.timedOut) return { outcome: "timeout", limitHit: "wall" };
  // The caller's cancellation: no limit of the run's, the supervisor ended it (RunResult.cancelled).
  if (events.cancelled) return { outcome: "killed", limitHit: null };
  if (events.outputOverflow) return { outcome: "limit", limitHit: "output" };
  if (events.oomKilled) return { outcome: "limit", limitHit: "memory" };
  if (exit.signal) return { outcome: "killed", limitHit: null };
  if (exit.exitCode === 0) return { outcome: "ok", limitHit: null };
  return { outcome: "exit-nonzero", limitHit: null };
}

/**
 * Rule 4: what the cgroup adds to the outcome the executor saw, from counters the script
 * cannot write. The supervisor's own reasons (wall, output, memory it acted on) stand; an
 * OOM kill the executor did not see is a memory limit; a death by SIGXCPU or SIGKILL after
 * the tree used its CPU budget is RLIMIT_CPU (soft or hard); a failed run that hit
 * pids.max ran out of processes. Nothing here trusts the exit status to name a limit.
 */
export function refineWithCgroup(
  run: { outcome: Outcome; limitHit: LimitHit | null; signal: string | null },
  events: CgroupEvents,
  stats: CgroupStats,
  cpuSeconds: number,
): { outcome: Outcome; limitHit: LimitHit | null } {
  const current = { outcome: run.outcome, limitHit: run.limitHit };
  if (run.limitHit || run.outcome === "refused" || run.outcome === "error") return current;
  // An OOM kill is the memory limit at work even when the script survived it and exited 0.
  if (events.oomKilled) return { outcome: "limit", limitHit: "memory" };
  if (run.outcome === "ok") return current;
  if (run.outcome === "killed" && cpuLimitHit(run.signal, treeCpuMs(stats), cpuSeconds)) return { outcome: "limit", limitHit: "cpu" };
  if (events.pidsLimitHit) return { outcome: "limit", limitHit: "pids" };
  return current;
}

/** The tree's CPU (user + system) from the cgroup, null when it was not measured. */
export function treeCpuMs(stats: CgroupStats): number | null {
  if (stats.cpuUserMs === null && stats.cpuSystemMs === null) return null;
  return (stats.cpuUserMs ?? 0) + (stats.cpuSystemMs ?? 0);
}

/** Signals RLIMIT_CPU ends a process with: SIGXCPU at the soft limit, SIGKILL at the hard one. */
const CPU_LIMIT_SIGNALS: ReadonlySet<string> = new Set(["SIGXCPU", "SIGKILL"]);

/**
 * Slack between the tree's CPU as the cgroup counts it and the process CPU the kernel's
 * rlimit check saw (both scheduler time; the cgroup total can only be larger).
 */
export const CPU_EVIDENCE_TOLERANCE_MS = 50;

/**
 * The cpu verdict: the run died of a signal RLIMIT_CPU sends AND the run's tree used at
 * least the budget (RLIMIT_CPU is per process; a process past it means a tree past it).
 * The signal alone proves nothing (`exit 152`); the CPU measured outside the sandbox does.
 * Without a measurement (`treeCpuMs` null: no cgroup) there is no verdict.
 */
export function cpuLimitHit(signal: string | null, treeCpuMs: number | null, cpuSeconds: number): boolean {
  if (signal === null || !CPU_LIMIT_SIGNALS.has(signal) || treeCpuMs === null) return false;
  return treeCpuMs + CPU_EVIDENCE_TOLERANCE_MS >= cpuSeconds * 1000;
}
