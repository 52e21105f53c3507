import type { StagedInput } from "../files/input.ts";
import type { OutputLimits } from "../files/collect.ts";
import { hostFacts, type HostFacts } from "../host.ts";
import type { Policy } from "../policy/index.ts";
import type { Provider, ProviderProbe } from "../provider.ts";
import type { RunResult } from "../result.ts";
import { runPlanned } from "./run-planned.ts";
import { withReceipt } from "./receipt.ts";
import type { Job, Layout, Workspace } from "./spec.ts";
import { allocateWorkspace } from "./workspace.ts";

export interface SandboxRunOptions {
  /** Validated input files, staged into scratch before the spawn. */
  inputFiles?: readonly StagedInput[];
  /** Return files created or changed under scratch, under these caps; null: return none. */
  outputFiles?: OutputLimits | null;
  maxResultBytes?: number;
  /** Addresses of allowlisted hostnames, resolved before planning. */
  resolved?: Readonly<Record<string, readonly string[]>>;
  /** Host facts to plan with (default: detected); the facade narrows them by config (cgroups off). */
  host?: HostFacts;
  /** The cgroup runs are created under (default DEFAULT_CGROUP_PARENT). */
  cgroupParent?: string;
  /** Secret values: masked in the plan's report, in stdout and stderr as they are read (across the cap) and in output files. */
  secrets?: readonly string[];
  /** Carry a receipt of what the sandboxed process saw (RunResult.receipt). */
  verify?: boolean;
  /** Look at the run directory after the run, before it is removed (readiness probes). */
  inspect?: (workspace: Workspace) => void;
}

const DEFAULT_MAX_RESULT_BYTES = 64 * 1024;

/**
 * One sandboxed run, start to end: plan (may refuse: nothing is created), then the planned
 * run (run-planned.ts): setup steps, spawn, result channel and output files, cleanup
 * whatever happens.
 */
export async function runInSandbox(
  provider: Provider,
  probe: ProviderProbe,
  policy: Policy,
  makeJob: (layout: Layout) => Job,
  runRoot: string,
  options: SandboxRunOptions = {},
): Promise<RunResult> {
  const workspace = allocateWorkspace(runRoot);
  const layout = provider.layout(workspace);
  const prepared = makeJob(layout);
  const { job, nonce } = options.verify ? withReceipt(prepared, layout) : { job: prepared, nonce: null };
  const host = options.host ?? hostFacts();
  const plan = provider.plan({ policy, job, host, workspace, secrets: options.secrets ?? [], resolved: options.resolved ?? {} }, probe);
  const { inputFiles, outputFiles, cgroupParent, secrets, inspect } = options;
  return runPlanned(plan, workspace, job, { host, maxResultBytes: options.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES, receiptNonce: nonce, inputFiles, outputFiles, cgroupParent, secrets, inspect });
}
