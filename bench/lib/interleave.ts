/**
 * Interleaved timing: each round runs every variant once, in an order rotated per round,
 * so drifting host load (other sessions' tests on the same 2 cores) hits all variants alike
 * and no variant always runs right after the same neighbour.
 */
export interface Timed {
  label: string;
  /** One timed run, returning its wall time in ms (checks correctness itself: throws when wrong). */
  once: () => Promise<number>;
}

/** Samples per label after one untimed warm-up of each. */
export async function interleave(rounds: number, variants: readonly Timed[]): Promise<Map<string, number[]>> {
  const samples = new Map(variants.map((v) => [v.label, [] as number[]]));
  for (const v of variants) await v.once(); // warm-up: lazy imports, page cache, probes
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < variants.length; i++) {
      const v = variants[(i + r) % variants.length]!;
      samples.get(v.label)!.push(await v.once());
    }
  }
  return samples;
}

/** Wall time of one async call, in ms. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}
