import { constants } from "node:os";

/** Number → name, the first (canonical) name winning over later aliases (SIGABRT, not SIGIOT). */
const SIGNAL_NAMES: Record<number, string> = {};
for (const [name, num] of Object.entries(constants.signals)) SIGNAL_NAMES[num] ??= name;

export function signalName(num: number): string {
  return SIGNAL_NAMES[num] ?? `SIG${num}`;
}

export interface DecodedExit {
  exitCode: number | null;
  signal: string | null;
}

/**
 * bwrap (and sh) report a child killed by signal N as exit status 128+N:
 * map that back to the real signal.
 */
export function decodeExit(code: number | null, signalCode: string | null, encoding: "shell-128" | "native"): DecodedExit {
  if (signalCode) return { exitCode: null, signal: signalCode };
  if (code === null) return { exitCode: null, signal: null };
  if (encoding === "shell-128" && code > 128 && code <= 128 + 64) return { exitCode: code, signal: signalName(code - 128) };
  return { exitCode: code, signal: null };
}
