/**
 * Per-run overhead of the sandbox, as ratios against a bare spawn measured in the
 * same run: median wall time of N runs of /bin/true and `python3 -c pass`.
 *   bun bench/overhead.ts [N]
 */
import { Cordon } from "../src/api/index.ts";
// Bench-only internals: the host facts and a provider's probe.
import { findExecutable, hostFacts } from "../src/host.ts";
import { probeOf } from "../src/provider.ts";
import { builtinProviders, builtinRunners } from "../plugins/index.ts";

const N = Number(process.argv[2] ?? 30);
const plugins = { providers: builtinProviders(), runners: builtinRunners() };
const cordon = new Cordon({}, plugins);
// The same runs without the cgroup layer (cgroups off; memory then falls back to RLIMIT_AS).
const withoutCgroups = new Cordon({ cgroups: "off" }, plugins);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(fn: () => Promise<unknown>): Promise<number[]> {
  await fn(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  return samples;
}

async function bare(argv: string[]) {
  const p = Bun.spawn(argv, { env: {}, stdout: "pipe", stderr: "pipe" });
  await Promise.all([new Response(p.stdout).arrayBuffer(), new Response(p.stderr).arrayBuffer(), p.exited]);
}

async function sandboxed(source: string, c: Cordon = cordon) {
  const r = await c.run({ runner: "shell", script: { source }, args: [] });
  if (r.outcome !== "ok") throw new Error(`sandboxed run failed: ${r.outcome} ${r.stderr}`);
}

const python = findExecutable("python3", "/usr/bin:/bin") ?? "/usr/bin/python3";
const cases: [string, string[], string][] = [
  ["/bin/true", ["/bin/true"], "exec /bin/true"],
  [`${python} -c pass`, [python, "-c", "pass"], `exec ${python} -c pass`],
];

console.log(`cordon overhead, ${N} runs each, median wall ms (bwrap provider, default policy)`);
console.log("| command | bare | bwrap | ratio | added |");
console.log("| --- | --- | --- | --- | --- |");
for (const [label, argv, source] of cases) {
  const b = median(await time(() => bare(argv)));
  const s = median(await time(() => sandboxed(source)));
  console.log(`| \`${label}\` | ${b.toFixed(2)} | ${s.toFixed(2)} | ${(s / b).toFixed(1)}x | +${(s - b).toFixed(1)} ms |`);
}

// Cost of the cgroup layer per run: create, join, read, remove — against the same run without it.
if (hostFacts().cgroups.problem === null) {
  const source = "exec /bin/true";
  const off = median(await time(() => sandboxed(source, withoutCgroups)));
  const on = median(await time(() => sandboxed(source)));
  console.log("");
  console.log(`cgroup layer (${hostFacts().cgroups.layout}), /bin/true under bwrap, median wall ms`);
  console.log("| without cgroup | with cgroup | ratio | added |");
  console.log("| --- | --- | --- | --- |");
  console.log(`| ${off.toFixed(2)} | ${on.toFixed(2)} | ${(on / off).toFixed(2)}x | +${(on - off).toFixed(1)} ms |`);
} else {
  console.log(`\ncgroup layer not measured: ${hostFacts().cgroups.problem}`);
}

// Cost of the syscall filter per run (BPF compiled once per process, written to the run dir,
// installed by bwrap) against the same run with privilege.seccomp false, interleaved so
// both see the same load. Filtered: a Python run, whose start makes a few hundred syscalls.
{
  const unfiltered = { onUnavailable: "degrade" as const, privilege: { seccomp: false } };
  const run = async (source: string, policy?: typeof unfiltered) => {
    const r = await cordon.run({ runner: "shell", script: { source }, args: [], ...(policy ? { policy } : {}) });
    if (r.outcome !== "ok") throw new Error(`run failed: ${r.outcome} ${r.stderr}`);
  };
  console.log("");
  console.log("syscall filter, bwrap, median wall ms (interleaved with the filter off)");
  console.log("| command | filter off | filter on | ratio | added |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const [label, source] of [["/bin/true", "exec /bin/true"], [`${python} -c pass`, `exec ${python} -c pass`]] as const) {
    await run(source);
    await run(source, unfiltered);
    const on: number[] = [];
    const off: number[] = [];
    for (let i = 0; i < N; i++) {
      let t = performance.now();
      await run(source, unfiltered);
      off.push(performance.now() - t);
      t = performance.now();
      await run(source);
      on.push(performance.now() - t);
    }
    const [a, b] = [median(off), median(on)];
    console.log(`| \`${label}\` | ${a.toFixed(2)} | ${b.toFixed(2)} | ${(b / a).toFixed(2)}x | ${b - a >= 0 ? "+" : ""}${(b - a).toFixed(2)} ms |`);
  }
}

// Cost of filtered egress: rootless with an allowlist (ruleset + slirp4netns per run)
// against bwrap with deny, /bin/true in both; nothing is contacted.
const rootless = await probeOf(builtinProviders().find((p) => p.name === "rootless")!, hostFacts());
if (rootless.available) {
  const allowlist = { network: { mode: "allowlist" as const, allow: ["192.0.2.10:443"] } };
  const deny = median(await time(() => sandboxed("exec /bin/true")));
  const filtered = median(
    await time(async () => {
      const r = await cordon.run({ runner: "shell", provider: "rootless", policy: allowlist, script: { source: "exec /bin/true" }, args: [] });
      if (r.outcome !== "ok") throw new Error(`rootless run failed: ${r.outcome} ${r.error?.message ?? r.stderr}`);
    }),
  );
  console.log("");
  console.log("filtered egress, /bin/true, median wall ms");
  console.log("| bwrap, deny | rootless, allowlist | ratio | added |");
  console.log("| --- | --- | --- | --- |");
  console.log(`| ${deny.toFixed(2)} | ${filtered.toFixed(2)} | ${(filtered / deny).toFixed(2)}x | +${(filtered - deny).toFixed(1)} ms |`);
} else {
  console.log(`\nrootless not measured: ${rootless.reason}`);
}

// The readiness report (every registered provider, probed in parallel): its time budget.
{
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const reports = await cordon.readiness({ refresh: true });
    samples.push(performance.now() - t);
    if (i === 0) console.log(`\nreadiness of ${reports.map((r) => `${r.provider} (${r.durationMs} ms)`).join(", ")}`);
  }
  console.log(`readiness report, all providers in parallel: median ${median(samples).toFixed(0)} ms over 3 runs (budget ~2000 ms on 2 cores)`);
}

// nsjail, where it is installed (not packaged in Debian): against a bare spawn and bwrap.
const nsjailProvider = builtinProviders().find((p) => p.name === "nsjail");
const nsjail = nsjailProvider ? await probeOf(nsjailProvider, hostFacts()) : undefined;
if (nsjail?.available) {
  const bareTrue = median(await time(() => bare(["/bin/true"])));
  const viaBwrap = median(await time(() => sandboxed("exec /bin/true")));
  const viaNsjail = median(
    await time(async () => {
      const r = await cordon.run({ runner: "shell", provider: "nsjail", script: { source: "exec /bin/true" }, args: [] });
      if (r.outcome !== "ok") throw new Error(`nsjail run failed: ${r.outcome} ${r.error?.message ?? r.stderr}`);
    }),
  );
  console.log("\nnsjail, /bin/true, median wall ms");
  console.log("| bare | bwrap | nsjail | nsjail vs bare | nsjail vs bwrap |");
  console.log("| --- | --- | --- | --- | --- |");
  console.log(`| ${bareTrue.toFixed(2)} | ${viaBwrap.toFixed(2)} | ${viaNsjail.toFixed(2)} | ${(viaNsjail / bareTrue).toFixed(1)}x | ${(viaNsjail / viaBwrap).toFixed(2)}x |`);
} else {
  console.log(`\nnsjail not measured: ${nsjail?.reason ?? "not registered"}`);
}
