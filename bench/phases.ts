/**
 * Where a cold library run's time goes, against the raw-rendered command (lib/rendered.ts),
 * interleaved: validation, identity lease and plan (Cordon's prepare step); setup (run dir,
 * scratch mount, cgroup) up to the spawn; spawn to the end of supervision (release
 * handshake, pipes, classification); result decoding, output files and cleanup. The run is
 * the one Cordon.run makes (runInSandbox with the config's options), timed at the hooks
 * runInSandbox offers (beforeSpawn, inspect), so nothing here re-implements a run.
 *   bun bench/phases.ts [--rounds=N] [--quick]
 */
import type { Cordon } from "../src/api/index.ts";
import { runInSandbox } from "../src/sandbox/run.ts";
import { TRUE_CASE, type BenchCase } from "./lib/cases.ts";
import { size } from "./lib/options.ts";
import { prepareOf, rawRendered } from "./lib/rendered.ts";
import { median, percentile } from "./lib/stats.ts";
import { ms, table } from "./lib/table.ts";
import { defaultVariants, runMain, type Variant } from "./lib/variants.ts";

const PHASES = ["prepare (validate, lease, plan)", "setup until spawn", "spawn to end of supervision", "result, output files, cleanup", "whole run"] as const;

/** One run of `c` the way Cordon.run makes it, with the time of each phase (ms). */
async function phasedRun(cordon: Cordon, c: BenchCase): Promise<number[]> {
  const t0 = performance.now();
  const { planned, lease } = await prepareOf(cordon)(c.request, []);
  const t1 = performance.now();
  let spawned = Number.NaN;
  let supervised = Number.NaN;
  try {
    const { outputFiles, maxResultBytes, cgroupParent } = cordon.config;
    const r = await runInSandbox(planned, {
      outputFiles: outputFiles.collect ? outputFiles : null,
      maxResultBytes,
      cgroupParent,
      beforeSpawn: () => void (spawned = performance.now()),
      inspect: () => void (supervised = performance.now()),
    });
    const why = c.wrong(r);
    if (why) throw new Error(`${c.label}, phased run: ${why}`);
  } finally {
    lease?.release();
  }
  const t4 = performance.now();
  return [t1 - t0, spawned - t1, supervised - spawned, t4 - supervised, t4 - t0];
}

export async function measurePhases(variants: readonly Variant[] = defaultVariants(), rounds = size("rounds", 20, 2)): Promise<string> {
  const c = TRUE_CASE;
  const cordon = variants[0]!.cordon; // phases of a cold run: the first variant's
  await cordon.run(c.request); // warm-up, and the once-per-Cordon stale cleanup
  await phasedRun(cordon, c);
  await rawRendered(cordon, c.request);
  const phases: number[][] = PHASES.map(() => []);
  const raw: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? ["lib", "raw"] : ["raw", "lib"];
    for (const which of order) {
      if (which === "raw") raw.push((await rawRendered(cordon, c.request)).ms);
      else (await phasedRun(cordon, c)).forEach((x, i) => phases[i]!.push(x));
    }
  }
  const rows = PHASES.map((label, i) => [label, ms(median(phases[i]!)), ms(percentile(phases[i]!, 90))]);
  rows.push(["raw-rendered command, spawn to exit", ms(median(raw)), ms(percentile(raw, 90))]);
  return table(`Where a run's time goes, ${variants[0]!.label}, ${c.label}, ${rounds} rounds interleaved with the raw-rendered command, wall ms`, ["phase", "median", "p90"], rows);
}

if (import.meta.main) await runMain(measurePhases);
