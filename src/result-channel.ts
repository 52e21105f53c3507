/**
 * The structured result channel: separate from stdout, a script reports
 * { status, message?, metrics? } (plus free JSON) on a dedicated pipe. The supervisor
 * reads at most a capped number of bytes and validates with zod; anything oversized
 * or invalid becomes a `resultError`, never a crash.
 */
import { z } from "zod";

/** The channel's file descriptor inside the sandbox (fd 3 is the launcher's info fd). */
export const RESULT_FD = 4;
/** Runners export the fd number under this name so helpers need no hard-coded 4. */
export const RESULT_FD_ENV = "CORDON_RESULT_FD";

export const RESULT_STATUSES = ["ok", "warn", "crit", "unknown"] as const;
export type ResultStatus = (typeof RESULT_STATUSES)[number];

export const StructuredResultSchema = z.looseObject({
  status: z.enum(RESULT_STATUSES),
  message: z.string().max(64 * 1024).optional(),
  metrics: z.record(z.string().min(1).max(128), z.number().finite()).optional(),
});
export type StructuredResult = z.output<typeof StructuredResultSchema>;

/** How a runner's channel payload becomes a result. */
export interface ResultDecoding {
  /** Without a structured result, map the exit code Nagios-style (0 ok, 1 warn, 2 crit, other unknown). */
  exitCodeFallback: boolean;
  /** Runner-specific unwrapping of the parsed JSON before validation (ESM: return value or exception). */
  normalize?: (payload: unknown) => unknown;
}

export interface DecodedResult {
  result: StructuredResult | null;
  /** Where `result` came from: the channel, or the exit code when the script reported nothing. */
  resultSource: "channel" | "exit-code" | null;
  resultError: string | null;
}

const NAGIOS: Record<number, ResultStatus> = { 0: "ok", 1: "warn", 2: "crit" };

function fromExitCode(exitCode: number | null, signal: string | null): StructuredResult {
  if (exitCode === null || signal) return { status: "unknown", message: `no structured result; the script was killed${signal ? ` by ${signal}` : ""}` };
  const status = NAGIOS[exitCode] ?? "unknown";
  return { status, message: `no structured result; exit code ${exitCode} maps to ${status}` };
}

/** The whole payload as one JSON document, else its last non-empty line (a script may report twice). */
function parsePayload(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const last = text.split("\n").filter((l) => l.trim() !== "").at(-1);
    if (last === undefined) throw new Error("the result channel is empty");
    return JSON.parse(last);
  }
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`).join("; ");
}

export interface ChannelBytes {
  bytes: Uint8Array;
  /** More than the cap was written; the rest was discarded. */
  truncated: boolean;
}

/** Turn what the channel received into a validated result, an error, or the exit-code fallback. */
export function decodeResult(
  channel: ChannelBytes,
  maxBytes: number,
  decoding: ResultDecoding,
  exit: { exitCode: number | null; signal: string | null },
): DecodedResult {
  const fallback = (resultError: string | null): DecodedResult =>
    decoding.exitCodeFallback
      ? { result: fromExitCode(exit.exitCode, exit.signal), resultSource: "exit-code", resultError }
      : { result: null, resultSource: null, resultError };
  if (channel.truncated) return fallback(`the structured result is larger than ${maxBytes} bytes; it was discarded`);
  if (channel.bytes.length === 0) {
    // A runner without a fallback (esm) that reported nothing ended before its harness could.
    return fallback(decoding.exitCodeFallback ? null : "no structured result was reported (the script ended before reporting one)");
  }

  let payload: unknown;
  try {
    payload = parsePayload(new TextDecoder("utf-8", { fatal: true }).decode(channel.bytes));
  } catch (e) {
    return fallback(`the structured result is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  let normalized: unknown;
  try {
    normalized = decoding.normalize ? decoding.normalize(payload) : payload;
  } catch (e) {
    return fallback(`the structured result could not be read: ${e instanceof Error ? e.message : String(e)}`);
  }
  const parsed = StructuredResultSchema.safeParse(normalized);
  if (!parsed.success) return fallback(`the structured result is invalid: ${describeIssues(parsed.error)}`);
  return { result: parsed.data, resultSource: "channel", resultError: null };
}
