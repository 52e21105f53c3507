import {
  composePlan,
  findExecutable,
  LAUNCHER_ARGS_FD,
  proveProvider,
  type Capabilities,
  type HostFacts,
  type Launch,
  type Layout,
  type PlanInput,
  type Provider,
  type ProviderProbe,
  type SandboxSpec,
  type SpawnPlan,
  type Workspace,
} from "../../src/index.ts";
import { envArgs, mountArgs, namespaceArgs, privilegeDropArgs, rlimitArgs, type BwrapFeatures } from "./argv.ts";

export interface BwrapOptions {
  /** bwrap binary; found on PATH when absent. */
  binary?: string;
}

const LAYOUT_BASE = { jobDir: "/cordon/job", scratchDir: "/scratch", tmpDir: "/tmp" } as const;

/** "cgroup v1 memory" etc.: which hierarchy a cap is enforced by, for the report. */
function cgroupMechanism(host: HostFacts, controller: "memory" | "pids"): string | null {
  const site = host.cgroups.controllers[controller];
  return host.cgroups.problem === null && site ? `cgroup v${site.version} ${controller} controller` : null;
}

function capabilities(probe: ProviderProbe, host: HostFacts, prlimit: string | null, setpriv: string | null): Capabilities {
  const pidsCgroup = cgroupMechanism(host, "pids");
  return {
    isolating: true,
    filesystem: { view: true },
    network: { deny: true, allowlist: false, unrestricted: true, metadataBlock: false },
    resources: {
      treeKill: "SIGKILL to the pid namespace's init (the kernel kills every process in it)",
      rlimits: prlimit !== null,
      processCap: pidsCgroup
        ? `${pidsCgroup} (pids.max for the whole tree)`
        : prlimit !== null
          ? "RLIMIT_NPROC counted in the sandbox's own user namespace"
          : null,
      memoryTreeCap: cgroupMechanism(host, "memory"),
      tmpfsSize: probe.features.tmpfsSize === true,
      scratchQuota: host.isRoot,
      cgroups: host.cgroups.problem === null,
    },
    privilege: { hostUidDrop: host.isRoot && setpriv !== null, capabilityDrop: true, noNewPrivs: true },
    env: { cleanEnvironment: true },
  };
}

/** bubblewrap: user, mount, pid, net, ipc, uts and cgroup namespaces; the default provider. */
export class BwrapProvider implements Provider {
  readonly name = "bwrap";
  readonly description = "bubblewrap: unprivileged namespaces, read-only minimal filesystem, no network";
  readonly isolating = true;
  private probed?: Promise<ProviderProbe>;

  constructor(private readonly options: BwrapOptions = {}) {}

  probe(): Promise<ProviderProbe> {
    this.probed ??= this.detect();
    return this.probed;
  }

  private async detect(): Promise<ProviderProbe> {
    const binary = findExecutable(this.options.binary ?? "bwrap");
    const none = (reason: string): ProviderProbe => ({ available: false, binary, version: null, features: {}, reason });
    if (!binary) return none(`bwrap not found${this.options.binary ? ` at ${this.options.binary}` : " on PATH"} (Debian: apt-get install bubblewrap)`);
    const version = Bun.spawnSync([binary, "--version"], { env: {} });
    const help = Bun.spawnSync([binary, "--help"], { env: {} });
    if (!version.success) return none(`${binary} --version failed: ${version.stderr.toString().trim()}`);
    const helpText = help.stdout.toString();
    // prlimit runs inside the sandbox, so only one under the bound /usr will do.
    const prlimit = findExecutable("prlimit", "/usr/bin");
    const setpriv = findExecutable("setpriv", "/usr/bin:/bin");
    return {
      available: true,
      binary,
      version: version.stdout.toString().trim().replace(/^bubblewrap\s*/, ""),
      features: {
        disableUserns: helpText.includes("--disable-userns"),
        tmpfsSize: helpText.includes("--size"),
      },
      tools: { ...(prlimit ? { prlimit } : {}), ...(setpriv ? { setpriv } : {}) },
    };
  }

  layout(_workspace: Workspace): Layout {
    return { ...LAYOUT_BASE };
  }

  plan(input: PlanInput, probe: ProviderProbe): SpawnPlan {
    if (!probe.available || !probe.binary) throw new Error(`bwrap is unavailable: ${probe.reason}`);
    const bwrap = probe.binary;
    const prlimit = probe.tools?.prlimit ?? null;
    const setpriv = probe.tools?.setpriv ?? null;
    const features: BwrapFeatures = { disableUserns: probe.features.disableUserns === true, tmpfsSize: probe.features.tmpfsSize === true };
    return composePlan(input, {
      name: this.name,
      version: probe.version,
      capabilities: capabilities(probe, input.host, prlimit, setpriv),
      layout: this.layout(input.workspace),
      render: (spec: SandboxSpec): Launch => ({
        // Everything but the command goes through `--args 5`: mounts and env values stay
        // out of `ps` on the host and out of /proc/1/cmdline inside the sandbox.
        argv: [
          ...privilegeDropArgs(spec.privilege, setpriv ?? "setpriv"),
          bwrap,
          "--args", String(LAUNCHER_ARGS_FD),
          "--",
          ...rlimitArgs(prlimit ?? "prlimit", spec.resources.rlimits),
          ...spec.command,
        ],
        launcherArgs: [
          ...namespaceArgs(spec, features),
          ...spec.filesystem.mounts.flatMap(mountArgs),
          "--chdir", spec.filesystem.cwd,
          ...envArgs(spec.env.vars),
          "--info-fd", "3",
        ],
        env: {}, // bwrap's own pid 1 must carry nothing of the host (readable via /proc/1/environ)
        cwd: "/",
        treeKill: "pid-namespace",
        exitEncoding: "shell-128",
        infoFd: true,
        launcherErrorPrefix: "bwrap: ",
      }),
    });
  }

  readiness(runRoot?: string) {
    return proveProvider(this, runRoot);
  }
}
