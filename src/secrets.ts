/**
 * Secret env values are replaced by **** in everything cordon hands back: output,
 * results, errors and the plan's argv. Empty values are not secrets (they would match
 * everywhere); longer secrets are masked first so one that contains another is whole.
 */
export const MASK = "****";

export function secretValues(secretEnv: Record<string, string> | undefined): string[] {
  return [...new Set(Object.values(secretEnv ?? {}).filter((v) => v.length > 0))].sort((a, b) => b.length - a.length);
}

export function maskText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join(MASK);
  return out;
}

/** Byte-exact masking for output that may not be UTF-8. */
export function maskBytes(bytes: Uint8Array, secrets: readonly string[]): Uint8Array {
  let out = Buffer.from(bytes);
  for (const s of secrets) {
    const needle = Buffer.from(s);
    if (out.indexOf(needle) === -1) continue;
    const parts: Buffer[] = [];
    let from = 0;
    for (let at = out.indexOf(needle); at !== -1; at = out.indexOf(needle, from)) {
      parts.push(out.subarray(from, at), Buffer.from(MASK));
      from = at + needle.length;
    }
    parts.push(out.subarray(from));
    out = Buffer.concat(parts);
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Mask every string inside a JSON-like value (results, errors, reports). */
export function maskDeep<T>(value: T, secrets: readonly string[]): T {
  if (secrets.length === 0) return value;
  if (typeof value === "string") return maskText(value, secrets) as T;
  if (Array.isArray(value)) return value.map((v) => maskDeep(v, secrets)) as T;
  if (value instanceof Uint8Array) return maskBytes(value, secrets) as T;
  if (value && typeof value === "object") {
    // Keys too: a script can put a secret into a metric name or a free-JSON key.
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [maskText(k, secrets), maskDeep(v, secrets)])) as T;
  }
  return value;
}
