import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { CordonError, SandboxUnavailableError } from "../errors.ts";
import type { RunCgroup } from "../cgroup/index.ts";
import { RESULT_FD, type ChannelBytes } from "../result-channel.ts";
import { CGROUP_JOIN_ERROR_PREFIX, joinCgroupArgv, refineWithCgroup, runStats } from "./cgroup-run.ts";
import { noExtras, resultFromError, type RunResult } from "../result.ts";
import { decodeExit, signalName } from "./exit.ts";
import { classifyOutcome } from "./outcome.ts";
import { readCapped } from "./output.ts";
import type { SpawnPlan, Workspace } from "./spec.ts";

/** How long to wait for pipes to close after the process tree is gone before cutting them. */
const PIPE_GRACE_MS = 500;
const decoder = new TextDecoder();

/** What bwrap writes to --info-fd once its child (the pid namespace's init) exists. */
const LauncherInfo = z.object({ "child-pid": z.number().int().positive() });

function readChildPid(infoPath: string): number | null {
  try {
    const info = LauncherInfo.safeParse(JSON.parse(readFileSync(infoPath, "utf8")));
    return info.success ? info.data["child-pid"] : null;
  } catch {
    return null; // not written yet: the launcher has not started its child
  }
}

function parentOf(pid: number): number | null {
  try {
    const m = /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Kill every process of the run. With a pid namespace, SIGKILL to its init makes the
 * kernel kill all the namespace's processes before init is reaped, so once the
 * launcher exits nothing of the run survives (setsid and double forks included).
 */
function killTree(plan: SpawnPlan, launcherPid: number, infoPath: string | null, cgroup: RunCgroup | null): void {
  cgroup?.killAll(); // every task of the run, wherever it went
  if (plan.treeKill === "pid-namespace" && infoPath) {
    const init = readChildPid(infoPath);
    if (init !== null && parentOf(init) === launcherPid) killQuietly(init);
  } else {
    killQuietly(-launcherPid);
  }
  killQuietly(launcherPid);
}

/** The fd a blocking launcher waits on until the supervisor releases it (bwrap --block-fd). */
export const BLOCK_FD = 6;

/** The launcher's child pid from its info fd, once written; fails if the launcher exits first. */
async function waitForChildPid(infoPath: string | null, exited: Promise<number>, timeoutMs = 10_000): Promise<number> {
  if (!infoPath) throw new Error("a blocking launcher needs an info fd");
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const pid = readChildPid(infoPath);
    if (pid !== null) return pid;
    if (gone) throw new Error("the launcher exited before it started its child");
    if (performance.now() > deadline) throw new Error(`the launcher did not report its child within ${timeoutMs} ms`);
    await Bun.sleep(2);
  }
}

/** The fd the launcher reads its own arguments from (NUL-separated), out of the process table. */
export const LAUNCHER_ARGS_FD = 5;

/** Launcher arguments go in a 0600 file in the (root-only) run dir, opened for the child as fd 5. */
function openLauncherArgs(plan: SpawnPlan, workspace: Workspace): number | null {
  if (!plan.launcherArgs) return null;
  const path = join(workspace.root, "launcher-args");
  writeFileSync(path, plan.launcherArgs.map((a) => `${a}\0`).join(""), { mode: 0o600 });
  return openSync(path, "r");
}

export interface ExecuteOptions {
  stdin?: Uint8Array;
  /** Read at most this many bytes of the structured result channel (fd 4). */
  maxResultBytes: number;
  /** The run's cgroup, already created: the launcher joins it before exec'ing the sandbox. */
  cgroup?: RunCgroup | null;
}

/** How often the run's cgroup is checked for an OOM kill (v1 has no oom.group: the supervisor kills the tree). */
const OOM_POLL_MS = 50;

export interface ExecutedRun {
  run: RunResult;
  channel: ChannelBytes;
}

/** Drain the result channel under its cap; a flood is discarded, never fatal to the run or the supervisor. */
async function readChannel(fd: number, cap: number, stop: AbortSignal): Promise<ChannelBytes> {
  try {
    return await readCapped(Bun.file(fd).stream(), cap, () => {}, stop);
  } finally {
    closeSync(fd); // Bun does not close an extra stdio fd for us
  }
}

/** Spawn the plan's ONE argv, stream output under caps, enforce the wall clock, kill the tree. */
export async function executePlan(plan: SpawnPlan, workspace: Workspace, options: ExecuteOptions): Promise<ExecutedRun> {
  const infoPath = plan.infoFd ? join(workspace.root, "launcher-info.json") : null;
  const infoFd = infoPath ? openSync(infoPath, "w", 0o600) : null;
  const argsFd = openLauncherArgs(plan, workspace);
  const cgroup = options.cgroup ?? null;
  const started = performance.now();
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    const input = options.stdin && options.stdin.length > 0 ? options.stdin : "ignore";
    // fd 3: launcher info; fd 4: the result channel; fd 5: launcher arguments.
    const argv = cgroup ? joinCgroupArgv(cgroup.procsFiles, plan.argv) : plan.argv;
    proc = Bun.spawn(argv, {
      env: plan.env,
      cwd: plan.cwd,
      stdio: [input, "pipe", "pipe", infoFd ?? "ignore", "pipe", argsFd ?? "ignore", plan.blockFd ? "pipe" : "ignore"],
    });
  } finally {
    if (infoFd !== null) closeSync(infoFd); // the child holds its own copy
    if (argsFd !== null) closeSync(argsFd);
  }
  const channelFd = proc.stdio[RESULT_FD];
  if (typeof channelFd !== "number") throw new Error("the result channel pipe was not created");

  const events = { timedOut: false, outputOverflow: false, oomKilled: false };
  let killed = false;
  const stopTree = () => {
    if (killed) return;
    killed = true;
    killTree(plan, proc.pid, infoPath, cgroup);
  };
  const oomWatch = cgroup
    ? setInterval(() => {
        if (!cgroup.events().oomKilled) return;
        events.oomKilled = true;
        stopTree();
      }, OOM_POLL_MS)
    : null;
  const wallTimer = setTimeout(() => {
    events.timedOut = true;
    stopTree();
  }, plan.wallMs);
  const onOverflow = () => {
    events.outputOverflow = true;
    stopTree();
  };

  const cutPipes = new AbortController();
  const stdoutP = readCapped(proc.stdout as ReadableStream<Uint8Array>, plan.maxOutputBytes, onOverflow, cutPipes.signal);
  const stderrP = readCapped(proc.stderr as ReadableStream<Uint8Array>, plan.maxOutputBytes, onOverflow, cutPipes.signal);
  const channelP = readChannel(channelFd, options.maxResultBytes, cutPipes.signal);

  let setupError: string | null = null;
  const blockFd = plan.blockFd ? proc.stdio[BLOCK_FD] : null;
  if (typeof blockFd === "number") {
    try {
      const childPid = await waitForChildPid(infoPath, proc.exited);
      await plan.beforeRelease?.(childPid);
      writeSync(blockFd, "1"); // the command starts only now, with everything in place
    } catch (e) {
      setupError = e instanceof Error ? e.message : String(e);
      stopTree(); // before the block fd closes: bwrap treats EOF as a release too
    }
  }

  await proc.exited;
  if (typeof blockFd === "number") closeSync(blockFd);
  clearTimeout(wallTimer);
  if (oomWatch) clearInterval(oomWatch);
  const durationMs = Math.round(performance.now() - started);
  // The launcher is gone; with a pid namespace so is every process of the run. Kill the
  // group anyway (unsafe provider) and do not let an escaped holder of the pipes hang us.
  if (plan.treeKill === "process-group") killQuietly(-proc.pid);
  const grace = setTimeout(() => cutPipes.abort(), PIPE_GRACE_MS);
  const [out, err, channel] = await Promise.all([stdoutP, stderrP, channelP]);
  clearTimeout(grace);

  const sig = proc.signalCode;
  const exit = decodeExit(proc.exitCode, typeof sig === "number" ? signalName(sig) : sig, plan.exitEncoding);
  const cgEvents = cgroup?.events() ?? null;
  const cgStats = cgroup?.stats() ?? null;
  const classified = classifyOutcome(events, exit);
  const stderr = decoder.decode(err.bytes);
  const launcherFailed = [plan.launcherErrorPrefix, cgroup ? CGROUP_JOIN_ERROR_PREFIX : undefined].some((p) => p && stderr.startsWith(p));
  // A launcher that failed to set up is a failed sandbox, whatever the cgroup counted meanwhile.
  const refine = cgEvents && cgStats && !(classified.outcome === "exit-nonzero" && launcherFailed);
  const { outcome, limitHit } = refine ? refineWithCgroup({ ...classified, signal: exit.signal }, cgEvents, cgStats, plan.report.requested.resources.cpuSeconds) : classified;
  if (setupError !== null) {
    const refused = new SandboxUnavailableError("launch", [`sandbox setup failed before the script started: ${setupError}`]);
    return { run: { ...resultFromError(refused, plan.report), durationMs, stderr, stderrBytes: err.bytes }, channel: { bytes: new Uint8Array(0), truncated: false } };
  }
  if (outcome === "exit-nonzero" && launcherFailed && out.bytes.length === 0) {
    // The sandbox never started the script: report the launcher's failure, not a script failure.
    const failed = new CordonError("sandbox-failed", `the sandbox failed to start: ${stderr.trim()}`);
    return { run: { ...resultFromError(failed, plan.report), durationMs, stderr, stderrBytes: err.bytes }, channel: { bytes: new Uint8Array(0), truncated: false } };
  }
  const run: RunResult = {
    outcome,
    limitHit,
    exitCode: exit.exitCode,
    signal: exit.signal,
    stdout: decoder.decode(out.bytes),
    stderr,
    stdoutBytes: out.bytes,
    stderrBytes: err.bytes,
    stdoutTruncated: out.truncated,
    stderrTruncated: err.truncated,
    durationMs,
    sandbox: plan.report,
    error: null,
    ...noExtras(),
    stats: runStats(durationMs, cgStats, cgEvents),
  };
  return { run, channel };
}
