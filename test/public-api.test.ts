/**
 * The public entries (package.json `exports`: `cordon`, `cordon/plugin`, `cordon/plugins`), pinned: a name added to or removed from either is an API change
 * and must show up here (and in the README) on purpose, not by an `export *` upstream.
 */
import { describe, expect, test } from "bun:test";

const LIBRARY = [
  "AbsolutePath", "ConfigFileSchema", "ConfigValidationError", "Cordon", "CordonConfigSchema", "CordonError", "DEFAULT_POLICY", "EnvName",
  "EnvValue", "GiB", "IdentityPoolExhaustedError", "JobInputError", "KiB", "LAYER_NAMES", "MIN_SECRET_BYTES", "MiB", "PolicyFileSchema", "PolicyOverrideSchema", "PolicySchema",
  "PolicyValidationError", "RESULT_STATUSES", "SandboxUnavailableError", "UnknownProviderError", "UnknownRunnerError", "Versioned",
  "VersionedAggregated", "VersionedDataError", "averageField", "averageOf", "averageStateSchema", "collectorFromDefinition", "configJsonSchema",
  "cordonClient", "counterField", "counterStateSchema", "describeIssues", "fieldVariable", "formatReport", "maskMetrics", "maskText", "mergeAverage",
  "mergeAverageStates", "mergeCounter", "mergeCounterStates", "mergeMinMax", "mergeMinMaxStates", "mergePolicy", "mergeRate", "mergeRateStates",
  "migrateToCheckstackStates", "minMaxField", "minMaxStateSchema", "parseConfig", "parsePolicy", "parsePolicyOverride", "policyJsonSchema",
  "rateField", "ratePercent", "rateStateSchema", "readinessTable", "resultFromError", "runContextEnv", "runResultToJson", "secretValues",
  "startCordon", "summarizeReport", "toCheckstackSandbox", "weakSecretMessage", "weakSecretNames", "zodIssues",
];

const PLUGIN_CONTRACT = [
  "ALWAYS_BLOCKED_V4", "ALWAYS_BLOCKED_V6", "BLOCK_FD", "CordonError", "DEFAULT_POLICY", "ERRNO", "JOB_FD", "JobInputError", "LAUNCHER_ARGS_FD", "LAUNCHER_STATUS_FD",
  "LAYER_NAMES", "RESULT_FD", "RESULT_FD_ENV", "RlimitError", "SANDBOX_LAYOUT", "SECCOMP_FD", "SYSCALL_RULES", "SYSTEM_PATH", "SandboxUnavailableError", "cachedProbe", "canonicalAddress", "cgroupMechanism",
  "compareIpNets", "composePlan", "composeSpec", "degraded", "describeIssues", "enforced", "findExecutable", "firstUnreachableAncestor", "freshKeyringProblem",
  "interpreterWarmStart", "ipNetContains", "isPlainObject", "layerReport", "loadScript", "maskDeep", "maskText", "mergePolicy", "networkAddress",
  "off", "parseIpNet", "runSystemCommand", "setRlimits", "zodIssues",
];

const PLUGINS = [
  "BwrapProvider", "CORDON_PLUGIN_ID", "EsmRunner", "NsjailProvider", "OUTPUT_CAP_BYTES", "PythonRunner", "RootlessProvider",
  "SANDBOX_HEALTH_AGGREGATED_FIELDS", "SCRIPT_AGGREGATED_FIELDS", "ScriptAggregatedSchema", "ScriptConfigSchema", "ScriptResultSchema",
  "ShellRunner", "UnsafeNoIsolationProvider", "builtinProviders", "builtinRunners", "createScriptCollector", "esmCollector", "healthStatus",
  "maskScriptResult", "pythonCollector", "readinessClient", "sandboxHealthCollector", "sandboxHealthDefinition", "scriptCollectorDefinition",
  "scriptCollectors", "shellCollector",
];

describe("public entries", () => {
  test("the library entry (src/api/index.ts) exports exactly these runtime names", async () => {
    expect(Object.keys(await import("../src/api/index.ts")).sort()).toEqual([...LIBRARY].sort());
  });

  test("the plugin contract (src/api/plugin.ts) exports exactly these runtime names", async () => {
    expect(Object.keys(await import("../src/api/plugin.ts")).sort()).toEqual([...PLUGIN_CONTRACT].sort());
  });

  test("the shipped plugins (plugins/index.ts) export exactly these runtime names", async () => {
    expect(Object.keys(await import("../plugins/index.ts")).sort()).toEqual([...PLUGINS].sort());
  });

  test("package.json maps each package name to its entry", async () => {
    const { exports } = await Bun.file(new URL("../package.json", import.meta.url)).json();
    expect(exports).toMatchObject({ ".": "./src/api/index.ts", "./plugin": "./src/api/plugin.ts", "./plugins": "./plugins/index.ts", "./checkstack": "./plugins/checkstack.ts" });
  });
});
