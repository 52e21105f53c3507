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
 */
import { dlopen, FFIType } from "bun:ffi";

const SYS_keyctl = 250n; // x86_64
const KEYCTL_JOIN_SESSION_KEYRING = 1n;
const KEYCTL_GET_KEYRING_ID = 0n;
const KEY_SPEC_SESSION_KEYRING = -3n;

let libc: { symbols: { syscall: (nr: bigint, a: bigint, b: bigint, c: bigint) => bigint } } | undefined;

function keyctl(op: bigint, a: bigint, b: bigint): bigint {
  libc ??= dlopen("libc.so.6", { syscall: { args: [FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64], returns: FFIType.i64 } }) as unknown as typeof libc;
  return libc!.symbols.syscall(SYS_keyctl, op, a, b);
}

/** Why this host cannot give runs a fresh session keyring, or null (checked once per process). */
let problem: string | null | undefined;
export function freshKeyringProblem(): string | null {
  if (problem !== undefined) return problem;
  if (process.arch !== "x64") return (problem = `no keyctl syscall number for ${process.arch} in cordon`);
  try {
    problem = keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0n) < 0n ? "keyctl(KEYCTL_GET_KEYRING_ID) failed: the kernel has no keyrings" : null;
  } catch (e) {
    problem = `libc cannot be loaded: ${e instanceof Error ? e.message : String(e)}`;
  }
  return problem;
}

/** Join a new anonymous session keyring on this thread (the one that spawns); its serial. Throws when the kernel refuses. */
export function joinFreshSessionKeyring(): bigint {
  const serial = keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0n, 0n);
  if (serial < 0n) throw new Error("keyctl(KEYCTL_JOIN_SESSION_KEYRING) failed");
  return serial;
}
