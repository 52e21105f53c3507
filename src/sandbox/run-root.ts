/**
 * The run root: where per-run directories are made. Root (or the supervisor) writes
 * launcher arguments with secret values there, mounts scratch tmpfs there and removes
 * whole trees there, so no other local user may own, replace or link into any part of
 * it. Every directory on the way is checked; what cordon creates is created exclusively.
 */
import { chmodSync, closeSync, constants, fchmodSync, fchownSync, lstatSync, mkdirSync, openSync, realpathSync, writeFileSync, type Stats } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { CordonError } from "../errors.ts";

const supervisorUid = (): number => process.getuid?.() ?? -1;

/**
 * Where run directories live unless configured, most private first: `/run/cordon` for a
 * root supervisor, `$XDG_RUNTIME_DIR/cordon` otherwise, and `$TMPDIR/cordon-runs-<uid>`
 * only when neither is usable. A candidate that fails the checks is skipped; when the
 * last one fails too, it is returned anyway and the first run refuses with the reason.
 */
export function defaultRunRoot(env: Record<string, string | undefined> = process.env): string {
  const uid = supervisorUid();
  const candidates: string[] = [];
  if (uid === 0) candidates.push("/run/cordon");
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && isAbsolute(xdg)) candidates.push(join(xdg, "cordon"));
  for (const c of candidates) {
    try {
      walk(c, false, uid);
      return c;
    } catch {
      // not usable here: try the next one
    }
  }
  return join(tmpdir(), `cordon-runs-${uid}`);
}

/** Why a directory on the way lets another user in (the message says which and how). */
export class UnsafeDirectoryError extends Error {}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/**
 * Why `path` lets another user in, or null. Every directory must be owned by the supervisor
 * or root; one on the way may be writable by others only when sticky (like /tmp: others
 * cannot rename or remove what they do not own); the run root itself never.
 */
function unsafeDir(path: string, st: Stats, last: boolean, uid: number): string | null {
  if (!st.isDirectory()) return `${path} is not a directory`;
  if (st.uid !== 0 && st.uid !== uid) return `${path} is owned by uid ${st.uid}, not by ${uid === 0 ? "root" : `uid ${uid} or root`}`;
  const open = st.mode & 0o022;
  const sticky = (st.mode & 0o1000) !== 0;
  if (open && (last || !sticky)) {
    const who = st.mode & 0o002 ? "other users" : "its group";
    return `${path} is writable by ${who} (mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")})${last ? "" : " and not sticky"}`;
  }
  return null;
}

/**
 * Check every directory from / down to `path` (lstat: a symlink is followed only after the
 * directory holding it passed, and its target is checked the same way). Missing directories
 * are created (0711) when `create`, else the walk stops there. Returns the real path, or
 * null when it does not exist (and was not created).
 */
function walk(path: string, create: boolean, uid: number, lastIsRunRoot = true, depth = 0): string | null {
  if (!isAbsolute(path)) throw new UnsafeDirectoryError(`${path} is not an absolute path`);
  if (depth > 16) throw new UnsafeDirectoryError(`${path}: too many levels of symbolic links`);
  const parts = path.split("/").filter((p) => p.length > 0 && p !== ".");
  if (parts.includes("..")) throw new UnsafeDirectoryError(`${path} contains ".."`);
  const rootWhy = unsafeDir("/", lstatSync("/"), lastIsRunRoot && parts.length === 0, uid);
  if (rootWhy) throw new UnsafeDirectoryError(rootWhy);
  let real = "/";
  for (let i = 0; i < parts.length; i++) {
    const last = lastIsRunRoot && i === parts.length - 1;
    const next = join(real, parts[i]!);
    let st = lstatOrNull(next);
    if (!st) {
      if (!create) return null;
      try {
        mkdirSync(next, { mode: 0o711 });
        chmodSync(next, 0o711); // not narrowed by the umask: the sandbox uid must be able to pass
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      st = lstatSync(next);
    }
    if (st.isSymbolicLink()) {
      // The link sits in a directory checked above, so no one else can swap it; follow it and check where it leads.
      let target: string;
      try {
        target = realpathSync(next);
      } catch {
        throw new UnsafeDirectoryError(`${next} is a symbolic link to a missing directory`);
      }
      const resolved = walk(target, false, uid, last, depth + 1);
      if (resolved === null) throw new UnsafeDirectoryError(`${next} is a symbolic link to a missing directory`);
      real = resolved;
      continue;
    }
    const why = unsafeDir(next, st, last, uid);
    if (why) throw new UnsafeDirectoryError(why);
    real = next;
  }
  return real;
}

function refusal(runRoot: string, why: string): CordonError {
  const uid = supervisorUid();
  const owner = uid === 0 ? "root" : `uid ${uid}`;
  return new CordonError(
    "invalid-config",
    `the run root ${runRoot} is not safe to use: ${why}. Another local user could replace it or link into it and read or redirect what cordon writes there (launcher arguments with secret values, status files, scratch mounts). ` +
      `Fix: remove or correct ${runRoot} if it was not made by ${owner} (it may have been planted), or set runRoot in cordon's config to a directory on a path where every directory is owned by ${owner} or root and not writable by others (a sticky directory such as /tmp is fine on the way)` +
      (uid === 0 ? "; the default for root is /run/cordon" : "; the default is $XDG_RUNTIME_DIR/cordon when XDG_RUNTIME_DIR is set"),
  );
}

/** Check the run root (creating it, 0711, when missing). Throws a CordonError saying how to fix it when it is not safe. */
export function ensureRunRoot(runRoot: string): string {
  try {
    return walk(runRoot, true, supervisorUid())!;
  } catch (e) {
    if (e instanceof UnsafeDirectoryError) throw refusal(runRoot, e.message);
    throw e;
  }
}

/**
 * Any root-private directory held to the run root's rules (created 0711 when missing):
 * its real path, or UnsafeDirectoryError saying why not. The caller words the refusal.
 */
export function ensureSafeDirectory(path: string): string {
  return walk(path, true, supervisorUid())!;
}

/** The run root's real path when it exists and is safe, null when it does not exist; throws when it is not safe. */
export function checkRunRoot(runRoot: string): string | null {
  try {
    return walk(runRoot, false, supervisorUid());
  } catch (e) {
    if (e instanceof UnsafeDirectoryError) throw refusal(runRoot, e.message);
    throw e;
  }
}

const EXCLUSIVE_WRITE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Create a new file for writing: fails if anything (a file, a symlink) is already there. */
export function openExclusive(path: string, mode = 0o600): number {
  const fd = openSync(path, EXCLUSIVE_WRITE, mode);
  fchmodSync(fd, mode); // exactly `mode`, whatever the umask
  return fd;
}

/**
 * Create a new file with this content: fails if anything (a file, a symlink) is already there.
 * `owner`: handed to that uid/gid on the open fd before anything is written.
 */
export function writeExclusive(path: string, content: string | Uint8Array, mode = 0o600, owner?: { uid: number; gid: number }): void {
  const fd = openExclusive(path, mode);
  try {
    if (owner) fchownSync(fd, owner.uid, owner.gid);
    writeFileSync(fd, content);
  } finally {
    closeSync(fd);
  }
}
