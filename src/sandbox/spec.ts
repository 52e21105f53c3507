/**
 * The provider-neutral vocabulary the layers speak: what a run needs (Job),
 * where things are (Workspace, Layout), what a provider can do (Capabilities),
 * what the layers decided (SandboxSpec) and what gets spawned (SpawnPlan).
 */
import type { HostFacts } from "../host.ts";
import type { RunIdentity } from "../identity/range.ts";
import type { Policy, ReadOnlyBind } from "../policy/index.ts";
import type { CgroupLimits } from "../cgroup/run-cgroup.ts";
import type { ResultDecoding } from "../protocol/result-channel.ts";
import type { EffectiveSandboxReport } from "./report.ts";
import type { StatusChannel } from "../protocol/launch-status.ts";
import type { SetupStep } from "./setup.ts";
import type { SyscallRule } from "../seccomp/policy.ts";

/** Bytes for the script's stdin: given whole, or a stream forwarded as it arrives (the CLI's own stdin). */
export type StdinSource = Uint8Array | ReadableStream<Uint8Array>;

/** A file a runner stages read-only next to the job (path relative to the job dir). */
export interface JobFile {
  path: string;
  content: string | Uint8Array;
  /** Octal file mode; 0o644 by default. */
  mode?: number;
}

/** What a runner turns a script into: the command and everything it needs, nothing more. */
export interface Job {
  runner: string;
  /** The command as seen inside the sandbox: absolute interpreter path first. */
  argv: string[];
  files: JobFile[];
  /** Host paths the runner needs read-only (interpreter, libraries). Listed in the report. */
  readOnlyBinds: ReadOnlyBind[];
  /** Variables the runner itself sets. */
  env: Record<string, string>;
  stdin?: StdinSource;
  /** How the structured result channel is read. */
  result: ResultDecoding;
  /** What the runner chose and why (interpreter, skipped candidates), shown in the report. */
  notes?: string[];
  /** The interpreter tolerates RLIMIT_AS (sh, Python do; Bun reserves huge virtual memory and does not). */
  addressSpaceLimitSafe: boolean;
}

/** The per-run directory on the host. Created after the plan is accepted, removed after every outcome. */
export interface Workspace {
  root: string;
  /** Read-only material for the sandbox: job files, /etc stubs. */
  stageDir: string;
  jobDir: string;
  /** The only writable directory the script keeps after the run. */
  scratchDir: string;
}

/** Paths as the sandboxed command sees them. */
export interface Layout {
  jobDir: string;
  scratchDir: string;
  tmpDir: string;
}

/** What a provider can enforce on this host. Layers turn requests into verdicts from this. */
export interface Capabilities {
  isolating: boolean;
  filesystem: { view: boolean };
  network: { deny: boolean; allowlist: boolean; unrestricted: boolean; metadataBlock: boolean };
  resources: {
    /** How every process of the run is killed at once, or null when only the direct child can be. */
    treeKill: string | null;
    /** Per-process rlimits applied inside the sandbox (cpu, fsize, nofile, core, as). */
    rlimits: boolean;
    /** How the launcher or the supervisor sets them, said in the report after each limit. */
    rlimitsSetBy?: string;
    /**
     * The launcher takes byte-sized rlimits (as, fsize, core) in this unit (nsjail: MiB): the
     * layer rounds the policy's bytes down to it, so the report states what is applied. 1 when absent.
     */
    rlimitByteUnit?: number;
    /** How the process count is capped, or null. */
    processCap: string | null;
    /** A tree-wide memory cap mechanism (cgroups), or null. */
    memoryTreeCap: string | null;
    tmpfsSize: boolean;
    /** Scratch is a size-capped mount (needs a root supervisor). */
    scratchQuota: boolean;
    /**
     * The supervisor places the launcher in a per-run cgroup before anything untrusted runs
     * (tree-wide memory and pids caps, OOM detection, tree statistics).
     */
    cgroups: boolean;
  };
  privilege: {
    /** The sandboxed process runs as the policy uid/gid on the host. */
    hostUidDrop: boolean;
    capabilityDrop: boolean;
    noNewPrivs: boolean;
    /**
     * How this provider installs the syscall filter (src/seccomp/policy.ts), or why it cannot.
     * `whenOff`: what else opens when the policy switches the filter off, beyond what the
     * filter itself denies (nsjail: new user namespaces, which bwrap also closes another way).
     */
    syscallFilter: { mechanism: string; whenOff?: string } | { problem: string };
    /** The supervisor starts each run in a fresh anonymous session keyring (src/keyring.ts), or why it cannot. */
    freshKeyring: { mechanism: string } | { problem: string };
  };
  env: { cleanEnvironment: boolean };
}

export type Mount =
  | { kind: "ro-bind"; source: string; target: string }
  | { kind: "bind"; source: string; target: string }
  | { kind: "symlink"; linkTarget: string; path: string }
  | { kind: "proc"; path: string }
  /** A fresh minimal /dev; its writable /dev/shm a tmpfs of shmBytes (null: the launcher's default, i.e. unsized). */
  | { kind: "dev"; path: string; shmBytes: number | null }
  | { kind: "tmpfs"; path: string; sizeBytes: number | null; mode: number }
  /** Make an already-built path read-only (the sandbox's own root, so no stray writable dirs remain). */
  | { kind: "remount-ro"; path: string };

/** A file the executor writes into the workspace before spawning (path relative to workspace root). */
export interface StagedFile {
  path: string;
  content: string | Uint8Array;
  mode: number;
  /**
   * Who owns it (default: the supervisor). A launcher that runs as the run's host uid and
   * must read a file meant for it alone (nsjail's 0400 config) is given it this way.
   */
  owner?: { uid: number; gid: number };
}

export interface FilesystemSpec {
  isolated: boolean;
  mounts: Mount[];
  cwd: string;
  stage: StagedFile[];
}

/** One allowed destination, addresses only (hostnames were resolved and pinned). */
export interface EgressRule {
  family: 4 | 6;
  address: string;
  prefix: number;
  protocols: ("tcp" | "udp")[];
  ports: { from: number; to: number } | null;
  /** The policy entry it came from (for error messages only; never rendered). */
  entry?: string;
  /** The policy wrote this address or network itself (not a hostname): only such a rule may name a host address. */
  literal?: boolean;
}

/** Filtered egress out of a fresh namespace (a provider with a filter renders it). */
export interface EgressSpec {
  mode: "allowlist" | "unrestricted";
  rules: EgressRule[];
  /** Drop metadata and link-local/ULA ranges, and the host through the gateway. */
  blockMetadata: boolean;
  /** Hostnames pinned in the sandbox's /etc/hosts. */
  hosts: { name: string; address: string }[];
}

export interface NetworkSpec {
  /** fresh: new namespace with loopback only (plus filtered egress when `egress`); host: the host's network. */
  namespace: "fresh" | "host";
  egress: EgressSpec | null;
}

export type RlimitName = "cpu" | "fsize" | "nofile" | "nproc" | "as" | "core";

export interface ResourcesSpec {
  wallMs: number;
  maxOutputBytes: number;
  maxStdinBytes: number;
  rlimits: Partial<Record<RlimitName, number>>;
  scratchQuotaBytes: number | null;
  /** Caps for the run's cgroup, or null when the run gets none. */
  cgroup: CgroupLimits | null;
}

export interface PrivilegeSpec {
  /**
   * Drop to this host uid/gid before starting the sandbox (root supervisor), or null: the
   * run's own identity from the pool (or, planned without one, the policy uid, reported).
   */
  hostDrop: { uid: number; gid: number } | null;
  sandboxUid: number;
  sandboxGid: number;
  dropCapabilities: boolean;
  noNewPrivs: boolean;
  /** The syscall filter's rules, or null when the run gets none. */
  syscallFilter: readonly SyscallRule[] | null;
  /** Spawn the launcher in a fresh anonymous session keyring (nothing of the supervisor's is reachable). */
  freshKeyring: boolean;
}

export interface EnvSpec {
  vars: Record<string, string>;
}

export interface SandboxSpec {
  filesystem: FilesystemSpec;
  network: NetworkSpec;
  resources: ResourcesSpec;
  privilege: PrivilegeSpec;
  env: EnvSpec;
  command: string[];
  hostname: string;
}

/** What a provider renders a spec into: the argv and how to handle the spawned process. */
export interface Launch {
  argv: string[];
  /**
   * Spawn argv[0] as this host uid and gid (Bun.spawn's uid/gid: every uid and gid set,
   * supplementary groups cleared, no capabilities left) instead of a setpriv in front of it.
   * Only without a run cgroup: the join launcher must write the cgroup's procs files as
   * the supervisor, so a run with a cgroup drops after the join (setpriv in argv).
   */
  spawnAs?: { uid: number; gid: number };
  /** Environment of the spawned binary itself; sandboxes start theirs empty. */
  env: Record<string, string>;
  cwd: string;
  /** "pid-namespace": killing the namespace's init (its pid from the status fd) kills every process in it. */
  treeKill: "pid-namespace" | "process-group";
  /** The launcher reports a child death by signal N as exit status 128+N. */
  exitEncoding: "shell-128" | "native";
  /**
   * LAUNCHER_STATUS_FD (fd 3, src/protocol/index.ts): a channel only the launcher writes
   * (src/protocol/launch-status.ts). Whether the sandbox started is decided from it, never
   * from stderr (the script's to write). null: this launcher has none (unsafe).
   */
  statusFd: StatusChannel | null;
  /**
   * Arguments the launcher reads from LAUNCHER_ARGS_FD (NUL-separated, e.g. bwrap's
   * `--args 5`), so mounts and environment values stay out of the host process table and
   * /proc/1/cmdline.
   */
  launcherArgs?: string[];
  /** A BPF program the launcher reads from SECCOMP_FD and installs before exec'ing the command (bwrap --seccomp). */
  seccompBpf?: Uint8Array;
  /** The launcher holds the command until the supervisor writes to BLOCK_FD (bwrap --block-fd). */
  blockFd?: boolean;
  /**
   * The provider's own setup steps (e.g. rootless's egress plumbing), run after the
   * core's (run directory, scratch quota, run cgroup) through the same lifecycle
   * (sandbox/setup.ts). A step with `beforeRelease` needs `blockFd`: it acts while the
   * launcher holds the command, before any untrusted instruction ran.
   */
  steps?: SetupStep[];
}

/**
 * Everything the executor needs for one spawn. Produced by composePlan, which creates
 * nothing: every field is data (argv, files to stage, caps, the report) except `steps`,
 * whose objects act on the host when the executor runs them (and hold their own state,
 * e.g. a helper process): a plan is run once, and dropping an unrun plan is safe.
 */
export interface SpawnPlan extends Launch {
  stage: StagedFile[];
  scratch: { quotaBytes: number | null; owner: { uid: number; gid: number } | null };
  /** Spawn in a fresh anonymous session keyring (src/keyring.ts). */
  freshKeyring: boolean;
  wallMs: number;
  maxOutputBytes: number;
  maxStdinBytes: number;
  cgroup: CgroupLimits | null;
  report: EffectiveSandboxReport;
  /** What the layers decided, as rendered: a warm sandbox is matched to a run by it (src/pool/match.ts). */
  spec: SandboxSpec;
}

export interface PlanInput {
  policy: Policy;
  /** Addresses of the hostnames in the policy's allowlist, resolved by the supervisor before planning; absent in a trial plan. */
  resolved?: Readonly<Record<string, readonly string[]>>;
  job: Job;
  host: HostFacts;
  workspace: Workspace;
  /** Values to show as **** wherever the plan is reported (secret env). */
  secrets?: readonly string[];
  /**
   * The run's own host uid/gid, allocated from the identity pool before planning (a
   * representative one in a trial plan). Absent: every such run shares the policy uid on
   * the host, and the report says so (privilege.identity degraded).
   */
  identity?: RunIdentity;
}
