/**
 * Runs each check on its interval, never two runs of one check at once: the
 * next run is timed from the start of the previous one, and a run that
 * overruns its interval is followed at once by the next, not by a backlog.
 * Every run goes through one Limiter: at most `limiter.max` sandboxed runs at
 * once across all checks (monitor.json `concurrency`); the rest wait their turn.
 */
import { CORDON_PLUGIN_ID, healthStatus, type ScriptAggregated, type ScriptResult } from "../../plugins/collector-script/index.ts";
import type { CordonClient } from "../../src/api/index.ts";
import type { CheckDefinition } from "./config.ts";
import type { Limiter } from "./limiter.ts";
import type { MonitorMetrics } from "./metrics.ts";

import type { Health } from "./health.ts";

export type { Health };

export interface CheckState {
  id: string;
  collector: string;
  intervalMs: number;
  runs: number;
  running: boolean;
  last: { at: string; status: Health; result: ScriptResult; error?: string } | null;
  aggregate: ScriptAggregated | null;
}

export class Scheduler {
  readonly states = new Map<string, CheckState>();
  private readonly timers = new Map<string, Timer>();
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly checks: readonly CheckDefinition[],
    private readonly client: CordonClient,
    readonly limiter: Limiter,
    private readonly metrics: MonitorMetrics | null = null,
  ) {
    for (const c of checks) {
      this.states.set(c.id, { id: c.id, collector: c.collector.id, intervalMs: c.intervalMs, runs: 0, running: false, last: null, aggregate: null });
    }
  }

  start(): void {
    for (const check of this.checks) this.schedule(check, 0);
  }

  /** Stop scheduling and wait for runs in progress, so their run directories are cleaned up. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.inFlight]);
  }

  private schedule(check: CheckDefinition, delayMs: number): void {
    if (this.stopped) return;
    this.timers.set(check.id, setTimeout(() => this.tick(check), delayMs));
  }

  private tick(check: CheckDefinition): void {
    const started = performance.now();
    const run = this.runOnce(check).finally(() => {
      this.inFlight.delete(run);
      this.schedule(check, Math.max(0, check.intervalMs - (performance.now() - started)));
    });
    this.inFlight.add(run);
  }

  private async runOnce(check: CheckDefinition): Promise<void> {
    const state = this.states.get(check.id)!;
    state.running = true;
    // The run itself waits for a slot; its duration is measured from the slot on.
    let runSeconds = 0;
    const client: CordonClient = {
      exec: (request) =>
        this.limiter.run(async () => {
          const t = performance.now();
          try {
            return await this.client.exec(request);
          } finally {
            runSeconds += (performance.now() - t) / 1000;
          }
        }),
    };
    try {
      const { result, error } = await check.collector.execute({ config: check.config, client, pluginId: CORDON_PLUGIN_ID });
      const status = healthStatus(result);
      this.metrics?.observe(check.id, status, runSeconds);
      state.aggregate = check.collector.mergeResult(state.aggregate ?? undefined, { status, latencyMs: result.executionTimeMs, metadata: result });
      state.last = { at: new Date().toISOString(), status, result, ...(error ? { error } : {}) };
      state.runs++;
    } catch (e) {
      // execute reports failures as results; reaching here is a bug, logged, and the check goes on.
      console.error(`check ${check.id}: ${e instanceof Error ? e.stack : String(e)}`);
    } finally {
      state.running = false;
    }
  }
}

/** The worst last status; "pending" while a check has not run yet and none is unhealthy. */
export function overallStatus(states: Iterable<CheckState>): Health | "pending" {
  const last = [...states].map((s) => s.last?.status ?? null);
  if (last.includes("unhealthy")) return "unhealthy";
  if (last.includes(null)) return "pending";
  return last.includes("degraded") ? "degraded" : "healthy";
}
