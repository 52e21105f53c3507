import { closeSync, openSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { CordonError, SandboxUnavailableError } from "../errors.ts";
import type { RunCgroup } from "../cgroup/index.ts";
import { RESULT_FD, type ChannelBytes } from "../result-channel.ts";
import { joinCgroupArgv, refineWithCgroup, runStats } from "./cgroup-run.ts";
import { readLaunchStatus, type LaunchStatus } from "./launch-status.ts";
import { noExtras, resultFromError, type RunResult } from "../result.ts";
import { decodeExit, signalName } from "./exit.ts";
import { classifyOutcome } from "./outcome.ts";
import { readCapped } from "./output.ts";
import { openExclusive, writeExclusive } from "./run-root.ts";
import type { SpawnPlan, StdinSource, Workspace } from "./spec.ts";

/** How long to wait for pipes to close after the process tree is gone before cutting them. */
const PIPE_GRACE_MS = 500;
const decoder = new TextDecoder();

function parentOf(pid: number): number | null {
  try {
    const m = /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Does the process have any child right now (any of its threads)? `unknown` when /proc cannot tell. */
function hasChildren(pid: number, unknown: boolean): boolean {
  try {
    return readdirSync(`/proc/${pid}/task`).some((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim() !== "");
  } catch {
    return unknown;
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
function killTree(plan: SpawnPlan, launcherPid: number, statusPath: string | null, cgroup: RunCgroup | null): void {
  cgroup?.killAll(); // every task of the run, wherever it went
  if (plan.treeKill === "pid-namespace" && statusPath && plan.statusFd) {
    const init = readLaunchStatus(plan.statusFd, statusPath).childPid;
    if (init !== null && parentOf(init) === launcherPid) killQuietly(init);
  } else {
    killQuietly(-launcherPid);
  }
  killQuietly(launcherPid);
}

/** The fd a blocking launcher waits on until the supervisor releases it (bwrap --block-fd). */
export const BLOCK_FD = 6;

/** The launcher's child pid from its status fd, once written; fails if the launcher exits first. */
async function waitForChildPid(plan: SpawnPlan, statusPath: string | null, exited: Promise<number>, timeoutMs = 10_000): Promise<number> {
  if (!statusPath || !plan.statusFd) throw new Error("a blocking launcher needs a status fd");
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const pid = readLaunchStatus(plan.statusFd, statusPath).childPid;
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
  writeExclusive(path, plan.launcherArgs.map((a) => `${a}\0`).join(""), 0o600); // a fresh file: nothing planted is reused
  return openSync(path, "r");
}

export interface ExecuteOptions {
  stdin?: StdinSource;
  /** Read at most this many bytes of the structured result channel (fd 4). */
  maxResultBytes: number;
  /** The run's cgroup, already created: the launcher joins it before exec'ing the sandbox. */
  cgroup?: RunCgroup | null;
  /** Secret values: stdout and stderr are masked as they are read, across the output cap. */
  secrets?: readonly string[];
}

/** How often the run's cgroup is checked for an OOM kill (v1 has no oom.group: the supervisor kills the tree). */
const OOM_POLL_MS = 50;

export interface ExecutedRun {
  run: RunResult;
  channel: ChannelBytes;
}

/**
 * Read the result channel under its cap. Going over the cap ends the run like an output
 * flood (`onOverflow`): draining a flood would burn the supervisor's CPU, outside the run's
 * cgroup, for the whole wall time.
 */
async function readChannel(fd: number, cap: number, onOverflow: () => void, stop: AbortSignal): Promise<ChannelBytes> {
  try {
    return await readCapped(Bun.file(fd).stream(), cap, onOverflow, stop);
  } finally {
    closeSync(fd); // Bun does not close an extra stdio fd for us
  }
}

/**
 * Forward stdin as it arrives, at most `cap` bytes, waiting for the pipe to drain after
 * each chunk: memory stays bounded and a script that never reads stdin still starts at
 * once (it just never drains the pipe). Resolves true when the source had more than `cap`.
 */
async function pumpStdin(source: StdinSource, sink: FileSinkLike, cap: number, stop: AbortSignal): Promise<boolean> {
  const stream = source instanceof Uint8Array ? new Blob([source]).stream() : source;
  const reader = stream.getReader();
  stop.addEventListener("abort", () => void reader.cancel().catch(() => {}), { once: true });
  let sent = 0;
  let truncated = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || stop.aborted) break;
      const room = cap - sent;
      const chunk = value.length > room ? value.subarray(0, room) : value;
      if (chunk.length > 0) {
        // Awaited, not fired: when the pipe is full write() returns a promise, which rejects
        // with EPIPE once the script closes its stdin. Left alone, that rejection went
        // unhandled in the supervisor (a script could make any library caller log errors,
        // exit 1, or crash under strict rejection handling); here it ends the pump below.
        await sink.write(chunk);
        await sink.flush();
        sent += chunk.length;
      }
      if (value.length > room) {
        truncated = true;
        break;
      }
    }
  } catch {
    // the script closed its stdin (EPIPE) or the run ended: stop forwarding
  } finally {
    void reader.cancel().catch(() => {});
    try {
      await sink.end();
    } catch {
      // already closed
    }
  }
  return truncated;
}

interface FileSinkLike {
  write(chunk: Uint8Array): number | Promise<number>;
  flush(): number | Promise<number>;
  end(): number | Promise<number>;
}

/** Why a run is an error of the sandbox rather than the script's: decided from the status fd only. */
function launcherFailure(plan: SpawnPlan, status: LaunchStatus | null, exitedNonZero: boolean, stderr: string): CordonError | null {
  if (!plan.statusFd || !status) return null;
  const said = stderr.trim() ? `: ${stderr.trim()}` : "";
  if (plan.statusFd === "nsjail-log") {
    return exitedNonZero && status.launcherErrors.length > 0 ? new CordonError("sandbox-failed", `the sandbox failed to start: ${status.launcherErrors.join(" | ")}`) : null;
  }
  if (status.childPid === null) {
    // No child reported: the launcher (or the cgroup join before it) failed, or it was not
    // told to report. Either way nothing about this run can be trusted; say no more than that.
    return new CordonError("sandbox-failed", `the sandbox failed to start (its launcher reported no child; the run is discarded)${said}`);
  }
  if (!status.commandStarted) return new CordonError("sandbox-failed", `the sandbox failed to start (the command was never executed)${said}`);
  return null;
}

/** Spawn the plan's ONE argv, stream output under caps, enforce the wall clock, kill the tree. */
export async function executePlan(plan: SpawnPlan, workspace: Workspace, options: ExecuteOptions): Promise<ExecutedRun> {
  const statusPath = plan.statusFd ? join(workspace.root, "launcher-status") : null;
  const statusFd = statusPath ? openExclusive(statusPath, 0o600) : null; // O_EXCL|O_NOFOLLOW: never through a planted link
  const argsFd = openLauncherArgs(plan, workspace);
  const cgroup = options.cgroup ?? null;
  const started = performance.now();
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    // fd 3: launcher status; fd 4: the result channel; fd 5: launcher arguments; fd 6: release.
    const argv = cgroup ? joinCgroupArgv(cgroup.procsFiles, plan.argv) : plan.argv;
    proc = Bun.spawn(argv, {
      env: plan.env,
      cwd: plan.cwd,
      stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe", statusFd ?? "ignore", "pipe", argsFd ?? "ignore", plan.blockFd ? "pipe" : "ignore"],
    });
  } finally {
    if (statusFd !== null) closeSync(statusFd); // the child holds its own copy
    if (argsFd !== null) closeSync(argsFd);
  }
  const channelFd = proc.stdio[RESULT_FD];
  if (typeof channelFd !== "number") throw new Error("the result channel pipe was not created");

  const events = { timedOut: false, outputOverflow: false, oomKilled: false };
  let killed = false;
  const stopTree = () => {
    if (killed) return;
    killed = true;
    killTree(plan, proc.pid, statusPath, cgroup);
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
  const stdoutP = readCapped(proc.stdout as ReadableStream<Uint8Array>, plan.maxOutputBytes, onOverflow, cutPipes.signal, options.secrets);
  const stderrP = readCapped(proc.stderr as ReadableStream<Uint8Array>, plan.maxOutputBytes, onOverflow, cutPipes.signal, options.secrets);
  const channelP = readChannel(channelFd, options.maxResultBytes, onOverflow, cutPipes.signal);
  const stopStdin = new AbortController();
  const stdinP = options.stdin ? pumpStdin(options.stdin, proc.stdin as unknown as FileSinkLike, plan.maxStdinBytes, stopStdin.signal) : Promise.resolve(false);

  let setupError: string | null = null;
  let heldBack = false;
  const blockFd = plan.blockFd ? proc.stdio[BLOCK_FD] : null;
  if (typeof blockFd === "number") {
    try {
      const childPid = await waitForChildPid(plan, statusPath, proc.exited);
      await plan.beforeRelease?.(childPid);
      writeSync(blockFd, "1"); // the command starts only now, with everything in place
    } catch (e) {
      setupError = e instanceof Error ? e.message : String(e);
      // Held at --block-fd, bwrap's init has not forked the command yet: a child means it
      // did not wait (the kernel's process list, which the script cannot write).
      const init = statusPath && plan.statusFd ? readLaunchStatus(plan.statusFd, statusPath).childPid : null;
      heldBack = init !== null && !hasChildren(init, true);
      stopTree(); // before the block fd closes: bwrap treats EOF as a release too
    }
  }

  await proc.exited;
  stopStdin.abort();
  if (typeof blockFd === "number") closeSync(blockFd);
  clearTimeout(wallTimer);
  if (oomWatch) clearInterval(oomWatch);
  const durationMs = Math.round(performance.now() - started);
  // The launcher is gone; with a pid namespace so is every process of the run. Kill the
  // group anyway (unsafe provider) and do not let an escaped holder of the pipes hang us.
  if (plan.treeKill === "process-group") killQuietly(-proc.pid);
  const grace = setTimeout(() => cutPipes.abort(), PIPE_GRACE_MS);
  const [out, err, channel, stdinTruncated] = await Promise.all([stdoutP, stderrP, channelP, stdinP]);
  clearTimeout(grace);

  const sig = proc.signalCode;
  const exit = decodeExit(proc.exitCode, typeof sig === "number" ? signalName(sig) : sig, plan.exitEncoding);
  const stderr = decoder.decode(err.bytes);
  const status = statusPath && plan.statusFd ? readLaunchStatus(plan.statusFd, statusPath) : null;
  const noChannel = { bytes: new Uint8Array(0), truncated: false };
  const failed = (error: CordonError): ExecutedRun => ({ run: { ...resultFromError(error, plan.report), durationMs, stderr, stderrBytes: err.bytes }, channel: noChannel });

  if (setupError !== null) {
    // "Nothing was run" only when the launcher itself says its command never started.
    if (heldBack && status?.commandStarted === false) return failed(new SandboxUnavailableError("launch", [`sandbox setup failed before the script started: ${setupError}`]));
    return failed(new CordonError("sandbox-failed", `sandbox setup failed (${setupError}) and the command was not held back: it was killed; its output is discarded`));
  }
  // A launcher that was killed (by the supervisor: wall, output; by the kernel's OOM killer,
  // which may pick bwrap's own processes inside the run cgroup) could not report the exec
  // any more: that reason stands. Otherwise the status fd says whether it ever ran.
  const cgEvents = cgroup?.events() ?? null;
  const cgStats = cgroup?.stats() ?? null;
  const launcherKilled = killed || cgEvents?.oomKilled === true;
  const launcherFailed = launcherKilled ? null : launcherFailure(plan, status, exit.exitCode !== 0 || exit.signal !== null, stderr);
  if (launcherFailed) return failed(launcherFailed);

  const classified = classifyOutcome(events, exit);
  const { outcome, limitHit } = cgEvents && cgStats ? refineWithCgroup({ ...classified, signal: exit.signal }, cgEvents, cgStats, plan.report.requested.resources.cpuSeconds) : classified;
  const run: RunResult = {
    outcome,
    limitHit,
    exitCode: exit.exitCode,
    signal: exit.signal,
    signalSource: exit.signalSource,
    stdout: decoder.decode(out.bytes),
    stderr,
    stdoutBytes: out.bytes,
    stderrBytes: err.bytes,
    stdoutTruncated: out.truncated,
    stderrTruncated: err.truncated,
    durationMs,
    ...(options.stdin ? { stdinTruncated } : {}),
    sandbox: plan.report,
    error: null,
    ...noExtras(),
    stats: runStats(durationMs, cgStats, cgEvents),
  };
  return { run, channel };
}
