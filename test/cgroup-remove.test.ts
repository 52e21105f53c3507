/**
 * Removing a run cgroup after the run: an empty one is removed without the v1 freeze (a
 * freeze and thaw cost ~8 ms of CPU even on an empty cgroup), and one that still holds a live
 * task or thread still has it killed before the directories go. Not timed: only what is left.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { createRunCgroup, detectCgroups } from "../src/cgroup/index.ts";
import { joinCgroupArgv } from "../src/sandbox/cgroup-run.ts";

const PARENT = `cordon-remove-test-${process.pid}`;
const facts = detectCgroups(PARENT);
const usable = process.getuid?.() === 0 && facts.problem === null;
const LIMITS = { memoryBytes: 64 << 20, pidsMax: 8, cpuPercent: null };

afterAll(() => {
  if (!usable) return;
  for (const site of new Set(Object.values(facts.controllers).map((s) => s.mount))) {
    const dir = join(site, PARENT);
    if (existsSync(dir)) rmdirSync(dir);
  }
});

test.skipIf(!usable)("an empty run cgroup is removed from every hierarchy", async () => {
  const cg = await createRunCgroup(facts, PARENT, "run-1-empty", LIMITS);
  expect(cg.directories.every((d) => existsSync(d))).toBe(true);
  await cg.remove();
  expect(cg.directories.filter((d) => existsSync(d))).toEqual([]);
});

test.skipIf(!usable)("a run cgroup that still holds a task has it killed, then is removed", async () => {
  const cg = await createRunCgroup(facts, PARENT, "run-2-busy", LIMITS);
  const proc = Bun.spawn(joinCgroupArgv(cg.procsFiles, ["sleep", "60"]), { stdio: ["ignore", "ignore", "ignore"] });
  const listed = () => cg.procsFiles.every((f) => readFileSync(f, "utf8").trim() !== "");
  for (let i = 0; i < 200 && !listed(); i++) await Bun.sleep(10);
  expect(listed()).toBe(true);
  await cg.remove();
  expect(await proc.exited).not.toBe(0);
  expect(proc.signalCode).toBe("SIGKILL");
  expect(cg.directories.filter((d) => existsSync(d))).toEqual([]);
});

test.skipIf(!usable)("a process whose main thread exited while another thread runs is killed, then the cgroup is removed", async () => {
  const cg = await createRunCgroup(facts, PARENT, "run-3-threads", LIMITS);
  // The main thread leaves with pthread_exit: cgroup.procs lists a zombie leader, the sleeping thread lives on.
  const script = "import threading, time, ctypes; threading.Thread(target=time.sleep, args=(60,)).start(); time.sleep(0.1); ctypes.CDLL(None).pthread_exit(None)";
  const proc = Bun.spawn(joinCgroupArgv(cg.procsFiles, ["python3", "-c", script]), { stdio: ["ignore", "ignore", "ignore"] });
  const leaderState = () => /^State:\s+(\S)/m.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))?.[1];
  for (let i = 0; i < 300 && leaderState() !== "Z"; i++) await Bun.sleep(10);
  expect(leaderState()).toBe("Z");
  await cg.remove();
  expect(await proc.exited).not.toBe(0);
  expect(cg.directories.filter((d) => existsSync(d))).toEqual([]);
});
