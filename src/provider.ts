import type { ProveOptions, ReadinessReport } from "./readiness/index.ts";
import type { Layout, PlanInput, SpawnPlan, Workspace } from "./sandbox/spec.ts";

/** What a provider found on this host: its binary, version and optional features. */
export interface ProviderProbe {
  available: boolean;
  binary: string | null;
  version: string | null;
  features: Record<string, boolean>;
  /** Absolute paths of helper binaries the provider found (resolved once, not per run). */
  tools?: Record<string, string>;
  /** Why it is unavailable. */
  reason?: string;
}

/**
 * A sandbox provider plugin. Providers only describe what they can do and render
 * argv; the layer pipeline (composePlan) decides verdicts, the executor spawns.
 */
export interface Provider {
  readonly name: string;
  readonly description: string;
  /** false for providers that do not isolate (unsafe): every report says so loudly. */
  readonly isolating: boolean;
  /** Locate the binary, read its version and features. Cached by the provider. */
  probe(): Promise<ProviderProbe>;
  /** Where the job dir, scratch and /tmp appear to the sandboxed command. */
  layout(workspace: Workspace): Layout;
  /** Pure: policy + job + host facts → ONE spawn plan. Throws SandboxUnavailableError under `fail`. */
  plan(input: PlanInput, probe: ProviderProbe): SpawnPlan;
  /** Real probes on this host: which layers this provider proves it enforces. */
  /** `runRoot`: where the probe runs are made (the caller's, so the probes test the same directory real runs use). */
  readiness(options?: string | ProveOptions): Promise<ReadinessReport>;
}
