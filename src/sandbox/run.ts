import { basename } from "node:path";
import { createRunCgroup, type RunCgroup } from "../cgroup/index.ts";
import { collectOutputFiles, type OutputLimits } from "../files/collect.ts";
import type { StagedInput } from "../files/input.ts";
import { stageInputFiles } from "../files/stage.ts";
import { hostFacts, type HostFacts } from "../host.ts";
import type { Policy } from "../policy/index.ts";
import type { Provider, ProviderProbe } from "../provider.ts";
import { decodeResult } from "../result-channel.ts";
import type { RunResult } from "../result.ts";
import { executePlan } from "./execute.ts";
import { takeReceipt, withReceipt } from "./receipt.ts";
import type { Job, Layout, Workspace } from "./spec.ts";
import { allocateWorkspace, disposeWorkspace, materializeWorkspace } from "./workspace.ts";

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
  /** The cgroup runs are created under (default "cordon"). */
  cgroupParent?: string;
  /** Secret values: masked in the plan's report, in stdout and stderr as they are read (across the cap) and in output files. */
  secrets?: readonly string[];
  /** Carry a receipt of what the sandboxed process saw (RunResult.receipt). */
  verify?: boolean;
  /** Look at the run directory after the run, before it is removed (readiness probes). */
  inspect?: (workspace: Workspace) => void;
}

const DEFAULT_MAX_RESULT_BYTES = 64 * 1024;
export const DEFAULT_CGROUP_PARENT = "cordon";

/**
 * One sandboxed run, start to end: plan (may refuse: nothing is created), create the
 * run directory and stage inputs, spawn, read the result channel and output files,
 * and remove the run directory whatever happens.
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
  const maxResultBytes = options.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES;
  let cgroup: RunCgroup | null = null;
  try {
    await materializeWorkspace(workspace, plan);
    const staged = stageInputFiles(workspace.scratchDir, options.inputFiles ?? [], plan.scratch.owner);
    // Named like the run dir, so a crashed supervisor's cgroups are found by the same pid rule.
    if (plan.cgroup) cgroup = await createRunCgroup(host.cgroups, options.cgroupParent ?? DEFAULT_CGROUP_PARENT, basename(workspace.root), plan.cgroup);
    const { run, channel } = await executePlan(plan, workspace, { ...(job.stdin ? { stdin: job.stdin } : {}), maxResultBytes, cgroup, secrets: options.secrets ?? [] });
    options.inspect?.(workspace);
    if (run.outcome === "error") return run; // the sandbox never ran the script
    const { receipt, rest } = nonce ? takeReceipt(channel, nonce, workspace.scratchDir) : { receipt: null, rest: channel };
    const decoded = decodeResult(rest, maxResultBytes, job.result, run);
    const collected = options.outputFiles ? collectOutputFiles(workspace.scratchDir, options.outputFiles, staged, options.secrets ?? []) : { files: [], omitted: [] };
    return { ...run, ...decoded, files: collected.files, filesOmitted: collected.omitted, ...(nonce ? { receipt } : {}) };
  } finally {
    try {
      await plan.cleanup?.();
      await cgroup?.remove();
    } finally {
      await disposeWorkspace(workspace);
    }
  }
}
