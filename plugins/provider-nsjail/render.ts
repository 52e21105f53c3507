/**
 * The nsjail renderer, pure: what nsjail enforces on this host (Capabilities) and ONE
 * SandboxSpec as nsjail's protobuf text config plus the argv that runs it. Every nsjail
 * default that would otherwise apply silently (rlimits in MiB, a 600 s time limit, nice
 * 19, hostname "NSJAIL", cwd "/") is written out explicitly.
 */
import type { Capabilities, HostFacts, Launch, Mount, ProviderProbe, SandboxSpec } from "../../src/api/plugin.ts";
import { LAUNCHER_STATUS_FD, RESULT_FD, SYSCALL_RULES } from "../../src/api/plugin.ts";
import { namespaceCapabilities } from "../mechanism/capabilities.ts";
import { kafelFilterSupport, kafelPolicy } from "../mechanism/seccomp/kafel.ts";
import { privilegeDropArgs } from "../mechanism/setpriv.ts";

const MiB = 1024 * 1024;

/** A protobuf text-format string literal: quotes, backslashes and every non-printable or non-ASCII byte escaped. */
export function quote(value: string): string {
  let out = '"';
  for (const byte of Buffer.from(value, "utf8")) {
    if (byte === 0x22) out += '\\"';
    else if (byte === 0x5c) out += "\\\\";
    else if (byte === 0x0a) out += "\\n";
    else if (byte === 0x09) out += "\\t";
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += `\\${byte.toString(8).padStart(3, "0")}`;
  }
  return `${out}"`;
}

/** Bytes → nsjail's MiB, rounded DOWN (never more than the policy allows). */
export function toMiB(bytes: number): { mib: number; exact: boolean } {
  return { mib: Math.floor(bytes / MiB), exact: bytes % MiB === 0 };
}

/**
 * nsjail's `time_limit` counts whole seconds of time(2), checked once a second: it may
 * fire up to a second early or late. It is a backstop only; the supervisor's millisecond
 * timer decides (and reports `timeout`), so the backstop sits 2 s past the wall clock.
 */
export function timeLimitSeconds(wallMs: number): number {
  return Math.ceil(wallMs / 1000) + 2;
}

/** nsjail alone cannot filter egress: deny (fresh namespace) or the host's network. */
export const NSJAIL_NETWORK: Capabilities["network"] = { deny: true, allowlist: false, unrestricted: true, metadataBlock: false };

/**
 * nsjail has no --disable-userns: with the filter off nothing else stops the script from
 * making nested user namespaces (bwrap closes them with --disable-userns either way).
 */
const WITHOUT_FILTER = "and under nsjail, which has no other guard (bwrap's --disable-userns), the script can create nested user namespaces (unshare, clone), holding every capability inside them";

/**
 * What nsjail enforces on this host. Memory and pids caps are cordon's own run cgroup, never
 * nsjail's cgroup options. `setpriv`: util-linux setpriv, which a root supervisor starts
 * nsjail through to drop to the run's host uid (the same drop as bwrap's).
 */
export function nsjailCapabilities(host: HostFacts, tools: { setpriv?: string } = {}): Capabilities {
  const filter = kafelFilterSupport(SYSCALL_RULES, "nsjail seccomp_string");
  return namespaceCapabilities(host, NSJAIL_NETWORK, {
    treeKill: "SIGKILL to nsjail: its child, the pid namespace's init, dies with it (PR_SET_PDEATHSIG) and the kernel kills every process in the namespace",
    rlimits: true,
    rlimitByteUnit: MiB,
    tmpfsSize: true,
    // nsjail runs as the run's host uid and maps the sandbox uid to it; a non-root nsjail can only map its own uid.
    hostUidDrop: host.isRoot && tools.setpriv !== undefined,
    syscallFilter: "problem" in filter ? filter : { ...filter, whenOff: WITHOUT_FILTER },
  });
}

/** Character devices bound into the minimal /dev (read-write: a read-only bind of /dev/null refuses writes). */
export const DEV_NODES = ["null", "zero", "full", "random", "urandom", "tty"] as const;

/** Strings are quoted literals; control characters never get here (the launcher-input choke point refuses them for nsjail). */
const field = (name: string, value: string | number | boolean) => `${name}: ${typeof value === "string" ? quote(value) : String(value)}`;
const block = (name: string, fields: string[]) => `${name} { ${fields.join(" ")} }`;

function tmpfsOptions(sizeBytes: number | null, mode: number): string {
  return [...(sizeBytes !== null ? [`size=${sizeBytes}`] : []), `mode=${mode.toString(8).padStart(4, "0")}`].join(",");
}

/**
 * nsjail has no --dev: a small read-only tmpfs on /dev with the usual character devices
 * bound in, the /proc/self/fd links, and a size-capped writable /dev/shm (POSIX
 * semaphores and shared memory: Python's multiprocessing needs it). No /dev/pts: no ptys.
 */
function devMounts(path: string, shm: number | null): string[] {
  return [
    block("mount", [field("dst", path), field("fstype", "tmpfs"), field("options", "size=65536,mode=0755"), field("rw", false), field("nosuid", true), field("nodev", true), field("noexec", true)]),
    ...DEV_NODES.map((n) => block("mount", [field("src", `/dev/${n}`), field("dst", `${path}/${n}`), field("is_bind", true), field("rw", true), field("nosuid", true), field("noexec", true), ...(n === "tty" ? [field("mandatory", false)] : [])])),
    block("mount", [field("src", "/proc/self/fd"), field("dst", `${path}/fd`), field("is_symlink", true)]),
    ...["stdin", "stdout", "stderr"].map((s, i) => block("mount", [field("src", `/proc/self/fd/${i}`), field("dst", `${path}/${s}`), field("is_symlink", true)])),
    block("mount", [field("dst", `${path}/shm`), field("fstype", "tmpfs"), field("options", tmpfsOptions(shm, 0o1777)), field("rw", true), field("nosuid", true), field("nodev", true)]),
  ];
}

/** One spec mount as nsjail `mount` entries, in order (later mounts sit on top of earlier ones). */
export function mountEntries(m: Mount): string[] {
  switch (m.kind) {
    case "ro-bind":
      return [block("mount", [field("src", m.source), field("dst", m.target), field("is_bind", true), field("rw", false), field("nosuid", true), field("nodev", true)])];
    case "bind":
      return [block("mount", [field("src", m.source), field("dst", m.target), field("is_bind", true), field("rw", true), field("nosuid", true), field("nodev", true)])];
    case "symlink":
      return [block("mount", [field("src", m.linkTarget), field("dst", m.path), field("is_symlink", true)])];
    case "proc":
      return [block("mount", [field("dst", m.path), field("fstype", "proc"), field("rw", false), field("nosuid", true), field("nodev", true), field("noexec", true)])];
    case "dev":
      return devMounts(m.path, m.shmBytes);
    case "tmpfs":
      return [block("mount", [field("dst", m.path), field("fstype", "tmpfs"), field("options", tmpfsOptions(m.sizeBytes, m.mode)), field("rw", true), field("nosuid", true), field("nodev", true)])];
    case "remount-ro":
      // nsjail builds the sandbox's root on a private tmpfs and remounts it read-only once
      // every mount is in place, unless --rw: that IS remount-ro of /. Nothing else can be expressed.
      if (m.path === "/") return [];
      throw new Error(`nsjail cannot remount ${m.path} read-only (only the root)`);
  }
}

export interface RenderOptions {
  /** nsjail's own log level. ERROR (default): a setup failure's first line starts with "[E][". */
  logLevel?: "WARNING" | "ERROR";
  /** Where nsjail writes its own log: LAUNCHER_STATUS_FD (the run's status channel) unless set (the probe's trial run: 2). */
  logFd?: number;
}

export interface RenderedConfig {
  text: string;
  /** The spec has no remount-ro of / (filesystem.mode off binds the host's / read-write): pass --rw. */
  rootWritable: boolean;
}

/**
 * The syscall filter as `seccomp_string` entries, one kafel statement each (nsjail joins them
 * with newlines), or none at all when the policy switched the filter off.
 */
export function seccompLines(spec: SandboxSpec): string[] {
  const rules = spec.privilege.syscallFilter;
  if (!rules) return ["# no syscall filter: policy privilege.seccomp is false"];
  return ["# the syscall policy as kafel (call numbers from libseccomp; see plugins/mechanism/seccomp/kafel.ts)", field("seccomp_log", false), ...kafelPolicy(rules).map((l) => field("seccomp_string", l))];
}

/**
 * The spec as nsjail's protobuf text config. The uid map: a root supervisor starts nsjail as
 * the run's host uid (spec.privilege.hostDrop) and maps the sandbox uid to it; anyone else
 * maps to itself.
 */
export function renderNsjailConfig(spec: SandboxSpec, host: Pick<HostFacts, "uid" | "gid">, options: RenderOptions = {}): RenderedConfig {
  const p = spec.privilege;
  const r = spec.resources.rlimits;
  const outside = p.hostDrop ?? { uid: host.uid, gid: host.gid };
  const lines: string[] = ["# cordon: one run, rendered from the SandboxSpec; every nsjail default that would apply is set explicitly"];
  const add = (...l: string[]) => lines.push(...l);

  add(field("name", "cordon"), "mode: ONCE", field("hostname", spec.hostname), field("cwd", spec.filesystem.cwd));
  // nsjail's own messages go to LAUNCHER_STATUS_FD, which it never passes to the command: a setup failure
  // is read from there, not from stderr, where the script can print "[E][" lines too.
  add(`log_level: ${options.logLevel ?? "ERROR"}`, field("log_fd", options.logFd ?? LAUNCHER_STATUS_FD));
  add(field("time_limit", timeLimitSeconds(spec.resources.wallMs)), field("nice_level", 0), field("daemon", false));
  add("# environment: nsjail starts the command with exactly these (no PATH lookup: the command is absolute)");
  add(field("keep_env", false), ...Object.entries(spec.env.vars).map(([k, v]) => field("envar", `${k}=${v}`)));
  add(`# fds: 0-2 and cordon's result channel; nsjail closes every other fd`, field("pass_fd", RESULT_FD));
  add(field("silent", false), field("stderr_to_null", false), field("skip_setsid", false), field("forward_signals", false));
  add(field("keep_caps", !p.dropCapabilities), field("disable_no_new_privs", !p.noNewPrivs));

  add("# rlimits (as, fsize, core, stack in MiB); soft = hard; HARD/SOFT: keep the supervisor's current limit");
  if (r.as !== undefined) add(field("rlimit_as", toMiB(r.as).mib), "rlimit_as_type: VALUE");
  else add("rlimit_as_type: HARD");
  add(field("rlimit_core", toMiB(r.core ?? 0).mib), "rlimit_core_type: VALUE");
  if (r.cpu !== undefined) add(field("rlimit_cpu", r.cpu), "rlimit_cpu_type: VALUE");
  else add("rlimit_cpu_type: HARD");
  if (r.fsize !== undefined) add(field("rlimit_fsize", toMiB(r.fsize).mib), "rlimit_fsize_type: VALUE");
  else add("rlimit_fsize_type: HARD");
  if (r.nofile !== undefined) add(field("rlimit_nofile", r.nofile), "rlimit_nofile_type: VALUE");
  else add("rlimit_nofile_type: HARD");
  if (r.nproc !== undefined) add(field("rlimit_nproc", r.nproc), "rlimit_nproc_type: VALUE");
  else add("rlimit_nproc_type: SOFT");
  add("rlimit_stack_type: SOFT", "rlimit_memlock_type: SOFT", "rlimit_rtprio_type: SOFT", "rlimit_msgqueue_type: SOFT");

  add("# namespaces; lo is brought up in the fresh network namespace (like bwrap)");
  add(field("clone_newuser", true), field("clone_newns", true), field("clone_newpid", true), field("clone_newipc", true), field("clone_newuts", true), field("clone_newcgroup", true), field("clone_newtime", false));
  add(field("clone_newnet", spec.network.namespace === "fresh"), field("iface_no_lo", false));
  add(`# sandbox uid/gid ${p.sandboxUid}/${p.sandboxGid} is host ${outside.uid}/${outside.gid}, the uid nsjail itself runs as: it owns the user namespace`);
  add(block("uidmap", [field("inside_id", String(p.sandboxUid)), field("outside_id", String(outside.uid)), field("count", 1)]));
  add(block("gidmap", [field("inside_id", String(p.sandboxGid)), field("outside_id", String(outside.gid)), field("count", 1)]));

  add("# cgroups: none of nsjail's; cordon's per-run cgroup holds nsjail and everything under it");
  add("# mounts, on a private tmpfs root that nsjail remounts read-only at the end (unless --rw)");
  add(field("mount_proc", false), ...spec.filesystem.mounts.flatMap((m) => mountEntries(m)));
  add(...seccompLines(spec));
  const rootWritable = !spec.filesystem.mounts.some((m) => m.kind === "remount-ro" && m.path === "/");
  return { text: `${lines.join("\n")}\n`, rootWritable };
}

/**
 * The argv. A root supervisor starts nsjail through setpriv as the run's host uid, with no
 * capabilities: nsjail needs none (an unprivileged process may create a user namespace and
 * map its own uid into it; the mounts, the network namespace and lo are set up inside it),
 * and the kernel then records that uid, not root, as the user namespace's owner, so per-uid
 * counts of the sandbox (inotify instances, user namespaces) are charged to it.
 *
 * nsjail's ONCE mode makes the command itself pid 1 of the new pid namespace,
 * where the kernel drops default-action signals (`kill $$`, SIGPIPE, SIGXFSZ): coreutils
 * `timeout 0` (no time limit) becomes pid 1 instead, runs the command as pid 2 and exits
 * with its status (128+N for a death by signal N, as a pid-1 cannot re-raise it).
 */
export function renderNsjailLaunch(spec: SandboxSpec, probe: ProviderProbe, configPath: string, rootWritable: boolean): Launch {
  if (!probe.available || !probe.binary) throw new Error(`nsjail is unavailable: ${probe.reason}`);
  const init = probe.tools?.timeout;
  if (!init) throw new Error("nsjail provider: coreutils timeout (the pid-1 shim) was not found under /usr/bin or /bin");
  const setpriv = probe.tools?.setpriv;
  if (spec.privilege.hostDrop && !setpriv) throw new Error("nsjail provider: the spec drops to a host uid but setpriv was not found");
  return {
    argv: [...privilegeDropArgs(spec.privilege, setpriv ?? "setpriv"), probe.binary, "--config", configPath, ...(rootWritable ? ["--rw"] : []), "--", init, "0", ...spec.command],
    env: {}, // nsjail clears the command's environment anyway; its own carries nothing of the host either
    cwd: "/",
    treeKill: "process-group",
    exitEncoding: "shell-128",
    statusFd: "nsjail-log",
  };
}
