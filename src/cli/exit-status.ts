import type { RunResult } from "../result.ts";

/**
 * CLI exit statuses. The script's own status passes through (128+N when a signal
 * killed it); cordon's own conditions use statuses a script rarely does. A script
 * can still exit with one of them itself: `--json`'s `outcome` tells the two apart
 * (`exit-nonzero` is the script's own status, `limit`/`timeout`/`refused`/`error` are cordon's).
 */
export const EXIT = {
  /** A resource limit stopped the run (memory, CPU, processes, file size, output). */
  limit: 123,
  /** The wall-clock limit stopped the run. */
  timeout: 124,
  refused: 125,
  invalidInput: 126,
  internal: 70,
  notReady: 1,
} as const;

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
      return result.exitCode ?? EXIT.internal;
  }
}
