/**
 * Secret env values are replaced by **** in the script's data that cordon hands back:
 * stdout and stderr (bytes and text), the structured result's message, metrics and free
 * JSON (keys included), output file names and contents, and error messages that quote
 * the script's output; also the plan's argv. Never in cordon's own structure: RunResult
 * keys, outcomes, statuses and the sandbox report's keys and enum values stay as they are.
 *
 * - A secret must be at least MIN_SECRET_BYTES bytes (UTF-8): a shorter one is refused
 *   before anything runs (refuseWeakSecrets, JobInputError).
 * - Masking is on text: every occurrence of every secret (overlapping ones, and one
 *   secret inside another, included) is covered, and repeated until none is left.
 * - A number (metric, free JSON, an ESM return value) whose decimal text contains a
 *   secret, or equals a secret written as a decimal number, is withheld: removed from
 *   metrics (they must stay numbers), null elsewhere, and its JSON Pointer is listed in
 *   RunResult.masked.
 * - Output cut at a cap is masked across the cut (maskCapped): the reader keeps the
 *   longest secret's length − 1 bytes more than the cap, masks, then cuts.
 */
import { JobInputError } from "./errors.ts";
import type { RunResult } from "./result.ts";
import type { StructuredResult } from "./protocol/result-channel.ts";
import type { EffectiveSandboxReport } from "./sandbox/report.ts";

export const MASK = "****";
const MASK_BYTES = Buffer.from(MASK);

/** Shorter secret values are refused: they would mask ordinary text (and cordon's words) everywhere. */
export const MIN_SECRET_BYTES = 8;

const byteLength = (s: string) => Buffer.byteLength(s, "utf8");

/** Names of `secretEnv` variables whose (string) values are shorter than MIN_SECRET_BYTES; other shapes are left to the request's own checks. */
export function weakSecretNames(secretEnv: unknown): string[] {
  if (typeof secretEnv !== "object" || secretEnv === null) return [];
  return Object.entries(secretEnv)
    .filter(([, v]) => typeof v === "string" && byteLength(v) < MIN_SECRET_BYTES)
    .map(([k]) => k);
}

/** Why these secret values cannot be used, naming the variables and never the values. */
export function weakSecretMessage(names: readonly string[], field = "secretEnv"): string {
  const listed = names.map((n) => JSON.stringify(n.length > 64 ? `${n.slice(0, 64)}…` : n)).join(", ");
  return `${field}: the value of ${listed} is shorter than ${MIN_SECRET_BYTES} bytes; a secret that short would mask ordinary text everywhere and be guessed from what is left: use a longer secret, or pass the value in env if it is not secret`;
}

/** Throws JobInputError when a secret value is shorter than MIN_SECRET_BYTES (before anything is created or spawned). */
export function refuseWeakSecrets(secretEnv: unknown, field = "secretEnv"): void {
  const weak = weakSecretNames(secretEnv);
  if (weak.length > 0) throw new JobInputError(weakSecretMessage(weak, field));
}

/** The distinct non-empty values, longest first. */
export function secretValues(secretEnv: Record<string, string> | undefined): string[] {
  return [...new Set(Object.values(secretEnv ?? {}).filter((v) => typeof v === "string" && v.length > 0))].sort((a, b) => byteLength(b) - byteLength(a));
}

/** The longest secret in bytes (0 for none). */
export function longestSecretBytes(secrets: readonly string[]): number {
  return secrets.reduce((m, s) => Math.max(m, byteLength(s)), 0);
}

// ---------------------------------------------------------------------------------------
// Text and bytes
// ---------------------------------------------------------------------------------------

/**
 * Every occurrence of every needle, overlapping ones included, merged where they overlap
 * (touching ones stay apart: "SS" is two masks). Sorted [start, end) ranges.
 */
function coveredRanges<T extends string | Buffer>(hay: T, needles: readonly T[], extra: readonly [number, number][] = []): [number, number][] {
  const find = (n: T, from: number) => (typeof hay === "string" ? hay.indexOf(n as string, from) : (hay as Buffer).indexOf(n as Buffer, from));
  const found: [number, number][] = [...extra];
  for (const n of needles) {
    if (n.length === 0) continue;
    for (let at = find(n, 0); at !== -1; at = find(n, at + 1)) found.push([at, at + n.length]);
  }
  if (found.length === 0) return found;
  found.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const merged: [number, number][] = [[...found[0]!]];
  for (const [s, e] of found.slice(1)) {
    const last = merged.at(-1)!;
    if (s < last[1]) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  return merged;
}

/**
 * Keep going while a replacement can form a new occurrence (a secret that contains the
 * mask): each pass shrinks the text when every secret is longer than the mask, so this
 * ends; otherwise one pass.
 */
function passesFor(secrets: readonly { length: number }[]): number {
  return secrets.every((s) => s.length > MASK.length) ? Number.POSITIVE_INFINITY : 1;
}

export function maskText(text: string, secrets: readonly string[]): string {
  const needles = secrets.filter((s) => s.length > 0);
  if (needles.length === 0) return text;
  let out = text;
  for (let pass = 0, max = passesFor(needles); pass < max; pass++) {
    const ranges = coveredRanges(out, needles);
    if (ranges.length === 0) break;
    let next = "";
    let from = 0;
    for (const [s, e] of ranges) {
      next += out.slice(from, s) + MASK;
      from = e;
    }
    out = next + out.slice(from);
  }
  return out;
}

const asBuffer = (bytes: Uint8Array) => (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
const asBytes = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.length);

/** Replace the ranges of `buf[0, end)` by the mask; a range that starts before `end` is replaced whole. */
function replaceRanges(buf: Buffer, ranges: readonly [number, number][], end = buf.length): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  for (const [s, e] of ranges) {
    if (s >= end) break;
    parts.push(buf.subarray(from, s), MASK_BYTES);
    from = e;
  }
  if (from < end) parts.push(buf.subarray(from, end));
  return Buffer.concat(parts);
}

/** Byte-exact masking for output that may not be UTF-8 (a secret is matched by its UTF-8 bytes). */
export function maskBytes(bytes: Uint8Array, secrets: readonly string[]): Uint8Array {
  const needles = secrets.filter((s) => s.length > 0).map((s) => Buffer.from(s));
  if (needles.length === 0) return bytes;
  let out = asBuffer(bytes);
  let changed = false;
  for (let pass = 0, max = passesFor(needles); pass < max; pass++) {
    const ranges = coveredRanges(out, needles);
    if (ranges.length === 0) break;
    out = replaceRanges(out, ranges);
    changed = true;
  }
  return changed ? asBytes(out) : bytes;
}

/**
 * Output read under a cap, masked across the cut. `window` is what was kept: at most
 * cap + (longest secret − 1) bytes when `truncated`, so every secret that starts before
 * the cap is whole in it, and is masked whole even where it runs past the cap. A tail of
 * the window that starts before the cap and is the start of a secret (the tree was killed
 * before the rest arrived) is masked as if it were one. The result is at most `cap` bytes.
 */
export function maskCapped(window: Uint8Array, cap: number, truncated: boolean, secrets: readonly string[]): Uint8Array {
  const buf = asBuffer(window);
  if (!truncated) return maskBytes(buf.subarray(0, cap), secrets);
  const needles = secrets.filter((s) => s.length > 0).map((s) => Buffer.from(s));
  if (needles.length === 0) return asBytes(buf.subarray(0, cap));
  const w = buf.length;
  let tail = w;
  for (const n of needles) {
    // Candidate starts: where the needle's first byte is, less than its length from the end.
    for (let at = buf.indexOf(n[0]!, Math.max(0, w - n.length + 1)); at !== -1 && at < Math.min(cap, tail); at = buf.indexOf(n[0]!, at + 1)) {
      if (buf.subarray(at).equals(n.subarray(0, w - at))) {
        tail = at; // the earliest such tail of this needle
        break;
      }
    }
  }
  const ranges = coveredRanges(buf, needles, tail < w ? [[tail, w]] : []);
  let out = asBuffer(maskBytes(replaceRanges(buf, ranges, Math.min(w, cap)), secrets)); // again: a mask that formed a new occurrence
  if (out.length > cap) out = out.subarray(0, cap);
  return asBytes(out);
}

// ---------------------------------------------------------------------------------------
// Numbers and JSON-like values
// ---------------------------------------------------------------------------------------

const DECIMAL = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** Does this number show a secret: its decimal text contains one, or it is a secret written as a number ("0012345678", "4111111111111111111")? */
export function numberShowsSecret(n: number, secrets: readonly string[]): boolean {
  if (!Number.isFinite(n)) return false;
  const text = String(n);
  return secrets.some((s) => s.length > 0 && (text.includes(s) || (DECIMAL.test(s.trim()) && Number(s) === n)));
}

/** A JSON Pointer (RFC 6901) segment. */
export function pointerSegment(key: string | number): string {
  return String(key).replaceAll("~", "~0").replaceAll("/", "~1");
}

export interface MaskDeepOptions {
  /** Mask object keys (default true): a script can put a secret into a metric name or a free-JSON key. */
  keys?: boolean;
  /** Withhold numbers that show a secret, as null (default true). */
  numbers?: boolean;
  /** The value's JSON Pointer, prefixed to what is recorded in `masked`. */
  path?: string;
  /** Receives the JSON Pointer of every number withheld. */
  masked?: string[];
}

/**
 * Mask a JSON-like value from the script (free-form result JSON, a receipt): strings,
 * keys and numbers. Iterative, with an explicit work list: no nesting depth can overflow
 * the stack. Shared references are copied once (and a cycle stays a cycle, not a hang).
 * Not for cordon's own structures: use maskRunResult for a RunResult.
 */
export function maskDeep<T>(value: T, secrets: readonly string[], options: MaskDeepOptions = {}): T {
  if (secrets.length === 0) return value;
  const maskKeys = options.keys ?? true;
  const maskNumbers = options.numbers ?? true;
  const root: Record<string, unknown> = {};
  const copies = new Map<object, unknown>();
  // [value to mask, where its masked copy goes, under which key, its JSON Pointer]
  const work: [unknown, Record<PropertyKey, unknown>, PropertyKey, string][] = [[value, root, "value", options.path ?? ""]];
  const put = (target: Record<PropertyKey, unknown>, key: PropertyKey, v: unknown) =>
    // defineProperty, never assignment: a "__proto__" key stays data and never sets a prototype.
    Object.defineProperty(target, key, { value: v, writable: true, enumerable: true, configurable: true });
  for (let item = work.pop(); item !== undefined; item = work.pop()) {
    const [v, target, key, path] = item;
    if (typeof v === "string") put(target, key, maskText(v, secrets));
    else if (typeof v === "number" && maskNumbers && numberShowsSecret(v, secrets)) {
      put(target, key, null);
      options.masked?.push(path);
    } else if (v === null || typeof v !== "object") put(target, key, v);
    else if (copies.has(v)) put(target, key, copies.get(v));
    else if (v instanceof Uint8Array) {
      const masked = maskBytes(v, secrets);
      copies.set(v, masked);
      put(target, key, masked);
    } else if (Array.isArray(v)) {
      const out: unknown[] = new Array(v.length);
      copies.set(v, out);
      put(target, key, out);
      for (let i = v.length - 1; i >= 0; i--) work.push([v[i], out as unknown as Record<PropertyKey, unknown>, i, `${path}/${i}`]);
    } else {
      const out: Record<string, unknown> = {};
      copies.set(v, out);
      put(target, key, out);
      const entries = Object.entries(v).map(([k, x]) => [maskKeys ? maskText(k, secrets) : k, x] as const);
      // Keys are placed now, in order; values are filled as the work list reaches them.
      // Two keys that mask alike: the later one wins, as with Object.fromEntries.
      for (const [k] of entries) put(out, k, undefined);
      for (let i = entries.length - 1; i >= 0; i--) work.push([entries[i]![1], out, entries[i]![0], `${path}/${pointerSegment(entries[i]![0])}`]);
    }
  }
  return root.value as T;
}

/**
 * Metrics must stay finite numbers: a metric whose value shows a secret is removed (its
 * pointer recorded), a metric name is masked.
 */
export function maskMetrics(metrics: Record<string, number>, secrets: readonly string[], path: string, masked: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics)) {
    const name = maskText(k, secrets);
    if (typeof v === "number" && numberShowsSecret(v, secrets)) {
      masked.push(`${path}/${pointerSegment(name)}`);
      continue;
    }
    Object.defineProperty(out, name, { value: v, writable: true, enumerable: true, configurable: true });
  }
  return out;
}

/** The structured result: `status` is cordon's enum and stays; message, metrics and free JSON are the script's. */
function maskStructured(result: StructuredResult, secrets: readonly string[], masked: string[]): StructuredResult {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(result)) {
    if (k === "status") out.status = v;
    else if (k === "metrics" && typeof v === "object" && v !== null && !Array.isArray(v)) out.metrics = maskMetrics(v as Record<string, number>, secrets, "/result/metrics", masked);
    else {
      const name = k === "message" ? k : maskText(k, secrets);
      Object.defineProperty(out, name, { value: maskDeep(v, secrets, { path: `/result/${pointerSegment(name)}`, masked }), writable: true, enumerable: true, configurable: true });
    }
  }
  return out as StructuredResult;
}

/** The sandbox report is cordon's: only its free text (the command line, reasons, notes) is masked; keys, statuses and the requested policy stay. */
function maskReport(report: EffectiveSandboxReport, secrets: readonly string[]): EffectiveSandboxReport {
  const text = (s: string) => maskText(s, secrets);
  const layers = Object.fromEntries(
    Object.entries(report.layers).map(([name, layer]) => [
      name,
      {
        ...layer,
        controls: Object.fromEntries(
          Object.entries(layer.controls).map(([c, v]) => [
            c,
            { ...v, ...(v.reason !== undefined ? { reason: text(v.reason) } : {}), ...(v.fix !== undefined ? { fix: text(v.fix) } : {}), ...(v.fallback !== undefined ? { fallback: text(v.fallback) } : {}) },
          ]),
        ),
      },
    ]),
  ) as EffectiveSandboxReport["layers"];
  return {
    ...report,
    runner: { ...report.runner, readOnlyBinds: report.runner.readOnlyBinds.map(text), notes: report.runner.notes.map(text) },
    layers,
    downgrades: report.downgrades.map(text),
    argv: report.argv.map(text),
  };
}

/**
 * A RunResult with the script's data masked and cordon's structure untouched. Output
 * file sizes are the masked contents' sizes; numbers withheld are listed in `masked`.
 */
export function maskRunResult(run: RunResult, secrets: readonly string[]): RunResult {
  if (secrets.length === 0) return run;
  const text = (s: string) => maskText(s, secrets);
  const masked: string[] = [...(run.masked ?? [])];
  const files = run.files.map((f) => {
    const content = maskBytes(f.content, secrets);
    return { ...f, path: text(f.path), size: content.length, content };
  });
  const out: RunResult = {
    ...run,
    stdout: text(run.stdout),
    stderr: text(run.stderr),
    stdoutBytes: maskBytes(run.stdoutBytes, secrets),
    stderrBytes: maskBytes(run.stderrBytes, secrets),
    sandbox: run.sandbox ? maskReport(run.sandbox, secrets) : null,
    error: run.error ? { ...run.error, message: text(run.error.message), ...(run.error.reasons ? { reasons: run.error.reasons.map(text) } : {}) } : null,
    result: run.result ? maskStructured(run.result, secrets, masked) : null,
    resultError: run.resultError === null ? null : text(run.resultError),
    files,
    filesOmitted: run.filesOmitted.map((f) => ({ path: text(f.path), reason: text(f.reason) })),
    ...(run.receipt ? { receipt: maskDeep(run.receipt, secrets, { keys: false, numbers: false }) } : {}),
  };
  if (masked.length > 0) out.masked = [...new Set(masked)];
  return out;
}
