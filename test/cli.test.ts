import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

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

async function cli(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}) {
  const p = Bun.spawn([process.execPath, CLI, ...args], {
    stdin: opts.stdin !== undefined ? new TextEncoder().encode(opts.stdin) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

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
      [["run", "--config", config, join(dir, "noext")], "unknown runner"],
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

  test("the table has providers as rows and layers as columns", async () => {
    const r = await cli(["readiness", "--config", config]);
    const [header] = r.stdout.split("\n");
    expect(header).toMatch(/provider\s+\|\s+version\s+\|\s+filesystem\s+\|\s+network\s+\|\s+resources\s+\|\s+privilege\s+\|\s+env/);
    expect(r.stdout).toMatch(/^bwrap\s+\|\s+0\.\d+\.\d+\s+\|\s+✓/m);
    expect(r.stdout).toContain("unsafe (NO ISOLATION)");
  });

  test("bwrap missing from PATH: not enforced with the reason, exit non-zero", async () => {
    const r = await cli(["readiness", "--config", config, "--json"], { env: { PATH: join(dir, "empty-path") } });
    expect(r.code).toBe(1);
    const bwrap = JSON.parse(r.stdout).providers.find((p: { provider: string }) => p.provider === "bwrap");
    expect(bwrap.available).toBe(false);
    expect(bwrap.layers.filesystem).toEqual({ status: "not-enforced", detail: expect.stringContaining("bwrap not found") });
  });
});
