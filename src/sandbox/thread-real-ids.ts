/**
 * Borrow a real uid and gid on the calling thread for one synchronous call, with raw
 * setresuid(2)/setresgid(2) through bun:ffi's `syscall`: on Linux credentials are per
 * thread, and glibc's wrappers would change every thread of the process, the raw calls
 * change only this one.
 *
 * Why: prlimit(2) on a process of another uid needs CAP_SYS_RESOURCE, which a root
 * supervisor does not always hold (these VMs drop it from root's bounding set), or the
 * caller's REAL uid and gid equal to the target's real, effective and saved ones. With
 * only the real ids borrowed, the effective and saved ids stay 0, so the thread keeps its
 * capabilities and file access (fsuid follows the effective uid), and it can set the real
 * ids back. Nothing else runs on this thread meanwhile (the call is synchronous). During
 * that window a process of the borrowed uid could signal the supervisor: the only such
 * processes outside a pid namespace are the run's own bwrap launchers (the sandboxed ones
 * cannot see the supervisor's pid at all).
 */
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { errnoName } from "../errno-name.ts";

/** setresuid / setresgid numbers: they differ between the two architectures Bun ships for Linux. */
const SYSCALLS: Record<string, { setresuid: number; setresgid: number }> = {
  x64: { setresuid: 117, setresgid: 119 },
  arm64: { setresuid: 147, setresgid: 149 },
};
/** (uid_t)-1: leave that id as it is. */
const UNCHANGED = 0xffffffff;

type Libc = { syscall(nr: number, a: number, b: number, c: number): number; __errno_location(): Pointer | null };
let libc: Libc | null = null;
function lib(): Libc {
  libc ??= dlopen("libc.so.6", {
    syscall: { args: [FFIType.i64, FFIType.u32, FFIType.u32, FFIType.u32], returns: FFIType.i64 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols as unknown as Libc;
  return libc;
}

function calls(): { setresuid: number; setresgid: number } {
  const nr = SYSCALLS[process.arch];
  if (!nr) throw new Error(`borrowing a real uid is not supported on ${process.arch}`);
  return nr;
}

function setReal(nr: number, id: number, what: string): void {
  if (Number(lib().syscall(nr, id, UNCHANGED, UNCHANGED)) !== 0) {
    const at = lib().__errno_location();
    throw new Error(`${what}(${id}) on the supervisor's thread failed: ${errnoName(at ? read.i32(at, 0) : 0)}`);
  }
}

/**
 * Run `fn` with this thread's real uid and gid set to `ids`, then set them back to what
 * they were. A thread that cannot get its own real ids back must not go on serving runs:
 * the process aborts (it cannot happen with an effective uid of 0, which keeps CAP_SETUID).
 */
export function withRealIds<T>(ids: { uid: number; gid: number }, fn: () => T): T {
  const nr = calls();
  const [uid, gid] = [process.getuid!(), process.getgid!()];
  setReal(nr.setresgid, ids.gid, "setresgid");
  try {
    setReal(nr.setresuid, ids.uid, "setresuid");
  } catch (e) {
    restore(() => setReal(nr.setresgid, gid, "setresgid"));
    throw e;
  }
  try {
    return fn();
  } finally {
    restore(() => {
      setReal(nr.setresuid, uid, "setresuid");
      setReal(nr.setresgid, gid, "setresgid");
    });
  }
}

function restore(back: () => void): void {
  try {
    back();
  } catch (e) {
    console.error(`cordon: ${e instanceof Error ? e.message : String(e)}; aborting rather than serving runs with a borrowed identity`);
    process.abort();
  }
}
