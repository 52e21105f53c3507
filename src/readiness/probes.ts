/**
 * The hostile programs readiness runs inside the real sandbox. Each tries what a layer
 * must stop and prints what happened as key=value lines on stderr.
 */
import { readFileSync } from "node:fs";
import { quote } from "shell-quote";
import type { Job, JobFile, Layout } from "../sandbox/spec.ts";

export const PROBE_OUTPUT_CAP = 4096;
/** The strict test policy's small caps: cheap to cross, so every probe ends in well under a second. */
export const PROBE_LIMITS = { memoryBytes: 16 * 1024 * 1024, maxProcesses: 8, maxFileSizeBytes: 1024 * 1024, wallMs: 300, scratchBytes: 4 * 1024 * 1024, maxStdinBytes: 64 * 1024 } as const;
/** The main probe writes this much into /dev/shm (sized like /tmp: scratchBytes), in files under the fsize cap, and is offered this much stdin. */
export const SHM_ATTEMPT_BYTES = 2 * PROBE_LIMITS.scratchBytes;
export const STDIN_OFFERED_BYTES = 2 * PROBE_LIMITS.maxStdinBytes;
/** The memory probe tries to hold this much; the pids probe tries to start this many. */
export const MEMORY_ATTEMPT_BYTES = 40 * 1024 * 1024;
export const PIDS_ATTEMPT = 24;

export interface MainProbeInput {
  canaryFile: string;
  canaryDir: string;
  port: number;
  envToken: string;
  /** Without isolation the probe runs on the host itself: it may only try the canary dir. */
  isolating: boolean;
}

/** Filesystem, network, privilege, env, rlimits, fsize and output, in one bash run. */
export function mainProbe(input: MainProbeInput): string {
  const [file, dir, token] = [quote([input.canaryFile]), quote([input.canaryDir]), quote([input.envToken])];
  // /dev too: a fresh /dev is a tmpfs of the host's default size, only bounded when read-only.
  const writeTargets = input.isolating ? `/usr /etc / /dev ${dir}` : dir;
  return `
say() { printf '%s=%s\\n' "$1" "$2" >&2; }
status() { sed -n "s/^$1:[[:space:]]*//p" /proc/self/status; }
limit() { sed -n "s/^$1 *\\([^ ]*\\).*/\\1/p" /proc/self/limits; }
if cat ${file} >/dev/null 2>&1; then say fs_canary visible; else say fs_canary hidden; fi
w=blocked; for d in ${writeTargets}; do f="$d/.cordon-probe-"${token}; (: > "$f") 2>/dev/null && { rm -f "$f"; w="wrote:$d"; }; done; say fs_write "$w"
(: > ./owner-probe) 2>/dev/null && say scratch_write ok || say scratch_write failed
say net_ifaces "$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | grep -vx lo | tr '\\n' ',')"
if (exec 3<>/dev/tcp/127.0.0.1/${input.port}) 2>/dev/null; then say net_loopback connected; else say net_loopback failed; fi
say cap_eff "$(status CapEff)"
say no_new_privs "$(status NoNewPrivs)"
say seccomp "$(status Seccomp)"
n=0; env | grep -q ${token} && n=1; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -q ${token} && n=1; say env_leak "$n"
say lim_cpu "$(limit 'Max cpu time')"
say lim_fsize "$(limit 'Max file size')"
say lim_nofile "$(limit 'Max open files')"
(head -c ${PROBE_LIMITS.maxFileSizeBytes * 2} /dev/zero > ./fsize-probe) 2>/dev/null; say fsize_rc "$?"; say fsize_bytes "$(stat -c %s ./fsize-probe 2>/dev/null || echo 0)"
shm=/dev/shm/.cordon-probe-${token}; for i in $(seq ${SHM_ATTEMPT_BYTES / PROBE_LIMITS.maxFileSizeBytes}); do head -c ${PROBE_LIMITS.maxFileSizeBytes} /dev/zero > "$shm.$i" 2>/dev/null || break; done; say shm_bytes "$(cat "$shm".* 2>/dev/null | wc -c)"; rm -f "$shm".*
say stdin_bytes "$(wc -c)"
head -c ${PROBE_OUTPUT_CAP * 4} /dev/zero
`;
}

/** Hold MEMORY_ATTEMPT_BYTES: `tail -c N` of a pipe keeps N bytes in memory (fast, no interpreter needed). */
export const memoryProbe = `printf 'held=%s\\n' "$(head -c ${MEMORY_ATTEMPT_BYTES} /dev/zero | tail -c ${MEMORY_ATTEMPT_BYTES} | wc -c)" >&2`;

/** dash, not bash: bash retries a failed fork for seconds, dash gives up at once. */
export const pidsProbe = `i=0; while [ $i -lt ${PIDS_ATTEMPT} ]; do sleep 1 & i=$((i+1)); printf 'started=%s\\n' $i >&2; done`;

export const wallProbe = "sleep 10";

/** The syscall attacks: the one Python list of attack calls, shared with the attack tests (test/syscall-filter.test.ts) and the filter comparison (test/provider-nsjail.test.ts). */
export const SYSCALL_ATTACKS_FILE = "syscall-attacks.py";
export const SYSCALL_ATTACKS = readFileSync(new URL(`./${SYSCALL_ATTACKS_FILE}`, import.meta.url));

/** The key the supervisor planted in its session keyring, attacked by serial and by description. */
export interface KeyTarget {
  serial: bigint;
  description: string;
}

/**
 * What the seccomp cell is judged on: io_uring, userfaultfd, perf events, the planted key,
 * AF_VSOCK, a rare family (AF_PACKET), the x32 and i386 ABIs, a new user namespace. Python
 * (ctypes) makes the raw calls; without python3 in the sandbox the probe says so and stops.
 */
export function syscallProbe(key: KeyTarget | null): string {
  const keyAttacks = key ? [`key_serial=${key.serial}`, `key_search=${key.description}`] : [];
  const attacks = ["io_uring", "userfaultfd", "perf_event_open", ...keyAttacks, "vsock", "packet", "x32", "i386", "unshare_user"];
  return `py=$(command -v python3) || { echo python3=missing; exit 0; }
exec "$py" -I -B "$(dirname "$0")/${SYSCALL_ATTACKS_FILE}" ${quote(attacks)}
`;
}

export function parseProbe(output: string): Record<string, string> {
  const kv: Record<string, string> = {};
  for (const line of output.split("\n")) {
    const m = /^([a-z_][a-z0-9_]*)=(.*)$/.exec(line);
    if (m) kv[m[1]!] = m[2]!; // the last report of a key wins
  }
  return kv;
}

export const probeJob = (script: string, shell = "/bin/bash", stdin?: Uint8Array, extraFiles: readonly JobFile[] = []) => (layout: Layout): Job => ({
  ...(stdin ? { stdin } : {}),
  runner: "readiness-probe",
  argv: [shell, `${layout.jobDir}/probe.sh`],
  files: [{ path: "probe.sh", content: script }, ...extraFiles],
  readOnlyBinds: [],
  env: {},
  result: { exitCodeFallback: false },
  addressSpaceLimitSafe: true,
});
