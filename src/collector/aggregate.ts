/**
 * Incremental aggregation for `mergeResult`: each state keeps just enough
 * (`_`-prefixed bookkeeping) to fold in one more run, so a bucket costs O(1)
 * memory however many runs it covers. Every helper is pure; `existing`
 * undefined means the first run of the bucket.
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
  /** `_sum / _count` rounded to 2 decimals; 0 while `_count` is 0. */
  avg: z.number(),
});
export type AverageState = z.infer<typeof averageStateSchema>;

export const rateStateSchema = z.object({
  _type: z.literal("rate"),
  _success: z.number().int().nonnegative(),
  _total: z.number().int().nonnegative(),
  /** Percent 0..100, see `ratePercent`; 0 while `_total` is 0. */
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
  /** Values seen; while 0, `min` and `max` are placeholders (0), not observations. */
  _count: z.number().int().nonnegative(),
  min: z.number(),
  max: z.number(),
});
export type MinMaxState = z.infer<typeof minMaxStateSchema>;

/** Existing states are accepted with or without `_type`; outputs always carry it. */
type Untyped<S> = Omit<S, "_type">;

function measured(value: number | undefined): value is number {
  return value !== undefined && Number.isFinite(value);
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

export function mergeAverage(existing: Untyped<AverageState> | undefined, value: number | undefined): AverageState {
  const sum = (existing?._sum ?? 0) + (measured(value) ? value : 0);
  const count = (existing?._count ?? 0) + (measured(value) ? 1 : 0);
  return { _type: "average", _sum: sum, _count: count, avg: count === 0 ? 0 : round2(sum / count) };
}

export function mergeRate(existing: Untyped<RateState> | undefined, success: boolean | undefined): RateState {
  const successes = (existing?._success ?? 0) + (success === true ? 1 : 0);
  const total = (existing?._total ?? 0) + (success === undefined ? 0 : 1);
  return { _type: "rate", _success: successes, _total: total, rate: ratePercent(successes, total) };
}

/**
 * Percent to 2 decimals, but never rounded onto a boundary it did not reach:
 * one failure in 100 000 runs reads 99.99, not 100, and one success reads 0.01,
 * not 0, because "100%" and "0%" are what alerts and status pages key on.
 */
export function ratePercent(successes: number, total: number): number {
  if (total <= 0) return 0;
  if (successes >= total) return 100;
  if (successes <= 0) return 0;
  return Math.min(Math.max(round2((successes / total) * 100), 0.01), 99.99);
}

/** `true` counts 1, `false` 0, a number is added as is (skipped when not finite). */
export function mergeCounter(existing: Untyped<CounterState> | undefined, increment: boolean | number): CounterState {
  const step = typeof increment === "boolean" ? Number(increment) : measured(increment) ? increment : 0;
  return { _type: "counter", count: (existing?.count ?? 0) + step };
}

export function mergeMinMax(existing: Untyped<MinMaxState> | undefined, value: number | undefined): MinMaxState {
  const count = existing?._count ?? 0;
  if (!measured(value)) return { _type: "minmax", _count: count, min: existing?.min ?? 0, max: existing?.max ?? 0 };
  if (existing === undefined || count === 0) return { _type: "minmax", _count: 1, min: value, max: value };
  return { _type: "minmax", _count: count + 1, min: Math.min(existing.min, value), max: Math.max(existing.max, value) };
}
