/**
 * The raw-rendered baseline: the exact command cordon renders for a run (plan.argv behind
 * the cgroup join, with its launcher-args file, syscall filter, status file, run directory,
 * scratch and cgroup prepared the way a run prepares them), spawned by hand with Bun.spawn
 * and timed from the spawn to its exit with every pipe drained. The library run over this
 * is cordon's own cost: planning, setup and cleanup, supervision, the result.
 *
 * The plan comes from the Cordon's own prepare step (identity lease, runner, layers,
 * render), reached past TypeScript's `private`: a plan rebuilt here from the internals
 * could drift from what a run really spawns, and then the ratio would mean nothing.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { basename, join } from "node:path";
import type { Cordon, RunRequest } from "../../src/api/index.ts";
import type { IdentityLease } from "../../src/identity/pool.ts";
import { joinFreshSessionKeyring } from "../../src/keyring.ts";
import { readLaunchStatus, type StatusChannel } from "../../src/protocol/launch-status.ts";
import { BLOCK_FD, LAUNCHER_ARGS_FD, LAUNCHER_STATUS_FD, RESULT_FD, SECCOMP_FD } from "../../src/protocol/index.ts";
import { joinCgroupArgv, runCgroupStep } from "../../src/sandbox/cgroup-run.ts";
import { openExclusive, writeExclusive } from "../../src/sandbox/run-root.ts";
import type { PlannedRun } from "../../src/sandbox/run.ts";
import { SetupSequence } from "../../src/sandbox/setup.ts";
import { workspaceSteps } from "../../src/sandbox/workspace.ts";

type Prepare = (request: RunRequest, secrets: readonly string[]) => Promise<{ planned: PlannedRun; lease: IdentityLease | null }>;

export function prepareOf(cordon: Cordon): Prepare {
  const prepare = (cordon as unknown as { prepare?: Prepare }).prepare;
  if (typeof prepare !== "function") throw new Error("bench: Cordon has no prepare step any more; bench/lib/rendered.ts needs the planned run a run spawns");
  return prepare.bind(cordon);
}

export interface RawRun {
  /** Spawn to exit, pipes drained. */
  ms: number;
  /** This process's CPU time (user + system) from spawn to exit, ms. */
  cpuMs: number;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** What the command wrote on the result channel. */
  channel: string;
}

type Slot = "pipe" | "ignore" | number;

/** The launcher's fds at the protocol's numbers, as spawn.ts lays them out. */
function stdio(fds: Partial<Record<number, Slot>>): Slot[] {
  const slots: Slot[] = ["ignore", "pipe", "pipe"];
  for (const fd of [LAUNCHER_STATUS_FD, RESULT_FD, LAUNCHER_ARGS_FD, BLOCK_FD, SECCOMP_FD]) {
    while (slots.length < fd) slots.push("ignore");
    slots[fd] = fds[fd] ?? "ignore";
  }
  return slots;
}

/** The held launcher's init, once its status file names it. */
async function childPid(channel: StatusChannel, path: string): Promise<number> {
  for (let i = 0; i < 5000; i++) {
    const pid = readLaunchStatus(channel, path)?.childPid ?? null;
    if (pid !== null) return pid;
    await Bun.sleep(1);
  }
  throw new Error("bench: the raw-rendered launcher never reported its child");
}

/** Plan `request` on `cordon`, prepare its environment, spawn the rendered command by hand, clean up. */
export async function rawRendered(cordon: Cordon, request: RunRequest): Promise<RawRun> {
  const { planned, lease } = await prepareOf(cordon)(request, []);
  const { plan, workspace, host } = planned;
  const cgroupStep = plan.cgroup ? runCgroupStep(host.cgroups, cordon.config.cgroupParent, basename(workspace.root), plan.cgroup) : null;
  const setup = new SetupSequence([...workspaceSteps(workspace, plan), ...(cgroupStep ? [cgroupStep] : []), ...(plan.steps ?? [])]);
  const opened: number[] = [];
  try {
    await setup.prepare();
    const fds: Partial<Record<number, Slot>> = { [RESULT_FD]: "pipe", ...(plan.blockFd ? { [BLOCK_FD]: "pipe" } : {}) };
    if (plan.statusFd) opened.push((fds[LAUNCHER_STATUS_FD] = openExclusive(join(workspace.root, "launcher-status"))));
    if (plan.launcherArgs) {
      writeExclusive(join(workspace.root, "launcher-args"), plan.launcherArgs.map((a) => `${a}\0`).join(""));
      opened.push((fds[LAUNCHER_ARGS_FD] = openSync(join(workspace.root, "launcher-args"), "r")));
    }
    if (plan.seccompBpf) {
      writeExclusive(join(workspace.root, "seccomp.bpf"), plan.seccompBpf);
      opened.push((fds[SECCOMP_FD] = openSync(join(workspace.root, "seccomp.bpf"), "r")));
    }
    if (plan.freshKeyring) joinFreshSessionKeyring();
    const cgroup = cgroupStep?.cgroup ?? null;
    const argv = cgroup ? joinCgroupArgv(cgroup.procsFiles, plan.argv) : plan.argv;

    const cpu = process.cpuUsage();
    const started = performance.now();
    const proc = Bun.spawn(argv, {
      ...(plan.spawnAs && !cgroup ? { uid: plan.spawnAs.uid, gid: plan.spawnAs.gid } : {}),
      env: plan.env,
      cwd: plan.cwd,
      stdio: stdio(fds) as NonNullable<Parameters<typeof Bun.spawn>[1]>["stdio"],
    });
    const blockFd = proc.stdio[BLOCK_FD];
    if (plan.blockFd && typeof blockFd === "number") {
      // The rendered command's protocol: steps that act on the held sandbox (bwrap's rlimits
      // by prlimit(2)) get its init's pid from the status file, then the release byte.
      if (setup.needsRelease) await setup.beforeRelease(await childPid(plan.statusFd!, join(workspace.root, "launcher-status")));
      writeSync(blockFd, "1");
    }
    const channelFd = proc.stdio[RESULT_FD] as number;
    const [stdout, stderr, channel, exitCode] = await Promise.all([
      new Response(proc.stdout as ReadableStream).text(),
      new Response(proc.stderr as ReadableStream).text(),
      new Response(Bun.file(channelFd).stream()).text(),
      proc.exited,
    ]);
    const ms = performance.now() - started;
    const used = process.cpuUsage(cpu);
    closeSync(channelFd);
    if (typeof blockFd === "number") closeSync(blockFd);
    return { ms, cpuMs: (used.user + used.system) / 1000, exitCode, stdout, stderr, channel };
  } finally {
    for (const fd of opened) closeSync(fd);
    await setup.cleanup();
    lease?.release();
  }
}
