/**
 * The one syscall policy (src/seccomp/policy.ts) and its BPF rendering by libseccomp:
 * every rule resolves on this architecture, and the compiled program does, call by call,
 * what the rule says (read with a BPF interpreter, so other architectures and argument
 * values with high bits set can be asked too). The attacks in real sandboxes live in the
 * conformance suite; this checks the translation from rules to libseccomp's argument structs.
 */
import { describe, expect, test } from "bun:test";
import { cachedBpf, compileBpf, libseccomp, syscallNumber } from "../plugins/mechanism/seccomp/libseccomp.ts";
import { AF_NETLINK, ALLOWED_SOCKET_FAMILIES, deniedSyscalls, describeSyscallFilter, ERRNO, NAMESPACE_CLONE_FLAGS, SYSCALL_GROUPS, SYSCALL_RULES } from "../src/seccomp/policy.ts";
import { attackSyscalls, AUDIT_ARCH, decodeAction, parseProgram, runFilter, type SeccompAction } from "./support.ts";

const SECCOMP_RET_ALLOW: SeccompAction = { action: "allow" };
const SECCOMP_RET_KILL_PROCESS: SeccompAction = { action: "kill-process" };
const SECCOMP_RET_ERRNO = (errno: number): SeccompAction => ({ action: "errno", errno });
/** What the program does with one call (x86_64 unless `arch` says otherwise). */
const runSeccompBpf = (bpf: Uint8Array, call: { nr: number; arch?: number; args?: (number | bigint)[] }) =>
  decodeAction(runFilter(parseProgram(bpf), { nr: call.nr, arch: call.arch ?? AUDIT_ARCH.X86_64, args: (call.args ?? []).map((a) => BigInt(a)) }));

const available = !("problem" in libseccomp());
if (!available) console.log(`skipping the BPF checks: ${(libseccomp() as { problem: string }).problem}`);

describe("the syscall policy, as data", () => {
  test("names the calls the issue lists, each group with its reason", () => {
    const names = deniedSyscalls();
    for (const n of ["add_key", "keyctl", "request_key", "io_uring_setup", "userfaultfd", "perf_event_open", "bpf", "ptrace", "kexec_load", "init_module", "finit_module", "mount", "fsopen", "move_mount", "unshare", "setns", "clone", "clone3", "personality", "acct", "quotactl", "swapon", "reboot", "syslog", "clock_settime", "ioctl", "socket"]) {
      expect(names).toContain(n);
    }
    for (const g of SYSCALL_GROUPS) expect(g.why.length).toBeGreaterThan(20);
    expect(describeSyscallFilter()).toContain("AF_UNIX, AF_INET, AF_INET6");
  });
});

describe.skipIf(!available)("the BPF program libseccomp compiles from it", () => {
  const bpf = available ? compileBpf(SYSCALL_RULES) : new Uint8Array();
  const nr = (name: string) => syscallNumber(name)!;
  const verdict = (name: string, ...args: (number | bigint)[]) => runSeccompBpf(bpf, { nr: nr(name), args });

  test("every rule names a call this architecture has (nothing is skipped silently)", () => {
    const missing = deniedSyscalls().filter((n) => syscallNumber(n) === null);
    expect(missing).toEqual([]);
  });

  test.skipIf(process.arch !== "x64")("the attack script's built-in x86_64 numbers (what readiness calls with no numbers passed) are libseccomp's; every name it calls is one libseccomp knows", () => {
    const table = attackSyscalls();
    expect(Object.keys(table).length).toBeGreaterThan(20);
    for (const [name, builtIn] of Object.entries(table)) {
      const known = syscallNumber(name);
      expect([name, known === null]).toEqual([name, false]);
      if (builtIn !== null) expect([name, builtIn]).toEqual([name, known!]);
    }
  });

  test("compiled once per process; a misspelt call is an error, not a gap", () => {
    expect(cachedBpf(SYSCALL_RULES)).toBe(cachedBpf(SYSCALL_RULES));
    expect(() => compileBpf([{ syscall: "keyctI", errno: "EPERM" }])).toThrow(/does not know the syscall "keyctI"/);
  });

  test("each unconditional rule returns its errno; ordinary calls are allowed", () => {
    for (const rule of SYSCALL_RULES.filter((r) => !r.when)) expect([rule.syscall, verdict(rule.syscall)]).toEqual([rule.syscall, SECCOMP_RET_ERRNO(ERRNO[rule.errno])]);
    for (const ok of ["read", "write", "openat", "mmap", "futex", "wait4", "execve", "getpid", "connect", "prlimit64"]) expect([ok, verdict(ok)]).toEqual([ok, SECCOMP_RET_ALLOW]);
  });

  test("socket: only AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE; high bits on the family do not slip through", () => {
    for (const family of Object.values(ALLOWED_SOCKET_FAMILIES)) expect(verdict("socket", family, 1, 0)).toEqual(SECCOMP_RET_ALLOW);
    expect(verdict("socket", AF_NETLINK, 3, 0)).toEqual(SECCOMP_RET_ALLOW);
    expect(verdict("socket", AF_NETLINK, 3, 9)).toEqual(SECCOMP_RET_ERRNO(ERRNO.EPROTONOSUPPORT)); // NETLINK_AUDIT
    for (const family of [0, 3, 4, 9, 17, 38, 40, 45, 1000]) expect([family, verdict("socket", family, 1, 0)]).toEqual([family, SECCOMP_RET_ERRNO(ERRNO.EAFNOSUPPORT)]);
    // The kernel reads the family as an int: 2^32 + 40 is AF_VSOCK to it.
    expect(verdict("socket", 2n ** 32n + 40n, 1, 0)).toEqual(SECCOMP_RET_ERRNO(ERRNO.EAFNOSUPPORT));
  });

  test("clone: any namespace flag is refused, threads and fork are not; clone3 says ENOSYS", () => {
    const SIGCHLD = 17;
    const THREAD = 0x3d0f00; // glibc's pthread_create flags
    expect(verdict("clone", SIGCHLD)).toEqual(SECCOMP_RET_ALLOW);
    expect(verdict("clone", THREAD)).toEqual(SECCOMP_RET_ALLOW);
    for (const flag of Object.values(NAMESPACE_CLONE_FLAGS)) expect(verdict("clone", flag | SIGCHLD)).toEqual(SECCOMP_RET_ERRNO(ERRNO.EPERM));
    expect(verdict("clone3")).toEqual(SECCOMP_RET_ERRNO(ERRNO.ENOSYS));
  });

  test("ioctl TIOCSTI/TIOCLINUX refused (also with high bits), other requests allowed; personality only PER_LINUX", () => {
    expect(verdict("ioctl", 0, 0x5412)).toEqual(SECCOMP_RET_ERRNO(ERRNO.EPERM));
    expect(verdict("ioctl", 0, 2n ** 32n + 0x5412n)).toEqual(SECCOMP_RET_ERRNO(ERRNO.EPERM));
    expect(verdict("ioctl", 0, 0x541c)).toEqual(SECCOMP_RET_ERRNO(ERRNO.EPERM));
    expect(verdict("ioctl", 0, 0x5401)).toEqual(SECCOMP_RET_ALLOW); // TCGETS
    expect(verdict("personality", 0)).toEqual(SECCOMP_RET_ALLOW);
    expect(verdict("personality", 0x0040000)).toEqual(SECCOMP_RET_ERRNO(ERRNO.EPERM)); // ADDR_NO_RANDOMIZE
  });

  test("non-native ABIs kill the process: i386 by its audit arch, x32 by its syscall bit", () => {
    expect(runSeccompBpf(bpf, { nr: 20, arch: AUDIT_ARCH.I386 })).toEqual(SECCOMP_RET_KILL_PROCESS);
    expect(runSeccompBpf(bpf, { nr: 0x40000000 | nr("getpid") })).toEqual(SECCOMP_RET_KILL_PROCESS);
  });
});
