/**
 * What the CLI prints for people reads in 100 columns: the readiness table (real providers on
 * this host, and a synthetic report with many cells and long details), the one-line run
 * summary (short even when much is degraded), `--report` (every control name aligned) and a
 * refusal (a reason per line). Wrapped, never cut: every detail is still there, whole.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { escapeControls } from "../src/escape.ts";
import { readinessTable } from "../src/readiness/table.ts";
import { READINESS_CELLS, type ReadinessReport, type ReadinessVerdict } from "../src/readiness/types.ts";
import { LAYER_NAMES } from "../src/sandbox/report.ts";
import { CLI_WIDTH, cliWorkspace, cordonLines, removeTempDirs, runCli, TERMINAL_CONTROLS, widestLine } from "./support.ts";

const ws = cliWorkspace("cli-layout");
afterAll(removeTempDirs);

/** Text with every run of whitespace removed: what is left of a detail however it was wrapped. */
const squeezed = (text: string) => text.replace(/\s+/g, "");

describe("cordon readiness fits in 100 columns", () => {
  test("on this host, configured for unsafe: the table, every detail and every refusal reason fit, wrapped", async () => {
    const r = await runCli(["readiness", "--config", ws.config, "--provider", "unsafe"]);
    expect(r.code, r.stderr).toBe(1);
    expect(widestLine(r.stdout), r.stdout).toBeLessThanOrEqual(CLI_WIDTH);
    expect(r.stdout).toMatch(/^unsafe \(NO ISOLATION\)\s+-\s+[✓✗?]/m);
    expect(r.stdout).toContain("configured provider unsafe: NOT ready");
    expect(r.stdout).toMatch(/^ {2}- unsafe: /m); // each reason a line of its own
    expect(r.stdout).toMatch(/^ {2}✗ unsafe\.network: /m);
  });

  const LONG_CELLS = [...new Set([...READINESS_CELLS, "seccomp", "identity", "keyring", "vsock", "inotify-instances"])];
  const PATH_WORD = `/var/lib/${"deeply/nested/".repeat(12)}canary`; // one word wider than a line
  const verdict = (i: number, provider: string): ReadinessVerdict =>
    i % 3 === 0
      ? { status: "proven", detail: "the attack failed" }
      : {
          status: i % 3 === 1 ? "not-enforced" : "unknown",
          detail: `${provider} cell ${i}: the probe read ${PATH_WORD} and then said \x1b[2J漢字 ${"a sentence that goes on and on ".repeat(6)}end ${i}`,
        };
  const report = (provider: string, isolating: boolean, version: string | null): ReadinessReport =>
    ({
      provider,
      isolating,
      available: version !== null,
      binary: version === null ? null : `/usr/bin/${provider}`,
      version,
      reason: version === null ? `${provider} not found on PATH` : null,
      cells: Object.fromEntries(LONG_CELLS.map((c, i) => [c, verdict(i, provider)])),
      layers: Object.fromEntries(LAYER_NAMES.map((l) => [l, { status: "unknown", detail: "-" }])),
      runsDefaultPolicy: false,
      policies: [
        { name: "default (network deny)", runsUnderFail: isolating, reasons: [] },
        { name: "unrestricted egress, metadata blocked, and a name long enough to need wrapping", runsUnderFail: false, reasons: ["x"] },
      ],
      durationMs: 1,
    }) as unknown as ReadinessReport;
  const reports = [
    report("bwrap", true, "0.8.0"),
    report("a-provider-plugin-with-a-very-long-name", true, "1.2.3-with-a-build-suffix-nobody-needs"),
    report("nsjail", true, null),
    report("unsafe", false, null),
  ];

  for (const width of [CLI_WIDTH, 72]) {
    test(`${LONG_CELLS.length} cells with long details, at width ${width}: every line fits, every cell has a mark, nothing is cut`, () => {
      const text = readinessTable(reports, { width });
      expect(widestLine(text), text).toBeLessThanOrEqual(width);
      for (const line of text.split("\n")) expect(TERMINAL_CONTROLS.test(line), line).toBe(false);
      // Each provider has one mark per cell, over however many tables the cells took.
      for (const label of ["bwrap", "a-provider-plugin-with-", "nsjail", "unsafe (NO ISOLATION)"]) {
        const marks = text
          .split("\n")
          .filter((l) => l.startsWith(label))
          .flatMap((l) => l.slice(label.length).trim().split(/\s+/).slice(1))
          .filter((t) => /^[✓✗?]$/.test(t));
        expect(marks.length, `${label}:\n${text}`).toBe(LONG_CELLS.length);
      }
      // A short column head is spelled out in the legend.
      const heads = text.split("\n").filter((l) => l.startsWith("provider "));
      for (const cell of LONG_CELLS) {
        const shownWhole = heads.some((h) => h.split(/\s+/).includes(cell));
        if (!shownWhole) expect(text, cell).toMatch(new RegExp(`(^|· )\\S+ ${cell}( ·|$)`, "m"));
      }
      // Every detail that is not proven is there whole (escaped), however it was wrapped.
      for (const r of reports)
        for (const [cell, v] of Object.entries(r.cells)) if (v.status !== "proven") expect(squeezed(text), `${r.provider}.${cell}`).toContain(squeezed(escapeControls(v.detail)));
      expect(text).toContain("\\x1b[2J漢字");
    });
  }
});

describe("cordon run's summary is one short line; --report and refusals are wrapped and aligned", () => {
  const s = ws.file("ok.sh", "echo ran\n");
  const degradeUnsafe = ws.json("degrade.json", { onUnavailable: "degrade" });
  const degradeAllow = ws.json("degrade-allow.json", { onUnavailable: "degrade", network: { mode: "allowlist", allow: ["192.0.2.10:80"] } });

  test("unsafe under degrade: one line, within 100 columns, counting what degraded instead of listing why", async () => {
    const r = await runCli(["run", "--config", ws.config, "--provider", "unsafe", "--policy", degradeUnsafe, s]);
    expect(r.code, r.stderr).toBe(0);
    const lines = cordonLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(widestLine(lines[0]!)).toBeLessThanOrEqual(CLI_WIDTH);
    expect(lines[0]).toMatch(/^cordon: sandbox unsafe \(NO ISOLATION\) \| \d+ controls degraded \(why: --report\) \| ok exit=0 \d+ms$/);
  });

  test("bwrap with an allowlist under degrade: the degraded control is named", async () => {
    const r = await runCli(["run", "--config", ws.config, "--provider", "bwrap", "--policy", degradeAllow, s]);
    expect(r.code, r.stderr).toBe(0);
    expect(cordonLines(r.stderr)).toEqual([expect.stringMatching(/^cordon: sandbox bwrap \S+ \| degraded: network\.egress(, [\w.]+)* \(why: --report\) \| ok exit=0 \d+ms$/)]);
  });

  test("a long result message is cut to what is left of 100 columns (at least 40), whole in --json", async () => {
    const message = `checked ${"many things ".repeat(40)}and all is fine`;
    const rs = ws.file("long-result.sh", `cordon-result ok '${message}'\n`);
    const r = await runCli(["run", "--config", ws.config, rs]);
    expect(r.code, r.stderr).toBe(0);
    const [line, ...rest] = cordonLines(r.stderr);
    expect(rest).toEqual([]);
    const [head, shown] = line!.split(/(?<= \| result=ok: )/);
    expect(shown, line).toMatch(/^checked many things .*…$/);
    expect(widestLine(shown!)).toBe(Math.max(40, CLI_WIDTH - widestLine(head!)));
    const json = await runCli(["run", "--config", ws.config, "--json", rs]);
    expect(JSON.parse(json.stdout).result.message).toBe(message);
  });

  test("--report: every control name aligned (hostProcesses too), every reason whole, within 100 columns", async () => {
    const r = await runCli(["run", "--config", ws.config, "--provider", "unsafe", "--policy", degradeUnsafe, "--report", s]);
    expect(r.code, r.stderr).toBe(0);
    const report = cordonLines(r.stderr).slice(0, -1).join("\n");
    expect(widestLine(report), report).toBeLessThanOrEqual(CLI_WIDTH);
    const controls = [...report.matchAll(/^ {4}(\S+)( +)(enforced|degraded|off) /gm)];
    expect(controls.map((m) => m[1])).toContain("hostProcesses");
    const statusColumns = new Set(controls.map((m) => 4 + m[1]!.length + m[2]!.length));
    expect([...statusColumns], report).toHaveLength(1);
    const json = JSON.parse((await runCli(["run", "--config", ws.config, "--provider", "unsafe", "--policy", degradeUnsafe, "--json", s])).stdout);
    for (const layer of LAYER_NAMES)
      for (const [name, c] of Object.entries(json.sandbox.layers[layer].controls as Record<string, { reason?: string; mechanism?: string }>))
        expect(squeezed(report), `${layer}.${name}`).toContain(squeezed(c.reason ?? c.mechanism ?? ""));
  });

  test("a refusal: every reason on a line of its own, within 100 columns", async () => {
    const r = await runCli(["run", "--config", ws.config, "--provider", "unsafe", s]);
    expect(r.code).toBe(125);
    const lines = cordonLines(r.stderr);
    expect(widestLine(r.stderr), r.stderr).toBeLessThanOrEqual(CLI_WIDTH);
    expect(lines[0]).toStartWith('cordon: refused: provider "unsafe" cannot enforce the policy');
    const json = JSON.parse((await runCli(["run", "--config", ws.config, "--provider", "unsafe", "--json", s])).stdout);
    const reasons: string[] = json.error.reasons;
    expect(reasons.length).toBeGreaterThan(3);
    expect(lines.filter((l) => l.startsWith("  - "))).toHaveLength(reasons.length);
    for (const reason of reasons) expect(squeezed(r.stderr)).toContain(squeezed(reason));
  });
});
