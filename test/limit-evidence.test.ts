/**
 * A script must not forge cordon's verdicts. bwrap (and nsjail's `timeout` init) report a
 * death by signal N as exit status 128+N, which a plain `exit 128+N` imitates exactly, so
 * a limit verdict (outcome `limit`, CLI status 123) is decided from evidence the script
 * cannot write: the run cgroup's counters (CPU used, OOM kills, pids.max hits) and the
 * rlimits cordon set. And a script's own exit status never reads as one of cordon's own
 * CLI statuses (70, 123-126).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { MiB, type PolicyOverride, type RunResult } from "../src/api/index.ts";
import { hostFacts } from "../src/host.ts";
import { refineWithCgroup } from "../src/sandbox/classify.ts";
import { BASE_POLICY, cpuMsOf, describeResult, freshRunRoot, makeCordon, removeTempDirs, runCli, tempDir } from "./support.ts";

afterAll(() => removeTempDirs());

const CGROUPS = hostFacts().cgroups.problem === null;
/** Limit verdicts need the run cgroup's counters: only where a run gets a cgroup. */
const cgTest = test.skipIf(!CGROUPS);
if (!CGROUPS) console.warn(`limit-evidence tests: cgroups not usable (${hostFacts().cgroups.problem}): the genuine-limit tests are skipped`);

const cordon = makeCordon(freshRunRoot("evidence"));

function shell(source: string, policy: PolicyOverride = {}, provider?: string): Promise<RunResult> {
  return cordon.run({ runner: "shell", script: { source }, args: [], ...(provider ? { provider } : {}), policy: { ...BASE_POLICY, ...policy } });
}

/** A CLI config and scripts of this file's own. */
const dir = tempDir("evidence-cli", 0o711);
const config = join(dir, "config.json");
writeFileSync(config, JSON.stringify({ runRoot: join(dir, "runs") }));
function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}
const degrade = file("degrade.json", JSON.stringify({ onUnavailable: "degrade" }));

describe("an exit status that looks like a limit signal is not a limit", () => {
  test("exit 152 (128 + SIGXCPU) with a few ms of CPU: no cpu verdict; the signal is marked as read from the exit status", async () => {
    const r = await shell("exit 152", { resources: { cpuSeconds: 1 } });
    expect([r.outcome, r.limitHit, r.exitCode], describeResult(r)).toEqual(["killed", null, 152]);
    expect([r.signal, r.signalSource]).toEqual(["SIGXCPU", "exit-status"]);
    if (CGROUPS) expect(cpuMsOf(r)).toBeLessThan(1000);
  });

  test("exit 152 after burning less CPU than the budget: still not a cpu verdict", async () => {
    const r = await shell("i=0; while [ $i -lt 60000 ]; do i=$((i+1)); done; exit 152", { resources: { cpuSeconds: 1, wallMs: 20_000 } });
    expect([r.outcome, r.limitHit, r.exitCode], describeResult(r)).toEqual(["killed", null, 152]);
    if (CGROUPS) {
      expect(cpuMsOf(r), describeResult(r)).toBeGreaterThan(0);
      expect(cpuMsOf(r), describeResult(r)).toBeLessThan(900);
    }
  });

  test("exit 153 (128 + SIGXFSZ) is no fsize verdict", async () => {
    const r = await shell("exit 153");
    expect([r.outcome, r.limitHit, r.exitCode, r.signal, r.signalSource], describeResult(r)).toEqual(["killed", null, 153, "SIGXFSZ", "exit-status"]);
  });

  test("exit 137 (128 + SIGKILL) under a 1 s CPU budget is no cpu verdict", async () => {
    const r = await shell("exit 137", { resources: { cpuSeconds: 1 } });
    expect([r.outcome, r.limitHit, r.exitCode, r.signal, r.signalSource], describeResult(r)).toEqual(["killed", null, 137, "SIGKILL", "exit-status"]);
  });

  test("kill -XCPU $$ is a real signal death, not a limit: killed, SIGXCPU, no limitHit", async () => {
    const r = await shell("kill -XCPU $$", { resources: { cpuSeconds: 1 } });
    expect([r.outcome, r.limitHit, r.exitCode, r.signal], describeResult(r)).toEqual(["killed", null, 152, "SIGXCPU"]);
  });

  test("kill -XFSZ $$: killed, SIGXFSZ, no limitHit", async () => {
    const r = await shell("kill -XFSZ $$");
    expect([r.outcome, r.limitHit, r.signal], describeResult(r)).toEqual(["killed", null, "SIGXFSZ"]);
  });

  test("a plain exit status is no signal at all", async () => {
    const r = await shell("exit 3");
    expect([r.outcome, r.exitCode, r.signal, r.signalSource ?? null], describeResult(r)).toEqual(["exit-nonzero", 3, null, null]);
  });

  test("unsafe provider (the real wait status): exit 152 is an exit status; kill -XCPU $$ is a signal read from the wait status, not a limit", async () => {
    const own = await shell("exit 152", { onUnavailable: "degrade" }, "unsafe");
    expect([own.outcome, own.limitHit, own.exitCode, own.signal], describeResult(own)).toEqual(["exit-nonzero", null, 152, null]);
    const sig = await shell("kill -XCPU $$", { onUnavailable: "degrade" }, "unsafe");
    expect([sig.outcome, sig.limitHit, sig.signal, sig.signalSource], describeResult(sig)).toEqual(["killed", null, "SIGXCPU", "wait-status"]);
  });
});

describe("CLI: a script's own status never reads as one of cordon's", () => {
  for (const own of [70, 123, 124, 125, 126]) {
    test(`exit ${own}: status 1, --json keeps exitCode ${own}`, async () => {
      const s = file(`own${own}.sh`, `exit ${own}\n`);
      const plain = await runCli(["run", "--config", config, s]);
      expect(plain.code, plain.stderr).toBe(1);
      const json = await runCli(["run", "--config", config, "--json", s]);
      expect(json.code, json.stderr).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({ outcome: "exit-nonzero", exitCode: own, limitHit: null, signal: null });
    });
  }

  test("statuses next to cordon's pass through unchanged (122, 127, 69, 71)", async () => {
    for (const own of [122, 127, 69, 71]) {
      const r = await runCli(["run", "--config", config, file(`pass${own}.sh`, `exit ${own}\n`)]);
      expect(r.code, r.stderr).toBe(own);
    }
  });

  test("exit 152 and exit 153: the script's own status (152, 153), never the limit status 123", async () => {
    for (const own of [152, 153]) {
      const s = file(`forge${own}.sh`, `exit ${own}\n`);
      const json = await runCli(["run", "--config", config, "--json", s]);
      expect(json.code, json.stderr).toBe(own);
      expect(JSON.parse(json.stdout)).toMatchObject({ outcome: "killed", exitCode: own, limitHit: null, signalSource: "exit-status" });
      const plain = await runCli(["run", "--config", config, s]);
      expect(plain.code).toBe(own);
      expect(plain.stderr).not.toContain("limit=");
    }
  });

  test("unsafe provider: a real signal death exits 128+N (never the internal-error 70)", async () => {
    const json = await runCli(["run", "--config", config, "--provider", "unsafe", "--policy", degrade, "--json", file("unsafe-kill.sh", "kill -KILL $$\n")]);
    expect(json.code, json.stderr).toBe(128 + 9);
    expect(JSON.parse(json.stdout)).toMatchObject({ outcome: "killed", exitCode: null, signal: "SIGKILL", signalSource: "wait-status" });
  });
});

describe("genuine limits are still reported, from the cgroup's evidence", () => {
  cgTest("a CPU burn past cpuSeconds: limit cpu, SIGXCPU, the tree's CPU at the budget; CLI status 123", async () => {
    const r = await shell("while :; do :; done", { resources: { cpuSeconds: 1, wallMs: 20_000 } });
    if (r.outcome === "timeout") return console.warn(`limit-evidence: the burn got ${cpuMsOf(r)} ms of CPU in 20 s (busy host)`);
    expect([r.outcome, r.limitHit, r.signal], describeResult(r)).toEqual(["limit", "cpu", "SIGXCPU"]);
    expect(cpuMsOf(r)).toBeGreaterThanOrEqual(950);
    const cli = await runCli(["run", "--config", config, "--policy", file("cpu1.json", JSON.stringify({ resources: { cpuSeconds: 1, wallMs: 20_000 } })), file("burn.sh", "while :; do :; done\n")]);
    expect(cli.code, cli.stderr).toBe(123);
    expect(cli.stderr).toContain("limit=cpu");
  }, 60_000);

  cgTest("memory: an OOM kill in the run cgroup is limit memory", async () => {
    const r = await shell("a=$(head -c 400000000 /dev/zero | tr '\\0' x); echo survived", { resources: { memoryBytes: 32 * MiB } });
    expect([r.outcome, r.limitHit], describeResult(r)).toEqual(["limit", "memory"]);
  }, 60_000);

  cgTest("pids: a failed run that hit pids.max is limit pids", async () => {
    const r = await shell("i=0; while [ $i -lt 40 ]; do sleep 2 & i=$((i+1)); done; wait", { resources: { maxProcesses: 8 } });
    expect([r.outcome, r.limitHit, r.stats?.pidsLimitHit], describeResult(r)).toEqual(["limit", "pids", true]);
  }, 60_000);

  test("a write past maxFileSizeBytes stops at the cap; the SIGXFSZ death is the script's own (no fsize verdict: nothing the script cannot forge says it)", async () => {
    const r = await shell(`head -c ${2 * MiB} /dev/zero > big; echo "size=$(stat -c %s big)"; exec head -c ${2 * MiB} /dev/zero > big2`, { resources: { maxFileSizeBytes: 1 * MiB } });
    expect(r.stdout, describeResult(r)).toBe(`size=${1 * MiB}\n`);
    expect([r.outcome, r.limitHit, r.exitCode, r.signal, r.signalSource], describeResult(r)).toEqual(["killed", null, 153, "SIGXFSZ", "exit-status"]);
  }, 60_000);
});

describe("the cpu verdict's rule (the cgroup's counters, not the exit status)", () => {
  const quiet = { oomKilled: false, pidsLimitHit: false };
  const used = (ms: number | null) => ({ peakMemoryBytes: null, cpuUserMs: ms, cpuSystemMs: ms === null ? null : 0, peakProcesses: null });
  const killedBy = (signal: string | null, outcome: "killed" | "exit-nonzero" = "killed") => ({ outcome, limitHit: null, signal });

  test("SIGXCPU or SIGKILL with the tree at the budget (50 ms tolerance) is cpu; below it, or unmeasured, it stays the script's own", () => {
    expect(refineWithCgroup(killedBy("SIGXCPU"), quiet, used(960), 1)).toEqual({ outcome: "limit", limitHit: "cpu" });
    expect(refineWithCgroup(killedBy("SIGKILL"), quiet, used(2100), 1)).toEqual({ outcome: "limit", limitHit: "cpu" });
    expect(refineWithCgroup(killedBy("SIGXCPU"), quiet, used(940), 1)).toEqual({ outcome: "killed", limitHit: null });
    expect(refineWithCgroup(killedBy("SIGKILL"), quiet, used(12), 1)).toEqual({ outcome: "killed", limitHit: null });
    expect(refineWithCgroup(killedBy("SIGXCPU"), quiet, used(null), 1)).toEqual({ outcome: "killed", limitHit: null });
  });

  test("other signals and plain exits are never cpu, whatever the CPU used", () => {
    expect(refineWithCgroup(killedBy("SIGTERM"), quiet, used(50_000), 1)).toEqual({ outcome: "killed", limitHit: null });
    expect(refineWithCgroup(killedBy(null, "exit-nonzero"), quiet, used(50_000), 1)).toEqual({ outcome: "exit-nonzero", limitHit: null });
  });
});
