/**
 * cordon's effective-sandbox report in checkstack's `EffectiveSandbox` shape (its script
 * runners' per-run report): which of its four layers are enforced, each downgrade with its
 * layer, and notes that never fail a run. checkstack's `requested` (its own policy format)
 * has no faithful counterpart and is left out; cordon's full report stays on the RunResult.
 *
 * Layers: checkstack has no env layer; cordon's env controls (what of the host environment
 * reaches the script) are reported under `privilege`, the layer that keeps the supervisor's
 * own authority away from the script.
 */
import { LAYER_NAMES, type EffectiveSandboxReport, type LayerName } from "../sandbox/report.ts";

export type CheckstackLayer = "resources" | "filesystem" | "network" | "privilege";

export interface CheckstackEffectiveSandbox {
  /** A layer is enforced when every cordon layer reported under it enforces what the policy asked. */
  enforced: Record<CheckstackLayer, boolean>;
  /** One per degraded control: `reason` is cordon's downgrade line (`layer.control: why; fallback (fix: …)`). */
  downgrades: { layer: CheckstackLayer; reason: string }[];
  /** Controls the policy did not ask for (status `off`): said, never a downgrade. */
  notes: { layer: CheckstackLayer; note: string }[];
  /** The host platform the run executed on. */
  platform: string;
}

const LAYER_OF: Record<LayerName, CheckstackLayer> = {
  filesystem: "filesystem",
  network: "network",
  resources: "resources",
  privilege: "privilege",
  env: "privilege",
};

/** The cordon layer a downgrade line names (`"network.egress: …"` → network). */
function lineLayer(line: string): LayerName | undefined {
  return LAYER_NAMES.find((l) => line.startsWith(`${l}.`));
}

export function toCheckstackSandbox(report: EffectiveSandboxReport): CheckstackEffectiveSandbox {
  const enforced: Record<CheckstackLayer, boolean> = { resources: true, filesystem: true, network: true, privilege: true };
  for (const layer of LAYER_NAMES) if (report.layers[layer].status !== "enforced") enforced[LAYER_OF[layer]] = false;
  // The report's own lines (already masked for the run's secrets), not a rewording of them.
  const downgrades = report.downgrades.map((reason) => ({ layer: LAYER_OF[lineLayer(reason) ?? "privilege"], reason }));
  const notes = LAYER_NAMES.flatMap((layer) =>
    Object.entries(report.layers[layer].controls)
      .filter(([, control]) => control.status === "off")
      .map(([name, control]) => ({ layer: LAYER_OF[layer], note: `${layer}.${name}: ${control.reason ?? "not asked for by the policy"}` })),
  );
  return { enforced, downgrades, notes, platform: process.platform };
}
