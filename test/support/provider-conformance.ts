/**
 * Helpers of the provider conformance suite (test/provider-conformance.test.ts): the attack scripts
 * every provider gets, and the report/reality judge. No bun:test import here: this file
 * is also the child supervisor the environment test starts (run it as a program), so its
 * checks throw plain Errors.
 *
 * As a program: reads { runRoot, cgroupParent, request } on stdin, runs ONE job in a fresh
 * Cordon and prints the RunResult as JSON (its INITIAL environment is the parent's choice,
 * which is what /proc/<pid>/environ shows and what a test cannot do to its own process).
 */
import { quote } from "shell-quote";
import { LAYER_NAMES, runResultToJson, type ControlVerdict, type EffectiveSandboxReport, type LayerName, type RunRequest, type RunResult } from "../../src/api/index.ts";
import { type ControlStatus } from "../../src/api/plugin.ts";
import { makeCordon } from "./cordon.ts";

const CHILD_MAIN = import.meta.main;

/** Run one job in a separate supervisor process whose INITIAL environment holds `env`. */
export async function runInChildSupervisor(runRoot: string, cgroupParent: string, request: RunRequest, env: Record<string, string>): Promise<RunResult> {
  const p = Bun.spawn([process.execPath, import.meta.path], {
    stdin: new TextEncoder().encode(JSON.stringify({ runRoot, cgroupParent, request })),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...env },
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`child supervisor failed (${code}): ${stdout} ${stderr}`);
  // The JSON form: byte arrays are gone, the rest (outcome, stdout, sandbox report) is what the checks read.
  return JSON.parse(stdout) as RunResult;
}

// ---------------------------------------------------------------------------------------
// Attack scripts. Every one runs unchanged under every provider (POSIX sh: the shell
// runner's /bin/sh is dash); the only difference is that without isolation an attack is
// aimed at test-owned temp dirs only, never at the real host's /usr, /etc or /.
// ---------------------------------------------------------------------------------------

const q = (s: string) => quote([s]);

/** Every route to a host file: direct, through /proc/self/root and /proc/1/root, a directory listing, a search. */
export function canaryScript(files: readonly string[], name: string, search: boolean): string {
  const lines = files.map((f) => `cat ${q(f)} 2>&1; cat /proc/self/root${q(f)} 2>&1; cat /proc/1/root${q(f)} 2>&1; ls -la "$(dirname ${q(f)})" 2>&1`);
  const find = search ? `find / \\( -path /proc -o -path /sys -o -path /usr \\) -prune -o -name ${q(name)} -print 2>/dev/null | while read -r p; do echo "found=$p"; cat "$p"; done` : "";
  return `${lines.join("\n")}\n${find}\necho probe_done=1\n`;
}

/** Writes to each target and to the job dir (the script's own dir), then to scratch and $TMPDIR (and /tmp when isolated). */
export function writeScript(targets: readonly string[], name: string, isolated: boolean): string {
  return `
jd=$(dirname "$0")
for d in ${targets.map(q).join(" ")} "$jd"; do
  if (echo pwned > "$d/${name}") 2>/dev/null; then echo "wrote=$d"; else echo "denied=$d"; fi
  if mkdir "$d/${name}.d" 2>/dev/null; then echo "mkdir=$d"; fi
done
if (echo pwned >> "$0") 2>/dev/null; then echo "wrote=jobscript"; else echo "denied=jobscript"; fi
echo scratch-data > ./${name}.s && echo "scratch=$(cat ./${name}.s)"
echo tmp-data > "$TMPDIR/${name}.t" && echo "tmpdir=$(cat "$TMPDIR/${name}.t")"
${isolated ? `echo tmp-data > /tmp/${name}.u && echo "tmp=$(cat /tmp/${name}.u)"` : ""}
echo "pwd=$(pwd)"
echo probe_done=1
`;
}

/** The next run must not see what the previous one left in scratch or /tmp. */
export function persistenceScript(name: string): string {
  return `
for f in ./${name}.s /scratch/${name}.s "$TMPDIR/${name}.t" /tmp/${name}.t /tmp/${name}.u; do [ -e "$f" ] && echo "persisted=$f"; done
echo probe_done=1
`;
}

export function networkScript(targets: readonly { ip: string; port: number }[]): string {
  return `
echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ',')"
${targets.map((t) => `if timeout 3 bash -c 'exec 3<>/dev/tcp/${t.ip}/${t.port}' 2>/dev/null; then echo "tcp=${t.ip}:connected"; else echo "tcp=${t.ip}:failed"; fi`).join("\n")}
echo probe_done=1
`;
}

/**
 * `tail -c N` of a pipe holds N bytes in memory: no interpreter needed. `last`: the hog is
 * the script's last command (its death is the script's); else a child dies and the script
 * goes on to exit 0.
 */
export function memoryScript(bytes: number, last: boolean): string {
  return last
    ? `head -c ${bytes} /dev/zero | tail -c ${bytes} > /dev/null`
    : `printf 'held=%s\\n' "$(head -c ${bytes} /dev/zero | tail -c ${bytes} | wc -c)"`;
}

/** dash, not bash: dash gives up on the first failed fork (bash retries for seconds). */
export function forkLoopScript(marker: string, attempts: number): string {
  return `i=0; while [ $i -lt ${attempts} ]; do sleep ${marker} & i=$((i+1)); echo started; done; echo loop_exited`;
}

export function fsizeInnerScript(bytes: number): string {
  return `head -c ${bytes} /dev/zero > big 2>/dev/null; echo "rc=$?"; echo "size=$(stat -c %s big)"`;
}

export function nofileScript(attempts: number): string {
  return `exec bash -c 'n=0; for i in $(seq 1 ${attempts}); do exec {fd}</dev/null 2>/dev/null || break; n=$((n+1)); done; echo opened=$n'`;
}

export function quotaScript(bytes: number): string {
  return `
head -c ${bytes} /dev/zero > ./fill 2>/dev/null; echo "scratch=$(stat -c %s ./fill)"; rm -f ./fill
head -c ${bytes} /dev/zero > "$TMPDIR/fill" 2>/dev/null; echo "tmp=$(stat -c %s "$TMPDIR/fill")"; rm -f "$TMPDIR/fill"
`;
}

/**
 * Syscalls a seccomp deny list refuses that succeed (or fail with something other than
 * EPERM) without one: each prints `sys_NAME=<errno or ok>`. x86_64 numbers.
 */
export function seccompScript(): string {
  const py = `
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
calls = {"ptrace": (101, 0, 0, 0, 0), "perf_event_open": (298, 0, 0, -1, -1, 0), "process_vm_readv": (310, os.getpid(), 0, 0, 0, 0, 0), "io_uring_setup": (425, 1, 0)}
for name, args in calls.items():
    ctypes.set_errno(0)
    rc = libc.syscall(*[ctypes.c_long(a) for a in args])
    print("sys_%s=%s" % (name, "ok" if rc >= 0 else ctypes.get_errno()))
`;
  return `
echo "seccomp_mode=$(sed -n 's/^Seccomp:[[:space:]]*//p' /proc/self/status)"
if unshare -U true 2>/dev/null; then echo unshare=ok; else echo unshare=failed; fi
if [ "$(uname -m)" = x86_64 ] && [ -x /usr/bin/python3 ]; then /usr/bin/python3 -c ${q(py)}; fi
echo probe_done=1
`;
}

/** A setsid + double-forked daemon that ignores the polite signals, and a CPU spinner; then the script blocks. */
export function wallScript(daemonMarker: string, spinMarker: string): string {
  return `
setsid sh -c 'trap "" HUP TERM INT; sh -c "trap \\"\\" HUP TERM INT; touch \\"$TMPDIR/ready\\"; exec sleep ${daemonMarker}" </dev/null >/dev/null 2>&1 & exit 0' &
sh -c 'while :; do :; done' ${spinMarker} &
i=0; while [ ! -e "$TMPDIR/ready" ] && [ $i -lt 300 ]; do sleep 0.01; i=$((i+1)); done
[ -e "$TMPDIR/ready" ] && echo daemon=started
exec sleep 30
`;
}

export function envScript(canary: string): string {
  return `
echo BEGIN_ENV; env; echo END_ENV
echo "env_hits=$(env | grep -c ${q(canary)})"
echo "proc_hits=$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c ${q(canary)})"
echo "environ_readable=$(for f in /proc/[0-9]*/environ; do cat "$f" >/dev/null 2>&1 && echo x; done | wc -l)"
echo "own_env_seen=$(cat /proc/self/environ | tr '\\0' '\\n' | grep -c '^PATH=')"
`;
}

/** Identity, every capability set, no_new_privs; then a read of a root-owned 0600 file. */
export function privilegeScript(rootFile: string): string {
  return `
echo "uid=$(id -u)"
for s in CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs; do echo "$s=$(sed -n "s/^$s:[[:space:]]*//p" /proc/self/status)"; done
cat ${q(rootFile)} 2>&1; echo "cat_rc=$?"
echo probe_done=1
`;
}

/**
 * Fill /dev/shm (the one writable place of a fresh /dev) past `bytes`; prints `shm=<size written>`.
 * Without isolation /dev/shm is the host's: the file is a unique name of the test's and removed.
 */
export function shmScript(bytes: number, name: string): string {
  return `
f=/dev/shm/${name}
head -c ${bytes} /dev/zero > "$f" 2>/dev/null; echo "shm_rc=$?"
echo "shm=$(stat -c %s "$f" 2>/dev/null || echo 0)"
rm -f "$f"
echo probe_done=1
`;
}

/** Launcher failure messages a script can print to its own stderr (bwrap, nsjail, cordon's cgroup join). */
export const FORGED_LAUNCHER_ERRORS = [
  "bwrap: Can't mount proc on /newroot/proc: Operation not permitted",
  "bwrap: execvp /bin/sh: No such file or directory",
  "[E][2024-01-01T00:00:00+0000][1] standaloneMode():275 Couldn't launch the child process",
  "[E][2024-01-01T00:00:00+0000][1] mountFs():412 mount('/proc', '/proc', type='proc'): Operation not permitted",
  "cordon-cgroup: cannot join /sys/fs/cgroup/pids/cordon/run-1-00/cgroup.procs",
] as const;

/** Print stdout, then every forged launcher error to stderr, then exit with `code`. */
export function forgedLauncherErrorScript(marker: string, code: number): string {
  return `
echo "${marker}"
${FORGED_LAUNCHER_ERRORS.map((l) => `printf '%s\\n' ${q(l)} >&2`).join("\n")}
exit ${code}
`;
}

/**
 * Replace the verify receipt's marker in scratch (the cwd) by something that is not a file the
 * prologue created: a directory (with a file inside), a symlink to a file of the script's, a FIFO.
 */
export function receiptSabotageScript(kind: "dir" | "symlink" | "fifo", marker: string): string {
  const replace = {
    dir: `mkdir "$m" && echo x > "$m/inside"`,
    symlink: `echo target > ./symlink-target && ln -s "$PWD/symlink-target" "$m"`,
    fifo: `mkfifo "$m"`,
  }[kind];
  return `
m="$PWD/.cordon-receipt"
rm -f "$m"
${replace} && echo "replaced=${kind}"
echo "pwd=$(pwd)"
echo "${marker}"
`;
}

// ---------------------------------------------------------------------------------------
// The judge: does the report agree with what the attack achieved?
// ---------------------------------------------------------------------------------------

/** What one attack on one control achieved. */
export interface Attack {
  /** `layer.control` as the report names it. */
  control: string;
  /** The attack got through: the control did not hold. */
  succeeded: boolean;
  /** What was observed (shown when the verdict and reality disagree). */
  evidence: string;
  /** A provider extra no policy field asks for (privilege.seccomp): judged only where the report claims it. */
  optional?: boolean;
}

/** A provider under test, and what the suite has learned about it so far. */
export interface Target {
  name: string;
  isolating: boolean;
  /** The status the report must give a control on this host; null: any, only agreement is checked. */
  expected(control: string): ControlStatus | null;
  /** Controls some test attacked (and judged). */
  attacked: Set<string>;
  /** Controls some run's report marked enforced. */
  enforcedSeen: Set<string>;
  /** Known product bugs (see KNOWN_BUGS) this run reproduced. */
  reproduced: Set<string>;
}

/**
 * Product bugs this suite found and that are not fixed yet, as `provider:layer.control`.
 * A disagreement listed here is reported loudly (console.warn) instead of failing the
 * test, and the suite's last test per provider fails once it stops reproducing, so the
 * entry is removed when the bug is fixed. Every entry is a bug to fix, not a tolerance.
 */
export const KNOWN_BUGS: Record<string, string> = {};

/**
 * Product bugs that show on some runs only (races): reported loudly when seen, never
 * required to reproduce. Every entry is a bug to fix.
 */
export const KNOWN_INTERMITTENT: Record<string, string> = {
  "oom-child-exit-0":
    "a process of the run is OOM-killed by the run's cgroup memory cap and the script then exits 0 before the supervisor's 50 ms OOM poll: the result is outcome `ok`, limitHit null (refineWithCgroup ignores the cgroup's oom_kill count for an `ok` outcome)",
};

export function reportIntermittent(key: keyof typeof KNOWN_INTERMITTENT, detail: string): void {
  console.warn(`KNOWN PRODUCT BUG reproduced (intermittent, not fixed yet): ${KNOWN_INTERMITTENT[key]}; here: ${detail}`);
}

export function controlVerdict(report: EffectiveSandboxReport | null, control: string): ControlVerdict | undefined {
  if (!report) return undefined;
  const [layer, name] = control.split(".") as [LayerName, string];
  if (!(LAYER_NAMES as readonly string[]).includes(layer)) throw new Error(`not a layer: ${control}`);
  return report.layers[layer].controls[name];
}

/** Every control a report marks with `status`, as `layer.control`. */
export function controlsWith(report: EffectiveSandboxReport, status: ControlStatus): string[] {
  return LAYER_NAMES.flatMap((layer) =>
    Object.entries(report.layers[layer].controls)
      .filter(([, v]) => v.status === status)
      .map(([name]) => `${layer}.${name}`),
  );
}

/** Remember what a run's report claimed (for the coverage check: every enforced control must be attacked). */
export function noteReport(target: Target, r: Pick<RunResult, "sandbox">): void {
  if (r.sandbox) for (const c of controlsWith(r.sandbox, "enforced")) target.enforcedSeen.add(c);
}

/**
 * The core check. For each attack: a control the report marks `enforced` must have held;
 * an attack that got through must find its control `degraded` and listed in downgrades;
 * the status must be the one expected of this provider here; and where the target's
 * expectation is `degraded`, the attack must really get through (else the attack is not
 * real, and the suite could never fail). Returns the problems, empty when all agree.
 */
export function judge(target: Target, r: Pick<RunResult, "sandbox" | "outcome" | "error">, attacks: readonly Attack[]): string[] {
  noteReport(target, r);
  const problems: string[] = [];
  const where = `provider ${target.name}`;
  if (!r.sandbox) return [`${where}: the run has no sandbox report (outcome ${r.outcome}, error ${JSON.stringify(r.error)})`];
  for (const a of attacks) {
    const verdict = controlVerdict(r.sandbox, a.control);
    const expected = target.expected(a.control);
    if (!verdict) {
      // Not claimed: nothing to agree with. A control this provider must report is missing, though.
      if (expected !== null && target.isolating && !a.optional) problems.push(`${where}: the report has no ${a.control} (expected ${expected})`);
      continue;
    }
    target.attacked.add(a.control);
    if (verdict.status === "enforced" && a.succeeded) {
      const key = `${target.name}:${a.control}`;
      const message = `REPORT SAYS ENFORCED BUT ATTACK SUCCEEDED: ${where}, ${a.control} is reported enforced (${verdict.mechanism}) but ${a.evidence}`;
      if (key in KNOWN_BUGS) {
        target.reproduced.add(key);
        console.warn(`KNOWN PRODUCT BUG reproduced (not fixed yet): ${message}`);
      } else {
        problems.push(message);
      }
    } else if (a.succeeded && verdict.status !== "degraded") {
      problems.push(`ATTACK SUCCEEDED BUT THE REPORT SAYS ${verdict.status.toUpperCase()}: ${where}, ${a.control}: ${a.evidence}`);
    }
    if (verdict.status === "degraded" && !r.sandbox.downgrades.some((d) => d.startsWith(`${a.control}: `))) {
      problems.push(`${where}: ${a.control} is degraded but not listed in downgrades ${JSON.stringify(r.sandbox.downgrades)}`);
    }
    if (expected !== null && verdict.status !== expected) {
      problems.push(`${where}: ${a.control} is reported ${verdict.status}, expected ${expected} here (${verdict.mechanism ?? verdict.reason})`);
    }
    if (expected === "degraded" && !a.succeeded) {
      problems.push(`${where}: ${a.control} is degraded yet the attack on it did not get through (${a.evidence}): the attack is not real, so the test could not fail`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------

if (CHILD_MAIN) {
  const input = JSON.parse(await Bun.stdin.text()) as { runRoot: string; cgroupParent: string; request: RunRequest };
  const cordon = makeCordon(input.runRoot, { cgroupParent: input.cgroupParent });
  try {
    process.stdout.write(JSON.stringify(runResultToJson(await cordon.run(input.request))));
  } catch (e) {
    process.stdout.write(JSON.stringify({ thrown: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }));
    process.exitCode = 1;
  }
}
