/**
 * One job: a host-wide, exclusive claim on one identity, so two supervisors on the same
 * host (or two Cordon processes) never hand out the same uid at once.
 *
 * A claim is an flock(2) on a file named after the id in a root-private directory
 * (/run/cordon-identities, checked like the run root: no other user may own, replace or
 * link into any directory on the way). flock, not "a file holding the owner's pid": the
 * kernel drops the lock when the holder dies, however it dies, so a crashed supervisor's
 * claim is free again at once and can never be mistaken for a live one after its pid is
 * reused, and two supervisors reclaiming the same stale file cannot both win (a pid file
 * needs a check-then-replace that races). The file's content (the holder's pid) is only
 * for people reading the directory.
 *
 * The file is unlinked on release. A claimant therefore checks, once it holds the lock,
 * that the name still leads to the inode it locked: one that opened the file just before
 * its holder unlinked it would otherwise lock an orphan inode while a third party locks a
 * new file under the same name.
 */
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { closeSync, constants, fstatSync, ftruncateSync, lstatSync, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";

const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;
const EINTR = 4;
// Generic Linux value (x86_64 and arm64 alike): node:fs constants lack it. The claim must not
// leak into any launcher or sandbox (Bun closes unlisted fds at spawn; this says so to the kernel too).
const O_CLOEXEC = 0o2000000;
const OPEN_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | O_CLOEXEC;

type Libc = { flock(fd: number, op: number): number; __errno_location(): Pointer | null };
let libc: Libc | null = null;
function lib(): Libc {
  libc ??= dlopen("libc.so.6", {
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols as unknown as Libc;
  return libc;
}

/** flock(LOCK_EX | LOCK_NB): true when taken, false when another open file holds it. */
function tryFlock(fd: number): boolean {
  for (;;) {
    if (lib().flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
    const at = lib().__errno_location();
    const errno = at ? read.i32(at, 0) : 0;
    if (errno === EWOULDBLOCK) return false;
    if (errno !== EINTR) throw new Error(`flock: errno ${errno}`);
  }
}

/** A claim this process holds on one id. */
export interface IdentityClaim {
  readonly id: number;
  readonly path: string;
  /** Unlink the file, then drop the lock (closing the fd). Idempotent. */
  release(): void;
}

/** The claim file of `id` in `dir`. */
export const claimPath = (dir: string, id: number): string => join(dir, String(id));

/**
 * Claim `id` in `dir` (a directory already checked safe), or null when a live holder has
 * it. A file left by a holder that died is locked by nobody: it is reclaimed here.
 */
export function tryClaim(dir: string, id: number): IdentityClaim | null {
  const path = claimPath(dir, id);
  // A few rounds at most: each retry means another claimant unlinked or replaced the file meanwhile.
  for (let attempt = 0; attempt < 8; attempt++) {
    const fd = openSync(path, OPEN_FLAGS, 0o600);
    let keep = false;
    try {
      if (!tryFlock(fd)) return null;
      const held = fstatSync(fd);
      let named;
      try {
        named = lstatSync(path);
      } catch {
        continue; // unlinked by its releasing holder after we opened it: try the name again
      }
      if (named.ino !== held.ino || named.dev !== held.dev) continue;
      if (!held.isFile()) throw new Error(`${path} is not a regular file`);
      ftruncateSync(fd, 0);
      writeSync(fd, `pid ${process.pid}\n`, 0);
      keep = true;
      let released = false;
      return {
        id,
        path,
        release() {
          if (released) return;
          released = true;
          try {
            unlinkSync(path); // while still locked: no one can hold this inode under the name
          } finally {
            closeSync(fd);
          }
        },
      };
    } finally {
      if (!keep) closeSync(fd);
    }
  }
  return null; // contended without end: treat as held
}
