/**
 * Output files: after the run, walk scratch and return what was created or changed.
 * The walk never trusts scratch's paths (the script owned it; see Collector.walk).
 * Symlinks are never followed, FIFOs and devices are skipped, and count, bytes, depth
 * and time are capped so a hostile tree (sparse 1 TiB files, a million entries, deep
 * nesting) cannot hang or flood the supervisor.
 */
import { closeSync, fstatSync, type Dir, type Dirent } from "node:fs";
import { openDirectory, openEntry, openPathNoFollow, readHeldFile, streamDirectory } from "./safe-open.ts";
import { maskBytes, maskText } from "../secrets.ts";
import { fingerprintOf } from "./stage.ts";
import type { OmittedFile, OutputFile } from "../result.ts";

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

  /**
   * Walk the open directory `dirfd`. Scratch belonged to the sandboxed script, which may
   * have left symlinks and, if something of it escaped, may still be swapping entries:
   * every step is relative to an open directory fd and decided by fstat on what was
   * opened without following a link (./safe-open.ts), never by a second look-up by path.
   */
  walk(dirfd: number, rel: string, depth: number): void {
    let handle: Dir;
    try {
      handle = streamDirectory(dirfd);
    } catch (e) {
      this.omit(rel || ".", `cannot open directory: ${errCode(e)}`);
      return;
    }
    try {
      let entry: Dirent | null;
      while (this.inTime() && (entry = handle.readSync()) !== null) {
        const relPath = rel ? `${rel}/${entry.name}` : entry.name;
        this.visit(dirfd, entry.name, relPath, depth);
      }
    } finally {
      handle.closeSync();
    }
  }

  private visit(dirfd: number, name: string, rel: string, depth: number): void {
    let fd: number;
    try {
      fd = openEntry(dirfd, name);
    } catch (e) {
      // Node's directory stream decodes names as UTF-8, a byte it cannot decode as U+FFFD: such
      // a name cannot be opened by what we were given. Listed as omitted, never silently lost.
      if (errCode(e) === "ENOENT" && name.includes("\uFFFD")) return this.omit(rel, "its name is not valid UTF-8: not returned");
      if (errCode(e) === "ENOENT") return; // gone meanwhile
      return this.omit(rel, `cannot stat: ${errCode(e)}`); // e.g. a dir the script made unsearchable
    }
    let subdir: number | null = null;
    try {
      subdir = this.visitOpened(fd, rel, depth);
    } finally {
      closeSync(fd);
    }
    if (subdir !== null) {
      try {
        this.walk(subdir, rel, depth + 1);
      } finally {
        closeSync(subdir);
      }
    }
  }

  /** `fd` is an O_PATH fd of the entry itself (a symlink's fd is the link's); a directory to walk is returned open. */
  private visitOpened(fd: number, rel: string, depth: number): number | null {
    const st = fstatSync(fd, { bigint: true });
    if (st.isSymbolicLink()) return this.skip(rel, "symlink (never followed)");
    if (st.isDirectory()) {
      if (depth >= this.limits.maxDepth) return this.skip(rel, `deeper than ${this.limits.maxDepth} levels`);
      try {
        return openDirectory(fd);
      } catch (e) {
        return this.skip(rel, `cannot open directory: ${errCode(e)}`);
      }
    }
    if (!st.isFile()) return this.skip(rel, "not a regular file (FIFO, socket or device)");
    if (this.unchanged.has(rel) && this.unchanged.get(rel) === fingerprintOf(st)) return null; // an input file the script left alone
    // Only now is this a file to return: the count cap counts returned files, not entries seen.
    if (this.files.length >= this.limits.maxCount) {
      this.stop(`more than ${this.limits.maxCount} output files; the rest were not read`);
      return null;
    }
    const size = Number(st.size);
    if (size > this.limits.maxTotalBytes - this.bytes) {
      return this.skip(rel, `${size} bytes would exceed the ${this.limits.maxTotalBytes}-byte output cap`);
    }
    const read = readHeldFile(fd, size);
    if ("openError" in read) return this.skip(rel, `cannot open: ${errCode(read.openError)}`);
    if ("notTheFile" in read) return this.skip(rel, "not a regular file");
    const { content } = read;
    this.bytes += content.length;
    this.files.push({ path: rel, size: content.length, content });
    return null;
  }

  private skip(rel: string, reason: string): null {
    this.omit(rel, reason);
    return null;
  }
}

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code ?? String(e);

/** Scratch itself, opened as a directory (the supervisor made it: its own path is not the script's). */
function openScratch(scratchDir: string): number {
  const at = openPathNoFollow(scratchDir);
  try {
    if (!fstatSync(at).isDirectory()) throw Object.assign(new Error("scratch is not a directory"), { code: "ENOTDIR" });
    return openDirectory(at);
  } finally {
    closeSync(at);
  }
}

/**
 * Files created or changed under scratch; `unchanged` maps staged input paths to their
 * fingerprints. With `secrets`, names and contents are masked (a file is read whole, never
 * cut, so no secret straddles a cut) and `size` is the masked size; the byte budget counts
 * what was read.
 */
export function collectOutputFiles(scratchDir: string, limits: OutputLimits, unchanged: ReadonlyMap<string, string> = new Map(), secrets: readonly string[] = []): CollectedFiles {
  const collector = new Collector(limits, unchanged);
  let root: number | null = null;
  try {
    root = openScratch(scratchDir);
  } catch (e) {
    collector.omit(".", `cannot open directory: ${errCode(e)}`);
  }
  if (root !== null) {
    try {
      collector.walk(root, "", 0);
    } finally {
      closeSync(root);
    }
  }
  collector.files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (secrets.length === 0) return { files: collector.files, omitted: collector.omitted };
  const files = collector.files.map((f) => {
    const content = maskBytes(f.content, secrets);
    return { path: maskText(f.path, secrets), size: content.length, content };
  });
  return { files, omitted: collector.omitted.map((o) => ({ path: maskText(o.path, secrets), reason: maskText(o.reason, secrets) })) };
}
