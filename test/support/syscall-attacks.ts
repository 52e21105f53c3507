/**
 * Attacks on the syscall filter and the keyrings, shared by the suites that make them
 * (syscall-filter, the nsjail filter comparison): the one Python attack list readiness runs
 * too (src/readiness/syscall-attacks.py), with libseccomp's syscall numbers when asked, keys
 * planted where a leaking run would find them, and what the supervisor itself sees afterwards.
 */
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { type RunRequest, type RunResult } from "../../src/api/index.ts";
import { addUserKey, invalidateKey, joinFreshSessionKeyring, KEY_PERM_ALL, KEY_SPEC, linkKey, readKey, setKeyPermissions } from "../../src/keyring.ts";
import { SYSCALL_ATTACKS, SYSCALL_ATTACKS_FILE } from "../../src/readiness/probes.ts";
import { syscallNumber } from "../../plugins/mechanism/seccomp/libseccomp.ts";
import { parseKv } from "./marks.ts";

const ATTACKS_SOURCE = new TextDecoder().decode(SYSCALL_ATTACKS);
const ATTACKS_PATH = fileURLToPath(new URL(`../../src/readiness/${SYSCALL_ATTACKS_FILE}`, import.meta.url));

/**
 * A run request (python runner) making the named attacks, e.g. ["io_uring", "key_serial=123"];
 * each prints NAME=RESULT. `numbers` (attackNumbers()) go first, as --numbers.
 */
export function syscallAttackRequest(attacks: readonly string[], numbers?: Record<string, number>): Pick<RunRequest, "runner" | "script" | "args"> {
  const args = numbers ? [`--numbers=${JSON.stringify(numbers)}`, ...attacks] : [...attacks];
  return { runner: "python", script: { source: ATTACKS_SOURCE, name: SYSCALL_ATTACKS_FILE }, args };
}

/** Every syscall the attack script calls by name, with its built-in (x86_64) number or null: the script's own `--syscalls` list, run on the host. */
export function attackSyscalls(): Record<string, number | null> {
  const p = Bun.spawnSync(["python3", "-I", "-B", ATTACKS_PATH, "--syscalls"]);
  if (!p.success) throw new Error(`${SYSCALL_ATTACKS_FILE} --syscalls failed: ${p.stderr.toString()}`);
  return Object.fromEntries(Object.entries(parseKv(p.stdout.toString())).map(([name, nr]) => [name, nr === "" ? null : Number(nr)]));
}

/** libseccomp's number on this host for every syscall the attack script calls by name (those this architecture has). */
export function attackNumbers(): Record<string, number> {
  return Object.fromEntries(Object.keys(attackSyscalls()).flatMap((name) => {
    const nr = syscallNumber(name);
    return nr === null ? [] : [[name, nr] as const];
  }));
}

/**
 * The attacks that compare two providers' filters call by call (test/provider-nsjail.test.ts):
 * every rule of the policy hit once, argument boundaries (high bits in 32-bit arguments, the
 * one netlink protocol allowed), calls that change or end their caller (in a child), and what
 * must keep working (a plain clone, fork, threads, the everyday socket families).
 * `x32_past_span=NR` is added by the caller, which knows where the filter's x32 block ends.
 */
export const COMPARISON_ATTACKS = [
  "ptrace", "process_vm_readv", "keyctl", "key_add=cordon-attack/x", "io_uring", "userfaultfd", "perf_event_open", "bpf",
  "unshare_user", "setns", "clone_newuser", "clone_newns", "clone_plain", "clone3",
  "mount=mnt", "mount_api", "personality", "acct", "syslog", "ioctls",
  "vsock", "packet", "netlink", "raw_sockets", "x32", "fork", "seccomp_mode",
] as const;

/** The attacks' NAME=RESULT lines; throws when the attack script did not run to its end. */
export function attackResults(r: RunResult, describe: (r: RunResult) => string): Record<string, string> {
  const kv = parseKv(r.stdout);
  if (kv.attacks_done !== "1") throw new Error(`the syscall attacks did not run to the end: ${describe(r)}`);
  return kv;
}

/** The call went through: `ok`, `ok:…`, or a child's `returned:ok…`. */
export const callSucceeded = (result: string | undefined): boolean => result !== undefined && /^(returned:)?ok/.test(result);

/** A key planted by the test process (root) in one of its keyrings. */
export interface PlantedKey {
  serial: bigint;
  description: string;
  payload: string;
  /** The supervisor reads the key back: still exactly its payload. */
  intact(): boolean;
  remove(): void;
}

/**
 * add_key("user") into this thread's session keyring (`@s`, what a run would inherit) or
 * root's user keyring (`@u`). `perm` KEY_PERM_ALL (the default) lets anyone who knows the
 * serial read and write it, so only the syscall filter stands between a run and the key; a
 * narrower mask (possessor and owner only) leaves the uid drop and the fresh keyring.
 */
export function plantKey(ring: "session" | "user", perm = KEY_PERM_ALL): PlantedKey {
  const description = `cordon-test-${ring}-${randomBytes(6).toString("hex")}`;
  const payload = `cordon-key-payload-${randomBytes(12).toString("hex")}`;
  // Made in this process's own keyring (never inherited; possessed, so its permissions can be
  // set; kept when a spawn joins a fresh session keyring and the old one is collected), then
  // linked where a run could find it.
  const serial = addUserKey(description, payload, KEY_SPEC.process);
  setKeyPermissions(serial, perm);
  // The thread's session keyring is the last run's: a new one, which only the next run could inherit.
  if (ring === "session") joinFreshSessionKeyring();
  linkKey(serial, KEY_SPEC[ring]);
  return { serial, description, payload, intact: () => readKey(serial) === payload, remove: () => invalidateKey(serial) };
}

/** Possessor and owner may do anything, group and others nothing: a key as a service would keep it. */
export const KEY_PERM_OWNER = 0x3f3f0000;

/** What a run achieved against a planted key, from its attack lines and from what the supervisor sees. */
export function keyAttack(r: RunResult, kv: Record<string, string>, key: PlantedKey): { succeeded: boolean; evidence: string } {
  const seen = `${r.stdout}\n${r.stderr}`.includes(key.payload);
  const intact = key.intact();
  const through = ["key_read", "key_update", "key_search_s", "key_search_u", "key_search_us"].filter((k) => callSucceeded(kv[k]));
  return {
    succeeded: seen || !intact || through.length > 0,
    evidence: `${key.description}: ${["key_read", "key_update", "key_search_s", "key_search_u"].map((k) => `${k}=${callSucceeded(kv[k]) ? "ok" : (kv[k] ?? "not tried")}`).join(", ")}; payload ${seen ? "SEEN in the output" : "never in the output"}; key ${intact ? "unchanged" : "CHANGED"}`,
  };
}
