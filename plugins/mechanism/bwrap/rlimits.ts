/**
 * The run's rlimits on bwrap, set one of two ways:
 *
 *  - at release (bwrap with --block-fd): the supervisor calls prlimit(2) on the pid bwrap
 *    reports on its json status fd. In bwrap (0.8, bubblewrap.c main) that pid is the
 *    process raw_clone() made in the new namespaces; it builds the mounts, drops its
 *    privileges, THEN reads --block-fd, and only after that fork()s the command (it stays
 *    behind as the pid namespace's init, do_init) or, without a pid namespace, exec()s it.
 *    Limits set during the block are in that process before the fork, so the command
 *    inherits them, and every process it starts after it. release.ts checks that the pid
 *    is the launcher's child before and after the steps, so a pid that died and was reused
 *    meanwhile is never what got the limits.
 *  - by `prlimit` (util-linux) inside the sandbox in front of the command: only where this
 *    bwrap has no --block-fd.
 *
 * Either way the command starts with them; RLIMIT_NPROC then counts the sandbox's own user
 * namespace, not every process of the uid on the host. The init itself carries them too:
 * it only waits and reaps, far below any of them.
 */
import { setRlimits, type RlimitName, type RlimitPair, type SetupStep } from "../../../src/api/plugin.ts";

type Rlimits = Partial<Record<RlimitName, number>>;

/** How the report says the limits are set at release. */
export const SET_AT_RELEASE = "set by the supervisor with prlimit(2) on bwrap's init while it holds the command (--block-fd), inherited by the command";
/** How the report says the limits are set by the helper. */
export const SET_BY_HELPER = "set by prlimit(1) inside the sandbox, which then execs the command";

/** Soft and hard values: equal, except CPU (soft N, hard N+1) so SIGXCPU comes before the SIGKILL. */
export function rlimitPairs(rlimits: Rlimits): Partial<Record<RlimitName, RlimitPair>> {
  const pairs: Partial<Record<RlimitName, RlimitPair>> = {};
  for (const [name, v] of Object.entries(rlimits) as [RlimitName, number][]) pairs[name] = { soft: v, hard: name === "cpu" ? v + 1 : v };
  return pairs;
}

/** `prlimit --cpu=N:N+1 --fsize=… --`, the helper's argv in front of the command. */
export function rlimitArgs(prlimit: string, rlimits: Rlimits): string[] {
  const pairs = Object.entries(rlimitPairs(rlimits)) as [RlimitName, RlimitPair][];
  if (pairs.length === 0) return [];
  return [prlimit, ...pairs.map(([name, p]) => `--${name}=${p.soft === p.hard ? p.soft : `${p.soft}:${p.hard}`}`), "--"];
}

/** What the report's argv lists in place of the helper: the same values, and who sets them when. */
export function rlimitsAppendix(rlimits: Rlimits): string {
  const pairs = Object.entries(rlimitPairs(rlimits)) as [RlimitName, RlimitPair][];
  return `<rlimits ${pairs.map(([name, p]) => `${name}=${p.soft}:${p.hard}`).join(" ")}: ${SET_AT_RELEASE}>`;
}

/**
 * The setup step that sets them at release; `owner` is the host uid and gid bwrap was
 * started as (the root supervisor's drop), which its init keeps. A refusal (EPERM, ESRCH) throws: release.ts
 * then kills the tree before the block fd closes, so the command never starts without them.
 */
export function rlimitStep(rlimits: Rlimits, owner: { uid: number; gid: number } | null): SetupStep {
  const pairs = rlimitPairs(rlimits);
  return {
    name: "rlimits",
    specOnly: true,
    async beforeRelease(childPid) {
      setRlimits(childPid, pairs, owner);
    },
  };
}
