import type { PrivilegeSpec } from "../../src/api/plugin.ts";

/**
 * Drop root to the run's host uid BEFORE the launcher (bwrap, nsjail) starts, with util-linux
 * setpriv: changing every uid away from 0 clears the capability sets, so the launcher runs
 * as that uid with no capabilities. The user namespace it then creates is owned by that
 * uid, which is what the kernel maps the sandbox to and charges per-uid counts (inotify
 * instances, user namespaces) to, never root.
 */
export function privilegeDropArgs(p: PrivilegeSpec, setpriv: string): string[] {
  if (!p.hostDrop) return [];
  return [setpriv, `--reuid=${p.hostDrop.uid}`, `--regid=${p.hostDrop.gid}`, "--clear-groups", ...(p.noNewPrivs ? ["--no-new-privs"] : [])];
}
