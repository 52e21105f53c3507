/**
 * Output files: after the run (every process of it is gone), walk scratch and return
 * what was created or changed. Symlinks are never followed, FIFOs and devices are
 * skipped, and count, bytes, depth and time are capped so a hostile tree (sparse 1 TiB
 * files, a million entries, deep nesting) cannot hang or flood the supervisor.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, opendirSync, readSync, type Dirent } from "node:fs";
import { join } from "node:path";
import { fingerprint } from "./stage.ts";

export interface OutputFile {
  path: string;
  size: number;
  content: Uint8Array;
}

export interface OmittedFile {
  path: string;
  reason: string;
}

export interface OutputLimits {
  maxCount: number;
  maxTotalBytes: number;
  maxDepth: number;
  collectMs: number;
}

export interface CollectedFiles {
  files: OutputFile[];
  omitted: OmittedFile[];
}

/** Caps the omitted list too: a million skipped FIFOs must not become a million-entry report. */
const MAX_OMITTED = 100;

class Collector {
  readonly files: OutputFile[] = [];
  readonly omitted: OmittedFile[] = [];
  private bytes = 0;
  private stopped: string | null = null;
  private readonly deadline: number;

  constructor(
    private readonly limits: OutputLimits,
    private readonly unchanged: ReadonlyMap<string, string>,
  ) {
    this.deadline = performance.now() + limits.collectMs;
  }

  omit(path: string, reason: string): void {
    if (this.omitted.length < MAX_OMITTED) this.omitted.push({ path, reason });
  }

  /** Record, once, why the walk stops; false from then on. */
  private stop(reason: string): false {
    if (!this.stopped) {
      this.stopped = reason;
      this.omit("*", reason);
    }
    return false;
  }

  private inTime(): boolean {
    if (this.stopped) return false;
    return performance.now() <= this.deadline || this.stop(`collection stopped after ${this.limits.collectMs} ms; the rest of scratch was not read`);
  }

  walk(dir: string, rel: string, depth: number): void {
    let handle;
    try {
      handle = opendirSync(dir);
    } catch (e) {
      this.omit(rel || ".", `cannot open directory: ${(e as NodeJS.ErrnoException).code}`);
      return;
    }
    try {
      let entry: Dirent | null;
      while (this.inTime() && (entry = handle.readSync()) !== null) {
        const relPath = rel ? `${rel}/${entry.name}` : entry.name;
        this.visit(join(dir, entry.name), relPath, depth);
      }
    } finally {
      handle.closeSync();
    }
  }

  private visit(path: string, rel: string, depth: number): void {
    let st;
    try {
      st = lstatSync(path, { throwIfNoEntry: false });
    } catch (e) {
      return this.omit(rel, `cannot stat: ${(e as NodeJS.ErrnoException).code}`); // e.g. a dir the script made unsearchable
    }
    if (!st) return;
    if (st.isSymbolicLink()) return this.omit(rel, "symlink (never followed)");
    if (st.isDirectory()) {
      if (depth >= this.limits.maxDepth) return this.omit(rel, `deeper than ${this.limits.maxDepth} levels`);
      return this.walk(path, rel, depth + 1);
    }
    if (!st.isFile()) return this.omit(rel, "not a regular file (FIFO, socket or device)");
    if (this.unchanged.has(rel) && this.unchanged.get(rel) === fingerprint(path)) return; // an input file the script left alone
    // Only now is this a file to return: the count cap counts returned files, not entries seen.
    if (this.files.length >= this.limits.maxCount) {
      this.stop(`more than ${this.limits.maxCount} output files; the rest were not read`);
      return;
    }
    if (st.size > this.limits.maxTotalBytes - this.bytes) {
      return this.omit(rel, `${st.size} bytes would exceed the ${this.limits.maxTotalBytes}-byte output cap`);
    }
    const content = readRegularFile(path, st.size);
    if (typeof content === "string") return this.omit(rel, content);
    this.bytes += content.length;
    this.files.push({ path: rel, size: content.length, content });
  }
}

/** Read at most `size` bytes without following a symlink or blocking on a FIFO swapped in. */
function readRegularFile(path: string, size: number): Uint8Array | string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    return `cannot open: ${(e as NodeJS.ErrnoException).code}`;
  }
  try {
    if (!fstatSync(fd).isFile()) return "not a regular file";
    const buf = new Uint8Array(size);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

/** Files created or changed under scratch; `unchanged` maps staged input paths to their fingerprints. */
export function collectOutputFiles(scratchDir: string, limits: OutputLimits, unchanged: ReadonlyMap<string, string> = new Map()): CollectedFiles {
  const collector = new Collector(limits, unchanged);
  collector.walk(scratchDir, "", 0);
  collector.files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files: collector.files, omitted: collector.omitted };
}
