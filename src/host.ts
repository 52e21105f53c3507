import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { basename } from "node:path";
import { release } from "node:os";
import { detectCgroups, type CgroupFacts } from "./cgroup/detect.ts";

/** A top-level system path (/bin, /lib64 …) as it is on this host: merged-/usr symlink or real directory. */
export type SystemPath = { path: string; kind: "symlink"; target: string } | { path: string; kind: "dir" };

/** Facts about the host the layers decide from. Detected once per process. */
export interface HostFacts {
  uid: number;
  gid: number;
  isRoot: boolean;
  kernel: string;
  systemPaths: SystemPath[];
  hasLdSoCache: boolean;
  /** The host's cgroup setup and whether this supervisor may create run cgroups. */
  cgroups: CgroupFacts;
  /**
   * Host processes outside cordon's runs that run as the policy's sandbox uid, looked up just
   * before planning (absent: not looked up). They own every run's user namespace with it.
   */
  sandboxUidUsers?: SandboxUidUsers;
}

export interface SandboxUidUsers {
  uid: number;
  /** "pid 123 (name)", at most a few; empty when none. */
  processes: string[];
  /** How many there were in all. */
  count: number;
}

const TOP_LEVEL_SYSTEM_PATHS = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

function describeSystemPath(path: string): SystemPath | null {
  try {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) return { path, kind: "symlink", target: readlinkSync(path) };
    if (st.isDirectory()) return { path, kind: "dir" };
  } catch {
    // absent on this host: nothing to mount
  }
  return null;
}

export function detectHostFacts(): HostFacts {
  const uid = process.getuid?.() ?? -1;
  return {
    uid,
    gid: process.getgid?.() ?? -1,
    isRoot: uid === 0,
    kernel: release(),
    systemPaths: TOP_LEVEL_SYSTEM_PATHS.map(describeSystemPath).filter((p): p is SystemPath => p !== null),
    hasLdSoCache: existsSync("/etc/ld.so.cache"),
    cgroups: detectCgroups(),
  };
}

let cached: HostFacts | undefined;
export function hostFacts(): HostFacts {
  cached ??= detectHostFacts();
  return cached;
}

/** Resolve a command name on PATH to an absolute path, or null. */
export function findExecutable(name: string, pathEnv = process.env.PATH ?? "/usr/bin:/bin"): string | null {
  if (name.includes("/")) return existsSync(name) ? name : null;
  return Bun.which(name, { PATH: pathEnv }) ?? null;
}

export interface SandboxUser {
  uid: number;
  gid: number;
}

/**
 * The first directory on the way to `path` that `user` cannot search, or null when it can
 * reach it. A bind source must pass: bwrap, once dropped to the sandbox uid, opens it as that uid.
 */
export function firstUnreachableAncestor(path: string, user: SandboxUser): string | null {
  const parts = path.split("/").filter(Boolean);
  for (let i = 0; i < parts.length; i++) {
    const dir = `/${parts.slice(0, i).join("/")}`;
    let st;
    try {
      st = statSync(dir);
    } catch {
      return dir;
    }
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return dir;
  }
  return null;
}

/**
 * What a launcher step of a cordon run looks like on the host while it runs as the sandbox
 * uid: bwrap, and nsjail (both started through setpriv as that uid; nsjail's own process stays
 * in the host's pid namespace for the whole run). A launcher installed under another name is
 * seen as a foreign process of the uid: a refusal, never a silent pass.
 */
const LAUNCHER_STEPS = new Set(["bwrap", "nsjail", "setpriv", "prlimit"]);

function procStatus(pid: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null; // gone meanwhile, or not ours to read
  }
}

function statusField(status: string, name: string): string | undefined {
  return new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1];
}

function uidsOf(status: string): number[] {
  return (statusField(status, "Uid") ?? "").split(/\s+/).filter(Boolean).map(Number);
}

function linkOrNull(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

/**
 * A launcher step of a cordon run: bwrap or nsjail (or setpriv/prlimit on the way) from a root-owned,
 * not group/world-writable binary, started by a live parent that does not run as the sandbox
 * uid (the supervisor; pid 1 does not count: an orphan was not started by one).
 */
function isLauncherStep(pid: string, status: string, uid: number, exe: string): boolean {
  if (!LAUNCHER_STEPS.has(basename(exe))) return false;
  try {
    const st = statSync(exe);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) return false;
  } catch {
    return false;
  }
  const ppid = statusField(status, "PPid") ?? "0";
  if (Number(ppid) <= 1) return false;
  const parent = procStatus(ppid);
  return parent !== null && !uidsOf(parent).includes(uid);
}

/**
 * Host processes that run as `uid` (real, effective, saved or filesystem) and can see this
 * pid namespace's processes, other than the launcher steps of cordon runs. Any of them may
 * read a run's /proc/<pid>/environ and /proc/<pid>/root: the run's user namespace is owned by
 * that uid. Processes in other pid namespaces (the sandboxes themselves) cannot name ours.
 * A detection of a shared uid, not a defence against a process that hides from it.
 */
export function sandboxUidUsers(uid: number, maxAgeMs = UID_SCAN_MAX_AGE_MS): SandboxUidUsers {
  const now = performance.now();
  const hit = uidScans.get(uid);
  if (hit && now - hit.at <= maxAgeMs) return hit.users;
  const users = scanUidUsers(uid);
  uidScans.set(uid, { at: now, users });
  return users;
}

/** A scan reads every process's status (~10 ms for a hundred): runs within this long share one. */
export const UID_SCAN_MAX_AGE_MS = 1000;
const uidScans = new Map<number, { at: number; users: SandboxUidUsers }>();

/** "pid N (name)" when `pid` runs as `uid`, sees this pid namespace and is not a launcher step; else null. */
function sharer(pid: string, uid: number, ownPidNs: string | null): string | null {
  const status = procStatus(pid);
  if (!status || !uidsOf(status).includes(uid)) return null;
  if ((statusField(status, "State") ?? "").startsWith("Z")) return null; // a zombie does nothing
  if (ownPidNs && linkOrNull(`/proc/${pid}/ns/pid`) !== ownPidNs) return null;
  // No executable: the process is exiting (its memory is gone) and can read nothing any more.
  const exe = linkOrNull(`/proc/${pid}/exe`);
  if (exe === null || isLauncherStep(pid, status, uid, exe)) return null;
  const name = (statusField(status, "Name") ?? "?").replace(/[^\x20-\x7e]/g, "?");
  return `pid ${pid} (${name})`;
}

/** Launcher steps pass through shapes that look foreign for microseconds: a finding is looked at twice. */
const CONFIRM_AFTER_MS = 25;

function scanUidUsers(uid: number): SandboxUidUsers {
  const ownPidNs = linkOrNull("/proc/self/ns/pid");
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc").filter((n) => /^\d+$/.test(n));
  } catch {
    // no /proc: nothing to say
  }
  let pids = entries.filter((pid) => sharer(pid, uid, ownPidNs) !== null);
  if (pids.length > 0) {
    Bun.sleepSync(CONFIRM_AFTER_MS);
    pids = pids.filter((pid) => sharer(pid, uid, ownPidNs) !== null);
  }
  const found = pids.map((pid) => sharer(pid, uid, ownPidNs)).filter((d): d is string => d !== null);
  return { uid, processes: found.slice(0, 5), count: found.length };
}
