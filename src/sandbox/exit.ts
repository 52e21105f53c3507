import { constants } from "node:os";

/** Number → name, the first (canonical) name winning over later aliases (SIGABRT, not SIGIOT). */
const SIGNAL_NAMES: Record<number, string> = {};
for (const [name, num] of Object.entries(constants.signals)) SIGNAL_NAMES[num] ??= name;

export function signalName(num: number): string {
  return SIGNAL_NAMES[num] ?? `SIG${num}`;
}

/**
 * Where `signal` comes from. `wait-status`: the kernel's wait status of the process cordon
 * started said it died of that signal (a fact). `exit-status`: the launcher exited with
 * 128+N (bwrap, nsjail's init), which is how it reports a death by signal N, and exactly
 * what the script's own `exit 128+N` looks like: the two cannot be told apart, so the
 * signal is a reading of the status, never evidence (of a limit or anything else).
 */
export type SignalSource = "wait-status" | "exit-status";

export interface DecodedExit {
  exitCode: number | null;
  signal: string | null;
  /** null when there is no signal. */
  signalSource: SignalSource | null;
}

/**
 * bwrap (and sh) report a child killed by signal N as exit status 128+N: read that back as
 * signal N, marked `exit-status` (a plain `exit 128+N` says the same).
 */
export function decodeExit(code: number | null, signalCode: string | null, encoding: "shell-128" | "native"): DecodedExit {
  if (signalCode) return { exitCode: null, signal: signalCode, signalSource: "wait-status" };
  if (code === null) return { exitCode: null, signal: null, signalSource: null };
  if (encoding === "shell-128" && code > 128 && code <= 128 + 64) return { exitCode: code, signal: signalName(code - 128), signalSource: "exit-status" };
  return { exitCode: code, signal: null, signalSource: null };
}

/** The signal's number, for a name this host knows (SIGKILL → 9). */
export function signalNumber(name: string): number | null {
  const n = (constants.signals as Record<string, number>)[name];
  if (n !== undefined) return n;
  const m = /^SIG(\d+)$/.exec(name);
  return m ? Number(m[1]) : null;
}
