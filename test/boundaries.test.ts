import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { importCycles, importsOf, ROOT, sourceFiles } from "./support.ts";

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
