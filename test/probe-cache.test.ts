/**
 * The bwrap probe's cache (src/probe-cache.ts, plugins/mechanism/bwrap/probe.ts): a second
 * start reads the entry instead of spawning bwrap; a changed binary, a stale, foreign or
 * malformed entry is never used. The "binary" is a wrapper around the real bwrap that logs
 * every time it is run, so the tests count the spawns.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { probeBwrap } from "../plugins/mechanism/bwrap/probe.ts";
import { IS_ROOT, removeTempDirs, tempDir } from "./support.ts";

afterAll(() => removeTempDirs());

/** A bwrap that logs its arguments, then is the real one. */
function loggingBwrap(dir: string): { binary: string; runs: () => string[] } {
  const log = join(dir, "runs.log");
  writeFileSync(log, "");
  const binary = join(dir, "bwrap");
  writeFileSync(binary, `#!/bin/sh\necho "$*" >> ${log}\nexec /usr/bin/bwrap "$@"\n`, { mode: 0o755 });
  return { binary, runs: () => readFileSync(log, "utf8").split("\n").filter(Boolean) };
}

function setup() {
  const dir = tempDir("cordon-probe-cache");
  const cacheDir = join(dir, "cache");
  return { ...loggingBwrap(dir), cacheDir, entry: () => join(cacheDir, readdirSync(cacheDir).find((n) => n.endsWith(".json"))!) };
}

describe("the bwrap probe cache", () => {
  test("the second probe reads the entry: same result, no bwrap spawned", () => {
    const { binary, runs, cacheDir } = setup();
    const first = probeBwrap(binary, { cacheDir });
    expect(first.available).toBe(true);
    expect(runs()).toEqual(["--version", "--help"]);
    expect(probeBwrap(binary, { cacheDir })).toEqual(first);
    expect(runs()).toHaveLength(2);
    // And the real probe agrees with what the uncached one says.
    expect(probeBwrap(binary, { cacheDir: null })).toEqual(first);
  });

  test("a rewritten binary (new ctime, whatever its mtime says) is probed again", () => {
    const { binary, runs, cacheDir } = setup();
    probeBwrap(binary, { cacheDir });
    const before = readFileSync(binary);
    writeFileSync(binary, before); // same bytes, same size: only ctime (and mtime) move
    probeBwrap(binary, { cacheDir });
    expect(runs()).toHaveLength(4);
  });

  test("a forged entry is used only with the right key, owner and mode", () => {
    const { binary, runs, cacheDir, entry } = setup();
    probeBwrap(binary, { cacheDir });
    const path = entry();
    const forged = JSON.parse(readFileSync(path, "utf8"));
    forged.value.version = "forged";
    writeFileSync(path, JSON.stringify(forged));
    chmodSync(path, 0o644); // readable by others: not the supervisor's own private entry
    expect(probeBwrap(binary, { cacheDir }).version).not.toBe("forged");
    expect(runs()).toHaveLength(4);

    // A malformed value (a feature missing) is ignored and replaced.
    const bad = JSON.parse(readFileSync(entry(), "utf8"));
    delete bad.value.features.seccomp;
    writeFileSync(entry(), JSON.stringify(bad));
    expect(probeBwrap(binary, { cacheDir }).features.seccomp).toBe(true);
    expect(runs()).toHaveLength(6);
  });

  test.skipIf(!IS_ROOT)("an entry owned by another uid, or a cache directory others can write, is never read", () => {
    const { binary, runs, cacheDir, entry } = setup();
    probeBwrap(binary, { cacheDir });
    chownSync(entry(), 65534, 65534);
    probeBwrap(binary, { cacheDir }); // ignored, probed, replaced by root's own
    expect(runs()).toHaveLength(4);
    chmodSync(cacheDir, 0o777);
    probeBwrap(binary, { cacheDir });
    probeBwrap(binary, { cacheDir });
    expect(runs()).toHaveLength(8); // no cache at all while the directory is open to others
  });

  test("a bwrap that cannot say its version is not cached: the next start tries again", () => {
    const dir = tempDir("cordon-probe-cache");
    const binary = join(dir, "bwrap");
    const log = join(dir, "runs.log");
    writeFileSync(binary, `#!/bin/sh\necho run >> ${log}\necho broken >&2\nexit 1\n`, { mode: 0o755 });
    const cacheDir = join(dir, "cache");
    expect(probeBwrap(binary, { cacheDir }).available).toBe(false);
    expect(probeBwrap(binary, { cacheDir }).reason).toContain("--version failed: broken");
    expect(readFileSync(log, "utf8").trim().split("\n")).toHaveLength(2);
  });
});
