/**
 * The hand-over message an interpreter's waiter reads on JOB_FD (src/protocol/index.ts):
 * one JSON object, `{ argv, env, inProcess }`, then EOF. JSON carries any string exactly;
 * a string that is not well-formed UTF-16 (a lone surrogate) would not arrive as a cold
 * start gets it (the launcher args are UTF-8), so such a run is not handed over.
 *
 * `inProcess`: the waiter's interpreter runs the script itself (its start-up already paid);
 * false: it execs argv with env, exactly as the launcher would have.
 */
import type { PlannedCommand } from "../runner.ts";

const encoder = new TextEncoder();

/** Every variable matching `names` has the same value (or is absent) in both environments. */
export function sameVariables(a: PlannedCommand["env"], b: PlannedCommand["env"], names: RegExp): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)].filter((k) => names.test(k)));
  return [...keys].every((k) => a[k] === b[k]);
}

function wellFormed(run: PlannedCommand): boolean {
  return [...run.command, ...Object.keys(run.env), ...Object.values(run.env)].every((s) => s.isWellFormed());
}

export function interpreterHandOver(run: PlannedCommand, inProcess: boolean): Uint8Array | null {
  if (!wellFormed(run)) return null;
  return encoder.encode(JSON.stringify({ argv: run.command, env: run.env, inProcess }));
}
