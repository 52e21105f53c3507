/**
 * Helpers for the adversarial security tests: a cordon factory, temp dirs that are
 * removed at the end, host-side scans of processes, mounts and file descriptors.
 * Everything here looks at the REAL host (no mocks): the tests attack real sandboxes.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cordon, type PolicyOverride, type RunResult } from "../src/api/index.ts";
import { builtinProviders, builtinRunners } from "../plugins/index.ts";

export const IS_ROOT = process.getuid?.() === 0;

/**
 * The policy every test starts from. As root the shipped default policy is enforceable in full
 * (uid drop, scratch quota), so nothing is added. As non-root some controls degrade and the
 * default `fail` would refuse every run: degrade instead, and say so loudly.
 */
export const BASE_POLICY: PolicyOverride = IS_ROOT ? {} : { onUnavailable: "degrade" };
if (!IS_ROOT) console.warn("security tests: not running as root; runs use onUnavailable=degrade and root-only checks are skipped");

const tempDirs: string[] = [];

/**
 * A fresh directory (under the system temp dir unless `parent` is given) with the given mode:
 * mkdtemp makes 0700, which alone would hide it from the sandbox uid; tests that attack the
 * filesystem layer open it up so the layer, not the permission bits, must stop the attack.
 */
export function tempDir(prefix: string, mode = 0o755, parent = tmpdir()): string {
  const dir = mkdtempSync(join(parent, `cordon-sec-${prefix}-`));
  chmodSync(dir, mode);
  tempDirs.push(dir);
  return dir;
}

/**
 * Remove every temp dir this module made. Should a failing test have left a scratch mount
 * behind, detach it first (deepest first), so one failure does not strand the rest.
 */
export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) {
    for (const mp of mountsUnder(dir).sort((a, b) => b.length - a.length)) {
      Bun.spawnSync(["umount", "-l", mp], { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } });
    }
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      console.warn(`security tests: could not remove ${dir}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

/** A run root of its own (not yet created), under a world-searchable parent so the sandbox uid can reach it. */
export function freshRunRoot(label = "runs"): string {
  return join(tempDir(label, 0o711), "runs");
}

export function makeCordon(runRoot = freshRunRoot()): Cordon {
  return new Cordon({ runRoot }, { providers: builtinProviders(), runners: builtinRunners() });
}

/** A unique token: safe in shell scripts, file names and grep patterns. */
export function token(prefix = "cordon"): string {
  return `${prefix}${randomBytes(8).toString("hex")}`;
}

/** A unique decimal number, usable as a `sleep` argument that marks the process's cmdline. */
export function sleepMarker(seconds = 30): string {
  return `${seconds}.${randomBytes(5).readUIntBE(0, 5).toString().padStart(13, "0")}`;
}

/** Entries left in a run root (a run root that was never created is empty). */
export function runRootEntries(runRoot: string): string[] {
  return existsSync(runRoot) ? readdirSync(runRoot) : [];
}

/** Mount points of this process's mount namespace at or below `path`. */
export function mountsUnder(path: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((mp): mp is string => mp !== undefined)
    .map((mp) => mp.replace(/\\(\d{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((mp) => mp === path || mp.startsWith(`${path}/`));
}

function procPids(): number[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

function readProc(pid: number, file: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return null; // gone meanwhile
  }
}

export interface HostProcess {
  pid: number;
  ppid: number;
  comm: string;
  state: string;
  cmdline: string[];
}

function describeProcess(pid: number): HostProcess | null {
  const stat = readProc(pid, "stat");
  if (stat === null) return null;
  const close = stat.lastIndexOf(")");
  const comm = stat.slice(stat.indexOf("(") + 1, close);
  const [state = "?", ppid = "0"] = stat.slice(close + 2).split(" ");
  const cmdline = (readProc(pid, "cmdline") ?? "").split("\0").filter((s) => s.length > 0);
  return { pid, ppid: Number(ppid), comm, state, cmdline };
}

/** Every host process (of any pid namespace below ours) whose command line contains `marker`. */
export function processesWithMarker(marker: string): HostProcess[] {
  return procPids()
    .filter((pid) => pid !== process.pid)
    .map(describeProcess)
    .filter((p): p is HostProcess => p !== null && p.cmdline.some((arg) => arg.includes(marker)));
}

/** Direct children of a process on the host. */
export function childrenOf(parent: number): HostProcess[] {
  return procPids()
    .map(describeProcess)
    .filter((p): p is HostProcess => p !== null && p.ppid === parent);
}

export function fdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `check` every `everyMs` until it returns true or `timeoutMs` passes. Returns whether it did. */
export async function waitFor(check: () => boolean, timeoutMs: number, everyMs = 10): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (performance.now() > deadline) return false;
    await sleep(everyMs);
  }
}

/** A TCP listener on the host that counts the connections it accepts. */
export interface CountingListener {
  port: number;
  hits(): number;
  stop(): void;
}

export function countingListener(hostname = "127.0.0.1"): CountingListener {
  let hits = 0;
  const listener = Bun.listen({
    hostname,
    port: 0,
    socket: {
      open: () => void hits++,
      data: () => {},
    },
  });
  return { port: listener.port, hits: () => hits, stop: () => listener.stop(true) };
}

/** Capture a thrown error (sync or async). */
export async function caught(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected the call to throw, it returned");
}

/** A compact description of a result, for assertion messages. */
export function describeResult(r: RunResult): string {
  return JSON.stringify({
    outcome: r.outcome,
    limitHit: r.limitHit,
    exitCode: r.exitCode,
    signal: r.signal,
    durationMs: r.durationMs,
    stdout: r.stdout.slice(0, 2000),
    stderr: r.stderr.slice(0, 2000),
    error: r.error,
    downgrades: r.sandbox?.downgrades,
  });
}

/** `key=value` lines of a probe's output. */
export function parseKv(output: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of output.split("\n")) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** Host processes by command name (comm), with parent pid and command line; for leak checks. */
export function processesNamed(comm: string): { pid: number; ppid: number; comm: string; cmdline: string }[] {
  const found: { pid: number; ppid: number; comm: string; cmdline: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      if (stat.slice(stat.indexOf("(") + 1, close) !== comm) continue;
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ");
      found.push({ pid: Number(name), ppid, comm, cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** A root-only directory (0700) holding one root-only 0600 file `name` whose content is a fresh token. */
export function rootOnlyCanary(name = "f.txt"): { dir: string; file: string; canary: string } {
  const dir = tempDir("secret", 0o700);
  const canary = token("canary");
  const file = join(dir, name);
  writeFileSync(file, canary, { mode: 0o600 });
  return { dir, file, canary };
}

/** A process swapping two paths with renameat2(RENAME_EXCHANGE) in a tight loop, until stopped. */
export interface Flipper {
  /** Stop it; resolves to how many swaps succeeded (proof the attack really ran). */
  stop(): Promise<number>;
}

const FLIPPER = `
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
n = 0
while not stop:
    if libc.renameat2(-100, a, -100, b, 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
        n += 1
print(n, flush=True)
`;

/** Start a flipper on `a` and `b` (as `ids` when given: an unprivileged owner of the tree). Missing paths are retried. */
export async function startFlipper(a: string, b: string, ids: { uid: number; gid: number } | null = null): Promise<Flipper> {
  const p = Bun.spawn(["/usr/bin/python3", "-c", FLIPPER, a, b], { stdin: "ignore", stdout: "pipe", stderr: "inherit", env: {}, ...(ids ?? {}) });
  const reader = p.stdout.getReader();
  let out = "";
  while (!out.includes("ready\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`flipper exited before starting: ${out}`);
    out += new TextDecoder().decode(value);
  }
  return {
    async stop() {
      p.kill("SIGTERM");
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        out += new TextDecoder().decode(value);
      }
      await p.exited;
      return Number(out.trim().split("\n").at(-1));
    },
  };
}

/** The cordon CLI as users run it: `bun bin/cordon.ts ARGS` in a real process. */
export const CORDON_CLI = join(import.meta.dir, "../bin/cordon.ts");

export interface CliRun {
  stdout: string;
  stderr: string;
  code: number;
}

export async function runCli(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<CliRun> {
  const p = Bun.spawn([process.execPath, CORDON_CLI, ...args], {
    stdin: opts.stdin !== undefined ? new TextEncoder().encode(opts.stdin) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

/**
 * Characters that steer a terminal or reorder what it shows: C0 (newline aside), DEL, C1,
 * Unicode line/paragraph separators and bidi controls. Text cordon writes itself must hold none.
 */
export const TERMINAL_CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** Host uids some process runs as (real, effective, saved or filesystem). */
export function uidsInUse(): Set<number> {
  const uids = new Set<number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const line = /^Uid:\s+(.*)$/m.exec(readProc(Number(name), "status") ?? "")?.[1];
    for (const u of line?.split(/\s+/) ?? []) uids.add(Number(u));
  }
  return uids;
}

/** A uid (and gid of the same number) with no passwd or group entry and no process running as it. */
export function unusedUid(from = 65533): number {
  const named = new Set(
    ["/etc/passwd", "/etc/group"].flatMap((f) => (existsSync(f) ? readFileSync(f, "utf8").split("\n").map((l) => Number(l.split(":")[2])) : [])),
  );
  const busy = uidsInUse();
  for (let u = from; u > 1000; u--) if (!named.has(u) && !busy.has(u)) return u;
  throw new Error("no unused uid found");
}

/** The run tree's CPU time (user + system, from its cgroup), 0 when not measured. */
export function cpuMsOf(r: RunResult): number {
  return (r.stats?.cpuUserMs ?? 0) + (r.stats?.cpuSystemMs ?? 0);
}
