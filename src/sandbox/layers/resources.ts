import { degraded, enforced, type ControlVerdict } from "../report.ts";
import type { ResourcesSpec, RlimitName } from "../spec.ts";
import { needsIsolation, USE_ISOLATING_PROVIDER, type LayerContext, type LayerResult } from "./context.ts";
import { LAUNCHER_PROCESSES } from "../../protocol/index.ts";


const NO_RLIMITS = needsIsolation("this provider applies no rlimits");

/**
 * A byte-sized rlimit as the launcher applies it: rounded down to its unit (never more
 * than the policy allows). `amount` is what is applied, `rounding` says so when it differs.
 */
function byteRlimit(bytes: number, unit: number): { bytes: number; amount: string; rounding: string } {
  if (unit === 1) return { bytes, amount: `${bytes} bytes`, rounding: "" };
  const units = Math.floor(bytes / unit);
  const name = unit === 1024 * 1024 ? "MiB" : `units of ${unit} bytes`;
  return { bytes: units * unit, amount: `${units} ${name}`, rounding: bytes % unit === 0 ? "" : ` (the policy's ${bytes} bytes rounded down to the launcher's ${name})` };
}

export function resourcesLayer(ctx: LayerContext): LayerResult<ResourcesSpec> {
  const { policy, caps, job, host } = ctx;
  const r = policy.resources;
  const rc = caps.resources;
  const rlimits: Partial<Record<RlimitName, number>> = {};
  const controls: Record<string, ControlVerdict> = {};

  // Without a tree kill a setsid daemon outlives the wall limit: that is not an enforced wall.
  controls.wall = rc.treeKill
    ? enforced(`supervisor timer (${r.wallMs} ms), then ${rc.treeKill}`)
    : needsIsolation(`supervisor timer (${r.wallMs} ms) kills only the process group: processes that leave it (setsid) survive`);
  controls.output = enforced(`supervisor caps stdout and stderr at ${r.maxOutputBytes} bytes each while streaming, then kills the run`);

  if (rc.rlimits) {
    rlimits.cpu = r.cpuSeconds;
    const fsize = byteRlimit(r.maxFileSizeBytes, rc.rlimitByteUnit ?? 1);
    rlimits.fsize = fsize.bytes;
    rlimits.nofile = r.maxOpenFiles;
    rlimits.core = 0;
    const how = rc.rlimitsSetBy ? `; ${rc.rlimitsSetBy}` : "";
    controls.cpu = enforced(`RLIMIT_CPU ${r.cpuSeconds} s (per process)${how}`);
    controls.fsize = enforced(`RLIMIT_FSIZE ${fsize.amount} (per file)${fsize.rounding}${how}`);
    controls.nofile = enforced(`RLIMIT_NOFILE ${r.maxOpenFiles} (per process)${how}`);
  } else {
    for (const name of ["cpu", "fsize", "nofile"]) controls[name] = NO_RLIMITS;
  }

  // With a run cgroup, pids.max and the memory cap hold the whole tree; rlimits would only add per-process noise.
  // pids.max also counts the sandbox's own launcher inside the cgroup (bwrap and its pid-1
  // init, or nsjail and its init): the script keeps exactly maxProcesses.
  const cgroup = rc.cgroups && rc.memoryTreeCap && rc.processCap ? { memoryBytes: r.memoryBytes, pidsMax: r.maxProcesses + LAUNCHER_PROCESSES, cpuPercent: r.cpuPercent } : null;
  const noCgroupWhy = host.cgroups.problem ?? "this provider does not place runs in a cgroup";

  if (cgroup) {
    controls.processes = enforced(`${rc.processCap}: ${r.maxProcesses} processes and threads for the script (+${LAUNCHER_PROCESSES} for the sandbox's launcher)`);
  } else if (rc.processCap) {
    rlimits.nproc = r.maxProcesses;
    controls.processes = enforced(`${rc.processCap}: ${r.maxProcesses}`);
  } else {
    controls.processes = needsIsolation("no process-count cap on this provider");
  }

  if (cgroup) {
    controls.memory = enforced(`${rc.memoryTreeCap}: ${r.memoryBytes} bytes for the whole tree, swap off; OOM kills the run`);
  } else if (rc.rlimits && job.addressSpaceLimitSafe) {
    const as = byteRlimit(r.memoryBytes, rc.rlimitByteUnit ?? 1);
    rlimits.as = as.bytes;
    controls.memory = enforced(`per-process rlimit (RLIMIT_AS ${as.amount} each${as.rounding}), not a cap on the whole tree (no cgroup: ${noCgroupWhy})`);
  } else {
    controls.memory = degraded(
      rc.rlimits
        ? `no tree-wide memory cap (${noCgroupWhy}), and the ${job.runner} runner's interpreter does not tolerate RLIMIT_AS`
        : "this provider applies no memory limit",
      rc.rlimits ? "run the supervisor as root, or delegate a cgroup v2 subtree with the memory and pids controllers (systemd Delegate=yes)" : USE_ISOLATING_PROVIDER,
    );
  }

  if (r.cpuPercent !== null) {
    controls.cpuQuota = cgroup
      ? enforced(`cgroup cpu quota: ${r.cpuPercent}% of one CPU for the whole tree`)
      : degraded(`no cgroup to hold a CPU quota (${noCgroupWhy})`, "run the supervisor as root, or delegate a cgroup v2 subtree with the cpu controller");
  }

  const scratchQuota = rc.scratchQuota ? r.scratchBytes : null;
  controls.scratch = rc.scratchQuota
    ? enforced(`scratch is a tmpfs of ${r.scratchBytes} bytes`)
    : degraded("scratch is a plain host directory without a size cap", host.isRoot ? "use an isolating provider" : "run the supervisor as root (it mounts a size-capped tmpfs)");
  controls.tmp = rc.tmpfsSize ? enforced(`/tmp is a tmpfs of ${r.scratchBytes} bytes`) : needsIsolation("no private size-capped /tmp on this provider");

  controls.shm = rc.tmpfsSize
    ? enforced(`/dev/shm is a tmpfs of ${r.scratchBytes} bytes`)
    : needsIsolation("no private size-capped /dev/shm on this provider");
  controls.stdin = enforced(`streamed by the supervisor, at most ${r.maxStdinBytes} bytes; the rest is cut and reported (stdinTruncated)`);

  return { controls, spec: { wallMs: r.wallMs, maxOutputBytes: r.maxOutputBytes, maxStdinBytes: r.maxStdinBytes, rlimits, scratchQuotaBytes: scratchQuota, cgroup } };
}
