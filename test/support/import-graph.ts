/**
 * The project's import graph, read with Bun's own parser (type-only imports included:
 * a cycle through types is still a cycle a reader has to hold in their head).
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "../..");
/** The source trees whose files import each other (tests and fixtures are not part of the house). */
export const SOURCE_DIRS = ["src", "plugins", "bin", "bench", "examples"];

const transpiler = new Bun.Transpiler({ loader: "ts" });

/** Every .ts source file, as a path relative to the project root. */
export function sourceFiles(dirs: readonly string[] = SOURCE_DIRS): string[] {
  return dirs.flatMap((d) =>
    readdirSync(join(ROOT, d), { recursive: true })
      .map(String)
      .filter((f) => f.endsWith(".ts"))
      .map((f) => join(d, f)),
  );
}

/** The project files one file imports (relative specifiers only; packages and builtins are left out). */
export function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8").replace(/^#!.*/, "");
  // scanImports drops imports that bring in types only: read those from the text, the rest from the parser.
  const typeOnly = [...text.matchAll(/^\s*(?:import|export)\s+(?:type\s[^;]*?|\{[^}]*\}\s*)from\s+"([^"]+)"/gm)].map((m) => m[1]!);
  const specs = [...transpiler.scanImports(text).map((i) => i.path), ...typeOnly];
  return [...new Set(specs.filter((s) => s.startsWith(".")).map((s) => relative(ROOT, resolve(ROOT, dirname(file), s))))];
}

/** Every cycle of the graph, each as the files in it (Tarjan's strongly connected components, size > 1 or a self-import). */
export function importCycles(files: readonly string[] = sourceFiles()): string[][] {
  const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => files.includes(t))]));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v)!.includes(v)) cycles.push(component.sort());
    }
  };
  for (const f of files) if (!index.has(f)) visit(f);
  return cycles;
}
