/**
 * The Cordons a measurement compares. Every measurement takes a list of variants, so
 * another configuration (a warm pool, say) is one more entry here:
 *   { label: "cordon warm", cordon: new Cordon({ ...benchConfig, ... }, plugins) }
 */
import { Cordon, type CordonConfigInput, type Plugins } from "../../src/api/index.ts";
import { builtinProviders, builtinRunners } from "../../plugins/index.ts";

export interface Variant {
  label: string;
  cordon: Cordon;
  /** Give back what the variant holds between runs (a pool's idle launchers), once the bench is done with it. */
  close?: () => Promise<void>;
}

export const plugins: Plugins = { providers: builtinProviders(), runners: builtinRunners() };

/**
 * The shipped defaults, except for the identity range: the bench's own ids, so the leak
 * check can tell a process the bench left behind from one of a test run elsewhere on the
 * host (those use the default range). The range changes no cost of a run.
 */
export const benchConfig: CordonConfigInput = { identity: { base: 2_000_100_000, count: 64 } };

/** Sandboxes a warm variant keeps ready per shape: enough for the concurrency throughput picks. */
const WARM_POOL_SIZE = 8;

export function defaultVariants(): Variant[] {
  const warm = new Cordon({ ...benchConfig, pool: { size: WARM_POOL_SIZE, memoryBytes: 2 * 1024 ** 3 } }, plugins);
  return [
    { label: "cordon cold", cordon: new Cordon(benchConfig, plugins) },
    { label: `cordon warm (pool ${WARM_POOL_SIZE})`, cordon: warm, close: () => warm.close() },
  ];
}

/**
 * A measurement as a script: build the variants, print its tables, close the variants (a
 * variant holding processes would otherwise keep the bench alive).
 */
export async function runMain(measure: (variants: readonly Variant[]) => Promise<string>): Promise<void> {
  const variants = defaultVariants();
  try {
    console.log(await measure(variants));
  } finally {
    for (const v of variants) await v.close?.();
  }
}
