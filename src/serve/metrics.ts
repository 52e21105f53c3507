/**
 * The service's Prometheus metrics (prom-client, its own registry: a library user's global
 * registry is never touched). Counters move as requests and runs happen; the gauges read
 * their value when scraped, from the admission queue, the pool and the cached readiness.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { PoolStats } from "../pool/pool.ts";
import type { ReadinessReport } from "../readiness/types.ts";
import type { RunResult } from "../result.ts";

export interface MetricSources {
  inFlight(): number;
  queued(): number;
  pool(): PoolStats | null;
  /** The readiness proven at start (null until it is). */
  readiness(): ReadinessReport[] | null;
}

export class ServeMetrics {
  readonly registry = new Registry();
  private readonly runs = new Counter({ name: "cordon_runs_total", help: "runs by provider, runner, outcome and the limit that ended them", labelNames: ["provider", "runner", "outcome", "limit_hit"], registers: [this.registry] });
  private readonly duration = new Histogram({
    name: "cordon_run_duration_seconds",
    help: "a run's wall time, from its request to its result",
    labelNames: ["runner", "outcome"],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  private readonly http = new Counter({ name: "cordon_http_requests_total", help: "HTTP requests by route and status", labelNames: ["route", "status"], registers: [this.registry] });

  constructor(sources: MetricSources) {
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read());
        },
      });
    gauge("cordon_runs_in_flight", "runs under way", sources.inFlight);
    gauge("cordon_queue_depth", "requests waiting for a run slot", sources.queued);
    gauge("cordon_pool_idle", "warm sandboxes ready for a run", () => sources.pool()?.idle ?? 0);
    gauge("cordon_pool_starting", "warm sandboxes being started", () => sources.pool()?.starting ?? 0);
    gauge("cordon_pool_hits_total", "runs that started in a warm sandbox", () => sources.pool()?.hits ?? 0);
    gauge("cordon_pool_misses_total", "runs that started cold with a pool configured", () => sources.pool()?.misses ?? 0);
    new Gauge({
      name: "cordon_readiness_cell",
      help: "what readiness proved on this host: 1 for the cell's status (proven, not-enforced, unknown), per provider",
      labelNames: ["provider", "cell", "status"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const report of sources.readiness() ?? []) {
          for (const [cell, verdict] of Object.entries(report.cells)) this.set({ provider: report.provider, cell, status: verdict.status }, 1);
        }
      },
    });
  }

  ran(result: RunResult, runner: string, seconds: number): void {
    const provider = result.sandbox?.provider.name ?? "none";
    this.runs.inc({ provider, runner, outcome: result.outcome, limit_hit: result.limitHit ?? "none" });
    this.duration.observe({ runner, outcome: result.outcome }, seconds);
  }

  request(route: string, status: number): void {
    this.http.inc({ route, status: String(status) });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
