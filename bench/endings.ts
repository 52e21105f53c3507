/**
 * Every way a run can end, each a few times, then the leak check (lib/leaks.ts): the error
 * paths (killed at the wall clock, at the output cap, by the OOM killer, a refused plan, a
 * script leaving processes behind) are where cleanup is most easily skipped.
 *   bun bench/endings.ts [--repeats=N] [--quick]
 */
import type { Cordon, RunRequest, RunResult } from "../src/api/index.ts";
import { hostState, leaksAfter } from "./lib/leaks.ts";
import { size } from "./lib/options.ts";
import { table } from "./lib/table.ts";
import { defaultVariants, runMain, type Variant } from "./lib/variants.ts";

interface Ending {
  label: string;
  request: RunRequest;
  /** What the run must come back as: `outcome` or `outcome (limitHit)`, or `thrown` for a refusal. */
  expected: string | ((cordon: Cordon) => string);
}

const shell = (source: string, policy?: RunRequest["policy"]): RunRequest => ({ runner: "shell", script: { source }, args: [], ...(policy ? { policy } : {}) });

const ENDINGS: Ending[] = [
  { label: "exit 3", request: shell("exit 3"), expected: "exit-nonzero" },
  { label: "wall clock (sleep past 300 ms)", request: shell("exec sleep 5", { resources: { wallMs: 300 } }), expected: "timeout (wall)" },
  { label: "output cap (yes)", request: shell("exec yes"), expected: "limit (output)" },
  {
    label: "memory cap (python allocating 200 MiB under 32 MiB)",
    request: { runner: "python", script: { source: "b = bytearray(200 * 1024 * 1024)" }, args: [], policy: { resources: { memoryBytes: 32 * 2 ** 20 } } },
    // Without usable cgroups the cap is RLIMIT_AS: Python's MemoryError, an ordinary failing exit.
    expected: (cordon) => (cordon.host().cgroups.problem === null ? "limit (memory)" : "exit-nonzero"),
  },
  { label: "processes left behind (sleep &, setsid sleep &)", request: shell("sleep 60 & setsid sleep 60 & echo ok"), expected: "ok" },
  { label: "refused plan (allowlist under onUnavailable fail on bwrap)", request: { ...shell("echo never"), provider: "bwrap", policy: { onUnavailable: "fail", network: { mode: "allowlist", allow: ["192.0.2.10:443"] } } }, expected: "thrown" },
];

async function ending(cordon: Cordon, request: RunRequest): Promise<string> {
  let r: RunResult;
  try {
    r = await cordon.run(request);
  } catch {
    return "thrown";
  }
  return r.limitHit ? `${r.outcome} (${r.limitHit})` : r.outcome;
}

export async function measureEndings(variants: readonly Variant[] = defaultVariants()): Promise<string> {
  const repeats = size("repeats", 5, 1);
  const rows: string[][] = [];
  for (const v of variants) {
    await v.cordon.run(shell("true")); // warm-up: the first run's stale cleanup and lazy loads are not leaks
    for (const e of ENDINGS) {
      const before = hostState(v.cordon);
      const seen = new Map<string, number>();
      for (let i = 0; i < repeats; i++) {
        const got = await ending(v.cordon, e.request);
        seen.set(got, (seen.get(got) ?? 0) + 1);
      }
      const leaks = await leaksAfter(v.cordon, before);
      const outcomes = [...seen].map(([o, n]) => `${o} ×${n}`).join(", ");
      const expected = typeof e.expected === "string" ? e.expected : e.expected(v.cordon);
      const right = seen.size === 1 && seen.has(expected);
      rows.push([e.label, v.label, right ? outcomes : `UNEXPECTED: ${outcomes} (expected ${expected})`, leaks.length ? leaks.join("; ") : "none"]);
    }
  }
  return table(`Every ending, ${repeats} runs each, then what is left on the host (run dirs, cgroups, mounts, identity processes, leases and claim files, fds)`, ["ending", "variant", "outcomes", "leaks"], rows);
}

if (import.meta.main) await runMain(measureEndings);
