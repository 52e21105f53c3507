/**
 * Temp dirs and run roots that are removed at the end of a test file, and the host-side
 * views of what a run may leave behind in them (entries, mounts).
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { token } from "./marks.ts";

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

/** A root-only directory (0700) holding one root-only 0600 file `name` whose content is a fresh token. */
export function rootOnlyCanary(name = "f.txt"): { dir: string; file: string; canary: string } {
  const dir = tempDir("secret", 0o700);
  const canary = token("canary");
  const file = join(dir, name);
  writeFileSync(file, canary, { mode: 0o600 });
  return { dir, file, canary };
}
