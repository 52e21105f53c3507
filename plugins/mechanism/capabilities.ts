import { cgroupMechanism, freshKeyringProblem, type Capabilities, type HostFacts } from "../../src/api/plugin.ts";

/** The supervisor's per-run session keyring (src/keyring.ts), for every launcher. */
function freshKeyring(): Capabilities["privilege"]["freshKeyring"] {
  const problem = freshKeyringProblem();
  return problem ? { problem } : { mechanism: "the supervisor joins a new session keyring (keyctl) right before the spawn" };
}

/** What a namespace launcher (bwrap, nsjail) itself contributes; the rest follows from the host. */
export interface NamespaceLauncher {
  /** How killing one process kills the whole run. */
  treeKill: string;
  /** Per-process rlimits can be set for the command (bwrap: with --block-fd, or a prlimit under /usr). */
  rlimits: boolean;
  /** How they are set, for the report (who sets them, when). */
  rlimitsSetBy?: string;
  /** The launcher takes byte-sized rlimits in this unit (nsjail: MiB); 1 when absent. */
  rlimitByteUnit?: number;
  tmpfsSize: boolean;
  /** The sandboxed process can run as the policy's uid on the host (a root supervisor with a way to map or drop). */
  hostUidDrop: boolean;
  /** How the launcher installs the syscall filter, or why it cannot. */
  syscallFilter: Capabilities["privilege"]["syscallFilter"];
}

/**
 * What a namespace sandbox enforces on this host: a mount namespace view, caps from
 * cordon's own run cgroup where the host allows one (else RLIMIT_NPROC in the sandbox's
 * user namespace), a scratch quota for a root supervisor. `network` is the provider's own.
 */
export function namespaceCapabilities(host: HostFacts, network: Capabilities["network"], launcher: NamespaceLauncher): Capabilities {
  const pidsCgroup = cgroupMechanism(host.cgroups, "pids");
  return {
    isolating: true,
    filesystem: { view: true },
    network,
    resources: {
      treeKill: launcher.treeKill,
      rlimits: launcher.rlimits,
      ...(launcher.rlimits && launcher.rlimitsSetBy ? { rlimitsSetBy: launcher.rlimitsSetBy } : {}),
      ...(launcher.rlimitByteUnit ? { rlimitByteUnit: launcher.rlimitByteUnit } : {}),
      processCap: pidsCgroup ? `${pidsCgroup} (pids.max for the whole tree)` : launcher.rlimits ? "RLIMIT_NPROC counted in the sandbox's own user namespace" : null,
      memoryTreeCap: cgroupMechanism(host.cgroups, "memory"),
      tmpfsSize: launcher.tmpfsSize,
      scratchQuota: host.isRoot,
      cgroups: host.cgroups.problem === null,
    },
    privilege: { hostUidDrop: launcher.hostUidDrop, capabilityDrop: true, noNewPrivs: true, syscallFilter: launcher.syscallFilter, freshKeyring: freshKeyring() },
    env: { cleanEnvironment: true },
  };
}
