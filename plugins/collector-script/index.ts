/**
 * Script collectors for health-check backends: `cordon.shell`, `cordon.python`
 * and `cordon.esm` run a check script in a cordon sandbox over a
 * `cordonClient` and report its verdict, timing and effective sandbox.
 */
import {
  collectorFromDefinition,
  maskText,
  runContextEnv,
  secretValues,
  weakSecretMessage,
  weakSecretNames,
  type CollectorDefinition,
  type CollectorExecuteParams,
  type CollectorResult,
  type CollectorStrategy,
  type RunRequest,
  type RunResult,
  type TransportClient,
} from "../../src/api/index.ts";
import { mergeScriptResult, scriptAggregatedSpec, type SCRIPT_AGGREGATED_FIELDS, type ScriptAggregated } from "./aggregate.ts";
import { scriptConfigSpec, type ScriptConfig } from "./config.ts";
import { buildRunRequest, type ScriptRunner } from "./request.ts";
import { maskScriptResult, scriptResultSpec, toScriptResult, type ScriptResult } from "./result.ts";

export { healthStatus, maskScriptResult, OUTPUT_CAP_BYTES, ScriptResultSchema, type ScriptResult } from "./result.ts";
export { ScriptConfigSchema, type ScriptConfig } from "./config.ts";
export { SCRIPT_AGGREGATED_FIELDS, ScriptAggregatedSchema, type ScriptAggregated } from "./aggregate.ts";
export { buildRunRequest, type ScriptRunner } from "./request.ts";

export type ScriptClient = TransportClient<RunRequest, RunResult>;
export type ScriptCollector = CollectorStrategy<ScriptClient, ScriptConfig, ScriptResult, ScriptAggregated>;
/** A script collector as data: cordon's strategy is built from it here, checkstack's in cordon/checkstack. */
export type ScriptCollectorDefinition = CollectorDefinition<ScriptClient, ScriptConfig, ScriptResult, typeof SCRIPT_AGGREGATED_FIELDS>;

/** The transport strategy these collectors run over. */
export const CORDON_PLUGIN_ID = "cordon";

const DESCRIBE: Record<ScriptRunner, { displayName: string; description: string }> = {
  shell: { displayName: "Shell script (sandboxed)", description: "A /bin/sh check in a cordon sandbox; report with `cordon-result STATUS [MSG] [NAME=NUM...]` or the exit code (0 ok, 1 warn, 2 crit)." },
  python: { displayName: "Python script (sandboxed)", description: "A python3 check in a cordon sandbox; report with `import cordon; cordon.result(...)` or the exit code." },
  esm: { displayName: "JavaScript/TypeScript (sandboxed)", description: "A Bun check in a cordon sandbox: an inline body returning `{ success, message, value }`, or a module's default export. Without cgroups (non-root supervisor) Bun has no memory cap: give it `policy.onUnavailable: \"degrade\"` there." },
};

/** A result for a run that produced nothing usable; `error` is already masked. */
function unknownResult(error: string): CollectorResult<ScriptResult> {
  const result: ScriptResult = { status: "unknown", message: error, exitCode: null, executionTimeMs: 0, timedOut: false, outputTruncated: false, sandbox: null };
  return { result, error };
}

async function execute(runner: ScriptRunner, params: CollectorExecuteParams<ScriptClient, ScriptConfig>): Promise<CollectorResult<ScriptResult>> {
  // Just-in-time secrets win over stored ones of the same name.
  const secretEnv = { ...params.config.secretEnv, ...params.secretEnv };
  const secrets = secretValues(secretEnv);
  // A secret too short to mask is refused here too (whatever the client): nothing runs.
  const weak = weakSecretNames(secretEnv);
  if (weak.length > 0) return unknownResult(`error: ${weakSecretMessage(weak)}`); // names the variables, never a value
  let contextEnv: Record<string, string>;
  try {
    contextEnv = runContextEnv(params.runContext);
  } catch (err) {
    // A context value the sandbox cannot carry: the check cannot run as asked; nothing runs.
    return unknownResult(maskText(`error: ${err instanceof Error ? err.message : String(err)}`, secrets));
  }
  let run: RunResult;
  try {
    run = await params.client.exec(buildRunRequest(runner, params.config, secretEnv, contextEnv));
  } catch (err) {
    // Any client, not only cordonClient: a transport that throws is a result, not a crash.
    return unknownResult(maskText(`error: ${err instanceof Error ? err.message : String(err)}`, secrets));
  }
  // The script's data masked once more (defence in depth should the client not mask);
  // cordon's structure (status, flags, layer names) is never masked.
  const result = maskScriptResult(toScriptResult(run, secrets), secrets);
  const failed = run.outcome === "refused" || run.outcome === "error";
  return failed ? { result, error: result.message ?? run.outcome } : { result };
}

export function scriptCollectorDefinition(runner: ScriptRunner): ScriptCollectorDefinition {
  return {
    id: `cordon.${runner}`,
    ...DESCRIBE[runner],
    supportedPlugins: [{ pluginId: CORDON_PLUGIN_ID }],
    allowMultiple: true,
    config: scriptConfigSpec,
    result: scriptResultSpec,
    aggregatedResult: scriptAggregatedSpec,
    execute: (params) => execute(runner, params),
    mergeResult: mergeScriptResult,
  };
}

export function createScriptCollector(runner: ScriptRunner): ScriptCollector {
  return collectorFromDefinition(scriptCollectorDefinition(runner));
}

export const shellCollector = createScriptCollector("shell");
export const pythonCollector = createScriptCollector("python");
export const esmCollector = createScriptCollector("esm");

/** By the short name a backend's config uses. */
export const scriptCollectors: Record<ScriptRunner, ScriptCollector> = { shell: shellCollector, python: pythonCollector, esm: esmCollector };
