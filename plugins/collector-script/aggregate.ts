/**
 * Per-bucket aggregate of a script collector, declared as fields (checkstack's aggregation
 * kinds and chart metadata) and folded one run at a time with the shared helpers, so a
 * bucket costs O(1) however many runs it covers.
 *
 * v1 (cordon's own states: minmax with `_count`, rates and averages to 2 decimals) is
 * migrated to v2, checkstack's states, so a bucket either side stored merges on the other.
 */
import {
  averageField,
  counterField,
  mergeAverage,
  mergeCounter,
  mergeMinMax,
  mergeRate,
  migrateToCheckstackStates,
  minMaxField,
  rateField,
  VersionedAggregated,
  type AggregatedSpec,
  type HealthCheckRunForAggregation,
  type InferAggregated,
} from "../../src/api/index.ts";
import type { ScriptResult } from "./result.ts";

export const SCRIPT_AGGREGATED_FIELDS = {
  avgExecutionTimeMs: averageField({ "x-chart-type": "line", "x-chart-label": "Average execution time", "x-chart-unit": "ms", "x-anomaly-enabled": false }),
  executionTimeMs: minMaxField({ "x-chart-type": "line", "x-chart-label": "Execution time (min/max)", "x-chart-unit": "ms", "x-anomaly-enabled": false }),
  /** Percent of runs whose health was `healthy`. */
  successRate: rateField({ "x-chart-type": "gauge", "x-chart-label": "Healthy runs", "x-chart-unit": "%", "x-anomaly-enabled": false }),
  timeoutCount: counterField({ "x-chart-type": "counter", "x-chart-label": "Timeouts", "x-anomaly-enabled": false }),
  /** Runs that could not judge the target: refused, bad input, no result (status unknown). */
  unknownCount: counterField({ "x-chart-type": "counter", "x-chart-label": "Unknown results", "x-anomaly-enabled": false }),
  /** Runs that went ahead with fewer sandbox controls than asked for (`onUnavailable: degrade`). */
  sandboxDowngradedCount: counterField({ "x-chart-type": "counter", "x-chart-label": "Runs with sandbox downgrades", "x-anomaly-enabled": false }),
};

export type ScriptAggregated = InferAggregated<typeof SCRIPT_AGGREGATED_FIELDS>;

export const scriptAggregatedSpec: AggregatedSpec<typeof SCRIPT_AGGREGATED_FIELDS> = {
  version: 2,
  fields: SCRIPT_AGGREGATED_FIELDS,
  migrations: [migrateToCheckstackStates(SCRIPT_AGGREGATED_FIELDS, 1)],
};

export const scriptAggregated = new VersionedAggregated(scriptAggregatedSpec);
export const ScriptAggregatedSchema = scriptAggregated.schema;

/** Pure: the caller stores what it returns. */
export function mergeScriptResult(existing: ScriptAggregated | undefined, run: HealthCheckRunForAggregation<ScriptResult>): ScriptAggregated {
  const result = run.metadata;
  // A run that never started took no time: counting its 0 would flatter the average.
  const ranMs = result ? (result.sandbox ? result.executionTimeMs : undefined) : run.latencyMs;
  // Both timing fields see the same runs: while the average has counted none, the range holds
  // checkstack's initial { 0, 0 }, which is no observation.
  const measuredBefore = (existing?.avgExecutionTimeMs._count ?? 0) > 0;
  return {
    avgExecutionTimeMs: mergeAverage(existing?.avgExecutionTimeMs, ranMs),
    executionTimeMs: mergeMinMax(measuredBefore ? existing?.executionTimeMs : undefined, ranMs),
    successRate: mergeRate(existing?.successRate, run.status === "healthy"),
    timeoutCount: mergeCounter(existing?.timeoutCount, result?.timedOut ?? false),
    unknownCount: mergeCounter(existing?.unknownCount, result?.status === "unknown"),
    sandboxDowngradedCount: mergeCounter(existing?.sandboxDowngradedCount, (result?.sandbox?.downgrades.length ?? 0) > 0),
  };
}
