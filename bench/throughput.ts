/**
 * Throughput: as many runs as a Cordon completes in a fixed time, `concurrency` at once,
 * every one checked correct (outcome ok, stdout right); the concurrency is the best of a
 * short probe of several (2 cores: 2, 4, 8). Afterwards the host must hold nothing the runs
 * made (lib/leaks.ts).
 *   bun bench/throughput.ts [--duration=S] [--probe=S] [--concurrency=N] [--quick]
 */
import type { Cordon } from "../src/api/index.ts";
import { PYTHON_CASE, runChecked, SHELL_ECHO_CASE, type BenchCase } from "./lib/cases.ts";
import { startCpuMeter } from "./lib/cpu.ts";
import { hostState, leaksAfter } from "./lib/leaks.ts";
import { QUICK, size } from "./lib/options.ts";
import { percentile } from "./lib/stats.ts";
import { goal, ms, table } from "./lib/table.ts";
import { defaultVariants, runMain, type Variant } from "./lib/variants.ts";

/** Runs per second the issue asks for (they need a warm pool; cold runs are the reference). */
const GOALS = new Map<BenchCase, number>([
  [SHELL_ECHO_CASE, 150],
  [PYTHON_CASE, 60],
]);

export interface Drive {
  runs: number;
  seconds: number;
  latencies: number[];
  /** Runs that came back wrong or threw, with the first reason. */
  wrong: number;
  firstWrong: string | null;
  /** CPU ms during the drive: this process's, and the whole host's. */
  cpu: { supervisorMs: number; hostMs: number };
  /** CPU ms the runs' own cgroups counted (the sandboxed processes), summed; null without cgroups. */
  sandboxCpuMs: number | null;
}

/** One run; resolves with the CPU ms its own cgroup counted (null: not measured), throws when it came back wrong. */
type Once = () => Promise<number | null>;

function viaCordon(cordon: Cordon, c: BenchCase): Once {
  return async () => {
    const r = await runChecked(cordon, c);
    return r.stats?.cpuUserMs != null ? r.stats.cpuUserMs + (r.stats.cpuSystemMs ?? 0) : null;
  };
}

/**
 * The floor no supervisor can go under: the case's bare command in a hand-written bwrap of
 * the same shape as cordon's (root dropped, every namespace new, read-only /usr, fresh /proc,
 * /dev and /tmp, no environment), a fresh one per run, no cordon at all.
 */
function rawBwrap(c: BenchCase): Once {
  const argv = [
    "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
    "env", "-i", "bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--hostname", "cordon",
    "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
    "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp", ...c.bare,
  ];
  return async () => {
    const p = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0 || stdout !== c.bareStdout) throw new Error(`${c.label}, raw bwrap: exit ${code}, stdout ${JSON.stringify(stdout.slice(0, 100))}, stderr ${stderr.slice(0, 200)}`);
    return null;
  };
}

/** `concurrency` workers, each starting its next run as soon as the last returned, until the time is up. */
export async function drive(once: Once, concurrency: number, seconds: number): Promise<Drive> {
  const out: Drive = { runs: 0, seconds: 0, latencies: [], wrong: 0, firstWrong: null, cpu: { supervisorMs: 0, hostMs: 0 }, sandboxCpuMs: null };
  const cpu = startCpuMeter();
  const start = performance.now();
  const deadline = start + seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const t = performance.now();
      try {
        const sandboxCpu = await once();
        out.latencies.push(performance.now() - t);
        if (sandboxCpu !== null) out.sandboxCpuMs = (out.sandboxCpuMs ?? 0) + sandboxCpu;
      } catch (e) {
        out.wrong++;
        out.firstWrong ??= e instanceof Error ? e.message : String(e);
      }
      out.runs++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  out.seconds = (performance.now() - start) / 1000;
  out.cpu = cpu.read();
  return out;
}

const rate = (d: Drive) => (d.runs - d.wrong) / d.seconds;

/** The concurrency with the most correct runs per second in a short probe of each. */
async function bestConcurrency(once: Once, candidates: readonly number[], probeSeconds: number): Promise<number> {
  let best = { concurrency: candidates[0]!, rate: -1 };
  for (const concurrency of candidates) {
    const r = rate(await drive(once, concurrency, probeSeconds));
    if (r > best.rate) best = { concurrency, rate: r };
  }
  return best.concurrency;
}

export async function measureThroughput(variants: readonly Variant[] = defaultVariants()): Promise<string> {
  const seconds = size("duration", 60, 1);
  const probeSeconds = size("probe", 5, 0.5);
  // A concurrency given (--concurrency=N, BENCH_CONCURRENCY) skips the probe.
  const given = process.argv.some((a) => a.startsWith("--concurrency=")) || Boolean(process.env.BENCH_CONCURRENCY);
  const candidates = given ? [size("concurrency", 2, 2)] : QUICK ? [2] : [2, 4, 8];
  const rows: string[][] = [];
  const problems: string[] = [];
  for (const [c, goalRate] of GOALS) {
    const once = rawBwrap(c);
    const concurrency = candidates.length > 1 ? await bestConcurrency(once, candidates, probeSeconds) : candidates[0]!;
    const d = await drive(once, concurrency, seconds);
    const r = rate(d);
    rows.push([c.label, "raw bwrap, no cordon (the floor)", String(concurrency), String(d.runs), r.toFixed(1), goal(r >= goalRate, `≥ ${goalRate}`), ms(percentile(d.latencies, 50)), ms(percentile(d.latencies, 99)), ms(d.cpu.supervisorMs / d.runs), "-", "-", ms(d.cpu.hostMs / d.runs), String(d.wrong), "-"]);
    if (d.firstWrong) problems.push(`${c.label}, raw bwrap: ${d.wrong} wrong, first: ${d.firstWrong}`);
  }
  for (const v of variants) {
    for (const [c, goalRate] of GOALS) {
      await runChecked(v.cordon, c); // warm-up: lazy imports, stale cleanup, probes
      const before = hostState(v.cordon);
      const once = viaCordon(v.cordon, c);
      const concurrency = candidates.length > 1 ? await bestConcurrency(once, candidates, probeSeconds) : candidates[0]!;
      const d = await drive(once, concurrency, seconds);
      const leaks = await leaksAfter(v.cordon, before);
      const r = rate(d);
      // What the cores allow at this CPU cost per run, whatever the concurrency: cores × 1000 / (supervisor + sandbox CPU ms).
      const perRun = d.cpu.supervisorMs / d.runs + (d.sandboxCpuMs ?? 0) / Math.max(1, d.runs - d.wrong);
      const ceiling = (navigator.hardwareConcurrency * 1000) / perRun;
      rows.push([c.label, v.label, String(concurrency), String(d.runs), r.toFixed(1), goal(r >= goalRate, `≥ ${goalRate}`), ms(percentile(d.latencies, 50)), ms(percentile(d.latencies, 99)), ms(d.cpu.supervisorMs / d.runs), d.sandboxCpuMs === null ? "-" : ms(d.sandboxCpuMs / (d.runs - d.wrong)), ceiling.toFixed(0), ms(d.cpu.hostMs / d.runs), String(d.wrong), leaks.length ? leaks.join("; ") : "none"]);
      if (d.firstWrong) problems.push(`${c.label}, ${v.label}: ${d.wrong} wrong, first: ${d.firstWrong}`);
    }
  }
  const how = candidates.length > 1 ? `concurrency: best of ${candidates.join(", ")} in ${probeSeconds} s probes` : `concurrency ${candidates[0]}`;
  return [
    table(`Throughput, ${seconds} s per row (${how}); latency ms; CPU ceiling = cores × 1000 / (supervisor + sandbox CPU ms per run), the most runs/s this CPU cost allows; host CPU counts every process on the host (other work too); leaks = run dirs, cgroups, mounts, identity processes, leases and claim files, fds left after the runs`, ["run", "variant", "concurrency", "runs", "runs/s", "goal runs/s", "p50", "p99", "supervisor CPU ms/run", "sandbox CPU ms/run (its cgroup)", "CPU ceiling runs/s", "host CPU ms/run", "wrong", "leaks"], rows),
    ...problems.map((p) => `\nWRONG RESULTS: ${p}`),
  ].join("\n");
}

if (import.meta.main) await runMain(measureThroughput);
