import type { Capabilities, HostFacts, Provider, ProviderProbe, RenderContext, Rendering, SandboxSpec } from "../../src/api/plugin.ts";
import { bwrapCapabilities, probeBwrap, renderBwrap } from "../mechanism/bwrap/launch.ts";

export interface BwrapOptions {
  /** bwrap binary; found on PATH when absent. */
  binary?: string;
}

/** bwrap alone has no egress filter: deny (fresh namespace) or the host's network, nothing in between. */
const NETWORK = { deny: true, allowlist: false, unrestricted: true, metadataBlock: false };

/** bubblewrap: user, mount, pid, net, ipc, uts and cgroup namespaces; the default provider. */
export class BwrapProvider implements Provider {
  readonly name = "bwrap";
  readonly description = "bubblewrap: unprivileged namespaces, read-only minimal filesystem, no network";
  readonly isolating = true;

  constructor(private readonly options: BwrapOptions = {}) {}

  probe(): ProviderProbe {
    return probeBwrap(this.options.binary);
  }

  capabilities(probe: ProviderProbe, host: HostFacts): Capabilities {
    return bwrapCapabilities(probe, host, NETWORK);
  }

  render(spec: SandboxSpec, { probe }: RenderContext): Rendering {
    return renderBwrap(spec, probe);
  }
}
