/**
 * The script collectors over real sandboxed runs (bwrap, no mocks): verdicts,
 * timeouts, secret masking, config migration and validation, aggregation, and
 * refusals that come back as results.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cordonClient, VersionedDataError, type CollectorStrategy, type HealthCheckRunForAggregation, type PolicyOverride, type RunRequest, type RunResult, type TransportClient } from "../src/api/index.ts";
import {
  esmCollector,
  healthStatus,
  OUTPUT_CAP_BYTES,
  pythonCollector,
  shellCollector,
  type ScriptAggregated,
  type ScriptCollector,
  type ScriptConfig,
  type ScriptResult,
} from "../plugins/collector-script/index.ts";
import { freshRunRoot, makeCordon, removeTempDirs, runRootEntries, tempDir, token } from "./support.ts";

// Type-level: each collector is a CollectorStrategy over the cordon transport (checked by `bun run typecheck`).
type Cordoned<C, R, A> = CollectorStrategy<TransportClient<RunRequest, RunResult>, C, R, A>;
const _shell: Cordoned<ScriptConfig, ScriptResult, ScriptAggregated> = shellCollector;
const _python: Cordoned<ScriptConfig, ScriptResult, ScriptAggregated> = pythonCollector;
const _esm: Cordoned<ScriptConfig, ScriptResult, ScriptAggregated> = esmCollector;
void [_shell, _python, _esm];

const runRoot = freshRunRoot("collectors");
const client = cordonClient(makeCordon(runRoot));
const scripts = tempDir("collector-scripts");
afterAll(removeTempDirs);

/** Bun cannot be memory-capped without cgroups: an esm check must opt into degrade. */
const ESM_POLICY: PolicyOverride = { onUnavailable: "degrade" };

interface Case {
  collector: ScriptCollector;
  policy?: PolicyOverride;
  pass: string;
  /** esm: checkstack's numeric `value` is charted as metrics.value. */
  passMetrics: Record<string, number>;
  fail: string;
  hang: string;
  /** Echoes $TOKEN and $LATE to stdout and puts them in the message (and, where it can, a metric name). */
  leak: string;
  file: { name: string; content: string };
}

const CASES: Record<"shell" | "python" | "esm", Case> = {
  shell: {
    collector: shellCollector,
    pass: 'cordon-result ok "all fine" n=1',
    passMetrics: { n: 1 },
    fail: 'cordon-result crit "broken"',
    hang: "sleep 30",
    leak: 'echo "token=$TOKEN late=$LATE"; cordon-result warn "token $TOKEN late $LATE" "k_$TOKEN=1"',
    file: { name: "check.sh", content: 'cordon-result ok "from file $1"\n' },
  },
  python: {
    collector: pythonCollector,
    pass: 'import cordon\ncordon.result("ok", "all fine", metrics={"n": 1})',
    passMetrics: { n: 1 },
    fail: 'import cordon\ncordon.result("crit", "broken")',
    hang: "import time\ntime.sleep(30)",
    leak: 'import os, cordon\nt, l = os.environ["TOKEN"], os.environ["LATE"]\nprint(f"token={t} late={l}")\ncordon.result("warn", f"token {t} late {l}", metrics={"k_" + t: 1})',
    file: { name: "check.py", content: 'import sys, cordon\ncordon.result("ok", "from file " + sys.argv[1])\n' },
  },
  esm: {
    collector: esmCollector,
    policy: ESM_POLICY,
    pass: 'return { success: true, message: "all fine", value: 1.5 };',
    passMetrics: { value: 1.5 },
    fail: 'return { success: false, message: "broken" };',
    hang: "await new Promise((r) => setTimeout(r, 30_000));",
    leak: 'console.log(`token=${ctx.env.TOKEN} late=${ctx.env.LATE}`);\nreturn { status: "warn", message: `token ${ctx.env.TOKEN} late ${ctx.env.LATE}`, metrics: { [`k_${ctx.env.TOKEN}`]: 1 } };',
    file: { name: "check.ts", content: 'export default (ctx: { args: string[] }) => ({ status: "ok", message: `from file ${ctx.args[0]}` });\n' },
  },
};

function configFor(c: Case, data: Record<string, unknown>): ScriptConfig {
  return c.collector.config.parse({ version: 2, data: { ...(c.policy ? { policy: c.policy } : {}), ...data } });
}

async function run(c: Case, data: Record<string, unknown>, secretEnv?: Record<string, string>) {
  return c.collector.execute({ config: configFor(c, data), client, pluginId: "cordon", ...(secretEnv ? { secretEnv } : {}) });
}

for (const [name, c] of Object.entries(CASES)) {
  describe(`cordon.${name}`, () => {
    test("a passing check is ok and healthy, with the sandbox summary", async () => {
      const { result, error } = await run(c, { script: c.pass });
      expect(error).toBeUndefined();
      expect(result).toMatchObject({ status: "ok", message: "all fine", metrics: c.passMetrics, exitCode: 0, timedOut: false });
      expect(result.metrics).toEqual(c.passMetrics);
      expect(result.executionTimeMs).toBeGreaterThan(0);
      expect(result.sandbox?.provider).toBe("bwrap");
      expect(result.sandbox?.enforced).toContain("network");
      expect(healthStatus(result)).toBe("healthy");
      expect(c.collector.result.validate(result)).toEqual(result);
    });

    test("a failing check is crit and unhealthy", async () => {
      const { result, error } = await run(c, { script: c.fail });
      expect(error).toBeUndefined();
      expect(result).toMatchObject({ status: "crit", message: "broken", timedOut: false });
      expect(healthStatus(result)).toBe("unhealthy");
    });

    test("a check that hangs past timeoutMs is killed and reported as timed out", async () => {
      const { result } = await run(c, { script: c.hang, timeoutMs: 400 });
      expect(result.timedOut).toBe(true);
      expect(result.status).toBe("crit");
      expect(result.message).toContain("timed out");
      expect(result.executionTimeMs).toBeLessThan(5_000);
    });

    test("a script file runs with its arguments", async () => {
      const file = join(scripts, c.file.name);
      writeFileSync(file, c.file.content);
      const { result } = await run(c, { file, args: ["arg1"] });
      expect(result).toMatchObject({ status: "ok", message: "from file arg1" });
    });

    test("stored and just-in-time secrets are masked in the whole result", async () => {
      const stored = token("stored");
      const late = token("late");
      const out = await run(c, { script: c.leak, secretEnv: { TOKEN: stored } }, { LATE: late });
      const text = JSON.stringify(out);
      expect(text).not.toContain(stored);
      expect(text).not.toContain(late);
      expect(out.result.status).toBe("warn");
      expect(out.result.message).toBe("token **** late ****");
      expect(out.result.output).toContain("token=**** late=****");
      expect(Object.keys(out.result.metrics ?? {})).toEqual(["k_****"]);
    });
  });
}

describe("secrets in errors", () => {
  test("a secret in a thrown exception is masked in the message", async () => {
    const secret = token("boom");
    const out = await run(CASES.python, { script: 'import os\nraise RuntimeError("bad " + os.environ["TOKEN"])' }, { TOKEN: secret });
    expect(out.result.status).toBe("crit");
    expect(out.result.message).toContain("bad ****");
    expect(JSON.stringify(out)).not.toContain(secret);
  });

  test("a secret in a thrown CordonError is masked by the client", async () => {
    const secret = token("path");
    const file = join(scripts, `${secret}.sh`); // missing: cordon throws a JobInputError naming the path
    const direct = await client.exec({ runner: "shell", script: { file }, args: [], secretEnv: { TOKEN: secret } });
    expect(direct).toMatchObject({ outcome: "error", error: { code: "invalid-job" } });
    expect(direct.error?.message).toContain("****.sh");
    const out = await run(CASES.shell, { file }, { TOKEN: secret });
    expect(out.error).toContain("****.sh");
    expect(JSON.stringify(out)).not.toContain(secret);
  });

  test("a client that throws is an unknown result with the masked message", async () => {
    const secret = token("lost");
    const config = configFor(CASES.esm, { script: "return 1;" });
    const out = await esmCollector.execute({ config, pluginId: "cordon", secretEnv: { TOKEN: secret }, client: failingClient(`transport lost ${secret}`) });
    expect(out.error).toBe("error: transport lost ****");
    expect(out.result).toMatchObject({ status: "unknown", sandbox: null });
    expect(JSON.stringify(out)).not.toContain(secret);
  });
});

function failingClient(message: string): TransportClient<RunRequest, RunResult> {
  return {
    exec: async () => {
      throw new Error(message);
    },
  };
}

describe("config", () => {
  test("a v1 stored config is migrated to v2 and runs", async () => {
    const stored = { version: 1, data: { script: 'cordon-result ok "v1 $GREETING"', timeoutSeconds: 2, env: { GREETING: "hi" } } };
    const config = shellCollector.config.parse(stored);
    expect(config).toEqual({ script: stored.data.script, args: [], timeoutMs: 2000, env: { GREETING: "hi" }, secretEnv: {} });
    const { result } = await shellCollector.execute({ config, client, pluginId: "cordon" });
    expect(result).toMatchObject({ status: "ok", message: "v1 hi" });
  });

  test("a v1 config without optional fields gets the v2 defaults", () => {
    expect(pythonCollector.config.parse({ version: 1, data: { script: "pass" } })).toEqual({ script: "pass", args: [], timeoutMs: 10_000, env: {}, secretEnv: {} });
  });

  test("exactly one of script and file", () => {
    const both = () => shellCollector.config.parse({ version: 2, data: { script: "true", file: "/x.sh" } });
    const neither = () => shellCollector.config.parse({ version: 2, data: { args: [] } });
    expect(both).toThrow(VersionedDataError);
    expect(both).toThrow('set exactly one of "script" (inline source) or "file" (a script path); both are set');
    expect(neither).toThrow("neither is set");
    expect(() => shellCollector.config.parse({ version: 1, data: { timeoutSeconds: 3 } })).toThrow(/^invalid v1 data migrated to v2: .*neither is set/);
  });

  test("the policy override is validated with the project's schema, and wallMs belongs to timeoutMs", () => {
    expect(() => shellCollector.config.parse({ version: 2, data: { script: "true", policy: { network: { mode: "open" } } } })).toThrow(/policy\.network\.mode/);
    expect(() => shellCollector.config.parse({ version: 2, data: { script: "true", policy: { bogus: 1 } } })).toThrow(/invalid v2 data: policy/);
    expect(() => shellCollector.config.parse({ version: 2, data: { script: "true", policy: { resources: { wallMs: 5 } } } })).toThrow(
      "policy.resources.wallMs: set the time limit with timeoutMs",
    );
    expect(() => shellCollector.config.parse({ version: 2, data: { script: "true", secretEnv: { "BAD-NAME": "x" } } })).toThrow(/secretEnv/);
  });
});

describe("refusals and bad input are results", () => {
  test("esm under the default fail policy is refused: status unknown, an error, no crash", async () => {
    const config = esmCollector.config.parse({ version: 2, data: { script: "return { success: true };" } });
    // cgroups off: no tree-wide memory cap, so Bun (which RLIMIT_AS cannot hold) is refused.
    const noCgroups = cordonClient(makeCordon(runRoot, { cgroups: "off" }));
    const out = await esmCollector.execute({ config, client: noCgroups, pluginId: "cordon" });
    expect(out.result).toMatchObject({ status: "unknown", exitCode: null, timedOut: false, sandbox: null });
    expect(out.error).toContain("cannot enforce the policy");
    expect(out.error).toContain("resources.memory");
    expect(healthStatus(out.result)).toBe("unhealthy");
  });

  test("an unknown provider or a missing file is an error result", async () => {
    const unknown = await run(CASES.shell, { script: "true", provider: "firejail" });
    expect(unknown.result.status).toBe("unknown");
    expect(unknown.error).toContain('unknown provider "firejail"');
    const missing = await run(CASES.shell, { file: join(scripts, "absent.sh") });
    expect(missing.error).toContain("cannot read script");
  });

  test("stdout is capped, masked before the cut", async () => {
    const secret = token("cap");
    const out = await run(CASES.shell, { script: `i=0; while [ $i -lt 400 ]; do echo "$TOKEN xxxxxxxxxxxxxxxxxxxxxxxxxx"; i=$((i+1)); done` }, { TOKEN: secret });
    expect(out.result.outputTruncated).toBe(true);
    expect(Buffer.byteLength(out.result.output ?? "")).toBeLessThanOrEqual(OUTPUT_CAP_BYTES);
    expect(out.result.output).toStartWith("**** xxx");
    expect(JSON.stringify(out)).not.toContain(secret.slice(0, 6));
  });

  test("runs leave no run directories behind", () => {
    expect(runRootEntries(runRoot)).toEqual([]);
  });
});

describe("how a run ended decides a silent script's verdict", () => {
  test("shell: exit 1 without a report is warn (Nagios); killed by a signal is crit", async () => {
    expect((await run(CASES.shell, { script: "exit 1" })).result).toMatchObject({ status: "warn", exitCode: 1 });
    const killed = await run(CASES.shell, { script: "kill -KILL $$" });
    expect(killed.result).toMatchObject({ status: "crit", message: "killed by SIGKILL", timedOut: false });
  });

  test("esm: a throw is crit with its message; exiting without a result is crit", async () => {
    const thrown = await run(CASES.esm, { script: 'throw new TypeError("nope");' });
    expect(thrown.result).toMatchObject({ status: "crit", message: "TypeError: nope" });
    const exited = await run(CASES.esm, { script: "process.exit(3);" });
    expect(exited.result).toMatchObject({ status: "crit", exitCode: 3, message: "the script exited with code 3 and reported no result" });
  });
});

describe("run context and checkstack's sandbox report", () => {
  const runContext = {
    check: { id: "chk-1", name: "disk usage", intervalSeconds: 60 },
    system: { id: "sys-9", name: "db-primary", metadata: { region: "eu-west", "rack id": 7, id: "shadow", tags: ["a", "b"], none: null } },
    environment: { id: "env-2", name: "staging", fields: { baseUrl: "https://staging.example", NAME: "shadow" } },
  };

  test("the run context reaches the script as checkstack's CHECKSTACK_* variables; the config's env wins", async () => {
    const config = configFor(CASES.shell, { script: 'env | grep ^CHECKSTACK_ | sort; cordon-result ok "$CHECKSTACK_CHECK_NAME"', env: { CHECKSTACK_ENV_NAME: "from config" } });
    const { result } = await shellCollector.execute({ config, client, pluginId: "cordon", runContext });
    expect(result.status).toBe("ok");
    expect(result.message).toBe("disk usage");
    expect(result.output?.trim().split("\n")).toEqual([
      "CHECKSTACK_CHECK_ID=chk-1",
      "CHECKSTACK_CHECK_INTERVAL_SECONDS=60",
      "CHECKSTACK_CHECK_NAME=disk usage",
      "CHECKSTACK_ENV_BASEURL=https://staging.example",
      "CHECKSTACK_ENV_ID=env-2",
      "CHECKSTACK_ENV_NAME=from config",
      "CHECKSTACK_SYSTEM_ID=sys-9",
      "CHECKSTACK_SYSTEM_NAME=db-primary",
      "CHECKSTACK_SYSTEM_RACK_ID=7",
      "CHECKSTACK_SYSTEM_REGION=eu-west",
      'CHECKSTACK_SYSTEM_TAGS=["a","b"]',
    ]);
  });

  test("a context value the sandbox cannot carry is an unknown result naming the variable; nothing runs", async () => {
    const bad = { ...runContext, system: { ...runContext.system, metadata: { note: "a\u0000b" } } };
    const { result, error } = await shellCollector.execute({ config: configFor(CASES.shell, { script: "exit 0" }), client, pluginId: "cordon", runContext: bad });
    expect(result).toMatchObject({ status: "unknown", sandbox: null });
    expect(error).toContain("CHECKSTACK_SYSTEM_NOTE");
  });

  test("each result carries the effective sandbox in checkstack's shape too", async () => {
    const { result } = await run(CASES.shell, { script: CASES.shell.pass, policy: { filesystem: { mode: "off" } } });
    expect(result.effectiveSandbox).toMatchObject({
      enforced: { resources: true, network: true, privilege: true, filesystem: false },
      downgrades: [],
      platform: "linux",
    });
    expect(result.effectiveSandbox!.notes.filter((n) => n.layer === "filesystem" && n.note.startsWith("filesystem.view: "))).toHaveLength(1);
  });
});

describe("mergeResult", () => {
  const base: ScriptResult = { status: "ok", exitCode: 0, executionTimeMs: 0, timedOut: false, outputTruncated: false, sandbox: { provider: "bwrap", enforced: [], downgrades: [] } };
  const runOf = (over: Partial<ScriptResult>): HealthCheckRunForAggregation<ScriptResult> => {
    const metadata = { ...base, ...over };
    return { status: healthStatus(metadata), latencyMs: metadata.executionTimeMs, metadata };
  };

  test("folds runs into average, range, success rate and counters", () => {
    const runs = [
      runOf({ executionTimeMs: 100 }),
      runOf({ executionTimeMs: 200, status: "warn" }),
      runOf({ executionTimeMs: 400, status: "crit", timedOut: true }),
      runOf({ executionTimeMs: 300, sandbox: { provider: "bwrap", enforced: [], downgrades: ["resources.memory: x"] } }),
      // Refused: nothing ran, so its 0 ms stays out of the timings.
      runOf({ status: "unknown", sandbox: null, exitCode: null }),
    ];
    let agg: ScriptAggregated | undefined;
    for (const r of runs) agg = shellCollector.mergeResult(agg, r);
    expect(agg!.avgExecutionTimeMs).toMatchObject({ _count: 4, avg: 250 });
    expect(agg!.executionTimeMs).toEqual({ _type: "minmax", min: 100, max: 400 });
    expect(agg!.successRate).toMatchObject({ _success: 2, _total: 5, rate: 40 });
    expect(agg!.timeoutCount.count).toBe(1);
    expect(agg!.unknownCount.count).toBe(1);
    expect(agg!.sandboxDowngradedCount.count).toBe(1);
    expect(shellCollector.aggregatedResult.parse(shellCollector.aggregatedResult.create(agg!))).toEqual(agg!);
  });

  test("a bucket whose first run never started does not take that run's 0 ms as its minimum", () => {
    let agg = shellCollector.mergeResult(undefined, runOf({ status: "unknown", sandbox: null, exitCode: null }));
    expect(agg.executionTimeMs).toEqual({ _type: "minmax", min: 0, max: 0 }); // checkstack's initial state
    agg = shellCollector.mergeResult(agg, runOf({ executionTimeMs: 120 }));
    agg = shellCollector.mergeResult(agg, runOf({ executionTimeMs: 80 }));
    expect(agg.executionTimeMs).toEqual({ _type: "minmax", min: 80, max: 120 });
  });

  test("real runs aggregate too", async () => {
    let agg: ScriptAggregated | undefined;
    for (const script of [CASES.shell.pass, CASES.shell.fail, CASES.shell.pass]) {
      const { result } = await run(CASES.shell, { script });
      agg = shellCollector.mergeResult(agg, { status: healthStatus(result), latencyMs: result.executionTimeMs, metadata: result });
    }
    expect(agg!.successRate).toMatchObject({ _success: 2, _total: 3, rate: 67 });
    expect(agg!.avgExecutionTimeMs._count).toBe(3);
    expect(agg!.avgExecutionTimeMs.avg).toBeGreaterThan(0);
    expect(agg!.timeoutCount.count).toBe(0);
  });
});
