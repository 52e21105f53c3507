import type { LimitHit, Outcome } from "../result.ts";
import type { DecodedExit } from "./exit.ts";

export interface RunEvents {
  timedOut: boolean;
  outputOverflow: boolean;
  /** The run's cgroup reported an OOM kill while it ran (the supervisor then killed the tree). */
  oomKilled: boolean;
}

/**
 * Why the run ended, from what the supervisor did and how the process exited. Supervisor
 * actions win. How the process exited is never a limit verdict by itself: under bwrap a
 * death by SIGXCPU is exit status 152, which a script's own `exit 152` (or `kill -XCPU $$`)
 * imitates exactly. Limits are decided from the run cgroup's evidence (refineWithCgroup).
 */
export function classifyOutcome(events: RunEvents, exit: DecodedExit): { outcome: Outcome; limitHit: LimitHit | null } {
  if (events.timedOut) return { outcome: "timeout", limitHit: "wall" };
  if (events.outputOverflow) return { outcome: "limit", limitHit: "output" };
  if (events.oomKilled) return { outcome: "limit", limitHit: "memory" };
  if (exit.signal) return { outcome: "killed", limitHit: null };
  if (exit.exitCode === 0) return { outcome: "ok", limitHit: null };
  return { outcome: "exit-nonzero", limitHit: null };
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
