/**
 * Spawn: start the plan's ONE argv with the protocol's fds (src/protocol/index.ts). A blocking
 * launcher then holds the command until release.ts lets it go, so spawning is the half of
 * a run that can happen early (a warm pool): nothing untrusted runs until the release.
 */
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import type { RunCgroup } from "../cgroup/index.ts";
import { hasChildren, killQuietly, parentOf } from "../process.ts";
import { joinFreshSessionKeyring } from "../keyring.ts";
import { BLOCK_FD, JOB_FD, LAUNCHER_ARGS_FD, LAUNCHER_STATUS_FD, RESULT_FD, SECCOMP_FD } from "../protocol/index.ts";
import { joinCgroupArgv } from "./cgroup-run.ts";
import { readLaunchStatus, type LaunchStatus } from "../protocol/launch-status.ts";
import { openExclusive, writeExclusive } from "./run-root.ts";
import type { SpawnPlan, Workspace } from "./spec.ts";

type StdioSlot = "pipe" | "ignore" | number;
type Launcher = ReturnType<typeof Bun.spawn>;

/** Launcher arguments go in a 0600 file in the (root-only) run dir, opened for the child as LAUNCHER_ARGS_FD. */
function openLauncherArgs(plan: SpawnPlan, workspace: Workspace): number | null {
  if (!plan.launcherArgs) return null;
  const path = join(workspace.root, "launcher-args");
  writeExclusive(path, plan.launcherArgs.map((a) => `${a}\0`).join(""), 0o600); // a fresh file: nothing planted is reused
  return openSync(path, "r");
}

/** The syscall filter's BPF program, likewise a fresh 0600 file opened for the child as SECCOMP_FD (read once, from offset 0). */
function openSeccompFilter(plan: SpawnPlan, workspace: Workspace): number | null {
  if (!plan.seccompBpf) return null;
  const path = join(workspace.root, "seccomp.bpf");
  writeExclusive(path, plan.seccompBpf, 0o600);
  return openSync(path, "r");
}

/** The launcher's stdio, each slot at the fd number the protocol gives it. */
function launcherStdio(stdin: boolean, statusFd: number | null, argsFd: number | null, block: boolean, seccompFd: number | null, handOver: boolean): StdioSlot[] {
  const slots: StdioSlot[] = [stdin ? "pipe" : "ignore", "pipe", "pipe"];
  const extra: [number, StdioSlot][] = [
    [LAUNCHER_STATUS_FD, statusFd ?? "ignore"],
    [RESULT_FD, "pipe"],
    [LAUNCHER_ARGS_FD, argsFd ?? "ignore"],
    [BLOCK_FD, block ? "pipe" : "ignore"],
    [SECCOMP_FD, seccompFd ?? "ignore"],
    ...(handOver ? ([[JOB_FD, "pipe"]] as [number, StdioSlot][]) : []),
  ];
  for (const [fd, slot] of extra) {
    while (slots.length < fd) slots.push("ignore");
    slots[fd] = slot;
  }
  return slots;
}

/** A spawned launcher: its process, its protocol fds, and the one way to end its whole tree. */
export class SpawnedLauncher {
  private killed = false;
  private blockFdClosed = false;
  private jobFdClosed = false;
  /** performance.now() when the run's clock started: the spawn, or a warm sandbox's hand-over (restartClock). */
  startedMs: number;

  constructor(
    readonly plan: SpawnPlan,
    readonly proc: Launcher,
    /** The run's cgroup, joined before the sandbox was exec'd: every task of the run is in it. */
    readonly cgroup: RunCgroup | null,
    private readonly statusPath: string | null,
    /** performance.now() just before the spawn: the run's duration counts from here. */
    readonly spawnedMs: number,
  ) {
    this.startedMs = spawnedMs;
  }

  /** A warm sandbox starts its run at the hand-over: the wall clock and the duration count from now. */
  restartClock(): void {
    this.startedMs = performance.now();
  }

  /** The supervisor's end of JOB_FD (a warm sandbox's hand-over), or null when spawned without one. */
  get jobFd(): number | null {
    const fd = this.proc.stdio[JOB_FD];
    return typeof fd === "number" ? fd : null;
  }

  /** The supervisor's end of the result channel (RESULT_FD in the launcher). */
  get channelFd(): number {
    const fd = this.proc.stdio[RESULT_FD];
    if (typeof fd !== "number") throw new Error("the result channel pipe was not created");
    return fd;
  }

  /** The supervisor's end of BLOCK_FD, or null when the launcher does not hold the command. */
  get blockFd(): number | null {
    const fd = this.plan.blockFd ? this.proc.stdio[BLOCK_FD] : null;
    return typeof fd === "number" ? fd : null;
  }

  /** What the launcher's status fd says now; null when this launcher has none. */
  status(): LaunchStatus | null {
    return this.statusPath && this.plan.statusFd ? readLaunchStatus(this.plan.statusFd, this.statusPath) : null;
  }

  /** Held at --block-fd, bwrap's init has not forked the command: a child means it did not wait (read from the kernel's process list, which the script cannot write). */
  commandHeldBack(): boolean {
    const init = this.status()?.childPid ?? null;
    return init !== null && !hasChildren(init, true);
  }

  /** The supervisor killed the tree (wall, output, OOM watch, a failed setup). */
  get treeKilled(): boolean {
    return this.killed;
  }

  /**
   * Kill every process of the run, once. With a pid namespace, SIGKILL to its init makes
   * the kernel kill all the namespace's processes before init is reaped, so once the
   * launcher exits nothing of the run survives (setsid and double forks included).
   */
  killTree(): void {
    if (this.killed) return;
    this.killed = true;
    const launcherPid = this.proc.pid;
    this.cgroup?.killAll(); // every task of the run, wherever it went
    if (this.plan.treeKill === "pid-namespace" && this.plan.statusFd) {
      const init = this.status()?.childPid ?? null;
      if (init !== null && parentOf(init) === launcherPid) killQuietly(init);
    } else {
      killQuietly(-launcherPid);
    }
    killQuietly(launcherPid);
  }

  /** Close the hand-over fd, once: after the hand-over (the waiter reads to EOF), or when the sandbox is destroyed unused. */
  closeJobFd(): void {
    const fd = this.jobFd;
    if (fd === null || this.jobFdClosed) return;
    this.jobFdClosed = true;
    closeSync(fd);
  }

  /** After the launcher is gone: close the release fd (on a live launcher its EOF would be a release). */
  closeBlockFd(): void {
    const fd = this.blockFd;
    if (fd === null || this.blockFdClosed) return; // once: a number closed twice may be another's fd by then
    this.blockFdClosed = true;
    closeSync(fd);
  }
}

/**
 * Spawn the plan's argv (behind the cgroup join when the run has a cgroup) with the
 * protocol's fds: the status file (O_EXCL|O_NOFOLLOW: never through a planted link), the
 * result pipe, the launcher-args file and the release pipe.
 */
export function spawnLauncher(plan: SpawnPlan, workspace: Workspace, options: { stdin: boolean; cgroup: RunCgroup | null; beforeSpawn?: (() => void) | undefined; handOver?: boolean }): SpawnedLauncher {
  const statusPath = plan.statusFd ? join(workspace.root, "launcher-status") : null;
  const statusFd = statusPath ? openExclusive(statusPath, 0o600) : null;
  let argsFd: number | null = null;
  let seccompFd: number | null = null;
  try {
    argsFd = openLauncherArgs(plan, workspace);
    seccompFd = openSeccompFilter(plan, workspace);
    options.beforeSpawn?.();
    // The child inherits this thread's session keyring: a new one per run, joined right before the spawn.
    if (plan.freshKeyring) joinFreshSessionKeyring();
    const startedMs = performance.now();
    // The join shell writes the cgroup's procs files as the supervisor: it cannot run as the host identity.
    if (options.cgroup && plan.spawnAs) throw new Error("a launcher spawned as the host identity cannot join the run cgroup");
    const argv = options.cgroup ? joinCgroupArgv(options.cgroup.procsFiles, plan.argv) : plan.argv;
    const proc = Bun.spawn(argv, {
      ...(plan.spawnAs ? { uid: plan.spawnAs.uid, gid: plan.spawnAs.gid } : {}),
      env: plan.env,
      cwd: plan.cwd,
      stdio: launcherStdio(options.stdin, statusFd, argsFd, plan.blockFd === true, seccompFd, options.handOver === true) as NonNullable<Parameters<typeof Bun.spawn>[1]>["stdio"],
    });
    return new SpawnedLauncher(plan, proc, options.cgroup, statusPath, startedMs);
  } finally {
    if (statusFd !== null) closeSync(statusFd); // the child holds its own copy
    if (argsFd !== null) closeSync(argsFd);
    if (seccompFd !== null) closeSync(seccompFd);
  }
}
