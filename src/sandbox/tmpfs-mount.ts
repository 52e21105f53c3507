/**
 * The scratch quota's tmpfs, mounted and unmounted with mount(2) and umount2(2) from libc
 * through bun:ffi: no `mount`/`umount` helper process per run.
 *
 * Never through a planted link: the mount target is a directory the caller opened with
 * O_PATH|O_NOFOLLOW|O_DIRECTORY, and mount(2) gets `/proc/self/fd/N`, which the kernel
 * resolves to the very inode that fd holds (it does not walk the path again). The unmount
 * passes UMOUNT_NOFOLLOW, so a link in the last component is never followed either.
 */
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { closeSync, constants, lstatSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { CordonError } from "../errors.ts";
import { errnoName } from "../errno-name.ts";

// Generic Linux values (the same on x86_64 and arm64).
const MS_NOSUID = 2;
const MS_NODEV = 4;
const MNT_DETACH = 2;
const UMOUNT_NOFOLLOW = 8;
const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;

type Libc = {
  mount(source: Uint8Array, target: Uint8Array, fstype: Uint8Array, flags: number, data: Uint8Array): number;
  umount2(target: Uint8Array, flags: number): number;
  __errno_location(): Pointer | null;
};

let libc: Libc | null = null;
function lib(): Libc {
  libc ??= dlopen("libc.so.6", {
    mount: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
    umount2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols as unknown as Libc;
  return libc;
}

/** The errno name of the libc call that just returned -1 (read at once: nothing runs in between). */
function lastErrno(): string {
  const at = lib().__errno_location();
  const errno = at ? read.i32(at, 0) : 0;
  return errnoName(errno);
}

const cString = (s: string): Uint8Array => {
  if (s.includes("\0")) throw new Error(`a NUL in ${JSON.stringify(s)}`);
  return Buffer.from(`${s}\0`);
};

/** A mount or unmount the kernel refused: `errno` is its name ("EPERM", "EBUSY", …), `syscall` the call. */
export class MountError extends CordonError {
  constructor(
    readonly syscall: "open" | "mount" | "umount2",
    readonly errno: string,
    readonly path: string,
    message: string,
  ) {
    super("sandbox-failed", message);
  }
}

export interface TmpfsOptions {
  /** The size cap in bytes (tmpfs `size=`). */
  sizeBytes: number;
  /** The root directory's mode (tmpfs `mode=`). */
  mode: number;
  /** Owner of the root directory (tmpfs `uid=`/`gid=`); null: the caller's. */
  owner: { uid: number; gid: number } | null;
}

/** The tmpfs data string mount(2) gets: exactly what `mount -o size=…,mode=…,uid=…,gid=…` passed. */
export function tmpfsData(o: TmpfsOptions): string {
  const ids = o.owner ? `,uid=${o.owner.uid},gid=${o.owner.gid}` : "";
  return `size=${o.sizeBytes},mode=${o.mode.toString(8).padStart(4, "0")}${ids}`;
}

/**
 * Mount a size-capped, nosuid, nodev tmpfs named `source` on the directory `path`. The last
 * component is not followed (a symlink there is refused with ELOOP/ENOTDIR); throws a
 * MountError naming the errno.
 */
export function mountTmpfs(path: string, source: string, o: TmpfsOptions): void {
  let fd: number;
  try {
    fd = openSync(path, O_PATH | O_CLOEXEC | constants.O_NOFOLLOW | constants.O_DIRECTORY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "EIO";
    throw new MountError("open", code, path, `cannot mount the scratch tmpfs on ${path}: open: ${code}${code === "ENOTDIR" ? " (not a directory, or a symbolic link)" : ""}`);
  }
  try {
    const rc = lib().mount(cString(source), cString(`/proc/self/fd/${fd}`), cString("tmpfs"), MS_NOSUID | MS_NODEV, cString(tmpfsData(o)));
    if (rc !== 0) {
      const code = lastErrno();
      const why = code === "EPERM" ? " (mounting needs CAP_SYS_ADMIN: a root supervisor)" : "";
      throw new MountError("mount", code, path, `cannot mount the scratch tmpfs on ${path}: mount(2): ${code}${why}`);
    }
  } finally {
    closeSync(fd);
  }
}

/** Is `path` (not followed) the root of a mount? A mount's root has another device than its parent. */
function isMountPoint(path: string): boolean {
  try {
    return lstatSync(path).dev !== lstatSync(dirname(path)).dev;
  } catch {
    return false;
  }
}

/**
 * Unmount what is mounted on `path`, if anything: false when nothing was (EINVAL: not a
 * mount point; ENOENT: no such path). Busy (a process escaped the run still holds it):
 * detached now (MNT_DETACH), the kernel frees it once unused. Throws a MountError when
 * even the detach fails.
 */
export function unmountIfMounted(path: string): boolean {
  const target = cString(path);
  if (lib().umount2(target, UMOUNT_NOFOLLOW) === 0) return true;
  const first = lastErrno();
  if (first === "EINVAL" || first === "ENOENT") return false;
  // Without CAP_SYS_ADMIN the kernel says EPERM before it looks: nothing mounted is not an error.
  if (!isMountPoint(path)) return false;
  if (lib().umount2(target, UMOUNT_NOFOLLOW | MNT_DETACH) === 0) return true;
  const code = lastErrno();
  throw new MountError("umount2", code, path, `cannot unmount the scratch tmpfs on ${path}: umount2(2): ${first}, then with MNT_DETACH: ${code}`);
}
