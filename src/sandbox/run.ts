import { hostFacts } from "../host.ts";
import type { Policy } from "../policy/index.ts";
import type { Provider, ProviderProbe } from "../provider.ts";
import type { RunResult } from "../result.ts";
import { executePlan } from "./execute.ts";
import type { Job, Layout, Workspace } from "./spec.ts";
import { allocateWorkspace, disposeWorkspace, materializeWorkspace } from "./workspace.ts";

/**
 * One sandboxed run, start to end: plan (may refuse: nothing is created), create the
 * run directory, spawn, and remove the run directory whatever happens.
 */
export async function runInSandbox(
  provider: Provider,
  probe: ProviderProbe,
  policy: Policy,
  makeJob: (layout: Layout) => Job,
  runRoot: string,
  /** Look at the run directory after the run, before it is removed (readiness probes). */
  inspect?: (workspace: Workspace) => void,
): Promise<RunResult> {
  const workspace = allocateWorkspace(runRoot);
  const job = makeJob(provider.layout(workspace));
  const plan = provider.plan({ policy, job, host: hostFacts(), workspace }, probe);
  try {
    await materializeWorkspace(workspace, plan);
    const result = await executePlan(plan, workspace, job.stdin);
    inspect?.(workspace);
    return result;
  } finally {
    try {
      await plan.cleanup?.();
    } finally {
      await disposeWorkspace(workspace);
    }
  }
}
