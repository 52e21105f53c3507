/**
 * The glue between a run and its cgroup: the setup step that creates and removes it, the
 * launcher that joins it before anything untrusted exists, and the statistics it reports.
 * What its counters say about how the run ended is decided in classify.ts.
 */
import { createRunCgroup, listRunCgroups, removeStaleCgroup, type CgroupEvents, type CgroupFacts, type CgroupLimits, type CgroupStats, type RunCgroup } from "../cgroup/index.ts";
import { pidAlive } from "../process.ts";
import type { RunStats } from "../result.ts";
import type { SetupStep } from "./setup.ts";

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

/** The run cgroup as a setup step; `cgroup` is there once prepared (the executor joins, watches and kills through it). */
export interface RunCgroupStep extends SetupStep {
  readonly cgroup: RunCgroup | null;
}

/**
 * Create the run's cgroup with the plan's caps before the spawn, remove it after the run
 * (killing stragglers). Named like the run dir, so a crashed supervisor's cgroups are
 * found by the same pid rule (cleanStaleCgroups).
 */
export function runCgroupStep(facts: CgroupFacts, parent: string, name: string, limits: CgroupLimits): RunCgroupStep {
  let cgroup: RunCgroup | null = null;
  return {
    name: "run-cgroup",
    get cgroup() {
      return cgroup;
    },
    async prepare() {
      cgroup = await createRunCgroup(facts, parent, name, limits);
    },
    async cleanup() {
      await cgroup?.remove();
    },
  };
}
