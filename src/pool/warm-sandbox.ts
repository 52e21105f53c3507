/**
 * One warm sandbox: everything a run of one shape needs, built before the run exists. The
 * run directory and scratch mount, the run cgroup, the host identity, the namespaces, the
 * syscall filter and the fresh keyring are all in place; the command is the runner's
 * waiter, already started (for Python and Bun: the interpreter has started) and blocked
 * reading JOB_FD. It serves exactly ONE run and is then destroyed with that run's cleanup.
 */
import { closeSync, readFileSync } from "node:fs";
import { SandboxUnavailableError } from "../errors.ts";
import type { HostFacts } from "../host.ts";
import type { IdentityLease } from "../identity/pool.ts";
import type { RunIdentity } from "../identity/range.ts";
import type { Policy } from "../policy/index.ts";
import type { Provider, ProviderProbe } from "../provider.ts";
import type { Runner, RunnerOptions, WarmStart } from "../runner.ts";
import { composePlan, layoutOf } from "../sandbox/plan.ts";
import { release } from "../sandbox/release.ts";
import { setupSteps } from "../sandbox/run-planned.ts";
import { SetupSequence } from "../sandbox/setup.ts";
import { spawnLauncher, type SpawnedLauncher } from "../sandbox/spawn.ts";
import type { SpawnPlan, Workspace } from "../sandbox/spec.ts";
import { allocateWorkspace } from "../sandbox/workspace.ts";

/** Everything a sandbox of one shape is planned from (one key of the pool). */
export interface WarmShape {
  /** provider, runner and policy, as one string: sandboxes of one key are interchangeable. */
  key: string;
  provider: Provider;
  probe: ProviderProbe;
  policy: Policy;
  host: HostFacts;
  runner: Runner;
  runRoot: string;
  cgroupParent: string;
  /** A host identity for one sandbox, or null where runs drop to none (non-root supervisor). */
  lease(): Promise<IdentityLease | null>;
  runnerOptions(identity: RunIdentity | null): RunnerOptions;
}

/** A shape the pool cannot build sandboxes for (the reason is why its runs start cold). */
export class NotPoolableError extends Error {}

/** How long a waiter may take to start and block on JOB_FD. */
const READY_TIMEOUT_MS = 15_000;
/** How often a starting waiter is looked at: nothing waits on it (a run never waits for the pool). */
const READY_POLL_MS = 5;
/** read(2) on x86_64: the waiter's first field in /proc/PID/syscall while it waits. */
const SYS_READ = 0;

/** The waiter's pid: the only child of the sandbox's init (bwrap's pid 1 forks the command). */
function waiterPid(initPid: number): number | null {
  try {
    const children = readFileSync(`/proc/${initPid}/task/${initPid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    return children.length === 1 ? Number(children[0]) : null;
  } catch {
    return null;
  }
}

/** The waiter is blocked in read(2): it has started and waits for its run (read from the kernel, not from the sandbox). */
function blockedInRead(pid: number): boolean {
  try {
    return Number(readFileSync(`/proc/${pid}/syscall`, "utf8").split(" ")[0]) === SYS_READ;
  } catch {
    return false;
  }
}

function residentBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The waiter's plan; a shape the policy refuses on this provider is not poolable (its runs are refused cold, with the reasons). */
function planWaiter(shape: WarmShape, warm: WarmStart, workspace: Workspace, identity: RunIdentity | null): SpawnPlan {
  try {
    return composePlan({ policy: shape.policy, job: warm.waiter, host: shape.host, workspace, ...(identity ? { identity } : {}) }, shape.provider, shape.probe);
  } catch (e) {
    if (e instanceof SandboxUnavailableError) throw new NotPoolableError(`the policy is refused on ${shape.provider.name}: ${e.reasons.join("; ")}`);
    throw e;
  }
}

/**
 * The pipes of a sandbox that never ran (no supervisor read them): the result channel's fd
 * (Bun does not close an extra stdio fd), stdin, and the output streams.
 */
function closeUnreadPipes(launcher: SpawnedLauncher): void {
  try {
    closeSync(launcher.channelFd);
  } catch {
    // not created
  }
  const { stdin, stdout, stderr } = launcher.proc;
  void Promise.resolve((stdin as { end?: () => unknown } | null)?.end?.()).catch(() => {});
  for (const stream of [stdout, stderr]) if (stream instanceof ReadableStream) void stream.cancel().catch(() => {});
}

export class WarmSandbox {
  /** performance.now() when the waiter was seen blocked on JOB_FD. */
  readyMs = 0;
  /** What the idle sandbox holds in memory: the cgroup's charge, else the waiter's resident set. */
  memoryBytes = 0;
  private taken = false;
  private markEnded!: () => void;
  /** Resolves once the sandbox is destroyed and nothing of it is left (dispose finished). */
  readonly ended = new Promise<void>((resolve) => (this.markEnded = resolve));
  /** The supervisor reads its pipes (a run was handed over): they are closed by supervise, else here. */
  supervised = false;
  private disposed: Promise<void> | null = null;

  private constructor(
    readonly shape: WarmShape,
    readonly workspace: Workspace,
    readonly identity: RunIdentity | null,
    readonly warm: WarmStart,
    readonly plan: SpawnPlan,
    private readonly setup: SetupSequence,
    private readonly lease: IdentityLease | null,
    readonly launcher: SpawnedLauncher,
  ) {}

  /**
   * Build and start one sandbox of the shape, up to its waiter blocking on JOB_FD. Throws
   * NotPoolableError when the shape cannot be pooled, another Error when the start failed;
   * either way nothing of it is left.
   */
  static async start(shape: WarmShape): Promise<WarmSandbox> {
    const lease = await shape.lease();
    const identity = lease?.identity ?? null;
    const workspace = allocateWorkspace(shape.runRoot);
    let setup: SetupSequence | null = null;
    let launcher: SpawnedLauncher | null = null;
    try {
      const warm = shape.runner.warm?.(layoutOf(shape.provider, workspace), shape.runnerOptions(identity)) ?? null;
      if (!warm) throw new NotPoolableError(`runner ${shape.runner.name} has no waiter`);
      const plan = planWaiter(shape, warm, workspace, identity);
      if (!plan.statusFd || plan.treeKill !== "pid-namespace") throw new NotPoolableError(`provider ${shape.provider.name} does not hold its command in a pid namespace`);
      const stateful = plan.steps?.find((s) => !s.specOnly);
      if (stateful) throw new NotPoolableError(`provider ${shape.provider.name}'s setup step ${stateful.name} holds state of its own run`);
      const steps = setupSteps(plan, workspace, { host: shape.host, cgroupParent: shape.cgroupParent, maxResultBytes: 0 });
      setup = new SetupSequence(steps.steps);
      await setup.prepare();
      launcher = spawnLauncher(plan, workspace, { stdin: true, cgroup: steps.cgroup?.cgroup ?? null, handOver: true });
      const released = await release(launcher, setup);
      if (released.setupError) throw new Error(`the sandbox did not start: ${released.setupError}`);
      const sandbox = new WarmSandbox(shape, workspace, identity, warm, plan, setup, lease, launcher);
      await sandbox.untilReady();
      return sandbox;
    } catch (e) {
      launcher?.killTree();
      await launcher?.proc.exited;
      launcher?.closeBlockFd();
      await setup?.cleanup().catch(() => {});
      lease?.release();
      throw e;
    }
  }

  /** Wait until the waiter blocks on JOB_FD; throws if the sandbox dies or takes too long. */
  private async untilReady(): Promise<void> {
    const deadline = performance.now() + READY_TIMEOUT_MS;
    let exited = false;
    void this.launcher.proc.exited.then(() => (exited = true));
    for (;;) {
      const init = this.launcher.status()?.childPid ?? null; // written by the launcher once its init exists
      const pid = init === null ? null : waiterPid(init);
      if (pid !== null && blockedInRead(pid)) {
        this.readyMs = performance.now();
        this.memoryBytes = this.launcher.cgroup?.stats().peakMemoryBytes ?? residentBytes(pid);
        return;
      }
      if (exited) throw new Error("the waiter exited before its run");
      if (performance.now() > deadline) throw new Error(`the waiter did not start within ${READY_TIMEOUT_MS} ms`);
      await Bun.sleep(READY_POLL_MS);
    }
  }

  /** The launcher is still running (a waiter that died idle is not). */
  get alive(): boolean {
    return this.launcher.proc.exitCode === null && this.launcher.proc.signalCode === null && !this.launcher.treeKilled;
  }

  /** Take the sandbox for its one run; false when it was taken or has died. */
  claim(): boolean {
    if (this.taken || this.disposed || !this.alive) return false;
    this.taken = true;
    return true;
  }

  /**
   * Kill everything of the sandbox and remove it: the pid namespace, the cgroup, the scratch
   * mount and run directory, then the host identity (only once nothing of it runs). Once.
   */
  dispose(): Promise<void> {
    this.disposed ??= (async () => {
      try {
        this.launcher.killTree();
        await this.launcher.proc.exited;
        this.launcher.closeBlockFd();
        this.launcher.closeJobFd();
        if (!this.supervised) closeUnreadPipes(this.launcher);
      } finally {
        try {
          await this.setup.cleanup();
        } finally {
          this.lease?.release();
          this.markEnded();
        }
      }
    })();
    return this.disposed;
  }
}
