"""
Syscall attacks: what cordon's syscall filter must refuse (and a few calls it must let
through), tried for real. The one list of attack calls, used by the readiness probe
(src/readiness/prove.ts), by the attack tests (test/syscall-filter.test.ts) and by the
comparison of providers' filters call by call (test/provider-nsjail.test.ts).

    python3 -I -B syscall-attacks.py [--numbers=JSON] ATTACK[=ARG] ...
    python3 -I -B syscall-attacks.py --syscalls

Each attack prints one line per thing it tried, NAME=RESULT, on stdout, and the run ends
with attacks_done=1:
    ok / ok:DETAIL     the call went through: the attack SUCCEEDED
    ENAME              the call failed with that errno (EPERM, EAFNOSUPPORT, ENOSYS...)
    killed:SIGNAME     (child attacks) the child was killed by that signal
    returned:RESULT    (child attacks) the child's call returned (ok or an errno)
    error:WHAT         the attack could not be made (an exception of this script)
Child attacks run in a forked child judged by its wait status, so this process survives
a filter that kills (the x32 and i386 ABIs) or a call that changes the process (unshare,
ptrace, personality).

Syscall numbers: calls are made by name through NR. It holds the x86_64 numbers of the
calls the readiness probe makes (it runs without numbers from outside); --numbers (a JSON
object, name to number: libseccomp's, from the caller) adds to and overrides them, and the
attacks no default covers need it. --syscalls prints every name the attacks call with its
built-in number (empty when none), so a caller knows what to pass. Standard library only.
"""
import ctypes
import errno
import fcntl
import json
import mmap
import os
import signal
import socket
import struct
import sys
import threading

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# Every syscall the attacks make by number; the readiness probe's with their x86_64 numbers.
SYSCALLS = {
    "io_uring_setup": 425, "userfaultfd": 323, "perf_event_open": 298, "keyctl": 250, "add_key": 248,
    "unshare": 272, "clone": 56, "clone3": 435, "mount": 165, "umount2": 166, "fsopen": 430, "getpid": 39,
    "ptrace": None, "process_vm_readv": None, "bpf": None, "setns": None, "open_tree": None, "mount_setattr": None,
    "chroot": None, "personality": None, "acct": None, "syslog": None, "ioctl": None, "socket": None,
}
NR = {name: nr for name, nr in SYSCALLS.items() if nr is not None}

SIGCHLD = 17
CLONE_NEWUSER, CLONE_NEWNS, CLONE_FS = 0x10000000, 0x00020000, 0x00000200
AF_UNIX, AF_INET, AF_PACKET, AF_NETLINK, AF_VSOCK = 1, 2, 17, 16, 40
NETLINK_ROUTE, NETLINK_AUDIT, NETLINK_KOBJECT_UEVENT = 0, 9, 15
KEYCTL_GET_KEYRING_ID, KEYCTL_UPDATE, KEYCTL_SETPERM, KEYCTL_SEARCH, KEYCTL_READ = 0, 2, 5, 10, 11
KEY_SPEC = {"s": -3, "u": -4, "us": -5}
TIOCSCTTY, TIOCSTI, FIONREAD = 0x540E, 0x5412, 0x541B
AT_FDCWD = -100
M64 = (1 << 64) - 1
HIGH = 1 << 32  # set in the upper half of a 64-bit argument the kernel reads as 32 bits


def say(name, value):
    print("%s=%s" % (name, value), flush=True)


def errname(e):
    return errno.errorcode.get(e, "E%d" % e)


def nr(name):
    if name not in SYSCALLS:
        raise LookupError("%s is not in SYSCALLS" % name)
    if name not in NR:
        raise LookupError("no number for %s (pass --numbers)" % name)
    return NR[name]


def call(name_or_nr, *args):
    """A raw syscall, by name (NR) or number: its return value, or -errno."""
    conv = [ctypes.c_ulong(a & M64) if isinstance(a, int) else a for a in args]
    number = nr(name_or_nr) if isinstance(name_or_nr, str) else name_or_nr
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(number), *conv)
    return rc if rc >= 0 else -ctypes.get_errno()


def outcome(rc, detail=""):
    if rc < 0:
        return errname(-rc)
    return "ok:" + detail if detail else "ok"


def closing(rc):
    """The outcome of a call that returns an fd, which is closed."""
    if rc >= 0:
        os.close(rc)
    return outcome(rc)


def in_child(fn):
    """fn() in a forked child: its result string, or how the child died."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = "returned:" + fn()
        except BaseException as e:  # noqa: BLE001 - report, never propagate out of the child
            out = "error:" + type(e).__name__
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    out = os.read(r, 4096).decode()
    os.close(r)
    if os.WIFSIGNALED(status):
        return "killed:" + signal.Signals(os.WTERMSIG(status)).name
    return out or "exit:%d" % os.WEXITSTATUS(status)


def reap(pid):
    """After a raw clone: the child exits at once, the parent reaps it."""
    if pid == 0:
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
    return outcome(pid)


def raw_clone(flags):
    """clone with no stack: the new process is a fork, which leaves at once."""
    return reap(call("clone", flags | SIGCHLD, 0, 0, 0, 0))


# --- the attacks: each prints its own lines --------------------------------------------


def io_uring(_):
    say("io_uring", closing(call("io_uring_setup", 1, ctypes.create_string_buffer(120))))


def userfaultfd(_):
    # UFFD_USER_MODE_ONLY: what an unprivileged process may open (vm.unprivileged_userfaultfd=0).
    say("userfaultfd", closing(call("userfaultfd", os.O_CLOEXEC | 1)))


def perf_event_open(_):
    # A software CPU clock on this process, user space only: allowed at perf_event_paranoid 2.
    attr = ctypes.create_string_buffer(112)
    struct.pack_into("IIQ", attr, 0, 1, 112, 0)
    struct.pack_into("Q", attr, 40, (1 << 0) | (1 << 5) | (1 << 6))  # disabled, exclude_kernel, exclude_hv
    say("perf_event_open", closing(call("perf_event_open", attr, 0, -1, -1, 8)))


def bpf(_):
    say("bpf", closing(call("bpf", 0, ctypes.create_string_buffer(128), 128)))  # BPF_MAP_CREATE, an empty attr


def ptrace(_):
    say("ptrace", in_child(lambda: outcome(call("ptrace", 0, 0, 0, 0))))  # PTRACE_TRACEME


def process_vm_readv(_):
    """Read 8 bytes of this process's own memory through process_vm_readv."""

    class iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    buf = ctypes.create_string_buffer(8)
    io = iovec(ctypes.cast(buf, ctypes.c_void_p), 8)
    say("process_vm_readv", outcome(call("process_vm_readv", os.getpid(), ctypes.byref(io), 1, ctypes.byref(io), 1, 0)))


def read_key(serial):
    buf = ctypes.create_string_buffer(4096)
    n = call("keyctl", KEYCTL_READ, serial, buf, 4096)
    return outcome(n, buf.raw[: min(n, 4096)].decode("latin-1") if n >= 0 else "")


def keyctl(_):
    """The session keyring's serial (KEYCTL_GET_KEYRING_ID, never creating one)."""
    say("keyctl", outcome(call("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC["s"], 0)))


def key_serial(arg):
    """A key by its serial: read its payload, then overwrite it."""
    serial = int(arg)
    say("key_read", read_key(serial))
    data = b"cordon-overwritten"
    say("key_update", outcome(call("keyctl", KEYCTL_UPDATE, serial, data, len(data))))


def key_search(arg):
    """A key by its description in the session, user and user-session keyrings: found means reachable."""
    desc = arg.encode()
    for ring, spec in KEY_SPEC.items():
        found = call("keyctl", KEYCTL_SEARCH, spec, b"user", desc, 0)
        say("key_search_" + ring, read_key(found) if found >= 0 else outcome(found))


def key_add(arg):
    """Leave a key in the session keyring for whoever comes next."""
    desc, payload = arg.split("/", 1)
    serial = call("add_key", b"user", desc.encode(), payload.encode(), len(payload), KEY_SPEC["s"])
    if serial >= 0:
        call("keyctl", KEYCTL_SETPERM, serial, 0x3F3F3F3F)  # anyone may remove it: the test cleans up after a leak
    say("key_add", outcome(serial, str(serial)))


def vsock(_):
    """AF_VSOCK crosses the network namespace: bind any port on any CID."""
    try:
        s = socket.socket(AF_VSOCK, socket.SOCK_STREAM)
    except OSError as e:
        return say("vsock", errname(e.errno))
    try:
        s.bind((0xFFFFFFFF, 0xFFFFFFFF))  # VMADDR_CID_ANY, VMADDR_PORT_ANY
        say("vsock", "ok:bound port %d" % s.getsockname()[1])
    except OSError as e:
        say("vsock", "ok:socket, bind " + errname(e.errno))
    finally:
        s.close()


def open_socket(name, family, kind, proto):
    try:
        socket.socket(family, kind, proto).close()
        say(name, "ok")
    except OSError as e:
        say(name, errname(e.errno))


def packet(_):
    open_socket("packet", AF_PACKET, socket.SOCK_RAW, 0)


def netlink(_):
    open_socket("netlink_uevent", AF_NETLINK, socket.SOCK_RAW, NETLINK_KOBJECT_UEVENT)
    open_socket("netlink_route", AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        say("netlink_interfaces", "ok:" + ",".join(n for _, n in socket.if_nameindex()))
    except OSError as e:
        say("netlink_interfaces", errname(e.errno))


def raw_sockets(_):
    """socket() by number, where the argument the filter reads is the point: high bits set in a
    32-bit argument (the kernel ignores them; a filter comparing all 64 would be fooled), a
    netlink protocol other than NETLINK_ROUTE, and the families every workload needs."""
    for name, family, kind, proto in [
        ("socket_vsock_high", AF_VSOCK | HIGH, socket.SOCK_STREAM, 0),
        ("socket_inet_high", AF_INET | HIGH, socket.SOCK_STREAM, 0),
        ("socket_netlink_audit", AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT),
        ("socket_inet", AF_INET, socket.SOCK_STREAM, 0),
        ("socket_unix", AF_UNIX, socket.SOCK_STREAM, 0),
    ]:
        say(name, closing(call("socket", family, kind, proto)))


def x32(_):
    # getpid with the x32 bit set: the kernel has no x32 ABI (ENOSYS), the filter kills.
    say("x32", in_child(lambda: outcome(call(0x40000000 | nr("getpid")))))


def x32_past_span(arg):
    """An x32 number (ARG) past the block a filter kills outright."""
    say("x32_past_span", in_child(lambda: outcome(call(int(arg, 0)))))


def i386(_):
    """getpid through int 0x80 (the i386 ABI), from machine code in an executable page."""

    def attack():
        code = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])  # mov eax, 20 (i386 getpid); int 0x80; ret
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(code)
        fn = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
        return outcome(fn())

    say("i386", in_child(attack))


def unshare_user(_):
    say("unshare_user", in_child(lambda: outcome(call("unshare", CLONE_NEWUSER))))


def setns(_):
    say("setns", outcome(call("setns", -1, 0)))  # no fd: the kernel says EBADF, the filter EPERM


def clone_newuser(_):
    say("clone_newuser", raw_clone(CLONE_NEWUSER))


def clone_newns(_):
    say("clone_newns", raw_clone(CLONE_NEWNS | CLONE_FS))  # a combination the kernel refuses (EINVAL), the filter first (EPERM)


def clone_plain(_):
    say("clone_plain", raw_clone(0))


def clone3(_):
    args = ctypes.create_string_buffer(64)  # struct clone_args, CLONE_ARGS_SIZE_VER0
    struct.pack_into("Q", args, 32, SIGCHLD)  # exit_signal; no flags
    say("clone3", reap(call("clone3", args, 64)))


def mount(arg):
    """A tmpfs on a directory of our own (ARG), unmounted at once if it worked; then fsopen."""
    os.makedirs(arg, exist_ok=True)
    target = arg.encode()
    rc = call("mount", b"none", target, b"tmpfs", 0, None)
    if rc >= 0:
        call("umount2", target, 0)
    say("mount", outcome(rc))
    say("fsopen", closing(call("fsopen", b"tmpfs", 1)))  # FSOPEN_CLOEXEC


def mount_api(_):
    """The rest of the mount calls, with arguments the kernel itself refuses before it asks for a
    capability (so a missing rule shows even without CAP_SYS_ADMIN): umount2 with unknown flags
    (EINVAL), chroot to a missing path (ENOENT); and open_tree and mount_setattr of /."""
    say("umount2", outcome(call("umount2", b"/tmp", 0x7FFF0000)))
    say("open_tree", closing(call("open_tree", AT_FDCWD, b"/", 0)))
    say("mount_setattr", outcome(call("mount_setattr", AT_FDCWD, b"/", 0, None, 0)))
    say("chroot", outcome(call("chroot", b"/nonexistent-cordon-chroot")))


def personality(_):
    """Set ADDR_NO_RANDOMIZE (in a child), query (0xffffffff) and set the default (in a child)."""
    say("personality_set", in_child(lambda: outcome(call("personality", 0x0040000))))
    say("personality_query", outcome(call("personality", 0xFFFFFFFF)))
    say("personality_zero", in_child(lambda: outcome(call("personality", 0))))


def acct(_):
    say("acct", outcome(call("acct", None)))


def syslog(_):
    say("syslog", outcome(call("syslog", 3, ctypes.create_string_buffer(64), 64)))  # SYSLOG_ACTION_READ_ALL


def tiocsti(_):
    """Make a fresh pty our controlling terminal, then push a byte into its input."""

    def attack():
        try:
            master, slave = os.openpty()
        except OSError as e:
            return "no-pty:" + errname(e.errno)
        os.setsid()
        try:
            fcntl.ioctl(slave, TIOCSCTTY, 0)
            fcntl.ioctl(slave, TIOCSTI, b"x")
        except OSError as e:
            return errname(e.errno)
        return "ok"

    say("tiocsti", in_child(attack))


def ioctls(_):
    """ioctl on stdin by number: TIOCSTI, TIOCSTI with high bits set in the command (the kernel reads 32), and FIONREAD, which must pass."""
    c = ctypes.c_char(b"x")
    say("ioctl_tiocsti", outcome(call("ioctl", 0, TIOCSTI, ctypes.byref(c))))
    say("ioctl_tiocsti_high", outcome(call("ioctl", 0, TIOCSTI | HIGH, ctypes.byref(c))))
    n = ctypes.c_int(0)
    say("ioctl_fionread", outcome(call("ioctl", 0, FIONREAD, ctypes.byref(n))))


def fork(_):
    """What every workload needs: a fork whose child exits 7, and four threads."""
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    say("fork", "ok:exit %d" % os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    seen = []
    ts = [threading.Thread(target=lambda: seen.append(1)) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    say("threads", "ok:%d" % len(seen))


def seccomp_mode(_):
    say("seccomp_mode", next(line.split()[1] for line in open("/proc/self/status") if line.startswith("Seccomp:")))


ATTACKS = {
    f.__name__: f
    for f in [
        io_uring, userfaultfd, perf_event_open, bpf, ptrace, process_vm_readv, keyctl, key_serial, key_search, key_add,
        vsock, packet, netlink, raw_sockets, x32, x32_past_span, i386, unshare_user, setns, clone_newuser, clone_newns,
        clone_plain, clone3, mount, mount_api, personality, acct, syslog, tiocsti, ioctls, fork, seccomp_mode,
    ]
}

if __name__ == "__main__":
    specs = sys.argv[1:]
    if specs == ["--syscalls"]:
        for name, number in SYSCALLS.items():
            say(name, "" if number is None else number)
        sys.exit(0)
    for spec in specs:
        name, _, arg = spec.partition("=")
        try:
            if name == "--numbers":
                NR.update({k: int(v) for k, v in json.loads(arg).items()})
            else:
                ATTACKS[name](arg)
        except Exception as e:  # noqa: BLE001 - one broken attack must not hide the others
            say(name.lstrip("-"), "error:%s %s" % (type(e).__name__, e))
    say("attacks_done", "1")
