/**
 * Supervisor memory over many sequential runs: RSS (and the JS heap) sampled every
 * `every` runs after a full GC. What a long-lived supervisor keeps per run shows up as
 * growth from the first sample to the last (goal ≤ +10 MB from run 100 to run 1000).
 *   bun bench/memory.ts [--runs=N] [--every=N] [--quick]
 */
import { heapStats } from "bun:jsc";
import { runChecked, SHELL_ECHO_CASE } from "./lib/cases.ts";
import { size } from "./lib/options.ts";
import { rss } from "./lib/rss.ts";
import { goal, mib, table } from "./lib/table.ts";
import { defaultVariants, runMain, type Variant } from "./lib/variants.ts";

const GROWTH_GOAL_BYTES = 10 * 2 ** 20;

interface Sample {
  runs: number;
  rss: number;
  heap: number;
  objects: number;
}

function sample(runs: number): Sample {
  Bun.gc(true);
  const h = heapStats();
  return { runs, rss: rss(), heap: h.heapSize, objects: h.objectCount };
}

export async function measureMemory(variants: readonly Variant[] = defaultVariants()): Promise<string> {
  const total = size("runs", 1000, 20);
  const every = size("every", 100, 5);
  const out: string[] = [];
  for (const v of variants) {
    const samples: Sample[] = [];
    for (let i = 1; i <= total; i++) {
      await runChecked(v.cordon, SHELL_ECHO_CASE);
      if (i % every === 0) samples.push(sample(i));
    }
    const [first, last] = [samples[0]!, samples.at(-1)!];
    const growth = last.rss - first.rss;
    const rows = samples.map((s) => [String(s.runs), mib(s.rss), mib(s.heap), String(s.objects)]);
    rows.push([`growth ${first.runs} -> ${last.runs}`, goal(growth <= GROWTH_GOAL_BYTES, `${growth >= 0 ? "+" : ""}${mib(growth)}, goal ≤ +10 MB`), `${last.heap - first.heap >= 0 ? "+" : ""}${mib(last.heap - first.heap)}`, `${last.objects - first.objects >= 0 ? "+" : ""}${last.objects - first.objects}`]);
    out.push(table(`Supervisor memory, ${v.label}: ${total} sequential ${SHELL_ECHO_CASE.label} runs, sampled every ${every} after a full GC`, ["runs", "RSS", "JS heap", "JS objects"], rows));
  }
  return out.join("\n");
}

if (import.meta.main) await runMain(measureMemory);
