/**
 * bubblewrap as a launcher, shared by the providers built on it (bwrap, rootless):
 * finding it and its helpers, what it can enforce on this host, and rendering a spec.
 */
import { BLOCK_FD, JobInputError, LAUNCHER_ARGS_FD, LAUNCHER_STATUS_FD, SECCOMP_FD, SYSCALL_RULES, type Capabilities, type HostFacts, type Launch, type ProviderProbe, type Rendering, type SandboxSpec } from "../../../src/api/plugin.ts";
import { namespaceCapabilities } from "../capabilities.ts";
import { bpfFilterSupport, cachedBpf } from "../seccomp/libseccomp.ts";
import { envArgs, mountArgs, namespaceArgs, privilegeDropArgs, type BwrapFeatures } from "./argv.ts";
export { probeBwrap } from "./probe.ts";
import { rlimitArgs, rlimitsAppendix, rlimitStep, SET_AT_RELEASE, SET_BY_HELPER } from "./rlimits.ts";

/** What bwrap enforces on this host; `network` is the provider's own (bwrap alone cannot filter egress). */
export function bwrapCapabilities(probe: ProviderProbe, host: HostFacts, network: Capabilities["network"]): Capabilities {
  return namespaceCapabilities(host, network, {
    treeKill: "SIGKILL to the pid namespace's init (the kernel kills every process in it)",
    rlimits: probe.features.blockFd === true || probe.tools?.prlimit !== undefined,
    rlimitsSetBy: probe.features.blockFd === true ? SET_AT_RELEASE : SET_BY_HELPER,
    tmpfsSize: probe.features.tmpfsSize === true,
    hostUidDrop: host.isRoot && probe.tools?.setpriv !== undefined,
    syscallFilter: probe.features.seccomp ? bpfFilterSupport(SYSCALL_RULES, `bwrap --seccomp ${SECCOMP_FD}`) : { problem: `${probe.binary} has no --seccomp option` },
  });
}

/**
 * ONE bwrap command line. Everything but the command goes through `--args LAUNCHER_ARGS_FD`: mounts
 * and env values stay out of `ps` on the host and out of /proc/1/cmdline inside.
 * With `block`, bwrap holds the command until the supervisor writes to BLOCK_FD; a run with
 * rlimits is held too (when this bwrap can), so they are set with prlimit(2) in that window
 * (./rlimits.ts) instead of by a `prlimit` process in front of the command.
 */
export function renderBwrap(spec: SandboxSpec, probe: ProviderProbe, options: { block?: boolean } = {}): Rendering {
  if (!probe.available || !probe.binary) throw new Error(`bwrap is unavailable: ${probe.reason}`);
  const features: BwrapFeatures = { disableUserns: probe.features.disableUserns === true, tmpfsSize: probe.features.tmpfsSize === true };
  const filter = spec.privilege.syscallFilter;
  // Without a run cgroup nothing must run as the supervisor before bwrap: Bun.spawn drops to
  // the host identity itself (no setpriv process). bwrap sets no_new_privs on the command
  // before exec whatever it is given; a setuid bwrap still gets setpriv's --no-new-privs.
  const hostDrop = spec.privilege.hostDrop;
  const dropAtSpawn = hostDrop !== null && spec.resources.cgroup === null && probe.features.setuid === false;
  const rlimits = spec.resources.rlimits;
  const rlimitsAtRelease = Object.keys(rlimits).length > 0 && probe.features.blockFd === true;
  const block = options.block === true || rlimitsAtRelease;
  const launch: Launch = {
    argv: [
      ...(dropAtSpawn ? [] : privilegeDropArgs(spec.privilege, probe.tools?.setpriv ?? "setpriv")),
      probe.binary,
      "--args", String(LAUNCHER_ARGS_FD),
      "--",
      ...(rlimitsAtRelease ? [] : rlimitArgs(probe.tools?.prlimit ?? "prlimit", rlimits)),
      ...spec.command,
    ],
    launcherArgs: [
      ...namespaceArgs(spec, features),
      ...spec.filesystem.mounts.flatMap(mountArgs),
      "--chdir", spec.filesystem.cwd,
      // Installed right before exec'ing the command: bwrap has built its namespaces by then.
      ...(filter ? ["--seccomp", String(SECCOMP_FD)] : []),
      ...envArgs(spec.env.vars),
      // Not --info-fd: the json status also says whether the command was exec'd.
      "--json-status-fd", String(LAUNCHER_STATUS_FD),
      ...(block ? ["--block-fd", String(BLOCK_FD)] : []),
    ],
    ...(dropAtSpawn ? { spawnAs: { uid: hostDrop.uid, gid: hostDrop.gid } } : {}),
    env: {}, // bwrap's own pid 1 must carry nothing of the host (readable via /proc/1/environ)
    cwd: "/",
    treeKill: "pid-namespace",
    exitEncoding: "shell-128",
    statusFd: "bwrap-json-status",
    ...(filter ? { seccompBpf: cachedBpf(filter) } : {}),
    ...(block ? { blockFd: true } : {}),
    ...(rlimitsAtRelease ? { steps: [rlimitStep(rlimits, hostDrop)] } : {}),
  };
  refuseOverArgumentLimit(launch);
  return { launch, ...(rlimitsAtRelease ? { reportAppendix: [rlimitsAppendix(rlimits)] } : {}) };
}

/** bwrap's MAX_ARGS (bubblewrap.c): more options, its own or from --args, and it dies at start. */
const BWRAP_MAX_ARGS = 9000;

/**
 * A command line bwrap would refuse (each variable takes three options, `--setenv NAME VALUE`)
 * is refused here, before anything exists, with what to change: one answer however the run
 * would start (a warm sandbox's waiter would otherwise have taken what a cold bwrap cannot).
 */
function refuseOverArgumentLimit(launch: Launch): void {
  const options = (launch.launcherArgs?.length ?? 0) + launch.argv.indexOf("--");
  if (options > BWRAP_MAX_ARGS) throw new JobInputError(`bwrap takes at most ${BWRAP_MAX_ARGS} options and this run needs ${options} (each environment variable takes 3): pass fewer variables`);
}
