/**
 * Issue 17 item 11: a read-only bind must not hand the sandbox what a stated control keeps
 * from it. `/proc` (host processes), `/sys`, `/dev`, the run root (other runs' scratch), any
 * directory holding one of them (`/`), and a symlink leading to one are refused before
 * anything is created or spawned, with a typed policy error naming the bind.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { PolicyValidationError, type PolicyOverride } from "../src/api/index.ts";
import { BASE_POLICY, caught, freshRunRoot, makeCordon, removeTempDirs, runRootEntries, tempDir, token } from "./support.ts";

const ROOT = resolve(import.meta.dir, "..");
afterAll(removeTempDirs);

/** Lists what the bind shows: host pids under /proc would be numbers the sandbox's own /proc lacks. */
const PEEK = "ls -a /peek | head -n 50; echo RAN";

async function expectRefused(bind: { source: string; target: string }, opts: { runRoot?: string; provider?: string; policy?: PolicyOverride } = {}): Promise<PolicyValidationError> {
  const runRoot = opts.runRoot ?? freshRunRoot();
  const cordon = makeCordon(runRoot);
  const before = runRootEntries(runRoot);
  const policy: PolicyOverride = { ...(opts.policy ?? BASE_POLICY), filesystem: { readOnlyBinds: [bind] } };
  const err = await caught(() => cordon.run({ runner: "shell", provider: opts.provider ?? "bwrap", script: { source: PEEK }, args: [], policy }));
  expect(err).toBeInstanceOf(PolicyValidationError);
  const e = err as PolicyValidationError;
  expect(e.code).toBe("invalid-policy");
  expect(e.issues[0]?.path).toBe("filesystem.readOnlyBinds.0.source");
  expect(e.message).toContain(bind.source);
  expect(runRootEntries(runRoot)).toEqual(before); // no run dir was created, so nothing was spawned
  return e;
}

describe("11. bind sources that break a stated control are refused (typed policy error, nothing spawned)", () => {
  for (const [source, what] of [
    ["/proc", "host processes"],
    ["/proc/1/root", "host processes"],
    ["/sys", "the host's /sys"],
    ["/sys/fs/cgroup", "the host's /sys"],
    ["/dev", "host devices"],
    ["/", "contains /proc"],
  ] as const) {
    test(`${source} (${what})`, async () => {
      await expectRefused({ source, target: "/peek" });
    });
  }

  test("a symlink that resolves to /proc", async () => {
    const dir = tempDir("bind-link", 0o755);
    symlinkSync("/proc", join(dir, "innocent"));
    const e = await expectRefused({ source: join(dir, "innocent"), target: "/peek" });
    expect(e.message).toContain("/proc");
  });

  test("a symlink to a directory that contains /proc (/ by another name)", async () => {
    const dir = tempDir("bind-link-root", 0o755);
    symlinkSync("/", join(dir, "everything"));
    await expectRefused({ source: join(dir, "everything"), target: "/peek" });
  });

  test("the run root itself, a directory inside it and one holding it (other runs' scratch)", async () => {
    const runRoot = freshRunRoot();
    mkdirSync(runRoot, { mode: 0o711 });
    mkdirSync(join(runRoot, "inside"));
    for (const source of [runRoot, join(runRoot, "inside"), dirname(runRoot)]) {
      const e = await expectRefused({ source, target: "/peek" }, { runRoot });
      expect(e.message).toContain("run root");
    }
  });

  test("the unsafe provider refuses them too (the policy is wrong whatever runs it)", async () => {
    await expectRefused({ source: "/proc", target: "/peek" }, { provider: "unsafe", policy: { onUnavailable: "degrade" } });
  });

  test("an ordinary directory, and a symlink to one, still bind (the symlink is bound by its real path)", async () => {
    const dir = tempDir("bind-ok", 0o755);
    const marker = token("bound");
    writeFileSync(join(dir, marker), "x", { mode: 0o644 });
    const links = tempDir("bind-ok-link", 0o755);
    symlinkSync(dir, join(links, "alias"));
    for (const source of [dir, join(links, "alias")]) {
      const r = await makeCordon().run({ runner: "shell", script: { source: PEEK }, args: [], policy: { ...BASE_POLICY, filesystem: { readOnlyBinds: [{ source, target: "/peek" }] } } });
      expect(r.outcome).toBe("ok");
      expect(r.stdout).toContain(marker);
      expect(r.sandbox!.layers.env.controls.hostProcesses?.status).toBe("enforced");
    }
  });

  test("CLI: `cordon run --policy` with a /proc bind exits with the bad-input status and lists nothing", () => {
    const dir = tempDir("bind-cli", 0o755);
    const policy = join(dir, "policy.json");
    const script = join(dir, "peek.sh");
    writeFileSync(policy, JSON.stringify({ ...BASE_POLICY, filesystem: { readOnlyBinds: [{ source: "/proc", target: "/peek" }] } }));
    writeFileSync(script, `${PEEK}\n`);
    const p = Bun.spawnSync([process.execPath, join(ROOT, "bin/cordon.ts"), "run", "--config", writeConfig(dir), "--policy", policy, script], { cwd: ROOT, env: { ...process.env } });
    const out = p.stdout.toString() + p.stderr.toString();
    expect(out).not.toContain("RAN");
    expect(out).toContain("/proc");
    expect(out).toContain("filesystem.readOnlyBinds.0.source");
    expect(p.exitCode).toBe(126);
  });
});

function writeConfig(dir: string): string {
  const file = join(dir, "config.json");
  if (!existsSync(file)) writeFileSync(file, JSON.stringify({ runRoot: freshRunRoot("cli") }));
  return file;
}

