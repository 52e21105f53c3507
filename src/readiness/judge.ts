/** From what the probes observed to a verdict per cell: proven only when the attack failed. */
import { describeRange, inRange } from "../identity/range.ts";
import type { Policy } from "../policy/index.ts";
import type { RunResult } from "../result.ts";
import { LAYER_NAMES, type LayerName } from "../sandbox/report.ts";
import { MEMORY_ATTEMPT_BYTES, PIDS_ATTEMPT, PROBE_LIMITS, SHM_ATTEMPT_BYTES, STDIN_OFFERED_BYTES } from "./probes.ts";
import type { IdentityObservation } from "./identity-probe.ts";
import { seccompCell, type SyscallObservations } from "./seccomp-cell.ts";
import { CELLS_OF_LAYER, READINESS_CELLS, type ReadinessCell, type ReadinessVerdict } from "./types.ts";

/** The identity attack's observations, or why it was not made (the plan admits a shared uid, the quota cannot be read). */
export type IdentityEvidence = IdentityObservation | { status: "not-enforced" | "unknown"; detail: string };

export interface Observations {
  probe: Record<string, string>;
  main: RunResult;
  wall: RunResult;
  memory: { run: RunResult; probe: Record<string, string> };
  pids: { run: RunResult; probe: Record<string, string> };
  syscalls: SyscallObservations;
  scratchOwner: number | null;
  /** The host uid the main probe's plan dropped to (its own from the pool), or the policy uid when it dropped to none. */
  expectedHostUid: number;
  identity: IdentityEvidence;
  listenerHits: number;
  canaryDirEntries: string[];
}

const proven = (detail: string): ReadinessVerdict => ({ status: "proven", detail });
const notEnforced = (detail: string): ReadinessVerdict => ({ status: "not-enforced", detail });
const verdict = (ok: boolean, good: string, bad: string) => (ok ? proven(good) : notEnforced(bad));

/**
 * The sandboxed process's uid on the host: the owner of a file it created, seen from the
 * host. (/proc/self/uid_map is relative to the parent user namespace, which with nested
 * namespaces is not the host.)
 */
const hostUid = (obs: Observations): number | null => obs.scratchOwner;

function memoryCell(obs: Observations): ReadinessVerdict {
  const { run, probe } = obs.memory;
  const mechanism = run.sandbox?.layers.resources.controls.memory?.mechanism ?? "?";
  const held = probe.held === undefined ? null : Number(probe.held);
  if (held !== null && held >= MEMORY_ATTEMPT_BYTES) return notEnforced(`held ${held} bytes under a ${PROBE_LIMITS.memoryBytes}-byte cap`);
  if (run.limitHit === "memory") return proven(`tree cap: the ${MEMORY_ATTEMPT_BYTES}-byte allocation was OOM-killed (${mechanism})`);
  // The holder (tail) was killed or refused memory, and the probe lived to say how much it got.
  if (held !== null) return proven(`the ${MEMORY_ATTEMPT_BYTES}-byte allocation was stopped at ${held} bytes (${mechanism})`);
  return { status: "unknown", detail: `the memory probe did not report (outcome ${run.outcome})` };
}

function pidsCell(obs: Observations): ReadinessVerdict {
  const started = Number(obs.pids.probe.started ?? 0);
  if (started >= PIDS_ATTEMPT) return notEnforced(`started ${started} processes under a cap of ${PROBE_LIMITS.maxProcesses}`);
  if (started === 0) return { status: "unknown", detail: `the pids probe did not run (outcome ${obs.pids.run.outcome})` };
  return proven(`fork failed after ${started} processes (cap ${PROBE_LIMITS.maxProcesses}: ${obs.pids.run.sandbox?.layers.resources.controls.processes?.mechanism ?? "?"})`);
}

/**
 * Proven only when the attack failed: each of two concurrent runs held every inotify
 * instance a uid may have (max_user_instances) at the same time, and the host saw them as
 * two different uids of the pool, neither the supervisor's.
 */
function identityCell(evidence: IdentityEvidence): ReadinessVerdict {
  if ("status" in evidence) return { status: evidence.status, detail: evidence.detail };
  const { max, runs, bothReported, supervisorUid } = evidence;
  const [a, b] = runs;
  if (a.tool === "none" || b.tool === "none") return { status: "unknown", detail: "neither python3 nor perl under /usr to open inotify instances with: the per-uid quota attack did not run" };
  if (!bothReported || a.held === null || b.held === null || a.owner === null || b.owner === null) {
    return { status: "unknown", detail: `the identity probes did not both report while holding (outcomes ${a.result.outcome}, ${b.result.outcome}${a.result.error ? `: ${a.result.error.message}` : ""})` };
  }
  const range = a.identity?.range ?? b.identity?.range ?? null;
  const uids = `host uids ${a.owner} and ${b.owner} (owners of a file each run created, seen from the host)`;
  const problems: string[] = [];
  const short = [a, b].filter((r) => r.held! < max);
  if (short.length) {
    problems.push(short.map((r) => `a run opened only ${r.held} of ${max} inotify instances${r.errno ? ` (errno ${r.errno})` : ""}`).join(", ") + ` while the other held ${short.length === 2 ? "the rest" : max}: the two share one per-uid quota`);
  }
  if (a.owner === b.owner) problems.push(`both ran as host uid ${a.owner}`);
  for (const uid of new Set([a.owner, b.owner])) {
    if (uid === supervisorUid) problems.push(`host uid ${uid} is the supervisor's`);
    else if (!range || !inRange(range, uid)) problems.push(`host uid ${uid} is not from the identity pool${range ? ` ${describeRange(range)}` : ""}`);
  }
  if (problems.length) return notEnforced(`${problems.join("; ")} (${uids})`);
  return proven(
    `two concurrent runs each held all ${max} inotify instances of fs.inotify.max_user_instances at once (neither let go before both had them), as ${uids}: distinct, from the pool ${describeRange(range!)}, not the supervisor's uid ${supervisorUid}`,
  );
}

export function judgeCells(obs: Observations, policy: Policy): Record<ReadinessCell, ReadinessVerdict> {
  const p = obs.probe;
  const ifaces = (p.net_ifaces ?? "").replace(/,$/, "");
  const uid = hostUid(obs);
  const fsizeBytes = Number(p.fsize_bytes ?? 0);
  const shmBytes = Number(p.shm_bytes ?? NaN);
  const stdinBytes = Number(p.stdin_bytes ?? NaN);
  return {
    filesystem: verdict(
      p.fs_canary === "hidden" && p.fs_write === "blocked" && obs.canaryDirEntries.length === 1 /* only the canary */ && p.scratch_write === "ok" && shmBytes <= PROBE_LIMITS.scratchBytes,
      `host canary unreadable, /usr /etc / /dev read-only, scratch writable, /dev/shm stopped at ${shmBytes} of ${SHM_ATTEMPT_BYTES} bytes`,
      `canary ${p.fs_canary}, write ${p.fs_write}, scratch ${p.scratch_write}, /dev/shm took ${p.shm_bytes ?? "?"} bytes (cap ${PROBE_LIMITS.scratchBytes})`,
    ),
    network: verdict(
      ifaces === "" && obs.listenerHits === 0 && p.net_loopback === "failed",
      "only loopback; the host's loopback listener unreachable",
      `interfaces [${ifaces}], host listener reached ${obs.listenerHits} time(s)`,
    ),
    memory: memoryCell(obs),
    pids: pidsCell(obs),
    cpu: verdict(p.lim_cpu === String(policy.resources.cpuSeconds), `RLIMIT_CPU ${p.lim_cpu} s in force`, `RLIMIT_CPU is ${p.lim_cpu ?? "?"}`),
    wall: verdict(
      obs.wall.outcome === "timeout" && obs.wall.durationMs < PROBE_LIMITS.wallMs + 1000,
      `a ${PROBE_LIMITS.wallMs} ms wall limit killed the tree in ${obs.wall.durationMs} ms`,
      `the wall run ended ${obs.wall.outcome} in ${obs.wall.durationMs} ms`,
    ),
    fsize: verdict(
      p.fsize_rc !== "0" && fsizeBytes <= PROBE_LIMITS.maxFileSizeBytes,
      `a write past ${PROBE_LIMITS.maxFileSizeBytes} bytes failed (file stopped at ${fsizeBytes})`,
      `a ${PROBE_LIMITS.maxFileSizeBytes * 2}-byte file was written (${fsizeBytes} bytes)`,
    ),
    output: verdict(
      (obs.main.stdoutTruncated || obs.main.stderrTruncated) && stdinBytes === PROBE_LIMITS.maxStdinBytes && obs.main.stdinTruncated === true,
      `output capped while streaming; stdin cut at ${stdinBytes} of ${STDIN_OFFERED_BYTES} bytes`,
      `output ${obs.main.stdoutTruncated || obs.main.stderrTruncated ? "capped" : "not capped"}, stdin: the script read ${p.stdin_bytes ?? "?"} of ${STDIN_OFFERED_BYTES} bytes (cap ${PROBE_LIMITS.maxStdinBytes})`,
    ),
    privilege: verdict(
      uid === obs.expectedHostUid && p.cap_eff === "0000000000000000" && p.no_new_privs === "1",
      `host uid ${uid}, no capabilities, no_new_privs, seccomp mode ${p.seccomp ?? "?"}`,
      `host uid ${uid ?? "?"}${uid === obs.expectedHostUid ? "" : ` (not ${obs.expectedHostUid}, the uid the run drops to)`}, CapEff ${p.cap_eff ?? "?"}, NoNewPrivs ${p.no_new_privs ?? "?"}`,
    ),
    seccomp: seccompCell(obs.syscalls),
    env: verdict(p.env_leak === "0", "host environment canary invisible (env and /proc/*/environ)", "host environment canary visible inside"),
    identity: identityCell(obs.identity),
  };
}

/** A layer is as good as its worst cell: unknown beats not-enforced beats proven. */
export function summarizeLayers(cells: Record<ReadinessCell, ReadinessVerdict>): Record<LayerName, ReadinessVerdict> {
  const rank = { proven: 0, "not-enforced": 1, unknown: 2 } as const;
  return Object.fromEntries(
    LAYER_NAMES.map((layer) => {
      const mine = CELLS_OF_LAYER[layer].map((c) => [c, cells[c]] as const);
      const worst = mine.reduce((w, [, v]) => (rank[v.status] > rank[w.status] ? v : w), mine[0]![1]);
      const failing = mine.filter(([, v]) => v.status !== "proven");
      const detail = failing.length ? failing.map(([c, v]) => (mine.length > 1 ? `${c}: ${v.detail}` : v.detail)).join("; ") : mine.map(([, v]) => v.detail).join("; ");
      return [layer, { status: worst.status, detail }];
    }),
  ) as Record<LayerName, ReadinessVerdict>;
}

export function fillCells(status: ReadinessVerdict["status"], detail: string): Record<ReadinessCell, ReadinessVerdict> {
  return Object.fromEntries(READINESS_CELLS.map((c) => [c, { status, detail }])) as Record<ReadinessCell, ReadinessVerdict>;
}
