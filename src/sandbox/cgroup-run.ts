/**
 * The glue between a run and its cgroup: the launcher that joins it before anything
 * untrusted exists, and what the cgroup's counters say about how the run ended.
 */
import { listRunCgroups, removeStaleCgroup, type CgroupEvents, type CgroupFacts, type CgroupStats } from "../cgroup/index.ts";
import type { LimitHit, Outcome, RunStats } from "../result.ts";
import { cpuLimitHit } from "./outcome.ts";
import { pidAlive } from "./workspace.ts";

/** The join launcher's own error lines start with this (a setup failure, not the script's). */
export const CGROUP_JOIN_ERROR_PREFIX = "cordon-cgroup: ";

/**
 * /bin/sh, still the supervisor's uid, writes its own pid into every cgroup.procs and
 * then execs the sandbox: the untrusted program starts inside, never outside.
 */
export function joinCgroupArgv(procsFiles: readonly string[], argv: readonly string[]): string[] {
  const script = `while [ "$1" != -- ]; do echo $$ > "$1" 2>/dev/null || { echo "${CGROUP_JOIN_ERROR_PREFIX}cannot join $1" >&2; exit 125; }; shift; done; shift; exec "$@"`;
  return ["/bin/sh", "-c", script, "cordon-cgroup", ...procsFiles, "--", ...argv];
}

/** Remove run cgroups (run-<pid>-<hex>) whose supervisor is dead: kill what is left inside, rmdir. */
export async function cleanStaleCgroups(facts: CgroupFacts, parent: string): Promise<number> {
  if (facts.problem !== null) return 0;
  let removed = 0;
  for (const { name, dirs } of listRunCgroups(facts, parent)) {
    const pid = Number(/^run-(\d+)-/.exec(name)?.[1]);
    if (!pid || pidAlive(pid)) continue;
    await removeStaleCgroup(dirs);
    removed++;
  }
  return removed;
}

export function runStats(wallMs: number, stats: CgroupStats | null, events: CgroupEvents | null): RunStats {
  return {
    wallMs,
    peakMemoryBytes: stats?.peakMemoryBytes ?? null,
    cpuUserMs: stats?.cpuUserMs ?? null,
    cpuSystemMs: stats?.cpuSystemMs ?? null,
    peakProcesses: stats?.peakProcesses ?? null,
    pidsLimitHit: events?.pidsLimitHit ?? null,
  };
}

/**
 * What the cgroup adds to the outcome the executor saw, from counters the script cannot
 * write. The supervisor's own reasons (wall, output, memory it acted on) stand; an OOM kill
 * the executor did not see is a memory limit; a death by SIGXCPU or SIGKILL after the tree
 * used its CPU budget is RLIMIT_CPU (soft or hard); a failed run that hit pids.max ran out
 * of processes. Nothing here trusts the exit status to name a limit.
 */
export function refineWithCgroup(
  run: { outcome: Outcome; limitHit: LimitHit | null; signal: string | null },
  events: CgroupEvents,
  stats: CgroupStats,
  cpuSeconds: number,
): { outcome: Outcome; limitHit: LimitHit | null } {
  const current = { outcome: run.outcome, limitHit: run.limitHit };
  if (run.limitHit || run.outcome === "refused" || run.outcome === "error") return current;
  // An OOM kill is the memory limit at work even when the script survived it and exited 0.
  if (events.oomKilled) return { outcome: "limit", limitHit: "memory" };
  if (run.outcome === "ok") return current;
  if (run.outcome === "killed" && cpuLimitHit(run.signal, treeCpuMs(stats), cpuSeconds)) return { outcome: "limit", limitHit: "cpu" };
  if (events.pidsLimitHit) return { outcome: "limit", limitHit: "pids" };
  return current;
}

/** The tree's CPU (user + system) from the cgroup, null when it was not measured. */
export function treeCpuMs(stats: CgroupStats): number | null {
  if (stats.cpuUserMs === null && stats.cpuSystemMs === null) return null;
  return (stats.cpuUserMs ?? 0) + (stats.cpuSystemMs ?? 0);
}
