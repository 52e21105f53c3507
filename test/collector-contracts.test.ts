import { afterAll, describe, expect, test } from "bun:test";
import { z } from "zod";
import {
  averageField,
  averageStateSchema,
  mergeAverage,
  mergeCounter,
  mergeMinMax,
  mergeRate,
  migrateToCheckstackStates,
  minMaxField,
  minMaxStateSchema,
  rateField,
  ratePercent,
  rateStateSchema,
  toCheckstackSandbox,
  Versioned,
  VersionedAggregated,
  VersionedDataError,
  type AverageState,
  type CollectorStrategy,
  type InferAggregated,
  type Migration,
  type MinMaxState,
  type RateState,
  type TransportClient,
} from "../src/api/index.ts";
import { freshRunRoot, makeCordon, removeTempDirs } from "./support.ts";

const v3Schema = z.object({ host: z.string(), port: z.number().int().min(1), timeoutMs: z.number().int().positive() });

/** v1 { hostname, port: "22" } -> v2 renames hostname to host -> v3 parses port and adds timeoutMs. */
const v1to2: Migration = {
  fromVersion: 1,
  toVersion: 2,
  description: "rename hostname to host",
  migrate: (d) => {
    const { hostname, ...rest } = d as { hostname: string; port: string };
    return { ...rest, host: hostname };
  },
};
const v2to3: Migration = {
  fromVersion: 2,
  toVersion: 3,
  description: "numeric port, default timeout",
  migrate: (d) => {
    const v2 = d as { host: string; port: string };
    return { ...v2, port: Number(v2.port), timeoutMs: 5000 };
  },
};

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    return e as Error;
  }
  throw new Error("expected an error");
}

describe("Versioned: migration chain", () => {
  test("version 1 needs no migrations", () => {
    expect(new Versioned({ version: 1, schema: v3Schema }).migrations).toEqual([]);
  });

  test("accepts a complete chain in any order", () => {
    const versioned = new Versioned({ version: 3, schema: v3Schema, migrations: [v2to3, v1to2] });
    expect(versioned.migrations.map((m) => m.fromVersion)).toEqual([1, 2]);
  });

  test("missing migrations are rejected", () => {
    expect(() => new Versioned({ version: 3, schema: v3Schema })).toThrow(
      "migration chain stops at v1; missing a migration from v1 to v2",
    );
    expect(() => new Versioned({ version: 3, schema: v3Schema, migrations: [v1to2] })).toThrow(
      "missing a migration from v2 to v3",
    );
  });

  test("a gap is rejected", () => {
    const v3to4: Migration = { fromVersion: 3, toVersion: 4, description: "x", migrate: (d) => d };
    expect(() => new Versioned({ version: 4, schema: v3Schema, migrations: [v1to2, v3to4] })).toThrow(
      "leaves a gap: missing a migration from v2 to v3",
    );
  });

  test("a step that is not +1 is rejected", () => {
    const skip: Migration = { fromVersion: 1, toVersion: 3, description: "jump", migrate: (d) => d };
    expect(() => new Versioned({ version: 3, schema: v3Schema, migrations: [skip] })).toThrow(
      'migration "jump" (v1->v3) must step up by exactly 1',
    );
  });

  test("duplicates, steps past the current version and bad versions are rejected", () => {
    expect(() => new Versioned({ version: 3, schema: v3Schema, migrations: [v1to2, v1to2, v2to3] })).toThrow(
      "a second migration from v1",
    );
    expect(() => new Versioned({ version: 2, schema: v3Schema, migrations: [v1to2, v2to3] })).toThrow(
      "goes past the current version v2",
    );
    expect(() => new Versioned({ version: 0, schema: v3Schema })).toThrow("version must be an integer from 1");
    expect(() => new Versioned({ version: 1.5, schema: v3Schema })).toThrow("version must be an integer from 1");
  });
});

describe("Versioned: parse", () => {
  const config = new Versioned({ version: 3, schema: v3Schema, migrations: [v1to2, v2to3] });

  test("v1 data runs through both migrations into v3", () => {
    expect(config.parse({ version: 1, data: { hostname: "db", port: "5432" } })).toEqual({
      host: "db",
      port: 5432,
      timeoutMs: 5000,
    });
  });

  test("v2 data runs only the last migration", () => {
    expect(config.parse({ version: 2, data: { host: "db", port: "22" } })).toEqual({
      host: "db",
      port: 22,
      timeoutMs: 5000,
    });
  });

  test("current data is validated as is", () => {
    expect(config.parse({ version: 3, data: { host: "a", port: 1, timeoutMs: 9 } })).toEqual({
      host: "a",
      port: 1,
      timeoutMs: 9,
    });
  });

  test("a record newer than the current version is rejected", () => {
    const error = errorOf(() => config.parse({ version: 4, data: {} }));
    expect(error).toBeInstanceOf(VersionedDataError);
    expect(error.message).toBe("stored record is v4, newer than the current v3; it was written by newer code");
  });

  test("a malformed record version is rejected", () => {
    expect(() => config.parse({ version: 0, data: {} })).toThrow("record version must be an integer from 1, got 0");
    expect(() => config.parse({ data: {} } as never)).toThrow("got undefined");
    expect(() => config.parse(null as never)).toThrow("got undefined");
  });

  test("invalid data names the field and the versions", () => {
    const error = errorOf(() => config.parse({ version: 1, data: { hostname: "db", port: "0" } }));
    expect(error).toBeInstanceOf(VersionedDataError);
    expect(error.message).toStartWith("invalid v1 data migrated to v3: port: ");
    expect((error as VersionedDataError).issues.map((i) => i.path)).toEqual(["port"]);
    expect((error as VersionedDataError).recordVersion).toBe(1);

    expect(() => config.parse({ version: 3, data: { host: 7, port: 1, timeoutMs: 1 } })).toThrow(
      /^invalid v3 data: host: /,
    );
  });

  test("a throwing migration is reported with its step and description", () => {
    const error = errorOf(() => config.parse({ version: 1, data: null }));
    expect(error.message).toStartWith("migration v1->v2 (rename hostname to host) failed: ");
    expect(error.cause).toBeInstanceOf(Error);
  });

  test("safeParse returns the error instead of throwing", () => {
    const ok = config.safeParse({ version: 2, data: { host: "h", port: "80" } });
    expect(ok).toEqual({ success: true, data: { host: "h", port: 80, timeoutMs: 5000 } });
    const bad = config.safeParse({ version: 9, data: {} });
    expect(bad.success).toBe(false);
    if (!bad.success) expect(bad.error.message).toContain("newer than the current v3");
  });

  test("create stamps the current version and validates", () => {
    expect(config.create({ host: "h", port: 2, timeoutMs: 3 })).toEqual({
      version: 3,
      data: { host: "h", port: 2, timeoutMs: 3 },
    });
    expect(() => config.create({ host: "h", port: -1, timeoutMs: 3 })).toThrow(/^invalid v3 data: port: /);
  });

  test("create returns the schema's output (defaults applied, unknown keys stripped)", () => {
    const withDefault = new Versioned({ version: 1, schema: z.object({ n: z.number().default(4) }) });
    expect(withDefault.create({ extra: 1 } as never)).toEqual({ version: 1, data: { n: 4 } });
  });
});

describe("aggregation helpers", () => {
  test("mergeAverage over a sequence with gaps", () => {
    let state: AverageState | undefined;
    const seen: number[] = [];
    for (const value of [undefined, 10, undefined, 20, 25, Number.NaN]) {
      state = mergeAverage(state, value);
      seen.push(state.avg);
    }
    expect(seen).toEqual([0, 10, 10, 15, 18.3, 18.3]); // checkstack's rounding: 1 decimal
    expect(state).toEqual({ _type: "average", _sum: 55, _count: 3, avg: 18.3 });
    expect(averageStateSchema.parse(state)).toEqual(state!);
  });

  test("mergeAverage first run and no mutation of existing", () => {
    expect(mergeAverage(undefined, 7)).toEqual({ _type: "average", _sum: 7, _count: 1, avg: 7 });
    const existing = { _sum: 7, _count: 1, avg: 7 };
    mergeAverage(existing, 9);
    expect(existing).toEqual({ _sum: 7, _count: 1, avg: 7 });
  });

  test("mergeRate over a sequence with gaps", () => {
    let state: RateState | undefined;
    const rates: number[] = [];
    for (const success of [undefined, true, false, undefined, true]) {
      state = mergeRate(state, success);
      rates.push(state.rate);
    }
    expect(rates).toEqual([0, 100, 50, 50, 67]); // checkstack's rounding: whole percent
    expect(state).toEqual({ _type: "rate", _success: 2, _total: 3, rate: 67 });
    expect(rateStateSchema.parse(state)).toEqual(state!);
  });

  test("rates are whole percent, as checkstack stores them (its bucket merges recompute them so)", () => {
    expect(ratePercent(0, 0)).toBe(0);
    expect(ratePercent(0, 5)).toBe(0);
    expect(ratePercent(5, 5)).toBe(100);
    expect(ratePercent(1, 3)).toBe(33);
    expect(ratePercent(2, 3)).toBe(67);
    expect(ratePercent(999, 1000)).toBe(100);
    expect(mergeRate({ _success: 99, _total: 99, rate: 100 }, false).rate).toBe(99);
  });

  test("mergeCounter counts booleans and adds numbers", () => {
    let state = mergeCounter(undefined, false);
    expect(state).toEqual({ _type: "counter", count: 0 });
    for (const inc of [true, true, 3, false, Number.POSITIVE_INFINITY, 0.5]) state = mergeCounter(state, inc);
    expect(state).toEqual({ _type: "counter", count: 5.5 });
  });

  test("mergeMinMax over a sequence, in checkstack's { min, max } state", () => {
    expect(mergeMinMax(undefined, undefined)).toEqual({ _type: "minmax", min: 0, max: 0 });
    let state: MinMaxState = mergeMinMax(undefined, 50);
    for (const value of [undefined, 20, 80, Number.NaN, 30]) state = mergeMinMax(state, value);
    expect(state).toEqual({ _type: "minmax", min: 20, max: 80 });
    expect(minMaxStateSchema.parse(state)).toEqual(state);
    expect(mergeMinMax(undefined, -3)).toEqual({ _type: "minmax", min: -3, max: -3 });
  });
});

describe("VersionedAggregated: fields, bucket merges, the move to checkstack's states", () => {
  const fields = {
    latency: averageField({ "x-chart-type": "line", "x-chart-unit": "ms", "x-anomaly-enabled": false }),
    range: minMaxField({ "x-chart-type": "line", "x-anomaly-enabled": false }),
    ok: rateField({ "x-chart-type": "gauge", "x-anomaly-enabled": false }),
  };
  type Agg = InferAggregated<typeof fields>;
  const agg = new VersionedAggregated({ version: 2, fields, migrations: [migrateToCheckstackStates(fields, 1)] });

  test("two buckets merge field by field; a missing field is taken from the other side", () => {
    const a: Agg = { latency: mergeAverage(undefined, 10), range: mergeMinMax(undefined, 10), ok: mergeRate(undefined, true) };
    const b: Agg = { latency: mergeAverage(mergeAverage(undefined, 20), 40), range: mergeMinMax(mergeMinMax(undefined, 40), 20), ok: mergeRate(mergeRate(undefined, false), true) };
    expect(agg.mergeAggregatedStates(a, b)).toEqual({
      latency: { _type: "average", _sum: 70, _count: 3, avg: 23.3 },
      range: { _type: "minmax", min: 10, max: 40 },
      ok: { _type: "rate", _success: 2, _total: 3, rate: 67 },
    });
    expect(agg.mergeAggregatedStates(undefined, a)).toEqual(a);
    expect(agg.fields).toBe(fields);
  });

  test("a v1 bucket (minmax _count, 2-decimal rounding) is read as checkstack's states", () => {
    const v1 = {
      latency: { _type: "average", _sum: 55, _count: 3, avg: 18.33 },
      range: { _type: "minmax", _count: 3, min: 10, max: 25 },
      ok: { _type: "rate", _success: 2, _total: 3, rate: 66.67 },
    };
    expect(agg.parse({ version: 1, data: v1 })).toEqual({
      latency: { _type: "average", _sum: 55, _count: 3, avg: 18.3 },
      range: { _type: "minmax", min: 10, max: 25 },
      ok: { _type: "rate", _success: 2, _total: 3, rate: 67 },
    });
    expect(() => agg.parse({ version: 1, data: "nope" })).toThrow("the stored aggregate must be an object");
  });
});

describe("CollectorStrategy", () => {
  type Command = { argv: string[] };
  type Output = { stdout: string; exitCode: number };
  const client: TransportClient<Command, Output> = {
    exec: async (command) => ({ stdout: `${command.argv.length} args`, exitCode: command.argv[0] === "fail" ? 1 : 0 }),
  };

  const aggregatedFields = {
    avgLatency: averageField({ "x-chart-type": "line", "x-chart-unit": "ms", "x-anomaly-enabled": false }),
    okRate: rateField({ "x-chart-type": "gauge", "x-chart-unit": "%", "x-anomaly-enabled": false }),
  };
  type Aggregated = InferAggregated<typeof aggregatedFields>;
  const resultSchema = z.object({ ok: z.boolean(), output: z.string() });

  const collector: CollectorStrategy<typeof client, { argv: string[] }, z.infer<typeof resultSchema>, Aggregated> = {
    id: "command",
    displayName: "Command",
    supportedPlugins: [{ pluginId: "cordon" }],
    config: new Versioned({ version: 1, schema: z.object({ argv: z.array(z.string()) }) }),
    result: new Versioned({ version: 1, schema: resultSchema }),
    aggregatedResult: new VersionedAggregated({ version: 1, fields: aggregatedFields }),
    async execute({ config, client }) {
      const out = await client.exec({ argv: config.argv });
      return out.exitCode === 0
        ? { result: { ok: true, output: out.stdout } }
        : { result: { ok: false, output: out.stdout }, error: `exit ${out.exitCode}` };
    },
    mergeResult: (existing, run) => ({
      avgLatency: mergeAverage(existing?.avgLatency, run.latencyMs),
      okRate: mergeRate(existing?.okRate, run.metadata?.ok),
    }),
  };

  test("executes over its client and folds runs into a valid aggregate", async () => {
    const config = collector.config.parse({ version: 1, data: { argv: ["a", "b"] } });
    const good = await collector.execute({ config, client, pluginId: "cordon" });
    const bad = await collector.execute({ config: { argv: ["fail"] }, client, pluginId: "cordon" });
    expect(good).toEqual({ result: { ok: true, output: "2 args" } });
    expect(bad).toEqual({ result: { ok: false, output: "1 args" }, error: "exit 1" });

    let agg = collector.mergeResult(undefined, { status: "healthy", latencyMs: 10, metadata: good.result });
    agg = collector.mergeResult(agg, { status: "unhealthy", latencyMs: 30, metadata: bad.result });
    agg = collector.mergeResult(agg, { status: "degraded" });
    expect(agg.avgLatency.avg).toBe(20);
    expect(agg.okRate).toEqual({ _type: "rate", _success: 1, _total: 2, rate: 50 });
    expect(collector.aggregatedResult.parse(collector.aggregatedResult.create(agg))).toEqual(agg);
  });
});

describe("the effective-sandbox report in checkstack's shape", () => {
  afterAll(removeTempDirs);

  test("a run under the unsafe provider: no layer enforced, every downgrade under its checkstack layer (env under privilege)", async () => {
    const report = await makeCordon(freshRunRoot("report-shape")).plan({ runner: "shell", script: { source: "true" }, args: [], provider: "unsafe", policy: { onUnavailable: "degrade" } });
    const shape = toCheckstackSandbox(report);
    expect(shape.enforced).toEqual({ resources: false, filesystem: false, network: false, privilege: false });
    expect(shape.downgrades.map((d) => d.reason)).toEqual(report.downgrades);
    for (const d of shape.downgrades) {
      const cordonLayer = d.reason.split(".")[0];
      expect([cordonLayer, d.layer]).toEqual([cordonLayer, cordonLayer === "env" ? "privilege" : cordonLayer]);
    }
    expect(shape.platform).toBe("linux");
  });

  test("bwrap with the default policy: every layer enforced, nothing degraded, and what the policy leaves off is a note", async () => {
    const report = await makeCordon(freshRunRoot("report-shape")).plan({ runner: "shell", script: { source: "true" }, args: [], provider: "bwrap" });
    const shape = toCheckstackSandbox(report);
    expect(shape).toMatchObject({ enforced: { resources: true, filesystem: true, network: true, privilege: true }, downgrades: [] });
    for (const n of shape.notes) expect(n.note).toMatch(/^(filesystem|network|resources|privilege|env)\.\w+: /);
  });
});
