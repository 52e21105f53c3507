import type { HostFacts } from "../../host.ts";
import type { RunIdentity } from "../../identity/range.ts";
import type { Policy } from "../../policy/index.ts";
import { degraded, type ControlVerdict } from "../report.ts";
import type { Capabilities, Job, Layout, Workspace } from "../spec.ts";

/** Everything a layer decides from. Layers are pure functions of this. */
export interface LayerContext {
  policy: Policy;
  job: Job;
  host: HostFacts;
  caps: Capabilities;
  workspace: Workspace;
  layout: Layout;
  /** Hostname → addresses resolved by the supervisor; null in a trial plan (hostnames are looked up only for a run). */
  resolved: Readonly<Record<string, readonly string[]>> | null;
  /** The run's own host uid/gid from the identity pool (representative in a trial plan); null: none was allocated. */
  identity: RunIdentity | null;
}

/** A layer's verdicts (one per control) and what it contributes to the spawn. */
export interface LayerResult<S> {
  controls: Record<string, ControlVerdict>;
  spec: S;
}

/**
 * The fix for a control only a provider with namespaces can apply (the `unsafe` provider has
 * none): bwrap, the default, applies them all. One wording, so every report says it alike.
 */
export const USE_ISOLATING_PROVIDER = "use an isolating provider (bwrap)";

/** A control this provider cannot apply because it isolates nothing. */
export const needsIsolation = (reason: string): ControlVerdict => degraded(reason, USE_ISOLATING_PROVIDER);
