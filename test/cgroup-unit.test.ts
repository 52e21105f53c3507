/**
 * The cgroup layer's logic against directories laid out like cgroupfs (v2 and v1), so the
 * v2 path is exercised on this hybrid-v1 host too. Real cgroups are in test/cgroup.test.ts.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRunCgroup, detectCgroups, listRunCgroups, locateControllers, parseCgroupMounts, type CgroupFacts } from "../src/cgroup/index.ts";

const HYBRID = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 30 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 30 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 30 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`;
const PURE_V2 = "25 1 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot";

let dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "cordon-cgfs-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe("cgroup detection (pure)", () => {
  test("hybrid: memory and pids from v1 because the v2 mount has no such controllers", () => {
    const mounts = parseCgroupMounts(HYBRID);
    expect(mounts.map((m) => m.type)).toEqual(["cgroup", "cgroup", "cgroup", "cgroup", "cgroup", "cgroup2"]);
    const sites = locateControllers(mounts, () => []);
    expect(sites.memory).toEqual({ version: 1, mount: "/sys/fs/cgroup/memory" });
    expect(sites.pids).toEqual({ version: 1, mount: "/sys/fs/cgroup/pids" });
    expect(sites.freezer?.version).toBe(1);
  });

  test("pure v2: every controller from the unified mount; cpuacct and freezer come with cpu", () => {
    const sites = locateControllers(parseCgroupMounts(PURE_V2), () => ["cpuset", "cpu", "io", "memory", "pids"]);
    for (const c of ["memory", "pids", "cpu", "cpuacct", "freezer"] as const) expect(sites[c]).toEqual({ version: 2, mount: "/sys/fs/cgroup" });
  });

  test("v2 without memory delegated: memory is missing and the problem says how to fix it", () => {
    const facts = detectCgroups("cordon", PURE_V2.replace("/sys/fs/cgroup", tempDir()));
    expect(facts.controllers.memory).toBeUndefined();
    expect(facts.problem).toContain("subtree_control");
  });

  test("no cgroup mounts at all", () => {
    const facts = detectCgroups("cordon", "22 1 0:5 / /proc rw - proc proc rw");
    expect(facts.layout).toBe("none");
    expect(facts.problem).toBe("no cgroup filesystem is mounted");
  });
});

/** A v2 root as the kernel shows it: controllers listed, subtree_control writable. */
function fakeV2Root(): string {
  const root = tempDir();
  writeFileSync(join(root, "cgroup.controllers"), "cpu memory pids\n");
  writeFileSync(join(root, "cgroup.subtree_control"), "");
  return root;
}

function v2Facts(root: string): CgroupFacts {
  const site = { version: 2 as const, mount: root };
  return { layout: "v2", controllers: { memory: site, pids: site, cpu: site, cpuacct: site, freezer: site }, writable: true, problem: null };
}

describe("cgroup v2 per-run directory (fake cgroupfs)", () => {
  test("limits: memory.max, swap off, pids.max, cpu.max; controllers enabled down to the parent", async () => {
    const root = fakeV2Root();
    mkdirSync(join(root, "cordon"));
    writeFileSync(join(root, "cordon", "cgroup.controllers"), "cpu memory pids\n");
    // The kernel creates these files in a new cgroup; the fake needs them for swap to be set.
    const run = join(root, "cordon", "run-1-a");
    const cg = await createRunCgroup(v2Facts(root), "cordon", "run-1-a", { memoryBytes: 256 << 20, pidsMax: 32, cpuPercent: 50 });
    expect(cg.procsFiles).toEqual([join(run, "cgroup.procs")]);
    expect(readFileSync(join(run, "memory.max"), "utf8")).toBe(String(256 << 20));
    expect(readFileSync(join(run, "pids.max"), "utf8")).toBe("32");
    expect(readFileSync(join(run, "cpu.max"), "utf8")).toBe("50000 100000");
    expect(readFileSync(join(root, "cgroup.subtree_control"), "utf8")).toBe("+memory +pids +cpu");
    expect(readFileSync(join(root, "cordon", "cgroup.subtree_control"), "utf8")).toBe("+memory +pids +cpu");
  });

  test("events and statistics are read from the kernel's files", async () => {
    const root = fakeV2Root();
    const cg = await createRunCgroup(v2Facts(root), "cordon", "run-2-b", { memoryBytes: 1 << 30, pidsMax: 8, cpuPercent: null });
    const run = cg.directories[0]!;
    expect(existsSync(join(run, "cpu.max"))).toBe(false);
    writeFileSync(join(run, "memory.events"), "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n");
    writeFileSync(join(run, "pids.events"), "max 3\n");
    writeFileSync(join(run, "memory.peak"), "123456789\n");
    writeFileSync(join(run, "pids.peak"), "8\n");
    writeFileSync(join(run, "cpu.stat"), "usage_usec 3500\nuser_usec 2000\nsystem_usec 1500\n");
    expect(cg.events()).toEqual({ oomKilled: true, pidsLimitHit: true });
    expect(cg.stats()).toEqual({ peakMemoryBytes: 123456789, cpuUserMs: 2, cpuSystemMs: 2, peakProcesses: 8 });
  });

  test("no OOM and no pids event when the counters are zero", async () => {
    const root = fakeV2Root();
    const cg = await createRunCgroup(v2Facts(root), "cordon", "run-3-c", { memoryBytes: 1 << 30, pidsMax: 8, cpuPercent: null });
    writeFileSync(join(cg.directories[0]!, "memory.events"), "oom 0\noom_kill 0\n");
    writeFileSync(join(cg.directories[0]!, "pids.events"), "max 0\n");
    expect(cg.events()).toEqual({ oomKilled: false, pidsLimitHit: false });
  });

  test("kill writes cgroup.kill; stale run cgroups are listed by name", async () => {
    const root = fakeV2Root();
    const cg = await createRunCgroup(v2Facts(root), "cordon", "run-4-d", { memoryBytes: 1 << 30, pidsMax: 8, cpuPercent: null });
    writeFileSync(join(cg.directories[0]!, "cgroup.kill"), "");
    cg.killAll();
    expect(readFileSync(join(cg.directories[0]!, "cgroup.kill"), "utf8")).toBe("1");
    expect(listRunCgroups(v2Facts(root), "cordon").map((r) => r.name)).toEqual(["run-4-d"]);
  });
});
