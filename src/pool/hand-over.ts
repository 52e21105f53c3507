/**
 * The hand-over message an interpreter's waiter reads on JOB_FD (src/protocol/index.ts):
 * one JSON object, `{ argv, env, inProcess }`, on one line; the waiter acknowledges it
 * with one byte before it becomes the run. JSON carries any string exactly;
 * a string that is not well-formed UTF-16 (a lone surrogate) would not arrive as a cold
 * start gets it (the launcher args are UTF-8), so such a run is not handed over.
 *
 * `inProcess`: the waiter's interpreter runs the script itself (its start-up already paid);
 * false: it execs argv with env, exactly as the launcher would have.
 */
import { JOB_FD } from "../protocol/index.ts";
import type { PlannedCommand, WarmStart } from "../runner.ts";
import type { Job } from "../sandbox/spec.ts";

const encoder = new TextEncoder();

/** Every variable matching `names` has the same value (or is absent) in both environments. */
function sameVariables(a: PlannedCommand["env"], b: PlannedCommand["env"], names: RegExp): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)].filter((k) => names.test(k)));
  return [...keys].every((k) => a[k] === b[k]);
}

function wellFormed(run: PlannedCommand): boolean {
  return [...run.command, ...Object.keys(run.env), ...Object.values(run.env)].every((s) => s.isWellFormed());
}

function interpreterHandOver(run: PlannedCommand, inProcess: boolean): Uint8Array | null {
  if (!wellFormed(run)) return null;
  // One line (JSON escapes every newline): the waiter reads to the newline, then acknowledges.
  return encoder.encode(`${JSON.stringify({ argv: run.command, env: run.env, inProcess })}\n`);
}

/**
 * The warm start of an interpreter runner (Python, Bun): the waiter is the run's own
 * interpreter, flags and entry script (`job.argv`), told `--cordon-warm JOB_FD`, with the
 * run's files, binds and runner variables. A run with that same start and the same
 * `startUpVariables` is run by the started interpreter; any other is exec'd afresh by it
 * (`otherwise: "exec"`) or not handed over at all (`"cold"`: an interpreter that cannot exec).
 */
export function interpreterWarmStart(job: Job, startUpVariables: RegExp, otherwise: "exec" | "cold"): WarmStart {
  const start = job.argv.length;
  const sameStart = (a: PlannedCommand, b: PlannedCommand) => a.command.slice(0, start).join("\0") === b.command.slice(0, start).join("\0") && sameVariables(a.env, b.env, startUpVariables);
  return {
    waiter: { ...job, argv: [...job.argv, "--cordon-warm", String(JOB_FD)] },
    handOver: (run, waiter) => (sameStart(run, waiter) ? interpreterHandOver(run, true) : otherwise === "exec" ? interpreterHandOver(run, false) : null),
  };
}
