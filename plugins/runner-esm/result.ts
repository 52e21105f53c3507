/**
 * What the harness writes, and how it becomes a structured result. Runs in the
 * supervisor: the harness's output is untrusted and is validated here.
 */
import { z } from "zod";
import { isPlainObject } from "../../src/api/plugin.ts";

const Envelope = z.discriminatedUnion("cordon", [
  z.object({ cordon: z.literal("return"), value: z.unknown() }),
  z.object({ cordon: z.literal("exception"), name: z.string(), message: z.string(), stack: z.string() }),
]);

/**
 * A returned value becomes a result: `{ status, ... }` as it is; checkstack's
 * `{ success, message, value }` maps success to ok/crit (a `success` that is not a boolean
 * throws: the report is unreadable, hence crit); anything else is `ok` with `value`.
 * An exception is `crit` with the error's message and stack.
 */
export function normalizeEsmPayload(payload: unknown): unknown {
  const envelope = Envelope.parse(payload);
  if (envelope.cordon === "exception") {
    const { name, message, stack } = envelope;
    return { status: "crit", message: `${name}: ${message}`, error: { name, message, stack } };
  }
  const value = envelope.value;
  if (isPlainObject(value) && "status" in value) return value;
  if (isPlainObject(value) && "success" in value) {
    // `success: "false"` must not read as ok: anything but a boolean is an unreadable report (crit).
    if (typeof value.success !== "boolean") throw new Error(`success must be a boolean, not ${value.success === null ? "null" : typeof value.success}`);
    const { success, ...rest } = value;
    return { ...rest, status: success ? "ok" : "crit", success };
  }
  return value === null ? { status: "ok" } : { status: "ok", value };
}
