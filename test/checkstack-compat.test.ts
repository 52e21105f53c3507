/**
 * cordon as a drop-in for a checkstack backend, against the real @checkstack/backend-api
 * 0.35.2 (scripts/setup fetches it into vendor/checkstack with `npm pack`; its five internal
 * dependencies that are not on the registry are replaced by the stand-ins in
 * compat/checkstack/stand-ins, only as far as its collector contract needs them):
 *   - types: `tsc -p compat/checkstack` proves cordon/checkstack's collectors are
 *     checkstack CollectorStrategys (compat/checkstack/assignable.ts);
 *   - runtime: checkstack's own Versioned/VersionedAggregated classes parse (async),
 *     migrate and merge cordon's data, buckets checkstack stored merge with cordon's runs,
 *     and a check runs in a real bwrap sandbox through the `cordon` transport.
 * Without the package (no registry) every test here is skipped, and the reason is printed.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Cordon } from "../src/api/index.ts";
import { makeCordon, freshRunRoot, removeTempDirs, ROOT } from "./support.ts";

afterAll(removeTempDirs);

const VENDOR = join(ROOT, "vendor/checkstack");
const PACKAGE_JSON = join(VENDOR, "node_modules/@checkstack/backend-api/package.json");
const VERSION = "0.35.2";

function unavailableReason(): string | null {
  if (existsSync(PACKAGE_JSON) && JSON.parse(readFileSync(PACKAGE_JSON, "utf8")).version === VERSION) return null;
  const recorded = join(VENDOR, "UNAVAILABLE");
  const why = existsSync(recorded) ? readFileSync(recorded, "utf8").trim() : "scripts/fetch-checkstack has not run here";
  return `@checkstack/backend-api@${VERSION} is not in vendor/checkstack (${why}); run scripts/fetch-checkstack`;
}

const reason = unavailableReason();
if (reason) console.warn(`checkstack compat tests skipped: ${reason}`);

/**
 * The modules are loaded by computed path: a literal import would put the package's types
 * into `bun run typecheck`, which must pass where the package cannot be fetched.
 */
// The modules' types are checked by the tsc run above, not here.
type Loaded = any;
async function load(): Promise<{ checkstack: Loaded; adapter: Loaded }> {
  const at = (p: string) => join(ROOT, p);
  return { checkstack: await import(at("compat/checkstack/contract.ts")), adapter: await import(at("plugins/checkstack.ts")) };
}

describe.skipIf(reason !== null)("checkstack drop-in (real @checkstack/backend-api)", () => {
  test("types: cordon/checkstack's collectors and transport are checkstack's CollectorStrategy and HealthCheckStrategy", () => {
    const tsc = Bun.spawnSync([join(ROOT, "node_modules/.bin/tsc"), "-p", join(ROOT, "compat/checkstack")], { stdout: "pipe", stderr: "pipe" });
    expect(tsc.exitCode, tsc.stdout.toString() + tsc.stderr.toString()).toBe(0);
  });

  test("each collector is built of checkstack's own classes and field factories", async () => {
    const { checkstack, adapter } = await load();
    const collectors = adapter.checkstackCollectors(checkstack, { provider: "bwrap", pluginId: "cordon" });
    expect(Object.keys(collectors)).toEqual(["shell", "python", "esm", "sandboxHealth"]);
    for (const c of Object.values<Loaded>(collectors)) {
      expect(c.config).toBeInstanceOf(checkstack.Versioned);
      expect(c.result).toBeInstanceOf(checkstack.Versioned);
      expect(c.aggregatedResult).toBeInstanceOf(checkstack.VersionedAggregated);
      expect(c.supportedPlugins).toEqual([{ pluginId: "cordon" }]);
    }
    const fields = collectors.shell.aggregatedResult.fields;
    expect(Object.fromEntries(Object.entries<Loaded>(fields).map(([k, f]) => [k, f.type]))).toEqual({
      avgExecutionTimeMs: "average",
      executionTimeMs: "minmax",
      successRate: "rate",
      timeoutCount: "counter",
      unknownCount: "counter",
      sandboxDowngradedCount: "counter",
    });
    expect(fields.successRate.meta).toMatchObject({ "x-chart-type": "gauge", "x-chart-unit": "%" });
  });

  test("stored configs parse (async) and migrate through checkstack's Versioned; bad ones are refused", async () => {
    const { checkstack, adapter } = await load();
    const { shell } = adapter.checkstackCollectors(checkstack, { provider: "bwrap" });
    const parsing = shell.config.parse({ version: 1, data: { script: "exit 0", timeoutSeconds: 2, env: { A: "b" } } });
    expect(parsing).toBeInstanceOf(Promise);
    expect(await parsing).toEqual({ script: "exit 0", args: [], timeoutMs: 2000, env: { A: "b" }, secretEnv: {} });
    const record = await shell.config.parseRecord({ version: 1, data: { script: "exit 0" } });
    expect(record).toMatchObject({ version: 2, originalVersion: 1, data: { timeoutMs: 10_000 } });
    expect(await shell.config.parseAssumingV1({ script: "exit 0", timeoutSeconds: 1 })).toMatchObject({ timeoutMs: 1000 });
    await expect(shell.config.parse({ version: 2, data: { script: "x", file: "/y" } })).rejects.toThrow("set exactly one of"); // a ZodError, as checkstack's parse throws
    await expect(shell.config.parse({ version: 2, data: { script: "x", secretEnv: { K: "short" } } })).rejects.toThrow("at least 8 bytes");
  });

  test("a bucket checkstack stored merges with cordon's runs without losing its history; two buckets merge checkstack's way", async () => {
    const { checkstack, adapter } = await load();
    const { shell } = adapter.checkstackCollectors(checkstack, { provider: "bwrap" });
    // What checkstack's own helpers stored for two runs (300 ms healthy, 100 ms timed out).
    const stored = {
      avgExecutionTimeMs: checkstack.mergeAverage(checkstack.mergeAverage(undefined, 300), 100),
      executionTimeMs: checkstack.mergeMinMax(checkstack.mergeMinMax(undefined, 300), 100),
      successRate: checkstack.mergeRate(checkstack.mergeRate(undefined, true), false),
      timeoutCount: checkstack.mergeCounter(undefined, 1),
      unknownCount: checkstack.mergeCounter(undefined, 0),
      sandboxDowngradedCount: checkstack.mergeCounter(undefined, 0),
    };
    expect(await shell.aggregatedResult.parse({ version: 2, data: stored })).toEqual(stored);

    const result = { status: "ok", exitCode: 0, executionTimeMs: 50, timedOut: false, outputTruncated: false, sandbox: { provider: "bwrap", enforced: [], downgrades: [] } };
    const merged = shell.mergeResult(stored, { status: "healthy", latencyMs: 50, metadata: result });
    expect(merged).toEqual({
      avgExecutionTimeMs: { _type: "average", _sum: 450, _count: 3, avg: 150 },
      executionTimeMs: { _type: "minmax", min: 50, max: 300 },
      successRate: { _type: "rate", _success: 2, _total: 3, rate: 67 },
      timeoutCount: { _type: "counter", count: 1 },
      unknownCount: { _type: "counter", count: 0 },
      sandboxDowngradedCount: { _type: "counter", count: 0 },
    });
    expect(await shell.aggregatedResult.parse({ version: 2, data: merged })).toEqual(merged);

    // Re-aggregating two buckets for a chart: checkstack's merge over cordon's states.
    const twice = shell.aggregatedResult.mergeAggregatedStates(stored, merged);
    expect(twice.avgExecutionTimeMs).toEqual(checkstack.mergeAverageStates(stored.avgExecutionTimeMs, merged.avgExecutionTimeMs));
    expect(twice.successRate).toEqual({ _type: "rate", _success: 3, _total: 5, rate: 60 });
    expect(twice.executionTimeMs).toEqual({ _type: "minmax", min: 50, max: 300 });
  });

  test("cordon's folds round exactly as checkstack's, so a value does not depend on which side computed it", async () => {
    const { checkstack } = await load();
    const cordon = await import("../src/api/index.ts");
    const values = [12.34, 7, undefined, 250.55, 3, 1000.01, 0.05];
    let ours: Loaded;
    let theirs: Loaded;
    let ourRate: Loaded;
    let theirRate: Loaded;
    for (const [i, v] of values.entries()) {
      ours = cordon.mergeAverage(ours, v);
      theirs = checkstack.mergeAverage(theirs, v);
      expect(ours).toEqual(theirs);
      ourRate = cordon.mergeRate(ourRate, i % 3 !== 0);
      theirRate = checkstack.mergeRate(theirRate, i % 3 !== 0);
      expect(ourRate).toEqual(theirRate);
    }
  });

  test("a v1 aggregate cordon stored (minmax _count, 2-decimal rounding) migrates through checkstack's VersionedAggregated", async () => {
    const { checkstack, adapter } = await load();
    const { shell, sandboxHealth } = adapter.checkstackCollectors(checkstack, { provider: "bwrap" });
    const v1 = {
      avgExecutionTimeMs: { _type: "average", _sum: 55, _count: 3, avg: 18.33 },
      executionTimeMs: { _type: "minmax", _count: 3, min: 10, max: 25 },
      successRate: { _type: "rate", _success: 2, _total: 3, rate: 66.67 },
      timeoutCount: { _type: "counter", count: 0 },
      unknownCount: { _type: "counter", count: 1 },
      sandboxDowngradedCount: { _type: "counter", count: 0 },
    };
    const record = await shell.aggregatedResult.parseRecord({ version: 1, data: v1 });
    expect(record.version).toBe(2);
    expect(record.data).toMatchObject({
      avgExecutionTimeMs: { avg: 18.3 },
      executionTimeMs: { _type: "minmax", min: 10, max: 25 },
      successRate: { rate: 67 },
    });
    expect(record.data.executionTimeMs).not.toHaveProperty("_count");
    const health = await sandboxHealth.aggregatedResult.parse({ version: 1, data: { readyRate: { _type: "rate", _success: 1, _total: 3, rate: 33.33 }, notReadyCount: { _type: "counter", count: 2 } } });
    expect(health.readyRate.rate).toBe(33);
  });

  describe("over the cordon transport, in a real bwrap sandbox", () => {
    let cordon: Cordon;
    const runContext = { check: { id: "c1", name: "uptime", intervalSeconds: 30 }, system: { id: "s1", name: "web-1", metadata: { tier: "gold" } } };

    test("a shell check runs with checkstack's run context, and its result is a valid checkstack result", async () => {
      cordon = makeCordon(freshRunRoot("checkstack"));
      const { checkstack, adapter } = await load();
      const strategy = adapter.cordonHealthCheckStrategy(checkstack, cordon);
      expect(strategy.config).toBeInstanceOf(checkstack.Versioned);
      const strategyConfig = await strategy.config.parse({ version: 1, data: {} });
      const { client, close } = await strategy.createClient(strategyConfig);
      const { shell } = adapter.checkstackCollectors(checkstack, { provider: "bwrap" });
      const config = await shell.config.parse({ version: 2, data: { script: 'cordon-result ok "$CHECKSTACK_CHECK_NAME on $CHECKSTACK_SYSTEM_NAME ($CHECKSTACK_SYSTEM_TIER)" n=3' } });
      const { result, error } = await shell.execute({ config, client, pluginId: "cordon", runContext });
      close();
      expect(error).toBeUndefined();
      expect(result).toMatchObject({ status: "ok", message: "uptime on web-1 (gold)", metrics: { n: 3 }, sandbox: { provider: "bwrap" } });
      expect(result.effectiveSandbox).toMatchObject({ enforced: { resources: true, filesystem: true, network: true, privilege: true }, downgrades: [] });
      expect(await shell.result.parse({ version: 1, data: result })).toEqual(result);
      const bucket = shell.mergeResult(undefined, { status: "healthy", latencyMs: result.executionTimeMs, metadata: result });
      expect(await shell.aggregatedResult.parse({ version: 2, data: bucket })).toEqual(bucket);
    });

    test("the sandbox-health collector runs over the same client", async () => {
      const { checkstack, adapter } = await load();
      const { client } = await adapter.cordonHealthCheckStrategy(checkstack, cordon).createClient({ timeout: 30_000 });
      const { sandboxHealth } = adapter.checkstackCollectors(checkstack, { provider: "bwrap" });
      const config = await sandboxHealth.config.parse({ version: 1, data: {} });
      const { result } = await sandboxHealth.execute({ config, client, pluginId: "cordon", runContext });
      expect(result).toMatchObject({ status: "ok", ready: true, provider: "bwrap" });
      expect(await sandboxHealth.result.parse({ version: 1, data: result })).toEqual(result);
    });
  });
});
