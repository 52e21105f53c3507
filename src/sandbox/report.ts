import type { Policy } from "../policy/index.ts";
import type { HostFacts } from "../host.ts";
import { escapeControls } from "../escape.ts";
import { displayWidth, padTo, TEXT_WIDTH, wrapText } from "../text-layout.ts";

export const LAYER_NAMES = ["filesystem", "network", "resources", "privilege", "env"] as const;
export type LayerName = (typeof LAYER_NAMES)[number];

/**
 * enforced: the provider applies it (mechanism says how);
 * degraded: the policy asked for it and this provider/host cannot apply it (reason says why, fix says what would,
 *   fallback what a run under `degrade` does instead);
 * off: the policy did not ask for it.
 */
export type ControlStatus = "enforced" | "degraded" | "off";

export interface ControlVerdict {
  status: ControlStatus;
  mechanism?: string;
  reason?: string;
  fix?: string;
  /** Degraded only: what a run under `degrade` gets instead. Never part of a refusal: nothing runs then. */
  fallback?: string;
}

export interface LayerReport {
  /** The worst status among the layer's controls. */
  status: ControlStatus;
  controls: Record<string, ControlVerdict>;
}

/** What a run asked for, what was enforced, what degraded and why. */
export interface EffectiveSandboxReport {
  provider: { name: string; version: string | null; isolating: boolean };
  runner: { name: string; readOnlyBinds: string[]; notes: string[] };
  onUnavailable: Policy["onUnavailable"];
  requested: Policy;
  layers: Record<LayerName, LayerReport>;
  /** One line per degraded control: "layer.control: reason; fallback (fix: …)". Empty when everything asked for is enforced. */
  downgrades: string[];
  host: HostFacts;
  /** The one argv handed to Bun.spawn (for audit; holds no host environment). */
  argv: string[];
  /** How the run's sandbox was started: cold for it, or taken warm from the pool. Absent on a plan and without a pool. */
  start?: SandboxStart;
}

/**
 * A warm start: the sandbox (namespaces, mounts, cgroup, identity, filter) was built ahead
 * with the runner's waiter as its command (`argv` shows the run's command, which the waiter
 * became); a cold one: why no pooled sandbox was used.
 */
export type SandboxStart =
  | {
      warm: true;
      /** From the run's request to the hand-over of its command to the waiter. */
      waitedMs: number;
      /** How long the sandbox had waited idle for a run. */
      idleMs: number;
      /** The waiter's command, which took this run's command and environment on JOB_FD. */
      waiter: string[];
    }
  | { warm: false; why: string };

export const enforced = (mechanism: string): ControlVerdict => ({ status: "enforced", mechanism });
export const degraded = (reason: string, fix?: string, fallback?: string): ControlVerdict => ({
  status: "degraded",
  reason,
  ...(fix ? { fix } : {}),
  ...(fallback ? { fallback } : {}),
});
export const off = (reason: string): ControlVerdict => ({ status: "off", reason });

const RANK: Record<ControlStatus, number> = { off: 0, enforced: 1, degraded: 2 };

export function layerReport(controls: Record<string, ControlVerdict>): LayerReport {
  const statuses = Object.values(controls).map((c) => c.status);
  const worst = statuses.reduce<ControlStatus>((w, s) => (RANK[s] > RANK[w] ? s : w), "off");
  return { status: worst, controls };
}

/** Why a degraded control is degraded, and under `degrade` what the run gets instead. */
function whyDegraded(v: ControlVerdict, as: "downgrade" | "refusal"): string {
  const fallback = as === "downgrade" && v.fallback ? `; ${v.fallback}` : "";
  return `${v.reason}${fallback}${v.fix ? ` (fix: ${v.fix})` : ""}`;
}

function degradedLines(layers: Record<LayerName, LayerReport>, as: "downgrade" | "refusal"): string[] {
  return LAYER_NAMES.flatMap((layer) =>
    Object.entries(layers[layer].controls)
      .filter(([, v]) => v.status === "degraded")
      .map(([name, v]) => `${layer}.${name}: ${whyDegraded(v, as)}`),
  );
}

/** For a run that goes ahead degraded: each control not enforced, why, and what the run gets instead. */
export function listDowngrades(layers: Record<LayerName, LayerReport>): string[] {
  return degradedLines(layers, "downgrade");
}

/**
 * For a refusal under `fail`: each control that cannot be enforced, why, and the fix. Nothing
 * runs, so what a degraded run would have got instead is not said.
 */
export function refusalReasons(layers: Record<LayerName, LayerReport>): string[] {
  return degradedLines(layers, "refusal");
}

/** The controls a run asked for and did not get, as `layer.control`. */
export function degradedControls(layers: Record<LayerName, LayerReport>): string[] {
  return LAYER_NAMES.flatMap((layer) =>
    Object.entries(layers[layer].controls)
      .filter(([, v]) => v.status === "degraded")
      .map(([name]) => `${layer}.${name}`),
  );
}

/** Degraded controls are named in the summary up to this width, else counted: the reasons are `formatReport`'s. */
const SUMMARY_NAMES_WIDTH = 48;

/**
 * One short line for humans: provider, and what was not enforced (degraded controls by name,
 * or their count when many; layers the policy left off). Why is `formatReport`'s.
 */
export function summarizeReport(report: EffectiveSandboxReport): string {
  const degradedNames = degradedControls(report.layers);
  const offLayers = LAYER_NAMES.filter((l) => report.layers[l].status === "off");
  const named = `degraded: ${degradedNames.join(", ")}`;
  const parts = [
    ...(degradedNames.length ? [`${named.length <= SUMMARY_NAMES_WIDTH ? named : `${degradedNames.length} controls degraded`} (why: --report)`] : []),
    ...(offLayers.length ? [`off: ${offLayers.join(", ")}`] : []),
  ];
  const label = report.provider.isolating ? report.provider.name : `${report.provider.name} (NO ISOLATION)`;
  const state = parts.length ? parts.join("; ") : "all enforced";
  return `cordon: sandbox ${label} ${report.provider.version ?? ""}`.trimEnd() + ` | ${state}`;
}

export interface FormatReportOptions {
  /** The widest a line may be, in terminal columns (default 100); longer reasons are wrapped. */
  width?: number;
}

/**
 * The full report for humans: every control with its mechanism, or why it degraded, names
 * aligned, long reasons wrapped under their own column. Control characters in what it
 * quotes are escaped.
 */
export function formatReport(report: EffectiveSandboxReport, options: FormatReportOptions = {}): string {
  const width = options.width ?? TEXT_WIDTH;
  const { provider } = report;
  const wrap = (text: string, indent: string, hang = "    ") => wrapText(escapeControls(text), width, { indent, hang });
  const lines = wrap(
    `effective sandbox: provider ${provider.name}${provider.version ? ` ${provider.version}` : ""}${provider.isolating ? "" : " — NO ISOLATION"}, runner ${report.runner.name}, onUnavailable=${report.onUnavailable}`,
    "",
  );
  const nameWidth = Math.max(0, ...LAYER_NAMES.flatMap((l) => Object.keys(report.layers[l].controls).map((n) => displayWidth(escapeControls(n)))));
  const statusWidth = Math.max(...(["enforced", "degraded", "off"] as const).map((s) => s.length));
  for (const layer of LAYER_NAMES) {
    const l = report.layers[layer];
    lines.push(`  ${layer}: ${l.status}`);
    for (const [name, c] of Object.entries(l.controls)) {
      const why = c.status === "enforced" ? c.mechanism : c.status === "degraded" ? whyDegraded(c, "downgrade") : c.reason;
      const head = `    ${padTo(escapeControls(name), nameWidth)} ${c.status.padEnd(statusWidth)} `;
      lines.push(...wrapText(escapeControls(why ?? ""), width, { indent: head, hang: " ".repeat(displayWidth(head)) }));
    }
  }
  if (report.start) lines.push(...wrap(`start: ${startLine(report.start)}`, "  "));
  if (report.runner.readOnlyBinds.length) lines.push(...wrap(`runner binds (read-only): ${report.runner.readOnlyBinds.join(", ")}`, "  "));
  const degradedNames = degradedControls(report.layers);
  lines.push(
    ...(degradedNames.length
      ? wrap(`DEGRADED (${degradedNames.length}, why above): ${degradedNames.join(", ")}`, "  ")
      : ["  nothing degraded: every requested control is enforced"]),
  );
  return lines.join("\n");
}

function startLine(start: SandboxStart): string {
  if (!start.warm) return `cold (${start.why})`;
  return `warm: a pooled sandbox, idle ${start.idleMs} ms, its waiter (${start.waiter.join(" ")}) handed this run's command after ${start.waitedMs} ms`;
}
