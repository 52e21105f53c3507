/**
 * Host processes, as the supervisor handles them: signal one that may be gone already,
 * ask /proc about one, run a short system helper. One helper each, shared by the core
 * and the providers' mechanism.
 */
import { readdirSync, readFileSync } from "node:fs";
import { SYSTEM_PATH } from "./protocol/index.ts";

/** Signal a process (or, with a negative pid, a process group) that may have exited already. */
export function killQuietly(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Is a process with this pid running (EPERM: alive, someone else's)? */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The process's parent pid from /proc, or null when it is gone or unreadable. */
export function parentOf(pid: number): number | null {
  try {
    const m = /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Does the process have any child right now (any of its threads)? `unknown` when /proc cannot tell. */
export function hasChildren(pid: number, unknown: boolean): boolean {
  try {
    return readdirSync(`/proc/${pid}/task`).some((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim() !== "");
  } catch {
    return unknown;
  }
}

export interface SystemCommandOptions {
  /** Written to the helper's stdin (then closed); none: stdin is /dev/null. */
  stdin?: string;
  /** An fd of this process passed to the helper as its fd 3 (e.g. a namespace to enter by path). */
  extraFd?: number | null;
}

export interface SystemCommandResult {
  ok: boolean;
  stdout: string;
  /** Trimmed: it goes into error messages. */
  stderr: string;
}

/**
 * Run a short system helper (nft, nsenter, ip) to completion without
 * blocking the event loop (other runs go on meanwhile). Its environment is SYSTEM_PATH
 * only: nothing of the supervisor's environment reaches a helper that may run as root.
 */
export async function runSystemCommand(argv: readonly string[], options: SystemCommandOptions = {}): Promise<SystemCommandResult> {
  const input = options.stdin !== undefined ? new TextEncoder().encode(options.stdin) : "ignore";
  const extra = options.extraFd ?? null;
  const p = Bun.spawn([...argv], { env: { PATH: SYSTEM_PATH }, stdio: extra !== null ? [input, "pipe", "pipe", extra] : [input, "pipe", "pipe"] });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { ok: code === 0, stdout, stderr: stderr.trim() };
}
