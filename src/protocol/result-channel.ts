/**
 * The structured result channel: separate from stdout, a script reports
 * { status, message?, metrics? } (plus free JSON) on a dedicated pipe. The supervisor
 * reads at most a capped number of bytes and validates with zod; anything oversized
 * or invalid becomes a `resultError`, never a crash.
 *
 * Result rules: an EMPTY channel is "no report" (shell and Python then map the exit
 * code). Any byte on the channel is a report; one that cannot be read (oversized, not
 * UTF-8, not JSON, duplicate keys, nested deeper than MAX_RESULT_DEPTH, failing the
 * schema, a `cordon-result` record the helper refused or that is malformed) is `crit`
 * with the reason in `resultError`: crit is the worst status (ok < warn < unknown <
 * crit), so an unreadable report can never read better than what the script meant.
 * The channel's fd (RESULT_FD) is part of the launcher protocol (src/protocol/index.ts).
 */
import { z } from "zod";
import { describeIssues, zodIssues } from "../errors.ts";

/**
 * A script's text quoted in a reason: whole and verbatim, or not at all. Masking happens
 * later, on the exact text: a cut excerpt could end inside a secret, and an escaped one
 * (JSON's \" or \n) would no longer match it. Whoever prints the reason escapes it.
 */
function quoted(text: string): string {
  return text.length <= 64 ? `"${text}"` : `(${text.length} characters, not shown)`;
}

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

/** Severity, worst last: an unreadable report takes the worst, so it can never improve a verdict. */
export const STATUS_SEVERITY: Readonly<Record<ResultStatus, number>> = { ok: 0, warn: 1, unknown: 2, crit: 3 };

/** JSON on the channel may nest at most this many levels (the outermost object or array is level 1). */
export const MAX_RESULT_DEPTH = 64;

/**
 * `cordon-result` writes a NUL-separated record, not JSON: no argument can hold a NUL,
 * so no message or metric value can end a field or forge one, and the supervisor is the
 * only encoder. `\0cordon-result/1\0` then fields, each a tag byte, text and a NUL:
 * `s` status, `m` message, `p` NAME=NUMBER, `i` why the helper refused its arguments;
 * `e` ends the record. Raw JSON cannot contain a NUL, so the mark is never inside it.
 */
export const RECORD_MARK = "\0cordon-result/1\0";
const MARK_BYTES = new TextEncoder().encode(RECORD_MARK);
/** The helper's metric value grammar, checked on the whole value. */
const METRIC_VALUE = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/;

function fromExitCode(exitCode: number | null, signal: string | null): StructuredResult {
  if (exitCode === null || signal) return { status: "unknown", message: `no structured result; the script was killed${signal ? ` by ${signal}` : ""}` };
  const status = NAGIOS[exitCode] ?? "unknown";
  return { status, message: `no structured result; exit code ${exitCode} maps to ${status}` };
}

/** A report that was made but cannot be read. */
class Unreadable extends Error {}

/**
 * Walk valid JSON text once, without recursion: refuse nesting past `maxDepth` and a key
 * repeated in one object (JSON.parse would silently keep the last one, so a repeated
 * "status" smuggled into a message or metric could override the real one).
 */
export function jsonStructureProblem(text: string, maxDepth = MAX_RESULT_DEPTH): string | null {
  const stack: (Set<string> | null)[] = []; // an object's keys so far; null for an array
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const keys = stack.at(-1);
      if (keys && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string; // escapes decoded: "st\u0061tus" is "status"
        if (keys.has(key)) return `duplicate key ${quoted(key)}`;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      if (stack.length >= maxDepth) return `nested deeper than ${maxDepth} levels`;
      stack.push(c === 0x7b ? new Set() : null);
      expectKey = c === 0x7b;
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c) {
      expectKey = stack.at(-1) instanceof Set;
    }
  }
  return null;
}

function parseChecked(text: string): unknown {
  const value: unknown = JSON.parse(text);
  const problem = jsonStructureProblem(text);
  if (problem) throw new Unreadable(`the structured result is invalid: ${problem}`);
  return value;
}

/** The whole text as one JSON document, else its last non-empty line (a script may report twice). */
function parsePayload(text: string): unknown {
  try {
    return parseChecked(text);
  } catch (e) {
    if (e instanceof Unreadable) throw e;
    const last = text.split("\n").filter((l) => l.trim() !== "").at(-1);
    if (last === undefined) throw new Unreadable("the result channel held only whitespace");
    try {
      return parseChecked(last);
    } catch (err) {
      if (err instanceof Unreadable) throw err;
      throw new Unreadable(`the structured result is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

const lossy = new TextDecoder("utf-8");

/**
 * A `cordon-result` record (bytes after the mark). The message and metric names are
 * decoded leniently (a byte that is not UTF-8 becomes U+FFFD: the reported status
 * stands); everything else is checked whole.
 */
function decodeRecord(bytes: Uint8Array): { record: Record<string, unknown>; rest: Uint8Array } {
  const fields: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const nul = bytes.indexOf(0, at);
    if (nul === -1) throw new Unreadable("the cordon-result record is incomplete (cut short, or written by something else)");
    const field = bytes.subarray(at, nul);
    at = nul + 1;
    if (field.length === 1 && field[0] === 0x65 /* e */) break;
    fields.push(field);
  }
  const record: Record<string, unknown> = {};
  const metrics: Record<string, number> = {};
  let status: string | null = null;
  for (const field of fields) {
    const tag = String.fromCharCode(field[0] ?? 0);
    const text = lossy.decode(field.subarray(1));
    if (tag === "i") throw new Unreadable(`cordon-result refused its arguments: ${text}`);
    if (tag === "s" && status === null) status = text;
    else if (tag === "m" && record.message === undefined) record.message = text;
    else if (tag === "p") {
      const eq = text.indexOf("=");
      const name = eq === -1 ? "" : text.slice(0, eq);
      const value = text.slice(eq + 1);
      if (!name) throw new Unreadable(`the cordon-result metric ${quoted(text)} is not NAME=NUMBER`);
      const num = METRIC_VALUE.test(value) ? Number(value) : Number.NaN;
      if (!Number.isFinite(num)) throw new Unreadable(`the cordon-result metric ${quoted(name)} is not a finite number: ${quoted(value)}`);
      if (Object.hasOwn(metrics, name)) throw new Unreadable(`the cordon-result metric ${quoted(name)} is given twice`);
      Object.defineProperty(metrics, name, { value: num, enumerable: true, writable: true, configurable: true });
    } else throw new Unreadable(`the cordon-result record has an unexpected field ${JSON.stringify(tag)}`);
  }
  if (status === null) throw new Unreadable("the cordon-result record has no status");
  record.status = status;
  if (Object.keys(metrics).length > 0) record.metrics = metrics;
  return { record, rest: bytes.subarray(at) };
}

const isBlank = (bytes: Uint8Array) => bytes.every((b) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09);

/** The last report on the channel: a `cordon-result` record, or JSON written after the last record (or with none). */
function lastReport(bytes: Uint8Array): unknown {
  const mark = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).lastIndexOf(MARK_BYTES);
  if (mark !== -1) {
    const { record, rest } = decodeRecord(bytes.subarray(mark + MARK_BYTES.length));
    if (isBlank(rest)) return record;
    bytes = rest; // JSON written after the helper's record is the later report
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    throw new Unreadable(`the structured result is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  return parsePayload(text);
}

export interface ChannelBytes {
  bytes: Uint8Array;
  /** More than the cap was written; the rest was discarded. */
  truncated: boolean;
}

/**
 * Turn what the channel received into a validated result, the exit-code fallback (only
 * when nothing at all was reported), or, for a report that cannot be read, `crit` with
 * the reason (see the result rules above). Never throws.
 */
export function decodeResult(
  channel: ChannelBytes,
  maxBytes: number,
  decoding: ResultDecoding,
  exit: { exitCode: number | null; signal: string | null },
): DecodedResult {
  const unreadable = (reason: string): DecodedResult => ({
    result: { status: "crit", message: `${reason} (a report that cannot be read is crit)` },
    resultSource: "channel",
    resultError: reason,
  });
  if (channel.truncated) return unreadable(`the structured result is larger than ${maxBytes} bytes; it was discarded`);
  if (channel.bytes.length === 0) {
    // A runner without a fallback (esm) that reported nothing ended before its harness could.
    return decoding.exitCodeFallback
      ? { result: fromExitCode(exit.exitCode, exit.signal), resultSource: "exit-code", resultError: null }
      : { result: null, resultSource: null, resultError: "no structured result was reported (the script ended before reporting one)" };
  }
  try {
    const payload = lastReport(channel.bytes);
    let normalized: unknown;
    try {
      normalized = decoding.normalize ? decoding.normalize(payload) : payload;
    } catch (e) {
      throw new Unreadable(`the structured result could not be read: ${e instanceof z.ZodError ? describeIssues(zodIssues(e)) : e instanceof Error ? e.message : String(e)}`);
    }
    const parsed = StructuredResultSchema.safeParse(normalized);
    if (!parsed.success) throw new Unreadable(`the structured result is invalid: ${describeIssues(zodIssues(parsed.error))}`);
    return { result: parsed.data, resultSource: "channel", resultError: null };
  } catch (e) {
    return unreadable(e instanceof Unreadable ? e.message : `the structured result could not be read: ${e instanceof Error ? e.message : String(e)}`);
  }
}
