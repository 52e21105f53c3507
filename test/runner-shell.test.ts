/**
 * The shell runner end to end: real bwrap, real /bin/sh (dash) inside the sandbox, no mocks.
 *
 * Covers what a shell script sees (argv, stdin, env, secrets), every form of structured
 * result (the `cordon-result` helper, raw JSON on fd 4, the exit-code fallback), invalid
 * and oversized reports, and hostile scripts (host file read, loopback egress, fork loop,
 * infinite loop) with their leftovers checked from the host. The "unsafe provider" section
 * runs the read and egress attacks without isolation and checks they succeed there: proof
 * that the hostile tests can fail.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync, type Dirent } from "node:fs";
import { join } from "node:path";
import { Cordon, runResultToJson, type CordonConfigInput, type ResultStatus, type RunResult } from "../src/api/index.ts";
import {
  BASE_POLICY,
  IS_ROOT,
  SANDBOX_UID,
  countingListener,
  describeResult,
  expectClean,
  expectOk,
  freshRunRoot,
  hostFileRoutes,
  hostileHarness,
  hostPids,
  makeCordon,
  parseKv,
  processesWithMarker,
  readProc,
  removeTempDirs,
  runScript,
  sleep,
  sleepMarker,
  tempDir,
  token,
  waitFor,
  watchMarked,
  type HostProcess,
  type ScriptRunOptions,
} from "./support.ts";

afterAll(() => removeTempDirs());

function shellCordon(runRoot = freshRunRoot("sh"), config: Omit<CordonConfigInput, "runRoot"> = {}): Cordon {
  return makeCordon(runRoot, config);
}

const runSh = (cordon: Cordon, source: string, opts: ScriptRunOptions = {}): Promise<RunResult> => runScript(cordon, "shell", source, opts);

const sha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");

/** Hostile scripts run in this frame: afterwards the supervisor still serves and nothing leaked (see hostileHarness). */
const hostile = hostileHarness({ cordon: shellCordon, run: (cordon, source) => runSh(cordon, source), echo: (word) => `echo ${word}` });

// ---------------------------------------------------------------------------------------

describe("shell runner: what the script sees", () => {
  test("hello: stdout, outcome ok, exit 0, the exit-code result, the runner in the report", async () => {
    const runRoot = freshRunRoot("sh");
    const r = await runSh(shellCordon(runRoot), 'echo "hello from $(id -u) in $(pwd)"');
    expectOk(r);
    expect(r.stdout).toMatch(/^hello from \d+ in \/scratch\n$/);
    if (IS_ROOT) expect(r.stdout).toBe(`hello from ${SANDBOX_UID} in /scratch\n`);
    expect(r.stderr).toBe("");
    expect(r.signal).toBeNull();
    expect(r.result).toEqual({ status: "ok", message: "no structured result; exit code 0 maps to ok" });
    expect(r.resultSource).toBe("exit-code");
    expect(r.resultError).toBeNull();
    const report = r.sandbox!;
    expect(report.provider).toMatchObject({ name: "bwrap", isolating: true });
    expect(report.runner.name).toBe("shell");
    // The interpreter and the staged script are in the one argv handed to Bun.spawn.
    const at = report.argv.indexOf("/bin/sh");
    expect(at, report.argv.join(" ")).toBeGreaterThan(-1);
    expect(report.argv[at + 1]).toBe("/cordon/job/script.sh");
    if (IS_ROOT) expect(report.downgrades).toEqual([]);
    expectClean(runRoot);
  });

  test("a .sh file picks the shell runner; $0 is the staged script", async () => {
    const dir = tempDir("shfile", 0o755);
    const file = join(dir, "check.sh");
    writeFileSync(file, 'echo "zero=$0"\necho "n=$#"\n');
    const runRoot = freshRunRoot("sh");
    const r = await shellCordon(runRoot).run({ script: { file }, args: ["x"], policy: BASE_POLICY });
    expectOk(r);
    expect(r.sandbox?.runner.name).toBe("shell");
    expect(parseKv(r.stdout)).toEqual({ zero: "/cordon/job/script.sh", n: "1" });
    expectClean(runRoot);
  });

  test("args round-trip exactly: spaces, quotes, unicode, empty, globs, newlines, dashes, $(…)", async () => {
    const args = ["plain", "with spaces", `it's "quoted"`, "ünïcødé ✓ 日本語 🚀", "", "*", "$(id)", "`id`", "a\nb", "--flag=1", "-", "\\back\\slash", "  lead and trail  "];
    const runRoot = freshRunRoot("sh");
    const r = await runSh(shellCordon(runRoot), 'printf "%s\\n" "$#" >&2; for a in "$@"; do printf "%s\\0" "$a"; done', { args });
    expectOk(r);
    expect(r.stderr).toBe(`${args.length}\n`);
    expect(r.stdout.split("\0").slice(0, -1)).toEqual(args);
    expectClean(runRoot);
  });

  test("stdin is binary-safe: every byte value and 64 KiB of random bytes come back unchanged", async () => {
    const all = new Uint8Array(256).map((_, i) => i);
    const input = new Uint8Array(Buffer.concat([all, randomBytes(64 * 1024), all]));
    const runRoot = freshRunRoot("sh");
    const r = await runSh(shellCordon(runRoot), 'cat; echo "bytes=$(wc -c < /dev/null)" >&2', { stdin: input });
    expectOk(r);
    expect(r.stdoutBytes.length).toBe(input.length);
    expect(Buffer.from(r.stdoutBytes).equals(Buffer.from(input))).toBe(true);
    // And the script can hash what it read: the same bytes arrived, not a re-encoding.
    const hashed = await runSh(shellCordon(runRoot), "sha256sum | cut -d' ' -f1", { stdin: input });
    expect(hashed.stdout.trim(), describeResult(hashed)).toBe(sha256(input));
    expectClean(runRoot);
  });
});

// ---------------------------------------------------------------------------------------

describe("shell runner: failures and the exit-code fallback", () => {
  const cases: [number, ResultStatus][] = [
    [0, "ok"],
    [1, "warn"],
    [2, "crit"],
    [3, "unknown"],
    [42, "unknown"],
  ];
  for (const [code, status] of cases) {
    test(`exit ${code} with no report maps to ${status} (resultSource exit-code)`, async () => {
      const runRoot = freshRunRoot("sh");
      const r = await runSh(shellCordon(runRoot), `echo before-exit; echo oops >&2; exit ${code}`);
      expect(r.outcome, describeResult(r)).toBe(code === 0 ? "ok" : "exit-nonzero");
      expect(r.exitCode).toBe(code);
      expect(r.stdout).toBe("before-exit\n");
      expect(r.stderr).toBe("oops\n");
      expect(r.resultSource).toBe("exit-code");
      expect(r.resultError).toBeNull();
      expect(r.result).toEqual({ status, message: `no structured result; exit code ${code} maps to ${status}` });
      expectClean(runRoot);
    });
  }

  test("a command that fails under set -e: exit 127 (not found) is a clear unknown, stderr says why", async () => {
    const runRoot = freshRunRoot("sh");
    const r = await runSh(shellCordon(runRoot), "set -e\nno-such-command-cordon --x\necho unreachable");
    expect(r.outcome, describeResult(r)).toBe("exit-nonzero");
    expect(r.exitCode).toBe(127);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("not found");
    expect(r.result?.status).toBe("unknown");
    expect(r.result?.message).toContain("exit code 127");
    expectClean(runRoot);
  });

  test("killed by a signal: outcome killed, signal SIGKILL (exit 137 from bwrap), result unknown", async () => {
    const runRoot = freshRunRoot("sh");
    const r = await runSh(shellCordon(runRoot), "echo before; kill -KILL $$; echo after");
    // bwrap reports the death as 128+N; cordon maps it back to the signal and keeps the status.
    expect([r.outcome, r.signal, r.exitCode], describeResult(r)).toEqual(["killed", "SIGKILL", 137]);
    expect(r.stdout).toBe("before\n");
    expect(r.result?.status).toBe("unknown");
    expect(r.resultSource).toBe("exit-code");
    expectClean(runRoot);
  });
});

// ---------------------------------------------------------------------------------------

describe("shell runner: structured results", () => {
  test("cordon-result helper: status, a message with quotes, newline, tab, backslash and unicode, metrics; stdout untouched", async () => {
    const runRoot = freshRunRoot("sh");
    // A real newline and a tab inside the message (dash has no $'…'; printf makes them).
    const source = `
echo visible-on-stdout
msg=$(printf 'msg with "quotes" and\\nnewline\\tand a tab, back\\\\slash, ünï ✓')
cordon-result warn "$msg" used=91.5 count=3 neg=-2 sci=1.5e3
echo "helper_rc=$?"
`;
    const r = await runSh(shellCordon(runRoot), source);
    expectOk(r);
    expect(r.stdout).toBe("visible-on-stdout\nhelper_rc=0\n"); // the result went to fd 4, not stdout
    expect(r.stderr).toBe("");
    expect(r.resultSource).toBe("channel");
    expect(r.resultError).toBeNull();
    expect(r.result).toEqual({
      status: "warn",
      message: 'msg with "quotes" and\nnewline\tand a tab, back\\slash, ünï ✓',
      metrics: { used: 91.5, count: 3, neg: -2, sci: 1500 },
    });
    expectClean(runRoot);
  });

  test("the channel result wins over the exit code (ok reported, exit 2)", async () => {
    const runRoot = freshRunRoot("sh");
    const r = await runSh(shellCordon(runRoot), 'cordon-result ok "fine"; exit 2');
    expect([r.outcome, r.exitCode], describeResult(r)).toEqual(["exit-nonzero", 2]);
    expect(r.result).toEqual({ status: "ok", message: "fine" });
    expect(r.resultSource).toBe("channel");
    expectClean(runRoot);
  });

  test("raw JSON on fd 4 ($CORDON_RESULT_FD), free JSON kept", async () => {
    const runRoot = freshRunRoot("sh");
    const cordon = shellCordon(runRoot);
    const plain = await runSh(cordon, `printf '{"status":"ok"}\\n' >&4`);
    expectOk(plain);
    expect(plain.result).toEqual({ status: "ok" });
    expect(plain.resultSource).toBe("channel");

    const free = await runSh(cordon, `printf '%s\\n' '{"status":"crit","message":"m","metrics":{"a":1},"extra":{"k":[1,"two",null]},"n":7}' >&"$CORDON_RESULT_FD"`);
    expectOk(free);
    expect(free.result).toEqual({ status: "crit", message: "m", metrics: { a: 1 }, extra: { k: [1, "two", null] }, n: 7 });
    expect(free.resultSource).toBe("channel");
    expect(free.resultError).toBeNull();
    expectClean(runRoot);
  });

  test("reporting twice: the last report wins (helper twice; helper then raw JSON)", async () => {
    const runRoot = freshRunRoot("sh");
    const cordon = shellCordon(runRoot);
    const twice = await runSh(cordon, 'cordon-result crit "first" x=1; cordon-result ok "second" x=2');
    expect(twice.result, describeResult(twice)).toEqual({ status: "ok", message: "second", metrics: { x: 2 } });
    expect(twice.resultSource).toBe("channel");
    const mixed = await runSh(cordon, `cordon-result ok "first"; printf '{"status":"unknown","message":"raw last"}\\n' >&4`);
    expect(mixed.result).toEqual({ status: "unknown", message: "raw last" });
    expectClean(runRoot);
  });

  test("helper misuse is refused by the helper (exit 64, usage on stderr) and reported as an unreadable report: crit", async () => {
    const runRoot = freshRunRoot("sh");
    const cordon = shellCordon(runRoot);
    const r = await runSh(
      cordon,
      `cordon-result great "m"; echo "bad_status=$?"
cordon-result ok "m" used=abc; echo "bad_metric=$?"
cordon-result ok "m" nonpair; echo "bad_pair=$?"
cordon-result; echo "no_args=$?"`,
    );
    expectOk(r);
    expect(parseKv(r.stdout)).toEqual({ bad_status: "64", bad_metric: "64", bad_pair: "64", no_args: "64" });
    expect(r.stderr).toContain("usage: cordon-result ok|warn|crit|unknown");
    expect(r.stderr).toContain("'abc' is not a number");
    expect(r.stderr).toContain("'nonpair' is not NAME=NUMBER");
    // A refused call is a report that cannot be read, never "no report" (exit 0 would say ok).
    expect(r.resultSource).toBe("channel");
    expect(r.result?.status).toBe("crit");
    expect(r.resultError).toContain("cordon-result refused its arguments: usage"); // the last call counts
    const one = await runSh(cordon, 'cordon-result warn "m" used=abc; exit 0');
    expect(one.result?.status, describeResult(one)).toBe("crit");
    expect(one.resultError).toContain("'abc' is not a number");
    expectClean(runRoot);
  });

  test("cordon-result with a leading-zero metric refuses it (exit 64): crit with the reason, never lost", async () => {
    const runRoot = freshRunRoot("sh");
    const r = await runSh(shellCordon(runRoot), 'cordon-result ok "zeros" a=007; echo "rc=$?"');
    expect(parseKv(r.stdout).rc, describeResult(r)).toBe("64");
    expect(r.result?.status).toBe("crit");
    expect(r.resultError).toContain("metric a: '007' is not a number");
    expectClean(runRoot);
  });
});

// ---------------------------------------------------------------------------------------

describe("shell runner: oversized and invalid reports are crit with a resultError, never a crash", () => {
  test("1 MiB on fd 4 with maxResultBytes 1024: the run ends as an output limit, crit naming the cap, the supervisor is fine", async () => {
    const runRoot = freshRunRoot("sh");
    const cordon = shellCordon(runRoot, { maxResultBytes: 1024 });
    const r = await runSh(cordon, "echo started; head -c 1048576 /dev/zero | tr '\\0' x >&4; echo \"write_rc=$?\"; exit 0");
    // An over-cap channel ends the run like an over-cap stdout: the writer is killed, not drained.
    expect([r.outcome, r.limitHit], describeResult(r)).toEqual(["limit", "output"]);
    expect(r.stdout).toBe("started\n");
    expect(r.resultError).toContain("larger than 1024 bytes");
    expect(r.result?.status).toBe("crit");
    expect(r.resultSource).toBe("channel");
    expect(r.durationMs).toBeLessThan(5000);
    // A report under the cap on the same cordon is taken as usual.
    const next = await runSh(cordon, 'cordon-result ok "small"');
    expect(next.result, describeResult(next)).toEqual({ status: "ok", message: "small" });
    expect(next.resultError).toBeNull();
    expectClean(runRoot);
  });

  // Whatever the exit code says (0 would map to ok): a report that cannot be read is crit.
  const invalid: { name: string; payload: string; exit: number; error: string[] }[] = [
    { name: "truncated JSON", payload: `printf '{"status": "ok",' >&4`, exit: 1, error: ["not valid JSON"] },
    { name: "not JSON at all", payload: "echo all good >&4", exit: 0, error: ["not valid JSON"] },
    { name: "invalid UTF-8", payload: "printf '\\377\\376{}' >&4", exit: 0, error: ["not valid JSON"] },
    { name: 'status "great"', payload: `printf '{"status":"great"}\\n' >&4`, exit: 2, error: ["is invalid", "status"] },
    { name: "a non-number metric", payload: `printf '{"status":"ok","metrics":{"x":"a"}}\\n' >&4`, exit: 3, error: ["is invalid", "metrics.x"] },
    { name: "a number message", payload: `printf '{"status":"ok","message":5}\\n' >&4`, exit: 0, error: ["is invalid", "message"] },
    { name: "a JSON array", payload: "printf '[1,2]\\n' >&4", exit: 0, error: ["is invalid", "(root)"] },
    { name: "a repeated key", payload: `printf '{"status":"crit","status":"ok"}\\n' >&4`, exit: 0, error: ["duplicate key"] },
  ];
  for (const c of invalid) {
    test(`${c.name}: crit (exit ${c.exit} does not decide), the reason in resultError`, async () => {
      const runRoot = freshRunRoot("sh");
      const r = await runSh(shellCordon(runRoot), `${c.payload}\nexit ${c.exit}`);
      expect(r.exitCode, describeResult(r)).toBe(c.exit);
      expect(r.outcome).toBe(c.exit === 0 ? "ok" : "exit-nonzero");
      for (const part of c.error) expect(r.resultError, `${r.resultError}`).toContain(part);
      expect(r.resultSource).toBe("channel");
      expect(r.result).toEqual({ status: "crit", message: `${r.resultError} (a report that cannot be read is crit)` });
      expectClean(runRoot);
    });
  }
});

// ---------------------------------------------------------------------------------------

describe("shell runner: env and secrets", () => {
  test("env reaches the script; a secret is usable but masked everywhere it comes back", async () => {
    const secret = `s3cr3t-${randomBytes(12).toString("hex")}`;
    const runRoot = freshRunRoot("sh");
    // The script never contains the secret: it proves it got it by hashing it.
    const source = `
echo "A=$A"
[ "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" = "$1" ] && echo match || echo mismatch
echo "out: $TOKEN and again $TOKEN"
echo "err: $TOKEN" >&2
cordon-result ok "token is $TOKEN" "m_$TOKEN=1"
`;
    const r = await runSh(shellCordon(runRoot), source, { args: [sha256(secret)], env: { A: "1" }, secretEnv: { TOKEN: secret } });
    expectOk(r);
    expect(r.stdout).toBe("A=1\nmatch\nout: **** and again ****\n");
    expect(r.stderr).toBe("err: ****\n");
    expect(r.result).toEqual({ status: "ok", message: "token is ****", metrics: { "m_****": 1 } });
    expect(Buffer.from(r.stdoutBytes).toString()).toBe(r.stdout);
    expect(Buffer.from(r.stderrBytes).toString()).toBe(r.stderr);
    // The report's argv holds the variable with its value masked…
    const argv = r.sandbox!.argv;
    const at = argv.indexOf("TOKEN");
    expect(at, argv.join(" ")).toBeGreaterThan(0);
    expect([argv[at - 1], argv[at + 1]]).toEqual(["--setenv", "****"]);
    // …and nothing anywhere in the result (report, bytes as base64 included) holds the value.
    expect(JSON.stringify(runResultToJson(r))).not.toContain(secret);
    expect(JSON.stringify(r.sandbox)).not.toContain(secret);
    expectClean(runRoot);
  });

  test("while the run is going the secret is in no host cmdline nor in bwrap's environ, and not in the sandbox's /proc/1", async () => {
    const secret = `s3cr3t-${randomBytes(12).toString("hex")}`;
    const mark = token("secretmark");
    const runRoot = freshRunRoot("sh");
    // grep reads the secret from a file: as an argument it would be in grep's own cmdline.
    const source = `
printf %s "$TOKEN" > /tmp/needle
echo "pid1=$(tr '\\0' ' ' < /proc/1/cmdline)"
echo "pid1_cmdline_hits=$(tr '\\0' '\\n' < /proc/1/cmdline | grep -cFf /tmp/needle)"
echo "pid1_environ_readable=$(cat /proc/1/environ >/dev/null && echo yes)"
echo "pid1_environ_hits=$(tr '\\0' '\\n' < /proc/1/environ | grep -cFf /tmp/needle)"
echo "any_cmdline_hits=$(cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -cFf /tmp/needle)"
echo "own_environ_hits=$(cat /proc/self/environ | tr '\\0' '\\n' | grep -cFf /tmp/needle)"
sleep 1
`;
    const running = runSh(shellCordon(runRoot), source, { args: [mark], secretEnv: { TOKEN: secret } });
    // Find the run's processes on the host: bwrap (outer and the namespace's init) and the script.
    let procs: HostProcess[] = [];
    const found = await waitFor(() => {
      procs = processesWithMarker(mark);
      return procs.some((p) => p.comm === "bwrap") && procs.some((p) => p.comm === "sh");
    }, 3000);
    expect(found, JSON.stringify(procs)).toBe(true);
    const cmdlineHits = hostPids().filter((pid) => (readProc(pid, "cmdline") ?? "").includes(secret));
    const bwraps = procs.filter((p) => p.comm === "bwrap");
    const bwrapEnvironHits = bwraps.filter((p) => (readProc(p.pid, "environ") ?? "").includes(secret));
    const scriptEnvironHits = procs.filter((p) => p.comm === "sh" && (readProc(p.pid, "environ") ?? "").includes(secret));
    const r = await running;
    expectOk(r);
    expect(cmdlineHits).toEqual([]);
    expect(bwraps.length).toBeGreaterThan(0);
    expect(bwrapEnvironHits).toEqual([]);
    // Not vacuous: the same scan finds the secret where it must be, in the script's own environment.
    expect(scriptEnvironHits.length).toBeGreaterThan(0);
    const kv = parseKv(r.stdout);
    expect(kv.pid1).toContain("bwrap"); // /proc/1 really was read
    expect(kv.pid1).toContain(mark);
    expect(kv.pid1_cmdline_hits).toBe("0");
    expect(kv.pid1_environ_readable).toBe("yes");
    expect(kv.pid1_environ_hits).toBe("0");
    expect(kv.any_cmdline_hits).toBe("0");
    expect(kv.own_environ_hits).toBe("1");
    expectClean(runRoot);
  });

  test("on the host disk, the secret is only in files no other uid can read, and gone after the run", async () => {
    const secret = `s3cr3t-${randomBytes(12).toString("hex")}`;
    const runRoot = freshRunRoot("sh");
    const running = runSh(shellCordon(runRoot), "sleep 0.8", { secretEnv: { TOKEN: secret } });
    // While the script sleeps, every file of the run dir (launcher arguments included) is looked at.
    const holders = new Map<string, { mode: number; uid: number }>();
    const sawRunDir = await waitFor(() => {
      for (const file of filesUnder(runRoot)) {
        if (!readFileSafe(file)?.includes(secret)) continue;
        const st = statSync(file);
        holders.set(file, { mode: st.mode & 0o777, uid: st.uid });
      }
      return holders.size > 0;
    }, 600);
    const r = await running;
    expectOk(r);
    for (const [file, st] of holders) {
      expect(st.mode & 0o077, `${file} mode ${st.mode.toString(8)}`).toBe(0);
      expect(st.uid).toBe(process.getuid?.() ?? -1);
    }
    if (!sawRunDir) console.warn("no file under the run dir held the secret (launcher arguments kept off disk?)");
    expectClean(runRoot); // and it is gone with the run dir
  });
});

// ---------------------------------------------------------------------------------------
// Attacks, shared by the bwrap tests and the unsafe-provider counter-tests.
// ---------------------------------------------------------------------------------------

/** Host canaries: a world-readable one in a 0755 dir per temp parent, and a root-only one (0600 in 0700). */
function makeCanaries(): { secret: string; open: string[]; rootOnly: string; rootOnlyDir: string } {
  const secret = token("canary-content-");
  const open = ["/tmp", "/var/tmp"].map((parent) => {
    const file = join(tempDir("canary", 0o755, parent), token("canary-file-"));
    writeFileSync(file, `${secret}\n`, { mode: 0o644 });
    return file;
  });
  // Not under /tmp: the sandbox owns that path, and a bind there is refused by the policy.
  const rootOnlyDir = tempDir("rootlike", 0o700, "/var/tmp");
  const rootOnly = join(rootOnlyDir, "secret");
  writeFileSync(rootOnly, `${secret}\n`, { mode: 0o600 });
  return { secret, open, rootOnly, rootOnlyDir };
}

function readAttackScript(files: string[]): string {
  const lines = files.map(
    (f) => `
${hostFileRoutes(f)}
find /tmp /var /root /home /scratch /cordon / -maxdepth 3 -name "$(basename '${f}')" -print 2>/dev/null | while read -r p; do echo "found=$p"; cat "$p"; done`,
  );
  return `${lines.join("\n")}\necho probe_done=1\nsleep 0.3\n`;
}

function egressScript(port: number): string {
  return `
echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ',')"
if timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}' 2>/dev/null; then echo tcp=connected; else echo tcp=failed; fi
echo probe_done=1
sleep 0.3
`;
}

describe("shell runner: hostile scripts are contained; the supervisor survives and nothing leaks", () => {
  test("reading host files: a world-readable canary and a root-only one (bound in) are never seen", async () => {
    const c = makeCanaries();
    await hostile("sh-read", async ({ cordon, mark, env }) => {
      const watch = watchMarked(mark);
      const r = await runSh(cordon, readAttackScript([...c.open, c.rootOnly]), { env, policy: { filesystem: { readOnlyBinds: [c.rootOnlyDir] } } });
      watch.stop();
      expect(r.stdout, describeResult(r)).toContain("probe_done=1");
      expect(r.stdout + r.stderr).not.toContain(c.secret);
      for (const f of c.open) expect(r.stdout).not.toContain(`found=${f}`);
      // The root-only file is visible (bound in) but the dropped uid cannot open it.
      if (IS_ROOT) expect(r.stdout).toContain("Permission denied");
      expect(watch.max()).toBeGreaterThan(0); // the host saw the run's processes: the leak check below is not vacuous
    });
  }, 15_000);

  test("egress to a loopback listener on the host: zero connections, only lo", async () => {
    const loop = countingListener("127.0.0.1");
    try {
      await hostile("sh-net", async ({ cordon, env }) => {
        const r = await runSh(cordon, egressScript(loop.port), { env });
        const kv = parseKv(r.stdout);
        expect(kv.probe_done, describeResult(r)).toBe("1");
        expect(kv.ifaces).toBe("lo,");
        expect(kv.tcp).toBe("failed");
        await sleep(100);
        expect(loop.hits()).toBe(0);
      });
    } finally {
      loop.stop();
    }
  }, 15_000);

  test("a fork loop of background sleeps runs into the process cap; the run ends and takes them all", async () => {
    const marker = sleepMarker(30);
    await hostile("sh-fork", async ({ cordon, mark, env }) => {
      const watch = watchMarked(mark);
      const source = `
( i=0; while [ $i -lt 300 ]; do sleep ${marker} & echo started; i=$((i+1)); done )
echo loop_exited
sleep 0.3
`;
      const r = await runSh(cordon, source, { env, policy: { resources: { wallMs: 8000 } } });
      watch.stop();
      const started = r.stdout.split("\n").filter((l) => l === "started").length;
      expect(r.outcome, describeResult(r)).toBe("ok");
      expect(r.stdout).toContain("loop_exited");
      expect(r.stderr).toContain("Cannot fork"); // it hit the limit…
      expect(started).toBeGreaterThan(20); // …after the bomb really ran
      expect(started).toBeLessThan(64); // the default maxProcesses
      expect(watch.max()).toBeGreaterThan(20); // the host saw them alive
      expect(r.durationMs).toBeLessThan(5000); // ended by the script's exit, not the wall clock
      expect(processesWithMarker(marker)).toEqual([]);
    });
  }, 20_000);

  test("an infinite loop is killed at the wall limit (1000 ms): timeout, limitHit wall, < 3 s", async () => {
    await hostile("sh-loop", async ({ cordon, mark, env }) => {
      const watch = watchMarked(mark);
      const started = performance.now();
      const r = await runSh(cordon, "while :; do :; done", { env, policy: { resources: { wallMs: 1000 } } });
      const elapsed = performance.now() - started;
      watch.stop();
      expect(r.outcome, describeResult(r)).toBe("timeout");
      expect(r.limitHit).toBe("wall");
      expect(r.durationMs).toBeGreaterThanOrEqual(1000);
      expect(r.durationMs).toBeLessThan(3000);
      expect(elapsed).toBeLessThan(3000);
      expect(r.result).toEqual({ status: "unknown", message: "no structured result; the script was killed by SIGKILL" });
      expect(watch.max()).toBeGreaterThan(0);
    });
  }, 15_000);
});

describe("shell runner: the same attacks succeed without isolation (the tests above can fail)", () => {
  test("unsafe: the host canaries are readable", async () => {
    const c = makeCanaries();
    const runRoot = freshRunRoot("sh-unsafe");
    const r = await runSh(shellCordon(runRoot), readAttackScript([...c.open, c.rootOnly]), { provider: "unsafe" });
    expect(r.sandbox?.provider).toMatchObject({ name: "unsafe", isolating: false });
    expect(r.stdout, describeResult(r)).toContain(c.secret);
    for (const f of c.open) expect(r.stdout).toContain(`found=${f}`);
    if (IS_ROOT) expect(r.stdout.split(c.secret).length - 1).toBeGreaterThanOrEqual(c.open.length + 1); // the root-only file too
    expectClean(runRoot);
  }, 15_000);

  test("unsafe: the host loopback listener is reached", async () => {
    const loop = countingListener("127.0.0.1");
    try {
      const runRoot = freshRunRoot("sh-unsafe");
      const r = await runSh(shellCordon(runRoot), egressScript(loop.port), { provider: "unsafe" });
      const kv = parseKv(r.stdout);
      expect(kv.tcp, describeResult(r)).toBe("connected");
      expect(kv.ifaces).not.toBe("lo,");
      expect(await waitFor(() => loop.hits() > 0, 1000)).toBe(true);
      expectClean(runRoot);
    } finally {
      loop.stop();
    }
  });
});

/** Regular files under `dir` (not following symlinks); unreadable or vanished dirs are skipped. */
function filesUnder(dir: string): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : []));
}

function readFileSafe(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}
