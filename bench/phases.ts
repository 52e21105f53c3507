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

/** A point in a run: wall clock and this process's CPU time (user + system), ms. */
interface Mark {
  wall: number;
  cpu: number;
}

function mark(): Mark {
  const u = process.cpuUsage();
  return { wall: performance.now(), cpu: (u.user + u.system) / 1000 };
}

/** One run of `c` the way Cordon.run makes it: the wall and supervisor CPU time of each phase (ms). */
async function phasedRun(cordon: Cordon, c: BenchCase): Promise<{ wall: number[]; cpu: number[] }> {
  const m0 = mark();
  const { planned, lease } = await prepareOf(cordon)(c.request, []);
  const m1 = mark();
  let spawned: Mark | null = null;
  let supervised: Mark | null = null;
  try {
    const { outputFiles, maxResultBytes, cgroupParent } = cordon.config;
    const r = await runInSandbox(planned, {
      outputFiles: outputFiles.collect ? outputFiles : null,
      maxResultBytes,
      cgroupParent,
      beforeSpawn: () => void (spawned = mark()),
      inspect: () => void (supervised = mark()),
    });
    const why = c.wrong(r);
    if (why) throw new Error(`${c.label}, phased run: ${why}`);
  } finally {
    lease?.release();
  }
  const m4 = mark();
  if (!spawned || !supervised) throw new Error("bench: runInSandbox no longer calls beforeSpawn and inspect");
  const marks: Mark[] = [m0, m1, spawned, supervised, m4];
  const phase = (key: keyof Mark) => [...marks.slice(1).map((m, i) => m[key] - marks[i]![key]), m4[key] - m0[key]];
  return { wall: phase("wall"), cpu: phase("cpu") };
}

export async function measurePhases(variants: readonly Variant[] = defaultVariants(), rounds = size("rounds", 20, 2)): Promise<string> {
  const c = TRUE_CASE;
  const cordon = variants[0]!.cordon; // phases of a cold run: the first variant's
  await cordon.run(c.request); // warm-up, and the once-per-Cordon stale cleanup
  await phasedRun(cordon, c);
  await rawRendered(cordon, c.request);
  const wall: number[][] = PHASES.map(() => []);
  const cpu: number[][] = PHASES.map(() => []);
  const raw: number[] = [];
  const rawCpu: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? ["lib", "raw"] : ["raw", "lib"];
    for (const which of order) {
      if (which === "raw") {
        const r = await rawRendered(cordon, c.request);
        raw.push(r.ms);
        rawCpu.push(r.cpuMs);
      }
      else {
        const p = await phasedRun(cordon, c);
        p.wall.forEach((x, i) => wall[i]!.push(x));
        p.cpu.forEach((x, i) => cpu[i]!.push(x));
      }
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const rows = PHASES.map((label, i) => [label, ms(median(wall[i]!)), ms(percentile(wall[i]!, 90)), ms(mean(cpu[i]!))]);
  rows.push(["raw-rendered command, spawn to exit", ms(median(raw)), ms(percentile(raw, 90)), ms(mean(rawCpu))]);
  return table(
    `Where a run's time goes, ${variants[0]!.label}, ${c.label}, ${rounds} rounds interleaved with the raw-rendered command; wall ms, and the supervisor's own CPU ms (what bounds runs/s on 2 cores)`,
    ["phase", "wall median", "wall p90", "supervisor CPU, mean"],
    rows,
  );
}

if (import.meta.main) await runMain(measurePhases);
