/**
 * Where this host's cgroup controllers are and whether cordon may use them. Detected at
 * run time: pure v2 (current systemd, Docker, Kubernetes), hybrid (v1 controllers plus a
 * v2 mount without memory/pids, as on these Debian machines) or pure v1.
 */
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_CGROUP_PARENT } from "../protocol/index.ts";

export const CONTROLLERS = ["memory", "pids", "cpu", "cpuacct", "freezer"] as const;
export type Controller = (typeof CONTROLLERS)[number];

/** A controller's hierarchy: cgroup v1 (one mount per controller) or the unified v2 mount. */
export interface ControllerSite {
  version: 1 | 2;
  /** Mount point of the hierarchy. */
  mount: string;
}

export interface CgroupFacts {
  layout: "v2" | "hybrid" | "v1" | "none";
  /** Where each usable controller lives; absent when the host has none for it. */
  controllers: Partial<Record<Controller, ControllerSite>>;
  /** The supervisor may create child cgroups under the parent for every site. */
  writable: boolean;
  /** Why cgroups cannot be used, with what would fix it; null when they can. */
  problem: string | null;
}

interface CgroupMount {
  type: "cgroup" | "cgroup2";
  mount: string;
  options: string[];
}

/** cgroup and cgroup2 mounts from /proc/self/mountinfo text. Pure, for tests. */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const mount = left.split(" ")[4];
    const [type, , superOptions = ""] = right.split(" ");
    if (!mount || (type !== "cgroup" && type !== "cgroup2")) continue;
    mounts.push({ type, mount: mount.replace(/\\040/g, " "), options: superOptions.split(",") });
  }
  return mounts;
}

function readControllers(v2Mount: string): string[] {
  try {
    return readFileSync(join(v2Mount, "cgroup.controllers"), "utf8").trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * Pick a site per controller: v2 where the unified mount has it (cpuacct and freezer
 * are built into v2's cpu.stat and cgroup.kill), else its v1 mount.
 */
export function locateControllers(mounts: CgroupMount[], v2Controllers: (mount: string) => string[] = readControllers): CgroupFacts["controllers"] {
  const sites: CgroupFacts["controllers"] = {};
  const v2 = mounts.find((m) => m.type === "cgroup2");
  const unified = v2 ? v2Controllers(v2.mount) : [];
  for (const c of CONTROLLERS) {
    const v1 = mounts.find((m) => m.type === "cgroup" && m.options.includes(c));
    if (v2 && (unified.includes(c) || ((c === "cpuacct" || c === "freezer") && unified.includes("cpu")))) sites[c] = { version: 2, mount: v2.mount };
    else if (v1) sites[c] = { version: 1, mount: v1.mount };
  }
  return sites;
}

function layoutOf(mounts: CgroupMount[], sites: CgroupFacts["controllers"]): CgroupFacts["layout"] {
  const hasV1 = mounts.some((m) => m.type === "cgroup" && m.options.some((o) => (CONTROLLERS as readonly string[]).includes(o)));
  const hasV2 = mounts.some((m) => m.type === "cgroup2");
  if (hasV1 && hasV2) return sites.memory?.version === 2 ? "v2" : "hybrid";
  if (hasV2) return "v2";
  return hasV1 ? "v1" : "none";
}

function canCreateUnder(dir: string): boolean {
  try {
    accessSync(existsSync(dir) ? dir : join(dir, ".."), constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Detect the host's cgroups; `parent` is the cgroup name runs are created under. */
export function detectCgroups(parent: string = DEFAULT_CGROUP_PARENT, mountinfo?: string): CgroupFacts {
  let text = mountinfo;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/mountinfo", "utf8");
    } catch {
      text = "";
    }
  }
  const mounts = parseCgroupMounts(text);
  const controllers = locateControllers(mounts);
  const layout = layoutOf(mounts, controllers);
  const required = (["memory", "pids"] as const).filter((c) => !controllers[c]);
  const sites = [...new Set(Object.values(controllers).map((s) => s.mount))];
  const writable = sites.length > 0 && sites.every((m) => canCreateUnder(join(m, parent)));
  const problem =
    layout === "none"
      ? "no cgroup filesystem is mounted"
      : required.length > 0
        ? `no ${required.join(" or ")} controller is available (mount the v1 hierarchy or enable it in the v2 parent's cgroup.subtree_control)`
        : !writable
          ? `the supervisor may not create cgroups under ${parent} (run it as root, or delegate a cgroup v2 subtree to its user, e.g. systemd Delegate=yes)`
          : null;
  return { layout, controllers, writable, problem };
}

/** "cgroup v1 memory controller": which usable hierarchy enforces a cap, for the report; null when none can. */
export function cgroupMechanism(facts: CgroupFacts, controller: "memory" | "pids"): string | null {
  const site = facts.controllers[controller];
  return facts.problem === null && site ? `cgroup v${site.version} ${controller} controller` : null;
}
