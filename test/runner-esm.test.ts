/**
 * The ESM runner end to end: real bwrap, real Bun inside the sandbox, no mocks.
 *
 * Bun reserves tens of GiB of address space, so RLIMIT_AS cannot hold it, and without
 * a cgroup memory cap an ESM run is refused under the default `onUnavailable: "fail"`.
 * Every run here opts into `degrade` (except the refusal test), and the report must say
 * that memory is degraded, never that a heap or address-space cap holds Bun.
 */
import { hostFacts } from "../src/host.ts";
import { afterAll, describe, expect, spyOn, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, realpathSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Cordon, SandboxUnavailableError, runResultToJson, type CordonConfigInput, type PolicyOverride, type RunResult } from "../src/api/index.ts";
import {
  IS_ROOT,
  isSandboxHostUid,
  caught,
  countingListener,
  describeResult,
  expectClean,
  freshRunRoot,
  makeCordon,
  processesWithMarker,
  removeTempDirs,
  sleepMarker,
  tempDir,
  token,
  uidOf,
  waitFor,
} from "./support.ts";

afterAll(() => removeTempDirs());

const DEGRADE: PolicyOverride = { onUnavailable: "degrade" };
const BUN = realpathSync(process.execPath);
const FIXTURE = resolve(import.meta.dir, "fixtures/run-json.ts");

function makeEsmCordon(runRoot = freshRunRoot("esm"), config: Omit<CordonConfigInput, "runRoot"> = {}): Cordon {
  return makeCordon(runRoot, config);
}

interface EsmRunOptions {
  args?: string[];
  stdin?: string;
  inline?: boolean;
  policy?: PolicyOverride;
  provider?: string;
  env?: Record<string, string>;
  secretEnv?: Record<string, string>;
}

/** An ESM run under `degrade` (memory cannot be capped for Bun without cgroups). */
function runEsm(cordon: Cordon, source: string, opts: EsmRunOptions = {}): Promise<RunResult> {
  return cordon.run({
    runner: "esm",
    script: { source },
    args: opts.args ?? [],
    ...(opts.stdin !== undefined ? { stdin: new TextEncoder().encode(opts.stdin) } : {}),
    ...(opts.inline ? { options: { form: "inline" } } : {}),
    ...(opts.provider ? { provider: opts.provider } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.secretEnv ? { secretEnv: opts.secretEnv } : {}),
    policy: { ...DEGRADE, ...opts.policy },
  });
}

/** No process carrying `marker` (the sandboxed bun, bwrap, or anything they started) is left on the host. */
async function expectNoSurvivors(marker: string): Promise<void> {
  const gone = await waitFor(() => processesWithMarker(marker).length === 0, 2000);
  expect(gone, JSON.stringify(processesWithMarker(marker))).toBe(true);
}

/** Memory is reported degraded for Bun: listed as a downgrade, never claimed as a heap or RLIMIT_AS cap. */
function expectMemoryDegraded(r: RunResult): void {
  const report = r.sandbox!;
  const memory = report.layers.resources.controls.memory!;
  expect(memory.status, JSON.stringify(memory)).toBe("degraded");
  expect(memory.mechanism).toBeUndefined();
  const text = `${memory.reason ?? ""} ${memory.fix ?? ""}`;
  expect(text).not.toMatch(/heap|max-old-space|--smol|bytes each/i);
  expect(report.layers.resources.status).toBe("degraded");
  expect(report.downgrades.some((d) => d.startsWith("resources.memory: "))).toBe(true);
  // No address-space rlimit is handed to the sandbox either (it would kill Bun at start).
  expect(report.argv.some((a) => a.startsWith("--as"))).toBe(false);
}

/** The result is exactly the channel's, the run ended cleanly. */
function expectOkChannel(r: RunResult): void {
  expect(r.outcome, describeResult(r)).toBe("ok");
  expect(r.exitCode).toBe(0);
  expect(r.resultSource).toBe("channel");
  expect(r.resultError).toBeNull();
}

// ---------------------------------------------------------------------------------------

describe("policy: Bun cannot be memory-capped without cgroups", () => {
  test("under the default fail policy an ESM run is refused: typed error naming resources.memory, nothing spawned", async () => {
    const runRoot = freshRunRoot("esm");
    const cordon = makeEsmCordon(runRoot, { cgroups: "off" });
    const spawn = spyOn(Bun, "spawn");
    let err: unknown;
    try {
      err = await caught(() => cordon.run({ runner: "esm", script: { source: "export default () => ({ status: 'ok', message: 'SHOULD-NOT-RUN' })" }, args: [] }));
      expect(spawn).not.toHaveBeenCalled();
    } finally {
      spawn.mockRestore();
    }
    expect(err).toBeInstanceOf(SandboxUnavailableError);
    const e = err as SandboxUnavailableError;
    expect(e.code).toBe("sandbox-unavailable");
    expect(e.reasons.some((r) => r.startsWith("resources.memory: ")), e.reasons.join("; ")).toBe(true);
    expect(e.message).toContain("resources.memory");
    expect(existsSync(runRoot)).toBe(false); // not even the run root was created

    // The same script, with degrade, does run: the refusal was about the policy, not the script.
    const r = await runEsm(cordon, "export default () => ({ status: 'ok', message: 'ran' })");
    expectOkChannel(r);
    expect(r.result).toEqual({ status: "ok", message: "ran" });
    expectClean(runRoot);
  });

  test("the effective report: runner esm, a note with the bun path, memory degraded (no heap cap claimed)", async () => {
    const runRoot = freshRunRoot("esm");
    const r = await runEsm(makeEsmCordon(runRoot, { cgroups: "off" }), "export default () => ({ status: 'ok' })");
    expectOkChannel(r);
    const report = r.sandbox!;
    expect(report.runner.name).toBe("esm");
    expect(report.runner.notes.some((n) => n.includes(BUN)), JSON.stringify(report.runner.notes)).toBe(true);
    expect(report.provider).toMatchObject({ name: "bwrap", isolating: true });
    expect(report.onUnavailable).toBe("degrade");
    expectMemoryDegraded(r);
    // Everything else the default policy asks for is still enforced by bwrap as root.
    if (IS_ROOT) expect(report.downgrades.map((d) => d.split(":")[0])).toEqual(["resources.memory"]);
    for (const layer of ["filesystem", "network", "privilege", "env"] as const) expect(report.layers[layer].status).toBe("enforced");
    // The sandboxed command really is this Bun running the harness.
    expect(report.argv).toContain(BUN);
    expect(report.argv.some((a) => a.endsWith("/harness.mjs"))).toBe(true);
    expectClean(runRoot);
  });
});

// ---------------------------------------------------------------------------------------

describe("with a cgroup memory cap (root, cgroups usable), Bun runs under the default fail policy", () => {
  test.skipIf(hostFacts().cgroups.problem !== null)("the default policy runs ESM with memory enforced for the whole tree", async () => {
    const runRoot = freshRunRoot("esm");
    const r = await makeEsmCordon(runRoot).run({ runner: "esm", script: { source: "export default () => ({ status: 'ok', message: 'capped' })" }, args: [] });
    expectOkChannel(r);
    const memory = r.sandbox!.layers.resources.controls.memory!;
    expect(memory.status).toBe("enforced");
    expect(memory.mechanism).toContain("cgroup");
    expect(memory.mechanism).toContain("whole tree");
    expect(r.sandbox!.downgrades).toEqual([]);
    expect(r.stats?.peakMemoryBytes).toBeGreaterThan(0);
    expectClean(runRoot);
  });
});

describe("module form", () => {
  test("the default export's return value is the result, as returned", async () => {
    const runRoot = freshRunRoot("esm");
    const r = await runEsm(makeEsmCordon(runRoot), `export default (ctx) => ({ status: "warn", message: "m", metrics: { x: 1 } });`);
    expectOkChannel(r);
    expect(r.result).toEqual({ status: "warn", message: "m", metrics: { x: 1 } });
    expect(r.stdout).toBe("");
    expectClean(runRoot);
  });

  test("an async default export is awaited", async () => {
    const r = await runEsm(
      makeEsmCordon(),
      `export default async () => { await new Promise((r) => setTimeout(r, 50)); return { status: "crit", message: "late", metrics: { waited: 50 } }; };`,
    );
    expectOkChannel(r);
    expect(r.result).toEqual({ status: "crit", message: "late", metrics: { waited: 50 } });
  });

  test("ctx.args round-trip exactly (spaces, unicode, empty, dashes, quotes)", async () => {
    const args = ["two words", "ünïcødé ✓ 日本", "", "--flag=x y", `q'uo"te`, "$HOME", "a\tb"];
    const r = await runEsm(makeEsmCordon(), `export default (ctx) => ({ status: "ok", message: String(ctx.args.length), args: ctx.args });`, { args });
    expectOkChannel(r);
    expect(r.result).toEqual({ status: "ok", message: String(args.length), args });
  });

  test("stdin is readable with await Bun.stdin.text()", async () => {
    // Larger than a pipe buffer, yet small enough to come back whole in the 64 KiB result.
    const input = `line one\nzwei ü ✓\n${"x".repeat(100_000)}\nend`;
    const digest = createHash("sha256").update(input).digest("hex");
    const r = await runEsm(
      makeEsmCordon(),
      `import { createHash } from "node:crypto";
export default async () => {
  const text = await Bun.stdin.text();
  return { status: "ok", message: String(text.length), sha256: createHash("sha256").update(text).digest("hex"), head: text.slice(0, 20), tail: text.slice(-4) };
};`,
      { stdin: input },
    );
    expectOkChannel(r);
    expect(r.result).toEqual({ status: "ok", message: String(input.length), sha256: digest, head: input.slice(0, 20), tail: "\nend" });
  });

  test("TypeScript syntax (interfaces, annotations, generics, satisfies) works in a source script", async () => {
    const source = `
interface Ctx { args: string[]; env: Record<string, string | undefined> }
type Status = "ok" | "warn";
function pick<T>(xs: readonly T[], i: number): T { return xs[i] as T; }
export default (ctx: Ctx): { status: Status; message: string; metrics: Record<string, number> } => {
  const n: number = ctx.args.length;
  return { status: "warn", message: pick<string>(ctx.args, 0), metrics: { n } } satisfies { status: Status; message: string; metrics: Record<string, number> };
};
`;
    const r = await runEsm(makeEsmCordon(), source, { args: ["typed", "second"] });
    expectOkChannel(r);
    expect(r.result).toEqual({ status: "warn", message: "typed", metrics: { n: 2 } });
  });

  test(".mjs and .ts files: the runner is inferred from the extension and the extension is kept", async () => {
    const dir = tempDir("esm-files", 0o755);
    const mjs = join(dir, "check.mjs");
    writeFileSync(mjs, `export default async (ctx) => ({ status: "ok", message: "from mjs " + ctx.args.join("|"), metrics: { n: ctx.args.length } });\n`);
    const ts = join(dir, "check.ts");
    writeFileSync(ts, `export default (ctx: { args: string[] }): { status: "ok"; message: string } => ({ status: "ok", message: "from ts" });\n`);
    // Type annotations in a .mjs file are a syntax error: proof it ran as .mjs, not as TypeScript.
    const typedMjs = join(dir, "typed.mjs");
    writeFileSync(typedMjs, `export default (ctx: { args: string[] }) => ({ status: "ok" });\n`);
    const runRoot = freshRunRoot("esm");
    const cordon = makeEsmCordon(runRoot);

    const a = await cordon.run({ script: { file: mjs }, args: ["a", "b c"], policy: DEGRADE });
    expectOkChannel(a);
    expect(a.sandbox?.runner.name).toBe("esm");
    expect(a.sandbox?.argv.some((x) => x.endsWith("/main/check.mjs"))).toBe(true);
    expect(a.result).toEqual({ status: "ok", message: "from mjs a|b c", metrics: { n: 2 } });

    const b = await cordon.run({ script: { file: ts }, args: [], policy: DEGRADE });
    expectOkChannel(b);
    expect(b.result).toEqual({ status: "ok", message: "from ts" });

    const c = await cordon.run({ script: { file: typedMjs }, args: [], policy: DEGRADE });
    expect(c.outcome, describeResult(c)).toBe("exit-nonzero");
    expect(c.result?.status).toBe("crit");
    expectClean(runRoot);
  });
});

// ---------------------------------------------------------------------------------------

describe("inline form (checkstack style: a function body)", () => {
  const inline = (source: string, opts: EsmRunOptions = {}) => runEsm(makeEsmCordon(), source, { ...opts, inline: true });

  test("success: true is ok, with message and value", async () => {
    const r = await inline(`return { success: true, message: "up", value: 42 };`);
    expectOkChannel(r);
    expect(r.result).toMatchObject({ status: "ok", message: "up", value: 42 });
    expect(r.sandbox?.runner.notes.some((n) => n.includes("inline form"))).toBe(true);
  });

  test("success: false is crit", async () => {
    const r = await inline(`return { success: false, message: "down", value: 0 };`);
    expectOkChannel(r);
    expect(r.result).toMatchObject({ status: "crit", message: "down", value: 0 });
  });

  test("the body may await, and sees ctx", async () => {
    const r = await inline(`await new Promise((r) => setTimeout(r, 30)); const t = await Promise.resolve(ctx.args[0]); return { success: true, message: "awaited " + t };`, {
      args: ["arg0"],
    });
    expectOkChannel(r);
    expect(r.result).toMatchObject({ status: "ok", message: "awaited arg0" });
  });

  test("returning nothing is ok", async () => {
    const r = await inline(`const x = 1 + 1;`);
    expectOkChannel(r);
    expect(r.result).toEqual({ status: "ok" });
  });

  test("returning a plain number is { status: ok, value: n }", async () => {
    const r = await inline(`return 7.5;`);
    expectOkChannel(r);
    expect(r.result).toEqual({ status: "ok", value: 7.5 });
  });
});

// ---------------------------------------------------------------------------------------

describe("failures become results, never crashes", () => {
  test("a thrown error: exit 1, crit with the message and stack, stack on stderr", async () => {
    const r = await runEsm(
      makeEsmCordon(),
      `function deep() { throw new RangeError("boom"); }\nexport default () => { deep(); };`,
    );
    expect(r.outcome, describeResult(r)).toBe("exit-nonzero");
    expect(r.exitCode).toBe(1);
    expect(r.resultSource).toBe("channel");
    expect(r.resultError).toBeNull();
    expect(r.result?.status).toBe("crit");
    expect(r.result?.message).toBe("RangeError: boom");
    const error = r.result?.error as { name: string; message: string; stack: string };
    expect(error).toMatchObject({ name: "RangeError", message: "boom" });
    expect(error.stack).toContain("boom");
    expect(error.stack).toContain("deep");
    expect(r.stderr).toContain("RangeError");
    expect(r.stderr).toContain("boom");
    expect(r.stderr).toContain("deep");
  });

  test("an async rejection with a non-Error value is crit too", async () => {
    const r = await runEsm(makeEsmCordon(), `export default async () => { await null; throw "plain string"; };`);
    expect(r.outcome, describeResult(r)).toBe("exit-nonzero");
    expect(r.exitCode).toBe(1);
    expect(r.result?.status).toBe("crit");
    expect(r.result?.message).toContain("plain string");
  });

  test("a module without a default export: a clear error in result.message", async () => {
    const r = await runEsm(makeEsmCordon(), `export const check = () => ({ status: "ok" });`);
    expect(r.outcome, describeResult(r)).toBe("exit-nonzero");
    expect(r.result?.status).toBe("crit");
    expect(r.result?.message).toMatch(/no default export/);
  });

  test("a non-serialisable return (BigInt, cycle) is crit, saying it is not JSON-serialisable", async () => {
    const cordon = makeEsmCordon();
    const big = await runEsm(cordon, `export default () => ({ status: "ok", n: 10n });`);
    expect(big.outcome, describeResult(big)).toBe("exit-nonzero");
    expect(big.result?.status).toBe("crit");
    expect(big.result?.message).toMatch(/not JSON-serialisable/);

    const cycle = await runEsm(cordon, `export default () => { const o = { status: "ok" }; o.self = o; return o; };`);
    expect(cycle.outcome, describeResult(cycle)).toBe("exit-nonzero");
    expect(cycle.result?.status).toBe("crit");
    expect(cycle.result?.message).toMatch(/not JSON-serialisable/);
  });

  test("an invalid status is crit with a resultError naming status (a report that cannot be read is crit)", async () => {
    const r = await runEsm(makeEsmCordon(), `export default () => ({ status: "great", message: "fine really" });`);
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.exitCode).toBe(0);
    expect(r.result?.status).toBe("crit");
    expect(r.resultSource).toBe("channel");
    expect(r.resultError).toMatch(/status/);
  });

  test("an oversized result ends the run as an output limit, crit naming the cap; the supervisor carries on", async () => {
    const runRoot = freshRunRoot("esm");
    const cordon = makeEsmCordon(runRoot, { maxResultBytes: 4096 });
    const r = await runEsm(cordon, `export default () => ({ status: "ok", message: "big", blob: "x".repeat(1024 * 1024) });`, {
      policy: { resources: { wallMs: 8000 } },
    });
    expect(r.result?.status, describeResult(r)).toBe("crit");
    expect(r.resultError).toContain("4096");
    expect(r.resultError).toMatch(/larger than/);
    expect([r.outcome, r.limitHit], describeResult(r)).toEqual(["limit", "output"]); // a blocked writer must not hang the run
    expect(r.durationMs).toBeLessThan(5000);
    // The same supervisor runs the next job normally.
    const next = await runEsm(cordon, `export default () => ({ status: "ok", message: "after" });`);
    expectOkChannel(next);
    expect(next.result).toEqual({ status: "ok", message: "after" });
    expectClean(runRoot);
  });

  test("a check that leaves a timer, a listening socket and a pending promise open ends right after returning", async () => {
    const runRoot = freshRunRoot("esm");
    const marker = sleepMarker(10);
    const r = await runEsm(
      makeEsmCordon(runRoot),
      `export default (ctx) => {
  setInterval(() => {}, 100);
  Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  new Promise(() => {});
  return { status: "ok", message: "returned " + ctx.args[0] };
};`,
      { args: [marker], policy: { resources: { wallMs: 8000 } } },
    );
    expectOkChannel(r);
    expect(r.result).toEqual({ status: "ok", message: `returned ${marker}` });
    expect(r.durationMs).toBeLessThan(3000);
    await expectNoSurvivors(marker);
    expectClean(runRoot);
  });
});

// ---------------------------------------------------------------------------------------

describe("environment and secrets", () => {
  test("secretEnv reaches ctx.env; every occurrence in output, result, errors and argv is ****", async () => {
    const secret = token("sekret");
    const digest = createHash("sha256").update(secret).digest("hex");
    const runRoot = freshRunRoot("esm");
    const cordon = makeEsmCordon(runRoot);
    // The script never contains the secret: it compares a digest, then leaks the value everywhere it can.
    const r = await runEsm(
      cordon,
      `import { createHash } from "node:crypto";
export default (ctx) => {
  const s = ctx.env.API_TOKEN;
  const match = createHash("sha256").update(s ?? "").digest("hex") === ${JSON.stringify(digest)};
  console.log("stdout:" + s);
  console.error("stderr:" + s);
  return { status: "ok", message: match ? "match" : "mismatch", echoed: s, nested: { list: [s, "x" + s + "y"] }, plain: ctx.env.PLAIN };
};`,
      { secretEnv: { API_TOKEN: secret }, env: { PLAIN: "visible" } },
    );
    expectOkChannel(r);
    expect(r.result?.message).toBe("match");
    expect(r.result?.plain).toBe("visible");
    expect(r.result?.echoed).toBe("****");
    expect(r.result?.nested).toEqual({ list: ["****", "x****y"] });
    expect(r.stdout).toBe("stdout:****\n");
    expect(r.stderr).toBe("stderr:****\n");
    expect(new TextDecoder().decode(r.stdoutBytes)).toBe("stdout:****\n");
    expect(r.sandbox!.argv).toContain("****"); // the --setenv value, masked in the audit argv
    expect(r.sandbox!.argv.join("\0")).not.toContain(secret);
    expect(JSON.stringify(runResultToJson(r))).not.toContain(secret);

    const thrown = await runEsm(cordon, `export default (ctx) => { throw new Error("leaked " + ctx.env.API_TOKEN); };`, { secretEnv: { API_TOKEN: secret } });
    expect(thrown.outcome, describeResult(thrown)).toBe("exit-nonzero");
    expect(thrown.result?.message).toBe("Error: leaked ****");
    expect(thrown.stderr).toContain("leaked ****");
    expect(JSON.stringify(runResultToJson(thrown))).not.toContain(secret);
    expectClean(runRoot);
  });

  test("a secret used as a result key (metric name, free field) is masked too", async () => {
    const secret = token("keysekret");
    const r = await runEsm(
      makeEsmCordon(),
      `export default (ctx) => ({ status: "ok", metrics: { [ctx.env.API_TOKEN]: 1 }, [ctx.env.API_TOKEN]: "v" });`,
      { secretEnv: { API_TOKEN: secret } },
    );
    expectOkChannel(r);
    expect(JSON.stringify(runResultToJson(r))).not.toContain(secret);
    expect(r.result?.metrics).toEqual({ "****": 1 });
  });

  test("BUN_OPTIONS in the test process's environment does not reach the sandboxed Bun", async () => {
    const saved = process.env.BUN_OPTIONS;
    process.env.BUN_OPTIONS = "--preload /nonexistent/cordon-preload.ts";
    try {
      const r = await runEsm(makeEsmCordon(), `export default (ctx) => ({ status: "ok", message: String(ctx.env.BUN_OPTIONS), keys: Object.keys(ctx.env).filter((k) => k.startsWith("BUN_")) });`);
      expectOkChannel(r);
      expect(r.result?.message).toBe("undefined");
      expect(r.result?.keys).toEqual(["BUN_RUNTIME_TRANSPILER_CACHE_PATH"]);
    } finally {
      if (saved === undefined) delete process.env.BUN_OPTIONS;
      else process.env.BUN_OPTIONS = saved;
    }
  });

  test("BUN_OPTIONS in a supervisor's initial environment does not reach the sandboxed Bun", async () => {
    // The preload exists on the host (the supervisor, itself Bun, loads it and says so) but not in
    // the sandbox: had BUN_OPTIONS leaked, the sandboxed Bun would fail with "preload not found".
    const dir = tempDir("esm-preload", 0o755);
    const preload = join(dir, "preload.ts");
    const mark = token("preloaded");
    writeFileSync(preload, `console.error(${JSON.stringify(mark)});\n`);
    const runRoot = freshRunRoot("esm");
    const request = {
      runner: "esm",
      script: { source: `export default (ctx) => ({ status: "ok", message: String(ctx.env.BUN_OPTIONS), other: ctx.env.BUN_CONFIG_VERBOSE_FETCH ?? null })` },
      args: [],
      policy: DEGRADE,
    };
    const p = Bun.spawn([process.execPath, FIXTURE], {
      stdin: new TextEncoder().encode(JSON.stringify({ runRoot, request })),
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, BUN_OPTIONS: `--preload ${preload}`, BUN_CONFIG_VERBOSE_FETCH: "curl" },
    });
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(code, `${stdout} ${stderr}`).toBe(0);
    expect(stderr).toContain(mark); // BUN_OPTIONS was live in the supervisor
    const result = JSON.parse(stdout) as { outcome: string; stderr: string; result: Record<string, unknown> | null };
    expect(result.outcome, stdout).toBe("ok");
    expect(result.stderr).not.toContain("preload");
    expect(result.stderr).not.toContain(mark);
    expect(result.result).toMatchObject({ status: "ok", message: "undefined", other: null });
    expectClean(runRoot);
  });
});

// ---------------------------------------------------------------------------------------

/** Tries several routes to a host file from Bun; reports what it read and what failed. */
function canaryReadModule(file: string): string {
  return `import { readFileSync, readdirSync } from "node:fs";
export default async () => {
  const tries = {};
  for (const path of [${JSON.stringify(file)}, "/proc/self/root" + ${JSON.stringify(file)}, "/proc/1/root" + ${JSON.stringify(file)}]) {
    try { tries[path] = "READ:" + readFileSync(path, "utf8"); } catch (e) { tries[path] = "ERR:" + (e.code ?? String(e)); }
  }
  try { tries.bunfile = "READ:" + (await Bun.file(${JSON.stringify(file)}).text()); } catch (e) { tries.bunfile = "ERR:" + (e.code ?? String(e)); }
  let listing;
  try { listing = readdirSync(${JSON.stringify(file.slice(0, file.lastIndexOf("/")))}); } catch (e) { listing = "ERR:" + (e.code ?? String(e)); }
  return { status: "ok", message: "probed", tries, listing };
};`;
}

function networkModule(port: number): string {
  // The host listener accepts but never answers HTTP: a fetch that got through ends in the timeout.
  return `export default async () => {
  const out = {};
  try { const res = await fetch("http://127.0.0.1:${port}/", { signal: AbortSignal.timeout(1000) }); out.fetch = "connected:" + res.status; }
  catch (e) { out.fetch = "failed:" + (e.code ?? e.name ?? String(e)); }
  try {
    const s = await Promise.race([
      Bun.connect({ hostname: "127.0.0.1", port: ${port}, socket: { data() {} } }),
      new Promise((_, rej) => setTimeout(() => rej(new Error("timeout")), 3000)),
    ]);
    out.connect = "connected"; s.end();
  } catch (e) { out.connect = "failed:" + (e.code ?? e.name ?? String(e)); }
  return { status: "ok", message: "probed", ...out };
};`;
}

describe("hostile ESM checks are contained; the supervisor survives; nothing is left", () => {
  test("a world-readable host canary file cannot be read", async () => {
    const secret = token("canary-content-");
    const dir = tempDir("esm-canary", 0o755);
    const file = join(dir, token("canary-file-"));
    writeFileSync(file, `${secret}\n`, { mode: 0o644 });
    const runRoot = freshRunRoot("esm");
    const marker = sleepMarker(10);
    const r = await runEsm(makeEsmCordon(runRoot), canaryReadModule(file), { args: [marker] });
    expectOkChannel(r);
    expect(r.result?.message).toBe("probed"); // the probe really ran
    const tries = r.result?.tries as Record<string, string>;
    expect(Object.keys(tries)).toHaveLength(4);
    for (const [path, outcome] of Object.entries(tries)) expect(outcome, path).toStartWith("ERR:");
    expect(String(r.result?.listing)).toStartWith("ERR:");
    expect(JSON.stringify(runResultToJson(r))).not.toContain(secret);
    await expectNoSurvivors(marker);
    expectClean(runRoot);
  });

  test("network egress to a host loopback listener fails (fetch and Bun.connect); the listener sees nothing", async () => {
    const loop = countingListener("127.0.0.1");
    try {
      const runRoot = freshRunRoot("esm");
      const marker = sleepMarker(10);
      const r = await runEsm(makeEsmCordon(runRoot), networkModule(loop.port), { args: [marker] });
      expectOkChannel(r);
      expect(r.result?.message).toBe("probed");
      expect(String(r.result?.fetch)).toStartWith("failed:");
      expect(String(r.result?.connect)).toStartWith("failed:");
      await Bun.sleep(100);
      expect(loop.hits()).toBe(0);
      await expectNoSurvivors(marker);
      expectClean(runRoot);
    } finally {
      loop.stop();
    }
  });

  test("a Bun.spawn loop: it really spawns, hits the process cap, and nothing outlives the run", async () => {
    const marker = sleepMarker(10);
    const runRoot = freshRunRoot("esm");
    const cordon = makeEsmCordon(runRoot);
    const seenUids = new Set<number>();
    let seenCount = 0;
    const watcher = setInterval(() => {
      const procs = processesWithMarker(marker).filter((p) => p.comm === "sleep");
      seenCount = Math.max(seenCount, procs.length);
      for (const p of procs) {
        const uid = uidOf(p.pid);
        if (uid !== null) seenUids.add(uid); // null: it ended between the scan and the read
      }
    }, 10);
    let r: RunResult;
    try {
      r = await runEsm(
        cordon,
        `import { writeSync } from "node:fs";
export default async (ctx) => {
  const marker = ctx.args[0];
  let spawned = 0, failed = 0, firstError = "";
  for (let i = 0; i < 200; i++) {
    try {
      Bun.spawn(["sleep", marker], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
      spawned++;
    } catch (e) {
      failed++;
      if (!firstError) firstError = e.code ?? String(e);
    }
  }
  // Reported first, synchronously: Bun itself may abort later when it cannot start a thread under the cap.
  writeSync(2, "spawn-summary " + JSON.stringify({ spawned, failed, firstError }) + "\\n");
  await Bun.sleep(400); // let the host see the children
  return { status: "ok", message: "spawned " + spawned };
};`,
        { args: [marker], policy: { resources: { wallMs: 8000, maxProcesses: 64 } } },
      );
    } finally {
      clearInterval(watcher);
    }
    const line = r.stderr.split("\n").find((l) => l.startsWith("spawn-summary "));
    expect(line, describeResult(r)).toBeDefined();
    const summary = JSON.parse(line!.slice("spawn-summary ".length)) as { spawned: number; failed: number; firstError: string };
    expect(summary.spawned, describeResult(r)).toBeGreaterThan(0);
    expect(summary.spawned).toBeLessThan(64); // capped by RLIMIT_NPROC (Bun's own threads count too)
    expect(summary.failed).toBe(200 - summary.spawned);
    expect(summary.firstError).toBe("EAGAIN");
    // Contained either way: the check returned, or Bun aborted (SIGABRT) when it could not start a thread.
    if (r.outcome === "ok") expect(r.result).toEqual({ status: "ok", message: `spawned ${summary.spawned}` });
    else if (r.outcome === "limit") expect([r.limitHit, r.exitCode], describeResult(r)).toEqual(["pids", 134]); // cgroup pids.max saw it
    else expect([r.outcome, r.exitCode], describeResult(r)).toEqual(["killed", 134]);
    // Seen from the host: the children really ran, as the sandbox uid, never as root.
    expect(seenCount).toBeGreaterThan(0);
    expect(seenUids.size).toBe(1); // the run's own host uid, one for the whole tree
    expect(isSandboxHostUid([...seenUids][0] ?? null)).toBe(true);
    expect(r.durationMs).toBeLessThan(5000);
    await expectNoSurvivors(marker);
    expectClean(runRoot);
    // The supervisor carries on.
    const next = await runEsm(cordon, `export default () => ({ status: "ok", message: "after the loop" })`);
    expectOkChannel(next);
    expect(next.result?.message).toBe("after the loop");
    expectClean(runRoot);
  });

  test("an infinite loop is killed by the wall limit", async () => {
    const marker = sleepMarker(10);
    const runRoot = freshRunRoot("esm");
    const cordon = makeEsmCordon(runRoot);
    const r = await runEsm(cordon, `export default () => { for (;;) {} };`, { args: [marker], policy: { resources: { wallMs: 1500 } } });
    expect(r.outcome, describeResult(r)).toBe("timeout");
    expect(r.limitHit).toBe("wall");
    expect(r.result).toBeNull();
    expect(r.durationMs).toBeGreaterThanOrEqual(1400);
    expect(r.durationMs).toBeLessThan(4000);
    await expectNoSurvivors(marker);
    expectClean(runRoot);
    // The supervisor is fine afterwards.
    const next = await runEsm(cordon, `export default () => ({ status: "ok", message: "still here" })`);
    expectOkChannel(next);
    expect(next.result?.message).toBe("still here");
    expectClean(runRoot);
  });

  describe("counter-tests: without isolation the same attacks succeed (the tests above can fail)", () => {
    test("unsafe provider: the host canary file is read", async () => {
      const secret = token("canary-content-");
      const dir = tempDir("esm-canary", 0o755);
      const file = join(dir, token("canary-file-"));
      writeFileSync(file, `${secret}\n`, { mode: 0o644 });
      const runRoot = freshRunRoot("esm");
      const r = await runEsm(makeEsmCordon(runRoot), canaryReadModule(file), { provider: "unsafe" });
      expectOkChannel(r);
      expect(r.sandbox?.provider).toMatchObject({ name: "unsafe", isolating: false });
      const tries = r.result?.tries as Record<string, string>;
      expect(tries[file]).toBe(`READ:${secret}\n`);
      expect(r.result?.listing).toEqual([file.slice(file.lastIndexOf("/") + 1)]);
      expectClean(runRoot);
    });

    test("unsafe provider: the host loopback listener is reached", async () => {
      const loop = countingListener("127.0.0.1");
      try {
        const runRoot = freshRunRoot("esm");
        const r = await runEsm(makeEsmCordon(runRoot), networkModule(loop.port), { provider: "unsafe" });
        expectOkChannel(r);
        expect(r.result?.connect, describeResult(r)).toBe("connected");
        expect(await waitFor(() => loop.hits() > 0, 1000)).toBe(true);
        expectClean(runRoot);
      } finally {
        loop.stop();
      }
    });
  });
});
