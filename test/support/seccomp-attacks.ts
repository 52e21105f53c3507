/**
 * One small list of real syscalls the policy (src/seccomp/policy.ts) answers, run by Python
 * inside a sandbox: each prints `NAME=<errno>`, `NAME=ok` (the kernel did it) or
 * `NAME=signalN` (the call killed the throwaway child that made it). Run under two providers
 * it says whether their filters answer alike; run without a filter it says the list can
 * tell (most calls then succeed or fail differently). Every call is harmless for an
 * unprivileged uid with no capabilities (what every sandbox here is); calls that change or
 * end their caller (ptrace TRACEME, personality, raw clone, x32) run in a forked child.
 * Call numbers come from libseccomp (the caller passes them), never written here.
 */

/** The calls the script makes, by the key it prints. */
export const ATTACK_KEYS = [
  "ptrace", "process_vm_readv", "keyctl", "add_key", "io_uring_setup", "userfaultfd", "perf_event_open", "bpf",
  "unshare_user", "setns", "clone_newuser", "clone_newns", "clone_plain", "clone3",
  "mount", "umount2", "open_tree", "fsopen", "mount_setattr", "chroot",
  "personality_set", "personality_query", "personality_zero", "acct", "syslog", "ioctl_tiocsti", "ioctl_tiocsti_high", "ioctl_fionread",
  "socket_vsock", "socket_vsock_high", "socket_packet", "socket_netlink_route", "socket_netlink_audit", "socket_inet", "socket_unix", "socket_inet_high",
  "x32_getpid", "x32_past_span", "fork", "threads",
] as const;

/** The syscalls whose numbers the script needs. */
export const ATTACK_SYSCALLS = [
  "ptrace", "process_vm_readv", "keyctl", "add_key", "io_uring_setup", "userfaultfd", "perf_event_open", "bpf", "unshare", "setns", "clone", "clone3",
  "mount", "umount2", "open_tree", "fsopen", "mount_setattr", "chroot", "personality", "acct", "syslog", "ioctl", "socket", "getpid",
] as const;

export function seccompAttackScript(numbers: Record<(typeof ATTACK_SYSCALLS)[number], number>, x32PastSpan: number): string {
  return `
import ctypes, os, threading
N = ${JSON.stringify(numbers)}
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
M64 = (1 << 64) - 1
def arg(a):
    if isinstance(a, int):
        return ctypes.c_ulong(a & M64)
    return a
def raw(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[arg(a) for a in args])
    return "ok" if r >= 0 else str(ctypes.get_errno())
def child(fn):
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rd)
        try:
            out = fn()
        except BaseException as e:
            out = "exception"
        os.write(wr, out.encode())
        os._exit(0)
    os.close(wr)
    _, status = os.waitpid(pid, 0)
    out = os.read(rd, 64).decode()
    os.close(rd)
    return "signal%d" % os.WTERMSIG(status) if os.WIFSIGNALED(status) else out
def clone(flags):
    # a raw clone with no stack: the new process is a fork; it leaves at once
    def go():
        ctypes.set_errno(0)
        r = libc.syscall(ctypes.c_long(N["clone"]), ctypes.c_ulong(flags | 17), None, None, None, None)
        if r == 0:
            os._exit(0)
        if r > 0:
            os.waitpid(r, 0)
            return "ok"
        return str(ctypes.get_errno())
    return child(go)
SESSION = -3
results = {}
results["ptrace"] = child(lambda: raw(N["ptrace"], 0, 0, 0, 0))
buf = ctypes.create_string_buffer(8)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
io = iovec(ctypes.cast(buf, ctypes.c_void_p), 8)
results["process_vm_readv"] = raw(N["process_vm_readv"], os.getpid(), ctypes.byref(io), 1, ctypes.byref(io), 1, 0)
results["keyctl"] = raw(N["keyctl"], 0, SESSION, 0)
results["add_key"] = raw(N["add_key"], b"user", b"cordon-attack", b"x", 1, SESSION)
params = ctypes.create_string_buffer(120)
results["io_uring_setup"] = raw(N["io_uring_setup"], 1, params)
results["userfaultfd"] = raw(N["userfaultfd"], 1)  # UFFD_USER_MODE_ONLY: allowed unprivileged without a filter
attr = ctypes.create_string_buffer(128)
results["perf_event_open"] = raw(N["perf_event_open"], attr, 0, -1, -1, 0)
battr = ctypes.create_string_buffer(128)
results["bpf"] = raw(N["bpf"], 0, battr, 128)
results["unshare_user"] = child(lambda: raw(N["unshare"], 0x10000000))
uts = os.open("/proc/self/ns/uts", os.O_RDONLY)
results["setns"] = raw(N["setns"], uts, 0)
results["clone_newuser"] = clone(0x10000000)
results["clone_newns"] = clone(0x00020000)
results["clone_plain"] = clone(0)
results["clone3"] = raw(N["clone3"], None, 0)
results["mount"] = raw(N["mount"], b"none", b"/tmp", b"tmpfs", 0, None)
results["umount2"] = raw(N["umount2"], b"/tmp", 0)
results["open_tree"] = raw(N["open_tree"], -100, b"/", 0)
results["fsopen"] = raw(N["fsopen"], b"tmpfs", 0)
results["mount_setattr"] = raw(N["mount_setattr"], -100, b"/", 0, None, 0)
results["chroot"] = raw(N["chroot"], b"/")
results["personality_set"] = child(lambda: raw(N["personality"], 0x0040000))
results["personality_query"] = raw(N["personality"], 0xffffffff)
results["personality_zero"] = child(lambda: raw(N["personality"], 0))
results["acct"] = raw(N["acct"], None)
logbuf = ctypes.create_string_buffer(64)
results["syslog"] = raw(N["syslog"], 3, logbuf, 64)
c = ctypes.c_char(b"x")
results["ioctl_tiocsti"] = raw(N["ioctl"], 0, 0x5412, ctypes.byref(c))
results["ioctl_tiocsti_high"] = raw(N["ioctl"], 0, 0x5412 | (1 << 32), ctypes.byref(c))
n = ctypes.c_int(0)
results["ioctl_fionread"] = raw(N["ioctl"], 0, 0x541b, ctypes.byref(n))
results["socket_vsock"] = raw(N["socket"], 40, 1, 0)
results["socket_vsock_high"] = raw(N["socket"], 40 | (1 << 32), 1, 0)
results["socket_packet"] = raw(N["socket"], 17, 3, 0)
results["socket_netlink_route"] = raw(N["socket"], 16, 3, 0)
results["socket_netlink_audit"] = raw(N["socket"], 16, 3, 9)
results["socket_inet"] = raw(N["socket"], 2, 1, 0)
results["socket_unix"] = raw(N["socket"], 1, 1, 0)
results["socket_inet_high"] = raw(N["socket"], 2 | (1 << 32), 1, 0)
results["x32_getpid"] = child(lambda: raw(0x40000000 | N["getpid"]))
results["x32_past_span"] = child(lambda: raw(${x32PastSpan}))
pid = os.fork()
if pid == 0:
    os._exit(7)
results["fork"] = str(os.waitpid(pid, 0)[1] >> 8)
seen = []
ts = [threading.Thread(target=lambda: seen.append(1)) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
results["threads"] = str(len(seen))
for k, v in results.items():
    print("%s=%s" % (k, v))
print("seccomp_mode=" + [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0])
`;
}
