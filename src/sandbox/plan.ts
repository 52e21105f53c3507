import { SandboxUnavailableError } from "../errors.ts";
import { checkLauncherInput } from "./launcher-input.ts";
import { maskDeep } from "../secrets.ts";
import { envLayer, filesystemLayer, networkLayer, privilegeLayer, resourcesLayer, type LayerContext } from "./layers/index.ts";
import { layerReport, listDowngrades, refusalReasons, type EffectiveSandboxReport, type LayerName, type LayerReport } from "./report.ts";
import type { Capabilities, Launch, Layout, PlanInput, SandboxSpec, SpawnPlan, StagedFile } from "./spec.ts";

/** The provider-specific parts of planning: what it can do, where things are, how to render a spec. */
export interface ProviderPlanner {
  name: string;
  version: string | null;
  capabilities: Capabilities;
  layout: Layout;
  render(spec: SandboxSpec, input: PlanInput): Launch;
  /** The launcher reads its options as a text config (nsjail): control characters are refused too. */
  textConfig?: boolean;
}

function jobStage(input: PlanInput): StagedFile[] {
  const jobRel = input.workspace.jobDir.slice(input.workspace.root.length + 1);
  return input.job.files.map((f) => ({ path: `${jobRel}/${f.path}`, content: f.content, mode: f.mode ?? 0o644 }));
}

/**
 * The wrapper: run every layer (pure), collect verdicts, refuse under `fail` when any
 * control is degraded (nothing is spawned), else render ONE argv for ONE spawn.
 */
export function composePlan(input: PlanInput, planner: ProviderPlanner, hostEnv: Record<string, string | undefined> = process.env): SpawnPlan {
  const { policy, job, host } = input;
  const ctx: LayerContext = { policy, job, host, caps: planner.capabilities, workspace: input.workspace, layout: planner.layout, resolved: input.resolved ?? null };

  const filesystem = filesystemLayer(ctx);
  const network = networkLayer(ctx);
  const resources = resourcesLayer(ctx);
  const privilege = privilegeLayer(ctx);
  const env = envLayer(ctx, hostEnv);

  const layers: Record<LayerName, LayerReport> = {
    filesystem: layerReport(filesystem.controls),
    network: layerReport(network.controls),
    resources: layerReport(resources.controls),
    privilege: layerReport(privilege.controls),
    env: layerReport(env.controls),
  };
  const downgrades = listDowngrades(layers);
  if (policy.onUnavailable === "fail" && downgrades.length > 0) throw new SandboxUnavailableError(planner.name, refusalReasons(layers));

  const spec: SandboxSpec = {
    filesystem: filesystem.spec,
    network: network.spec,
    resources: resources.spec,
    privilege: privilege.spec,
    env: env.spec,
    command: job.argv,
    hostname: "cordon",
  };
  const launch = planner.render(spec, input);
  checkLauncherInput(spec, launch, { textConfig: planner.textConfig === true });
  const report: EffectiveSandboxReport = {
    provider: { name: planner.name, version: planner.version, isolating: planner.capabilities.isolating },
    runner: { name: job.runner, readOnlyBinds: job.readOnlyBinds.map((b) => (b.source === b.target ? b.source : `${b.source} -> ${b.target}`)), notes: job.notes ?? [] },
    onUnavailable: policy.onUnavailable,
    requested: policy,
    layers,
    downgrades,
    host,
    // The whole command line, launcher arguments included, with secret values masked.
    argv: maskDeep([...launch.argv, ...(launch.launcherArgs ? ["<fd 5:", ...launch.launcherArgs, ">"] : [])], input.secrets ?? []),
  };
  return {
    ...launch,
    stage: [...filesystem.spec.stage, ...jobStage(input)],
    scratch: { quotaBytes: resources.spec.scratchQuotaBytes, owner: privilege.spec.hostDrop },
    wallMs: resources.spec.wallMs,
    cgroup: resources.spec.cgroup,
    maxOutputBytes: resources.spec.maxOutputBytes,
    maxStdinBytes: resources.spec.maxStdinBytes,
    report,
  };
}
