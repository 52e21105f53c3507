/**
 * The example monitoring backend as a real child process: it validates and
 * migrates its checks, runs them in bwrap on their intervals, at most
 * `concurrency` at once, serves /health, /checks and /metrics, and on SIGTERM
 * exits leaving no run directory behind.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { hostFacts } from "../src/host.ts";
import { cpSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { CheckState, Health } from "../examples/monitor/scheduler.ts";
import { freshRunRoot, removeTempDirs, runRootEntries, sleep, tempDir } from "./support.ts";

const SERVER = resolve(import.meta.dir, "../examples/monitor/server.ts");
const INTERVAL_MS = 700;
afterAll(removeTempDirs);

/** A config dir with the example's check scripts copied in, so relative paths are resolved against the config. */
function writeConfig(checks: unknown[], extra: Record<string, unknown> = {}): { path: string; runRoot: string } {
  const dir = tempDir("monitor");
  cpSync(resolve(import.meta.dir, "../examples/monitor/checks"), join(dir, "checks"), { recursive: true });
  const runRoot = freshRunRoot("monitor-runs");
  const path = join(dir, "monitor.json");
  writeFileSync(path, JSON.stringify({ provider: "bwrap", port: 0, runRoot, checks, ...extra }, null, 2));
  return { path, runRoot };
}

const check = (id: string, collector: string, config: { version: number; data: unknown }) => ({ id, collector, intervalMs: INTERVAL_MS, config });

const CHECKS = [
  check("disk", "shell", { version: 2, data: { file: "checks/disk.sh", args: ["/scratch", "90", "95"], timeoutMs: 5000 } }),
  check("http", "python", { version: 2, data: { file: "checks/http_check.py", timeoutMs: 5000 } }),
  check("compute", "esm", { version: 2, data: { script: "return { success: true, message: 'fine', value: 1 };", policy: { onUnavailable: "degrade" } } }),
  check("lukewarm", "python", { version: 2, data: { script: "import cordon\ncordon.result('warn', 'meh')" } }),
  check("down", "shell", { version: 2, data: { script: 'cordon-result crit "down"' } }),
  check("legacy", "shell", { version: 1, data: { script: 'cordon-result ok "v1"', timeoutSeconds: 5 } }),
];

const EXPECTED: Record<string, { status: Health; rate: number }> = {
  disk: { status: "healthy", rate: 100 },
  http: { status: "healthy", rate: 100 },
  compute: { status: "healthy", rate: 100 },
  "lukewarm": { status: "degraded", rate: 0 },
  down: { status: "unhealthy", rate: 0 },
  legacy: { status: "healthy", rate: 100 },
};

function start(configPath: string, env: Record<string, string> = {}) {
  return Bun.spawn([process.execPath, SERVER, configPath], { stdout: "pipe", stderr: "pipe", env: { ...process.env, PORT: "", ...env } });
}

/** The first stdout line, which the server promises is `listening URL`. */
async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return text.split("\n")[0]!;
}

async function getChecks(url: string): Promise<CheckState[]> {
  return ((await (await fetch(`${url}/checks`)).json()) as { checks: CheckState[] }).checks;
}

/** Prometheus text as "name{labels}" -> value (labels as written, in prom-client's order). */
async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toStartWith("text/plain");
  const out = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/**
 * The most run directories seen at once in `runRoot`, polled from the host every 2 ms: a run
 * holds its directory from before its sandbox starts until after it ended, so this is the
 * most runs under way at once (give or take a run whose directory a poll missed).
 */
function watchRunDirs(runRoot: string): { max: () => number; stop: () => void } {
  let max = 0;
  const timer = setInterval(() => {
    max = Math.max(max, runRootEntries(runRoot).length);
  }, 2);
  return { max: () => max, stop: () => clearInterval(timer) };
}

/** Start a monitor on `checks` with `concurrency`, wait until every check ran `runs` times; the most runs seen at once. */
async function peakRunsAtOnce(concurrency: number, runs: number, whileRunning?: (url: string) => Promise<void>): Promise<{ peak: number; code: unknown; runRoot: string }> {
  const { path, runRoot } = writeConfig(CHECKS, { concurrency });
  const server = start(path);
  let watch = { max: () => 0, stop: () => {} };
  try {
    const line = await firstLine(server.stdout);
    // From "listening" on: the startup's readiness probes (before it) make run directories of their own.
    watch = watchRunDirs(runRoot);
    expect(line).toMatch(/^listening http:\/\/127\.0\.0\.1:\d+$/);
    const url = line.slice("listening ".length);
    const deadline = performance.now() + 60_000;
    while ((await getChecks(url)).some((c) => c.runs < runs) && performance.now() < deadline) await sleep(100);
    expect((await getChecks(url)).map((c) => c.runs >= runs)).toEqual(CHECKS.map(() => true));
    await whileRunning?.(url);
  } finally {
    server.kill("SIGTERM");
  }
  const code = await Promise.race([server.exited, sleep(15_000).then(() => "still running")]);
  watch.stop();
  return { peak: watch.max(), code, runRoot };
}

describe("examples/monitor", () => {
  test("runs every check on its interval, aggregates, serves /checks and /health, exits clean", async () => {
    const { path, runRoot } = writeConfig(CHECKS);
    const server = start(path);
    const stderr = new Response(server.stderr).text();
    try {
      const line = await firstLine(server.stdout);
      expect(line).toMatch(/^listening http:\/\/127\.0\.0\.1:\d+$/);
      const url = line.slice("listening ".length);

      // At least two intervals: every check must have run twice.
      const deadline = performance.now() + 30_000;
      let checks = await getChecks(url);
      while (checks.some((c) => c.runs < 2) && performance.now() < deadline) {
        await sleep(INTERVAL_MS / 2);
        checks = await getChecks(url);
      }
      for (const c of checks) {
        const want = EXPECTED[c.id]!;
        expect({ id: c.id, runs: c.runs >= 2 }).toEqual({ id: c.id, runs: true });
        expect({ id: c.id, status: c.last?.status }).toEqual({ id: c.id, status: want.status });
        expect({ id: c.id, rate: c.aggregate!.successRate.rate, last: c.last?.result.message }).toMatchObject({ id: c.id, rate: want.rate });
        expect(c.aggregate!.successRate._total).toBeGreaterThanOrEqual(2);
        expect(c.aggregate!.avgExecutionTimeMs.avg).toBeGreaterThan(0);
        expect(c.aggregate!.timeoutCount.count).toBe(0);
      }
      // The esm check opts into degrade; it is downgraded only where no cgroup can cap Bun's memory.
      const compute = checks.find((c) => c.id === "compute")!;
      expect(compute.aggregate!.sandboxDowngradedCount.count).toBe(hostFacts().cgroups.problem === null ? 0 : compute.runs);
      expect(checks.find((c) => c.id === "disk")!.last!.result.metrics).toMatchObject({ used_percent: expect.any(Number) });

      const health = await fetch(`${url}/health`);
      expect(health.status).toBe(503);
      const body = (await health.json()) as { status: string; checks: Record<string, string>; readiness: { provider: string; providers: { provider: string; runsDefaultPolicy: boolean }[] } };
      expect(body.status).toBe("unhealthy");
      expect(body.checks).toEqual(Object.fromEntries(Object.entries(EXPECTED).map(([id, e]) => [id, e.status])));
      expect(body.readiness.provider).toBe("bwrap");
      expect(body.readiness.providers.find((p) => p.provider === "bwrap")?.runsDefaultPolicy).toBe(true);
      expect((await fetch(`${url}/nope`)).status).toBe(404);
    } finally {
      server.kill("SIGTERM");
    }
    const code = await Promise.race([server.exited, sleep(15_000).then(() => "still running")]);
    expect(code).toBe(0);
    expect(await stderr).toContain("monitor: SIGTERM");
    expect(runRootEntries(runRoot)).toEqual([]);
  });

  test("at most `concurrency` runs at once across all checks; /metrics counts runs by check and status and their durations", async () => {
    const LIMIT = 2;
    const { peak, code, runRoot } = await peakRunsAtOnce(LIMIT, 3, async (url) => {
      const first = await scrape(url);
      expect(first.get("monitor_concurrency_limit")).toBe(LIMIT);
      const maxInFlight = first.get("monitor_runs_in_flight_max")!;
      expect(maxInFlight).toBeGreaterThanOrEqual(1);
      expect(maxInFlight).toBeLessThanOrEqual(LIMIT);
      expect(first.get("monitor_runs_in_flight")).toBeLessThanOrEqual(LIMIT);
      const checks = await getChecks(url);
      // Every run finished so far is counted under its check and its last status.
      for (const c of checks) {
        const counted = [...first].filter(([k]) => k.startsWith(`monitor_check_runs_total{check="${c.id}",`)).reduce((n, [, v]) => n + v, 0);
        expect({ id: c.id, counted: counted >= 3 }).toEqual({ id: c.id, counted: true });
        expect(first.get(`monitor_check_runs_total{check="${c.id}",status="${EXPECTED[c.id]!.status}"}`)).toBeGreaterThanOrEqual(3);
        expect(first.get(`monitor_check_run_duration_seconds_count{check="${c.id}"}`)).toBeGreaterThanOrEqual(3);
        expect(first.get(`monitor_check_run_duration_seconds_sum{check="${c.id}"}`)).toBeGreaterThan(0);
      }
      // The counters move with the runs.
      const before = first.get('monitor_check_runs_total{check="down",status="unhealthy"}')!;
      const deadline = performance.now() + 20_000;
      let later = first;
      while (performance.now() < deadline && later.get('monitor_check_runs_total{check="down",status="unhealthy"}')! <= before) {
        await sleep(INTERVAL_MS / 2);
        later = await scrape(url);
      }
      expect(later.get('monitor_check_runs_total{check="down",status="unhealthy"}')).toBeGreaterThan(before);
      expect(later.get('monitor_check_run_duration_seconds_count{check="down"}')).toBeGreaterThan(first.get('monitor_check_run_duration_seconds_count{check="down"}')!);
      const body = (await (await fetch(`${url}/checks`)).json()) as { concurrency: { limit: number; maxInFlight: number } };
      expect(body.concurrency.limit).toBe(LIMIT);
      expect(body.concurrency.maxInFlight).toBeLessThanOrEqual(LIMIT);
    });
    expect(code).toBe(0);
    expect(runRootEntries(runRoot)).toEqual([]);
    // Seen from the host: never more run directories at once than the limit, and the limit was reached.
    expect(peak).toBeLessThanOrEqual(LIMIT);
    expect(peak).toBe(LIMIT);
    // The control: the same six checks with room for all of them do overlap past the limit, so the
    // host-side count above would have seen a broken limiter.
    const control = await peakRunsAtOnce(CHECKS.length, 2);
    expect(control.code).toBe(0);
    expect(control.peak).toBeGreaterThan(LIMIT);
  }, 150_000);

  test("an unknown provider stops the monitor at startup with a clear error", async () => {
    const { path } = writeConfig([CHECKS[0]], { provider: "firejail" });
    const server = start(path);
    const [stdout, stderr, code] = await Promise.all([new Response(server.stdout).text(), new Response(server.stderr).text(), server.exited]);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toContain('"provider": "firejail": unknown provider "firejail" (known: bwrap, rootless, nsjail, unsafe)');
  });

  test("an invalid check config stops the monitor at startup naming the check", async () => {
    const bad = check("both", "shell", { version: 2, data: { script: "true", file: "checks/disk.sh" } });
    const { path } = writeConfig([CHECKS[0], bad]);
    const server = start(path);
    const [stderr, code] = await Promise.all([new Response(server.stderr).text(), server.exited]);
    expect(code).toBe(1);
    expect(stderr).toContain('check "both" (cordon.shell): invalid v2 data: (root): set exactly one of "script" (inline source) or "file"');
  });
});
