import type { LayerName } from "../sandbox/report.ts";

/** proven: the probe's attack failed; not-enforced: it succeeded or the provider cannot apply it; unknown: the probe could not run. */
export type ReadinessStatus = "proven" | "not-enforced" | "unknown";

export interface ReadinessVerdict {
  status: ReadinessStatus;
  detail: string;
}

/** One cell per thing a probe attacks; the resources layer is split by control. */
export const READINESS_CELLS = ["filesystem", "network", "memory", "pids", "cpu", "wall", "fsize", "output", "privilege", "seccomp", "identity", "env"] as const;
export type ReadinessCell = (typeof READINESS_CELLS)[number];

/** Which cells make up each layer of the report. */
export const CELLS_OF_LAYER: Record<LayerName, readonly ReadinessCell[]> = {
  filesystem: ["filesystem"],
  network: ["network"],
  resources: ["memory", "pids", "cpu", "wall", "fsize", "output"],
  privilege: ["privilege", "seccomp", "identity"],
  env: ["env"],
};

/** A sample policy and whether this provider runs it under `onUnavailable: fail` on this host. */
export interface PolicyFit {
  name: string;
  runsUnderFail: boolean;
  /** Why not: refusal reasons of the plan, or cells the policy needs that were not proven. */
  reasons: string[];
}

export interface ReadinessReport {
  provider: string;
  isolating: boolean;
  available: boolean;
  binary: string | null;
  version: string | null;
  reason: string | null;
  cells: Record<ReadinessCell, ReadinessVerdict>;
  /** Per layer, the worst of its cells. */
  layers: Record<LayerName, ReadinessVerdict>;
  /** Every layer of the default policy is proven: runs under `onUnavailable: fail` will go ahead. */
  runsDefaultPolicy: boolean;
  policies: PolicyFit[];
  durationMs: number;
}
