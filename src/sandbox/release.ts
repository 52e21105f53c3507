/**
 * Release: the BLOCK_FD handshake. A held launcher reports its child on the status fd;
 * the setup steps act on that child's namespaces (beforeRelease), and only then does the
 * supervisor write the byte that lets the command start. A separate call on a spawned
 * launcher, so a launcher spawned early (a warm pool) is released on demand.
 */
import { readFileSync, writeSync } from "node:fs";
import { hasChildren, parentOf } from "../process.ts";
import type { SetupSequence } from "./setup.ts";
import type { SpawnedLauncher } from "./spawn.ts";

/** How long a failed release waits to see whether the launcher was ending on its own. */
const ENDED_GRACE_MS = 100;
/** How long a held launcher may take to report its child. */
const CHILD_PID_TIMEOUT_MS = 10_000;
/**
 * How long a launcher that already has a child may go without reporting it. bwrap writes
 * the child's pid right after clone(), before the child does anything; a launcher whose
 * child exists but says nothing has lost its status fd (a tampered command line): a
 * failed start, found in this time rather than at the wall clock.
 */
const UNREPORTED_CHILD_GRACE_MS = 2_000;

export interface Release {
  /** Why setup failed between spawn and release (the tree was killed), or null. */
  setupError: string | null;
  /** On a failed setup: the launcher's init had not forked the command (it really waited). */
  heldBack: boolean;
}

/** The launcher's child pid from its status fd, once written; fails if the launcher exits first. */
async function waitForChildPid(launcher: SpawnedLauncher, timeoutMs = CHILD_PID_TIMEOUT_MS): Promise<number> {
  if (!launcher.plan.statusFd) throw new Error("a blocking launcher needs a status fd");
  let gone = false;
  void launcher.proc.exited.then(() => (gone = true));
  const deadline = performance.now() + timeoutMs;
  let childSeenAt: number | null = null;
  for (;;) {
    const pid = launcher.status()?.childPid ?? null;
    if (pid !== null) return pid;
    if (gone) throw new Error("the launcher exited before it started its child");
    const now = performance.now();
    if (now > deadline) throw new Error(`the launcher did not report its child within ${timeoutMs} ms`);
    childSeenAt ??= hasChildren(launcher.proc.pid, false) ? now : null;
    if (childSeenAt !== null && now - childSeenAt > UNREPORTED_CHILD_GRACE_MS) throw new Error(`the launcher started a child but did not report it on its status fd within ${UNREPORTED_CHILD_GRACE_MS} ms`);
    await Bun.sleep(2);
  }
}

/**
 * The reported pid is the launcher's own child (the sandbox's init, which holds the
 * command): a pid that died and was reused by an unrelated process has another parent.
 * Checked before the steps act on it and again after: the launcher forks that child once,
 * so the same parent afterwards means the steps acted on the init all along.
 */
function checkLauncherChild(launcher: SpawnedLauncher, childPid: number, when: string): void {
  const parent = parentOf(childPid);
  if (parent !== launcher.proc.pid) throw new Error(`the launcher's reported child ${childPid} is ${parent === null ? "gone" : `not its child (parent ${parent})`} ${when} the setup steps`);
}

/**
 * Release a held launcher once every setup step's beforeRelease succeeded. On a failure
 * the tree is killed BEFORE the block fd closes (bwrap treats EOF as a release too). A
 * launcher that does not hold its command (no block fd) has nothing to release.
 */
export async function release(launcher: SpawnedLauncher, setup: SetupSequence | null): Promise<Release> {
  const blockFd = launcher.blockFd;
  if (blockFd === null) {
    if (!setup?.needsRelease) return { setupError: null, heldBack: false };
    // A step must act before the command starts, but nothing holds it: never run without it.
    launcher.killTree();
    return { setupError: "a setup step must act before the command starts, but the launcher holds no release fd", heldBack: false };
  }
  let childPid: number | null = null;
  try {
    childPid = await waitForChildPid(launcher);
    checkLauncherChild(launcher, childPid, "before");
    await setup?.beforeRelease(childPid);
    checkLauncherChild(launcher, childPid, "after");
    writeSync(blockFd, "1"); // the command starts only now, with everything in place
    return { setupError: null, heldBack: false };
  } catch (e) {
    // The launcher ended on its own before the release (bwrap's setup failed, e.g. a bind
    // source is missing): the byte was never written, so its command never ran, and what
    // went wrong is the launcher's to say on its status fd and stderr (classify's rule 2).
    // Not a setup step's failure, and nothing to kill: its init is gone.
    // A launcher failing on its own takes a moment to exit after its init did: wait that
    // moment before calling this a step's failure (only on this failure path).
    if (!endedUnreleased(launcher, childPid)) await Promise.race([launcher.proc.exited, Bun.sleep(ENDED_GRACE_MS)]);
    if (endedUnreleased(launcher, childPid)) return { setupError: null, heldBack: false };
    const heldBack = launcher.commandHeldBack();
    launcher.killTree();
    return { setupError: e instanceof Error ? e.message : String(e), heldBack };
  }
}

/**
 * The launcher exited, or the child it reported (the namespace's init) is gone, before the
 * release. Gone includes exited and not yet reaped: a zombie still has the launcher as its
 * parent, and a step that acted on it in that moment (prlimit: ESRCH) is not what failed.
 */
function endedUnreleased(launcher: SpawnedLauncher, childPid: number | null): boolean {
  if (launcher.proc.exitCode !== null || launcher.proc.signalCode !== null) return true;
  return childPid !== null && (parentOf(childPid) !== launcher.proc.pid || exited(childPid));
}

/** The process has exited (a zombie awaiting its parent's wait, or gone): read from /proc. */
function exited(pid: number): boolean {
  try {
    return /^State:\s*[ZX]/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return true;
  }
}
