/**
 * One job: open things inside a directory tree that someone else may be changing while
 * the supervisor (often root) walks it — the unprivileged owner of a `--files` input tree,
 * a sandboxed script that owned scratch (or a process escaped from it), an owner of the
 * `--out` directory.
 *
 * Why: checking a path (lstat) and then opening that same path again is racy. Between the
 * two, a directory can be swapped with a symlink (renameat2(RENAME_EXCHANGE) in a loop), and
 * the second look-up follows it: root then reads, or writes, wherever the link points.
 * O_NOFOLLOW does not help there, it only covers the LAST component of a path.
 *
 * How: every step is ONE name looked up relative to a directory fd we already hold, with
 * O_NOFOLLOW, first as an O_PATH fd (which opens nothing: no FIFO is woken, no device is
 * touched). What the entry is comes from fstat on that fd, never from a second look-up by
 * path. A directory or regular file is then reopened for reading through /proc/self/fd/N,
 * which is the very inode the O_PATH fd holds (the kernel does not re-walk a path). A
 * listing reads /proc/self/fd/N of the directory fd for the same reason.
 *
 * Node's fs has no openat, mkdirat, renameat or unlinkat: those come from libc through
 * bun:ffi. Errors are thrown as ErrnoException-like errors (`code` is "ENOENT", "ELOOP", …).
 */
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { closeSync, constants, fstatSync, opendirSync, openSync, readdirSync, readSync, type Dir } from "node:fs";
import { constants as osConstants } from "node:os";

// Generic Linux values (the same on x86_64 and arm64); Node's fs.constants has neither.
const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK, O_NOCTTY } = constants;

type Libc = {
  openat(dirfd: number, name: Uint8Array, flags: number, mode: number): number;
  mkdirat(dirfd: number, name: Uint8Array, mode: number): number;
  renameat(olddirfd: number, oldname: Uint8Array, newdirfd: number, newname: Uint8Array): number;
  unlinkat(dirfd: number, name: Uint8Array, flags: number): number;
  __errno_location(): Pointer | null;
};

let libc: Libc | null = null;
function lib(): Libc {
  libc ??= dlopen("libc.so.6", {
    openat: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.u32], returns: FFIType.i32 },
    mkdirat: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    renameat: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    unlinkat: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols as unknown as Libc;
  return libc;
}

/** errno → name; the first name wins where two share a number (EAGAIN, not EWOULDBLOCK). */
const ERRNO_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(osConstants.errno)) if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name);

/** The error of the libc call that just returned -1 (read at once: nothing runs in between). */
function fail(call: string, name: string): never {
  const at = lib().__errno_location();
  const errno = at ? read.i32(at, 0) : 0;
  const code = ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
  throw Object.assign(new Error(`${call} ${JSON.stringify(name)}: ${code}`), { code, errno: -errno, syscall: call });
}

/** One directory entry's name, as a NUL-terminated C string; never a path. */
function cName(name: string): Uint8Array {
  if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
    throw Object.assign(new Error(`not a single directory entry name: ${JSON.stringify(name)}`), { code: "EINVAL" });
  }
  return Buffer.from(`${name}\0`);
}

/**
 * An O_PATH fd of `name` inside the directory `dirfd`, not following a symlink: a
 * symlink yields an fd of the link itself, so fstat on it says "symlink".
 */
export function openEntry(dirfd: number, name: string): number {
  const fd = lib().openat(dirfd, cName(name), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
  return fd >= 0 ? fd : fail("openat", name);
}

/**
 * An O_PATH fd of a path the CALLER chose (a `--files` or `--out` directory): its parents
 * are resolved normally, its last component is not followed.
 */
export function openPathNoFollow(path: string): number {
  return openSync(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

/** Reopen an fd (O_PATH or not) as a readable directory: the same inode, no path walked again. */
export function openDirectory(fd: number): number {
  return openSync(`/proc/self/fd/${fd}`, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/** Reopen an fd fstat found to be a regular file for reading: the same inode, and never blocking. */
export function openForReading(fd: number): number {
  return openSync(`/proc/self/fd/${fd}`, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
}

/** What `readHeldFile` found: the bytes, or why it read none. */
export type HeldFileRead = { content: Uint8Array } | { openError: unknown } | { notTheFile: true };

/**
 * At most `size` bytes (fewer if the file is shorter by now) of the regular file the fd `at`
 * holds, read through `openForReading`. Nothing is read unless that read-only fd is a regular
 * file and, when `expected` is given, the very inode an earlier fstat found (same dev and ino).
 */
export function readHeldFile(at: number, size: number, expected?: { dev: number; ino: number }): HeldFileRead {
  let fd: number;
  try {
    fd = openForReading(at);
  } catch (e) {
    return { openError: e };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || (expected && (st.ino !== expected.ino || st.dev !== expected.dev))) return { notTheFile: true };
    const buf = new Uint8Array(size);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return { content: buf.subarray(0, off) };
  } finally {
    closeSync(fd);
  }
}

/** The names in a directory fd (its own entries, not those of whatever its path now names). */
export function listDirectory(dirfd: number): string[] {
  return readdirSync(`/proc/self/fd/${dirfd}`);
}

/** A streaming listing of a directory fd, for trees too large to list at once. */
export function streamDirectory(dirfd: number): Dir {
  return opendirSync(`/proc/self/fd/${dirfd}`);
}

/** mkdirat; false when `name` already exists (whatever it is: the caller opens and checks it). */
export function makeDirectoryAt(dirfd: number, name: string, mode: number): boolean {
  if (lib().mkdirat(dirfd, cName(name), mode) === 0) return true;
  try {
    fail("mkdirat", name);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
}

/** A new file `name` in `dirfd`, opened for writing: O_EXCL, so never an existing file or a link. */
export function createFileAt(dirfd: number, name: string, mode: number): number {
  const fd = lib().openat(dirfd, cName(name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  return fd >= 0 ? fd : fail("openat", name);
}

/** renameat within one directory fd: replaces a link at `to`, never writes through it. */
export function renameAt(dirfd: number, from: string, to: string): void {
  if (lib().renameat(dirfd, cName(from), dirfd, cName(to)) !== 0) fail("renameat", to);
}

/** unlinkat of a file; a missing one is not an error. */
export function unlinkAt(dirfd: number, name: string): void {
  if (lib().unlinkat(dirfd, cName(name), 0) === 0) return;
  try {
    fail("unlinkat", name);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}
