/**
 * Host-side views of processes, read from /proc: who runs, as which uid, carrying which
 * mark. A process may exit between two reads: every reader treats "gone" as absent.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { DEFAULT_IDENTITY_RANGE, inRange } from "../../src/identity/range.ts";
import { IS_ROOT } from "./policy.ts";

/**
 * The uid a script sees inside the sandbox under a root supervisor: the policy's 65534. (On
 * the host each run has its own uid from the identity pool: isSandboxHostUid.) Under a
 * non-root supervisor, the supervisor's own.
 */
export const SANDBOX_UID = IS_ROOT ? 65534 : (process.getuid?.() ?? -1);

/** Is `uid` a sandbox's host uid: one of the default identity pool under a root supervisor, the supervisor's own otherwise. */
export function isSandboxHostUid(uid: number | null): boolean {
  if (uid === null) return false;
  return IS_ROOT ? inRange(DEFAULT_IDENTITY_RANGE, uid) : uid === process.getuid?.();
}

/** Every pid on the host (of our pid namespace and those below it). */
export function hostPids(): number[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

/** A file of /proc/PID, or null when the process is gone meanwhile (or is not ours to read). */
export function readProc(pid: number | string, file: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return null;
  }
}

/** A process's real uid on the host, or null when it is gone. */
export function uidOf(pid: number | string): number | null {
  const m = /^Uid:\s+(\d+)/m.exec(readProc(pid, "status") ?? "");
  return m ? Number(m[1]) : null;
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

const hostProcesses = (): HostProcess[] => hostPids().map(describeProcess).filter((p): p is HostProcess => p !== null);

/** Every host process (of any pid namespace below ours) whose command line contains `marker`. */
export function processesWithMarker(marker: string): HostProcess[] {
  return hostProcesses().filter((p) => p.pid !== process.pid && p.cmdline.some((arg) => arg.includes(marker)));
}

/** Direct children of a process on the host. */
export function childrenOf(parent: number): HostProcess[] {
  return hostProcesses().filter((p) => p.ppid === parent);
}

/** Host processes by command name (comm), with parent pid and command line; for leak checks. */
export function processesNamed(comm: string): { pid: number; ppid: number; comm: string; cmdline: string }[] {
  return hostProcesses()
    .filter((p) => p.comm === comm)
    .map((p) => ({ pid: p.pid, ppid: p.ppid, comm: p.comm, cmdline: p.cmdline.join(" ") }));
}

/**
 * Processes running as a sandbox's host uid that carry `mark` in their environment or
 * command line. (The mark keeps runs of other suites, which may run concurrently, out of
 * the count.)
 */
export function markedSandboxProcesses(mark: string): number[] {
  return hostPids().filter((pid) => isSandboxHostUid(uidOf(pid)) && ((readProc(pid, "environ") ?? "").includes(mark) || (readProc(pid, "cmdline") ?? "").includes(mark)));
}

/** Count, from the host, the marked sandbox processes while a run is under way. */
export function watchMarked(mark: string): { max: () => number; stop: () => void } {
  let max = 0;
  const timer = setInterval(() => {
    max = Math.max(max, markedSandboxProcesses(mark).length);
  }, 20);
  return { max: () => max, stop: () => clearInterval(timer) };
}

export function fdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

/** Host uids some process runs as (real, effective, saved or filesystem). */
export function uidsInUse(): Set<number> {
  const uids = new Set<number>();
  for (const pid of hostPids()) {
    const line = /^Uid:\s+(.*)$/m.exec(readProc(pid, "status") ?? "")?.[1];
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

/**
 * NS_GET_OWNER_UID of a process's user namespace, asked from the host (python3's fcntl.ioctl):
 * the uid that created it, to which the kernel charges the namespace's per-uid counts
 * (inotify instances, user namespaces) one level up.
 */
export function userNamespaceOwner(pid: number): number {
  const py = "import fcntl, os, struct, sys; fd = os.open('/proc/%s/ns/user' % sys.argv[1], os.O_RDONLY); b = bytearray(4); fcntl.ioctl(fd, 0xb704, b, True); print(struct.unpack('I', b)[0])";
  const p = Bun.spawnSync(["python3", "-c", py, String(pid)]);
  if (!p.success) throw new Error(`NS_GET_OWNER_UID of pid ${pid}: ${p.stderr.toString().trim()}`);
  return Number(p.stdout.toString().trim());
}
