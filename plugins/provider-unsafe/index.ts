import type { Capabilities, Layout, Provider, ProviderProbe, Rendering, SandboxSpec, Workspace } from "../../src/api/plugin.ts";

/** Everything off but what the supervisor itself does: wall clock, output caps, the child's env. */
const UNSAFE_CAPABILITIES: Capabilities = {
  isolating: false,
  filesystem: { view: false },
  network: { deny: false, allowlist: false, unrestricted: true, metadataBlock: false },
  resources: { treeKill: null, rlimits: false, processCap: null, memoryTreeCap: null, tmpfsSize: false, scratchQuota: false, cgroups: false },
  privilege: { hostUidDrop: false, capabilityDrop: false, noNewPrivs: false, syscallFilter: { problem: "no isolation" }, freshKeyring: { problem: "no isolation" } },
  env: { cleanEnvironment: true },
};

/**
 * NO ISOLATION, for development only. Runs the script directly on the host as the
 * supervisor's user. Refused under the default `fail` policy; under `degrade` every
 * missing layer is listed in the report.
 */
export class UnsafeNoIsolationProvider implements Provider {
  readonly name = "unsafe";
  readonly description = "NO ISOLATION: runs scripts directly on the host (development only)";
  readonly isolating = false;

  probe(): ProviderProbe {
    return { available: true, binary: null, version: null, features: {} };
  }

  capabilities(): Capabilities {
    return UNSAFE_CAPABILITIES;
  }

  /** Nothing is mounted: the script sees the run directory's host paths. */
  layout(workspace: Workspace): Layout {
    return { jobDir: workspace.jobDir, scratchDir: workspace.scratchDir, tmpDir: workspace.scratchDir };
  }

  render(spec: SandboxSpec): Rendering {
    return {
      launch: {
        // setsid makes the child a process-group leader, so the group can be killed at once.
        argv: ["/usr/bin/setsid", ...spec.command],
        env: spec.env.vars,
        cwd: spec.filesystem.cwd,
        treeKill: "process-group",
        exitEncoding: "native",
        statusFd: null,
      },
    };
  }
}
