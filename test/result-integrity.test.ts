/**
 * What a run reports must be what the script reported, or worse; never better, never lost.
 *
 * Severity order (README, "result rules"): ok < warn < unknown < crit. A report that was made
 * but cannot be read (oversized, not UTF-8 JSON, invalid, duplicate keys, nested too deep, a
 * `cordon-result` call the helper refused) is `crit`, with the reason in `resultError`; only an
 * EMPTY channel is "no report" (shell and Python then map the exit code).
 *
 * - Pure decode property: seeded random payloads (valid, injected-but-escaped, truncated,
 *   non-UTF-8, huge, deep, duplicate keys, non-finite, bad status, reported twice) through
 *   `decodeResult` with each runner's decoding.
 * - The real `cordon-result` helper (dash, outside any sandbox: it is a plain sh script) with
 *   random arguments, raw bytes included, decoded like the supervisor decodes it.
 * - maskDeep on inputs no recursion survives.
 * - Targeted attacks through the public surface (`Cordon.run`, the collectors' `execute`) in
 *   real bwrap sandboxes, one per issue item; the supervisor-side ones once under `unsafe` too.
 * - A real-run sample per runner: the status is never better than reported, and stdout, stats
 *   and output files always survive.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { esmCollector, healthStatus, pythonCollector, shellCollector, type ScriptCollector } from "../plugins/collector-script/index.ts";
import { normalizeEsmPayload } from "../plugins/runner-esm/result.ts";
import { cordonClient, type ResultStatus, type RunRequest, type RunResult } from "../src/api/index.ts";
import { maskDeep } from "../src/api/plugin.ts";
import { decodeResult, type ResultDecoding } from "../src/protocol/result-channel.ts";
import { BASE_POLICY, describeResult, freshRunRoot, makeCordon, removeTempDirs, runRootEntries, tempDir, token } from "./support.ts";

afterAll(() => removeTempDirs());

const CAP = 64 * 1024;
const HELPER = new URL("../plugins/runner-shell/cordon-result.sh", import.meta.url).pathname;

/** The documented order; "never better" means rank(final) >= rank(reported). */
const RANK: Record<ResultStatus, number> = { ok: 0, warn: 1, unknown: 2, crit: 3 };
const STATUSES: ResultStatus[] = ["ok", "warn", "crit", "unknown"];

// ---------------------------------------------------------------------------------------
// A small seeded generator (no dependency): the same seed gives the same cases.
// ---------------------------------------------------------------------------------------

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(readonly next: () => number) {}
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  /** Text an attacker would put in a message: quotes, braces, newlines, escapes, unicode. */
  text(max = 40): string {
    const atoms = ["a", "Z", "0", " ", '"', "\\", "{", "}", ",", ":", "\n", "\r", "\t", "é", "€", "😀", '","status":"ok","x":"', "\\n", "%s", "$(id)", "\u0001", "\u2028"];
    let out = "";
    for (let n = this.int(0, max); n > 0; n--) out += this.pick(atoms);
    return out;
  }
  metrics(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let n = this.int(0, 3); n > 0; n--) out[`m${this.int(0, 99)}_${this.pick(["ms", "pct", "é"])}`] = this.pick([0, 1, -3.5, 12, 1e21, 0.000123, this.int(-1000, 1000)]);
    return out;
  }
  free(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (let n = this.int(0, 2); n > 0; n--) out[`f${this.int(0, 9)}`] = this.pick<unknown>([null, true, 7, this.text(8), [1, "x"], { k: this.text(5) }]);
    return out;
  }
}

type Variant =
  | "valid"
  | "valid-near-depth-cap"
  | "twice-last-valid"
  | "truncated"
  | "non-utf8"
  | "huge"
  | "deep"
  | "duplicate-status"
  | "duplicate-escaped-key"
  | "duplicate-nested"
  | "non-finite"
  | "bad-status"
  | "not-json"
  | "twice-last-invalid";
const VARIANTS: Variant[] = [
  "valid",
  "valid-near-depth-cap",
  "twice-last-valid",
  "truncated",
  "non-utf8",
  "huge",
  "deep",
  "duplicate-status",
  "duplicate-escaped-key",
  "duplicate-nested",
  "non-finite",
  "bad-status",
  "not-json",
  "twice-last-invalid",
];

interface Payload {
  variant: Variant;
  /** The status the script (last) reported. */
  reported: ResultStatus;
  /** Valid payloads must come back exactly with this status and message. */
  valid: boolean;
  message: string;
  bytes: Uint8Array;
}

const enc = (s: string) => new TextEncoder().encode(s);

/** `{ ...value }` as the harness wraps an ESM return value; `inner` is the value's JSON text. */
const esmWrap = (inner: string) => `{"cordon":"return","value":${inner}}`;

function nest(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

/**
 * One payload for a runner. `depthBase` is how many levels the runner's framing adds around the
 * result object (ESM's envelope: 1); the result object itself is one level.
 */
function makePayload(g: Gen, variant: Variant, esm: boolean): Payload {
  const reported = g.pick(STATUSES);
  const message = g.text();
  const base = { ...g.free(), status: reported, message, metrics: g.metrics() };
  const wrap = (inner: string) => (esm ? esmWrap(inner) : inner);
  const json = (v: unknown) => wrap(JSON.stringify(v));
  const valid = (text: string, last = reported, msg = message): Payload => ({ variant, reported: last, valid: true, message: msg, bytes: enc(`${text}\n`) });
  const bad = (bytes: Uint8Array, last = reported): Payload => ({ variant, reported: last, valid: false, message, bytes });
  const inner = JSON.stringify(base);
  switch (variant) {
    case "valid":
      return valid(json(base));
    case "valid-near-depth-cap": {
      // 64 levels in all, counting the outermost object (and ESM's envelope).
      const levels = 64 - 1 - (esm ? 1 : 0);
      return valid(json({ ...base, deep: JSON.parse(nest(levels)) }));
    }
    case "twice-last-valid": {
      const first = { status: g.pick(STATUSES), message: g.text(10) };
      return valid(`${json(first)}\n${json(base)}`);
    }
    case "truncated": {
      const text = json(base);
      return bad(enc(text.slice(0, g.int(1, text.length - 1))));
    }
    case "non-utf8": {
      const text = enc(json(base));
      const at = Buffer.from(text).indexOf('"message":"') + '"message":"'.length; // inside the message string
      const out = new Uint8Array(text.length + 1);
      out.set(text.subarray(0, at));
      out[at] = g.pick([0xff, 0xc3, 0x80, 0xfe]);
      out.set(text.subarray(at), at + 1);
      return bad(out);
    }
    case "huge":
      return bad(enc(json({ ...base, message: "x".repeat(CAP + g.int(0, 5000)) })));
    case "deep":
      return bad(enc(wrap(`${inner.slice(0, -1)},"deep":${nest(g.int(64, 30_000))}}`)));
    case "duplicate-status":
      // A JSON.parse keeps the last key: the injected "ok" would win.
      return bad(enc(wrap(`${inner.slice(0, -1)},"status":"ok"}`)));
    case "duplicate-escaped-key":
      return bad(enc(wrap(`${inner.slice(0, -1)},"st\\u0061tus":"ok"}`)));
    case "duplicate-nested":
      return bad(enc(wrap(`${inner.slice(0, -1)},"extra":{"a":1,"b":{"c":1,"c":2}}}`)));
    case "non-finite":
      return bad(enc(wrap(`${inner.slice(0, -1).replace(/"metrics":\{/, '"metrics":{"boom":1e999,')}}`)));
    case "bad-status":
      return bad(enc(json({ ...base, status: g.pick(["great", "OK", "", "critical"]) })));
    case "not-json":
      return bad(enc(g.pick(["all good", "ok", "{status: ok}", "\n \n", "\0cordon"])));
    case "twice-last-invalid": {
      // First an honest-looking "ok", then the real (crit) report comes out garbled.
      const first = json({ status: "ok", message: "fine" });
      return bad(enc(`${first}\n${json({ status: "crit", message: "down" }).slice(0, -2)}\n`), "crit");
    }
  }
}

const DECODINGS: Record<"shell" | "python" | "esm", ResultDecoding> = {
  shell: { exitCodeFallback: true },
  python: { exitCodeFallback: true },
  esm: { exitCodeFallback: false, normalize: normalizeEsmPayload },
};

/** What the supervisor's capped read hands over. */
function channelOf(bytes: Uint8Array, cap = CAP) {
  return bytes.length > cap ? { bytes: bytes.subarray(0, cap), truncated: true } : { bytes, truncated: false };
}

function checkDecoded(label: string, p: Payload, d: ReturnType<typeof decodeResult>): void {
  const why = `${label} ${p.variant}: ${JSON.stringify({ result: d.result, source: d.resultSource, error: d.resultError }).slice(0, 400)}`;
  expect(d.result, why).not.toBeNull();
  expect(RANK[d.result!.status], why).toBeGreaterThanOrEqual(RANK[p.reported]);
  expect(d.resultSource, why).toBe("channel"); // a report was made: never "no report"
  if (p.valid) {
    expect(d.result!.status, why).toBe(p.reported);
    expect(d.result!.message, why).toBe(p.message);
    expect(d.resultError, why).toBeNull();
  } else {
    expect(d.result!.status, why).toBe("crit");
    expect(d.resultError, why).toBeString();
  }
}

// ---------------------------------------------------------------------------------------

describe("decode property: random payloads, every runner's decoding", () => {
  test("1500 payloads x 3 runners: never better than reported; invalid is crit with a reason; valid is exact", () => {
    const g = new Gen(rng(0xc0d0));
    let n = 0;
    for (let i = 0; i < 1500; i++) {
      const variant = VARIANTS[i % VARIANTS.length]!;
      for (const runner of ["shell", "python", "esm"] as const) {
        const p = makePayload(g, variant, runner === "esm");
        const exit = { exitCode: g.pick([0, 0, 1, 2, 3]), signal: null };
        checkDecoded(`#${i} ${runner} exit ${exit.exitCode}`, p, decodeResult(channelOf(p.bytes), CAP, DECODINGS[runner], exit));
        n++;
      }
    }
    expect(n).toBe(4500);
  });

  test("every variant is covered, and the boundaries hold exactly (64 levels pass, 65 do not)", () => {
    const at = (levels: number) => decodeResult(channelOf(enc(`{"status":"ok","x":${nest(levels - 1)}}`)), CAP, DECODINGS.shell, { exitCode: 0, signal: null });
    expect(at(64).result).toEqual({ status: "ok", x: JSON.parse(nest(63)) });
    expect(at(65).result?.status).toBe("crit");
    expect(at(65).resultError).toContain("64");
    // An empty channel is the only "no report": the exit code decides (shell, python).
    const none = decodeResult(channelOf(new Uint8Array(0)), CAP, DECODINGS.shell, { exitCode: 0, signal: null });
    expect(none).toEqual({ result: { status: "ok", message: "no structured result; exit code 0 maps to ok" }, resultSource: "exit-code", resultError: null });
  });

  test("30,000 nested arrays are refused at decode time, without a stack overflow", () => {
    const d = decodeResult(channelOf(enc(`{"status":"ok","x":${nest(30_000)}}`)), CAP, DECODINGS.python, { exitCode: 0, signal: null });
    expect(d.result?.status).toBe("crit");
    expect(d.resultError).toMatch(/nested deeper than 64/);
  });
});

// ---------------------------------------------------------------------------------------
// The real helper, outside a sandbox, with random (and raw-byte) arguments.
// ---------------------------------------------------------------------------------------

interface HelperCall {
  rc: number;
  channel: Uint8Array;
  stderr: string;
}

/**
 * Run cordon-result once per argument list, with exactly these bytes (xargs -0 passes them
 * as they are), fd 4 captured to a file; one shell for the whole batch keeps it fast.
 */
function runHelpers(calls: Uint8Array[][]): HelperCall[] {
  const dir = tempDir("helper-batch");
  calls.forEach((args, i) => writeFileSync(join(dir, `${i}.args`), Buffer.concat(args.flatMap((a) => [a, new Uint8Array([0])]))));
  const loop = 'i=0; while [ $i -lt "$2" ]; do f="$1/$i"; xargs -0 -a "$f.args" /bin/sh "$3" 4>"$f.fd4" >/dev/null 2>"$f.err"; echo $? >"$f.rc"; i=$((i+1)); done';
  const r = Bun.spawnSync(["/bin/sh", "-c", loop, "sh", dir, String(calls.length), HELPER], { env: { PATH: "/usr/bin:/bin", CORDON_RESULT_FD: "4" } });
  expect(r.exitCode).toBe(0);
  return calls.map((_, i) => {
    const rc = Number(readFileSync(join(dir, `${i}.rc`), "utf8"));
    // xargs says 123 for a command that exited 1-125.
    return { rc: rc === 123 ? 64 : rc, channel: new Uint8Array(readFileSync(join(dir, `${i}.fd4`))), stderr: readFileSync(join(dir, `${i}.err`), "utf8") };
  });
}

function bytesArg(g: Gen): Uint8Array {
  const pieces: Uint8Array[] = [enc(g.text(20))];
  if (g.next() < 0.3) pieces.push(new Uint8Array([g.pick([0xff, 0xc3, 0x80, 0x01, 0x0a])]));
  return Buffer.concat(pieces);
}

describe("cordon-result: the real helper with random arguments", () => {
  test("150 calls: a call it accepts comes back exactly; one it refuses (or the supervisor refuses) is crit, never silence", () => {
    const g = new Gen(rng(0x5eed));
    const lossy = new TextDecoder();
    const cases: { status: string; message: Uint8Array; pairs: { name: Uint8Array; value: string }[]; args: Uint8Array[] }[] = [];
    for (let i = 0; i < 150; i++) {
      const status = g.next() < 0.9 ? g.pick(STATUSES) : g.pick(["great", "", "OK"]);
      const message = bytesArg(g);
      const pairs: { name: Uint8Array; value: string }[] = [];
      for (let n = g.int(0, 3); n > 0; n--) {
        const value = g.pick([
          "12",
          "-0.5",
          "1e3",
          "1e999",
          "01",
          "1.",
          "",
          "12\n},\"status\":\"ok\",\"message\":\"all good\",\"x\":{\"y\":1",
          "3\n4",
          " 5",
          "0x10",
          String(g.int(-99, 99)),
        ]);
        pairs.push({ name: g.next() < 0.15 ? new Uint8Array(0) : g.next() < 0.2 ? enc("dup") : Buffer.concat([enc("n"), bytesArg(g)]), value });
      }
      const args = [enc(status), ...(pairs.length || g.next() < 0.7 ? [message] : []), ...pairs.map((p) => Buffer.concat([p.name, enc("="), enc(p.value)]))];
      cases.push({ status, message, pairs, args });
    }
    const calls = runHelpers(cases.map((c) => c.args));
    cases.forEach(({ status, message, pairs, args }, i) => {
      const { rc, channel, stderr } = calls[i]!;
      const d = decodeResult(channelOf(channel), CAP, DECODINGS.shell, { exitCode: 0, signal: null });
      const why = `#${i} rc=${rc} args=${JSON.stringify(args.map((a) => lossy.decode(a)))} → ${JSON.stringify(d)} ${stderr}`;
      expect(d.resultSource, why).toBe("channel");
      // The message and metric names are decoded leniently (a stray byte becomes U+FFFD), values strictly.
      const names = pairs.map((p) => lossy.decode(p.name));
      const numeric = (v: string) => /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/.test(v) && Number.isFinite(Number(v));
      const acceptable =
        STATUSES.includes(status as ResultStatus) &&
        pairs.every((p) => p.name.length > 0 && numeric(p.value)) &&
        new Set(names).size === names.length &&
        names.every((n) => n.length <= 128);
      if (acceptable) {
        expect(d.resultError, why).toBeNull();
        expect(d.result?.status, why).toBe(status as ResultStatus);
        if (args.length > 1) expect(d.result?.message, why).toBe(lossy.decode(message));
        expect(Object.entries(d.result?.metrics ?? {}), why).toEqual(pairs.map((p) => [lossy.decode(p.name), Number(p.value)]));
        expect(rc, why).toBe(0);
      } else {
        expect(d.result?.status, why).toBe("crit");
        expect(d.resultError, why).toBeString();
      }
    });
  });

  test("the issue's injection: a crit call with a smuggled metric value never comes back ok", () => {
    const evil = '12\n},"status":"ok","message":"all good","x":{"y":1';
    const [{ rc, channel, stderr }] = runHelpers([[enc("crit"), enc("backend down"), enc(`latency_ms=${evil}`)]]) as [HelperCall];
    expect(rc, stderr).toBe(64); // refused: the value is not a number, checked whole
    const d = decodeResult(channelOf(channel), CAP, DECODINGS.shell, { exitCode: 0, signal: null });
    expect(d.result?.status).toBe("crit");
    expect(d.resultError).toContain("latency_ms");
  });
});

// ---------------------------------------------------------------------------------------

describe("maskDeep never throws on deep input", () => {
  test("300,000 nested arrays and 100,000 nested objects are walked without recursion; strings, keys and bytes are masked; shape kept", () => {
    let arr: unknown = ["the secret is hunter2"];
    for (let i = 0; i < 300_000; i++) arr = [arr];
    let obj: unknown = { "key-hunter2": "hunter2" };
    for (let i = 0; i < 100_000; i++) obj = { o: obj };
    const out = maskDeep({ arr, obj, bytes: new TextEncoder().encode("x hunter2 y"), n: 5, z: null, b: true, u: undefined }, ["hunter2"]);
    let a: unknown = out.arr;
    for (let i = 0; i < 300_000; i++) a = (a as unknown[])[0];
    expect(a).toEqual(["the secret is ****"]);
    let o: unknown = out.obj;
    for (let i = 0; i < 100_000; i++) o = (o as { o: unknown }).o;
    expect(o).toEqual({ "key-****": "****" });
    expect(new TextDecoder().decode(out.bytes)).toBe("x **** y");
    expect([out.n, out.z, out.b, out.u]).toEqual([5, null, true, undefined]);
  });

  test("key order, a __proto__ key and shared references come through as plain data", () => {
    const shared = { s: "hunter2" };
    const input = JSON.parse('{"b":1,"a":"hunter2","__proto__":{"polluted":"hunter2"},"c":[1,"hunter2"]}') as Record<string, unknown>;
    input.x = shared;
    input.y = shared;
    const out = maskDeep(input, ["hunter2"]);
    expect(Object.keys(out)).toEqual(["b", "a", "__proto__", "c", "x", "y"]);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(out, "__proto__")?.value).toEqual({ polluted: "****" });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(out.c).toEqual([1, "****"]);
    expect(out.x).toEqual({ s: "****" });
    expect(out.y).toEqual({ s: "****" });
  });
});

// ---------------------------------------------------------------------------------------
// Real sandboxes.
// ---------------------------------------------------------------------------------------

const runRoot = freshRunRoot("integrity");
const cordon = makeCordon(runRoot);
const client = cordonClient(cordon);
const SECRET = `tok${token("s")}`;

function run(runner: "shell" | "python" | "esm", source: string, extra: Partial<RunRequest> = {}): Promise<RunResult> {
  const unsafe = extra.provider === "unsafe";
  return cordon.run({
    runner,
    script: { source },
    args: [],
    secretEnv: { TOKEN: SECRET },
    ...extra,
    // ESM needs degrade without cgroups; unsafe isolates nothing and only runs under degrade.
    policy: { ...BASE_POLICY, ...(runner === "esm" || unsafe ? { onUnavailable: "degrade" } : {}), ...extra.policy },
  });
}

/** The whole RunResult survived: outcome, stdout, stats, and the output file. */
function expectSurvived(r: RunResult, marker: string): void {
  expect(r.error, describeResult(r)).toBeNull();
  expect(r.stdout, describeResult(r)).toContain(marker);
  expect(r.stats, describeResult(r)).not.toBeNull();
  expect(r.stats!.wallMs).toBeGreaterThan(0);
  expect(r.files.map((f) => f.path), describeResult(r)).toContain("out.txt");
  expect(r.sandbox).not.toBeNull();
}

function collect(collector: ScriptCollector, script: string, data: Record<string, unknown> = {}) {
  const policy = collector === esmCollector ? { onUnavailable: "degrade" } : undefined;
  const config = collector.config.parse({ version: 2, data: { script, ...(policy ? { policy } : {}), secretEnv: { TOKEN: SECRET }, ...data } });
  return collector.execute({ config, client, pluginId: "cordon" });
}

describe("item 1: an invalid or oversized report is crit with the reason, never the exit code's ok", () => {
  test("shell: cordon-result crit with latency_ms=1e999, exit 0 → crit (library and collector)", async () => {
    const script = 'cordon-result crit "backend down" "latency_ms=1e999"; exit 0';
    const r = await run("shell", script);
    expect(r.result?.status, describeResult(r)).toBe("crit");
    expect(r.resultSource).toBe("channel");
    expect(r.resultError).toContain("latency_ms");
    const { result } = await collect(shellCollector, script);
    expect(result.status, JSON.stringify(result)).toBe("crit");
    expect(healthStatus(result)).toBe("unhealthy");
    expect(result.resultError).toContain("latency_ms");
  });

  test("shell: a message with a non-UTF-8 byte keeps the reported status (the byte is replaced); raw JSON with one is crit", async () => {
    const helper = await run("shell", "cordon-result crit \"$(printf 'down \\377 now')\"; exit 0");
    expect(helper.result, describeResult(helper)).toEqual({ status: "crit", message: "down \uFFFD now" });
    const raw = await run("shell", "printf '{\"status\":\"crit\",\"message\":\"down \\377\"}\\n' >&4; exit 0");
    expect(raw.result?.status, describeResult(raw)).toBe("crit");
    expect(raw.resultError).toContain("not valid");
    const { result } = await collect(shellCollector, "printf '{\"status\":\"ok\",\"message\":\"fine \\377\"}\\n' >&4; exit 0");
    expect(result.status, JSON.stringify(result)).toBe("crit");
  });

  test("python: cordon.result('crit', 'x' * 70000) over the 64 KiB cap → crit, the cap named (library and collector)", async () => {
    // flush: the over-cap report ends the run, and Python's block-buffered stdout would die with it.
    const script = 'import cordon\nprint("before", flush=True)\ncordon.result("crit", "x" * 70000)';
    const r = await run("python", script);
    expect(r.result?.status, describeResult(r)).toBe("crit");
    expect(r.resultError).toContain(`larger than ${CAP} bytes`);
    expect(r.stdout).toBe("before\n");
    const { result } = await collect(pythonCollector, script);
    expect(result.status, JSON.stringify(result)).toBe("crit");
    // Small reports still work as before.
    const ok = await run("python", 'import cordon\ncordon.result("ok", "fine", metrics={"n": 1})');
    expect(ok.result).toEqual({ status: "ok", message: "fine", metrics: { n: 1 } });
  });

  test("esm: an oversized return value, an invalid status, a non-finite metric, a non-boolean success → crit", async () => {
    const cases = [
      'return { status: "crit", message: "x".repeat(70000) };',
      'return { status: "great" };',
      'return { status: "crit", metrics: { latency_ms: Infinity } };',
      'return { success: "false", message: "down" };',
    ];
    for (const script of cases) {
      const { result } = await collect(esmCollector, script);
      expect(result.status, `${script} → ${JSON.stringify(result)}`).toBe("crit");
      expect(result.resultError, script).toBeString();
    }
    const r = await run("esm", 'export default () => ({ status: "warn", metrics: { x: 1 }, extra: { a: 1 } })');
    expect(r.result).toEqual({ status: "warn", metrics: { x: 1 }, extra: { a: 1 } });
  });
});

describe("item 2: no JSON injection through cordon-result, no duplicate keys", () => {
  const evil = `latency_ms=$(printf '12\\n},"status":"ok","message":"all good","x":{"y":1')`;
  for (const provider of ["bwrap", "unsafe"]) {
    test(`${provider}: a smuggled metric value in a crit call stays crit; duplicate keys on fd 4 are crit`, async () => {
      const r = await run("shell", `cordon-result crit "backend down" "${evil}"; echo "rc=$?"; exit 0`, { provider });
      expect(r.stdout, describeResult(r)).toBe("rc=64\n");
      expect(r.result?.status, describeResult(r)).toBe("crit");
      expect(r.resultError).toContain("latency_ms");
      const dup = await run("shell", `printf '{"status":"crit","message":"down","status":"ok"}\\n' >&4`, { provider });
      expect(dup.result?.status, describeResult(dup)).toBe("crit");
      expect(dup.resultError).toContain("duplicate key");
    });
  }

  test("collector: the injected call and a duplicate metric name are unhealthy", async () => {
    for (const script of [`cordon-result crit "backend down" "${evil}"`, 'cordon-result ok "fine" x=1 x=2']) {
      const { result } = await collect(shellCollector, script);
      expect(result.status, `${script} → ${JSON.stringify(result)}`).toBe("crit");
      expect(healthStatus(result)).toBe("unhealthy");
    }
  });

  test("the helper still reports every honest form: quotes, backslashes, newlines, unicode, negative and exponent metrics", async () => {
    const r = await run("shell", `cordon-result warn "$(printf 'a "quoted" \\\\ back\\nslash\\ttab é')" "lat=-1.5e3" "n_é=0"`);
    expect(r.result, describeResult(r)).toEqual({ status: "warn", message: 'a "quoted" \\ back\nslash\ttab é', metrics: { lat: -1500, n_é: 0 } });
    expect(r.resultError).toBeNull();
  });
});

describe("item 4: deep nesting never loses the run", () => {
  test("30,000 nested [ with a secretEnv set: the RunResult survives, the report is crit (library and collector)", async () => {
    const script = `printf '{"status":"ok","x":' >&4; head -c 30000 /dev/zero | tr '\\0' '[' >&4; head -c 30000 /dev/zero | tr '\\0' ']' >&4; printf '}\\n' >&4; echo "marker $TOKEN"; echo data > out.txt`;
    const r = await run("shell", script);
    expectSurvived(r, "marker ****");
    expect(r.result?.status).toBe("crit");
    expect(r.resultError).toMatch(/nested deeper than 64/);
    const { result } = await collect(shellCollector, script);
    expect(result.status, JSON.stringify(result)).toBe("crit");
    expect(result.executionTimeMs).toBeGreaterThan(0);
    expect(result.sandbox).not.toBeNull();
  });
});

describe("item 5: a result-channel flood ends the run like an output flood", () => {
  for (const provider of ["bwrap", "unsafe"]) {
    test(`${provider}: cat /dev/zero >&4 → outcome limit, limitHit output, in well under the wall time`, async () => {
      const started = performance.now();
      const r = await run("shell", "echo started; cat /dev/zero >&4", { provider, policy: { resources: { wallMs: 20_000 } } });
      expect([r.outcome, r.limitHit], describeResult(r)).toEqual(["limit", "output"]);
      expect(performance.now() - started).toBeLessThan(5000);
      expect(r.stdout).toBe("started\n");
      expect(r.result?.status).toBe("crit");
      expect(r.resultError).toContain("larger than");
      expect(runRootEntries(runRoot)).toEqual([]);
    });
  }
});

// ---------------------------------------------------------------------------------------

/** The script for one generated payload: writes it to fd 4, prints a marker, leaves out.txt. */
function sampleScript(runner: "shell" | "python" | "esm", p: Payload, marker: string): string {
  const b64 = Buffer.from(p.bytes).toString("base64");
  switch (runner) {
    case "shell":
      return `echo ${marker}; echo data > out.txt; printf %s '${b64}' | base64 -d >&4; exit ${p.variant.length % 3}`;
    case "python":
      return `import base64, os\nprint("${marker}", flush=True)\nwith open("out.txt", "w") as f:\n    f.write("data")\ndata = base64.b64decode("${b64}")\nwhile data:\n    data = data[os.write(4, data):]`;
    case "esm":
      // Raw bytes need exit before the harness writes its own line; a valid one goes through the return value.
      return p.valid && p.variant === "valid"
        ? `import { writeFileSync, writeSync } from "node:fs";\nexport default () => { writeSync(1, "${marker}\\n"); writeFileSync("out.txt", "data"); return JSON.parse(Buffer.from("${b64}", "base64").toString()).value; };`
        : `import { writeFileSync, writeSync } from "node:fs";\nexport default () => { writeSync(1, "${marker}\\n"); writeFileSync("out.txt", "data"); const b = Buffer.from("${b64}", "base64"); for (let o = 0; o < b.length; ) o += writeSync(4, b, o); process.exit(0); };`;
  }
}

describe("real-run sample per runner: never better than reported, the RunResult always survives", () => {
  const PER_RUNNER: Variant[] = ["valid", "twice-last-valid", "huge", "deep", "duplicate-status", "non-utf8", "twice-last-invalid"];
  for (const runner of ["shell", "python", "esm"] as const) {
    test(`${runner}: ${PER_RUNNER.join(", ")}`, async () => {
      const g = new Gen(rng(runner.length * 7919));
      const cases = PER_RUNNER.map((v) => makePayload(g, v, runner === "esm"));
      // Two at a time: two cores.
      for (let i = 0; i < cases.length; i += 2) {
        await Promise.all(
          cases.slice(i, i + 2).map(async (p) => {
            const marker = token("mark");
            const r = await run(runner, sampleScript(runner, p, marker));
            const why = `${runner} ${p.variant}: ${describeResult(r)} ${JSON.stringify(r.result).slice(0, 300)} ${r.resultError}`;
            expectSurvived(r, marker);
            expect(r.result, why).not.toBeNull();
            expect(RANK[r.result!.status], why).toBeGreaterThanOrEqual(RANK[p.reported]);
            expect(r.resultSource, why).toBe("channel");
            if (p.valid) expect(r.result!.status, why).toBe(p.reported);
            else expect([r.result!.status, typeof r.resultError], why).toEqual(["crit", "string"]);
          }),
        );
      }
    });
  }
});
