/**
 * The plugins shipped with cordon (the package entry `cordon/plugins`): the providers and
 * runners a composition root registers (CLI, examples, an application), and the health-check
 * collectors built on them. test/public-api.test.ts pins these names.
 */
import type { Provider, Runner } from "../src/api/plugin.ts";
import { BwrapProvider } from "./provider-bwrap/index.ts";
import { UnsafeNoIsolationProvider } from "./provider-unsafe/index.ts";
import { RootlessProvider } from "./provider-rootless/index.ts";
import { NsjailProvider } from "./provider-nsjail/index.ts";
import { ShellRunner } from "./runner-shell/index.ts";
import { PythonRunner } from "./runner-python/index.ts";
import { EsmRunner } from "./runner-esm/index.ts";

export { BwrapProvider, RootlessProvider, NsjailProvider, UnsafeNoIsolationProvider, ShellRunner, PythonRunner, EsmRunner };

export function builtinProviders(): Provider[] {
  return [new BwrapProvider(), new RootlessProvider(), new NsjailProvider(), new UnsafeNoIsolationProvider()];
}

export function builtinRunners(): Runner[] {
  return [new ShellRunner(), new PythonRunner(), new EsmRunner()];
}

export {
  CORDON_PLUGIN_ID,
  createScriptCollector,
  esmCollector,
  healthStatus,
  maskScriptResult,
  OUTPUT_CAP_BYTES,
  pythonCollector,
  SCRIPT_AGGREGATED_FIELDS,
  ScriptAggregatedSchema,
  ScriptConfigSchema,
  scriptCollectorDefinition,
  scriptCollectors,
  ScriptResultSchema,
  shellCollector,
  type ScriptAggregated,
  type ScriptClient,
  type ScriptCollector,
  type ScriptCollectorDefinition,
  type ScriptConfig,
  type ScriptResult,
  type ScriptRunner,
} from "./collector-script/index.ts";
export {
  readinessClient,
  SANDBOX_HEALTH_AGGREGATED_FIELDS,
  sandboxHealthCollector,
  sandboxHealthDefinition,
  type HealthClient,
  type HealthCommand,
  type HealthReading,
  type SandboxHealthAggregated,
  type SandboxHealthConfig,
  type SandboxHealthDefinition,
  type SandboxHealthResult,
} from "./collector-sandbox-health/index.ts";
