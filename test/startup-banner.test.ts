/**
 * The startup banner must say what will really happen to runs under the configured
 * onUnavailable: refused under fail, run with exactly the listed controls missing under
 * degrade, and loudly "no isolation" when the provider isolates nothing.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { builtinProviders, builtinRunners } from "../plugins/index.ts";
import { SandboxUnavailableError, startCordon, type Plugins } from "../src/api/index.ts";
import { caught, freshRunRoot, removeTempDirs, TERMINAL_CONTROLS, tempDir } from "./support.ts";

afterAll(removeTempDirs);

const dir = tempDir("banner", 0o711);
function script(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, body);
  return path;
}
/** Only the providers a test needs: readiness probes every registered one. */
function plugins(...names: string[]): Plugins {
  return { providers: builtinProviders().filter((p) => names.includes(p.name)), runners: builtinRunners() };
}
/** "layer.control" of each "layer.control: reason" line. */
const controlsOf = (downgrades: readonly string[]) => downgrades.map((d) => d.slice(0, d.indexOf(":")));

describe("startCordon's banner states the configured onUnavailable and what it will do", () => {
  test("unsafe + degrade: says runs GO AHEAD with no isolation, lists exactly what the run then reports", async () => {
    const lines: string[] = [];
    const s = await startCordon({ provider: "unsafe", policy: { onUnavailable: "degrade" }, runRoot: freshRunRoot() }, plugins("unsafe"), { log: (l) => lines.push(l) });
    expect(lines).toEqual(s.banner);
    const text = s.banner.join("\n");
    expect(text).not.toContain("will be refused");
    expect(text).not.toContain("nothing runs unsandboxed");
    expect(text).toContain("onUnavailable=degrade");
    expect(text).toMatch(/NO ISOLATION/);
    for (const line of s.banner) expect(TERMINAL_CONTROLS.test(line), line).toBe(false);

    // And it is so: the run goes ahead on the host; every control it reports degraded was named.
    const r = await s.cordon.run({ script: { file: script("ran.sh", "echo RAN\n") }, args: [] });
    expect(r.outcome).toBe("ok");
    expect(r.stdout).toBe("RAN\n");
    expect(r.sandbox!.provider.isolating).toBe(false);
    expect(r.sandbox!.downgrades.length).toBeGreaterThan(0);
    const listed = s.banner.slice(s.banner.findIndex((l) => l.includes("onUnavailable=degrade")) + 1).join("\n");
    for (const control of controlsOf(r.sandbox!.downgrades)) expect(listed, control).toContain(control);
  });

  test("unsafe + fail: says runs are refused, and they are", async () => {
    const s = await startCordon({ provider: "unsafe", runRoot: freshRunRoot() }, plugins("unsafe"), { log: () => {} });
    const text = s.banner.join("\n");
    expect(text).toContain("onUnavailable=fail");
    expect(text).toContain("refused");
    expect(text).not.toContain("GO AHEAD");
    const e = await caught(() => s.cordon.run({ script: { file: script("never.sh", "echo RAN\n") }, args: [] }));
    expect(e).toBeInstanceOf(SandboxUnavailableError);
  });

  test("bwrap + an allowlist under degrade: names network.egress and the deny fallback the run will get", async () => {
    const policy = { onUnavailable: "degrade" as const, network: { mode: "allowlist" as const, allow: ["192.0.2.10:80"] } };
    const s = await startCordon({ provider: "bwrap", policy, runRoot: freshRunRoot() }, plugins("bwrap"), { log: () => {} });
    const text = s.banner.join("\n");
    expect(text).toContain("onUnavailable=degrade");
    expect(text).not.toContain("will be refused");
    expect(text).not.toMatch(/NO ISOLATION/);
    expect(text).toContain("network.egress");
    const r = await s.cordon.run({ script: { file: script("deny.sh", "echo RAN\n") }, args: [] });
    expect(r.outcome).toBe("ok");
    expect(controlsOf(r.sandbox!.downgrades)).toEqual(["network.egress"]);
  });
});
