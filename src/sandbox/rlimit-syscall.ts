/**
 * prlimit(2) from libc through bun:ffi: the supervisor sets another process's rlimits
 * itself, with no `prlimit` helper process per run.
 *
 * The kernel lets the caller do this when its REAL uid and gid are the target's real,
 * effective and saved ones (a non-root supervisor and its own bwrap), or when it holds
 * CAP_SYS_RESOURCE over the target's user namespace. A root supervisor may lack that
 * capability (these VMs drop it from root's bounding set), so for a target running as
 * another host uid it borrows that uid and gid as its thread's real ids for the call
 * (thread-real-ids.ts), which works whether or not it holds the capability. Raising a hard
 * limit needs CAP_SYS_RESOURCE in the initial namespace, which a sandboxed process never
 * has: what is set here cannot be undone from inside.
 */
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { CordonError } from "../errors.ts";
import { errnoName } from "../errno-name.ts";
import type { RlimitName } from "./spec.ts";
import { withRealIds } from "./thread-real-ids.ts";

/** RLIMIT_* numbers of the generic Linux ABI (the same on x86_64 and arm64). */
const RESOURCE: Record<RlimitName, number> = { cpu: 0, fsize: 1, core: 4, nproc: 6, nofile: 7, as: 9 };

type Libc = {
  prlimit(pid: number, resource: number, newLimit: BigUint64Array, oldLimit: BigUint64Array | null): number;
  __errno_location(): Pointer | null;
};

let libc: Libc | null = null;
function lib(): Libc {
  // glibc's prlimit is prlimit64 on 64-bit: struct rlimit is two 64-bit rlim_t (soft, hard).
  libc ??= dlopen("libc.so.6", {
    prlimit: { args: [FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols as unknown as Libc;
  return libc;
}

/** One limit as the kernel holds it: the soft value the kernel enforces and the hard ceiling for raising it. */
export interface RlimitPair {
  soft: number;
  hard: number;
}

/** A limit the kernel refused to set: `errno` is its name (EPERM, ESRCH, EINVAL). */
export class RlimitError extends CordonError {
  constructor(
    readonly pid: number,
    readonly resource: RlimitName,
    readonly errno: string,
  ) {
    const why = errno === "ESRCH" ? " (the process is gone)" : errno === "EPERM" ? " (not allowed: another owner, or a value above the kernel's ceiling such as fs.nr_open)" : "";
    super("sandbox-failed", `prlimit(2) of RLIMIT_${resource.toUpperCase()} on pid ${pid} failed: ${errno}${why}`);
  }
}

/**
 * Set every given limit on `pid`, in order; throws an RlimitError at the first the kernel
 * refuses (the ones before it stay set: the caller kills the process, it never runs on).
 * `owner`: the host uid and gid the target runs as, when a root supervisor set them.
 */
export function setRlimits(pid: number, limits: Partial<Record<RlimitName, RlimitPair>>, owner: { uid: number; gid: number } | null = null): void {
  const borrow = owner !== null && process.geteuid?.() === 0 && (owner.uid !== process.getuid?.() || owner.gid !== process.getgid?.());
  if (borrow) withRealIds(owner, () => setEach(pid, limits));
  else setEach(pid, limits);
}

function setEach(pid: number, limits: Partial<Record<RlimitName, RlimitPair>>): void {
  const value = new BigUint64Array(2);
  for (const [name, pair] of Object.entries(limits) as [RlimitName, RlimitPair][]) {
    value[0] = BigInt(pair.soft);
    value[1] = BigInt(pair.hard);
    if (lib().prlimit(pid, RESOURCE[name], value, null) !== 0) {
      const at = lib().__errno_location();
      throw new RlimitError(pid, name, errnoName(at ? read.i32(at, 0) : 0));
    }
  }
}
