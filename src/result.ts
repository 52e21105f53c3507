import { CordonError } from "./errors.ts";
import type { StructuredResult } from "./protocol/result-channel.ts";
import type { SignalSource } from "./sandbox/exit.ts";
import type { Receipt } from "./sandbox/receipt.ts";
import type { EffectiveSandboxReport } from "./sandbox/report.ts";

/** A file the script created or changed under scratch, returned with the run. */
export interface OutputFile {
  path: string;
  /** Bytes in `content` (after masking secrets, so it never tells a secret's length). */
  size: number;
  content: Uint8Array;
}

/** A file under scratch that was not returned, and why (over a cap, not a regular file, …). */
export interface OmittedFile {
  path: string;
  reason: string;
}

export type Outcome = "ok" | "exit-nonzero" | "timeout" | "killed" | "limit" | "refused" | "error";
/**
 * `fsize` is kept for compatibility and no longer produced: nothing the script cannot forge
 * says RLIMIT_FSIZE ended a run (the kernel's SIGXFSZ, `kill -XFSZ $$` and `exit 153` look the
 * same), so such an end is the script's own (`killed`, SIGXFSZ).
 */
export type LimitHit = "wall" | "cpu" | "memory" | "pids" | "fsize" | "output";

/** Tree-wide statistics of a run (from its cgroup); null where the host cannot measure them. */
export interface RunStats {
  wallMs: number;
  peakMemoryBytes: number | null;
  cpuUserMs: number | null;
  cpuSystemMs: number | null;
  peakProcesses: number | null;
  /** The run tried to exceed pids.max (fork or clone failed). */
  pidsLimitHit: boolean | null;
}

export interface RunResult {
  outcome: Outcome;
  limitHit: LimitHit | null;
  exitCode: number | null;
  /**
   * The signal the run died of, as far as cordon can tell: see `signalSource`. Never a limit
   * verdict by itself (that is `limitHit`, decided from the run cgroup's counters).
   */
  signal: string | null;
  /**
   * Where `signal` comes from: `wait-status`, the kernel's wait status of the process cordon
   * started (a fact); `exit-status`, the launcher's exit status 128+N (bwrap, nsjail), which
   * is how it reports a death by signal N and also exactly what the script's own
   * `exit 128+N` looks like: indistinguishable. Absent or null when there is no signal.
   */
  signalSource?: SignalSource | null;
  /** Decoded as UTF-8 (invalid bytes replaced); the exact bytes are in stdoutBytes. */
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
  stderrBytes: Uint8Array;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs: number;
  /** Stdin went past resources.maxStdinBytes: the script got the first maxStdinBytes bytes, then end of file. */
  stdinTruncated?: boolean;
  /** The caller cancelled the run (RunRequest.signal) and its tree was killed: outcome `killed`. */
  cancelled?: boolean;
  /** The effective-sandbox report; null when the run was rejected before planning. */
  sandbox: EffectiveSandboxReport | null;
  /** Set for `refused` and `error`. */
  error: { code: string; message: string; reasons?: readonly string[] } | null;
  /** The script's structured result (from the result channel, or its exit code Nagios-style). */
  result: StructuredResult | null;
  resultSource: "channel" | "exit-code" | null;
  /** Why a reported result was not taken (oversized, not JSON, invalid). */
  resultError: string | null;
  /** Files the script created or changed under scratch. */
  files: OutputFile[];
  /** What was found but not returned, and why (symlinks, FIFOs, caps). */
  filesOmitted: OmittedFile[];
  /** Tree-wide statistics; null when the run never started. */
  stats: RunStats | null;
  /** With `verify: true`: what the sandboxed process itself saw (null if it could not report). */
  receipt?: Receipt | null;
  /**
   * JSON Pointers (RFC 6901, from the RunResult's root, e.g. `/result/metrics/card`) of the
   * script's numbers withheld because their decimal text shows a secret: a metric is
   * removed (metrics stay numbers), any other number becomes null. Absent when none was.
   */
  masked?: string[];
}

/** The result fields of a run that produced no structured result and no files. */
export function noExtras(): Pick<RunResult, "result" | "resultSource" | "resultError" | "files" | "filesOmitted" | "stats"> {
  return { result: null, resultSource: null, resultError: null, files: [], filesOmitted: [], stats: null };
}

const EMPTY = new Uint8Array(0);

/** A RunResult for a run that never started: bad input (`error`) or a refusal (`refused`). */
export function resultFromError(err: unknown, sandbox: EffectiveSandboxReport | null = null): RunResult {
  const isRefusal = err instanceof CordonError && err.code === "sandbox-unavailable";
  const error =
    err instanceof CordonError
      ? { code: err.code, message: err.message, ...("reasons" in err ? { reasons: err.reasons as readonly string[] } : {}) }
      : { code: "internal", message: err instanceof Error ? err.message : String(err) };
  return {
    outcome: isRefusal ? "refused" : "error",
    limitHit: null,
    exitCode: null,
    signal: null,
    signalSource: null,
    stdout: "",
    stderr: "",
    stdoutBytes: EMPTY,
    stderrBytes: EMPTY,
    stdoutTruncated: false,
    stderrTruncated: false,
    durationMs: 0,
    sandbox,
    error,
    ...noExtras(),
  };
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function isValidUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** JSON form of a result: text streams, plus base64 of the exact bytes when they are not valid UTF-8. */
export function runResultToJson(result: RunResult): Record<string, unknown> {
  const { stdoutBytes, stderrBytes, files, ...rest } = result;
  return {
    ...rest,
    files: files.map(({ content, ...file }) => ({
      ...file,
      ...(isValidUtf8(content) ? { content: new TextDecoder().decode(content) } : { contentBase64: Buffer.from(content).toString("base64") }),
    })),
    ...(isValidUtf8(stdoutBytes) ? {} : { stdoutBase64: Buffer.from(stdoutBytes).toString("base64") }),
    ...(isValidUtf8(stderrBytes) ? {} : { stderrBase64: Buffer.from(stderrBytes).toString("base64") }),
  };
}
