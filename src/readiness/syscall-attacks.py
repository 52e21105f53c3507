"""
Syscall attacks: what cordon's syscall filter must refuse, tried for real. Used by the
readiness probe (src/readiness/prove.ts) and by the attack tests, so both attack the
same way.

    python3 -I -B syscall-attacks.py ATTACK[=ARG] ...

Each attack prints one line per thing it tried, NAME=RESULT, on stdout:
    ok / ok:DETAIL     the call went through: the attack SUCCEEDED
    ENAME              the call failed with that errno (EPERM, EAFNOSUPPORT, ENOSYS...)
    killed:SIGNAME     (child attacks) the child was killed by that signal
    returned:RESULT    (child attacks) the child's call returned (ok or an errno)
    error:WHAT         the attack could not be made (an exception of this script)
Child attacks run in a forked child judged by its wait status, so this process survives
a filter that kills (the x32 and i386 ABIs) or a call that changes the process
(unshare). x86_64 syscall numbers; standard library only.
"""
import ctypes
import errno
import fcntl
import mmap
import os
import signal
import socket
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

SIGCHLD = 17
CLONE_NEWUSER = 0x10000000
AF_PACKET, AF_NETLINK, AF_VSOCK = 17, 16, 40
NETLINK_ROUTE, NETLINK_KOBJECT_UEVENT = 0, 15
KEYCTL_UPDATE, KEYCTL_SETPERM, KEYCTL_SEARCH, KEYCTL_READ = 2, 5, 10, 11
KEY_SPEC = {"s": -3, "u": -4, "us": -5}
TIOCSCTTY, TIOCSTI = 0x540E, 0x5412


def say(name, value):
    print("%s=%s" % (name, value), flush=True)


def errname(e):
    return errno.errorcode.get(e, "E%d" % e)


def call(nr, *args):
    """A raw syscall: its return value, or -errno."""
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr), *conv)
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


# --- the attacks ---------------------------------------------------------------------


def io_uring(_):
    say("io_uring", closing(call(425, 1, ctypes.create_string_buffer(120))))


def userfaultfd(_):
    # UFFD_USER_MODE_ONLY: what an unprivileged process may open (vm.unprivileged_userfaultfd=0).
    say("userfaultfd", closing(call(323, os.O_CLOEXEC | 1)))


def perf_event_open(_):
    # A software CPU clock on this process, user space only: allowed at perf_event_paranoid 2.
    attr = ctypes.create_string_buffer(112)
    struct.pack_into("IIQ", attr, 0, 1, 112, 0)
    struct.pack_into("Q", attr, 40, (1 << 0) | (1 << 5) | (1 << 6))  # disabled, exclude_kernel, exclude_hv
    say("perf_event_open", closing(call(298, attr, 0, -1, -1, 8)))


def read_key(serial):
    buf = ctypes.create_string_buffer(4096)
    n = call(250, KEYCTL_READ, serial, buf, 4096)
    return outcome(n, buf.raw[: min(n, 4096)].decode("latin-1") if n >= 0 else "")


def key_serial(arg):
    """A key by its serial: read its payload, then overwrite it."""
    serial = int(arg)
    say("key_read", read_key(serial))
    data = b"cordon-overwritten"
    say("key_update", outcome(call(250, KEYCTL_UPDATE, serial, data, len(data))))


def key_search(arg):
    """A key by its description in the session, user and user-session keyrings: found means reachable."""
    desc = arg.encode()
    for ring, spec in KEY_SPEC.items():
        found = call(250, KEYCTL_SEARCH, spec, b"user", desc, 0)
        say("key_search_" + ring, read_key(found) if found >= 0 else outcome(found))


def key_add(arg):
    """Leave a key in the session keyring for whoever comes next."""
    desc, payload = arg.split("/", 1)
    serial = call(248, b"user", desc.encode(), payload.encode(), len(payload), KEY_SPEC["s"])
    if serial >= 0:
        call(250, KEYCTL_SETPERM, serial, 0x3F3F3F3F)  # anyone may remove it: the test cleans up after a leak
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


def x32(_):
    # getpid with the x32 bit set: the kernel has no x32 ABI (ENOSYS), the filter kills.
    say("x32", in_child(lambda: outcome(call(0x40000000 | 39))))


def i386(_):
    """getpid through int 0x80 (the i386 ABI), from machine code in an executable page."""

    def attack():
        code = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])  # mov eax, 20; int 0x80; ret
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(code)
        fn = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
        return outcome(fn())

    say("i386", in_child(attack))


def unshare_user(_):
    say("unshare_user", in_child(lambda: outcome(call(272, CLONE_NEWUSER))))


def clone_newuser(_):
    say("clone_newuser", reap(call(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)))


def clone3(_):
    args = ctypes.create_string_buffer(64)  # struct clone_args, CLONE_ARGS_SIZE_VER0
    struct.pack_into("Q", args, 32, SIGCHLD)  # exit_signal; no flags
    say("clone3", reap(call(435, args, 64)))


def mount(arg):
    """A tmpfs on a directory of our own (ARG), unmounted at once if it worked; then fsopen."""
    os.makedirs(arg, exist_ok=True)
    target = arg.encode()
    rc = call(165, b"none", target, b"tmpfs", 0, None)
    if rc >= 0:
        call(166, target, 0)
    say("mount", outcome(rc))
    say("fsopen", closing(call(430, b"tmpfs", 1)))  # FSOPEN_CLOEXEC


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


ATTACKS = {f.__name__: f for f in [io_uring, userfaultfd, perf_event_open, key_serial, key_search, key_add, vsock, packet, netlink, x32, i386, unshare_user, clone_newuser, clone3, mount, tiocsti]}

if __name__ == "__main__":
    for spec in sys.argv[1:]:
        name, _, arg = spec.partition("=")
        try:
            ATTACKS[name](arg)
        except Exception as e:  # noqa: BLE001 - one broken attack must not hide the others
            say(name, "error:%s %s" % (type(e).__name__, e))
    say("attacks_done", "1")
