/**
 * The scratch quota's tmpfs, mounted with mount(2) through bun:ffi (no helper process):
 * the options the report states, read from the host's mountinfo; a refused mount is a
 * clear error and nothing runs; a link is never followed; a busy mount is detached.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, mkdirSync, openSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { MiB } from "../src/api/index.ts";
import { MountError, mountTmpfs, unmountIfMounted } from "../src/sandbox/tmpfs-mount.ts";
import { BASE_POLICY, IS_ROOT, describeResult, freshRunRoot, makeCordon, mountsUnder, removeTempDirs, runRootEntries, tempDir, waitFor } from "./support.ts";

afterAll(() => removeTempDirs());

const FIXTURE = resolve(import.meta.dir, "fixtures/run-json.ts");

/** The mountinfo fields of the mount at `path`: fstype, source, per-mount and superblock options. */
function mountAt(path: string): { fstype: string; source: string; mountOptions: string[]; superOptions: string[] } | null {
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [left, right] = line.split(" - ");
    const fields = left?.split(" ") ?? [];
    if (fields[4] !== path || !right) continue;
    const [fstype, source, superOptions] = right.split(" ");
    return { fstype: fstype!, source: source!, mountOptions: fields[5]!.split(","), superOptions: superOptions!.split(",") };
  }
  return null;
}

const rootOnly = IS_ROOT ? test : test.skip;

describe("mountTmpfs / unmountIfMounted", () => {
  rootOnly("mounts a size-capped 0700 nosuid,nodev tmpfs owned by the given ids; unmounts it once", () => {
    const dir = join(tempDir("scratch-mount"), "scratch");
    mkdirSync(dir, { mode: 0o700 });
    mountTmpfs(dir, "cordon-scratch", { sizeBytes: 2 * MiB, mode: 0o700, owner: { uid: 65534, gid: 65534 } });
    try {
      const m = mountAt(dir);
      expect(m).not.toBeNull();
      expect(m!.fstype).toBe("tmpfs");
      expect(m!.source).toBe("cordon-scratch");
      expect(m!.mountOptions).toEqual(expect.arrayContaining(["rw", "nosuid", "nodev"]));
      expect(m!.superOptions).toEqual(expect.arrayContaining(["size=2048k", "mode=700", "uid=65534", "gid=65534"]));
    } finally {
      expect(unmountIfMounted(dir)).toBe(true);
    }
    expect(mountAt(dir)).toBeNull();
    expect(unmountIfMounted(dir)).toBe(false); // nothing mounted: not an error
    expect(unmountIfMounted(join(dir, "missing"))).toBe(false);
  });

  rootOnly("never mounts through a symbolic link in the last component", () => {
    const base = tempDir("scratch-link");
    const target = join(base, "elsewhere");
    mkdirSync(target);
    symlinkSync(target, join(base, "scratch"));
    let error: unknown;
    try {
      mountTmpfs(join(base, "scratch"), "cordon-scratch", { sizeBytes: MiB, mode: 0o700, owner: null });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MountError);
    expect((error as MountError).syscall).toBe("open");
    expect(["ELOOP", "ENOTDIR"]).toContain((error as MountError).errno);
    expect(mountsUnder(base)).toEqual([]);
    expect(unmountIfMounted(join(base, "scratch"))).toBe(false); // UMOUNT_NOFOLLOW: the link is not followed
  });

  test("a missing directory is a MountError naming ENOENT", () => {
    const missing = join(tempDir("scratch-missing"), "nope");
    expect(() => mountTmpfs(missing, "cordon-scratch", { sizeBytes: MiB, mode: 0o700, owner: null })).toThrow(/cannot mount the scratch tmpfs on .*nope: open: ENOENT/);
  });

  rootOnly("a busy mount (a file held open in it) is detached, not left behind", () => {
    const dir = join(tempDir("scratch-busy"), "scratch");
    mkdirSync(dir, { mode: 0o700 });
    mountTmpfs(dir, "cordon-scratch", { sizeBytes: MiB, mode: 0o700, owner: null });
    writeFileSync(join(dir, "held"), "x");
    const fd = openSync(join(dir, "held"), "r");
    try {
      expect(unmountIfMounted(dir)).toBe(true);
      expect(mountAt(dir)).toBeNull();
      expect(readFileSync(`/proc/self/fd/${fd}`, "utf8")).toBe("x"); // the kernel frees it once unused
    } finally {
      closeSync(fd);
    }
  });
});

describe("the scratch quota in a run", () => {
  rootOnly("the run's scratch mount on the host has the options the report states", async () => {
    const runRoot = freshRunRoot();
    const running = makeCordon(runRoot).run({ runner: "shell", script: { source: "sleep 2; echo done" }, args: [], policy: { ...BASE_POLICY, resources: { scratchBytes: 3 * MiB } } });
    let seen: ReturnType<typeof mountAt> = null;
    await waitFor(() => {
      const [mp] = mountsUnder(runRoot);
      seen = mp ? mountAt(mp) : null;
      return seen !== null;
    }, 10_000, 2);
    const r = await running;
    expect(r.stdout, describeResult(r)).toBe("done\n");
    expect(r.sandbox?.layers.resources.controls.scratch).toMatchObject({ status: "enforced", mechanism: `scratch is a tmpfs of ${3 * MiB} bytes` });
    const m = seen as ReturnType<typeof mountAt>;
    expect(m).not.toBeNull();
    expect(m!.fstype).toBe("tmpfs");
    expect(m!.mountOptions).toEqual(expect.arrayContaining(["nosuid", "nodev"]));
    expect(m!.superOptions).toEqual(expect.arrayContaining([`size=${(3 * MiB) / 1024}k`, "mode=700"]));
    expect(m!.superOptions.some((o) => /^uid=\d+$/.test(o) && o !== "uid=0")).toBe(true); // the run's host identity, not root
    expect(mountsUnder(runRoot)).toEqual([]);
    expect(runRootEntries(runRoot)).toEqual([]);
  });

  rootOnly("a refused mount (no CAP_SYS_ADMIN) is a clear sandbox-failed error, and nothing runs", async () => {
    const runRoot = freshRunRoot();
    // A root supervisor without CAP_SYS_ADMIN: still uid 0 (so the plan asks for the quota), but mount(2) is refused.
    const supervisor = Bun.spawn(["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", process.execPath, FIXTURE], {
      stdin: new TextEncoder().encode(JSON.stringify({ runRoot, request: { runner: "shell", script: { source: "echo ran" }, args: [], policy: { ...BASE_POLICY, resources: { scratchBytes: MiB } } } })),
      stdout: "pipe",
      stderr: "pipe",
    });
    const out = JSON.parse(await new Response(supervisor.stdout).text()) as { stdout?: string; thrown?: string };
    await supervisor.exited;
    // Thrown before the spawn, like every setup step that cannot be prepared: no RunResult, no output.
    expect(out.thrown, JSON.stringify(out)).toMatch(/^MountError: cannot mount the scratch tmpfs on \S+\/scratch: mount\(2\): EPERM/);
    expect(out.stdout ?? "").toBe(""); // the script never ran
    expect(mountsUnder(runRoot)).toEqual([]);
    expect(runRootEntries(runRoot)).toEqual([]);
  });
});
