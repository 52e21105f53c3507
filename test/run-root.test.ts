/**
 * Issue 17 item 9: the run root (and every run dir and file in it) must be something no
 * other local user can own, replace or link into. A run root that is not safe is refused
 * before anything is created or spawned, with a typed error that says how to fix it.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Cordon, CordonError } from "../src/api/index.ts";
import { firstUnreachableAncestor } from "../src/api/plugin.ts";
import { builtinProviders, builtinRunners } from "../plugins/index.ts";
import { BASE_POLICY, IS_ROOT, caught, makeCordon, mountsUnder, removeTempDirs, runRootEntries, startFlipper, tempDir, token, unusedUid } from "./support.ts";

const ROOT = resolve(import.meta.dir, "..");
afterAll(removeTempDirs);

/** Another local user: the attacker who plants things in a shared directory. */
const OTHER = IS_ROOT ? unusedUid() : null;

async function refusal(cordon: Cordon, provider = "bwrap"): Promise<CordonError> {
  const marker = join(tempDir("marker", 0o777), "ran");
  // unsafe enforces nothing: it runs only under degrade, which must not let an unsafe run root through either.
  const policy = provider === "unsafe" ? { onUnavailable: "degrade" as const } : BASE_POLICY;
  const err = await caught(() => cordon.run({ runner: "shell", provider, script: { source: `touch ${marker}; echo RAN` }, args: [], policy }));
  expect(existsSync(marker)).toBe(false); // nothing ran
  expect(err).toBeInstanceOf(CordonError);
  return err as CordonError;
}

describe.skipIf(!IS_ROOT)("9. a run root another user could control is refused (nothing created, nothing spawned)", () => {
  for (const provider of ["bwrap", "unsafe"]) {
    test(`${provider}: a configured run root owned by another user`, async () => {
      const runRoot = join(tempDir("rr-owned", 0o711), "runs");
      mkdirSync(runRoot, { mode: 0o755 });
      chownSync(runRoot, OTHER!, OTHER!);
      const err = await refusal(makeCordon(runRoot), provider);
      expect(err.code).toBe("invalid-config");
      expect(err.message).toContain(runRoot);
      expect(err.message).toContain(`uid ${OTHER}`);
      expect(err.message).toMatch(/runRoot/); // says how to fix it
      expect(runRootEntries(runRoot)).toEqual([]);
    });
  }

  test("a run root writable by group or others (root-owned, not sticky)", async () => {
    const runRoot = join(tempDir("rr-open", 0o711), "runs");
    mkdirSync(runRoot);
    chmodSync(runRoot, 0o777);
    const err = await refusal(makeCordon(runRoot));
    expect(err.message).toMatch(/writable/);
    expect(runRootEntries(runRoot)).toEqual([]);
  });

  test("an ancestor of the run root writable by others and not sticky (the run root could be renamed away)", async () => {
    const open = tempDir("rr-anc", 0o777);
    const err = await refusal(makeCordon(join(open, "runs")));
    expect(err.message).toContain(open);
    expect(existsSync(join(open, "runs"))).toBe(false);
  });

  test("a run root that is a symlink to a directory another user owns", async () => {
    const theirs = tempDir("rr-theirs", 0o777);
    chownSync(theirs, OTHER!, OTHER!);
    const parent = tempDir("rr-link", 0o711);
    symlinkSync(theirs, join(parent, "runs"));
    await refusal(makeCordon(join(parent, "runs")));
    expect(readdirSync(theirs)).toEqual([]);
  });

  test("a run root under a sticky world-writable directory, owned by the supervisor, is fine (the tests' own layout)", async () => {
    const runRoot = join(tempDir("rr-ok", 0o711), "runs");
    const r = await makeCordon(runRoot).run({ runner: "shell", script: { source: "echo RAN" }, args: [], policy: BASE_POLICY });
    expect([r.outcome, r.stdout]).toEqual(["ok", "RAN\n"]);
    const st = statSync(runRoot);
    expect([st.uid, st.mode & 0o7777]).toEqual([0, 0o711]);
  });

  test("a symlinked run root whose target is safe is fine", async () => {
    const real = join(tempDir("rr-real", 0o711), "runs");
    const parent = tempDir("rr-alias", 0o711);
    mkdirSync(real, { mode: 0o711 });
    symlinkSync(real, join(parent, "runs"));
    const r = await makeCordon(join(parent, "runs")).run({ runner: "shell", script: { source: "echo RAN" }, args: [], policy: BASE_POLICY });
    expect([r.outcome, r.stdout]).toEqual(["ok", "RAN\n"]);
  });

  test("the default run root of a root supervisor is /run/cordon, root-owned 0711", async () => {
    const cordon = new Cordon({}, { providers: builtinProviders(), runners: builtinRunners() });
    expect(cordon.runRoot).toBe("/run/cordon");
    const r = await cordon.run({ runner: "shell", script: { source: "echo RAN" }, args: [], policy: BASE_POLICY });
    expect([r.outcome, r.stdout]).toEqual(["ok", "RAN\n"]);
    const st = lstatSync("/run/cordon");
    expect([st.isDirectory(), st.uid, st.mode & 0o022]).toEqual([true, 0, 0]);
  });

  /**
   * The reported attack: the other user pre-creates the run root, watches for a run dir,
   * renames it away and puts its own in its place, holding a world-readable launcher-args
   * (the bwrap argument file, with TOKEN=…) and a launcher-status symlink to a root-owned
   * file. Whatever the timing, the token must never reach the attacker's file, the
   * root-owned file must stay intact, and no scratch tmpfs may stay mounted.
   */
  test("the rename race on a pre-created run root: no token leak, no overwrite through a symlink, no stray mount", async () => {
    const parent = tempDir("rr-race", 0o711);
    const runRoot = join(parent, "runs");
    mkdirSync(runRoot);
    chownSync(runRoot, OTHER!, OTHER!);
    const victim = join(tempDir("rr-victim", 0o700), "root-owned");
    writeFileSync(victim, "precious\n", { mode: 0o600 });
    const loot = join(tempDir("rr-loot", 0o777), "loot");
    const attacker = Bun.spawn(["/usr/bin/python3", "-c", RACER, runRoot, victim, loot], { uid: OTHER!, gid: OTHER!, stdin: "ignore", stdout: "ignore", stderr: "inherit", env: {} });
    const secret = token("TOKEN");
    const cordon = makeCordon(runRoot);
    let refused = 0;
    try {
      for (let i = 0; i < 8; i++) {
        try {
          await cordon.run({ runner: "shell", script: { source: "echo RAN" }, args: [], secretEnv: { TOKEN: secret }, policy: BASE_POLICY });
        } catch (e) {
          if (e instanceof CordonError) refused++;
        }
      }
    } finally {
      attacker.kill();
      await attacker.exited;
    }
    const leaked = existsSync(loot) ? readFileSync(loot, "utf8") : "";
    expect(leaked.includes(secret)).toBe(false);
    expect(readFileSync(victim, "utf8")).toBe("precious\n");
    expect(mountsUnder(parent)).toEqual([]);
    expect(refused).toBe(8);
  });

  test("a configured run root another user swaps for a symlink while runs go on is refused, not followed", async () => {
    // The supervisor's own run root, in a directory another user can rename entries of (0777, not sticky).
    const shared = tempDir("rr-swap", 0o777);
    const runRoot = join(shared, "runs");
    const decoy = join(tempDir("rr-decoy", 0o777), "runs");
    mkdirSync(decoy);
    chmodSync(decoy, 0o777);
    chownSync(decoy, OTHER!, OTHER!);
    const flipper = await startFlipper(runRoot, decoy, { uid: OTHER!, gid: OTHER! });
    try {
      await refusal(makeCordon(runRoot));
    } finally {
      await flipper.stop();
    }
    expect(readdirSync(decoy).filter((n) => n.startsWith("run-"))).toEqual([]);
  });
});

/**
 * The CLI as another user needs the checkout readable by that user: a clone under a 0700
 * directory (/root) is not. Then the CLI's runtime parts are copied to a readable temp dir.
 * Bun itself must be reachable; if it is not, these tests skip and say why.
 */
function cliCheckout(): string {
  const other = { uid: OTHER!, gid: OTHER! };
  if (firstUnreachableAncestor(join(ROOT, "bin/cordon.ts"), other) === null) return ROOT;
  const copy = tempDir("rr-checkout", 0o755);
  for (const part of ["bin", "src", "plugins", "package.json"]) cpSync(join(ROOT, part), join(copy, part), { recursive: true });
  const devOnly = new Set(["typescript", "@typescript", "bun-types", "@types", ".bin"]);
  for (const dep of readdirSync(join(ROOT, "node_modules")).filter((d) => !devOnly.has(d))) {
    cpSync(join(ROOT, "node_modules", dep), join(copy, "node_modules", dep), { recursive: true });
  }
  return copy;
}
const BUN_BLOCKED = IS_ROOT ? firstUnreachableAncestor(process.execPath, { uid: OTHER!, gid: OTHER! }) : null;
if (BUN_BLOCKED) console.warn(`run-root tests: the unprivileged-CLI cases are skipped: ${BUN_BLOCKED} (on the way to Bun) is not searchable by uid ${OTHER}`);
const CLI_ROOT = IS_ROOT && !BUN_BLOCKED ? cliCheckout() : ROOT;

describe.skipIf(!IS_ROOT || BUN_BLOCKED !== null)("9. the default run root of an unprivileged supervisor (CLI)", () => {
  /** `cordon run` as an unprivileged user, with only the variables given. */
  function cliAs(uid: number, env: Record<string, string>, script: string) {
    const p = Bun.spawnSync(["/usr/bin/setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", process.execPath, join(CLI_ROOT, "bin/cordon.ts"), "run", "--provider", "unsafe", "--policy", policyFile, "--json", script], {
      cwd: CLI_ROOT,
      env: { PATH: "/usr/bin:/bin", ...env },
    });
    return { status: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
  }
  const dir = IS_ROOT ? tempDir("rr-cli", 0o755) : "";
  const policyFile = join(dir, "policy.json");
  const scriptFile = join(dir, "hello.sh");
  if (IS_ROOT) {
    writeFileSync(policyFile, JSON.stringify({ onUnavailable: "degrade" }), { mode: 0o644 });
    writeFileSync(scriptFile, "echo RAN\n", { mode: 0o644 });
  }

  test("a pre-created $TMPDIR/cordon-runs-<uid> owned by another user: refused, with the fix", () => {
    const me = OTHER!;
    const tmp = tempDir("rr-tmp", 0o1777);
    const home = tempDir("rr-home", 0o700);
    chownSync(home, me, me);
    const planted = join(tmp, `cordon-runs-${me}`);
    mkdirSync(planted);
    chmodSync(planted, 0o777); // the other user lets anyone in: a supervisor would happily create its run dirs there
    chownSync(planted, me + 1, me + 1);
    const r = cliAs(me, { HOME: home, TMPDIR: tmp }, scriptFile);
    expect(r.stdout + r.stderr).not.toContain("RAN\n");
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toContain(planted);
    expect(r.stdout + r.stderr).toContain(`owned by uid ${me + 1}`);
    expect(r.stdout + r.stderr).toMatch(/XDG_RUNTIME_DIR|runRoot/); // how to fix it
    expect(readdirSync(planted)).toEqual([]);
  });

  test("$XDG_RUNTIME_DIR is preferred: runs go there, not into the shared temp dir", () => {
    const me = OTHER!;
    const tmp = tempDir("rr-tmp2", 0o1777);
    const home = tempDir("rr-home2", 0o700);
    const xdg = tempDir("rr-xdg", 0o700);
    chownSync(home, me, me);
    chownSync(xdg, me, me);
    const r = cliAs(me, { HOME: home, TMPDIR: tmp, XDG_RUNTIME_DIR: xdg }, scriptFile);
    expect(r.stdout).toContain("RAN");
    expect(existsSync(join(xdg, "cordon"))).toBe(true);
    expect(existsSync(join(tmp, `cordon-runs-${me}`))).toBe(false);
  });
});

/** The other user's side of the rename race (python, as that user). */
const RACER = `
import os, sys, time
root, victim, loot = sys.argv[1], sys.argv[2], sys.argv[3]
seen, looted = set(), set()
while True:
    try:
        names = os.listdir(root)
    except OSError:
        time.sleep(0.001); continue
    for n in names:
        if not n.startswith("run-") or n in seen or n.endswith(".gone"):
            continue
        seen.add(n)
        d = os.path.join(root, n)
        try:
            os.rename(d, d + ".gone")
            os.mkdir(d, 0o777)
            os.mkdir(os.path.join(d, "stage"), 0o777)
            os.mkdir(os.path.join(d, "stage", "job"), 0o777)
            os.mkdir(os.path.join(d, "scratch"), 0o777)
            fd = os.open(os.path.join(d, "launcher-args"), os.O_CREAT | os.O_WRONLY, 0o666)
            os.close(fd)
            os.chmod(os.path.join(d, "launcher-args"), 0o666)
            os.symlink(victim, os.path.join(d, "launcher-status"))
        except OSError:
            pass
    for n in list(seen):
        if n in looted: continue
        p = os.path.join(root, n, "launcher-args")
        try:
            with open(p) as f:
                data = f.read()
            if data:
                looted.add(n)
                with open(loot, "a") as out:
                    out.write(data)
        except OSError:
            pass
`;
