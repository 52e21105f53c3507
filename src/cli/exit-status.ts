import type { RunResult } from "../result.ts";
import { signalNumber } from "../sandbox/exit.ts";

/**
 * CLI exit statuses. cordon's own conditions have statuses of their own (below), and a
 * script's exit status never reads as one of them: the script's own status passes
 * through, except one that collides with cordon's (70, 123-126), which becomes 1 (the
 * script failed), its real value in `--json`'s `exitCode`. A signal death is 128+N.
 */
export const EXIT = {
  /** A resource limit stopped the run (memory, CPU, processes, output), decided from the run cgroup's evidence. */
  limit: 123,
  /** The wall-clock limit stopped the run. */
  timeout: 124,
  refused: 125,
  invalidInput: 126,
  internal: 70,
  notReady: 1,
} as const;

/** What a script's own exit status that collides with one of cordon's becomes. */
export const SCRIPT_RESERVED_STATUS = 1;

/** Statuses only cordon itself exits with. */
export const CORDON_STATUSES: ReadonlySet<number> = new Set([EXIT.limit, EXIT.timeout, EXIT.refused, EXIT.invalidInput, EXIT.internal]);

/** The status a script's own end gives the CLI: its exit status, 128+N for a signal N, never one of cordon's. */
export function scriptStatus(result: Pick<RunResult, "exitCode" | "signal">): number {
  let status: number | null = result.exitCode;
  if (status === null && result.signal !== null) {
    const n = signalNumber(result.signal);
    status = n === null ? null : 128 + n;
  }
  if (status === null) return EXIT.internal; // a run that ended with neither: cordon could not tell how
  return CORDON_STATUSES.has(status) ? SCRIPT_RESERVED_STATUS : status;
}

export function exitStatusOf(result: RunResult): number {
  switch (result.outcome) {
    case "refused":
      return EXIT.refused;
    case "error":
      return result.error?.code === "internal" || result.error?.code === "sandbox-failed" ? EXIT.internal : EXIT.invalidInput;
    case "timeout":
      return EXIT.timeout;
    case "limit":
      // Whatever the kill looked like (SIGKILL 137, SIGXCPU 152, none for the output cap): one status.
      return result.limitHit === "wall" ? EXIT.timeout : EXIT.limit;
    default:
      return scriptStatus(result);
  }
}
