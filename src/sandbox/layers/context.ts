import type { HostFacts } from "../../host.ts";
import type { Policy } from "../../policy/index.ts";
import type { ControlVerdict } from "../report.ts";
import type { Capabilities, Job, Layout, Workspace } from "../spec.ts";

/** Everything a layer decides from. Layers are pure functions of this. */
export interface LayerContext {
  policy: Policy;
  job: Job;
  host: HostFacts;
  caps: Capabilities;
  workspace: Workspace;
  layout: Layout;
  /** Hostname → addresses resolved by the supervisor; null in a dry plan (not looked up yet). */
  resolved: Readonly<Record<string, readonly string[]>> | null;
}

/** A layer's verdicts (one per control) and what it contributes to the spawn. */
export interface LayerResult<S> {
  controls: Record<string, ControlVerdict>;
  spec: S;
}
