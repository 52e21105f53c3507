/**
 * A collector as data: its stored shapes (schema, version, migrations; the aggregate as
 * fields), `execute` and `mergeResult`, free of any `Versioned` class. One definition
 * builds cordon's CollectorStrategy here (collectorFromDefinition) and checkstack's in
 * cordon/checkstack (with checkstack's own classes, which its CollectorStrategy requires:
 * they have private members, so no look-alike class can stand in for them).
 */
import type { z } from "zod";
import { VersionedAggregated, type AggregatedFields, type InferAggregated } from "./fields.ts";
import type { CollectorExecuteParams, CollectorResult, CollectorStrategy, HealthCheckRunForAggregation, PluginMetadata, TransportClient } from "./strategy.ts";
import { Versioned, type Migration } from "./versioned.ts";

/** What a `Versioned` is built from. */
export interface VersionedSpec<T> {
  version: number;
  schema: z.ZodType<T>;
  migrations?: readonly Migration[];
}

/** What a `VersionedAggregated` is built from. */
export interface AggregatedSpec<F extends AggregatedFields> {
  version: number;
  fields: F;
  migrations?: readonly Migration[];
}

export interface CollectorDefinition<TClient extends TransportClient<unknown, unknown>, TConfig, TResult, F extends AggregatedFields> {
  id: string;
  displayName: string;
  description?: string;
  supportedPlugins: PluginMetadata[];
  allowMultiple?: boolean;
  config: VersionedSpec<TConfig>;
  result: VersionedSpec<TResult>;
  aggregatedResult: AggregatedSpec<F>;
  execute(params: CollectorExecuteParams<TClient, TConfig>): Promise<CollectorResult<TResult>>;
  mergeResult(existing: InferAggregated<F> | undefined, newRun: HealthCheckRunForAggregation<TResult>): InferAggregated<F>;
}

/** The definition as cordon's CollectorStrategy (cordon's Versioned and VersionedAggregated). */
export function collectorFromDefinition<TClient extends TransportClient<unknown, unknown>, TConfig, TResult, F extends AggregatedFields>(
  definition: CollectorDefinition<TClient, TConfig, TResult, F>,
): CollectorStrategy<TClient, TConfig, TResult, InferAggregated<F>> {
  const { config, result, aggregatedResult, execute, mergeResult, ...about } = definition;
  return {
    ...about,
    config: new Versioned(config),
    result: new Versioned(result),
    aggregatedResult: new VersionedAggregated(aggregatedResult),
    execute,
    mergeResult,
  };
}
