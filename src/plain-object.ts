/**
 * A JSON-object-shaped value: an object that is neither null nor an array. The prototype
 * is not checked: callers use it on parsed JSON and on supervisor-built values, where
 * the question is "may I read its keys", not "was it built by a literal".
 */
export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
