/**
 * One run's cgroup(s): created with the caps before the spawn, joined by a tiny launcher
 * before anything untrusted runs, read for OOM/pids events and statistics after, removed
 * whatever happened. v1 needs one directory per hierarchy; v2 one directory for all.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { killQuietly } from "../process.ts";
import type { CgroupFacts, Controller, ControllerSite } from "./detect.ts";

export interface CgroupLimits {
  memoryBytes: number;
  pidsMax: number;
  /** CPU bandwidth in percent of one CPU (100 = one full core), or null for none. */
  cpuPercent: number | null;
}

export interface CgroupEvents {
  oomKilled: boolean;
  pidsLimitHit: boolean;
}

export interface CgroupStats {
  peakMemoryBytes: number | null;
  cpuUserMs: number | null;
  cpuSystemMs: number | null;
  peakProcesses: number | null;
}

export interface RunCgroup {
  /** cgroup.procs files the launcher writes its own pid to before it execs the sandbox. */
  readonly procsFiles: string[];
  readonly directories: string[];
  /** Kill every process in the cgroup now (v2 cgroup.kill; v1 freeze, SIGKILL each, thaw). */
  killAll(): void;
  events(): CgroupEvents;
  stats(): CgroupStats;
  /** Remove the directories once empty; kills stragglers first. */
  remove(): Promise<void>;
}

const read = (path: string): string | null => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
};
const readNumber = (path: string): number | null => {
  const text = read(path)?.trim();
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : null;
};
/** A "key value" line from a flat-keyed file (memory.events, cpu.stat, oom_control). */
const keyed = (text: string | null, key: string): number | null => {
  const m = text && new RegExp(`^${key} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : null;
};

function pidsIn(dir: string): number[] {
  return (read(join(dir, "cgroup.procs")) ?? "").split("\n").filter(Boolean).map(Number);
}

/** SIGKILL every process listed in the cgroup now. */
function killListed(dir: string): void {
  for (const pid of pidsIn(dir)) killQuietly(pid);
}

/** Every thread in a v1 cgroup (its `tasks` file): a process whose main thread exited lists as a zombie in cgroup.procs while its other threads run. */
function threadsIn(dir: string): number[] {
  return (read(join(dir, "tasks")) ?? "").split("\n").filter(Boolean).map(Number);
}

/** PF_EXITING in /proc/PID/stat's flags: the task is inside exit(), it runs no more user code and forks nothing. */
const PF_EXITING = 0x4;

/** The thread is gone, a zombie, or exiting: nothing to stop (read from the kernel's process table). */
function exitingOrGone(tid: number): boolean {
  const stat = read(`/proc/${tid}/stat`);
  if (stat === null) return true;
  const [state, , , , , , flags] = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields 3..9
  return state === "Z" || state === "X" || (Number(flags) & PF_EXITING) !== 0;
}

/** How long removeDir waits for the last tasks to finish exiting, and how often it tries. */
const REMOVE_BUDGET_MS = 500;
const REMOVE_RETRY_MS = 2;

/**
 * rmdir fails with EBUSY until the last task has left (a sandbox's init tearing down its
 * namespaces takes a few ms after the launcher exited): retry often, briefly, killing
 * whatever is listed before each retry.
 */
async function removeDir(dir: string): Promise<void> {
  const deadline = performance.now() + REMOVE_BUDGET_MS;
  while (existsSync(dir)) {
    try {
      rmdirSync(dir);
      return;
    } catch {
      if (performance.now() > deadline) break;
      killListed(dir);
      await Bun.sleep(REMOVE_RETRY_MS);
    }
  }
  if (existsSync(dir)) throw new Error(`cannot remove cgroup ${dir}: it still has processes`);
}

class V2RunCgroup implements RunCgroup {
  readonly procsFiles: string[];
  readonly directories: string[];

  constructor(private readonly dir: string) {
    this.procsFiles = [join(dir, "cgroup.procs")];
    this.directories = [dir];
  }

  killAll(): void {
    if (existsSync(join(this.dir, "cgroup.kill"))) writeFileSync(join(this.dir, "cgroup.kill"), "1");
    else killListed(this.dir);
  }

  events(): CgroupEvents {
    return {
      oomKilled: (keyed(read(join(this.dir, "memory.events")), "oom_kill") ?? 0) > 0,
      pidsLimitHit: (keyed(read(join(this.dir, "pids.events")), "max") ?? 0) > 0,
    };
  }

  stats(): CgroupStats {
    const cpu = read(join(this.dir, "cpu.stat"));
    const usec = (key: string) => {
      const v = keyed(cpu, key);
      return v === null ? null : Math.round(v / 1000);
    };
    return {
      peakMemoryBytes: readNumber(join(this.dir, "memory.peak")),
      cpuUserMs: usec("user_usec"),
      cpuSystemMs: usec("system_usec"),
      peakProcesses: readNumber(join(this.dir, "pids.peak")),
    };
  }

  async remove(): Promise<void> {
    this.killAll();
    await removeDir(this.dir);
  }
}

class V1RunCgroup implements RunCgroup {
  readonly procsFiles: string[];
  readonly directories: string[];

  constructor(private readonly dirs: Partial<Record<Controller, string>>) {
    this.directories = [...new Set(Object.values(dirs))];
    this.procsFiles = this.directories.map((d) => join(d, "cgroup.procs"));
  }

  private file(controller: Controller, name: string): string | null {
    const dir = this.dirs[controller];
    return dir ? join(dir, name) : null;
  }

  /**
   * Freeze first so nothing forks while the list is being killed. An empty cgroup is left
   * alone: nothing can join it but a task of it (or root writing its procs file), and
   * freezing costs a wait on the freezer (most runs end with their cgroup empty already).
   */
  killAll(): void {
    const state = this.file("freezer", "freezer.state");
    const any = this.directories[0];
    if (!any) return;
    if (this.directories.every((dir) => pidsIn(dir).length === 0)) return;
    if (state) writeFileSync(state, "FROZEN");
    try {
      killListed(this.dirs.freezer ?? this.dirs.pids ?? any);
    } finally {
      if (state) writeFileSync(state, "THAWED"); // SIGKILL is delivered on thaw
    }
  }

  events(): CgroupEvents {
    const oomControl = read(this.file("memory", "memory.oom_control") ?? "");
    const fails = readNumber(this.file("memory", "memory.failcnt") ?? "");
    const oomKills = keyed(oomControl, "oom_kill");
    return {
      // Modern kernels count OOM kills; older ones only count hits on the limit.
      oomKilled: oomKills !== null ? oomKills > 0 : (fails ?? 0) > 0,
      pidsLimitHit: (keyed(read(this.file("pids", "pids.events") ?? ""), "max") ?? 0) > 0,
    };
  }

  stats(): CgroupStats {
    const ns = (name: string) => {
      const v = readNumber(this.file("cpuacct", name) ?? "");
      return v === null ? null : Math.round(v / 1e6);
    };
    return {
      peakMemoryBytes: readNumber(this.file("memory", "memory.max_usage_in_bytes") ?? ""),
      cpuUserMs: ns("cpuacct.usage_user"),
      cpuSystemMs: ns("cpuacct.usage_sys"),
      peakProcesses: readNumber(this.file("pids", "pids.peak") ?? ""),
    };
  }

  /**
   * After the run the launcher is gone and, with a pid namespace, every task of the run is
   * dead or still exiting (the sandbox's init tears down its namespaces for a few ms). A
   * freeze and thaw costs ~8 ms of CPU on v1 even then (measured on these hosts: most of a
   * finished run's cleanup), and stops nothing that could still act: an exiting thread forks
   * nothing, and an empty cgroup gains no task (only a task inside forks into it). So freeze
   * and kill only when a listed thread is alive and not exiting (every thread, not only each
   * process's main one); removeDir kills anything listed before each retry anyway.
   */
  async remove(): Promise<void> {
    if (this.directories.some((dir) => threadsIn(dir).some((tid) => !exitingOrGone(tid)))) this.killAll();
    for (const dir of this.directories) await removeDir(dir);
  }
}

const CPU_PERIOD_US = 100_000;

function writeV2Limits(dir: string, limits: CgroupLimits, site: (c: Controller) => boolean): void {
  if (site("memory")) {
    writeFileSync(join(dir, "memory.max"), String(limits.memoryBytes));
    if (existsSync(join(dir, "memory.swap.max"))) writeFileSync(join(dir, "memory.swap.max"), "0");
  }
  if (site("pids")) writeFileSync(join(dir, "pids.max"), String(limits.pidsMax));
  if (site("cpu") && limits.cpuPercent !== null) writeFileSync(join(dir, "cpu.max"), `${Math.round((CPU_PERIOD_US * limits.cpuPercent) / 100)} ${CPU_PERIOD_US}`);
}

function writeV1Limits(dirs: Partial<Record<Controller, string>>, limits: CgroupLimits): void {
  if (dirs.memory) {
    writeFileSync(join(dirs.memory, "memory.limit_in_bytes"), String(limits.memoryBytes));
    // memsw = memory: no swap on top of the cap (only present with swap accounting).
    const memsw = join(dirs.memory, "memory.memsw.limit_in_bytes");
    if (existsSync(memsw)) writeFileSync(memsw, String(limits.memoryBytes));
  }
  if (dirs.pids) writeFileSync(join(dirs.pids, "pids.max"), String(limits.pidsMax));
  if (dirs.cpu && limits.cpuPercent !== null) {
    writeFileSync(join(dirs.cpu, "cpu.cfs_period_us"), String(CPU_PERIOD_US));
    writeFileSync(join(dirs.cpu, "cpu.cfs_quota_us"), String(Math.round((CPU_PERIOD_US * limits.cpuPercent) / 100)));
  }
}

/** v2 parents pass controllers to children only when told, at every level down to `parent`. */
function enableV2Controllers(mount: string, parent: string, wanted: string[]): void {
  const parts = parent.split("/").filter(Boolean);
  for (let depth = 0; depth <= parts.length; depth++) {
    const dir = join(mount, ...parts.slice(0, depth));
    mkdirSync(dir, { recursive: true });
    const available = (read(join(dir, "cgroup.controllers")) ?? "").split(/\s+/);
    const enable = wanted.filter((c) => available.includes(c)).map((c) => `+${c}`);
    if (enable.length) writeFileSync(join(dir, "cgroup.subtree_control"), enable.join(" "));
  }
}

/**
 * Create the run's cgroup under `parent` with `limits`. On a failure half-way, what was
 * created is removed before the error propagates (nothing is left behind).
 */
export async function createRunCgroup(facts: CgroupFacts, parent: string, name: string, limits: CgroupLimits): Promise<RunCgroup> {
  const sites = facts.controllers;
  const memory = sites.memory;
  if (memory?.version === 2) {
    const dir = join(memory.mount, parent, name);
    const here = (c: Controller) => (sites[c] as ControllerSite | undefined)?.version === 2;
    enableV2Controllers(memory.mount, parent, ["memory", "pids", "cpu"]);
    mkdirSync(dir);
    const cg = new V2RunCgroup(dir);
    try {
      writeV2Limits(dir, limits, here);
    } catch (e) {
      await cg.remove();
      throw e;
    }
    return cg;
  }
  const dirs: Partial<Record<Controller, string>> = {};
  for (const [controller, site] of Object.entries(sites) as [Controller, ControllerSite][]) {
    if (site.version === 1) dirs[controller] = join(site.mount, parent, name);
  }
  const cg = new V1RunCgroup(dirs);
  try {
    for (const dir of cg.directories) mkdirSync(dir, { recursive: true });
    writeV1Limits(dirs, limits);
  } catch (e) {
    await cg.remove();
    throw e;
  }
  return cg;
}

/** Names of run cgroups under `parent` in every hierarchy (for stale cleanup). */
export function listRunCgroups(facts: CgroupFacts, parent: string): { name: string; dirs: string[] }[] {
  const byName = new Map<string, string[]>();
  for (const mount of new Set(Object.values(facts.controllers).map((s) => s.mount))) {
    const base = join(mount, parent);
    if (!existsSync(base)) continue;
    for (const entry of readdirSync(base, { withFileTypes: true })) {
      if (!entry.isDirectory() || !entry.name.startsWith("run-")) continue;
      byName.set(entry.name, [...(byName.get(entry.name) ?? []), join(base, entry.name)]);
    }
  }
  return [...byName].map(([name, dirs]) => ({ name, dirs }));
}

/**
 * Remove a run cgroup left by a dead supervisor: kill what is inside, then rmdir. A v1
 * freezer is thawed first: a supervisor that died inside killAll (between freeze and
 * thaw) left the run FROZEN, where a SIGKILL stays pending and nothing ever exits.
 */
export async function removeStaleCgroup(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    const state = join(dir, "freezer.state");
    if (existsSync(state)) writeFileSync(state, "THAWED");
  }
  for (const dir of dirs) {
    killListed(dir);
    await removeDir(dir);
  }
}
