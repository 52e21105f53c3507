import type { OutputLimits } from "../files/collect.ts";
import type { StagedInput } from "../files/input.ts";
import type { HostFacts } from "../host.ts";
import type { RunIdentity } from "../identity/range.ts";
import type { Policy } from "../policy/index.ts";
import type { Provider, ProviderProbe } from "../provider.ts";
import type { RunResult } from "../result.ts";
import { composePlan, layoutOf } from "./plan.ts";
import { withReceipt } from "./receipt.ts";
import { runPlanned } from "./run-planned.ts";
import type { Job, Layout, SpawnPlan, Workspace } from "./spec.ts";
import { allocateWorkspace } from "./workspace.ts";

/** What one run is planned from. */
export interface RunPlanInput {
  provider: Provider;
  /** The provider's probe (probeOf). */
  probe: ProviderProbe;
  policy: Policy;
  /** The host as this run sees it (Cordon.host: narrowed by config). */
  host: HostFacts;
  runRoot: string;
  /** The runner's job, for the provider's layout. */
  makeJob: (layout: Layout) => Job;
  /** Carry a receipt of what the sandboxed process saw (RunResult.receipt). */
  verify?: boolean;
  /** Secret values: masked in the plan's report, in stdout and stderr as they are read (across the cap) and in output files. */
  secrets?: readonly string[];
  /**
   * Addresses of allowlisted hostnames, resolved before planning. Absent: a trial plan,
   * which judges the allowlist without its hostnames (they are looked up only for a run).
   */
  resolved?: Readonly<Record<string, readonly string[]>>;
  /**
   * The run's own host uid/gid from the identity pool (its lease is the caller's to release
   * after runInSandbox returned); a representative one for a trial plan. Absent: the run
   * shares the policy uid on the host (reported: privilege.identity degraded).
   */
  identity?: RunIdentity;
  /** The run directory, when it exists already (a warm sandbox's); else a new one is named. */
  workspace?: Workspace;
}

/** A run planned once and passed on: what runInSandbox executes. Nothing exists on the host yet. */
export interface PlannedRun {
  workspace: Workspace;
  job: Job;
  /** The receipt's nonce when the run carries one. */
  nonce: string | null;
  plan: SpawnPlan;
  host: HostFacts;
  secrets: readonly string[];
}

/**
 * Plan one run (pure apart from naming the run directory): lay out, prepare the job, run
 * the layers and render. Throws SandboxUnavailableError under `fail`: nothing is created.
 */
export function planRun(input: RunPlanInput): PlannedRun {
  const workspace = input.workspace ?? allocateWorkspace(input.runRoot);
  const layout = layoutOf(input.provider, workspace);
  const prepared = input.makeJob(layout);
  const { job, nonce } = input.verify ? withReceipt(prepared, layout) : { job: prepared, nonce: null };
  const plan = composePlan({ policy: input.policy, job, host: input.host, workspace, secrets: input.secrets ?? [], ...(input.resolved ? { resolved: input.resolved } : {}), ...(input.identity ? { identity: input.identity } : {}) }, input.provider, input.probe);
  return { workspace, job, nonce, plan, host: input.host, secrets: input.secrets ?? [] };
}

export interface SandboxRunOptions {
  /** Validated input files, staged into scratch before the spawn. */
  inputFiles?: readonly StagedInput[];
  /** Return files created or changed under scratch, under these caps; null: return none. */
  outputFiles?: OutputLimits | null;
  maxResultBytes?: number;
  /** The cgroup runs are created under (default DEFAULT_CGROUP_PARENT). */
  cgroupParent?: string;
  /** Look at the run directory after the run, before it is removed (readiness probes). */
  inspect?: (workspace: Workspace) => void;
  /** Called synchronously right before the launcher is spawned, before it gets its fresh session keyring (readiness plants its keyring canary here). */
  beforeSpawn?: () => void;
  /** The caller's cancellation (RunRequest.signal): the tree is killed, the run ends `killed`, `cancelled: true`. */
  stop?: AbortSignal;
}

const DEFAULT_MAX_RESULT_BYTES = 64 * 1024;

/**
 * One planned run, start to end (run-planned.ts): setup steps, spawn, result channel and
 * output files, cleanup whatever happens.
 */
export async function runInSandbox(planned: PlannedRun, options: SandboxRunOptions = {}): Promise<RunResult> {
  const { workspace, job, nonce, plan, host, secrets } = planned;
  const { inputFiles, outputFiles, cgroupParent, inspect, beforeSpawn, stop } = options;
  return runPlanned(plan, workspace, job, { host, maxResultBytes: options.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES, receiptNonce: nonce, inputFiles, outputFiles, cgroupParent, secrets, inspect, beforeSpawn, stop });
}
