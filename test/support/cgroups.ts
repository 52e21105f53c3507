/**
 * A test file's own cgroup parent (so it can assert the parent holds no run cgroup after its
 * runs without racing other supervisors on the host), seen in every hierarchy cordon uses.
 */
import { existsSync, readdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { hostFacts } from "../../src/host.ts";

/** One directory of `parent` per hierarchy cordon uses (v1: memory, pids, cpu, …; v2: one); none where cgroups are unusable. */
export function cgroupParentDirs(parent: string): string[] {
  const facts = hostFacts().cgroups;
  if (facts.problem !== null) return [];
  return [...new Set(Object.values(facts.controllers).map((site) => join(site.mount, parent)))];
}

/** Run cgroups (run-*) in these directories (a directory that does not exist holds none). */
export function runCgroupsIn(dirs: readonly string[]): string[] {
  return dirs.flatMap((dir) => (existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith("run-")).map((n) => join(dir, n)) : []));
}

/** Run cgroups (run-*) left under `parent`, in any hierarchy. */
export function runCgroupsLeft(parent: string): string[] {
  return runCgroupsIn(cgroupParentDirs(parent));
}

/** At the end of a file: remove the run cgroups a failed test left (empty ones; say which could not go), then `parent` itself. */
export function removeCgroupParent(parent: string, label: string): void {
  for (const dir of runCgroupsLeft(parent)) {
    try {
      rmdirSync(dir);
    } catch (e) {
      console.warn(`${label}: could not remove ${dir}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  for (const dir of cgroupParentDirs(parent)) if (existsSync(dir)) rmdirSync(dir);
}
