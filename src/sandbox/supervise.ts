/**
 * Supervise: from the spawn to the launcher's exit, watch the run and end it when a limit
 * the supervisor enforces is reached (wall clock, output and result caps, an OOM kill the
 * cgroup reports), stream output and stdin under their caps, and gather the evidence of
 * how the run ended. Deciding what that evidence means is classify.ts's.
 */
import type { CgroupEvents, CgroupStats } from "../cgroup/index.ts";
import { killQuietly } from "../process.ts";
import type { ChannelBytes } from "../protocol/result-channel.ts";
import { decodeExit, signalName, type DecodedExit } from "./exit.ts";
import { readCapped } from "./output.ts";
import { pumpStdin, readChannel, type FileSinkLike } from "./pumps.ts";
import type { StdinSource } from "./spec.ts";
import type { SpawnedLauncher } from "./spawn.ts";

/** How long to wait for pipes to close after the process tree is gone before cutting them. */
const PIPE_GRACE_MS = 500;
/** How often the run's cgroup is checked for an OOM kill (v1 has no oom.group: the supervisor kills the tree). */
const OOM_POLL_MS = 50;

/** What the supervisor saw and acted on while the run went. */
export interface RunEvents {
  timedOut: boolean;
  outputOverflow: boolean;
  /** The run's cgroup reported an OOM kill while it ran (the supervisor then killed the tree). */
  oomKilled: boolean;
  /** The caller cancelled the run (SuperviseOptions.stop) and the supervisor killed the tree. */
  cancelled: boolean;
}

export interface SuperviseOptions {
  stdin?: StdinSource;
  /** Read at most this many bytes of the structured result channel. */
  maxResultBytes: number;
  /** Secret values: stdout and stderr are masked as they are read, across the output cap. */
  secrets?: readonly string[];
  /** The caller's cancellation (a client that went away): the tree is killed, the run ends `killed`, `cancelled: true`. */
  stop?: AbortSignal;
}

type Captured = { bytes: Uint8Array; truncated: boolean };

/** Everything known once the launcher exited and the pipes closed. */
export interface SupervisedEnd {
  events: RunEvents;
  exit: DecodedExit;
  stdout: Captured;
  stderr: Captured;
  channel: ChannelBytes;
  /** The stdin source had more than the cap (only meaningful when there was stdin). */
  stdinTruncated: boolean;
  durationMs: number;
  /** The run cgroup's counters after the run, or null without a cgroup. */
  cgroup: { events: CgroupEvents; stats: CgroupStats } | null;
}

export interface Supervision {
  /** Wait for the launcher to exit, stop the watchers, drain the pipes (cut after a grace). */
  finish(): Promise<SupervisedEnd>;
}

/**
 * Start watching a spawned launcher: the wall timer, the OOM watch and the pumps start
 * at once, so the time a held launcher spends in setup counts against the wall clock and
 * a setup that hangs is ended like a script that does.
 */
export function supervise(launcher: SpawnedLauncher, options: SuperviseOptions): Supervision {
  const { proc, plan, cgroup } = launcher;
  const events: RunEvents = { timedOut: false, outputOverflow: false, oomKilled: false, cancelled: false };
  const stopTree = () => launcher.killTree();
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
  const onCancel = () => {
    events.cancelled = true;
    stopTree();
  };
  if (options.stop?.aborted) onCancel();
  else options.stop?.addEventListener("abort", onCancel, { once: true });
  const onOverflow = () => {
    events.outputOverflow = true;
    stopTree();
  };

  const cutPipes = new AbortController();
  const stdoutP = readCapped(proc.stdout as ReadableStream<Uint8Array>, plan.maxOutputBytes, onOverflow, cutPipes.signal, options.secrets);
  const stderrP = readCapped(proc.stderr as ReadableStream<Uint8Array>, plan.maxOutputBytes, onOverflow, cutPipes.signal, options.secrets);
  const channelP = readChannel(launcher.channelFd, options.maxResultBytes, onOverflow, cutPipes.signal);
  const stopStdin = new AbortController();
  const stdinP = options.stdin ? pumpStdin(options.stdin, proc.stdin as unknown as FileSinkLike, plan.maxStdinBytes, stopStdin.signal) : Promise.resolve(false);

  return {
    async finish() {
      await proc.exited;
      stopStdin.abort();
      launcher.closeBlockFd();
      clearTimeout(wallTimer);
      options.stop?.removeEventListener("abort", onCancel);
      if (oomWatch) clearInterval(oomWatch);
      const durationMs = Math.round(performance.now() - launcher.startedMs);
      // The launcher is gone; with a pid namespace so is every process of the run. Kill the
      // group anyway (unsafe provider) and do not let an escaped holder of the pipes hang us.
      if (plan.treeKill === "process-group") killQuietly(-proc.pid);
      const grace = setTimeout(() => cutPipes.abort(), PIPE_GRACE_MS);
      const [stdout, stderr, channel, stdinTruncated] = await Promise.all([stdoutP, stderrP, channelP, stdinP]);
      clearTimeout(grace);
      const sig = proc.signalCode;
      const exit = decodeExit(proc.exitCode, typeof sig === "number" ? signalName(sig) : sig, plan.exitEncoding);
      return { events, exit, stdout, stderr, channel, stdinTruncated, durationMs, cgroup: cgroup ? { events: cgroup.events(), stats: cgroup.stats() } : null };
    },
  };
}
