/**
 * Per-bucket aggregate of a script collector, folded one run at a time with
 * the shared helpers so a bucket costs O(1) however many runs it covers.
 */
import { z } from "zod";
import {
  averageStateSchema,
  counterStateSchema,
  mergeAverage,
  mergeCounter,
  mergeMinMax,
  mergeRate,
  minMaxStateSchema,
  rateStateSchema,
  Versioned,
  type HealthCheckRunForAggregation,
} from "../../src/api/index.ts";
import type { ScriptResult } from "./result.ts";

export const ScriptAggregatedSchema = z.strictObject({
  avgExecutionTimeMs: averageStateSchema,
  executionTimeMs: minMaxStateSchema,
  /** Percent of runs whose health was `healthy`. */
  successRate: rateStateSchema,
  timeoutCount: counterStateSchema,
  /** Runs that could not judge the target: refused, bad input, no result (status unknown). */
  unknownCount: counterStateSchema,
  /** Runs that went ahead with fewer sandbox controls than asked for (`onUnavailable: degrade`). */
  sandboxDowngradedCount: counterStateSchema,
});
export type ScriptAggregated = z.output<typeof ScriptAggregatedSchema>;

export const scriptAggregated = new Versioned<ScriptAggregated>({ version: 1, schema: ScriptAggregatedSchema });

/** Pure: the caller stores what it returns. */
export function mergeScriptResult(existing: ScriptAggregated | undefined, run: HealthCheckRunForAggregation<ScriptResult>): ScriptAggregated {
  const result = run.metadata;
  // A run that never started took no time: counting its 0 would flatter the average.
  const ranMs = result ? (result.sandbox ? result.executionTimeMs : undefined) : run.latencyMs;
  return {
    avgExecutionTimeMs: mergeAverage(existing?.avgExecutionTimeMs, ranMs),
    executionTimeMs: mergeMinMax(existing?.executionTimeMs, ranMs),
    successRate: mergeRate(existing?.successRate, run.status === "healthy"),
    timeoutCount: mergeCounter(existing?.timeoutCount, result?.timedOut ?? false),
    unknownCount: mergeCounter(existing?.unknownCount, result?.status === "unknown"),
    sandboxDowngradedCount: mergeCounter(existing?.sandboxDowngradedCount, (result?.sandbox?.downgrades.length ?? 0) > 0),
  };
}
