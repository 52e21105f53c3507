import type { HostFacts } from "./host.ts";
import type { ControlVerdict, LayerName } from "./sandbox/report.ts";
import type { Capabilities, Launch, Layout, SandboxSpec, StagedFile, Workspace } from "./sandbox/spec.ts";

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

/** What a provider is told when it renders one run. */
export interface RenderContext {
  probe: ProviderProbe;
  host: HostFacts;
  workspace: Workspace;
  /** Secret values: anything the rendering adds to the report must show them as ****. */
  secrets: readonly string[];
}

/**
 * Where a provider applies a control differently from the layers' provider-neutral
 * wording (nsjail: RLIMIT_CPU soft = hard), or adds one the layers do not have (a seccomp
 * filter). The core applies them; a rewording may not change a control's status, and an
 * added control must be enforced: a provider can say more precisely what it does, never
 * turn a degraded control into an enforced one.
 */
export type ReportAmendments = Partial<Record<LayerName, Record<string, ControlVerdict>>>;

/** A rendered run: the one launch, and what else the provider needs for it, as data. */
export interface Rendering {
  launch: Launch;
  /** Files the launcher reads, written into the run directory before the spawn (nsjail's config). */
  stage?: StagedFile[];
  amendments?: ReportAmendments;
  /** Shown in the report after the argv, already masked (e.g. the rendered config file). */
  reportAppendix?: string[];
}

/**
 * A sandbox provider plugin: only what differs between providers. The core probes it
 * once, lays out the sandbox, runs the layers, renders through it, proves it (readiness)
 * and spawns what it rendered.
 */
export interface Provider {
  readonly name: string;
  readonly description: string;
  /** false for providers that do not isolate (unsafe): every report says so loudly. */
  readonly isolating: boolean;
  /**
   * Locate the binary, read its version and features. Called once per provider object
   * (probeOf caches it) for every Cordon that uses it: it may depend on the machine (its
   * binaries, uid, system paths), never on facts a config narrows (cgroups).
   */
  probe(host: HostFacts): ProviderProbe | Promise<ProviderProbe>;
  /** What this provider enforces on this host, given its probe. The layers decide every verdict from it. */
  capabilities(probe: ProviderProbe, host: HostFacts): Capabilities;
  /**
   * One spec → one launch, changing nothing on the host (it may read it, e.g. the host's
   * addresses; work on the host goes into the launch's setup steps). Called only with an
   * available probe.
   */
  render(spec: SandboxSpec, context: RenderContext): Rendering;
  /** Where the job dir, scratch and /tmp appear to the command; SANDBOX_LAYOUT when absent. */
  layout?(workspace: Workspace): Layout;
  /** The launcher reads its options as a text config (nsjail): control characters are refused in it too. */
  readonly textConfig?: boolean;
}

const probes = new WeakMap<Provider, Promise<ProviderProbe>>();

/** The provider's probe, made once per provider object: finding binaries and trial runs are not per run. */
export function probeOf(provider: Provider, host: HostFacts): Promise<ProviderProbe> {
  let probed = probes.get(provider);
  if (!probed) {
    probed = Promise.resolve().then(() => provider.probe(host));
    probes.set(provider, probed);
  }
  return probed;
}
