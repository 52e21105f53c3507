/**
 * The supervisor↔launcher protocol and the fixed facts of the sandbox, declared once.
 * Every file descriptor the launcher is spawned with, every path the sandboxed command
 * sees, every name the supervisor creates on the host: a provider, a runner or a helper
 * that needs one of these imports it from here instead of writing the number again.
 *
 * The launcher is spawned with this stdio (index = fd in the launcher):
 *   0 stdin · 1 stdout · 2 stderr · 3 LAUNCHER_STATUS_FD · 4 RESULT_FD · 5 LAUNCHER_ARGS_FD · 6 BLOCK_FD · 7 SECCOMP_FD
 *   · 8 JOB_FD (a warm sandbox only)
 * fds 3, 5, 6 and 7 are the launcher's own and never reach the script; fd 4 is the only one
 * passed on to it (fd 8 reaches the waiter, which closes it before the script starts). What travels over them is read beside this file: fd 3 in
 * launch-status.ts, fd 4 in result-channel.ts.
 */

/**
 * fd 3: what the launcher says about the run (bwrap --json-status-fd, nsjail's log_fd).
 * The first fd after stdio; the launcher writes it and never passes it to the command,
 * so "did the sandbox start, which pid is its init" is decided from a channel the script
 * cannot write (stderr is the script's).
 */
export const LAUNCHER_STATUS_FD = 3;

/**
 * fd 4: the structured result channel, the one extra fd the script holds. Fixed (and
 * exported to the script as RESULT_FD_ENV) so a helper in any language finds it without
 * asking; right after the status fd, which the launcher keeps for itself.
 */
export const RESULT_FD = 4;
/** Runners export the result fd's number under this name so helpers need no hard-coded 4. */
export const RESULT_FD_ENV = "CORDON_RESULT_FD";

/**
 * fd 5: the launcher's own arguments, NUL-separated (bwrap --args 5), read from a 0600
 * file in the run dir: mounts and environment values stay out of the host's process table
 * and out of /proc/1/cmdline inside the sandbox.
 */
export const LAUNCHER_ARGS_FD = 5;

/**
 * fd 6: the release. A blocking launcher (bwrap --block-fd 6) holds the command until the
 * supervisor writes one byte here: the race-free window, after the namespaces exist and
 * before any untrusted instruction runs, in which the setup steps act (egress plumbing).
 * EOF releases too, so the supervisor kills the tree before it ever closes this fd on a
 * failed setup.
 */
export const BLOCK_FD = 6;

/**
 * fd 7: the syscall filter as a BPF program (bwrap --seccomp 7), read from a 0600 file in
 * the run dir. The launcher installs it right before exec'ing the command, after it has
 * built the namespaces the filter would forbid.
 */
export const SECCOMP_FD = 7;

/**
 * fd 8: the hand-over of a warm sandbox (src/pool/). A pooled sandbox is started ahead with
 * a runner's waiter as its command; the waiter blocks reading this fd until the supervisor
 * writes ONE run's command and environment, closes it, and becomes that run (exec, or the
 * interpreter runs the script in-process). The waiter is trusted code: nothing of a run
 * exists in the sandbox before the hand-over.
 */
export const JOB_FD = 8;

/**
 * Paths as the sandboxed command sees them, the same under every isolating provider so a
 * script (and a runner) never depends on which one ran it: the job under a cordon-owned
 * prefix no distribution uses, scratch at the root (short to type in a policy), /tmp
 * where every program expects it. Each is also reserved in a policy's binds.
 */
export const SANDBOX_LAYOUT = Object.freeze({ jobDir: "/cordon/job", scratchDir: "/scratch", tmpDir: "/tmp" } as const);

/** The sandbox's hostname (UTS namespace): says where the script runs, names nothing of the host. */
export const SANDBOX_HOSTNAME = "cordon";

/**
 * Processes of the sandbox itself inside the run cgroup: the launcher and its pid-1 init.
 * pids.max is the script's maxProcesses plus these, so the script gets exactly what the
 * policy grants.
 */
export const LAUNCHER_PROCESSES = 2;

/**
 * The cgroup (relative to each hierarchy's mount) runs are created under unless the
 * config names another: one directory cordon owns, so stale-run cleanup and delegation
 * (systemd Delegate=) touch nothing else.
 */
export const DEFAULT_CGROUP_PARENT = "cordon";

/**
 * PATH for the host-side system helpers the supervisor runs (nft, nsenter,
 * slirp4netns, ip): the standard system directories only, never the caller's PATH, so a
 * planted binary earlier in it is never run as root.
 */
export const SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
