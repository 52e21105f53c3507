/**
 * Per-run latency: bare command vs the raw-rendered command vs each Cordon variant, for
 * /bin/true, python `print('ok')` and an ESM check, interleaved per round (lib/interleave.ts).
 * library / raw-rendered is cordon's own cost around the sandbox it spawns (goal ≤ 1.2x for
 * /bin/true); raw-rendered / bare is the sandbox's.
 *   bun bench/latency.ts [--rounds=N] [--quick]
 */
import { ESM_CASE, PYTHON_CASE, runBare, runChecked, TRUE_CASE, type BenchCase } from "./lib/cases.ts";
import { interleave, timed, type Timed } from "./lib/interleave.ts";
import { size } from "./lib/options.ts";
import { rawRendered } from "./lib/rendered.ts";
import { median, percentile } from "./lib/stats.ts";
import { ms, ratio, table } from "./lib/table.ts";
import { defaultVariants, runMain, type Variant } from "./lib/variants.ts";

/** cordon's own cost over the command it spawns, for /bin/true. */
const OWN_COST_GOAL = 1.2;

function timedVariants(c: BenchCase, variants: readonly Variant[]): Timed[] {
  const rendering = variants[0]!.cordon;
  return [
    { label: "bare", once: () => timed(() => runBare(c)) },
    {
      label: `raw-rendered (${variants[0]!.label}'s command)`,
      once: async () => {
        const raw = await rawRendered(rendering, c.request);
        const why = c.rawWrong(raw);
        if (why) throw new Error(`${c.label}, raw-rendered: ${why}`);
        return raw.ms;
      },
    },
    ...variants.map((v) => ({ label: v.label, once: () => timed(() => runChecked(v.cordon, c)) })),
  ];
}

export async function measureLatency(variants: readonly Variant[] = defaultVariants(), rounds = size("rounds", 20, 2)): Promise<string> {
  const rows: string[][] = [];
  for (const c of [TRUE_CASE, PYTHON_CASE, ESM_CASE]) {
    const timedOnes = timedVariants(c, variants);
    const samples = await interleave(rounds, timedOnes);
    const [bare, raw] = [median(samples.get(timedOnes[0]!.label)!), median(samples.get(timedOnes[1]!.label)!)];
    for (const { label } of timedOnes) {
      const s = samples.get(label)!;
      const m = median(s);
      const own = label === "bare" || label === timedOnes[1]!.label ? "" : ratio(m, raw) + (c === TRUE_CASE ? ` (goal ≤ ${OWN_COST_GOAL}x)` : "");
      rows.push([c.label, label, ms(m), ms(percentile(s, 90)), label === "bare" ? "" : ratio(m, bare), own]);
    }
  }
  const bareNote = `bare: /bin/true, python3 -c, ${"`bun -e`"} for the ESM check`;
  return table(`Latency per run, ${rounds} interleaved rounds, wall ms (${bareNote}; noisy when other work shares the cores)`, ["run", "variant", "median", "p90", "vs bare", "vs raw-rendered"], rows);
}

if (import.meta.main) await runMain(measureLatency);
