/**
 * Incremental aggregation for `mergeResult`: each state keeps just enough
 * (`_`-prefixed bookkeeping) to fold in one more run, so a bucket costs O(1)
 * memory however many runs it covers. Every helper is pure; `existing`
 * undefined means the first run of the bucket.
 *
 * The states and their rounding are checkstack's (@checkstack/backend-api's
 * incremental aggregation), so a bucket either side wrote folds on the other:
 * averages to 1 decimal, rates to whole percent, min/max as `{ min, max }`.
 * checkstack re-aggregates buckets with its own state merges, so a value must
 * not depend on which side computed it.
 *
 * An undefined value means "this run did not measure it" and leaves the state
 * as it was. Non-finite numbers (NaN, Infinity) are treated the same way:
 * once folded into a sum they would poison the bucket for good.
 */
import { z } from "zod";

export const averageStateSchema = z.object({
  _type: z.literal("average"),
  _sum: z.number(),
  _count: z.number().int().nonnegative(),
  /** `_sum / _count` rounded to 1 decimal (see averageOf); 0 while `_count` is 0. */
  avg: z.number(),
});
export type AverageState = z.infer<typeof averageStateSchema>;

export const rateStateSchema = z.object({
  _type: z.literal("rate"),
  _success: z.number().int().nonnegative(),
  _total: z.number().int().nonnegative(),
  /** Whole percent 0..100 (see ratePercent); 0 while `_total` is 0. */
  rate: z.number().min(0).max(100),
});
export type RateState = z.infer<typeof rateStateSchema>;

export const counterStateSchema = z.object({
  _type: z.literal("counter"),
  count: z.number(),
});
export type CounterState = z.infer<typeof counterStateSchema>;

export const minMaxStateSchema = z.object({
  _type: z.literal("minmax"),
  /** `{ 0, 0 }` in a bucket that has measured nothing yet (checkstack's initial state). */
  min: z.number(),
  max: z.number(),
});
export type MinMaxState = z.infer<typeof minMaxStateSchema>;

/** Existing states are accepted with or without `_type`; outputs always carry it. */
type Untyped<S> = Omit<S, "_type">;

function measured(value: number | undefined): value is number {
  return value !== undefined && Number.isFinite(value);
}

/** An average as checkstack stores it: 1 decimal (precise enough for load averages, short for charts). */
export function averageOf(sum: number, count: number): number {
  return count > 0 ? Math.round((sum / count) * 10) / 10 : 0;
}

/** A success rate as checkstack stores it: whole percent. */
export function ratePercent(successes: number, total: number): number {
  return total > 0 ? Math.round((successes / total) * 100) : 0;
}

export function mergeAverage(existing: Untyped<AverageState> | undefined, value: number | undefined): AverageState {
  if (!measured(value)) return { _type: "average", _sum: existing?._sum ?? 0, _count: existing?._count ?? 0, avg: existing?.avg ?? 0 };
  const sum = (existing?._sum ?? 0) + value;
  const count = (existing?._count ?? 0) + 1;
  return { _type: "average", _sum: sum, _count: count, avg: averageOf(sum, count) };
}

export function mergeRate(existing: Untyped<RateState> | undefined, success: boolean | undefined): RateState {
  if (success === undefined) return { _type: "rate", _success: existing?._success ?? 0, _total: existing?._total ?? 0, rate: existing?.rate ?? 0 };
  const successes = (existing?._success ?? 0) + (success ? 1 : 0);
  const total = (existing?._total ?? 0) + 1;
  return { _type: "rate", _success: successes, _total: total, rate: ratePercent(successes, total) };
}

/** `true` counts 1, `false` 0, a number is added as is (skipped when not finite). */
export function mergeCounter(existing: Untyped<CounterState> | undefined, increment: boolean | number): CounterState {
  const step = typeof increment === "boolean" ? Number(increment) : measured(increment) ? increment : 0;
  return { _type: "counter", count: (existing?.count ?? 0) + step };
}

/**
 * `existing` undefined starts the range at `value`. A bucket whose first run measured
 * nothing holds checkstack's initial `{ 0, 0 }`; a collector that knows the bucket has no
 * measurement yet (an average's `_count` of 0) passes undefined so that 0 is not taken as one.
 */
export function mergeMinMax(existing: Untyped<MinMaxState> | undefined, value: number | undefined): MinMaxState {
  if (!measured(value)) return { _type: "minmax", min: existing?.min ?? 0, max: existing?.max ?? 0 };
  if (existing === undefined) return { _type: "minmax", min: value, max: value };
  return { _type: "minmax", min: Math.min(existing.min, value), max: Math.max(existing.max, value) };
}

// Two buckets into one (checkstack re-aggregates stored buckets for charts this way).

export function mergeAverageStates(a: Untyped<AverageState>, b: Untyped<AverageState>): AverageState {
  const sum = a._sum + b._sum;
  const count = a._count + b._count;
  return { _type: "average", _sum: sum, _count: count, avg: averageOf(sum, count) };
}

export function mergeRateStates(a: Untyped<RateState>, b: Untyped<RateState>): RateState {
  const successes = a._success + b._success;
  const total = a._total + b._total;
  return { _type: "rate", _success: successes, _total: total, rate: ratePercent(successes, total) };
}

export function mergeCounterStates(a: Untyped<CounterState>, b: Untyped<CounterState>): CounterState {
  return { _type: "counter", count: a.count + b.count };
}

export function mergeMinMaxStates(a: Untyped<MinMaxState>, b: Untyped<MinMaxState>): MinMaxState {
  return { _type: "minmax", min: Math.min(a.min, b.min), max: Math.max(a.max, b.max) };
}
