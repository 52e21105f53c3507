/**
 * A small monitoring backend on cordon's script collectors:
 *
 *   bun examples/monitor/server.ts [CONFIG.json]   (default: examples/monitor/monitor.json)
 *
 * Prints `listening http://HOST:PORT` as its first stdout line, logs to stderr,
 * serves `/health` and `/checks` as JSON and `/metrics` as Prometheus text, runs
 * at most `concurrency` checks at once, and on SIGTERM/SIGINT waits for runs
 * in progress before exiting so no run directory is left behind.
 */
import { resolve } from "node:path";
import { Cordon, cordonClient, LAYER_NAMES, readinessTable, type ReadinessReport } from "../../src/api/index.ts";
import { builtinProviders, builtinRunners } from "../../plugins/index.ts";
import { checkDefinitions, loadMonitorConfig, MonitorConfigError, type CheckDefinition, type MonitorConfig } from "./config.ts";
import { Limiter } from "./limiter.ts";
import { MonitorMetrics } from "./metrics.ts";
import { overallStatus, Scheduler } from "./scheduler.ts";

const DEFAULT_CONFIG = resolve(import.meta.dir, "monitor.json");

function makeCordon(config: MonitorConfig): Cordon {
  try {
    return new Cordon(
      { provider: config.provider, ...(config.runRoot ? { runRoot: config.runRoot } : {}), ...(config.policy ? { policy: config.policy } : {}) },
      { providers: builtinProviders(), runners: builtinRunners() },
    );
  } catch (e) {
    throw new MonitorConfigError(`"provider": ${JSON.stringify(config.provider)}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** A check's own provider override must name a registered provider too: fail at startup, not on every run. */
function checkProviders(cordon: Cordon, checks: readonly CheckDefinition[]): void {
  const known = cordon.providerNames();
  for (const c of checks) {
    const p = c.config.provider;
    if (p && p !== "auto" && !known.includes(p)) throw new MonitorConfigError(`check "${c.id}": unknown provider "${p}" (known: ${known.join(", ")}, auto)`);
  }
}

function readinessSummary(reports: readonly ReadinessReport[]) {
  return reports.map((r) => ({
    provider: r.provider,
    available: r.available,
    version: r.version,
    runsDefaultPolicy: r.runsDefaultPolicy,
    layers: Object.fromEntries(LAYER_NAMES.map((l) => [l, r.layers[l].status])),
  }));
}

function port(config: MonitorConfig): number {
  const env = process.env.PORT;
  if (env === undefined || env === "") return config.port;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new MonitorConfigError(`PORT=${env} is not a port number (0 picks a free one)`);
  return n;
}

async function main(): Promise<void> {
  const configPath = resolve(process.argv[2] ?? DEFAULT_CONFIG);
  const config = loadMonitorConfig(configPath);
  const checks = checkDefinitions(config, configPath);
  const cordon = makeCordon(config);
  checkProviders(cordon, checks);

  const reports = await cordon.readiness();
  console.error(readinessTable(reports));
  const chosen = reports.find((r) => r.provider === config.provider);
  if (chosen && !chosen.runsDefaultPolicy) console.error(`monitor: provider ${config.provider} does not prove every layer here; checks under the default policy will be refused`);
  const readiness = { provider: config.provider, providers: readinessSummary(reports) };

  const limiter = new Limiter(config.concurrency);
  const metrics = new MonitorMetrics(limiter);
  const scheduler = new Scheduler(checks, cordonClient(cordon), limiter, metrics);
  const concurrency = () => ({ limit: limiter.max, inFlight: limiter.inFlight, queued: limiter.queued, maxInFlight: limiter.maxInFlight });
  const server = Bun.serve({
    hostname: config.hostname,
    port: port(config),
    async fetch(req) {
      const { pathname } = new URL(req.url);
      const states = [...scheduler.states.values()];
      if (pathname === "/health") {
        const status = overallStatus(states);
        const checkStatus = Object.fromEntries(states.map((s) => [s.id, s.last?.status ?? "pending"]));
        return Response.json({ status, checks: checkStatus, readiness }, { status: status === "unhealthy" ? 503 : 200 });
      }
      if (pathname === "/checks") return Response.json({ checks: states, concurrency: concurrency() });
      if (pathname === "/metrics") return new Response(await metrics.text(), { headers: { "content-type": metrics.contentType } });
      return Response.json({ error: "not found", routes: ["/health", "/checks", "/metrics"] }, { status: 404 });
    },
  });
  console.log(`listening ${server.url.origin}`);
  console.error(`monitor: ${checks.length} checks, at most ${config.concurrency} runs at once, provider ${config.provider}, config ${configPath}`);
  scheduler.start();

  const shutdown = async (signal: string) => {
    console.error(`monitor: ${signal}, waiting for runs in progress`);
    await scheduler.stop();
    await server.stop(true);
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((e) => {
  console.error(`monitor: ${e instanceof MonitorConfigError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
