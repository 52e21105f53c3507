import { existsSync, lstatSync, readlinkSync, statSync } from "node:fs";
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
