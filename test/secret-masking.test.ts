/**
 * The secret-masking matrix, through the public surface (Cordon.run, the script
 * collectors' execute): exactly what the README promises under "Secrets".
 *
 * - string: stdout, stderr, message, metric names, free JSON keys and values;
 * - number: a metric, a free-JSON number, an ESM return value (withheld, listed in `masked`);
 * - across the output cap: stdout, stderr (also when the kill interrupts the secret), the
 *   result channel, an output file over the file budget;
 * - files: names and contents, `size` after masking;
 * - error messages quoting the script's output;
 * - cordon's structure is never masked (a secret equal to one of its words);
 * - secrets shorter than MIN_SECRET_BYTES are refused, nothing spawned.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { esmCollector, shellCollector } from "../plugins/collector-script/index.ts";
import { Cordon, cordonClient, JobInputError, runResultToJson, type CordonConfigInput, type PolicyOverride, type RunRequest, type RunResult, type TransportClient } from "../src/api/index.ts";
import * as secretsModule from "../src/secrets.ts";
import { readCapped } from "../src/sandbox/output.ts";
import { BASE_POLICY, caught, freshRunRoot, makeCordon, removeTempDirs, runRootEntries } from "./support.ts";

afterAll(removeTempDirs);

const hex = (n = 8) => [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, "0")).join("");
/** A head that nothing of cordon's own text contains ("QX"), then letters: any prefix of it in a result is a leak. */
const secretWord = () => `QXJsecret${hex(6).replace(/[0-9]/g, (d) => "ghijklmnop"[Number(d)]!)}`;
const CARD = "4111111111111111";

function cordonWith(config: Omit<CordonConfigInput, "runRoot"> = {}): Cordon {
  return makeCordon(freshRunRoot("secret-masking"), config);
}
const cordon = cordonWith();
/** As root Bun is capped by a cgroup; as non-root BASE_POLICY already degrades. */
const ESM_POLICY: PolicyOverride = BASE_POLICY;

function sh(source: string, secretEnv: Record<string, string>, policy: PolicyOverride = {}, on: Cordon = cordon): Promise<RunResult> {
  return on.run({ runner: "shell", script: { source }, args: [], secretEnv, policy: { ...BASE_POLICY, ...policy } });
}

/** Everything a caller of the library can see of a run, as text. */
function surface(r: RunResult): string {
  const bytes = [r.stdoutBytes, r.stderrBytes, ...r.files.map((f) => f.content)].map((b) => Buffer.from(b).toString("latin1"));
  return [JSON.stringify(runResultToJson(r)), ...bytes].join("\n");
}

function expectNoLeak(r: RunResult, secret: string, prefix = 4): void {
  const seen = surface(r);
  expect(seen).not.toContain(secret);
  expect(seen).not.toContain(secret.slice(0, prefix));
}

describe("strings", () => {
  test("stdout, stderr, message, a metric name and free JSON keys and values are masked", async () => {
    const s = secretWord();
    const r = await sh(
      `echo "out $S"; echo "err $S" >&2; printf '{"status":"warn","message":"m %s","metrics":{"k_%s":1},"free":{"key_%s":"v %s"}}' "$S" "$S" "$S" "$S" >&$CORDON_RESULT_FD`,
      { S: s },
    );
    expect(r.outcome).toBe("ok");
    expect(r.stdout).toBe("out ****\n");
    expect(r.stderr).toContain("err ****");
    expect(r.result).toEqual({ status: "warn", message: "m ****", metrics: { "k_****": 1 }, free: { "key_****": "v ****" } });
    expect(r.masked).toBeUndefined();
    expectNoLeak(r, s);
  });
});

describe("numbers", () => {
  test("a metric equal to a secret is withheld (metrics stay numbers) and named in masked", async () => {
    const r = await sh(`cordon-result ok "paid" card=$CARD amount=12`, { CARD });
    expect(r.result?.status).toBe("ok");
    expect(r.result?.metrics).toEqual({ amount: 12 });
    expect(r.masked).toEqual(["/result/metrics/card"]);
    expect(surface(r)).not.toContain(CARD);
  });

  test("a PIN with leading zeros: the number it reads as is withheld", async () => {
    const r = await sh(`cordon-result ok "x" pin=31415926 other=7`, { PIN: "0031415926" });
    expect(r.result?.metrics).toEqual({ other: 7 });
    expect(r.masked).toEqual(["/result/metrics/pin"]);
  });

  test("free JSON: numbers that equal or contain a secret become null, each path listed", async () => {
    const r = await sh(`printf '{"status":"ok","n":%s,"list":[1,%s],"deep":{"k":-%s.5},"keep":7}' "$CARD" "$CARD" "$CARD" >&$CORDON_RESULT_FD`, { CARD });
    expect(r.result).toEqual({ status: "ok", n: null, list: [1, null], deep: { k: null }, keep: 7 });
    expect([...(r.masked ?? [])].sort()).toEqual(["/result/deep/k", "/result/list/1", "/result/n"]);
    expect(surface(r)).not.toContain(CARD);
  });

  test("an ESM return value: null in the run, left out of the collector's metrics, listed in masked (library and collector)", async () => {
    const source = 'return { success: true, message: "charged", value: Number(ctx.env.CARD) };';
    const r = await cordon.run({ runner: "esm", script: { source }, args: [], options: { form: "inline" }, secretEnv: { CARD }, policy: ESM_POLICY });
    expect(r.result?.status).toBe("ok");
    expect(r.result?.value).toBeNull();
    expect(r.masked).toEqual(["/result/value"]);
    expect(surface(r)).not.toContain(CARD);

    const config = esmCollector.config.parse({ version: 2, data: { script: source, policy: ESM_POLICY } });
    const out = await esmCollector.execute({ config, client: cordonClient(cordon), pluginId: "cordon", secretEnv: { CARD } });
    expect(out.result.status).toBe("ok");
    expect(out.result.metrics?.value).toBeUndefined();
    expect(out.result.masked).toEqual(["/metrics/value"]);
    expect(() => shellCollector.result.validate(out.result)).not.toThrow();
    expect(JSON.stringify(out)).not.toContain(CARD);
  });

  test("collector, shell: a metric equal to a secret is withheld and the stored result stays valid", async () => {
    const config = shellCollector.config.parse({ version: 2, data: { script: "cordon-result ok paid card=$CARD n=2", secretEnv: { CARD }, ...(BASE_POLICY.onUnavailable ? { policy: BASE_POLICY } : {}) } });
    const out = await shellCollector.execute({ config, client: cordonClient(cordon), pluginId: "cordon" });
    expect(out.result.metrics).toEqual({ n: 2 });
    expect(out.result.masked).toEqual(["/metrics/card"]);
    expect(() => shellCollector.result.validate(out.result)).not.toThrow();
    expect(JSON.stringify(out)).not.toContain(CARD);
  });

  test("collector over a client that does not mask: metric names and numbers are masked there too", async () => {
    const s = secretWord();
    const unmasked: TransportClient<RunRequest, RunResult> = {
      async exec(request) {
        return cordon.run({ ...request, secretEnv: {}, env: { ...request.env, ...request.secretEnv } });
      },
    };
    const config = shellCollector.config.parse({ version: 2, data: { script: `cordon-result ok "m $S" "k_$S=1" card=$CARD`, ...(BASE_POLICY.onUnavailable ? { policy: BASE_POLICY } : {}) } });
    const out = await shellCollector.execute({ config, client: unmasked, pluginId: "cordon", secretEnv: { S: s, CARD } });
    expect(out.result.message).toBe("m ****");
    expect(out.result.metrics).toEqual({ "k_****": 1 });
    expect(out.result.masked).toEqual(["/metrics/card"]);
    expect(JSON.stringify(out)).not.toContain(CARD);
    expect(JSON.stringify(out)).not.toContain(s);
  });
});

describe("across the output cap (maxOutputBytes 100)", () => {
  const CAP: PolicyOverride = { resources: { maxOutputBytes: 100 } };

  test("stdout: a secret written across the cut is masked whole, nothing of it is left", async () => {
    const s = secretWord();
    const r = await sh(`printf '%090d' 0; echo "$S"`, { S: s }, CAP);
    expect(r.stdoutTruncated).toBe(true);
    expect(r.stdoutBytes.length).toBeLessThanOrEqual(100);
    expect(r.stdout.startsWith("0".repeat(90))).toBe(true);
    expect(r.stdout.slice(90)).toMatch(/^\**$/);
    expectNoLeak(r, s, 2);
  });

  test("stderr: the same", async () => {
    const s = secretWord();
    const r = await sh(`printf '%090d' 0 >&2; echo "$S" >&2`, { S: s }, CAP);
    expect(r.stderrTruncated).toBe(true);
    expect(r.stderrBytes.length).toBeLessThanOrEqual(100);
    expect(r.stderr.slice(90)).toMatch(/^\**$/);
    expectNoLeak(r, s, 2);
  });

  test("a secret written a byte at a time, the tree killed at the cap before its end: its start is masked", async () => {
    const s = secretWord();
    const slow = `printf '%095d' 0; s=$S; while [ -n "$s" ]; do rest=\${s#?}; printf '%s' "\${s%"$rest"}"; s=$rest; sleep 0.05; done`;
    const r = await sh(slow, { S: s }, CAP);
    expect(r.stdoutTruncated).toBe(true);
    expect(r.stdout).toMatch(/^0{95}\**$/);
    expectNoLeak(r, s, 2);
  });

  test("the result channel over maxResultBytes: the report is discarded whole, nothing of the secret is returned", async () => {
    const s = secretWord();
    const small = cordonWith({ maxResultBytes: 128 });
    const r = await sh(`printf '{"status":"ok","message":"%0100d%s"}' 0 "$S" >&$CORDON_RESULT_FD`, { S: s }, {}, small);
    expect(r.result?.status).toBe("crit");
    expect(r.resultError).toContain("larger than 128 bytes");
    expectNoLeak(r, s, 2);
  });

  test("an output file over the file budget is not returned at all (files are never cut)", async () => {
    const s = secretWord();
    const small = cordonWith({ outputFiles: { maxTotalBytes: 100 } });
    const r = await sh(`{ printf '%090d' 0; echo "$S"; } > big.txt`, { S: s }, {}, small);
    expect(r.files).toEqual([]);
    expect(r.filesOmitted.map((f) => f.path)).toEqual(["big.txt"]);
    expectNoLeak(r, s, 2);
  });
});

describe("files", () => {
  test("names and contents are masked; size is the masked size (it does not tell the secret's length)", async () => {
    const s = secretWord();
    const r = await sh(`echo "a $S b" > "f-$S.txt"; printf '%s' "$S$S" > twice.bin`, { S: s });
    const byPath = Object.fromEntries(r.files.map((f) => [f.path, f]));
    expect(Object.keys(byPath).sort()).toEqual(["f-****.txt", "twice.bin"]);
    expect(new TextDecoder().decode(byPath["f-****.txt"]!.content)).toBe("a **** b\n");
    expect(byPath["f-****.txt"]!.size).toBe(Buffer.byteLength("a **** b\n"));
    expect(byPath["twice.bin"]!.size).toBe(8);
    expectNoLeak(r, s);
  });
});

describe("error messages that quote the script's output", () => {
  test("an unreadable report quoting the secret: resultError is masked", async () => {
    const s = secretWord();
    const r = await sh(`cordon-result ok "x" "m=$S"`, { S: s });
    expect(r.result?.status).toBe("crit");
    expect(r.resultError).not.toBeNull();
    expectNoLeak(r, s);
  });

  test("a secret with a quote or a backslash, quoted in resultError (a duplicate key), is masked: reasons quote verbatim, never escaped", async () => {
    for (const s of [`${secretWord()}"x`, `${secretWord()}\\y`]) {
      // The key is written JSON-escaped; decoded, it is the secret itself.
      const escaped = JSON.stringify(s).slice(1, -1);
      // Given on stdin, so only the secret itself (S) is a secret: the escaped form must not leak through the reason.
      const source = `IFS= read -r SJ; printf '{"status":"ok","%s":1,"%s":2}' "$SJ" "$SJ" >&4`;
      const r = await cordon.run({ runner: "shell", script: { source }, args: [], stdin: new TextEncoder().encode(`${escaped}\n`), secretEnv: { S: s }, policy: BASE_POLICY });
      expect(r.result?.status).toBe("crit");
      expect(r.resultError).toContain("duplicate key");
      expect(r.resultError).toContain("****");
      expectNoLeak(r, s);
    }
  });

  test("an ESM exception quoting the secret: message and the free JSON error are masked", async () => {
    const s = secretWord();
    const r = await cordon.run({ runner: "esm", script: { source: 'throw new Error("bad " + ctx.env.S);' }, args: [], options: { form: "inline" }, secretEnv: { S: s }, policy: ESM_POLICY });
    expect(r.result?.status).toBe("crit");
    expect(r.result?.message).toContain("bad ****");
    expectNoLeak(r, s);
  });

  test("a thrown CordonError naming a path with the secret is masked", async () => {
    const s = secretWord();
    const e = await caught(() => cordon.run({ runner: "shell", script: { file: `/nonexistent/${s}.sh` }, args: [], secretEnv: { S: s }, policy: BASE_POLICY }));
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).message).toContain("****");
    expect((e as Error).message).not.toContain(s);
  });
});

describe("cordon's structure is never masked", () => {
  // Each at least 8 bytes, each a word of cordon's own: a key, an enum value, a layer name.
  const WORDS = { A: "exit-code", B: "filesystem", C: "enforced", D: "stdoutTruncated", E: "resultSource", F: "exit-nonzero" };

  test("library: keys, outcomes, sources and report statuses stay; the script's own use of the words is masked", async () => {
    const r = await sh("echo filesystem enforced; exit 1", WORDS);
    expect(r.outcome).toBe("exit-nonzero");
    expect(r.resultSource).toBe("exit-code");
    expect(Object.keys(r)).toContain("stdoutTruncated");
    expect(Object.keys(r)).toContain("resultSource");
    expect(r.stdoutTruncated).toBe(false);
    expect(Object.keys(r.sandbox!.layers)).toContain("filesystem");
    expect(r.sandbox!.layers.filesystem.status).toBe("enforced");
    expect(r.stdout).toBe("**** ****\n");
  });

  test("collector: status, layer names and the stored schema stay valid", async () => {
    const config = shellCollector.config.parse({ version: 2, data: { script: "cordon-result ok fine n=1", secretEnv: WORDS, ...(BASE_POLICY.onUnavailable ? { policy: BASE_POLICY } : {}) } });
    const out = await shellCollector.execute({ config, client: cordonClient(cordon), pluginId: "cordon" });
    expect(out.result.status).toBe("ok");
    expect(out.result.sandbox?.enforced).toContain("filesystem");
    expect(() => shellCollector.result.validate(out.result)).not.toThrow();
  });
});

describe(`secrets shorter than ${secretsModule.MIN_SECRET_BYTES} bytes are refused`, () => {
  test("Cordon.run: JobInputError naming the variable (never the value), nothing created or spawned", async () => {
    const runRoot = freshRunRoot("short-secret");
    const fresh = makeCordon(runRoot);
    for (const value of ["1234", "ok", "", "seven77"]) {
      const e = await caught(() => fresh.run({ runner: "shell", script: { source: "touch /scratch/ran; echo ran" }, args: [], secretEnv: { PIN: value }, policy: BASE_POLICY }));
      expect(e).toBeInstanceOf(JobInputError);
      expect((e as Error).message).toContain("PIN");
      expect((e as Error).message).toContain(`${secretsModule.MIN_SECRET_BYTES} bytes`);
      if (value.length >= 4) expect((e as Error).message).not.toContain(value);
    }
    expect(runRootEntries(runRoot)).toEqual([]);
    // 8 bytes is enough (multi-byte characters count in bytes).
    const ok = await fresh.run({ runner: "shell", script: { source: "echo $PIN" }, args: [], secretEnv: { PIN: "éééé" }, policy: BASE_POLICY });
    expect(ok.stdout).toBe("****\n");
  });

  test("collector config: a stored short secret is invalid", () => {
    expect(() => shellCollector.config.parse({ version: 2, data: { script: "true", secretEnv: { PIN: "1234" } } })).toThrow(/secretEnv/);
  });

  test("collector execute: a just-in-time short secret is unknown with the reason, the client never called", async () => {
    let calls = 0;
    const counting: TransportClient<RunRequest, RunResult> = {
      exec: async () => {
        calls++;
        throw new Error("must not be called");
      },
    };
    const config = shellCollector.config.parse({ version: 2, data: { script: "true" } });
    const out = await shellCollector.execute({ config, client: counting, pluginId: "cordon", secretEnv: { PIN: "1234" } });
    expect(calls).toBe(0);
    expect(out.result.status).toBe("unknown");
    expect(out.error).toContain("PIN");
    expect(out.error).not.toContain("1234");
  });
});

describe("masking across a cut, property: random output, secrets, chunking and kill points", () => {
  // Secrets are letters; filler never is: any letter in what comes back is a leak.
  const FILLER = "0123456789 \n*";
  function rng(seed: number) {
    let x = seed >>> 0 || 1;
    return (n: number) => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
  }

  test("1000 cases: at most cap bytes, no letter of any secret, exact when nothing was cut", async () => {
    for (let seed = 1; seed <= 1000; seed++) {
      const r = rng(seed);
      const word = (len: number) => Array.from({ length: len }, () => "abcdefghijklmnopqrstuvwxyz"[r(26)]).join("");
      const a = word(8 + r(20));
      // b overlaps a's end (or is unrelated, or contains a): overlapping occurrences must be covered whole.
      const b = [a.slice(a.length - 4) + word(4 + r(8)), word(8 + r(6)), `${word(2)}${a}${word(2)}`][r(3)]!;
      const secrets = secretsModule.secretValues({ A: a, B: b });
      const ab = b.startsWith(a.slice(-4)) ? a.slice(0, -4) + b : a + b; // overlapping where b starts with a's end
      let raw = "";
      while (raw.length < 40 + r(300)) {
        const k = r(6);
        raw += k === 0 ? a : k === 1 ? b : k === 2 ? ab : Array.from({ length: 1 + r(12) }, () => FILLER[r(FILLER.length)]).join("");
      }
      const bytes = Buffer.from(raw);
      const cap = 1 + r(bytes.length + 10);
      let overflowed = false;
      const afterKill = r(3); // chunks still delivered after the overflow (the kill is not instant)
      let at = 0;
      let sentAfter = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(c) {
          if (at >= bytes.length || (overflowed && sentAfter++ >= afterKill)) return c.close();
          const n = 1 + r(24);
          c.enqueue(new Uint8Array(bytes.subarray(at, at + n)));
          at += n;
        },
      });
      const out = await readCapped(stream, cap, () => (overflowed = true), undefined, secrets);
      const text = Buffer.from(out.bytes).toString("latin1");
      const context = `seed ${seed}: cap ${cap}, secrets ${JSON.stringify(secrets)}, raw ${JSON.stringify(raw)} -> ${JSON.stringify(text)}`;
      expect(out.bytes.length, context).toBeLessThanOrEqual(cap);
      expect(/[a-z]/.test(text), context).toBe(false);
      expect(out.truncated, context).toBe(bytes.length > cap);
      if (!out.truncated) expect(text, context).toBe(secretsModule.maskText(raw, secrets));
    }
  });
});
