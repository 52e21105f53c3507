/**
 * `cordon serve` under load, a real child with real bwrap sandboxes, driven over loopback by
 * autocannon: 2,000 POST /v1/runs of `echo ok` on 16 connections against 8 run slots and a
 * queue of 8, so some requests may be turned away. Every response must be a correct run
 * (200, outcome ok, stdout "ok\n") or a 429 with Retry-After; never a 5xx, an error or a
 * timeout. The server's RSS after a 200-run warm-up and after the 2,000 may grow by a bounded
 * amount only. A burst of 32 at once then meets full slots and a full queue: those past them
 * get 429 with Retry-After. After SIGTERM nothing may be left: run directories, processes,
 * cgroups, mounts.
 */
import { afterAll, expect, test } from "bun:test";
import { runLoad, type RunLoad } from "./support/http-load.ts";
import { removeTempDirs, sleep, startServe, stopServes, waitFor, type ServeChild, type ServeLeftovers } from "./support.ts";

const WARMUP = 200;
const AMOUNT = 2000;
const CONNECTIONS = 16;
const SLOTS = 8;
const QUEUE = 8;
/** Requests sent at once after the load, past the slots and the queue: at least BURST - SLOTS - QUEUE get 429. */
const BURST = 32;
/** Allowed RSS growth from after the warm-up to after the load. */
const RSS_GROWTH_MAX = 30 * 2 ** 20;
/** The whole load's bound (the test's own bound is above it: start, warm-up, stop). */
const LOAD_DEADLINE_MS = 170_000;

afterAll(async () => {
  await stopServes("serve load test");
  removeTempDirs();
});

const CONFIG = {
  serve: {
    concurrency: { global: SLOTS, perToken: CONNECTIONS }, // perToken counts running and waiting: one token drives every connection
    queue: { max: QUEUE, maxWaitMs: 30_000 },
  },
};

const BODY = { runner: "shell", script: { source: "echo ok" } };

/** Why a response is wrong: a 200 must be a correct run whose x-request-id is its requestId, a 429 must say when to come back. */
function checkResponse(status: number, body: string, headers: Record<string, string>): string | null {
  if (status === 200) {
    const r = JSON.parse(body) as { requestId?: string; outcome?: string; exitCode?: number; stdout?: string; stderr?: string };
    if (r.outcome !== "ok" || r.exitCode !== 0 || r.stdout !== "ok\n") return `outcome ${r.outcome}, exit ${r.exitCode}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr?.slice(0, 300))}`;
    if (!r.requestId || headers["x-request-id"] !== r.requestId) return `x-request-id ${headers["x-request-id"]} for requestId ${r.requestId}`;
    return null;
  }
  if (status === 429) {
    const retry = headers["retry-after"];
    if (retry === undefined || !/^\d+$/.test(retry) || Number(retry) < 1) return `429 with Retry-After ${JSON.stringify(retry)}`;
    const e = JSON.parse(body) as { error?: { code?: string } };
    return e.error?.code === "busy" ? null : `429 body ${body.slice(0, 300)}`;
  }
  return `status ${status}: ${body.slice(0, 300)}`;
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function load(serve: ServeChild, amount: number, deadlineMs: number): Promise<RunLoad> {
  return runLoad({ url: serve.url, token: serve.token, body: BODY, amount, connections: CONNECTIONS, timeoutSeconds: 60, deadlineMs, check: checkResponse });
}

function describeLoad(what: string, l: RunLoad): string {
  const sorted = [...l.latencies200].sort((a, b) => a - b);
  const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil((q / 100) * sorted.length) - 1)]?.toFixed(0) ?? "-";
  return `${what}: ${l.responses} responses in ${l.seconds.toFixed(1)} s (${l.perSecond.toFixed(1)}/s), statuses ${JSON.stringify(l.statuses)}, wrong ${l.wrong}, errors ${l.errors}, timeouts ${l.timeouts}, 200 latency p50 ${p(50)} ms p99 ${p(99)} ms${l.stoppedAtDeadline ? ", STOPPED AT THE DEADLINE" : ""}${l.firstWrong.length ? `; first wrong: ${l.firstWrong.join(" | ")}` : ""}`;
}

/** What the stopped server left, given a moment (the host's pid 1 reaps sandbox inits a little later). */
async function settledLeftovers(serve: ServeChild): Promise<ServeLeftovers> {
  const empty = (l: ServeLeftovers) => Object.values(l).every((v) => v.length === 0);
  let left = serve.leftovers();
  for (let i = 0; i < 50 && !empty(left); i++) {
    await sleep(100);
    left = serve.leftovers();
  }
  return left;
}

function expectCorrect(l: RunLoad, amount: number): void {
  expect({ responses: l.responses, stoppedAtDeadline: l.stoppedAtDeadline }).toEqual({ responses: amount, stoppedAtDeadline: false });
  expect({ wrong: l.wrong, firstWrong: l.firstWrong }).toEqual({ wrong: 0, firstWrong: [] });
  expect({ errors: l.errors, timeouts: l.timeouts, "5xx": l.result["5xx"] }).toEqual({ errors: 0, timeouts: 0, "5xx": 0 });
  expect(Object.keys(l.statuses).filter((s) => s !== "200" && s !== "429")).toEqual([]);
}

test(`${AMOUNT} runs on ${CONNECTIONS} connections against ${SLOTS} slots and a queue of ${QUEUE}: every answer a correct run or a 429 with Retry-After, RSS flat, nothing left after SIGTERM`, async () => {
  const serve = await startServe({ config: CONFIG, label: "load" });
  const started = performance.now();
  const warm = await load(serve, WARMUP, 60_000);
  console.log(describeLoad("warm-up", warm));
  expectCorrect(warm, WARMUP);
  const rssWarm = serve.rss();

  const main = await load(serve, AMOUNT, LOAD_DEADLINE_MS);
  const rssEnd = serve.rss();
  console.log(describeLoad("load", main));
  console.log(`server RSS: ${mib(rssWarm)} after ${WARMUP} runs, ${mib(rssEnd)} after ${AMOUNT} more (${rssEnd >= rssWarm ? "+" : ""}${mib(rssEnd - rssWarm)}, bound +${mib(RSS_GROWTH_MAX)}); ${((performance.now() - started) / 1000).toFixed(0)} s of load`);
  expectCorrect(main, AMOUNT);
  // Most requests are served: the queue holds what the slots cannot take at once.
  expect(main.statuses[200] ?? 0).toBeGreaterThanOrEqual(AMOUNT * 0.9);
  expect(rssEnd - rssWarm).toBeLessThan(RSS_GROWTH_MAX);

  // One log line per request (written before its response; read from the pipe a moment later), never the token itself.
  const runLogsOf = () => serve.logs().filter((l) => l.path === "/v1/runs");
  await waitFor(() => runLogsOf().length >= WARMUP + AMOUNT, 5_000, 50);
  const runLogs = runLogsOf();
  expect(runLogs.length).toBe(WARMUP + AMOUNT);
  expect(runLogs.filter((l) => l.status === 200).length).toBe((warm.statuses[200] ?? 0) + (main.statuses[200] ?? 0));
  expect(serve.lines().filter((line) => line.includes(serve.token))).toEqual([]);

  // Past the slots and the queue at once: the rest are turned away with Retry-After, not queued without bound.
  const burst = await Promise.all(
    Array.from({ length: BURST }, async () => {
      const res = await serve.run(BODY);
      return { status: res.status, why: checkResponse(res.status, await res.text(), Object.fromEntries(res.headers)) };
    }),
  );
  console.log(`burst of ${BURST} at once: ${burst.filter((b) => b.status === 200).length} ran, ${burst.filter((b) => b.status === 429).length} turned away`);
  expect(burst.filter((b) => b.why !== null)).toEqual([]);
  expect(burst.filter((b) => b.status === 429).length).toBeGreaterThanOrEqual(BURST - SLOTS - QUEUE);
  expect(burst.filter((b) => b.status === 200).length).toBeGreaterThanOrEqual(SLOTS);

  expect(await serve.stop()).toBe(0);
  expect(await settledLeftovers(serve)).toEqual({ runDirs: [], cgroups: [], mounts: [], processes: [] });
}, 240_000);
