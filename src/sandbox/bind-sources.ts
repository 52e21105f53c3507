/**
 * Bind sources are host paths: one that is, lies in or holds /proc, /sys, /dev or a run root
 * would hand the sandbox exactly what a stated control keeps from it (host processes behind
 * `hostProcesses: enforced`, other runs' scratch). Checked by real path at plan time, and the
 * real path is what gets bound, so a symlink cannot be turned around after the check.
 */
import { realpathSync } from "node:fs";
import { normalize } from "node:path";
import { PolicyValidationError } from "../errors.ts";

const GUARDED: readonly { path: string; what: string }[] = [
  { path: "/proc", what: "host processes (command lines, environments, /proc/<pid>/root); the sandbox has its own /proc" },
  { path: "/sys", what: "the host kernel's device, cgroup and network state" },
  { path: "/dev", what: "host devices; the sandbox has its own /dev" },
];

function within(path: string, dir: string): boolean {
  return dir === "/" || path === dir || path.startsWith(`${dir}/`);
}

function realOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path; // missing (the launcher reports it) or not a path at all (the launcher-input check refuses it)
  }
}

/** What binding `source` would expose, or null. `path` is the source as written, `real` where it leads. */
function exposure(path: string, real: string, runRoots: readonly string[]): string | null {
  for (const p of new Set([path, real])) {
    for (const g of GUARDED) {
      if (within(p, g.path)) return `${p === path ? path : `${path} (really ${real})`} is ${p === g.path ? "" : "inside "}${g.path}: it would show the sandbox ${g.what}`;
      if (within(g.path, p)) return `${p === path ? path : `${path} (really ${real})`} contains ${g.path}: it would show the sandbox ${g.what}`;
    }
    for (const r of runRoots) {
      if (within(p, r) || within(r, p)) return `${path} ${within(r, p) && r !== p ? "contains" : "is or lies in"} the run root ${r}: it would show the sandbox other runs' directories (their scratch is owned by the same sandbox uid)`;
    }
  }
  return null;
}

/**
 * The real path to bind for `source`, or a PolicyValidationError (nothing is spawned) when it
 * would break a control. `field` names the bind in the error; `runRoots` are the run roots
 * runs may live in (as written; their real paths are compared too).
 */
export function checkedBindSource(source: string, field: string, runRoots: readonly string[], what = "policy"): string {
  const path = normalize(source);
  const real = realOr(path);
  const roots = [...new Set(runRoots.flatMap((r) => [normalize(r), realOr(normalize(r))]))];
  const problem = exposure(path, real, roots);
  if (problem) throw new PolicyValidationError([{ path: field, message: `${problem}; bind a narrower directory that holds only what the script needs` }], what);
  return real;
}
