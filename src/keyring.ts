/**
 * Keyrings are not namespaced: a child inherits its parent's session keyring, so a script
 * under any sandbox could read and write the supervisor's (a login or a systemd service
 * with pam_keyinit has one) and leave keys for the next run. Before each spawn the
 * supervisor's thread joins a fresh anonymous session keyring, which the launcher and the
 * whole run inherit: nothing of the supervisor's, nor of an earlier run, is reachable
 * through @s. The syscall filter also denies keyctl/add_key/request_key; this holds where
 * the filter is off (privilege.seccomp: false, for debugging).
 *
 * The supervisor's own session keyring is given up at its first run: cordon keeps no key.
 *
 * The key helpers below (add, link, read, invalidate) serve readiness, which plants a
 * canary key where a run would find it if keyrings leaked, and the tests.
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";

// x86_64 syscall numbers.
const SYS_add_key = 248n;
const SYS_keyctl = 250n;
const KEYCTL_GET_KEYRING_ID = 0n;
const KEYCTL_JOIN_SESSION_KEYRING = 1n;
const KEYCTL_SETPERM = 5n;
const KEYCTL_LINK = 8n;
const KEYCTL_READ = 11n;
const KEYCTL_INVALIDATE = 21n;

/**
 * Special keyring ids as keyctl and add_key take them. The process keyring (`@p`) is the
 * supervisor's own: never inherited by a child (fork clears it), and not replaced when a
 * thread joins a new session keyring, so a key linked there outlives the session keyrings.
 */
export const KEY_SPEC = Object.freeze({ process: -2n, session: -3n, user: -4n } as const);
/** Every permission for possessor, owner, group and others (KEY_POS_ALL | KEY_USR_ALL | KEY_GRP_ALL | KEY_OTH_ALL). */
export const KEY_PERM_ALL = 0x3f3f3f3f;

type Libc = {
  symbols: {
    syscall: (nr: bigint, a: bigint, b: bigint, c: bigint, d: bigint, e: bigint) => bigint;
    __errno_location: () => number | null;
  };
};
let libc: Libc | undefined;

/** A raw syscall on this thread: its return value, or -errno. */
function syscall(nr: bigint, a = 0n, b = 0n, c = 0n, d = 0n, e = 0n): bigint {
  libc ??= dlopen("libc.so.6", {
    syscall: { args: [FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64], returns: FFIType.i64 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }) as unknown as Libc;
  const rc = libc.symbols.syscall(nr, a, b, c, d, e);
  if (rc !== -1n) return rc;
  const where = libc.symbols.__errno_location();
  return where ? -BigInt(read.i32(where, 0)) : -1n;
}

const keyctl = (op: bigint, a = 0n, b = 0n, c = 0n): bigint => syscall(SYS_keyctl, op, a, b, c);
const cString = (s: string) => Buffer.from(`${s}\0`);
const address = (buf: Buffer) => BigInt(ptr(buf));

function checked(rc: bigint, what: string): bigint {
  if (rc < 0n) throw new Error(`${what} failed (errno ${-rc})`);
  return rc;
}

/** Why this host cannot give runs a fresh session keyring, or null (checked once per process). */
let problem: string | null | undefined;
export function freshKeyringProblem(): string | null {
  if (problem !== undefined) return problem;
  if (process.arch !== "x64") return (problem = `no keyctl syscall number for ${process.arch} in cordon`);
  try {
    problem = keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC.session, 0n) < 0n ? "keyctl(KEYCTL_GET_KEYRING_ID) failed: the kernel has no keyrings" : null;
  } catch (e) {
    problem = `libc cannot be loaded: ${e instanceof Error ? e.message : String(e)}`;
  }
  return problem;
}

/** Join a new anonymous session keyring on this thread (the one that spawns); its serial. Throws when the kernel refuses. */
export function joinFreshSessionKeyring(): bigint {
  return checked(keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0n, 0n), "keyctl(KEYCTL_JOIN_SESSION_KEYRING)");
}

/** add_key("user", description, payload) into `keyring` (a KEY_SPEC id or a serial) on this thread; the key's serial. */
export function addUserKey(description: string, payload: string, keyring: bigint = KEY_SPEC.session): bigint {
  const [type, desc, data] = [cString("user"), cString(description), Buffer.from(payload)];
  return checked(syscall(SYS_add_key, address(type), address(desc), address(data), BigInt(data.length), keyring), `add_key(${description})`);
}

/** Set a key's permission mask (KEY_PERM_ALL: readable and writable by anyone who knows its serial). */
export function setKeyPermissions(serial: bigint, perm: number): void {
  checked(keyctl(KEYCTL_SETPERM, serial, BigInt(perm)), "keyctl(KEYCTL_SETPERM)");
}

/** Link a key into a keyring (KEY_SPEC.session: this thread's session keyring as it is now). */
export function linkKey(serial: bigint, keyring: bigint = KEY_SPEC.session): void {
  checked(keyctl(KEYCTL_LINK, serial, keyring), "keyctl(KEYCTL_LINK)");
}

/** A key's payload as this thread can read it, or null when the kernel refuses (gone, revoked, no permission). */
export function readKey(serial: bigint): string | null {
  const buf = Buffer.alloc(4096);
  const n = keyctl(KEYCTL_READ, serial, address(buf), BigInt(buf.length));
  return n < 0n ? null : buf.subarray(0, Math.min(Number(n), buf.length)).toString("latin1");
}

/** Invalidate a key: the kernel removes it from every keyring at once. Quiet when it is already gone. */
export function invalidateKey(serial: bigint): void {
  keyctl(KEYCTL_INVALIDATE, serial);
}
