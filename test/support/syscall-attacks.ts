/**
 * Attacks on the syscall filter and the keyrings, shared by the suites that make them
 * (syscall-filter, provider conformance): the same Python attacks readiness runs
 * (src/readiness/syscall-attacks.py), keys planted where a leaking run would find them,
 * and what the supervisor itself sees afterwards.
 */
import { randomBytes } from "node:crypto";
import { type RunRequest, type RunResult } from "../../src/api/index.ts";
import { addUserKey, invalidateKey, joinFreshSessionKeyring, KEY_PERM_ALL, KEY_SPEC, linkKey, readKey, setKeyPermissions } from "../../src/keyring.ts";
import { SYSCALL_ATTACKS } from "../../src/readiness/probes.ts";
import { parseKv } from "./marks.ts";

const ATTACKS_SOURCE = new TextDecoder().decode(SYSCALL_ATTACKS);

/** A run request (python runner) making the named attacks, e.g. ["io_uring", "key_serial=123"]; each prints NAME=RESULT. */
export function syscallAttackRequest(attacks: readonly string[]): Pick<RunRequest, "runner" | "script" | "args"> {
  return { runner: "python", script: { source: ATTACKS_SOURCE, name: "syscall-attacks.py" }, args: [...attacks] };
}

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
