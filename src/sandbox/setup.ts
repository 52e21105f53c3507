/**
 * The supervisor's setup steps: what is built around the sandbox on the host, outside
 * the launcher (the run directory, the scratch quota mount, the run cgroup, a provider's
 * egress plumbing; later the syscall filter and the identity). Every step has the same
 * lifecycle, and the steps of a run are one ordered list, like nsjail's contain.cc
 * composing mnt/user/net/cgroup:
 *
 *   prepare        before the spawn, in order: nothing untrusted exists yet; a throw
 *                  refuses the run (thrown to the caller, like a plan refusal)
 *   beforeRelease  after the launcher reported its child, before the command is released
 *                  (bwrap --block-fd), in order: the race-free window for state that needs
 *                  the sandbox's namespaces; a throw ends the run before the script started
 *   cleanup        after the run, in REVERSE order, whatever happened, for every step the
 *                  run reached (a later step may stand on an earlier one: the cgroup goes
 *                  before the directory it was named after, slirp before the namespace's run)
 */

/** One setup step of a run. Every phase is optional; a step keeps its own state between them. */
export interface SetupStep {
  /** Names the step in error messages and tests. */
  readonly name: string;
  /**
   * What the step does is decided by the sandbox spec alone (bwrap's rlimits), with no state
   * of its own run (a resolved address, a helper): a warm sandbox whose spec equals a run's
   * has had exactly that run's step (src/pool/match.ts).
   */
  readonly specOnly?: boolean;
  prepare?(): Promise<void>;
  /** The pid the launcher reported (the sandbox's init: its namespaces are the run's). */
  beforeRelease?(childPid: number): Promise<void>;
  /** Release what the step made; called once, also when its own prepare failed half-way. */
  cleanup?(): Promise<void>;
}

/** Runs a run's steps through their lifecycle, in order; cleanup in reverse, whatever happens. */
export class SetupSequence {
  /** How many steps the run reached (prepare entered): those, and only those, are cleaned. */
  private reached = 0;

  constructor(readonly steps: readonly SetupStep[]) {}

  /** Some step must act between spawn and release: the launcher has to hold the command. */
  get needsRelease(): boolean {
    return this.steps.some((s) => s.beforeRelease);
  }

  async prepare(): Promise<void> {
    for (const step of this.steps) {
      this.reached++;
      await step.prepare?.();
    }
  }

  async beforeRelease(childPid: number): Promise<void> {
    for (const step of this.steps.slice(0, this.reached)) await step.beforeRelease?.(childPid);
  }

  /** Every reached step's cleanup runs even when one throws; the first error is rethrown after all ran. */
  async cleanup(): Promise<void> {
    const reached = this.steps.slice(0, this.reached).reverse();
    this.reached = 0;
    let first: { error: unknown } | null = null;
    for (const step of reached) {
      try {
        await step.cleanup?.();
      } catch (error) {
        first ??= { error };
      }
    }
    if (first) throw first.error;
  }
}
