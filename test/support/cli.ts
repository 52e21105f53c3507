/** The cordon CLI as users run it, and what the text it writes may not hold. */
import { join } from "node:path";

/** The cordon CLI as users run it: `bun bin/cordon.ts ARGS` in a real process. */
export const CORDON_CLI = join(import.meta.dir, "../../bin/cordon.ts");

export interface CliRun {
  stdout: string;
  stderr: string;
  code: number;
}

export async function runCli(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<CliRun> {
  const p = Bun.spawn([process.execPath, CORDON_CLI, ...args], {
    stdin: opts.stdin !== undefined ? new TextEncoder().encode(opts.stdin) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

/**
 * Characters that steer a terminal or reorder what it shows: C0 (newline aside), DEL, C1,
 * Unicode line/paragraph separators and bidi controls. Text cordon writes itself must hold none.
 */
export const TERMINAL_CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
