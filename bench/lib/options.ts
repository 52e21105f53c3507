/**
 * How big each measurement is. Full sizes by default; BENCH_QUICK=1 (or --quick) makes
 * everything tiny so tests and CI can run every module in seconds. A single size can be
 * set with --NAME=VALUE or BENCH_NAME=VALUE (e.g. --duration=10, BENCH_DURATION=10).
 */
export const QUICK = process.env.BENCH_QUICK === "1" || process.argv.includes("--quick");

/** A numeric size: argv --name=V, then env BENCH_NAME, then the quick or full default. */
export function size(name: string, full: number, quick: number): number {
  const flag = process.argv.find((a) => a.startsWith(`--${name}=`));
  const raw = flag?.slice(name.length + 3) ?? process.env[`BENCH_${name.toUpperCase().replace(/-/g, "_")}`];
  if (raw !== undefined && raw !== "") {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`bench: --${name} must be a positive number, got ${raw}`);
    return n;
  }
  return QUICK ? quick : full;
}
