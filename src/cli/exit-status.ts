import type { RunResult } from "../result.ts";

/**
 * CLI exit statuses. The script's own status passes through (128+N when a signal
 * killed it); cordon's own conditions use statuses a script rarely does.
 */
export const EXIT = {
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
    default:
      return result.exitCode ?? EXIT.internal;
  }
}
