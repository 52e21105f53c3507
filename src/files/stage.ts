import { closeSync, fchmodSync, fchownSync, fstatSync, openSync, constants, writeSync, type BigIntStats } from "node:fs";
import type { StagedInput } from "./input.ts";
import { createFileAt, makeDirectoryAt, openDirectory, openEntry } from "./safe-open.ts";

/**
 * Write validated input files into a fresh, empty scratch before the sandbox starts,
 * owned by the sandbox uid so the script may change them. Nothing of this run is in
 * scratch yet, but scratch (and every directory made here) is chowned to the sandbox
 * uid as it goes, and other processes may run as that uid: so the writes go through
 * directory fds and never follow a link (./safe-open.ts), and ownership and modes are
 * set on the opened fds (fchown, fchmod), never by path.
 */
export function stageInputFiles(scratchDir: string, files: readonly StagedInput[], owner: { uid: number; gid: number } | null): Map<string, string> {
  const staged = new Map<string, string>();
  if (files.length === 0) return staged;
  const scratch = openSync(scratchDir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    for (const file of files) staged.set(file.path, stageOne(scratch, file, owner));
  } finally {
    closeSync(scratch);
  }
  return staged;
}

/** Stage one file under the scratch fd; its fingerprint. */
function stageOne(scratch: number, file: StagedInput, owner: { uid: number; gid: number } | null): string {
  const parts = file.path.split("/");
  const opened: number[] = [];
  try {
    let dirfd = scratch;
    for (const name of parts.slice(0, -1)) {
      const made = makeDirectoryAt(dirfd, name, 0o755);
      const entry = openEntry(dirfd, name);
      opened.push(entry);
      if (!fstatSync(entry).isDirectory()) throw new Error(`cannot stage ${file.path}: ${name} in scratch is not a directory`);
      dirfd = openDirectory(entry);
      opened.push(dirfd);
      if (made) {
        fchmodSync(dirfd, 0o755); // whatever the umask
        if (owner) fchownSync(dirfd, owner.uid, owner.gid);
      }
    }
    const fd = createFileAt(dirfd, parts[parts.length - 1]!, file.mode);
    try {
      let off = 0;
      while (off < file.content.length) off += writeSync(fd, file.content, off, file.content.length - off);
      fchmodSync(fd, file.mode);
      if (owner) fchownSync(fd, owner.uid, owner.gid);
      return fingerprintOf(fstatSync(fd, { bigint: true }));
    } finally {
      closeSync(fd);
    }
  } finally {
    for (const fd of opened) closeSync(fd);
  }
}

/**
 * Identity of a file's state. ctime cannot be set from user space, so a script that
 * rewrites a file and restores its mtime still changes the fingerprint.
 */
export function fingerprintOf(st: BigIntStats): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}
