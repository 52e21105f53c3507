import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Cordon, CordonError, decodeExit } from "../src/index.ts";
import { builtinProviders, builtinRunners } from "../plugins/index.ts";
import { makeCordon } from "./support.ts";

const ROOT = resolve(import.meta.dir, "..");

describe("plugin boundaries", () => {
  test("each plugin imports only src/index.ts from the core (plus its own folder and packages)", () => {
    const pluginsDir = join(ROOT, "plugins");
    const offending: string[] = [];
    for (const plugin of readdirSync(pluginsDir, { withFileTypes: true }).filter((d) => d.isDirectory())) {
      for (const file of readdirSync(join(pluginsDir, plugin.name), { recursive: true }).map(String).filter((f) => f.endsWith(".ts"))) {
        const text = readFileSync(join(pluginsDir, plugin.name, file), "utf8");
        for (const [, spec] of text.matchAll(/from\s+"([^"]+)"/g)) {
          if (!spec!.startsWith(".")) continue; // packages and node: builtins
          const target = resolve(pluginsDir, plugin.name, file, "..", spec!);
          const ok = target === join(ROOT, "src/index.ts") || target.startsWith(join(pluginsDir, plugin.name));
          if (!ok) offending.push(`${plugin.name}/${file} imports ${spec}`);
        }
      }
    }
    expect(offending).toEqual([]);
  });

  test("src/ never imports a plugin", () => {
    const files = readdirSync(join(ROOT, "src"), { recursive: true }).map(String).filter((f) => f.endsWith(".ts"));
    const offending = files.filter((f) => /from\s+"[^"]*plugins\//.test(readFileSync(join(ROOT, "src", f), "utf8")));
    expect(offending).toEqual([]);
  });
});

describe("exit decoding", () => {
  test("bwrap's 128+N is read as signal N, marked as read from the exit status; ordinary codes stay codes", () => {
    expect(decodeExit(137, null, "shell-128")).toEqual({ exitCode: 137, signal: "SIGKILL", signalSource: "exit-status" });
    expect(decodeExit(153, null, "shell-128")).toEqual({ exitCode: 153, signal: "SIGXFSZ", signalSource: "exit-status" });
    expect(decodeExit(3, null, "shell-128")).toEqual({ exitCode: 3, signal: null, signalSource: null });
    expect(decodeExit(128, null, "shell-128")).toEqual({ exitCode: 128, signal: null, signalSource: null });
    expect(decodeExit(137, null, "native")).toEqual({ exitCode: 137, signal: null, signalSource: null });
    expect(decodeExit(null, "SIGTERM", "native")).toEqual({ exitCode: null, signal: "SIGTERM", signalSource: "wait-status" });
  });
});

describe("setup failures are errors, not script failures", () => {
  const dir = mkdtempSync(join(tmpdir(), "cordon-errors-"));
  const cordon = (runRoot: string) => makeCordon(runRoot);

  test("a bind whose source does not exist: outcome error (sandbox-failed) with bwrap's message, nothing left", async () => {
    chmodSync(dir, 0o711);
    const runRoot = join(dir, "runs-a");
    const r = await cordon(runRoot).run({ runner: "shell", script: { source: "echo RAN" }, args: [], policy: { filesystem: { readOnlyBinds: ["/nonexistent/cordon-bogus"] } } });
    expect(r.outcome).toBe("error");
    expect(r.error?.code).toBe("sandbox-failed");
    expect(r.error?.message).toContain("/nonexistent/cordon-bogus");
    expect(r.stdout).toBe("");
    expect(readdirSync(runRoot)).toEqual([]);
  });

  test("a run root the sandbox uid cannot reach: a clear typed error before anything is spawned", async () => {
    const hidden = mkdtempSync(join(tmpdir(), "cordon-hidden-")); // 0700
    try {
      let err: unknown;
      try {
        await cordon(join(hidden, "runs")).run({ runner: "shell", script: { source: "echo RAN" }, args: [] });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CordonError);
      expect((err as CordonError).message).toContain(`${hidden} lacks search (x) permission`);
      expect(readdirSync(join(hidden, "runs"))).toEqual([]);
    } finally {
      rmSync(hidden, { recursive: true, force: true });
    }
  });

  test("a script over the size cap is refused before anything is spawned", async () => {
    const runRoot = join(dir, "runs-b");
    const c = makeCordon(runRoot, { maxScriptBytes: 16 });
    await expect(c.run({ runner: "shell", script: { source: "echo this script is longer than sixteen bytes" }, args: [] })).rejects.toThrow("too large");
    expect(() => readdirSync(runRoot)).toThrow(); // never even created
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("runner input", () => {
  test("a missing interpreter is a typed error and nothing runs", async () => {
    const { ShellRunner, BwrapProvider } = await import("../plugins/index.ts");
    const c = new Cordon({}, { providers: [new BwrapProvider()], runners: [new ShellRunner("/nonexistent/sh")] });
    await expect(c.run({ runner: "shell", script: { source: "true" }, args: [] })).rejects.toThrow("shell interpreter /nonexistent/sh not found");
  });

  test("an unknown provider in the config is refused at construction", () => {
    expect(() => new Cordon({ provider: "firejail" }, { providers: builtinProviders(), runners: builtinRunners() })).toThrow('unknown provider "firejail"');
  });

  test("auto picks the first provider in the order that can run the policy, never unsafe under fail", async () => {
    const runRoot = mkdtempSync(join(tmpdir(), "cordon-auto-"));
    chmodSync(runRoot, 0o711);
    try {
      const c = makeCordon(runRoot, { provider: "auto", providerOrder: ["unsafe", "bwrap"] });
      const r = await c.run({ runner: "shell", script: { source: "echo picked" }, args: [] });
      expect(r.sandbox?.provider.name).toBe("bwrap");
      expect(r.stdout).toBe("picked\n");
      expect(readdirSync(runRoot)).toEqual([]);
    } finally {
      rmSync(runRoot, { recursive: true, force: true });
    }
  });
});
