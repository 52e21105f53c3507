/**
 * One spawn of a plan, in four steps, each its own module:
 *   spawn (spawn.ts) → release (release.ts) → supervise (supervise.ts) → classify (classify.ts).
 * The watchers start at the spawn, so a held launcher's setup time is supervised too; the
 * release is a separate call on the spawned launcher (a warm pool spawns early and
 * releases on demand).
 */
import type { RunCgroup } from "../cgroup/index.ts";
import type { ChannelBytes } from "../protocol/result-channel.ts";
import { noExtras, resultFromError, type RunResult } from "../result.ts";
import { runStats } from "./cgroup-run.ts";
import { classify } from "./classify.ts";
import { release, type Release } from "./release.ts";
import type { EffectiveSandboxReport } from "./report.ts";
import type { SetupSequence } from "./setup.ts";
import type { SpawnPlan, StdinSource, Workspace } from "./spec.ts";
import { spawnLauncher, type SpawnedLauncher } from "./spawn.ts";
import { supervise, type SupervisedEnd } from "./supervise.ts";

const decoder = new TextDecoder();

export interface ExecuteOptions {
  stdin?: StdinSource;
  /** Read at most this many bytes of the structured result channel (RESULT_FD). */
  maxResultBytes: number;
  /** The run's cgroup, already created: the launcher joins it before exec'ing the sandbox. */
  cgroup?: RunCgroup | null;
  /** Secret values: stdout and stderr are masked as they are read, across the output cap. */
  secrets?: readonly string[];
  /** The run's setup steps, already prepared: their beforeRelease runs while the launcher holds the command. */
  setup?: SetupSequence | null;
  /** Called synchronously right before the spawn (SandboxRunOptions.beforeSpawn). */
  beforeSpawn?: (() => void) | undefined;
  /** The caller's cancellation (SuperviseOptions.stop). */
  stop?: AbortSignal | undefined;
}

export interface ExecutedRun {
  run: RunResult;
  channel: ChannelBytes;
}

/** Spawn the plan's ONE argv, release it, stream output under caps, enforce the wall clock, kill the tree, classify. */
export async function executePlan(plan: SpawnPlan, workspace: Workspace, options: ExecuteOptions): Promise<ExecutedRun> {
  const setup = options.setup ?? null;
  if (setup?.needsRelease && !plan.blockFd) throw new Error("a setup step acts before release, but this launcher does not hold its command (no block fd)");
  const launcher = spawnLauncher(plan, workspace, { stdin: options.stdin !== undefined, cgroup: options.cgroup ?? null, beforeSpawn: options.beforeSpawn });
  const supervision = supervise(launcher, { maxResultBytes: options.maxResultBytes, ...(options.stdin ? { stdin: options.stdin } : {}), ...(options.secrets ? { secrets: options.secrets } : {}), ...(options.stop ? { stop: options.stop } : {}) });
  const released = await release(launcher, setup);
  return executedRun(launcher, plan.report, released, await supervision.finish(), options.stdin !== undefined);
}

/**
 * What a supervised launcher's end means (classify.ts), as the run's result and its raw
 * result channel. `report`: the run's own plan's (a warm sandbox's launcher was spawned
 * from its waiter's plan; the report is the run's).
 */
export function executedRun(launcher: SpawnedLauncher, report: EffectiveSandboxReport, released: Release, end: SupervisedEnd, hadStdin: boolean): ExecutedRun {
  const stderr = decoder.decode(end.stderr.bytes);
  const verdict = classify({
    release: released,
    statusChannel: launcher.plan.statusFd,
    status: launcher.status(),
    events: end.events,
    treeKilled: launcher.treeKilled,
    exit: end.exit,
    stderr,
    cgroup: end.cgroup,
    cpuSeconds: report.requested.resources.cpuSeconds,
  });
  if (!verdict.ran) {
    const run = { ...resultFromError(verdict.error, report), durationMs: end.durationMs, stderr, stderrBytes: end.stderr.bytes };
    return { run, channel: { bytes: new Uint8Array(0), truncated: false } };
  }
  const run: RunResult = {
    outcome: verdict.outcome,
    limitHit: verdict.limitHit,
    exitCode: end.exit.exitCode,
    signal: end.exit.signal,
    signalSource: end.exit.signalSource,
    stdout: decoder.decode(end.stdout.bytes),
    stderr,
    stdoutBytes: end.stdout.bytes,
    stderrBytes: end.stderr.bytes,
    stdoutTruncated: end.stdout.truncated,
    stderrTruncated: end.stderr.truncated,
    durationMs: end.durationMs,
    ...(hadStdin ? { stdinTruncated: end.stdinTruncated } : {}),
    ...(end.events.cancelled ? { cancelled: true } : {}),
    sandbox: report,
    error: null,
    ...noExtras(),
    stats: runStats(end.durationMs, end.cgroup?.stats ?? null, end.cgroup?.events ?? null),
  };
  return { run, channel: end.channel };
}
