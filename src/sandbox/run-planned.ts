/**
 * A planned run, start to end: the setup steps as one ordered list (the workspace's,
 * the run cgroup, then the provider's own), inputs staged, one spawn of the plan,
 * the result channel and output files read, and every step cleaned up in reverse
 * order whatever happens.
 */
import { basename } from "node:path";
import { collectOutputFiles, type OutputLimits } from "../files/collect.ts";
import type { StagedInput } from "../files/input.ts";
import { stageInputFiles } from "../files/stage.ts";

/** What stageInputFiles staged (output collection tells them from files the script made). */
type StagedInputs = ReturnType<typeof stageInputFiles>;
import type { HostFacts } from "../host.ts";
import { DEFAULT_CGROUP_PARENT } from "../protocol/index.ts";
import { decodeResult, type ChannelBytes } from "../protocol/result-channel.ts";
import type { RunResult } from "../result.ts";
import { runCgroupStep } from "./cgroup-run.ts";
import { executePlan } from "./execute.ts";
import { takeReceipt } from "./receipt.ts";
import { SetupSequence, type SetupStep } from "./setup.ts";
import type { Job, SpawnPlan, Workspace } from "./spec.ts";
import { workspaceSteps } from "./workspace.ts";

export interface PlannedRunOptions {
  /** Host facts the plan was made with (the run cgroup is created where they say). */
  host: HostFacts;
  /** Validated input files, staged into scratch before the spawn. */
  inputFiles?: readonly StagedInput[];
  /** Return files created or changed under scratch, under these caps; null: return none. */
  outputFiles?: OutputLimits | null;
  maxResultBytes: number;
  /** The cgroup runs are created under (default DEFAULT_CGROUP_PARENT). */
  cgroupParent?: string;
  /** Secret values: masked in stdout and stderr as they are read (across the cap) and in output files. */
  secrets?: readonly string[];
  /** The job carries a receipt request with this nonce (withReceipt): take the receipt off the channel. */
  receiptNonce?: string | null;
  /** Look at the run directory after the run, before it is removed (readiness probes). */
  inspect?: (workspace: Workspace) => void;
  /** Called synchronously right before the launcher is spawned (SandboxRunOptions.beforeSpawn). */
  beforeSpawn?: (() => void) | undefined;
  /** The caller's cancellation (RunRequest.signal). */
  stop?: AbortSignal | undefined;
}

/** The run's setup steps in order: run directory, scratch quota, run cgroup, then the provider's. */
export function setupSteps(plan: SpawnPlan, workspace: Workspace, options: PlannedRunOptions): { steps: SetupStep[]; cgroup: ReturnType<typeof runCgroupStep> | null } {
  const cgroup = plan.cgroup ? runCgroupStep(options.host.cgroups, options.cgroupParent ?? DEFAULT_CGROUP_PARENT, basename(workspace.root), plan.cgroup) : null;
  return { steps: [...workspaceSteps(workspace, plan), ...(cgroup ? [cgroup] : []), ...(plan.steps ?? [])], cgroup };
}

/**
 * Run an accepted plan in its (not yet created) workspace. Throws, having run nothing,
 * when a setup step cannot be prepared; from the spawn on, every ending is a RunResult.
 */
export async function runPlanned(plan: SpawnPlan, workspace: Workspace, job: Job, options: PlannedRunOptions): Promise<RunResult> {
  const { steps, cgroup } = setupSteps(plan, workspace, options);
  const setup = new SetupSequence(steps);
  const secrets = options.secrets ?? [];
  try {
    await setup.prepare();
    const staged = stageInputFiles(workspace.scratchDir, options.inputFiles ?? [], plan.scratch.owner);
    const { run, channel } = await executePlan(plan, workspace, {
      ...(job.stdin ? { stdin: job.stdin } : {}),
      maxResultBytes: options.maxResultBytes,
      cgroup: cgroup?.cgroup ?? null,
      secrets,
      setup,
      beforeSpawn: options.beforeSpawn,
      stop: options.stop,
    });
    options.inspect?.(workspace);
    return completeRun(run, channel, job, workspace, staged, options);
  } finally {
    await setup.cleanup();
  }
}

/**
 * A run that ended, completed from the run directory before it is removed: the receipt taken
 * off the channel, the result decoded, the output files collected (a script that never ran
 * has none of these).
 */
export function completeRun(run: RunResult, channel: ChannelBytes, job: Job, workspace: Workspace, staged: StagedInputs, options: Pick<PlannedRunOptions, "receiptNonce" | "maxResultBytes" | "outputFiles" | "secrets">): RunResult {
  if (run.outcome === "error") return run; // the sandbox never ran the script
  const nonce = options.receiptNonce ?? null;
  const { receipt, rest } = nonce ? takeReceipt(channel, nonce, workspace.scratchDir) : { receipt: null, rest: channel };
  const decoded = decodeResult(rest, options.maxResultBytes, job.result, run);
  const collected = options.outputFiles ? collectOutputFiles(workspace.scratchDir, options.outputFiles, staged, options.secrets ?? []) : { files: [], omitted: [] };
  return { ...run, ...decoded, files: collected.files, filesOmitted: collected.omitted, ...(nonce ? { receipt } : {}) };
}
