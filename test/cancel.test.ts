/**
 * RunRequest.signal: a caller that no longer wants a run (a service's client that went away)
 * cancels it. Before the spawn nothing starts; after it the whole tree is killed, cold or
 * warm, and the result says so (`killed`, `cancelled: true`), never a limit or the script's.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { CordonError, type Cordon, type RunResult } from "../src/api/index.ts";
import { closePooledCordons, coldThenWarm, describeResult, makeCordon, pooledCordon, processesWithMarker, removeTempDirs, sleepMarker, waitFor } from "./support.ts";

afterAll(async () => {
  await closePooledCordons("cancel.test");
  removeTempDirs();
});

const tree = (marker: string) => ({ runner: "shell", script: { source: `sleep ${marker} & sleep ${marker} & wait` }, args: [] });

/** A run of a two-process tree, cancelled once both processes are seen on the host. */
async function cancelledMidRun(cordon: Cordon): Promise<{ result: RunResult; marker: string }> {
  const marker = sleepMarker(30);
  const stop = new AbortController();
  const run = cordon.run({ ...tree(marker), signal: stop.signal });
  expect(await waitFor(() => processesWithMarker(marker).length >= 2, 5000)).toBe(true);
  stop.abort();
  return { result: await run, marker };
}

describe("cancelling a run", () => {
  test("cancelled before it starts: CordonError `cancelled`, nothing spawned", async () => {
    const cordon = makeCordon();
    const marker = sleepMarker(30);
    const stop = new AbortController();
    stop.abort();
    const error = await cordon.run({ ...tree(marker), signal: stop.signal }).catch((e) => e);
    expect(error).toBeInstanceOf(CordonError);
    expect(error.code).toBe("cancelled");
    expect(processesWithMarker(marker)).toEqual([]);
  });

  test("cancelled while it runs (cold): the tree is killed at once, the result says cancelled", async () => {
    const { result, marker } = await cancelledMidRun(makeCordon());
    expect(result.outcome, describeResult(result)).toBe("killed");
    expect(result.limitHit).toBeNull();
    expect(result.cancelled).toBe(true);
    expect(result.durationMs).toBeLessThan(10_000);
    expect(processesWithMarker(marker)).toEqual([]);
  });

  test("cancelled while it runs in a warm sandbox: same", async () => {
    const { cordon } = pooledCordon();
    await coldThenWarm(cordon, { runner: "shell", script: { source: "true" }, args: [] });
    await cordon.poolSettled();
    const { result, marker } = await cancelledMidRun(cordon);
    expect(result.sandbox?.start?.warm).toBe(true);
    expect(result.outcome, describeResult(result)).toBe("killed");
    expect(result.cancelled).toBe(true);
    expect(processesWithMarker(marker)).toEqual([]);
  });

  test("a signal that never fires changes nothing", async () => {
    const result = await makeCordon().run({ runner: "shell", script: { source: "echo fine" }, args: [], signal: new AbortController().signal });
    expect(result.outcome).toBe("ok");
    expect(result.cancelled).toBeUndefined();
  });
});
