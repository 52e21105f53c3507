/**
 * May this warm sandbox run this run? A pooled sandbox was built from its waiter's plan;
 * the run is planned for the same workspace and host identity, and the two plans must be
 * the same sandbox: every layer's decision (mounts, network, rlimits, cgroup caps,
 * privilege, seccomp program), the launcher's own argv up to the command, and every staged
 * file outside the job directory. Only the command and its environment may differ: the
 * waiter is handed those (JOB_FD). Anything else differs, and the run starts cold; a
 * sandbox built for one policy is never used for another.
 */
import { isDeepStrictEqual } from "node:util";
import type { SandboxSpec, SpawnPlan, StagedFile, Workspace } from "../sandbox/spec.ts";

/** The spec without what a hand-over carries (the command, the environment). */
function sandboxOf(spec: SandboxSpec): Omit<SandboxSpec, "command" | "env"> {
  const { command: _command, env: _env, ...rest } = spec;
  return rest;
}

/** The launcher's argv without the command at its end (the rendered argv ends with the spec's command). */
function launcherPart(plan: SpawnPlan): string[] | null {
  const { argv } = plan;
  const command = plan.spec.command;
  const at = argv.length - command.length;
  if (at < 0 || command.some((word, i) => argv[at + i] !== word)) return null;
  return argv.slice(0, at);
}

/** bwrap's --args file without its --setenv triples (the environment is the hand-over's). */
function launcherArgsWithoutEnv(args: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (let i = 0; i < (args?.length ?? 0); i++) {
    if (args![i] === "--setenv") i += 2;
    else out.push(args![i]!);
  }
  return out;
}

function stagedOutside(stage: readonly StagedFile[], jobPrefix: string): StagedFile[] {
  return stage.filter((f) => !f.path.startsWith(jobPrefix));
}

/**
 * The run's job files a warm sandbox does not have yet (its waiter's are there already),
 * or why the two job directories cannot be the same (a shared path with other content).
 */
export function jobFilesToAdd(waiter: SpawnPlan, run: SpawnPlan, workspace: Workspace): StagedFile[] | string {
  const jobPrefix = `${workspace.jobDir.slice(workspace.root.length + 1)}/`;
  const have = new Map(waiter.stage.filter((f) => f.path.startsWith(jobPrefix)).map((f) => [f.path, f]));
  const add: StagedFile[] = [];
  for (const file of run.stage.filter((f) => f.path.startsWith(jobPrefix))) {
    const there = have.get(file.path);
    if (!there) add.push(file);
    else if (!isDeepStrictEqual(there, file)) return `job file ${file.path.slice(jobPrefix.length)} differs from the waiter's`;
  }
  return add;
}

/**
 * A provider's own steps: only steps decided by the spec alone (which the checks compare)
 * may differ in object; a step with state of its own run (egress plumbing) never matches.
 */
export function providerStepsMismatch(waiter: SpawnPlan, run: SpawnPlan): string | null {
  const names = (plan: SpawnPlan) => (plan.steps ?? []).map((s) => s.name);
  const stateful = [...(waiter.steps ?? []), ...(run.steps ?? [])].find((s) => !s.specOnly);
  if (stateful) return `the provider's setup step ${stateful.name} holds state of its own run`;
  return isDeepStrictEqual(names(waiter), names(run)) ? null : "the provider's setup steps differ";
}

/** Why `run` cannot be run in the sandbox built from `waiter`'s plan, or null when it is the same sandbox. */
export function sandboxMismatch(waiter: SpawnPlan, run: SpawnPlan, workspace: Workspace): string | null {
  const jobPrefix = `${workspace.jobDir.slice(workspace.root.length + 1)}/`;
  const checks: [string, unknown, unknown][] = [
    ["the layers' decisions", sandboxOf(waiter.spec), sandboxOf(run.spec)],
    ["the launcher's command line", launcherPart(waiter), launcherPart(run)],
    ["the launcher's arguments", launcherArgsWithoutEnv(waiter.launcherArgs), launcherArgsWithoutEnv(run.launcherArgs)],
    ["the staged files", stagedOutside(waiter.stage, jobPrefix), stagedOutside(run.stage, jobPrefix)],
    ["the syscall filter", waiter.seccompBpf ?? null, run.seccompBpf ?? null],
    ["the launcher's identity and environment", [waiter.spawnAs, waiter.env, waiter.cwd], [run.spawnAs, run.env, run.cwd]],
    ["the launcher's protocol", [waiter.treeKill, waiter.exitEncoding, waiter.statusFd, waiter.blockFd], [run.treeKill, run.exitEncoding, run.statusFd, run.blockFd]],
    ["the supervisor's limits", [waiter.wallMs, waiter.maxOutputBytes, waiter.maxStdinBytes, waiter.cgroup, waiter.scratch, waiter.freshKeyring], [run.wallMs, run.maxOutputBytes, run.maxStdinBytes, run.cgroup, run.scratch, run.freshKeyring]],
  ];
  if (launcherPart(run) === null) return "the run's command is not at the end of the launcher's argv";
  const steps = providerStepsMismatch(waiter, run);
  if (steps) return steps;
  for (const [what, a, b] of checks) if (!isDeepStrictEqual(a, b)) return `${what} differ`;
  const files = jobFilesToAdd(waiter, run, workspace);
  return typeof files === "string" ? files : null;
}
