import { CordonError, SandboxUnavailableError } from "../errors.ts";
import type { Provider, ProviderProbe, ReportAmendments } from "../provider.ts";
import { LAUNCHER_ARGS_FD, SANDBOX_HOSTNAME, SANDBOX_LAYOUT, SECCOMP_FD } from "../protocol/index.ts";
import { checkLauncherInput } from "./launcher-input.ts";
import { maskDeep } from "../secrets.ts";
import { envLayer, filesystemLayer, networkLayer, privilegeLayer, resourcesLayer, type LayerContext } from "./layers/index.ts";
import { layerReport, listDowngrades, refusalReasons, type EffectiveSandboxReport, type LayerName, type LayerReport } from "./report.ts";
import type { Capabilities, Layout, PlanInput, SandboxSpec, SpawnPlan, StagedFile, Workspace } from "./spec.ts";

/** Where a provider's sandbox puts the job dir, scratch and /tmp for this run. */
export function layoutOf(provider: Provider, workspace: Workspace): Layout {
  return provider.layout?.(workspace) ?? { ...SANDBOX_LAYOUT };
}

function jobStage(input: PlanInput): StagedFile[] {
  const jobRel = input.workspace.jobDir.slice(input.workspace.root.length + 1);
  return input.job.files.map((f) => ({ path: `${jobRel}/${f.path}`, content: f.content, mode: f.mode ?? 0o644 }));
}

/** The layers' verdicts and the spec they add up to, before anything is rendered. */
export interface ComposedSpec {
  spec: SandboxSpec;
  layers: Record<LayerName, LayerReport>;
}

/** Run every layer (pure) for one input on a provider with these capabilities. */
export function composeSpec(input: PlanInput, capabilities: Capabilities, layout: Layout, hostEnv: Record<string, string | undefined> = process.env): ComposedSpec {
  const { policy, job, host } = input;
  const ctx: LayerContext = { policy, job, host, caps: capabilities, workspace: input.workspace, layout, resolved: input.resolved ?? null, identity: input.identity ?? null };
  const filesystem = filesystemLayer(ctx);
  const network = networkLayer(ctx);
  const resources = resourcesLayer(ctx);
  const privilege = privilegeLayer(ctx);
  const env = envLayer(ctx, hostEnv);
  return {
    spec: { filesystem: filesystem.spec, network: network.spec, resources: resources.spec, privilege: privilege.spec, env: env.spec, command: job.argv, hostname: SANDBOX_HOSTNAME },
    layers: {
      filesystem: layerReport(filesystem.controls),
      network: layerReport(network.controls),
      resources: layerReport(resources.controls),
      privilege: layerReport(privilege.controls),
      env: layerReport(env.controls),
    },
  };
}

/**
 * A provider's amendments, held to what they may do: reword an enforced control or one the
 * policy switched off (same status), or add an enforced one. A degraded control is never
 * amended: its reason, fix and fallback are what a refusal and the downgrade list say.
 */
function amendLayers(provider: string, layers: Record<LayerName, LayerReport>, amendments: ReportAmendments): Record<LayerName, LayerReport> {
  const out = { ...layers };
  for (const [layer, controls] of Object.entries(amendments) as [LayerName, ReportAmendments[LayerName]][]) {
    for (const [name, verdict] of Object.entries(controls ?? {})) {
      const before = layers[layer].controls[name]?.status ?? "absent";
      const allowed = before === "absent" ? verdict.status === "enforced" : before !== "degraded" && verdict.status === before;
      if (!allowed) throw new CordonError("internal", `provider ${provider}: its report amendment of ${layer}.${name} (${before} -> ${verdict.status}) is refused: a provider may reword an enforced or off control, or add an enforced one`);
    }
    out[layer] = layerReport({ ...layers[layer].controls, ...controls });
  }
  return out;
}

/**
 * The wrapper: run every layer (pure), collect verdicts, refuse under `fail` when any
 * control is degraded (nothing is spawned), else render ONE argv for ONE spawn.
 */
export function composePlan(input: PlanInput, provider: Provider, probe: ProviderProbe, hostEnv: Record<string, string | undefined> = process.env): SpawnPlan {
  const { policy, job, host } = input;
  if (!probe.available) throw new SandboxUnavailableError(provider.name, [probe.reason ?? "provider unavailable"]);
  const capabilities = provider.capabilities(probe, host);
  const { spec, layers: verdicts } = composeSpec(input, capabilities, layoutOf(provider, input.workspace), hostEnv);
  const downgrades = listDowngrades(verdicts);
  if (policy.onUnavailable === "fail" && downgrades.length > 0) throw new SandboxUnavailableError(provider.name, refusalReasons(verdicts));

  const secrets = input.secrets ?? [];
  const rendering = provider.render(spec, { probe, host, workspace: input.workspace, secrets });
  const launch = rendering.launch;
  checkLauncherInput(spec, launch, { textConfig: provider.textConfig === true });
  // Amendments never touch a degraded control: the downgrades above stand as listed.
  const layers = amendLayers(provider.name, verdicts, rendering.amendments ?? {});
  const report: EffectiveSandboxReport = {
    provider: { name: provider.name, version: probe.version, isolating: capabilities.isolating },
    runner: { name: job.runner, readOnlyBinds: job.readOnlyBinds.map((b) => (b.source === b.target ? b.source : `${b.source} -> ${b.target}`)), notes: job.notes ?? [] },
    onUnavailable: policy.onUnavailable,
    requested: policy,
    layers,
    downgrades,
    host,
    // The whole command line, launcher arguments included, with secret values masked.
    argv: [
      ...(launch.spawnAs ? [`<spawned as uid ${launch.spawnAs.uid} gid ${launch.spawnAs.gid}, no supplementary groups>`] : []),
      ...maskDeep([...launch.argv, ...(launch.launcherArgs ? [`<fd ${LAUNCHER_ARGS_FD}:`, ...launch.launcherArgs, ">"] : [])], secrets),
      ...(launch.seccompBpf ? [`<fd ${SECCOMP_FD}: ${launch.seccompBpf.length / 8}-instruction BPF program (${spec.privilege.syscallFilter?.length ?? 0} rules)>`] : []),
      ...(rendering.reportAppendix ?? []),
    ],
  };
  return {
    ...launch,
    stage: [...spec.filesystem.stage, ...jobStage(input), ...(rendering.stage ?? [])],
    scratch: { quotaBytes: spec.resources.scratchQuotaBytes, owner: spec.privilege.hostDrop },
    freshKeyring: spec.privilege.freshKeyring,
    wallMs: spec.resources.wallMs,
    cgroup: spec.resources.cgroup,
    maxOutputBytes: spec.resources.maxOutputBytes,
    maxStdinBytes: spec.resources.maxStdinBytes,
    report,
    spec,
  };
}
