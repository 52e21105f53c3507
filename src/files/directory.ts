/**
 * Host directories on either side of a run: `readInputDirectory` turns a directory into
 * input files (CLI `--files DIR`), `writeOutputFiles` writes returned files under a
 * directory (CLI `--out DIR`). Neither ever follows a symlink: an input tree may not
 * smuggle in a link to elsewhere on the host, and returned paths (chosen by untrusted
 * code) are never written through a link that happens to exist in the output directory.
 */
import { randomBytes } from "node:crypto";
import { closeSync, constants, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, opendirSync, readlinkSync, readSync, realpathSync, renameSync, statSync, unlinkSync, writeSync, type Dirent, type Stats } from "node:fs";
import { join } from "node:path";
import { JobInputError } from "../errors.ts";
import type { OmittedFile, OutputFile } from "./collect.ts";
import type { InputFile, InputLimits } from "./input.ts";

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
 */
export function readInputDirectory(dir: string, limits: InputLimits): InputFile[] {
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch (e) {
    throw new JobInputError(`cannot read input directory ${dir}: ${errCode(e)}`);
  }
  if (!st.isDirectory()) throw new JobInputError(`input directory ${dir} is ${kindOf(st)}, not a directory${st.isSymbolicLink() ? " (symlinks are not followed)" : ""}`);
  const files: InputFile[] = [];
  const budget = { bytes: 0 };
  walkInput(dir, "", limits, files, budget);
  return files;
}

function walkInput(dir: string, rel: string, limits: InputLimits, files: InputFile[], budget: { bytes: number }): void {
  const entries: Dirent[] = [];
  let handle;
  try {
    handle = opendirSync(dir);
  } catch (e) {
    throw new JobInputError(`cannot read input directory ${dir}: ${errCode(e)}`);
  }
  try {
    let entry: Dirent | null;
    while ((entry = handle.readSync()) !== null) entries.push(entry);
  } finally {
    handle.closeSync();
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)); // a stable order, whatever the filesystem's
  for (const entry of entries) {
    const path = join(dir, entry.name);
    const relPath = rel ? `${rel}/${entry.name}` : entry.name;
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch (e) {
      throw new JobInputError(`cannot read input file ${path}: ${errCode(e)}`);
    }
    if (st.isDirectory()) {
      walkInput(path, relPath, limits, files, budget);
      continue;
    }
    if (!st.isFile()) {
      throw new JobInputError(`input file ${path} is ${kindOf(st)}; only regular files and directories are staged${st.isSymbolicLink() ? " (symlinks are never followed)" : ""}`);
    }
    if (files.length + 1 > limits.maxCount) throw new JobInputError(`too many input files in ${dir}: more than the limit of ${limits.maxCount}`);
    if (budget.bytes + st.size > limits.maxTotalBytes) throw new JobInputError(`input files exceed ${limits.maxTotalBytes} bytes in total (at ${path}, ${st.size} bytes)`);
    const content = readRegular(path, st);
    budget.bytes += content.length;
    files.push({ path: relPath, content, ...((st.mode & 0o111) !== 0 ? { executable: true } : {}) });
  }
}

/** Read a file lstat found regular, refusing one swapped for a link or FIFO meanwhile; never more than its size then. */
function readRegular(path: string, before: Stats): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    throw new JobInputError(`cannot read input file ${path}: ${errCode(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.ino !== before.ino || st.dev !== before.dev) throw new JobInputError(`input file ${path} changed while it was read`);
    const buf = new Uint8Array(before.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    closeSync(fd);
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
 * written through a symlink: every existing parent must be a real directory (lstat),
 * missing ones are created, and the content goes to a fresh temporary file (O_EXCL,
 * checked through /proc/self/fd to be where it should be) that is then renamed over the
 * destination, so an existing symlink or hard link there is replaced, never written
 * through. A file whose destination is unsafe is skipped and listed, the rest written.
 * `dir` itself is the caller's choice and may be a symlink to a directory.
 */
export function writeOutputFiles(dir: string, files: readonly OutputFile[]): WrittenOutput {
  const checked = files.map((f) => ({ file: f, parts: checkOutputPath(f.path) }));
  let root: string;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    root = realpathSync(dir);
  } catch (e) {
    throw new JobInputError(`cannot use output directory ${dir}: ${errCode(e)}`);
  }
  if (!statSync(root).isDirectory()) throw new JobInputError(`output directory ${dir} is not a directory`);
  const written: string[] = [];
  const skipped: OmittedFile[] = [];
  for (const { file, parts } of checked) {
    const reason = writeOne(root, parts, file.content);
    if (reason === null) written.push(file.path);
    else skipped.push({ path: file.path, reason });
  }
  return { written, skipped };
}

/** Write one file; null when written, else why not. */
function writeOne(root: string, parts: string[], content: Uint8Array): string | null {
  let parent = root;
  for (const name of parts.slice(0, -1)) {
    parent = join(parent, name);
    const st = lstatSync(parent, { throwIfNoEntry: false });
    if (!st) {
      try {
        mkdirSync(parent, { mode: 0o755 });
      } catch (e) {
        return `cannot create directory ${parent}: ${errCode(e)}`;
      }
    } else if (!st.isDirectory()) {
      return `${parent} is ${kindOf(st)}${st.isSymbolicLink() ? " (never written through)" : ", not a directory"}`;
    }
  }
  const target = join(parent, parts[parts.length - 1]!);
  const existing = lstatSync(target, { throwIfNoEntry: false });
  if (existing?.isDirectory()) return `${target} is a directory`;
  const tmp = join(parent, `.cordon-out-${randomBytes(6).toString("hex")}`);
  let fd: number;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  } catch (e) {
    return `cannot create ${tmp}: ${errCode(e)}`;
  }
  let ok = false;
  try {
    // A parent swapped for a symlink between the checks above and the open would show here.
    if (readlinkSync(`/proc/self/fd/${fd}`) !== tmp) return `${parent} moved while writing (not written through)`;
    fchmodSync(fd, 0o644); // exactly 0644, whatever the umask
    let off = 0;
    while (off < content.length) off += writeSync(fd, content, off, content.length - off);
    ok = true;
  } catch (e) {
    return `cannot write ${target}: ${errCode(e)}`;
  } finally {
    closeSync(fd);
    if (!ok) tryUnlink(tmp);
  }
  try {
    renameSync(tmp, target); // replaces a symlink or hard link at target, never writes through it
  } catch (e) {
    tryUnlink(tmp);
    return `cannot write ${target}: ${errCode(e)}`;
  }
  return null;
}

function tryUnlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
