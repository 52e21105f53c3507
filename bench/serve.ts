/**
 * The HTTP layer's cost: the same runs (shell `echo ok`), the same cordon config (the pool
 * `cordon serve` uses by default, its own identity range), `concurrency` at once, N runs each:
 *   library  Cordon.run in this process, `concurrency` workers;
 *   service  POST /v1/runs to a `cordon serve` child on 127.0.0.1 through autocannon with
 *            `concurrency` keep-alive connections (serve.concurrency.global = concurrency,
 *            so the service runs as many at once as the library does; its queue holds the rest).
 * The two sides take turns, `rounds` chunks of N/rounds each, so other work on the host weighs on
 * both alike; each chunk starts from a full pool. Every result is checked (outcome ok, stdout
 * "ok\n"); at the end, what each side left on the host.
 * The ratio table is the service over the library: runs/s, p50, p99, supervisor CPU per run.
 *   bun bench/serve.ts [--runs=N] [--concurrency=N] [--rounds=N] [--quick]
 */
import { readFileSync } from "node:fs";
import { Cordon, type CordonConfigInput } from "../src/api/index.ts";
import { hostBusyMs } from "./lib/cpu.ts";
import { SHELL_ECHO_CASE, runChecked } from "./lib/cases.ts";
import { hostState, leaksAfter } from "./lib/leaks.ts";
import { QUICK, size } from "./lib/options.ts";
import { percentile } from "./lib/stats.ts";
import { ms, ratio, table } from "./lib/table.ts";
import { plugins } from "./lib/variants.ts";
import { runLoad } from "../test/support/http-load.ts";
import { provenReadiness, startServe, stopServes, type ServeChild } from "../test/support/serve.ts";
import { removeTempDirs } from "../test/support/temp.ts";
import { freshIdentityRange } from "../test/support/identity.ts";

export interface Side {
  label: string;
  runs: number;
  seconds: number;
  latencies: number[];
  wrong: number;
  firstWrong: string | null;
  /** CPU ms of the process that supervises the runs (this one, or the serve child), and of the whole host. */
  supervisorCpuMs: number;
  hostCpuMs: number;
  /** CPU ms of the load generator (autocannon, in this process), service side only. */
  clientCpuMs: number | null;
  leaks: string[];
}

/** The cordon config both sides run with: the pool `cordon serve` sizes when the config does not, an identity range of their own. */
const POOL_SIZE = 2;

function sharedConfig(): CordonConfigInput {
  return { pool: { size: POOL_SIZE }, identity: freshIdentityRange(64) };
}

/** user + system CPU ms of a process, from /proc/PID/stat (clock ticks of 10 ms). */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const ownCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const emptySide = (label: string, clientCpu: boolean): Side => ({ label, runs: 0, seconds: 0, latencies: [], wrong: 0, firstWrong: null, supervisorCpuMs: 0, hostCpuMs: 0, clientCpuMs: clientCpu ? 0 : null, leaks: [] });

/** One side of the comparison, started and warmed: `chunk(n)` adds n checked runs to its totals, `finish()` stops it and looks for leftovers. */
interface Driver {
  side: Side;
  chunk(n: number): Promise<void>;
  finish(): Promise<void>;
}

/** The library: a Cordon in this process, `concurrency` workers each starting its next run when the last returned. */
async function libraryDriver(config: CordonConfigInput, concurrency: number): Promise<Driver> {
  const cordon = new Cordon(config, plugins);
  const side = emptySide("library: Cordon.run in process", false);
  for (let i = 0; i < concurrency; i++) await runChecked(cordon, SHELL_ECHO_CASE); // warm-up: lazy imports, probes, the pool
  await cordon.poolSettled();
  const before = hostState(cordon);
  return {
    side,
    async chunk(n) {
      const cpu0 = ownCpuMs();
      const host0 = hostBusyMs();
      const t0 = performance.now();
      let started = 0;
      const worker = async () => {
        while (started < n) {
          started++;
          const t = performance.now();
          try {
            await runChecked(cordon, SHELL_ECHO_CASE);
            side.latencies.push(performance.now() - t);
          } catch (e) {
            side.wrong++;
            side.firstWrong ??= e instanceof Error ? e.message : String(e);
          }
          side.runs++;
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      side.seconds += (performance.now() - t0) / 1000;
      side.supervisorCpuMs += ownCpuMs() - cpu0;
      side.hostCpuMs += hostBusyMs() - host0;
      await cordon.poolSettled(); // the next chunk starts from a full pool, as the service's does
    },
    async finish() {
      try {
        side.leaks = await leaksAfter(cordon, before);
      } finally {
        await cordon.close();
      }
    },
  };
}

/** Readiness is proven in the background when serve starts: wait for it, so its probes are not measured. */
async function readinessProven(serve: ServeChild): Promise<void> {
  const { status } = await provenReadiness(serve);
  if (status !== 200) throw new Error(`cordon serve: /v1/readiness is ${status}; stderr ${serve.stderr().slice(-1000)}`);
}

/** Waits until the serve child's pool is full again (cordon_pool_idle at the pool's size), at most 5 s. */
async function servePoolSettled(serve: ServeChild, poolSize: number): Promise<void> {
  const deadline = performance.now() + 5_000;
  while (performance.now() < deadline) {
    const text = await (await fetch(`${serve.url}/metrics`)).text();
    const idle = text.split("\n").filter((l) => l.startsWith("cordon_pool_idle")).reduce((n, l) => n + Number(l.split(" ").pop()), 0);
    if (idle >= poolSize) return;
    await Bun.sleep(50);
  }
}

/** The service: a `cordon serve` child with serve.concurrency.global = concurrency, autocannon with as many connections. */
async function serviceDriver(config: CordonConfigInput, concurrency: number, poolSize: number): Promise<Driver> {
  const serve = await startServe({
    label: "bench-serve",
    config: { ...config, serve: { concurrency: { global: concurrency, perToken: concurrency }, queue: { max: 4 * concurrency, maxWaitMs: 120_000 } } },
  });
  const side = emptySide("service: POST /v1/runs, autocannon on loopback", true);
  const body = SHELL_ECHO_CASE.request;
  const check = (status: number, text: string) => {
    if (status !== 200) return `status ${status}: ${text.slice(0, 300)}`;
    const r = JSON.parse(text) as { outcome?: string; stdout?: string; stderr?: string };
    return r.outcome === "ok" && r.stdout === "ok\n" ? null : `outcome ${r.outcome}, stdout ${JSON.stringify(r.stdout)}, stderr ${r.stderr?.slice(0, 300)}`;
  };
  try {
    await readinessProven(serve);
    const warm = await runLoad({ url: serve.url, token: serve.token, body, amount: concurrency, connections: concurrency, deadlineMs: 120_000, check });
    if (warm.wrong > 0 || warm.responses < concurrency) throw new Error(`cordon serve warm-up: ${warm.firstWrong.join(" | ") || `${warm.responses} responses`}`);
    await servePoolSettled(serve, poolSize);
  } catch (e) {
    await stopServes("bench serve");
    throw e;
  }
  return {
    side,
    async chunk(n) {
      const cpu0 = processCpuMs(serve.pid);
      const own0 = ownCpuMs();
      const host0 = hostBusyMs();
      const load = await runLoad({ url: serve.url, token: serve.token, body, amount: n, connections: concurrency, timeoutSeconds: 120, deadlineMs: 3_600_000, check });
      side.runs += load.responses;
      side.seconds += load.seconds;
      side.latencies.push(...load.latencies200);
      side.wrong += load.wrong + load.errors + (n - load.responses);
      side.firstWrong ??= load.firstWrong[0] ?? (load.errors ? `${load.errors} connection errors (${load.timeouts} timeouts)` : null);
      side.supervisorCpuMs += processCpuMs(serve.pid) - cpu0;
      side.hostCpuMs += hostBusyMs() - host0;
      side.clientCpuMs! += ownCpuMs() - own0;
      await servePoolSettled(serve, poolSize);
    },
    async finish() {
      try {
        const code = await serve.stop();
        if (code !== 0) side.leaks.push(`serve exited ${code}`);
        // The host's pid 1 reaps sandbox inits a little after: look again for up to 5 s.
        let left: string[] = [];
        for (let i = 0; i < 50; i++) {
          left = Object.entries(serve.leftovers()).filter(([, v]) => v.length > 0).map(([k, v]) => `${v.length} ${k}: ${v.slice(0, 3).join(", ")}`);
          if (left.length === 0) break;
          await Bun.sleep(100);
        }
        side.leaks.push(...left);
      } finally {
        await stopServes("bench serve");
      }
    },
  };
}

const rate = (s: Side) => (s.runs - s.wrong) / s.seconds;

export async function measureServe(): Promise<string> {
  const n = size("runs", 1000, 20);
  const concurrency = size("concurrency", 16, 4);
  const rounds = size("rounds", 4, 2);
  const drivers: Driver[] = [];
  try {
    drivers.push(await libraryDriver(sharedConfig(), concurrency));
    drivers.push(await serviceDriver(sharedConfig(), concurrency, POOL_SIZE));
    // Interleaved chunks, so load from other work on the host falls on both sides alike.
    for (let r = 0; r < rounds; r++) for (const d of drivers) await d.chunk(Math.ceil(n / rounds));
  } finally {
    for (const d of drivers) await d.finish();
  }
  const [lib, svc] = drivers.map((d) => d.side) as [Side, Side];
  const row = (s: Side) => [
    s.label,
    String(s.runs),
    String(concurrency),
    rate(s).toFixed(1),
    ms(percentile(s.latencies, 50)),
    ms(percentile(s.latencies, 99)),
    ms(s.supervisorCpuMs / s.runs),
    s.clientCpuMs === null ? "-" : ms(s.clientCpuMs / s.runs),
    ms(s.hostCpuMs / s.runs),
    String(s.wrong),
    s.leaks.length ? s.leaks.join("; ") : "none",
  ];
  const problems = [lib, svc].filter((s) => s.firstWrong).map((s) => `\nWRONG RESULTS: ${s.label}: ${s.wrong} wrong, first: ${s.firstWrong}`);
  return [
    table(
      `The service against the library, shell \`echo ok\`, ${lib.runs} runs each in ${rounds} interleaved rounds, ${concurrency} at once (the service: serve.concurrency.global ${concurrency}, autocannon with ${concurrency} connections on loopback), both with pool size 2 (serve's default); latency ms (the service: of the client, HTTP included); supervisor CPU = this process for the library, the serve child for the service; client CPU = autocannon, in this process; host CPU counts every process on the host; leaks = run dirs, cgroups, mounts, processes left after the runs (the service: after its SIGTERM)`,
      ["variant", "runs", "concurrency", "runs/s", "p50", "p99", "supervisor CPU ms/run", "client CPU ms/run", "host CPU ms/run", "wrong", "leaks"],
      [row(lib), row(svc)],
    ),
    table(
      "The HTTP layer's cost: the service over the library, same run",
      ["runs/s ratio (service ÷ library)", "p50 ratio", "p99 ratio", "supervisor CPU/run ratio", "host CPU/run ratio"],
      [[ratio(rate(svc), rate(lib)), ratio(percentile(svc.latencies, 50), percentile(lib.latencies, 50)), ratio(percentile(svc.latencies, 99), percentile(lib.latencies, 99)), ratio(svc.supervisorCpuMs / svc.runs, lib.supervisorCpuMs / lib.runs), ratio(svc.hostCpuMs / svc.runs, lib.hostCpuMs / lib.runs)]],
    ),
    ...problems,
  ].join("\n");
}

if (import.meta.main) {
  const loadAverage = async () => (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
  console.log(`cordon bench serve${QUICK ? " (quick: sizes too small to mean anything)" : ""}; ${navigator.hardwareConcurrency} cores, load average ${await loadAverage()}`);
  try {
    console.log(await measureServe());
  } finally {
    removeTempDirs();
  }
  console.log(`\nload average at the end ${await loadAverage()}`);
}
