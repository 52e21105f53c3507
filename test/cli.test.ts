import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { READINESS_CELLS } from "../src/readiness/types.ts";
import { CLI_WIDTH, CORDON_CLI, cordonLines, runCli, TERMINAL_CONTROLS, widestLine } from "./support.ts";

const CLI = resolve(import.meta.dir, "../bin/cordon.ts");
const dir = mkdtempSync(join(tmpdir(), "cordon-cli-test-"));
chmodSync(dir, 0o711); // the sandbox uid must be able to reach the run directories below
const runRoot = join(dir, "runs");
const config = join(dir, "config.json");
writeFileSync(config, JSON.stringify({ runRoot }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, body);
  return path;
}

const cli = runCli;

describe("cordon run", () => {
  test("passes the script's output through, mirrors its exit status, summarises on stderr", async () => {
    const s = script("out.sh", 'echo "to stdout"; echo "to stderr" >&2; exit 3\n');
    const r = await cli(["run", "--config", config, s]);
    expect(r.stdout).toBe("to stdout\n");
    expect(r.stderr).toStartWith("to stderr\n");
    expect(r.stderr).toContain("cordon: sandbox bwrap");
    expect(r.stderr).toContain("exit-nonzero");
    expect(r.code).toBe(3);
  });

  test("stdout and stderr redirected to one file (`>> f 2>&1`): appended in order, nothing of the file clobbered; a reader that goes away ends output quietly", async () => {
    const s = script("both.sh", 'echo "to stdout"; echo "to stderr" >&2\n');
    const dir = mkdtempSync(join(tmpdir(), "cordon-cli-append-"));
    const out = join(dir, "out.txt");
    writeFileSync(out, "before\n");
    const sh = (cmd: string, env: Record<string, string> = {}) =>
      Bun.spawn(["/bin/sh", "-c", cmd], { stdout: "pipe", stderr: "pipe", env: { ...process.env, CORDON: CORDON_CLI, BUN: process.execPath, S: s, CONFIG: config, OUT: out, ...env } });
    expect(await sh('"$BUN" "$CORDON" run --config "$CONFIG" "$S" >> "$OUT" 2>&1').exited).toBe(0);
    const lines = (await Bun.file(out).text()).split("\n");
    expect(lines.slice(0, 3)).toEqual(["before", "to stdout", "to stderr"]);
    expect(lines[3]).toStartWith("cordon: sandbox bwrap");
    rmSync(dir, { recursive: true, force: true });
    // 2 MB of output into `head -c 10`: the CLI neither hangs nor prints a stack trace.
    const big = script("big.sh", 'head -c 2000000 /dev/zero | tr "\\0" a\n');
    const policy = script("policy.json", JSON.stringify({ resources: { maxOutputBytes: 4_000_000 } }));
    const piped = sh('"$BUN" "$CORDON" run --config "$CONFIG" --policy "$POLICY" "$BIG" | head -c 10', { POLICY: policy, BIG: big });
    const [head, err] = await Promise.all([new Response(piped.stdout).text(), new Response(piped.stderr).text(), piped.exited]);
    expect(head, err).toBe("aaaaaaaaaa");
    expect(err).not.toContain("EPIPE");
  });

  test("a signal death comes back as 128+N and is named", async () => {
    const s = script("sig.sh", "kill -TERM $$\n");
    const r = await cli(["run", "--config", config, "--json", s]);
    const result = JSON.parse(r.stdout);
    expect(result.signal).toBe("SIGTERM");
    expect(result.outcome).toBe("killed");
    expect(r.code).toBe(128 + 15);
  });

  test("stdin is forwarded and args after -- reach the script, option-like ones included", async () => {
    const s = script("args.sh", 'printf "%s|" "$@"; cat\n');
    const r = await cli(["run", "--config", config, s, "--", "--json", "two words", "-x"], { stdin: "from stdin" });
    expect(r.stdout).toBe("--json|two words|-x|from stdin");
    expect(r.code).toBe(0);
  });

  test("--json prints exactly one RunResult object with the effective report", async () => {
    const s = script("json.sh", "echo hi\n");
    const r = await cli(["run", "--config", config, "--json", s]);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    const result = JSON.parse(lines[0]!);
    expect(result).toMatchObject({ outcome: "ok", exitCode: 0, stdout: "hi\n", stdoutTruncated: false });
    expect(result.sandbox.provider.name).toBe("bwrap");
    expect(Object.keys(result.sandbox.layers)).toEqual(["filesystem", "network", "resources", "privilege", "env"]);
    expect(result.stdoutBytes).toBeUndefined();
  });

  test("invalid UTF-8 output is lossless: raw bytes without --json, base64 with it", async () => {
    const s = script("bytes.sh", "printf '\\377\\376ok'\n");
    const raw = Bun.spawnSync([process.execPath, CLI, "run", "--config", config, s], { stdin: "ignore" });
    expect([...raw.stdout]).toEqual([0xff, 0xfe, 0x6f, 0x6b]);
    const r = await cli(["run", "--config", config, "--json", s]);
    expect(Buffer.from(JSON.parse(r.stdout).stdoutBase64, "base64")).toEqual(Buffer.from([0xff, 0xfe, 0x6f, 0x6b]));
  });

  test("invalid policy file: status 126, the field named, nothing run", async () => {
    const s = script("never.sh", "echo RAN\n");
    const policy = join(dir, "bad-policy.json");
    writeFileSync(policy, JSON.stringify({ resources: { wallMs: -5 } }));
    const r = await cli(["run", "--config", config, "--policy", policy, "--json", s]);
    const result = JSON.parse(r.stdout);
    expect(result.outcome).toBe("error");
    expect(result.error.code).toBe("invalid-policy");
    expect(result.error.message).toContain("resources.wallMs");
    expect(r.code).toBe(126);
    expect(r.stdout).not.toContain("RAN");
  });

  test("refusal under fail: status 125, every reason listed, nothing run", async () => {
    const s = script("never2.sh", "echo RAN\n");
    const policy = join(dir, "allowlist.json");
    writeFileSync(policy, JSON.stringify({ network: { mode: "allowlist", allow: ["192.0.2.10:80"] } }));
    const r = await cli(["run", "--config", config, "--policy", policy, s]);
    expect(r.code).toBe(125);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("refused");
    expect(r.stderr).toContain("network.egress");
  });

  test("unknown provider, unknown runner, missing script, usage errors: status 126 with a clear message", async () => {
    const s = script("ok.sh", "true\n");
    const cases: [string[], string][] = [
      [["run", "--config", config, "--provider", "nope", s], 'unknown provider "nope"'],
      [["run", "--config", config, "--runner", "cobol", s], 'unknown runner "cobol"'],
      [["run", "--config", config, join(dir, "missing.sh")], "cannot read script"],
      [["run", "--config", config, script("noext", "true\n")], "unknown runner"],
      [["run", "--config", config], "run needs a script FILE"],
      [["frobnicate"], 'unknown command "frobnicate"'],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect(r.stderr).toContain(message);
      expect(r.code).toBe(126);
    }
  });

  test("a wall timeout exits 124", async () => {
    const s = script("loop.sh", "while :; do :; done\n");
    const policy = join(dir, "short.json");
    writeFileSync(policy, JSON.stringify({ resources: { wallMs: 300 } }));
    const r = await cli(["run", "--config", config, "--policy", policy, s]);
    expect(r.code).toBe(124);
    expect(r.stderr).toContain("timeout limit=wall");
  });

  test("no run directory is left behind by any of the above", () => {
    expect(readdirSync(runRoot)).toEqual([]);
  });
});

describe("cordon readiness", () => {
  test("bwrap is proven on every layer, unsafe on none but env; exit 0 for the configured bwrap", async () => {
    const r = await cli(["readiness", "--config", config, "--json"]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    const bwrap = report.providers.find((p: { provider: string }) => p.provider === "bwrap");
    for (const layer of ["filesystem", "network", "resources", "privilege", "env"]) expect(bwrap.layers[layer].status).toBe("proven");
    const unsafe = report.providers.find((p: { provider: string }) => p.provider === "unsafe");
    for (const layer of ["filesystem", "network", "privilege"]) expect(unsafe.layers[layer].status).toBe("not-enforced");
    expect(report.ready).toBe(true);
  });

  test("the table has providers as rows and a mark per readiness cell, within 100 columns", async () => {
    const r = await cli(["readiness", "--config", config]);
    const [header] = r.stdout.split("\n");
    expect(header).toMatch(/^provider\s+version\s+\S+/);
    expect(header).toMatch(/\sdefault$/);
    expect(r.stdout).toMatch(new RegExp(`^bwrap\\s+0\\.\\d+\\.\\d+\\s+${READINESS_CELLS.map(() => "✓\\s+").join("")}runs$`, "m"));
    expect(r.stdout).toContain("unsafe (NO ISOLATION)");
    expect(widestLine(r.stdout), r.stdout).toBeLessThanOrEqual(CLI_WIDTH);
  });

  test("bwrap missing from PATH: not enforced with the reason, exit non-zero", async () => {
    const r = await cli(["readiness", "--config", config, "--json"], { env: { PATH: join(dir, "empty-path") } });
    expect(r.code).toBe(1);
    const bwrap = JSON.parse(r.stdout).providers.find((p: { provider: string }) => p.provider === "bwrap");
    expect(bwrap.available).toBe(false);
    expect(bwrap.layers.filesystem).toEqual({ status: "not-enforced", detail: expect.stringContaining("bwrap not found") });
  });
});

function policyFile(name: string, policy: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(policy));
  return path;
}

function expectNoTerminalControls(lines: readonly string[]): void {
  for (const line of lines) expect(TERMINAL_CONTROLS.test(line), JSON.stringify(line)).toBe(false);
}

describe("lines cordon writes carry no terminal controls; the script's own output is untouched", () => {
  test("a result message with CR, ESC, C1 and bidi cannot forge the summary line (after a real timeout)", async () => {
    // The script reports a result whose message rewrites the line into a fake success, then hangs.
    const forged = "x\\u001b[2K\\r| ok exit=0 \\u009b31m \\u202egnp.exe \\u2028cordon: sandbox bwrap | ok exit=0";
    const s = script(
      "forge.sh",
      `printf '%s' '{"status":"ok","message":"${forged}"}' >&"$CORDON_RESULT_FD"\nprintf 'own \\033[31mred\\r\\n' >&2\nsleep 30\n`,
    );
    const r = await cli(["run", "--config", config, "--policy", policyFile("forge-wall.json", { resources: { wallMs: 700 } }), s]);
    expect(r.code).toBe(124);
    const lines = cordonLines(r.stderr, "own \x1b[31mred\r\n"); // the script's stderr passes through byte for byte
    expectNoTerminalControls(lines);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("timeout limit=wall");
    expect(lines[0]).toContain("\\x1b[2K\\r| ok exit=0"); // visible, escaped
    expect(lines[0]).toContain("\\u202e");
  });

  test("omitted output-file names are escaped in the `not returned:` notes", async () => {
    const s = script("fifo.sh", "mkfifo \"$(printf 'p\\033[2J\\033]0;pwned\\007\\342\\200\\256x\\r')\"\n");
    const out = join(dir, "fifo-out");
    const r = await cli(["run", "--config", config, "--out", out, "--report", s]);
    expect(r.code).toBe(0);
    const lines = cordonLines(r.stderr);
    expectNoTerminalControls(lines);
    const note = lines.find((l) => l.startsWith("cordon: not returned: "));
    expect(note, r.stderr).toBeDefined();
    expect(note).toContain("p\\x1b[2J\\x1b]0;pwned\\x07\\u202ex\\r");
  });

  test("error messages the CLI prints escape the names they quote", async () => {
    const evil = join(dir, "no\x1b]0;pwned\x07such\r.sh");
    for (const args of [["run", "--config", config, evil], ["run", "--config", join(dir, "cfg\x1b[2J.json"), evil], ["run", `--bogus\x1b[2J`, evil]]) {
      const r = await cli(args);
      expect(r.code).toBe(126);
      expectNoTerminalControls(cordonLines(r.stderr));
      expect(r.stderr).toContain("\\x1b");
    }
  });

  test("--json stays valid JSON with C1 and bidi characters escaped, the values unchanged", async () => {
    const s = script("json-c1.sh", "printf 'a\\302\\233b\\342\\200\\256c\\177'\n");
    const r = await cli(["run", "--config", config, "--json", s]);
    expect(r.code).toBe(0);
    expect(TERMINAL_CONTROLS.test(r.stdout.trimEnd())).toBe(false);
    expect(JSON.parse(r.stdout).stdout).toBe("a\u009bb\u202ec\u007f");
  });

  test("readiness table and verdict escape what a failing sandbox printed", async () => {
    const fakeBin = join(dir, "fake-bin-esc");
    mkdirSync(fakeBin, { mode: 0o711 });
    writeFileSync(
      join(fakeBin, "bwrap"),
      `#!/bin/sh\ncase "$1" in\n  --version) echo "bubblewrap 0.8.0" ;;\n  --help) exec /usr/bin/bwrap --help ;;\n  *) printf 'bwrap: \\033]0;pwned\\007 broken \\033[2J\\r' >&2; exit 1 ;;\nesac\n`,
      { mode: 0o755 },
    );
    const r = await cli(["readiness", "--config", config], { env: { PATH: `${fakeBin}:${process.env.PATH ?? "/usr/bin:/bin"}` } });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("broken");
    expectNoTerminalControls(r.stdout.split("\n"));
    expect(r.stdout).toContain("\\x1b]0;pwned\\x07 broken");
  });
});

describe("readiness takes only the options that apply to it", () => {
  test("--policy is honoured: an allowlist bwrap cannot enforce is NOT ready (exit 1), like run refuses it", async () => {
    const allow = policyFile("readiness-allow.json", { network: { mode: "allowlist", allow: ["192.0.2.10:80"] } });
    const r = await cli(["readiness", "--config", config, "--provider", "bwrap", "--policy", allow]);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stdout).toContain("NOT ready");
    expect(r.stdout).toContain("network.egress");
    const run = await cli(["run", "--config", config, "--provider", "bwrap", "--policy", allow, script("gate.sh", "echo RAN\n")]);
    expect(run.code).toBe(125);
    const json = await cli(["readiness", "--config", config, "--provider", "bwrap", "--policy", allow, "--json"]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ready: false, policyFile: allow });
  });

  test("--policy with a policy bwrap enforces: ready, exit 0", async () => {
    const r = await cli(["readiness", "--config", config, "--policy", policyFile("readiness-ok.json", { resources: { wallMs: 5000 } })]);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toContain("configured provider bwrap: ready");
  });

  test("an invalid --policy is bad input (126)", async () => {
    const r = await cli(["readiness", "--config", config, "--policy", policyFile("readiness-bad.json", { resources: { wallMs: -1 } })]);
    expect(r.code).toBe(126);
    expect(r.stderr).toContain("resources.wallMs");
  });

  test("run-only options are refused with 126, not silently ignored", async () => {
    const cases: [string[], string][] = [
      [["--report"], "--report"],
      [["--verify"], "--verify"],
      [["--runner", "shell"], "--runner"],
      [["--inline"], "--inline"],
      [["--files", dir], "--files"],
      [["--out", dir], "--out"],
    ];
    for (const [extra, name] of cases) {
      const r = await cli(["readiness", "--config", config, ...extra]);
      expect(r.code, `${name}: ${r.stdout}`).toBe(126);
      expect(r.stderr).toContain(`${name} is an option of run, not readiness`);
      expect(r.stdout).toBe("");
    }
  });
});

describe("a refusal says what cannot be enforced, never what a degraded run would do", () => {
  test("fail: the reason names the control and the fix; no 'instead'", async () => {
    const allow = policyFile("refuse-allow.json", { network: { mode: "allowlist", allow: ["192.0.2.10:80"] } });
    const s = script("refuse.sh", "echo RAN\n");
    const r = await cli(["run", "--config", config, "--provider", "bwrap", "--policy", allow, s]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("nothing was run");
    expect(r.stderr).toContain("network.egress: this provider cannot filter egress");
    expect(r.stderr).toContain("fix: use the rootless provider");
    expect(r.stderr).not.toMatch(/instead|ran with/);
    const json = JSON.parse((await cli(["run", "--config", config, "--provider", "bwrap", "--policy", allow, "--json", s])).stdout);
    expect(json.outcome).toBe("refused");
    expect(json.error.reasons.join("\n")).not.toMatch(/instead|ran with/);
    expect(json.error.message).not.toMatch(/instead|ran with/);
  });

  test("degrade: the same control runs downgraded and the report says what it did instead", async () => {
    const allow = policyFile("degrade-allow.json", { onUnavailable: "degrade", network: { mode: "allowlist", allow: ["192.0.2.10:80"] } });
    const r = await cli(["run", "--config", config, "--provider", "bwrap", "--policy", allow, "--json", script("degrade.sh", "echo RAN\n")]);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(json.stdout).toBe("RAN\n");
    expect(json.sandbox.downgrades.join("\n")).toContain("network.egress: this provider cannot filter egress; ran with no network (deny) instead");
  });
});

describe("a resource limit that stops a run has ONE status (123), never the internal-error 70", () => {
  const cases: [string, Record<string, number>, string][] = [
    ["output", { maxOutputBytes: 1000 }, "head -c 100000 /dev/zero\n"],
    ["memory", { memoryBytes: 32 * 1024 * 1024 }, "a=$(head -c 400000000 /dev/zero | tr '\\0' x); echo survived\n"],
    ["cpu", { cpuSeconds: 1, wallMs: 20000 }, "while :; do :; done\n"],
  ];
  for (const [limit, resources, body] of cases) {
    test(`${limit}: exit 123, --json outcome limit`, async () => {
      const policy = policyFile(`limit-${limit}.json`, { resources });
      const s = script(`limit-${limit}.sh`, body);
      const r = await cli(["run", "--config", config, "--policy", policy, s]);
      expect(r.code, r.stderr.slice(-2000)).toBe(123);
      expect(r.stderr).toContain(`limit=${limit}`);
      const json = await cli(["run", "--config", config, "--policy", policy, "--json", s]);
      expect(json.code).toBe(123);
      expect(JSON.parse(json.stdout)).toMatchObject({ outcome: "limit", limitHit: limit });
    });
  }

  test("a script that itself exits 123 exits 1, never cordon's limit status; --json keeps its exit code (exit-nonzero)", async () => {
    const r = await cli(["run", "--config", config, "--json", script("own123.sh", "exit 123\n")]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ outcome: "exit-nonzero", exitCode: 123, limitHit: null });
  });

  test("no run directory is left behind", () => {
    expect(readdirSync(runRoot)).toEqual([]);
  });
});
