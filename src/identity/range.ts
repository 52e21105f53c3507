/**
 * Per-run host identities: what they are and where they come from, as data. A run gets
 * one host uid (= gid) of its own from a configured range, so per-uid kernel quotas
 * (inotify instances, keys, processes), signals and every same-uid channel are that
 * run's alone (isolate's box-id model). Allocation is pool.ts; this file is pure.
 */

/** A contiguous range of host ids: uid = gid = base + i for i in [0, count). */
export interface IdentityRange {
  base: number;
  count: number;
}

/**
 * The default range sits where nothing else on a Linux host allocates: systemd's
 * "Users, Groups, UIDs and GIDs on systemd Systems" (https://systemd.io/UIDS-GIDS/) leaves
 * 1879048192–2147352575 unused (below it: regular users, dynamic service users, nobody and
 * the container ranges up to 1879048191; above it: ranges systemd hands out and the upper
 * half of the 32-bit space, which code that stores uids signed gets wrong). 2000000000 is
 * well inside it and easy to recognise in `ps` and `ls -n`.
 */
export const DEFAULT_IDENTITY_BASE = 2_000_000_000;
/** Concurrent runs per host (for all supervisors sharing the range); a run beyond it is refused, never given a shared uid. */
export const DEFAULT_IDENTITY_COUNT = 64;
export const DEFAULT_IDENTITY_RANGE: IdentityRange = { base: DEFAULT_IDENTITY_BASE, count: DEFAULT_IDENTITY_COUNT };
/** The highest valid uid: 4294967295 is (uid_t) -1, "no change" to setresuid and chown. */
export const MAX_HOST_ID = 2 ** 32 - 2;

/** The host uid and gid one run drops to, and the range it came from. */
export interface RunIdentity {
  uid: number;
  gid: number;
  range: IdentityRange;
  /**
   * A stand-in for "whichever id the run will get" (trial plans: readiness, check, the
   * startup banner): nothing was allocated, and reports say "per-run" instead of naming it.
   */
  representative: boolean;
}

/** "2000000000–2000000063" */
export function describeRange(range: IdentityRange): string {
  return `${range.base}–${range.base + range.count - 1}`;
}

export function inRange(range: IdentityRange, id: number): boolean {
  return Number.isInteger(id) && id >= range.base && id < range.base + range.count;
}

/** What a trial plan runs with: the range's first id, marked as a stand-in. */
export function representativeIdentity(range: IdentityRange): RunIdentity {
  return { uid: range.base, gid: range.base, range, representative: true };
}
