/**
 * GET /metrics: the monitor's own Prometheus metrics (prom-client, a registry of its own):
 * check runs by check and status, their durations, and the concurrency limiter's state.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Limiter } from "./limiter.ts";
import type { Health } from "./health.ts";

export class MonitorMetrics {
  readonly registry = new Registry();
  private readonly runs: Counter<"check" | "status">;
  private readonly duration: Histogram<"check">;

  constructor(limiter: Limiter) {
    const registers = [this.registry];
    this.runs = new Counter({ name: "monitor_check_runs_total", help: "Check runs finished, by check and health status.", labelNames: ["check", "status"], registers });
    this.duration = new Histogram({
      name: "monitor_check_run_duration_seconds",
      help: "Wall time of a check's sandboxed run (from its slot to its result; waiting for a slot not included).",
      labelNames: ["check"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    new Gauge({ name: "monitor_runs_in_flight", help: "Sandboxed runs under way now.", registers, collect() { this.set(limiter.inFlight); } });
    new Gauge({ name: "monitor_runs_queued", help: "Check runs waiting for a slot.", registers, collect() { this.set(limiter.queued); } });
    new Gauge({ name: "monitor_runs_in_flight_max", help: "The most sandboxed runs ever under way at once.", registers, collect() { this.set(limiter.maxInFlight); } });
    new Gauge({ name: "monitor_concurrency_limit", help: "The most runs at once (monitor.json concurrency).", registers, collect() { this.set(limiter.max); } });
  }

  /** One finished run of `check`: its status and how long its sandboxed run took. */
  observe(check: string, status: Health, seconds: number): void {
    this.runs.inc({ check, status });
    this.duration.observe({ check }, seconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
