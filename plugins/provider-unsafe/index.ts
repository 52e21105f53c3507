import {
  composePlan,
  proveProvider,
  type Capabilities,
  type Layout,
  type PlanInput,
  type Provider,
  type ProveOptions,
  type ProviderProbe,
  type SpawnPlan,
  type Workspace,
} from "../../src/index.ts";

/** Everything off but what the supervisor itself does: wall clock, output caps, the child's env. */
const UNSAFE_CAPABILITIES: Capabilities = {
  isolating: false,
  filesystem: { view: false },
  network: { deny: false, allowlist: false, unrestricted: true, metadataBlock: false },
  resources: { treeKill: null, rlimits: false, processCap: null, memoryTreeCap: null, tmpfsSize: false, scratchQuota: false, cgroups: false },
  privilege: { hostUidDrop: false, capabilityDrop: false, noNewPrivs: false },
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

  async probe(): Promise<ProviderProbe> {
    return { available: true, binary: null, version: null, features: {} };
  }

  layout(workspace: Workspace): Layout {
    return { jobDir: workspace.jobDir, scratchDir: workspace.scratchDir, tmpDir: workspace.scratchDir };
  }

  plan(input: PlanInput): SpawnPlan {
    return composePlan(input, {
      name: this.name,
      version: null,
      capabilities: UNSAFE_CAPABILITIES,
      layout: this.layout(input.workspace),
      render: (spec) => ({
        // setsid makes the child a process-group leader, so the group can be killed at once.
        argv: ["/usr/bin/setsid", ...spec.command],
        env: spec.env.vars,
        cwd: spec.filesystem.cwd,
        treeKill: "process-group",
        exitEncoding: "native",
        statusFd: null,
      }),
    });
  }

  readiness(options?: string | ProveOptions) {
    return proveProvider(this, options);
  }
}
