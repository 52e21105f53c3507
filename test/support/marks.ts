/** Unique marks a test puts into scripts and command lines, and the `key=value` lines probes print back. */
import { randomBytes } from "node:crypto";

/** A unique token: safe in shell scripts, file names and grep patterns. */
export function token(prefix = "cordon"): string {
  return `${prefix}${randomBytes(8).toString("hex")}`;
}

/** A unique decimal number, usable as a `sleep` argument that marks the process's cmdline. */
export function sleepMarker(seconds = 30): string {
  return `${seconds}.${randomBytes(5).readUIntBE(0, 5).toString().padStart(13, "0")}`;
}

/** `key=value` lines of a probe's output. */
export function parseKv(output: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of output.split("\n")) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}
