/**
 * A collector's aggregate, declared as fields: each field is an aggregation kind (average,
 * rate, counter, minmax) and its chart metadata. From the fields come the stored schema and
 * the merge of two buckets, here for cordon's `VersionedAggregated` and, through the same
 * declaration, for checkstack's (cordon/checkstack builds its fields with checkstack's own
 * factories).
 */
import { z } from "zod";
import {
  averageOf,
  averageStateSchema,
  counterStateSchema,
  mergeAverageStates,
  mergeCounterStates,
  mergeMinMaxStates,
  mergeRateStates,
  minMaxStateSchema,
  ratePercent,
  rateStateSchema,
  type AverageState,
  type CounterState,
  type MinMaxState,
  type RateState,
} from "./aggregate.ts";
import { Versioned, type Migration } from "./versioned.ts";

export type AggregationType = "average" | "rate" | "counter" | "minmax";

/** How a monitoring backend charts a field (checkstack's `x-chart-*` keys). */
export type ChartType = "line" | "gauge" | "counter";

/**
 * Chart metadata of an aggregated field. Anomaly detection stays off: whether a change
 * is an incident is the backend operator's call, not the collector's.
 */
export interface ChartMeta {
  "x-chart-type": ChartType;
  "x-chart-label"?: string;
  "x-chart-unit"?: string;
  "x-anomaly-enabled": false;
}

export interface AggregatedFieldSpec<K extends AggregationType = AggregationType> {
  type: K;
  meta: ChartMeta;
}

export type AggregatedFields = Record<string, AggregatedFieldSpec>;

interface StateOf {
  average: AverageState;
  rate: RateState;
  counter: CounterState;
  minmax: MinMaxState;
}

/** The stored aggregate of `F`: each field's state. */
export type InferAggregated<F extends AggregatedFields> = { [K in keyof F]: StateOf[F[K]["type"]] };

export const averageField = (meta: ChartMeta): AggregatedFieldSpec<"average"> => ({ type: "average", meta });
export const rateField = (meta: ChartMeta): AggregatedFieldSpec<"rate"> => ({ type: "rate", meta });
export const counterField = (meta: ChartMeta): AggregatedFieldSpec<"counter"> => ({ type: "counter", meta });
export const minMaxField = (meta: ChartMeta): AggregatedFieldSpec<"minmax"> => ({ type: "minmax", meta });

const STATE_SCHEMAS: Record<AggregationType, z.ZodType> = { average: averageStateSchema, rate: rateStateSchema, counter: counterStateSchema, minmax: minMaxStateSchema };
const INITIAL: { [K in AggregationType]: StateOf[K] } = {
  average: { _type: "average", _sum: 0, _count: 0, avg: 0 },
  rate: { _type: "rate", _success: 0, _total: 0, rate: 0 },
  counter: { _type: "counter", count: 0 },
  minmax: { _type: "minmax", min: 0, max: 0 },
};

function mergeStates(type: AggregationType, a: unknown, b: unknown): unknown {
  switch (type) {
    case "average":
      return mergeAverageStates(a as AverageState, b as AverageState);
    case "rate":
      return mergeRateStates(a as RateState, b as RateState);
    case "counter":
      return mergeCounterStates(a as CounterState, b as CounterState);
    case "minmax":
      return mergeMinMaxStates(a as MinMaxState, b as MinMaxState);
  }
}

export interface VersionedAggregatedOptions<F extends AggregatedFields> {
  version: number;
  fields: F;
  migrations?: readonly Migration[];
}

/** A stored aggregate (versioned like any stored data) that also knows how to merge two buckets of itself. */
export class VersionedAggregated<F extends AggregatedFields> extends Versioned<InferAggregated<F>> {
  readonly fields: F;

  constructor(options: VersionedAggregatedOptions<F>) {
    const shape = Object.fromEntries(Object.entries(options.fields).map(([key, field]) => [key, STATE_SCHEMAS[field.type]]));
    super({ version: options.version, schema: z.object(shape) as unknown as z.ZodType<InferAggregated<F>>, migrations: options.migrations });
    this.fields = options.fields;
  }

  /** Two buckets into one, field by field; a field missing on one side is taken from the other. */
  mergeAggregatedStates(a: InferAggregated<F> | undefined, b: InferAggregated<F>): InferAggregated<F> {
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(this.fields)) {
      const left = (a as Record<string, unknown> | undefined)?.[key];
      const right = (b as Record<string, unknown>)[key];
      out[key] = left !== undefined && right !== undefined ? mergeStates(field.type, left, right) : (left ?? right ?? INITIAL[field.type]);
    }
    return out as InferAggregated<F>;
  }
}

/**
 * The upgrade of an aggregate cordon stored before it followed checkstack's states: a minmax
 * state loses its `_count`, averages and rates are recomputed from their sums at checkstack's
 * rounding. Counters are unchanged; anything else in the record is left to the new schema to judge.
 */
export function migrateToCheckstackStates(fields: AggregatedFields, fromVersion: number): Migration {
  return {
    fromVersion,
    toVersion: fromVersion + 1,
    description: "aggregate states as checkstack's: minmax without _count, averages to 1 decimal, rates to whole percent",
    migrate(data) {
      if (typeof data !== "object" || data === null) throw new Error("the stored aggregate must be an object");
      const out: Record<string, unknown> = { ...(data as Record<string, unknown>) };
      for (const [key, field] of Object.entries(fields)) {
        const state = out[key];
        if (typeof state !== "object" || state === null) continue;
        const s = state as Record<string, unknown>;
        if (field.type === "minmax") {
          const { _count: _dropped, ...rest } = s;
          out[key] = rest;
        } else if (field.type === "average" && typeof s._sum === "number" && typeof s._count === "number") {
          out[key] = { ...s, avg: averageOf(s._sum, s._count) };
        } else if (field.type === "rate" && typeof s._success === "number" && typeof s._total === "number") {
          out[key] = { ...s, rate: ratePercent(s._success, s._total) };
        }
      }
      return out;
    },
  };
}
