/**
 * The plugins shipped with cordon (the package entry `cordon/plugins`): the providers and
 * runners a composition root registers (CLI, examples, an application), and the health-check
 * collectors built on them. test/public-api.test.ts pins these names.
 */
export {
  BwrapProvider,
  builtinProviders,
  builtinRunners,
  EsmRunner,
  NsjailProvider,
  PythonRunner,
  RootlessProvider,
  ShellRunner,
  UnsafeNoIsolationProvider,
} from "./builtin.ts";

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
