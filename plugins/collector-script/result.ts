/**
 * One run of a script collector as stored: the script's verdict plus what the
 * sandbox did. Built from a RunResult, masked and size-capped, because results
 * are kept per run and shown to people who must not see the secrets.
 */
import { z } from "zod";
import { LAYER_NAMES, maskMetrics, maskText, RESULT_STATUSES, toCheckstackSandbox, type RunResult, type VersionedSpec } from "../../src/api/index.ts";

/** Stored stdout and message are capped: a result is kept for every run. */
export const OUTPUT_CAP_BYTES = 4 * 1024;

const CheckstackLayer = z.enum(["resources", "filesystem", "network", "privilege"]);

export const ScriptResultSchema = z.strictObject({
  status: z.enum(RESULT_STATUSES),
  message: z.string().optional(),
  metrics: z.record(z.string(), z.number()).optional(),
  exitCode: z.number().int().nullable(),
  executionTimeMs: z.number().nonnegative(),
  timedOut: z.boolean(),
  /** The sandbox truncated stdout, or it was cut to OUTPUT_CAP_BYTES here. */
  outputTruncated: z.boolean(),
  output: z.string().optional(),
  /** Why the script's structured result could not be read (oversized, not JSON, invalid); the status is then crit. */
  resultError: z.string().optional(),
  /**
   * JSON Pointers (e.g. `/metrics/card`) of metrics withheld because their value's decimal
   * text shows a secret: they are left out of `metrics` (which holds numbers only).
   */
  masked: z.array(z.string()).optional(),
  /**
   * The same report in checkstack's EffectiveSandbox shape (`enforced` per layer, `downgrades`
   * and `notes` with their layer); absent when nothing ran. Optional, added compatibly.
   */
  effectiveSandbox: z
    .strictObject({
      enforced: z.strictObject({ resources: z.boolean(), filesystem: z.boolean(), network: z.boolean(), privilege: z.boolean() }),
      downgrades: z.array(z.strictObject({ layer: CheckstackLayer, reason: z.string() })),
      notes: z.array(z.strictObject({ layer: CheckstackLayer, note: z.string() })),
      platform: z.string(),
    })
    .optional(),
  /** null when nothing ran (bad input, or a refusal before planning). */
  sandbox: z
    .strictObject({
      provider: z.string(),
      /** Layers whose every requested control was enforced. */
      enforced: z.array(z.string()),
      downgrades: z.array(z.string()),
    })
    .nullable(),
});
export type ScriptResult = z.output<typeof ScriptResultSchema>;

export const scriptResultSpec: VersionedSpec<ScriptResult> = { version: 1, schema: ScriptResultSchema };

/** What a backend's health check sees: ok healthy, warn degraded, crit and unknown unhealthy. */
export function healthStatus(result: Pick<ScriptResult, "status">): "healthy" | "degraded" | "unhealthy" {
  return result.status === "ok" ? "healthy" : result.status === "warn" ? "degraded" : "unhealthy";
}

/** Mask first, then cut: cutting first could leave a secret's prefix unmasked. */
export function capText(text: string, secrets: readonly string[]): { text: string; cut: boolean } {
  const masked = maskText(text, secrets);
  const bytes = Buffer.from(masked);
  if (bytes.length <= OUTPUT_CAP_BYTES) return { text: masked, cut: false };
  // Drop a partial UTF-8 sequence at the cut rather than emit a replacement character.
  return { text: new TextDecoder().decode(bytes.subarray(0, OUTPUT_CAP_BYTES)).replace(/\uFFFD$/, ""), cut: true };
}

function sandboxSummary(run: RunResult): ScriptResult["sandbox"] {
  if (!run.sandbox) return null;
  const { provider, layers, downgrades } = run.sandbox;
  return { provider: provider.name, enforced: LAYER_NAMES.filter((l) => layers[l].status === "enforced"), downgrades: [...downgrades] };
}

type Verdict = Pick<ScriptResult, "status" | "message" | "metrics">;

/** The supervisor's verdict when it ended the run or never started it; null when the script's own result stands. */
function supervisorVerdict(run: RunResult): Verdict | null {
  switch (run.outcome) {
    case "timeout":
      // A hung check is a failed check (Nagios' default timeout state is critical).
      return { status: "crit", message: `timed out after ${run.durationMs} ms; the process tree was killed` };
    case "limit":
      return { status: "crit", message: `killed: ${run.limitHit ?? "resource"} limit exceeded` };
    case "killed":
      // Every runner alike (shell's exit-code fallback would say unknown): a report the script made before stands.
      return run.resultSource === "channel" ? null : { status: "crit", message: `killed by ${run.signal ?? "a signal"}` };
    case "refused":
    case "error":
      return { status: "unknown", message: `${run.outcome}: ${run.error?.message ?? "no reason given"}` };
    default:
      return null;
  }
}

/** The script's own verdict; a script that reported nothing is judged by how it ended. */
function scriptVerdict(run: RunResult): Verdict {
  // A report that was made but could not be read is crit (the result rules), whatever the
  // transport put in `result`: it must never read as "no report" or as a better status.
  if (run.resultError && run.resultSource !== null) return { status: "crit", message: run.result?.message ?? run.resultError };
  if (run.result) {
    const { status, message, metrics } = run.result;
    return { status, message, metrics: withValueMetric(metrics, run.result.value) };
  }
  return { status: run.outcome === "ok" ? "unknown" : "crit", message: `the script exited with code ${run.exitCode} and reported no result` };
}

/** checkstack's inline contract returns `{ success, message, value }`: a numeric value is charted as metrics.value. */
function withValueMetric(metrics: Record<string, number> | undefined, value: unknown): Record<string, number> | undefined {
  if (typeof value !== "number" || !Number.isFinite(value) || metrics?.value !== undefined) return metrics;
  return { ...metrics, value };
}

/** Where cordon withheld a number of the script's result, as a path in this result (metrics only: free JSON is not kept). */
function maskedMetricPaths(run: RunResult): string[] {
  return (run.masked ?? []).flatMap((p) => (p.startsWith("/result/metrics/") ? [p.slice("/result".length)] : p === "/result/value" ? ["/metrics/value"] : []));
}

/**
 * The script's data of a stored result, masked again (defence in depth should a client not
 * mask): message, output, resultError, metric names and values; the status, the flags and
 * the sandbox summary's names are cordon's and stay as they are.
 */
export function maskScriptResult(result: ScriptResult, secrets: readonly string[]): ScriptResult {
  if (secrets.length === 0) return result;
  const text = (s: string) => maskText(s, secrets);
  const masked = [...(result.masked ?? [])];
  const metrics = result.metrics && maskMetrics(result.metrics, secrets, "/metrics", masked);
  const { metrics: _m, masked: _k, ...rest } = result;
  return {
    ...rest,
    ...(rest.message !== undefined ? { message: text(rest.message) } : {}),
    ...(metrics && Object.keys(metrics).length ? { metrics } : {}),
    ...(rest.output !== undefined ? { output: text(rest.output) } : {}),
    ...(rest.resultError !== undefined ? { resultError: text(rest.resultError) } : {}),
    ...(masked.length ? { masked: [...new Set(masked)] } : {}),
    ...(rest.effectiveSandbox
      ? {
          effectiveSandbox: {
            ...rest.effectiveSandbox,
            downgrades: rest.effectiveSandbox.downgrades.map((d) => ({ ...d, reason: text(d.reason) })),
            notes: rest.effectiveSandbox.notes.map((n) => ({ ...n, note: text(n.note) })),
          },
        }
      : {}),
    sandbox: rest.sandbox ? { ...rest.sandbox, downgrades: rest.sandbox.downgrades.map(text) } : null,
  };
}

/** A RunResult as a stored collector result, every string masked with `secrets`. */
export function toScriptResult(run: RunResult, secrets: readonly string[]): ScriptResult {
  const verdict = supervisorVerdict(run) ?? scriptVerdict(run);
  const message = verdict.message === undefined ? undefined : capText(verdict.message, secrets).text;
  const output = capText(run.stdout, secrets);
  // Only where the script's own metrics are what is stored; esm's value only where it would have become metrics.value.
  const masked = verdict.metrics === undefined && supervisorVerdict(run) !== null ? [] : maskedMetricPaths(run).filter((p) => p !== "/metrics/value" || verdict.metrics?.value === undefined);
  const metrics = verdict.metrics && maskMetrics(verdict.metrics, secrets, "/metrics", masked);
  const result: ScriptResult = {
    status: verdict.status,
    ...(message ? { message } : {}),
    ...(metrics && Object.keys(metrics).length ? { metrics } : {}),
    exitCode: run.exitCode,
    executionTimeMs: run.durationMs,
    timedOut: run.outcome === "timeout",
    outputTruncated: run.stdoutTruncated || output.cut,
    ...(output.text ? { output: output.text } : {}),
    ...(run.resultError ? { resultError: maskText(run.resultError, secrets) } : {}),
    ...(masked.length ? { masked: [...new Set(masked)] } : {}),
    ...(run.sandbox ? { effectiveSandbox: toCheckstackSandbox(run.sandbox) } : {}),
    sandbox: sandboxSummary(run),
  };
  return result;
}
