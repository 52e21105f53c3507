/** An answer other than a run's result: the status, a stable code, and what to tell the client. */
import type { FieldIssue } from "../errors.ts";

export type ServeErrorCode = "unauthorized" | "forbidden" | "bad-request" | "too-large" | "busy" | "shutting-down" | "not-found" | "method-not-allowed";

export class ServeError extends Error {
  constructor(
    readonly status: number,
    readonly code: ServeErrorCode | string,
    message: string,
    readonly extra: { fields?: readonly FieldIssue[]; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = "ServeError";
  }
}

export const tooLarge = (what: string, size: number, cap: number) => new ServeError(413, "too-large", `${what} is ${size} bytes, over the cap of ${cap} bytes`);
