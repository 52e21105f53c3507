/**
 * The syscall policy, declared once as data (like nsjail's config.proto declares options):
 * a deny-list on top of the sandbox's namespaces, rendered to a BPF program for the bwrap
 * based providers and to kafel text for nsjail, so every isolating provider enforces the
 * same list. Modelled on flatpak's setup_seccomp and isolate's filter: what is denied is
 * where kernel privilege escalations live, or what crosses namespaces (keyrings, AF_VSOCK),
 * and what no health check needs. Everything else is allowed: a deny-list keeps Python,
 * Bun and shell working as they do on the host (threads, subprocess, asyncio, sqlite).
 */

/** errno numbers the filter returns (x86_64/generic Linux values). */
export const ERRNO = Object.freeze({ EPERM: 1, EINVAL: 22, ENOSYS: 38, EPROTONOSUPPORT: 93, EAFNOSUPPORT: 97 } as const);
export type ErrnoName = keyof typeof ERRNO;

/**
 * A test on one syscall argument. Arguments are 64-bit registers: `eq`/`ge` compare all 64
 * bits, `masked-eq` compares (arg & mask) == value. An `int` argument the kernel truncates
 * must be caught with `ge` too (a value with high bits set is >= anything small).
 */
export type ArgTest = { arg: number; op: "eq" | "ne" | "ge"; value: number } | { arg: number; op: "masked-eq"; mask: number; value: number };

export interface SyscallRule {
  syscall: string;
  errno: ErrnoName;
  /** All must hold for the rule to apply; none: every call. */
  when?: readonly ArgTest[];
}

export interface SyscallGroup {
  /** Why these calls are denied: shown in the README and the report's filter summary. */
  why: string;
  rules: readonly SyscallRule[];
}

const deny = (errno: ErrnoName, ...syscalls: string[]): SyscallRule[] => syscalls.map((syscall) => ({ syscall, errno }));

/** Address families a script may open: local sockets and IP (whatever the network layer allows of it). */
export const ALLOWED_SOCKET_FAMILIES = Object.freeze({ AF_UNIX: 1, AF_INET: 2, AF_INET6: 10 } as const);
/** AF_NETLINK, allowed only for NETLINK_ROUTE (0): getaddrinfo and `ip addr` read interfaces through it. */
export const AF_NETLINK = 16;
export const NETLINK_ROUTE = 0;

/** socket() for every family but the allowed ones: each lower one by number, everything above by `ge`. */
function socketFamilyRules(): SyscallRule[] {
  const allowed = new Set<number>([...Object.values(ALLOWED_SOCKET_FAMILIES), AF_NETLINK]);
  const highest = Math.max(...allowed);
  const rules: SyscallRule[] = [];
  for (let family = 0; family < highest; family++) {
    if (!allowed.has(family)) rules.push({ syscall: "socket", errno: "EAFNOSUPPORT", when: [{ arg: 0, op: "eq", value: family }] });
  }
  rules.push({ syscall: "socket", errno: "EAFNOSUPPORT", when: [{ arg: 0, op: "ge", value: highest + 1 }] });
  rules.push({ syscall: "socket", errno: "EPROTONOSUPPORT", when: [{ arg: 0, op: "eq", value: AF_NETLINK }, { arg: 2, op: "ne", value: NETLINK_ROUTE }] });
  return rules;
}

/** clone() flags that make a namespace: the sandbox's own are made by the launcher, never by the script. */
export const NAMESPACE_CLONE_FLAGS = Object.freeze({
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
} as const);

/** ioctl requests that push input into, or reprogram, the controlling terminal. */
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;

export const SYSCALL_GROUPS: readonly SyscallGroup[] = Object.freeze([
  { why: "keyrings are not namespaced: the supervisor's session and user keyrings would be readable and writable", rules: deny("EPERM", "add_key", "keyctl", "request_key") },
  { why: "io_uring, userfaultfd, perf events and bpf: large kernel attack surface no health check needs", rules: deny("EPERM", "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd", "perf_event_open", "bpf") },
  { why: "tracing and reading other processes' memory", rules: deny("EPERM", "ptrace", "process_vm_readv", "process_vm_writev") },
  { why: "kernel code: kexec and module loading", rules: deny("EPERM", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module") },
  {
    why: "mounts, the new mount API included: the filesystem view is the launcher's",
    rules: deny("EPERM", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"),
  },
  {
    why: "new namespaces (unshare, setns, namespace flags of clone); clone3 returns ENOSYS so libc falls back to clone, whose flags the filter can read",
    rules: [
      ...deny("EPERM", "unshare", "setns"),
      ...Object.values(NAMESPACE_CLONE_FLAGS).map((flag): SyscallRule => ({ syscall: "clone", errno: "EPERM", when: [{ arg: 0, op: "masked-eq", mask: flag, value: flag }] })),
      ...deny("ENOSYS", "clone3"),
    ],
  },
  { why: "personality changes (a non-native or address-randomization-free execution domain)", rules: [{ syscall: "personality", errno: "EPERM", when: [{ arg: 0, op: "ne", value: 0 }] }] },
  {
    why: "host administration: accounting, quotas, swap, reboot, the kernel log, the clock, raw I/O ports, file handles",
    rules: deny("EPERM", "acct", "quotactl", "quotactl_fd", "swapon", "swapoff", "reboot", "syslog", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm", "open_by_handle_at", "lookup_dcookie", "uselib", "vhangup"),
  },
  {
    why: "terminal injection: TIOCSTI and TIOCLINUX push input into a terminal the script shares",
    rules: [TIOCSTI, TIOCLINUX].map((request): SyscallRule => ({ syscall: "ioctl", errno: "EPERM", when: [{ arg: 1, op: "masked-eq", mask: 0xffffffff, value: request }] })),
  },
  {
    why: "socket families other than AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK/NETLINK_ROUTE: AF_VSOCK crosses the network namespace to the hypervisor and other guests; rare families are where kernel bugs live",
    rules: socketFamilyRules(),
  },
] satisfies SyscallGroup[]);

/** Every rule of the policy, in declaration order. */
export const SYSCALL_RULES: readonly SyscallRule[] = SYSCALL_GROUPS.flatMap((g) => g.rules);

/** The calls the policy names (each once). */
export function deniedSyscalls(rules: readonly SyscallRule[] = SYSCALL_RULES): string[] {
  return [...new Set(rules.map((r) => r.syscall))];
}

/**
 * The filter in one line for the report: how many calls, which ABI, which errno. The rules
 * name native calls only; what a call through another ABI (i386 through int 0x80, x32)
 * meets is the mechanism's to say (libseccomp and kafel differ there), so the provider's
 * `syscallFilter.mechanism` says it.
 */
export function describeSyscallFilter(rules: readonly SyscallRule[] = SYSCALL_RULES): string {
  const always = deniedSyscalls(rules.filter((r) => !r.when));
  const byArgument = deniedSyscalls(rules.filter((r) => r.when)).filter((s) => !always.includes(s));
  const errnos = [...new Set(rules.map((r) => r.errno))].join("/");
  return `seccomp deny-list: ${always.length} syscalls always and ${byArgument.length} by argument (${byArgument.join(", ")}) fail with ${errnos}; socket families limited to AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK/NETLINK_ROUTE; rules for the native ABI (${process.arch === "x64" ? "x86_64" : process.arch})`;
}
