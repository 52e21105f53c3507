import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { Cordon, CordonError } from "../src/api/index.ts";
import { decodeExit } from "../src/sandbox/exit.ts";
import { builtinProviders, builtinRunners } from "../plugins/index.ts";
import { importCycles, importsOf, makeCordon, ROOT, sourceFiles } from "./support.ts";


describe("plugin boundaries", () => {
  test("providers and runners reach src/ only through the plugin contract, collectors through the library entry; plugins share only plugins/mechanism", () => {
    const offending: string[] = [];
    for (const file of sourceFiles(["plugins"])) {
      const [, folder] = file.split("/");
      if (!folder || folder.endsWith(".ts")) continue; // plugins/index.ts: the composition of the shipped plugins
      const entry = folder.startsWith("collector-") ? "src/api/index.ts" : "src/api/plugin.ts";
      for (const target of importsOf(file)) {
        const ok = target === entry || target.startsWith(`plugins/${folder}/`) || target.startsWith("plugins/mechanism/");
        if (!ok) offending.push(`${file} imports ${target}`);
      }
    }
    expect(offending).toEqual([]);
  });

  test("src/ never imports a plugin", () => {
    const offending = sourceFiles(["src"]).flatMap((f) => importsOf(f).filter((t) => t.startsWith("plugins/")).map((t) => `${f} imports ${t}`));
    expect(offending).toEqual([]);
  });

  test("no import cycle among the source files", () => {
    const files = sourceFiles();
    expect(files.length).toBeGreaterThan(50); // the graph was really read
    expect(importsOf("src/cordon.ts")).toContain("src/provider.ts"); // type-only imports count too
    expect(importCycles(files)).toEqual([]);
  });

  test("the cycle check finds a cycle when there is one, through a type-only import too", () => {
    const dir = mkdtempSync(join(ROOT, "test", ".cycle-"));
    try {
      writeFileSync(join(dir, "a.ts"), 'import { b } from "./b.ts";\nexport const a = () => b;\n');
      writeFileSync(join(dir, "b.ts"), 'import type { C } from "./c.ts";\nexport const b = 1 as C;\n');
      writeFileSync(join(dir, "c.ts"), 'import { a } from "./a.ts";\nexport type C = ReturnType<typeof a>;\n');
      const files = ["a.ts", "b.ts", "c.ts"].map((f) => relative(ROOT, join(dir, f)));
      expect(importCycles(files)).toEqual([files]);
      writeFileSync(join(dir, "b.ts"), "export const b = 1;\n");
      expect(importCycles(files)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
