/**
 * An output flood: a script writing 1 GiB (or forever) to stdout, ended by the output cap.
 * The supervisor must read under the cap and stop the run, never hold the flood: its peak
 * RSS during the run (VmHWM, reset right before it) stays under 100 MB.
 *   bun bench/flood.ts [--flood-mib=N] [--quick]
 */
import type { RunRequest } from "../src/api/index.ts";
import { size } from "./lib/options.ts";
import { peakRss, resetPeakRss, rss } from "./lib/rss.ts";
import { goal, mib, ms, table } from "./lib/table.ts";
import { defaultVariants, runMain, type Variant } from "./lib/variants.ts";

const PEAK_GOAL_BYTES = 100 * 2 ** 20;

export async function measureFlood(variants: readonly Variant[] = defaultVariants()): Promise<string> {
  const floodMib = size("flood-mib", 1024, 64);
  const floods: [string, string][] = [
    [`head -c ${floodMib}M /dev/zero`, `head -c ${floodMib}M /dev/zero`],
    ["yes (never ends)", "exec yes"],
    [`stdout and stderr, ${floodMib} MiB each`, `head -c ${floodMib}M /dev/zero >&2 & head -c ${floodMib}M /dev/zero; wait`],
  ];
  const rows: string[][] = [];
  for (const v of variants) {
    for (const [label, source] of floods) {
      const request: RunRequest = { runner: "shell", script: { source }, args: [] };
      Bun.gc(true);
      const before = rss();
      resetPeakRss();
      const t = performance.now();
      const r = await v.cordon.run(request);
      const wall = performance.now() - t;
      const peak = peakRss();
      // The flood must end at the cap (limitHit output), its kept output within the cap.
      const capped = r.outcome === "limit" && r.limitHit === "output" && r.stdoutBytes.length <= r.sandbox!.requested.resources.maxOutputBytes;
      rows.push([label, v.label, capped ? `${r.outcome} (${r.limitHit})` : `NOT CAPPED: ${r.outcome} ${r.limitHit} ${r.error?.message ?? ""}`, mib(r.stdoutBytes.length), ms(wall), mib(before), goal(peak < PEAK_GOAL_BYTES, `${mib(peak)}, goal < 100 MB`)]);
    }
  }
  return table("Output flood ended by the output cap (default maxOutputBytes): supervisor RSS before the run and its peak during it (VmHWM)", ["flood", "variant", "outcome", "stdout kept", "wall ms", "RSS before", "peak RSS"], rows);
}

if (import.meta.main) await runMain(measureFlood);
