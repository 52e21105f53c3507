import type { LimitHit, Outcome } from "../result.ts";
import type { DecodedExit } from "./exit.ts";

export interface RunEvents {
  timedOut: boolean;
  outputOverflow: boolean;
  /** The run's cgroup reported an OOM kill while it ran (the supervisor then killed the tree). */
  oomKilled: boolean;
}

/** Signals the kernel sends when an rlimit is crossed. */
const LIMIT_SIGNALS: Record<string, LimitHit> = { SIGXCPU: "cpu", SIGXFSZ: "fsize" };

/** Why the run ended, from what the supervisor did and how the process exited. Supervisor actions win. */
export function classifyOutcome(events: RunEvents, exit: DecodedExit): { outcome: Outcome; limitHit: LimitHit | null } {
  if (events.timedOut) return { outcome: "timeout", limitHit: "wall" };
  if (events.outputOverflow) return { outcome: "limit", limitHit: "output" };
  if (events.oomKilled) return { outcome: "limit", limitHit: "memory" };
  if (exit.signal) {
    const limit = LIMIT_SIGNALS[exit.signal];
    return limit ? { outcome: "limit", limitHit: limit } : { outcome: "killed", limitHit: null };
  }
  if (exit.exitCode === 0) return { outcome: "ok", limitHit: null };
  return { outcome: "exit-nonzero", limitHit: null };
}
