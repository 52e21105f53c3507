/**
 * A provider probe's result kept between processes, so a CLI run does not spawn the same
 * `--version`/`--help` helpers at every start (bwrap's two cost ~11 ms here).
 *
 * Only the supervisor's own uid can have written an entry that is used: the directory is
 * held to the run root's rules (every directory on the way owned by that uid or root, none
 * writable by others), the file is opened without following a link and used only when it
 * is a regular file owned by that uid with mode 0600. An entry is used only when its key
 * (what the caller says the result depends on, e.g. the binary's inode, size, mtime and
 * ctime) is the current one. Anything else (missing, foreign, stale, malformed) is ignored
 * and the probe runs. Writing is best effort: a fresh file renamed into place.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { randomHex } from "./random.ts";
import { defaultRunRoot, ensureSafeDirectory, writeExclusive } from "./sandbox/run-root.ts";

/** Where entries live unless told: next to the default run root (not in it: that holds only run dirs). */
export function defaultProbeCacheDir(): string {
  return `${defaultRunRoot()}-probes`;
}

export interface CachedProbeOptions<T> {
  /** The entry's file name (letters, digits, dashes). */
  name: string;
  /** Everything the result depends on; an entry with another key is stale. */
  key: string;
  /** The entry's value checked field by field, or null when it is not a valid result. */
  accept(value: unknown): T | null;
  /** Run the probe: `cache: false` for a result not worth keeping (a failure). */
  compute(): { value: T; cache: boolean };
  /** The directory (default defaultProbeCacheDir()); null: no cache at all. */
  dir?: string | null;
}

/** The cached value when a trusted, current entry exists, else the probe's own result (then kept). */
export function cachedProbe<T>(o: CachedProbeOptions<T>): T {
  if (!/^[A-Za-z0-9-]+$/.test(o.name)) throw new Error(`bad probe cache name ${o.name}`);
  const dir = trustedDir(o.dir === undefined ? defaultProbeCacheDir() : o.dir);
  if (dir !== null) {
    const hit = readEntry(join(dir, `${o.name}.json`), o.key);
    const value = hit === undefined ? null : o.accept(hit);
    if (value !== null) return value;
  }
  const { value, cache } = o.compute();
  if (dir !== null && cache) writeEntry(dir, o.name, o.key, value);
  return value;
}

/** The directory's real path when it is (or was just made) safe, else null: then nothing is read or written. */
function trustedDir(dir: string | null): string | null {
  if (dir === null) return null;
  try {
    return ensureSafeDirectory(dir);
  } catch {
    return null;
  }
}

/** The entry's value when the file is the supervisor's own (regular, its uid, 0600) and its key matches; undefined otherwise. */
function readEntry(path: string, key: string): unknown {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== process.geteuid?.() || (st.mode & 0o777) !== 0o600 || st.size > 64 * 1024) return undefined;
    const entry = JSON.parse(readFileSync(fd, "utf8")) as unknown;
    if (typeof entry !== "object" || entry === null || (entry as { key?: unknown }).key !== key) return undefined;
    return (entry as { value?: unknown }).value;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

function writeEntry(dir: string, name: string, key: string, value: unknown): void {
  const tmp = join(dir, `.${name}.${process.pid}.${randomHex(6)}`);
  try {
    writeExclusive(tmp, JSON.stringify({ key, value }), 0o600);
    renameSync(tmp, join(dir, `${name}.json`));
  } catch {
    rmSync(tmp, { force: true }); // a cache that cannot be written only costs the next start its probe
  }
}
