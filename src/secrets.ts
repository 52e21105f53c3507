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

/**
 * Mask every string inside a JSON-like value (results, errors, reports). Iterative, with
 * an explicit work list: no nesting depth (a script's free-form result) can overflow the
 * stack. Shared references are copied once (and a cycle stays a cycle, not a hang).
 */
export function maskDeep<T>(value: T, secrets: readonly string[]): T {
  if (secrets.length === 0) return value;
  const root: Record<string, unknown> = {};
  const copies = new Map<object, unknown>();
  // [value to mask, where its masked copy goes, under which key]
  const work: [unknown, Record<PropertyKey, unknown>, PropertyKey][] = [[value, root, "value"]];
  const put = (target: Record<PropertyKey, unknown>, key: PropertyKey, v: unknown) =>
    // defineProperty, never assignment: a "__proto__" key stays data and never sets a prototype.
    Object.defineProperty(target, key, { value: v, writable: true, enumerable: true, configurable: true });
  for (let item = work.pop(); item !== undefined; item = work.pop()) {
    const [v, target, key] = item;
    if (typeof v === "string") put(target, key, maskText(v, secrets));
    else if (v === null || typeof v !== "object") put(target, key, v);
    else if (copies.has(v)) put(target, key, copies.get(v));
    else if (v instanceof Uint8Array) {
      const masked = maskBytes(v, secrets);
      copies.set(v, masked);
      put(target, key, masked);
    } else if (Array.isArray(v)) {
      const out: unknown[] = new Array(v.length);
      copies.set(v, out);
      put(target, key, out);
      for (let i = v.length - 1; i >= 0; i--) work.push([v[i], out as unknown as Record<PropertyKey, unknown>, i]);
    } else {
      // Keys too: a script can put a secret into a metric name or a free-JSON key.
      const out: Record<string, unknown> = {};
      copies.set(v, out);
      put(target, key, out);
      const entries = Object.entries(v);
      // Keys are placed now, in order; values are filled as the work list reaches them.
      // Two keys that mask alike: the later one wins, as with Object.fromEntries.
      for (const [k] of entries) put(out, maskText(k, secrets), undefined);
      for (let i = entries.length - 1; i >= 0; i--) work.push([entries[i]![1], out, maskText(entries[i]![0], secrets)]);
    }
  }
  return root.value as T;
}
