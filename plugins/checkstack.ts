/**
 * cordon in a checkstack backend (the package entry `cordon/checkstack`): the shell, Python,
 * ESM and sandbox-health collectors as real checkstack `CollectorStrategy`s, and a `cordon`
 * transport strategy whose client runs them.
 *
 * checkstack's `CollectorStrategy` requires its own `Versioned` and `VersionedAggregated`
 * (classes with private members, so nothing else can stand in for them). The backend hands
 * its @checkstack/backend-api module in (`import * as checkstack from
 * "@checkstack/backend-api"`) and each collector's definition is built with those classes
 * and aggregate-field factories. Only types are imported from checkstack here, so cordon
 * loads none of it: it is a peer the backend already has, not a dependency. (This file is
 * type-checked against the real package by test/checkstack-compat.test.ts, not by
 * `bun run typecheck`, which must pass where the package cannot be fetched.)
 */
import type * as Checkstack from "@checkstack/backend-api";
import type { AggregatedResultShape, CollectorStrategy, ConnectedClient, HealthCheckStrategy } from "@checkstack/backend-api";
import { z } from "zod";
import { cordonClient, type AggregatedFields, type CollectorDefinition, type Cordon, type InferAggregated, type RunRequest, type RunResult, type TransportClient } from "../src/api/index.ts";
import { CORDON_PLUGIN_ID, scriptCollectorDefinition, type ScriptAggregated, type ScriptClient, type ScriptConfig, type ScriptResult } from "./collector-script/index.ts";
import {
  readinessClient,
  sandboxHealthDefinition,
  type HealthClient,
  type HealthCommand,
  type HealthReading,
  type SandboxHealthAggregated,
  type SandboxHealthConfig,
  type SandboxHealthResult,
} from "./collector-sandbox-health/index.ts";

/** What cordon takes from @checkstack/backend-api: pass the module itself. */
export type CheckstackKit = Pick<typeof Checkstack, "Versioned" | "VersionedAggregated" | "aggregatedAverage" | "aggregatedRate" | "aggregatedCounter" | "aggregatedMinMax">;

/** A cordon aggregate declaration as checkstack's fields, made by checkstack's own factories (chart metadata registered there). */
function checkstackFields(kit: CheckstackKit, fields: AggregatedFields): AggregatedResultShape {
  const factory = { average: kit.aggregatedAverage, rate: kit.aggregatedRate, counter: kit.aggregatedCounter, minmax: kit.aggregatedMinMax };
  return Object.fromEntries(Object.entries(fields).map(([key, field]) => [key, factory[field.type](field.meta)]));
}

/**
 * Any cordon collector definition as a checkstack CollectorStrategy. `pluginId`: the backend
 * plugin that registers the `cordon` transport (the collectors run over its clients).
 */
export function toCheckstackCollector<TClient extends TransportClient<unknown, unknown>, TConfig, TResult, F extends AggregatedFields>(
  kit: CheckstackKit,
  definition: CollectorDefinition<TClient, TConfig, TResult, F>,
  pluginId = CORDON_PLUGIN_ID,
): CollectorStrategy<TClient, TConfig, TResult, InferAggregated<F>> {
  const { config, result, aggregatedResult, execute, mergeResult, supportedPlugins: _replacedByPluginId, ...about } = definition;
  return {
    ...about,
    supportedPlugins: [{ pluginId }],
    config: new kit.Versioned<TConfig>({ version: config.version, schema: config.schema, migrations: [...(config.migrations ?? [])] }),
    result: new kit.Versioned<TResult>({ version: result.version, schema: result.schema, migrations: [...(result.migrations ?? [])] }),
    aggregatedResult: new kit.VersionedAggregated({
      version: aggregatedResult.version,
      fields: checkstackFields(kit, aggregatedResult.fields),
      migrations: [...(aggregatedResult.migrations ?? [])],
    }),
    // checkstack passes runContext and secretEnv along with config, client and pluginId: all read by cordon's execute.
    execute: (params) => execute(params),
    mergeResult,
  };
}

export interface CheckstackCollectors {
  shell: CollectorStrategy<ScriptClient, ScriptConfig, ScriptResult, ScriptAggregated>;
  python: CollectorStrategy<ScriptClient, ScriptConfig, ScriptResult, ScriptAggregated>;
  esm: CollectorStrategy<ScriptClient, ScriptConfig, ScriptResult, ScriptAggregated>;
  sandboxHealth: CollectorStrategy<HealthClient, SandboxHealthConfig, SandboxHealthResult, SandboxHealthAggregated>;
}

/**
 * cordon's four collectors for checkstack. `provider`: the Cordon's configured provider (the
 * sandbox-health check is healthy when that one is proven); `pluginId`: see toCheckstackCollector.
 */
export function checkstackCollectors(kit: CheckstackKit, options: { provider: string; pluginId?: string }): CheckstackCollectors {
  const build = <C, R, F extends AggregatedFields, T extends TransportClient<unknown, unknown>>(d: CollectorDefinition<T, C, R, F>) => toCheckstackCollector(kit, d, options.pluginId);
  return {
    shell: build(scriptCollectorDefinition("shell")),
    python: build(scriptCollectorDefinition("python")),
    esm: build(scriptCollectorDefinition("esm")),
    sandboxHealth: build(sandboxHealthDefinition(options.provider)),
  };
}

export type CordonCommand = RunRequest | HealthCommand;

/** One client for every cordon collector (checkstack gives all of a transport's collectors the same client). */
export interface CordonTransportClient extends TransportClient<CordonCommand, RunResult | HealthReading> {
  exec(command: RunRequest): Promise<RunResult>;
  exec(command: HealthCommand): Promise<HealthReading>;
}

function isHealthCommand(command: CordonCommand): command is HealthCommand {
  return (command as Partial<HealthCommand>).kind === "readiness";
}

/** Script runs go to `cordonClient`, readiness commands to `readinessClient`, on the same Cordon. */
export function cordonTransportClient(cordon: Cordon): CordonTransportClient {
  const runs = cordonClient(cordon);
  const readiness = readinessClient(cordon);
  const exec = (command: CordonCommand): Promise<RunResult | HealthReading> => (isHealthCommand(command) ? readiness.exec(command) : runs.exec(command));
  return { exec: exec as CordonTransportClient["exec"] };
}

/** checkstack's base strategy config: its executor's timeout for one check. */
const TransportConfigSchema = z.object({
  timeout: z.number().int().min(100).default(30_000).describe("Execution timeout in milliseconds (each script's own timeoutMs still applies inside)"),
});
export type CordonTransportConfig = z.output<typeof TransportConfigSchema>;

/**
 * The `cordon` transport: a checkstack HealthCheckStrategy whose client is a Cordon (runs
 * and readiness). Register it from the plugin whose id the collectors were built with.
 * It aggregates nothing of its own: checkstack keeps the run counts and latency, the
 * collectors keep the rest.
 */
export function cordonHealthCheckStrategy(kit: CheckstackKit, cordon: Cordon): HealthCheckStrategy<CordonTransportConfig, CordonTransportClient> {
  return {
    id: "cordon",
    displayName: "cordon sandbox",
    description: "Runs check scripts (shell, Python, JavaScript/TypeScript) in a cordon sandbox on this host; add cordon's collectors to it.",
    config: new kit.Versioned<CordonTransportConfig>({ version: 1, schema: TransportConfigSchema }),
    aggregatedResult: new kit.VersionedAggregated({ version: 1, fields: {} }),
    async createClient(): Promise<ConnectedClient<CordonTransportClient>> {
      // The Cordon outlives each check: nothing to open or close per run.
      return { client: cordonTransportClient(cordon), close() {} };
    },
    mergeResult: () => ({}),
  };
}
