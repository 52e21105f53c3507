import { chmodSync, chownSync, lstatSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { StagedInput } from "./input.ts";

/**
 * Write validated input files into a fresh, empty scratch before the sandbox starts,
 * owned by the sandbox uid so the script may change them. Nothing else runs in scratch
 * yet, so there is nothing to race with.
 */
export function stageInputFiles(scratchDir: string, files: readonly StagedInput[], owner: { uid: number; gid: number } | null): Map<string, string> {
  const staged = new Map<string, string>();
  const own = (path: string) => owner && chownSync(path, owner.uid, owner.gid);
  for (const file of files) {
    let dir = scratchDir;
    for (const name of file.path.split("/").slice(0, -1)) {
      dir = join(dir, name);
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      own(dir);
    }
    const path = join(scratchDir, file.path);
    writeFileSync(path, file.content, { mode: file.mode, flag: "wx" });
    chmodSync(path, file.mode);
    own(path);
    staged.set(file.path, fingerprint(path));
  }
  return staged;
}

/**
 * Identity of a file's state. ctime cannot be set from user space, so a script that
 * rewrites a file and restores its mtime still changes the fingerprint.
 */
export function fingerprint(path: string): string {
  const st = lstatSync(path, { bigint: true });
  return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}
