import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { CordonError } from "../errors.ts";
import { resultFromError, type RunResult } from "../result.ts";
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
function killTree(plan: SpawnPlan, launcherPid: number, infoPath: string | null): void {
  if (plan.treeKill === "pid-namespace" && infoPath) {
    const init = readChildPid(infoPath);
    if (init !== null && parentOf(init) === launcherPid) killQuietly(init);
  } else {
    killQuietly(-launcherPid);
  }
  killQuietly(launcherPid);
}

/** Spawn the plan's ONE argv, stream output under caps, enforce the wall clock, kill the tree. */
export async function executePlan(plan: SpawnPlan, workspace: Workspace, stdin: Uint8Array | undefined): Promise<RunResult> {
  const infoPath = plan.infoFd ? join(workspace.root, "launcher-info.json") : null;
  const infoFd = infoPath ? openSync(infoPath, "w", 0o600) : null;
  const started = performance.now();
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    const input = stdin && stdin.length > 0 ? stdin : "ignore";
    proc = Bun.spawn(plan.argv, {
      env: plan.env,
      cwd: plan.cwd,
      stdio: infoFd !== null ? [input, "pipe", "pipe", infoFd] : [input, "pipe", "pipe"],
    });
  } finally {
    if (infoFd !== null) closeSync(infoFd); // the child holds its own copy
  }

  const events = { timedOut: false, outputOverflow: false };
  let killed = false;
  const stopTree = () => {
    if (killed) return;
    killed = true;
    killTree(plan, proc.pid, infoPath);
  };
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

  await proc.exited;
  clearTimeout(wallTimer);
  const durationMs = Math.round(performance.now() - started);
  // The launcher is gone; with a pid namespace so is every process of the run. Kill the
  // group anyway (unsafe provider) and do not let an escaped holder of the pipes hang us.
  if (plan.treeKill === "process-group") killQuietly(-proc.pid);
  const grace = setTimeout(() => cutPipes.abort(), PIPE_GRACE_MS);
  const [out, err] = await Promise.all([stdoutP, stderrP]);
  clearTimeout(grace);

  const sig = proc.signalCode;
  const exit = decodeExit(proc.exitCode, typeof sig === "number" ? signalName(sig) : sig, plan.exitEncoding);
  const { outcome, limitHit } = classifyOutcome(events, exit);
  const stderr = decoder.decode(err.bytes);
  if (outcome === "exit-nonzero" && plan.launcherErrorPrefix && out.bytes.length === 0 && stderr.startsWith(plan.launcherErrorPrefix)) {
    // The sandbox never started the script: report the launcher's failure, not a script failure.
    return { ...resultFromError(new CordonError("sandbox-failed", `the sandbox failed to start: ${stderr.trim()}`), plan.report), durationMs, stderr, stderrBytes: err.bytes };
  }
  return {
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
  };
}
