/**
 * One run in a warm sandbox: the run's job files and input files go into its (already
 * mounted) run directory, the supervisor starts watching, and the waiter is handed the
 * run's command and environment on JOB_FD. From there on it is a run like a cold one
 * (supervise → classify → result channel and output files), and the sandbox is destroyed
 * after the run: nothing of a run outlives it, no sandbox serves two runs.
 */
import { mkdirSync, readSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import type { StagedInput } from "../files/input.ts";
import type { OutputLimits } from "../files/collect.ts";
import { stageInputFiles } from "../files/stage.ts";
import type { RunResult } from "../result.ts";
import { executedRun } from "../sandbox/execute.ts";
import type { PlannedRun } from "../sandbox/run.ts";
import { completeRun } from "../sandbox/run-planned.ts";
import { writeExclusive } from "../sandbox/run-root.ts";
import type { SpawnPlan, StagedFile } from "../sandbox/spec.ts";
import { jobFilesToAdd, sandboxMismatch } from "./match.ts";
import { supervise } from "../sandbox/supervise.ts";
import type { FileSinkLike } from "../sandbox/pumps.ts";
import type { WarmSandbox } from "./warm-sandbox.ts";

/** The waiter was gone before it took the run: nothing of the run happened, it may start cold. */
export class HandOverError extends Error {}

export interface WarmRunOptions {
  inputFiles?: readonly StagedInput[];
  outputFiles?: OutputLimits | null;
  maxResultBytes: number;
  /**
   * Takes the sandbox's removal once the result is complete (the pool tracks it, and close()
   * waits for it). By then the launcher has exited, so with the pid namespace's init every
   * process of the run is gone; what is left is host-side: the cgroup, the scratch mount and
   * run directory, and the identity, released only after those.
   */
  disposeLater(removal: Promise<void>): void;
  /** Told once whether the taken sandbox was handed the run (its waiter acknowledged) or the run goes cold. */
  counted(handedOver: boolean): void;
  /** The caller's cancellation (RunRequest.signal). */
  stop?: AbortSignal | undefined;
}

/** Write the whole hand-over on the (non-blocking) JOB_FD socket, waiting while it is full. */
async function writeAll(fd: number, bytes: Uint8Array): Promise<void> {
  let sent = 0;
  while (sent < bytes.length) {
    try {
      sent += writeSync(fd, bytes, sent);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
      await Bun.sleep(1);
    }
  }
}

/** How long a waiter may take to acknowledge its hand-over before the run goes cold. */
const ACK_TIMEOUT_MS = 2_000;
/** Immediate re-reads of the acknowledgement before timed ones. */
const ACK_SPIN_POLLS = 200;

/** Wait for the waiter's one-byte acknowledgement on the (non-blocking) JOB_FD socket. */
async function waiterAcknowledged(sandbox: WarmSandbox, fd: number, timeoutMs: number): Promise<void> {
  const byte = new Uint8Array(1);
  const deadline = performance.now() + timeoutMs;
  for (let polls = 0; ; polls++) {
    try {
      if (readSync(fd, byte) === 1) return;
      throw new Error("the waiter closed its end without acknowledging");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
    }
    if (!sandbox.alive) throw new Error("the sandbox ended before the waiter acknowledged");
    if (performance.now() > deadline) throw new Error(`the waiter did not acknowledge within ${timeoutMs} ms`);
    // The byte comes within a millisecond or so: look again at once a few times (a timer's
    // granularity would be most of a warm run's latency), then back off.
    if (polls < ACK_SPIN_POLLS) await new Promise((resolve) => setImmediate(resolve));
    else await Bun.sleep(Math.min(polls - ACK_SPIN_POLLS + 1, 5));
  }
}

/** The run's job files the waiter's job directory lacks (fresh O_EXCL files under the supervisor-only stage). */
function addJobFiles(root: string, files: readonly StagedFile[]): void {
  for (const file of files) {
    const path = join(root, file.path);
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    writeExclusive(path, file.content, file.mode, file.owner);
  }
}

/**
 * A run in a sandbox taken from the pool, or why it starts cold instead. `plan` plans the
 * run for the sandbox's workspace and identity; the plan must be the same sandbox as the
 * waiter's (match.ts) and the runner's waiter must be able to become it exactly. A sandbox
 * taken and not handed a run is destroyed, never given back.
 */
export async function runTaken(sandbox: WarmSandbox, plan: (sandbox: WarmSandbox) => PlannedRun, requestedMs: number, options: WarmRunOptions): Promise<{ result: RunResult } | { why: string }> {
  let handedOver = false;
  let acknowledged = false;
  try {
    const planned = plan(sandbox);
    const mismatch = sandboxMismatch(sandbox.plan, planned.plan, sandbox.workspace);
    if (mismatch) return { why: `the pooled sandbox is not this run's: ${mismatch}` };
    const commandOf = (p: SpawnPlan) => ({ command: p.spec.command, env: p.spec.env.vars });
    const handOver = sandbox.warm.handOver(commandOf(planned.plan), commandOf(sandbox.plan));
    if (!handOver) return { why: `runner ${planned.job.runner}'s waiter cannot become this run exactly (a start-up variable differs, or the hand-over is over its limit)` };
    const jobFiles = jobFilesToAdd(sandbox.plan, planned.plan, sandbox.workspace) as StagedFile[];
    const now = performance.now();
    planned.plan.report.start = { warm: true, waitedMs: Math.round((now - requestedMs) * 10) / 10, idleMs: Math.round(now - sandbox.readyMs), waiter: sandbox.plan.spec.command.slice() };
    handedOver = true;
    return { result: await runHandedOver(sandbox, planned, handOver, jobFiles, { ...options, counted: (hit) => (acknowledged = hit) }) };
  } catch (e) {
    if (e instanceof HandOverError) return { why: e.message };
    throw e;
  } finally {
    options.counted(acknowledged);
    if (!handedOver) await sandbox.dispose();
  }
}

/**
 * Run `planned` (matched to this sandbox) in the sandbox, then destroy it. `handOver`: the
 * bytes the runner's waiter takes on JOB_FD.
 */
async function runHandedOver(sandbox: WarmSandbox, planned: PlannedRun, handOver: Uint8Array, jobFiles: readonly StagedFile[], options: WarmRunOptions): Promise<RunResult> {
  const { launcher, workspace } = sandbox;
  const { plan, job, secrets } = planned;
  const jobFd = launcher.jobFd;
  let completed = false;
  try {
    if (jobFd === null) throw new Error("the warm sandbox has no hand-over fd");
    addJobFiles(workspace.root, jobFiles);
    const staged = stageInputFiles(workspace.scratchDir, options.inputFiles ?? [], plan.scratch.owner);
    launcher.restartClock();
    // The hand-over first, and the waiter's acknowledgement: until that byte, nothing of the
    // run has happened in the sandbox (stdin not consumed either), so a waiter that died or
    // never reads sends the run cold instead of reporting a run that never ran.
    try {
      await writeAll(jobFd, handOver);
      await waiterAcknowledged(sandbox, jobFd, Math.min(plan.wallMs, ACK_TIMEOUT_MS));
      options.counted(true);
    } catch (e) {
      throw new HandOverError(`the warm sandbox did not take its run: ${(e as Error).message}`);
    } finally {
      launcher.closeJobFd();
    }
    sandbox.supervised = true;
    const supervision = supervise(launcher, { maxResultBytes: options.maxResultBytes, ...(job.stdin ? { stdin: job.stdin } : {}), secrets, ...(options.stop ? { stop: options.stop } : {}) });
    // No stdin for this run: EOF at once, as a cold start's /dev/null gives.
    if (!job.stdin) void Promise.resolve((launcher.proc.stdin as unknown as FileSinkLike).end()).catch(() => {});
    const end = await supervision.finish();
    const { run, channel } = executedRun(launcher, plan.report, { setupError: null, heldBack: false }, end, job.stdin !== undefined);
    const result = completeRun(run, channel, job, workspace, staged, { maxResultBytes: options.maxResultBytes, outputFiles: options.outputFiles ?? null, secrets, receiptNonce: null });
    completed = true;
    return result;
  } finally {
    if (completed) options.disposeLater(sandbox.dispose());
    else await sandbox.dispose();
  }
}
