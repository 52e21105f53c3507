import { closeSync, constants, fstatSync, openSync, readlinkSync, readSync } from "node:fs";
import { basename } from "node:path";
import { JobInputError } from "./errors.ts";
import { firstUnreachableAncestor, type SandboxUser } from "./host.ts";
import type { Job, Layout, StdinSource } from "./sandbox/spec.ts";

/** A script file the supervisor reads, or the script itself: text, or exact bytes (any encoding). */
export type ScriptSource = { file: string } | { source: string | Uint8Array; name?: string };

export interface ScriptRequest {
  script: ScriptSource;
  args: string[];
  /** Forwarded to the script as it arrives, up to the policy's resources.maxStdinBytes. */
  stdin?: StdinSource;
  /** Variables the caller sets for this run (on top of the policy's). */
  env?: Record<string, string>;
  /** Runner-specific options (e.g. the ESM form), validated by the runner. */
  options?: unknown;
}

export interface RunnerOptions {
  maxScriptBytes: number;
  /**
   * A host uid/gid that reaches what the sandbox's does (root supervisor: one id of the
   * identity pool, the same for every run, so runners may cache by it), or null when the
   * sandbox runs as the supervisor's own uid. Runners check their interpreter's paths are
   * reachable by it.
   */
  sandboxUser: SandboxUser | null;
  /** The permissions a script file is read with (null: the supervisor's own); see RunRequest.scriptFileAccess. */
  scriptReader: SandboxUser | null;
}

/** A runner plugin turns a script into a Job: interpreter argv, staged files, binds, env. */
export interface Runner {
  readonly name: string;
  readonly description: string;
  /** File extensions (with dot) this runner is picked for when none is named. */
  readonly extensions: readonly string[];
  prepare(request: ScriptRequest, layout: Layout, options: RunnerOptions): Job;
  /**
   * A warm start (src/pool/): the waiter a sandbox is started with before any run, or null
   * when this runner cannot wait (the pool then never holds its sandboxes).
   */
  warm?(layout: Layout, options: RunnerOptions): WarmStart | null;
}

/** A command and its whole environment, as the layers planned them for the sandbox. */
export interface PlannedCommand {
  command: readonly string[];
  env: Readonly<Record<string, string>>;
}

/**
 * How a runner's sandbox is started ahead of its run. The waiter is planned like a run (the
 * same layers, binds, job files and runner variables), and its command blocks reading
 * JOB_FD. At the run, the supervisor writes `handOver`'s bytes there and closes it: the
 * waiter becomes exactly the command and environment a cold start would have exec'd.
 */
export interface WarmStart {
  /** The waiter's job: its files must be the run's own (same path, same content), its argv waits on JOB_FD. */
  waiter: Job;
  /**
   * The bytes that make the waiter this run, or null when it cannot become exactly what a
   * cold start runs (e.g. a variable the interpreter reads only at start differs): the run
   * then starts cold. `waiter`: the waiter's own command and environment, as planned.
   */
  handOver(run: PlannedCommand, waiter: PlannedCommand): Uint8Array | null;
}

/** Read a script from a file or a string, refusing what is missing, not a file, or too large. */
/**
 * `reader`: the sandbox user (root supervisor). A script file is read only if that user
 * could read it too: the file ends up inside the sandbox anyway, and a stored check config
 * must not get the root supervisor to stage a file only root may read (`/etc/shadow`).
 */
export function loadScript(script: ScriptSource, maxBytes: number, reader: SandboxUser | null = null): { name: string; content: Uint8Array } {
  if ("source" in script) {
    const content = typeof script.source === "string" ? new TextEncoder().encode(script.source) : script.source;
    if (content.length > maxBytes) throw new JobInputError(`script is too large: ${content.length} bytes (limit ${maxBytes})`);
    return { name: script.name ?? "script", content };
  }
  return { name: basename(script.file), content: readScriptFile(script.file, maxBytes, reader) };
}

/**
 * The file is opened ONCE (non-blocking, no controlling tty) and judged by fstat on that fd,
 * then read at most maxBytes + 1 bytes from it. Why: the path can name anything the supervisor
 * (often root) may open — a collector config's `file` is a stored string. Checked by path and
 * read by path again, a FIFO or a symlink swapped in between was read instead; and a pseudo
 * file that stat calls regular with size 0 (`/proc/kmsg`) was read to its end with
 * readFileSync: it never ends, so one run request froze the supervisor's whole event loop.
 * Pseudo files (proc, sys) are refused: their size does not say what a read returns.
 */
function readScriptFile(file: string, maxBytes: number, reader: SandboxUser | null): Uint8Array {
  const refuse = (why: string) => new JobInputError(`script ${file} ${why}`);
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    throw new JobInputError(`cannot read script ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw refuse("is not a regular file");
    let real = "";
    try {
      real = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // no /proc: the size check below still holds
    }
    if (/^\/(proc|sys)(\/|$)/.test(real)) throw refuse(`is a kernel pseudo file (${real}), not a script`);
    if (reader) {
      const bit = st.uid === reader.uid ? 0o400 : st.gid === reader.gid ? 0o040 : 0o004;
      const blocked = (st.mode & bit) === 0 ? real || file : firstUnreachableAncestor(real || file, reader);
      if (blocked) throw refuse(`is not readable by the sandbox uid ${reader.uid} (${blocked}): script files are read with the sandbox's permissions; make it world-readable, or pass the source inline`);
    }
    if (st.size > maxBytes) throw refuse(`is too large: ${st.size} bytes (limit ${maxBytes})`);
    const buf = new Uint8Array(Math.min(maxBytes, st.size) + 1);
    let got = 0;
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, got, buf.length - got, null);
      } catch (e) {
        throw new JobInputError(`cannot read script ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
      if (n === 0) break;
      got += n;
      if (got === buf.length) break;
    }
    // A file on disk reads exactly its size; one that reads otherwise changed meanwhile or is no plain file.
    if (got !== st.size) throw refuse(`read ${got} bytes where its size says ${st.size} (it changed while read, or it is not a plain file)`);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}
