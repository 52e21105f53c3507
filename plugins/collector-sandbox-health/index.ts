/**
 * `cordon.sandbox-health`: readiness as a health check. Healthy when the configured
 * provider is proven to run the configured policy under `fail` on this host; degraded
 * when it runs only because a fallback provider can; unhealthy otherwise, with reasons.
 */
import { z } from "zod";
import {
  collectorFromDefinition,
  counterField,
  mergeCounter,
  mergeRate,
  migrateToCheckstackStates,
  PolicyOverrideSchema,
  rateField,
  type CollectorDefinition,
  type Cordon,
  type CollectorResult,
  type CollectorStrategy,
  type HealthCheckRunForAggregation,
  type InferAggregated,
  type PolicyCheck,
  type PolicyOverride,
  type ReadinessReport,
  type TransportClient,
} from "../../src/api/index.ts";

export interface HealthCommand {
  /** Tells a readiness command from a run request when one client serves both (cordon/checkstack's transport). */
  kind: "readiness";
  /** Probe again instead of using the cached proof. */
  refresh: boolean;
  policy?: PolicyOverride;
}

export interface HealthReading {
  check: PolicyCheck;
  reports: ReadinessReport[];
}

export type HealthClient = TransportClient<HealthCommand, HealthReading>;

/** The transport for this collector: a Cordon's readiness and policy check. */
export function readinessClient(cordon: Cordon): HealthClient {
  return {
    async exec(command) {
      const reports = await cordon.readiness({ refresh: command.refresh });
      return { check: await cordon.check(command.policy), reports };
    },
  };
}

export const SandboxHealthConfigSchema = z.strictObject({
  /** Re-probe on every check (a few seconds) instead of trusting the startup proof. */
  refresh: z.boolean().default(false),
  /** The policy to check, on top of the configured one. */
  policy: PolicyOverrideSchema.optional(),
});
export type SandboxHealthConfig = z.output<typeof SandboxHealthConfigSchema>;

export const SandboxHealthResultSchema = z.strictObject({
  status: z.enum(["ok", "warn", "crit"]),
  message: z.string(),
  ready: z.boolean(),
  provider: z.string().nullable(),
  reasons: z.array(z.string()),
  /** provider → layer → proven | not-enforced | unknown */
  layers: z.record(z.string(), z.record(z.string(), z.enum(["proven", "not-enforced", "unknown"]))),
});
export type SandboxHealthResult = z.output<typeof SandboxHealthResultSchema>;

export const SANDBOX_HEALTH_AGGREGATED_FIELDS = {
  readyRate: rateField({ "x-chart-type": "gauge", "x-chart-label": "Ready", "x-chart-unit": "%", "x-anomaly-enabled": false }),
  notReadyCount: counterField({ "x-chart-type": "counter", "x-chart-label": "Not ready", "x-anomaly-enabled": false }),
};
export type SandboxHealthAggregated = InferAggregated<typeof SANDBOX_HEALTH_AGGREGATED_FIELDS>;
export type SandboxHealthDefinition = CollectorDefinition<HealthClient, SandboxHealthConfig, SandboxHealthResult, typeof SANDBOX_HEALTH_AGGREGATED_FIELDS>;

function toResult(reading: HealthReading, configured: string): SandboxHealthResult {
  const { check, reports } = reading;
  const layers = Object.fromEntries(reports.map((r) => [r.provider, Object.fromEntries(Object.entries(r.layers).map(([l, v]) => [l, v.status]))]));
  const fallback = check.ready && configured !== "auto" && check.provider !== configured;
  const status = !check.ready ? "crit" : fallback ? "warn" : "ok";
  const message = check.ready
    ? `${check.provider} is proven to run the configured policy under onUnavailable=fail`
    : `the configured policy cannot be enforced here: ${check.reasons.join("; ")}`;
  return { status, message, ready: check.ready, provider: check.provider, reasons: check.reasons, layers };
}

/** The collector as data: cordon's strategy is built from it here, checkstack's in cordon/checkstack. */
export function sandboxHealthDefinition(configuredProvider: string): SandboxHealthDefinition {
  return {
    id: "cordon.sandbox-health",
    displayName: "Sandbox health (cordon readiness)",
    description: "Proves on this host, with real hostile probes, that the configured sandbox policy is enforced.",
    supportedPlugins: [{ pluginId: "cordon" }],
    allowMultiple: false,
    config: { version: 1, schema: SandboxHealthConfigSchema },
    result: { version: 1, schema: SandboxHealthResultSchema },
    // v1 rounded the rate to 2 decimals; v2 is checkstack's whole percent.
    aggregatedResult: { version: 2, fields: SANDBOX_HEALTH_AGGREGATED_FIELDS, migrations: [migrateToCheckstackStates(SANDBOX_HEALTH_AGGREGATED_FIELDS, 1)] },
    async execute({ config, client }): Promise<CollectorResult<SandboxHealthResult>> {
      try {
        const reading = await client.exec({ kind: "readiness", refresh: config.refresh, ...(config.policy ? { policy: config.policy } : {}) });
        const result = toResult(reading, configuredProvider);
        return result.ready ? { result } : { result, error: result.message };
      } catch (e) {
        const message = `readiness could not run: ${e instanceof Error ? e.message : String(e)}`;
        return { result: { status: "crit", message, ready: false, provider: null, reasons: [message], layers: {} }, error: message };
      }
    },
    mergeResult(existing: SandboxHealthAggregated | undefined, run: HealthCheckRunForAggregation<SandboxHealthResult>): SandboxHealthAggregated {
      const ready = run.metadata?.ready ?? run.status === "healthy";
      return { readyRate: mergeRate(existing?.readyRate, ready), notReadyCount: mergeCounter(existing?.notReadyCount, !ready) };
    },
  };
}

export function sandboxHealthCollector(configuredProvider: string): CollectorStrategy<HealthClient, SandboxHealthConfig, SandboxHealthResult, SandboxHealthAggregated> {
  return collectorFromDefinition(sandboxHealthDefinition(configuredProvider));
}
