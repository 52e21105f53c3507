import {
  composePlan,
  proveProvider,
  type Layout,
  type PlanInput,
  type Provider,
  type ProveOptions,
  type ProviderProbe,
  type SandboxSpec,
  type SpawnPlan,
  type Workspace,
} from "../../src/index.ts";
import { bwrapCapabilities, probeBwrap, renderBwrap } from "../mechanism/bwrap/launch.ts";

export interface BwrapOptions {
  /** bwrap binary; found on PATH when absent. */
  binary?: string;
}

const LAYOUT = { jobDir: "/cordon/job", scratchDir: "/scratch", tmpDir: "/tmp" } as const;

/** bwrap alone has no egress filter: deny (fresh namespace) or the host's network, nothing in between. */
const NETWORK = { deny: true, allowlist: false, unrestricted: true, metadataBlock: false };

/** bubblewrap: user, mount, pid, net, ipc, uts and cgroup namespaces; the default provider. */
export class BwrapProvider implements Provider {
  readonly name = "bwrap";
  readonly description = "bubblewrap: unprivileged namespaces, read-only minimal filesystem, no network";
  readonly isolating = true;
  private probed?: Promise<ProviderProbe>;

  constructor(private readonly options: BwrapOptions = {}) {}

  probe(): Promise<ProviderProbe> {
    this.probed ??= Promise.resolve(probeBwrap(this.options.binary));
    return this.probed;
  }

  layout(_workspace: Workspace): Layout {
    return { ...LAYOUT };
  }

  plan(input: PlanInput, probe: ProviderProbe): SpawnPlan {
    return composePlan(input, {
      name: this.name,
      version: probe.version,
      capabilities: bwrapCapabilities(probe, input.host, NETWORK),
      layout: this.layout(input.workspace),
      render: (spec: SandboxSpec) => renderBwrap(spec, probe),
    });
  }

  readiness(options?: string | ProveOptions) {
    return proveProvider(this, options);
  }
}
