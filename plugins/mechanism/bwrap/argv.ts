import type { Mount, SandboxSpec } from "../../../src/api/plugin.ts";

/** bwrap options for one mount, in the order given (later mounts sit on top of earlier ones). */
export function mountArgs(m: Mount): string[] {
  switch (m.kind) {
    case "ro-bind":
      return ["--ro-bind", m.source, m.target];
    case "bind":
      return ["--bind", m.source, m.target];
    case "symlink":
      return ["--symlink", m.linkTarget, m.path];
    case "proc":
      return ["--proc", m.path];
    case "dev":
      // bwrap's --dev makes shm a plain directory of its unsized /dev tmpfs: mount a sized one on it.
      // Then seal /dev itself: that tmpfs (host default size, half of RAM) belongs to the sandbox
      // uid, so a script could park files in /dev without bound when no cgroup caps memory.
      // Not recursive: the device nodes, /dev/pts and the sized /dev/shm stay writable. Policy
      // binds cannot target /dev (RESERVED_SANDBOX_PATHS), so nothing is mounted under it later.
      // Without --size (old bwrap) shm is a directory of /dev itself, unsized and reported so.
      if (m.shmBytes === null) return ["--dev", m.path];
      return ["--dev", m.path, "--size", String(m.shmBytes), "--perms", "1777", "--tmpfs", `${m.path}/shm`, "--remount-ro", m.path];
    case "tmpfs":
      return [...(m.sizeBytes !== null ? ["--size", String(m.sizeBytes)] : []), "--perms", m.mode.toString(8).padStart(4, "0"), "--tmpfs", m.path];
    case "remount-ro":
      return ["--remount-ro", m.path];
  }
}

/** Drop root to the policy uid BEFORE bwrap, so the user namespace maps to that uid on the host. */
export { privilegeDropArgs } from "../setpriv.ts";

export interface BwrapFeatures {
  disableUserns: boolean;
  tmpfsSize: boolean;
}

export function namespaceArgs(spec: SandboxSpec, features: BwrapFeatures): string[] {
  const p = spec.privilege;
  return [
    "--unshare-user",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    ...(spec.network.namespace === "fresh" ? ["--unshare-net"] : []),
    "--uid", String(p.sandboxUid),
    "--gid", String(p.sandboxGid),
    ...(features.disableUserns ? ["--disable-userns"] : []),
    "--die-with-parent",
    "--new-session",
    ...(p.dropCapabilities ? ["--cap-drop", "ALL"] : []),
    "--hostname", spec.hostname,
  ];
}

export function envArgs(vars: Record<string, string>): string[] {
  return ["--clearenv", ...Object.entries(vars).flatMap(([k, v]) => ["--setenv", k, v])];
}
