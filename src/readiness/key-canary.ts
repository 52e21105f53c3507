/**
 * The keyring canary: a key with a random payload in the supervisor's session keyring,
 * readable and writable by anyone who knows its serial (so only the syscall filter, not
 * the key's permissions, stands between a probe and it). The fresh-keyring spawn changes
 * the spawning thread's session keyring at every run, so the key is linked into the one
 * the thread has right before the probe's spawn (SandboxRunOptions.beforeSpawn): a run
 * that inherited the supervisor's session keyring would find it there. That keyring is
 * made for the purpose, so no other run (one still using the thread's previous keyring)
 * ever sees the canary. Afterwards only the
 * supervisor reads it back: a changed payload is an overwrite the probe cannot hide.
 * The key itself lives in the supervisor's process keyring (no child inherits that one).
 */
import { randomBytes } from "node:crypto";
import { addUserKey, freshKeyringProblem, invalidateKey, joinFreshSessionKeyring, KEY_PERM_ALL, KEY_SPEC, linkKey, readKey, setKeyPermissions } from "../keyring.ts";

export interface KeyCanary {
  serial: bigint;
  description: string;
  payload: string;
  /**
   * Give this thread a session keyring of its own (the one it had is the last run's, which
   * that run may still use) and link the key into it; never throws (see placementError).
   */
  placeInSessionKeyring(): void;
  /** Why the last placement failed, or null. */
  placementError(): string | null;
  /** The key still holds exactly its payload (read by the supervisor). */
  intact(): boolean;
  remove(): void;
}

export function plantKeyCanary(): KeyCanary | { problem: string } {
  const problem = freshKeyringProblem();
  if (problem) return { problem };
  const description = `cordon-readiness-${randomBytes(6).toString("hex")}`;
  const payload = `cordon-key-${randomBytes(16).toString("hex")}`;
  let serial: bigint;
  try {
    // Anchored in the supervisor's process keyring, which no child inherits: the session keyring
    // it is planted in is replaced at every spawn, and the key would go with it when collected.
    serial = addUserKey(description, payload, KEY_SPEC.process);
    setKeyPermissions(serial, KEY_PERM_ALL);
  } catch (e) {
    return { problem: `the canary key could not be planted: ${e instanceof Error ? e.message : String(e)}` };
  }
  let failed: string | null = null;
  return {
    serial,
    description,
    payload,
    placeInSessionKeyring() {
      try {
        joinFreshSessionKeyring();
        linkKey(serial);
        failed = null;
      } catch (e) {
        failed = e instanceof Error ? e.message : String(e);
      }
    },
    placementError: () => failed,
    intact: () => readKey(serial) === payload,
    remove: () => invalidateKey(serial),
  };
}
