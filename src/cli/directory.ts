/**
 * Host directories on either side of a run: `readInputDirectory` turns a directory into
 * input files (CLI `--files DIR`), `writeOutputFiles` writes returned files under a
 * directory (CLI `--out DIR`). Neither ever follows a symlink: an input tree may not
 * smuggle in a link to elsewhere on the host, and returned paths (chosen by untrusted
 * code) are never written through a link that happens to exist in the output directory.
 */
import { randomHex } from "../random.ts";
import { closeSync, constants, fchmodSync, fstatSync, mkdirSync, openSync, readlinkSync, writeSync, type Stats } from "node:fs";
import { join } from "node:path";
import { JobInputError } from "../errors.ts";
import type { OmittedFile, OutputFile } from "../result.ts";
import { MAX_PATH_BYTES, type InputFile, type InputLimits } from "../files/input.ts";
import { createFileAt, listDirectory, makeDirectoryAt, openDirectory, openEntry, openPathNoFollow, readHeldFile, renameAt, unlinkAt } from "../files/safe-open.ts";

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code ?? String(e);

/** What a host path is, in words, for error messages. */
function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return "a symlink";
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "a device";
  return st.isFile() ? "a regular file" : "not a regular file";
}

/**
 * Read a host directory as input files: relative paths ("sub/x.txt"), contents, and the
 * executable bit (any x bit set). Symlinks, FIFOs, sockets and devices anywhere in the
 * tree are refused (JobInputError naming the path), as is a `dir` that is not itself a
 * real directory. Stops as soon as the count or total-size cap would be exceeded,
 * before reading further contents. Empty directories are not represented.
 *
 * The tree may belong to someone less privileged than the supervisor, who may change it
 * during the walk: every step is relative to an open directory fd and decided by fstat
 * on what was opened (./safe-open.ts), so a subdirectory swapped for a symlink is either
 * the real directory (already open) or refused as a symlink, never followed.
 */
export function readInputDirectory(dir: string, limits: InputLimits): InputFile[] {
  let root: number;
  try {
    root = openPathNoFollow(dir);
  } catch (e) {
    throw new JobInputError(`cannot read input directory ${dir}: ${errCode(e)}`);
  }
  let dirfd: number;
  try {
    const st = fstatSync(root);
    if (!st.isDirectory()) throw new JobInputError(`input directory ${dir} is ${kindOf(st)}, not a directory${st.isSymbolicLink() ? " (symlinks are not followed)" : ""}`);
    dirfd = openInputDirectory(root, dir);
  } finally {
    closeSync(root);
  }
  const files: InputFile[] = [];
  try {
    walkInput(dirfd, dir, "", limits, files, { bytes: 0 });
  } finally {
    closeSync(dirfd);
  }
  return files;
}

/** The directory held by `at` (an O_PATH fd fstat found a directory), opened for listing. */
function openInputDirectory(at: number, dir: string): number {
  try {
    return openDirectory(at);
  } catch (e) {
    throw new JobInputError(`cannot read input directory ${dir}: ${errCode(e)}`);
  }
}

/**
 * Walk the open directory `dirfd` (`dir` is its path, for messages only). One fd per level
 * is held while descending; the path cap bounds the depth.
 */
function walkInput(dirfd: number, dir: string, rel: string, limits: InputLimits, files: InputFile[], budget: { bytes: number }): void {
  let names: string[];
  try {
    names = listDirectory(dirfd);
  } catch (e) {
    throw new JobInputError(`cannot read input directory ${dir}: ${errCode(e)}`);
  }
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)); // a stable order, whatever the filesystem's
  for (const name of names) {
    const path = join(dir, name);
    const relPath = rel ? `${rel}/${name}` : name;
    // A longer path would be refused when staged anyway; refusing it here also bounds the depth.
    if (Buffer.byteLength(relPath) > MAX_PATH_BYTES) throw new JobInputError(`input file path ${relPath.slice(0, 64)}… in ${dir} is longer than ${MAX_PATH_BYTES} bytes`);
    let fd: number;
    try {
      fd = openEntry(dirfd, name);
    } catch (e) {
      throw new JobInputError(`cannot read input file ${path}: ${errCode(e)}`);
    }
    let subdir: number | null = null;
    try {
      const st = fstatSync(fd);
      if (st.isDirectory()) {
        subdir = openInputDirectory(fd, path);
      } else if (!st.isFile()) {
        throw new JobInputError(`input file ${path} is ${kindOf(st)}; only regular files and directories are staged${st.isSymbolicLink() ? " (symlinks are never followed)" : ""}`);
      } else {
        if (files.length + 1 > limits.maxCount) throw new JobInputError(`too many input files in ${dir}: more than the limit of ${limits.maxCount}`);
        if (budget.bytes + st.size > limits.maxTotalBytes) throw new JobInputError(`input files exceed ${limits.maxTotalBytes} bytes in total (at ${path}, ${st.size} bytes)`);
        const read = readHeldFile(fd, st.size, st);
        if ("openError" in read) throw new JobInputError(`cannot read input file ${path}: ${errCode(read.openError)}`);
        if ("notTheFile" in read) throw new JobInputError(`input file ${path} changed while it was read`);
        const { content } = read;
        budget.bytes += content.length;
        files.push({ path: relPath, content, ...((st.mode & 0o111) !== 0 ? { executable: true } : {}) });
      }
    } finally {
      closeSync(fd);
    }
    if (subdir !== null) {
      try {
        walkInput(subdir, path, relPath, limits, files, budget);
      } finally {
        closeSync(subdir);
      }
    }
  }
}

export interface WrittenOutput {
  /** Relative paths written under the directory. */
  written: string[];
  /** Returned files not written, and why (an existing symlink or non-directory in the way). */
  skipped: OmittedFile[];
}

/** A returned path, re-checked: relative, no empty, "." or ".." components, no NUL. Throws JobInputError. */
function checkOutputPath(path: unknown): string[] {
  if (typeof path !== "string" || path.length === 0) throw new JobInputError(`output file path ${JSON.stringify(path)} is empty or not a string`);
  if (path.includes("\0")) throw new JobInputError(`output file path ${JSON.stringify(path)} contains a NUL byte`);
  if (path.startsWith("/")) throw new JobInputError(`output file path ${path} is absolute; refusing to write it`);
  const parts = path.split("/");
  for (const part of parts) {
    if (part === "..") throw new JobInputError(`output file path ${path} contains ..; refusing to write it`);
    if (part === "" || part === ".") throw new JobInputError(`output file path ${path} is not in normal form; refusing to write it`);
  }
  return parts;
}

/**
 * Write returned files under `dir` (created when missing), each 0644. Every path is
 * re-validated before anything is written (a bad one throws JobInputError). Nothing is
 * written through a symlink, even if someone with write access to `dir` swaps things
 * while it is written: every step is relative to an open directory fd (./safe-open.ts);
 * an existing parent must be a real directory (fstat on what was opened without following
 * a link), missing ones are created, and the content goes to a fresh temporary file
 * (O_EXCL) in that same open directory, then renamed over the destination there, so an
 * existing symlink or hard link at the destination is replaced, never written through.
 * A file whose destination is unsafe is skipped and listed, the rest written.
 * `dir` itself is the caller's choice and may be a symlink to a directory.
 */
export function writeOutputFiles(dir: string, files: readonly OutputFile[]): WrittenOutput {
  const checked = files.map((f) => ({ file: f, parts: checkOutputPath(f.path) }));
  let root: string;
  let rootfd: number;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    rootfd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (e) {
    throw new JobInputError(`cannot use output directory ${dir}: ${errCode(e)}`);
  }
  const written: string[] = [];
  const skipped: OmittedFile[] = [];
  try {
    root = readlinkSync(`/proc/self/fd/${rootfd}`); // where the directory really is, for messages
    for (const { file, parts } of checked) {
      const reason = writeOne(rootfd, root, parts, file.content);
      if (reason === null) written.push(file.path);
      else skipped.push({ path: file.path, reason });
    }
  } finally {
    closeSync(rootfd);
  }
  return { written, skipped };
}

/** Write one file under the directory fd `rootfd` (at `root`); null when written, else why not. */
function writeOne(rootfd: number, root: string, parts: string[], content: Uint8Array): string | null {
  const opened: number[] = [];
  try {
    let parentfd = rootfd;
    let parent = root;
    for (const name of parts.slice(0, -1)) {
      parent = join(parent, name);
      try {
        makeDirectoryAt(parentfd, name, 0o755);
      } catch (e) {
        return `cannot create directory ${parent}: ${errCode(e)}`;
      }
      let fd: number;
      try {
        fd = openEntry(parentfd, name);
      } catch (e) {
        return `cannot open directory ${parent}: ${errCode(e)}`;
      }
      opened.push(fd);
      const st = fstatSync(fd);
      if (!st.isDirectory()) return `${parent} is ${kindOf(st)}${st.isSymbolicLink() ? " (never written through)" : ", not a directory"}`;
      try {
        parentfd = openDirectory(fd);
      } catch (e) {
        return `cannot open directory ${parent}: ${errCode(e)}`;
      }
      opened.push(parentfd);
    }
    const name = parts[parts.length - 1]!;
    const target = join(parent, name);
    let existing: number | null = null;
    try {
      existing = openEntry(parentfd, name);
    } catch {
      // nothing there (or nothing we could open): the rename below decides
    }
    if (existing !== null) {
      const isDir = fstatSync(existing).isDirectory();
      closeSync(existing);
      if (isDir) return `${target} is a directory`;
    }
    const tmpName = `.cordon-out-${randomHex(6)}`;
    let fd: number;
    try {
      fd = createFileAt(parentfd, tmpName, 0o644);
    } catch (e) {
      return `cannot create ${join(parent, tmpName)}: ${errCode(e)}`;
    }
    let ok = false;
    try {
      fchmodSync(fd, 0o644); // exactly 0644, whatever the umask
      let off = 0;
      while (off < content.length) off += writeSync(fd, content, off, content.length - off);
      ok = true;
    } catch (e) {
      return `cannot write ${target}: ${errCode(e)}`;
    } finally {
      closeSync(fd);
      if (!ok) tryUnlinkAt(parentfd, tmpName);
    }
    try {
      renameAt(parentfd, tmpName, name); // replaces a symlink or hard link at target, never writes through it
    } catch (e) {
      tryUnlinkAt(parentfd, tmpName);
      return `cannot write ${target}: ${errCode(e)}`;
    }
    return null;
  } finally {
    for (const fd of opened) closeSync(fd);
  }
}

function tryUnlinkAt(dirfd: number, name: string): void {
  try {
    unlinkAt(dirfd, name);
  } catch {
    // nothing more to do: it is in a directory we checked, not elsewhere
  }
}
