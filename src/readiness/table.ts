import type { ReadinessReport, ReadinessVerdict } from "./index.ts";
import { LAYER_NAMES } from "../sandbox/report.ts";
import { escapeControls } from "../escape.ts";

const MARK = { proven: "✓", "not-enforced": "✗", unknown: "?" } as const;

function cell(v: ReadinessVerdict, width: number): string {
  // Escaped before measuring: a detail quotes what a failing launcher printed.
  const text = escapeControls(v.status === "proven" ? MARK.proven : `${MARK[v.status]} ${v.detail}`);
  return text.length > width ? `${text.slice(0, width - 1)}…` : text;
}

/** Providers as rows, layers as columns: ✓ proven, ✗ not enforced (+ why), ? unknown (+ error). */
export function readinessTable(reports: readonly ReadinessReport[], cellWidth = 34): string {
  const header = ["provider", "version", ...LAYER_NAMES, "default policy"];
  const rows = reports.map((r) => [
    r.isolating ? r.provider : `${r.provider} (NO ISOLATION)`,
    r.available ? escapeControls(r.version ?? "-") : "missing",
    ...LAYER_NAMES.map((l) => cell(r.layers[l], cellWidth)),
    r.runsDefaultPolicy ? "runs" : "refused",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cols: string[]) => cols.map((c, i) => c.padEnd(widths[i]!)).join(" | ").trimEnd();
  const details = reports.flatMap((r) =>
    LAYER_NAMES.filter((l) => r.layers[l].status !== "proven").map((l) => `  ${r.provider}.${l}: ${r.layers[l].status}: ${r.layers[l].detail}`),
  );
  const fits = reports.map((r) => `  ${r.provider}: ${r.policies.map((p) => `${p.runsUnderFail ? MARK.proven : MARK["not-enforced"]} ${p.name}`).join(", ")}`);
  return [
    line(header),
    widths.map((w) => "-".repeat(w)).join("-+-"),
    ...rows.map(line),
    ...(details.length ? ["", "not proven:", ...details] : []),
    "",
    "policies this host runs under onUnavailable=fail:",
    ...fits,
  ]
    .map(escapeControls)
    .join("\n");
}
