/**
 * Every measurement in one run, one markdown table each, all against the same variants
 * (lib/variants.ts: add a Cordon there and every table gets a row for it).
 *   bun bench/all.ts [--quick]     (BENCH_QUICK=1: everything tiny, for tests)
 * Sizes: --rounds (latency), --duration and --probe (throughput, seconds),
 * --concurrency (throughput, skips the probe), --runs and --every (memory), --flood-mib,
 * --repeats (endings).
 */
import { measureEndings } from "./endings.ts";
import { measureFlood } from "./flood.ts";
import { measureLatency } from "./latency.ts";
import { measureMemory } from "./memory.ts";
import { measurePhases } from "./phases.ts";
import { QUICK } from "./lib/options.ts";
import { runMain, type Variant } from "./lib/variants.ts";
import { measureThroughput } from "./throughput.ts";

const loadAverage = async () => (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");

async function all(variants: readonly Variant[]): Promise<string> {
  const started = performance.now();
  console.log(`cordon bench${QUICK ? " (quick: sizes too small to mean anything)" : ""}: ${variants.map((v) => v.label).join(", ")}; ${navigator.hardwareConcurrency} cores, load average ${await loadAverage()}`);
  console.log("Absolute numbers move with host load; compare the ratios, which are measured in the same run.");
  // Latency first (the fewest runs behind it), throughput last (the longest).
  for (const measure of [measureLatency, measurePhases, measureFlood, measureEndings, measureMemory, measureThroughput]) console.log(await measure(variants));
  return `\nbench took ${((performance.now() - started) / 1000).toFixed(0)} s; load average at the end ${await loadAverage()} (above 2 on 2 cores: other work competed for the CPU)`;
}

await runMain(all);
