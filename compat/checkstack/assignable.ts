/**
 * Type-level proof, checked by `tsc -p compat/checkstack` against the real
 * @checkstack/backend-api (test/checkstack-compat.test.ts runs it): cordon's collectors, as
 * cordon/checkstack builds them, are checkstack CollectorStrategys its registry accepts; the
 * transport is a HealthCheckStrategy; the effective-sandbox report has checkstack's shape.
 * Each `@ts-expect-error` line must fail to compile: if the package's types were missing or
 * `any`, those lines would compile and tsc would report the unused directive.
 */
import type { CollectorRegistry, CollectorStrategy, EffectiveSandbox, HealthCheckRegistry, HealthCheckStrategy, TransportClient } from "@checkstack/backend-api";
import type { Cordon, RunRequest, RunResult } from "../../src/api/index.ts";
import { toCheckstackSandbox } from "../../src/api/index.ts";
import { shellCollector, type ScriptAggregated, type ScriptConfig, type ScriptResult } from "../../plugins/index.ts";
import type { HealthClient, SandboxHealthAggregated, SandboxHealthConfig, SandboxHealthResult } from "../../plugins/index.ts";
import { checkstackCollectors, cordonHealthCheckStrategy, type CheckstackKit, type CordonTransportClient } from "../../plugins/checkstack.ts";

type ScriptStrategy = CollectorStrategy<TransportClient<RunRequest, RunResult>, ScriptConfig, ScriptResult, ScriptAggregated>;
type HealthStrategy = CollectorStrategy<HealthClient, SandboxHealthConfig, SandboxHealthResult, SandboxHealthAggregated>;

export function collectorsAreCheckstacks(kit: CheckstackKit): void {
  const collectors = checkstackCollectors(kit, { provider: "bwrap", pluginId: "cordon" });
  const shell: ScriptStrategy = collectors.shell;
  const python: ScriptStrategy = collectors.python;
  const esm: ScriptStrategy = collectors.esm;
  const health: HealthStrategy = collectors.sandboxHealth;
  // What CollectorRegistry.register takes.
  const registrable: CollectorStrategy<TransportClient<unknown, unknown>>[] = [shell, python, esm, health];
  void registrable;

  // @ts-expect-error cordon's own collector is not: checkstack's Versioned has private members, so only its own class fits.
  const native: ScriptStrategy = shellCollector;
  void native;
}

/** The README's worked example, minus the plugin wrapper: what a backend plugin's init does. */
export function registerCordon(kit: CheckstackKit, cordon: Cordon, registries: { healthCheckRegistry: HealthCheckRegistry; collectorRegistry: CollectorRegistry }): void {
  registries.healthCheckRegistry.register(cordonHealthCheckStrategy(kit, cordon));
  const collectors = checkstackCollectors(kit, { provider: cordon.config.provider, pluginId: "cordon" });
  for (const collector of Object.values(collectors)) registries.collectorRegistry.register(collector);
  const strategy: HealthCheckStrategy<{ timeout: number }, CordonTransportClient> = cordonHealthCheckStrategy(kit, cordon);
  void strategy;
}

export function sandboxReportIsCheckstacks(report: Parameters<typeof toCheckstackSandbox>[0]): Omit<EffectiveSandbox, "requested"> {
  return toCheckstackSandbox(report);
}

// @ts-expect-error checkstack's report has no env layer: cordon's layer list alone does not fit it.
export const wrongLayers: EffectiveSandbox["enforced"] = { resources: true, filesystem: true, network: true, privilege: true, env: true };
