/**
 * The host-side file walks under attack by someone racing them: an unprivileged owner
 * of a `--files` input tree, a sandboxed script (or a process escaped from it) that owns
 * scratch while output files are collected, an owner of the `--out` directory. Each swaps
 * a real directory with a symlink to a root-only host directory, in a tight loop of
 * renameat2(RENAME_EXCHANGE), while the root supervisor walks the tree many times. A walk
 * that checks a path (lstat) and then opens it by path follows the swapped-in symlink:
 * nothing of the root-only canary may ever come back, and nothing may be written there.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { lchownSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { JobInputError } from "../src/api/index.ts";
import { collectOutputFiles } from "../src/files/collect.ts";
import { readInputDirectory, writeOutputFiles } from "../src/cli/directory.ts";
import { BASE_POLICY, IS_ROOT, fdCount, removeTempDirs, rootOnlyCanary, startFlipper, tempDir, unusedUid, waitFor } from "./support.ts";

afterAll(() => removeTempDirs());

/**
 * The attacker: an unprivileged local user with a uid of its own (no account, no process),
 * neither 65534 nor one of the identity pool's that runs drop to.
 */
const ATTACKER = (() => {
  const id = unusedUid();
  return { uid: id, gid: id };
})();
const CLI = resolve(import.meta.dir, "../bin/cordon.ts");
const LIMITS = { maxCount: 256, maxTotalBytes: 16 * 1024 * 1024 };
const OUTPUT_LIMITS = { maxCount: 256, maxTotalBytes: 16 * 1024 * 1024, maxDepth: 16, collectMs: 5_000 };
const text = (b: string | Uint8Array) => (typeof b === "string" ? b : new TextDecoder().decode(b));
/** How long each library-level attack goes on; the walks are fast, so this is thousands of tries. */
const ATTACK_MS = 3_000;
const CLI_TRIES = 12;

/** Make `path` (not following it) and whatever is below it owned by the attacker. */
function giveAway(...paths: string[]): void {
  for (const path of paths) lchownSync(path, ATTACKER.uid, ATTACKER.gid);
}

/**
 * An input tree owned by the attacker: `input/sub/f.txt` (harmless) and, outside the tree
 * but on the same filesystem, `swap` -> a root-only directory holding a root-only f.txt.
 * The same file name on both sides: a walk that lists one side and opens the other leaks.
 */
function attackerInputTree(secretDir: string): { input: string; sub: string; swap: string } {
  const home = tempDir("race-owner", 0o755);
  const input = join(home, "input");
  const sub = join(input, "sub");
  const swap = join(home, "swap");
  mkdirSync(sub, { recursive: true });
  writeFileSync(join(input, "top.txt"), "top\n");
  writeFileSync(join(sub, "f.txt"), "harmless\n");
  symlinkSync(secretDir, swap);
  giveAway(home, input, sub, swap, join(input, "top.txt"), join(sub, "f.txt"));
  return { input, sub, swap };
}

/** Run `fn` over and over for `ms`, yielding now and then so the flipper's pipe is drained. */
async function repeatFor(ms: number, fn: () => void): Promise<number> {
  const deadline = performance.now() + ms;
  let n = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < 20; i++, n++) fn();
    await Bun.sleep(0);
  }
  return n;
}

describe.skipIf(!IS_ROOT)("--files: the input owner swaps a subdirectory with a symlink to a root-only directory", () => {
  test("readInputDirectory: thousands of walks under attack, the root-only canary never comes back", async () => {
    const secret = rootOnlyCanary("f.txt");
    const tree = attackerInputTree(secret.dir);
    const flipper = await startFlipper(tree.sub, tree.swap, ATTACKER);
    let leaks = 0;
    let staged = 0;
    let refused = 0;
    const unexpected: string[] = [];
    let tries = 0;
    try {
      tries = await repeatFor(ATTACK_MS, () => {
        try {
          const files = readInputDirectory(tree.input, LIMITS);
          if (files.some((f) => text(f.content).includes(secret.canary))) leaks++;
          else staged++;
        } catch (e) {
          if (e instanceof JobInputError) refused++; // it saw the symlink, or the tree changed under it
          else unexpected.push(String(e));
        }
      });
    } finally {
      const swaps = await flipper.stop();
      expect(swaps).toBeGreaterThan(1000); // the attack really ran
    }
    console.log(`readInputDirectory under attack: ${tries} walks, ${staged} staged, ${refused} refused, ${leaks} leaked`);
    expect(unexpected).toEqual([]);
    expect(leaks).toBe(0);
    // Both sides of the race were hit: walks that saw the real directory, and walks that saw the link.
    expect(staged).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });

  for (const provider of ["bwrap", "unsafe"]) {
    test(`cordon run --files (${provider}): the script never sees the canary`, async () => {
      const secret = rootOnlyCanary("f.txt");
      const tree = attackerInputTree(secret.dir);
      const base = tempDir("race-cli", 0o711);
      const config = join(base, "config.json");
      const policy = join(base, "policy.json");
      writeFileSync(config, JSON.stringify({ runRoot: join(base, "runs"), provider }));
      writeFileSync(policy, JSON.stringify(provider === "unsafe" ? { onUnavailable: "degrade" } : BASE_POLICY));
      const script = join(base, "show.sh");
      writeFileSync(script, "cat top.txt sub/f.txt 2>&1\n");
      const flipper = await startFlipper(tree.sub, tree.swap, ATTACKER);
      const outcomes: string[] = [];
      try {
        for (let i = 0; i < CLI_TRIES; i++) {
          const p = Bun.spawn([process.execPath, CLI, "run", "--config", config, "--policy", policy, "--files", tree.input, script], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
          const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
          if (`${stdout}${stderr}`.includes(secret.canary)) outcomes.push("LEAK");
          else if (code === 0 && stdout === "top\nharmless\n") outcomes.push("staged");
          else if (code === 126 && /is a symlink|changed while it was read/.test(stderr)) outcomes.push("refused");
          else outcomes.push(`unexpected (${code}): ${stdout} ${stderr}`);
        }
      } finally {
        expect(await flipper.stop()).toBeGreaterThan(100);
      }
      console.log(`cordon run --files (${provider}) under attack: ${outcomes.join(", ")}`);
      expect(outcomes.filter((o) => o !== "staged" && o !== "refused")).toEqual([]);
    }, 120_000);
  }
});

/** A fake scratch owned by the sandbox uid: d/f (harmless), l -> a root-only host directory holding f. */
function scratchTree(secretDir: string): { scratch: string; d: string; l: string } {
  const scratch = tempDir("race-scratch", 0o700);
  const d = join(scratch, "d");
  const l = join(scratch, "l");
  mkdirSync(d);
  writeFileSync(join(d, "f"), "safe\n");
  symlinkSync(secretDir, l);
  giveAway(scratch, d, l, join(d, "f"));
  return { scratch, d, l };
}

describe.skipIf(!IS_ROOT)("output collection: scratch's owner swaps a directory with a symlink to a root-only host directory", () => {
  test("collectOutputFiles: thousands of walks under attack, the canary never comes back", async () => {
    const secret = rootOnlyCanary("f");
    const tree = scratchTree(secret.dir);
    const flipper = await startFlipper(tree.d, tree.l, ATTACKER);
    let leaks = 0;
    let returned = 0;
    let tries = 0;
    try {
      tries = await repeatFor(ATTACK_MS, () => {
        const { files } = collectOutputFiles(tree.scratch, OUTPUT_LIMITS);
        if (files.some((f) => text(f.content).includes(secret.canary))) leaks++;
        else if (files.some((f) => f.path.endsWith("/f"))) returned++;
      });
    } finally {
      expect(await flipper.stop()).toBeGreaterThan(1000);
    }
    console.log(`collectOutputFiles under attack: ${tries} walks, ${returned} returned d/f or l/f, ${leaks} leaked`);
    expect(leaks).toBe(0);
    expect(returned).toBeGreaterThan(0); // walks did go into the real directory while it was being swapped
  });

  test("cordon run --out (bwrap): a process swapping in scratch during collection gets nothing of the host back", async () => {
    const secret = rootOnlyCanary("f");
    const base = tempDir("race-out", 0o711);
    const runRoot = join(base, "runs");
    const config = join(base, "config.json");
    writeFileSync(config, JSON.stringify({ runRoot }));
    const script = join(base, "swapme.sh");
    // The host path means nothing inside the sandbox; only a supervisor following the link would reach it.
    writeFileSync(script, `mkdir d && echo safe > d/f && ln -s ${secret.dir} l && sleep 0.3\n`);
    const outcomes: string[] = [];
    for (let i = 0; i < CLI_TRIES; i++) {
      const outDir = join(tempDir("race-outdir"), "out");
      const p = Bun.spawn([process.execPath, CLI, "run", "--config", config, "--out", outDir, script], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const done = Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      // Stands in for a process escaped from the sandbox: swap d and l in scratch while the supervisor collects.
      let scratch = "";
      await waitFor(() => {
        const run = (() => {
          try {
            return readdirSync(runRoot).find((n) => n.startsWith("run-"));
          } catch {
            return undefined;
          }
        })();
        if (!run) return false;
        scratch = join(runRoot, run, "scratch");
        try {
          return readdirSync(scratch).includes("l");
        } catch {
          return false;
        }
      }, 10_000);
      const flipper = scratch ? await startFlipper(join(scratch, "d"), join(scratch, "l")) : null;
      const [stdout, stderr, code] = await done;
      await flipper?.stop();
      const written = readdirSync(outDir, { recursive: true }).map(String).sort();
      const contents = written.map((f) => { try { return readFileSync(join(outDir, f), "utf8"); } catch { return ""; } }).join("");
      if (`${stdout}${stderr}${contents}`.includes(secret.canary)) outcomes.push("LEAK");
      else if (code === 0) outcomes.push(written.join("+") || "nothing");
      else outcomes.push(`unexpected (${code}): ${stderr}`);
    }
    console.log(`cordon run --out under attack: ${outcomes.join(", ")}`);
    expect(outcomes.filter((o) => o === "LEAK" || o.startsWith("unexpected"))).toEqual([]);
    expect(readdirSync(secret.dir)).toEqual(["f"]);
  }, 120_000);
});

describe.skipIf(!IS_ROOT)("--out: the output directory's owner swaps a subdirectory with a symlink to a root-only directory", () => {
  test("writeOutputFiles: thousands of writes under attack, nothing is ever written outside the directory", async () => {
    const secret = rootOnlyCanary("f");
    const home = tempDir("race-outowner", 0o755);
    const out = join(home, "out");
    const sub = join(out, "sub");
    const swap = join(home, "swap");
    mkdirSync(sub, { recursive: true });
    symlinkSync(secret.dir, swap);
    giveAway(home, out, sub, swap);
    const flipper = await startFlipper(sub, swap, ATTACKER);
    let written = 0;
    let skipped = 0;
    try {
      await repeatFor(ATTACK_MS, () => {
        const r = writeOutputFiles(out, [{ path: "sub/x", size: 6, content: new TextEncoder().encode("PWNED\n") }]);
        written += r.written.length;
        skipped += r.skipped.length;
      });
    } finally {
      expect(await flipper.stop()).toBeGreaterThan(1000);
    }
    console.log(`writeOutputFiles under attack: ${written} written, ${skipped} skipped; secret dir holds ${JSON.stringify(readdirSync(secret.dir))}`);
    expect(readdirSync(secret.dir)).toEqual(["f"]);
    expect(readFileSync(secret.file, "utf8")).toBe(secret.canary);
    expect(written).toBeGreaterThan(0);
  });
});

describe("the fd-relative walks close what they open", () => {
  test("200 walks that succeed, refuse or skip leave no file descriptor open", () => {
    const input = tempDir("fds-in");
    mkdirSync(join(input, "a/b/c"), { recursive: true });
    writeFileSync(join(input, "a/b/c/f"), "f");
    writeFileSync(join(input, "a/g"), "g");
    const badInput = tempDir("fds-bad");
    mkdirSync(join(badInput, "a/b"), { recursive: true });
    symlinkSync("/etc", join(badInput, "a/b/link"));
    const out = tempDir("fds-out");
    mkdirSync(join(out, "x"));
    symlinkSync("/etc", join(out, "x/link"));
    const walkAll = () => {
      expect(readInputDirectory(input, LIMITS).map((f) => f.path)).toEqual(["a/b/c/f", "a/g"]);
      expect(() => readInputDirectory(badInput, LIMITS)).toThrow(JobInputError);
      expect(collectOutputFiles(input, OUTPUT_LIMITS).files).toHaveLength(2);
      expect(collectOutputFiles(badInput, OUTPUT_LIMITS).omitted).toEqual([{ path: "a/b/link", reason: "symlink (never followed)" }]);
      const w = writeOutputFiles(out, [{ path: "x/y/z", size: 1, content: new Uint8Array([1]) }, { path: "x/link/z", size: 1, content: new Uint8Array([1]) }]);
      expect([w.written, w.skipped.length]).toEqual([["x/y/z"], 1]);
    };
    walkAll(); // lazy loading (libc through bun:ffi) happens once
    const before = fdCount();
    for (let i = 0; i < 200; i++) walkAll();
    // Not equal: an fd of an earlier test's process may close meanwhile. A leak here is one
    // fd per walk at least, 200 or more, which this still catches.
    expect(fdCount()).toBeLessThanOrEqual(before);
  });
});
