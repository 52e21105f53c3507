/**
 * What the CLI loads: a command imports what it uses, nothing more (the CLI's start-up is most
 * of a short run's wall time; bench/cli.ts measures it). Not timed: these read the import graph
 * and the modules a real process loaded.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { dirname, join, relative, resolve } from "node:path";
import { isIPv4, isIPv6 } from "../src/network/ip-syntax.ts";
import { CORDON_CLI, removeTempDirs, ROOT, tempDir } from "./support.ts";

afterAll(removeTempDirs);

const transpiler = new Bun.Transpiler({ loader: "ts" });

/** Every module bin/cordon.ts loads before it runs a line: static imports only (a require() or an import() in a function loads on first use). */
function eagerGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const stack = [entry];
  while (stack.length) {
    const file = stack.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const text = readFileSync(join(ROOT, file), "utf8").replace(/^#!.*/, "");
    for (const i of transpiler.scanImports(text)) {
      if (i.kind !== "import-statement") continue;
      if (i.path.startsWith(".")) stack.push(relative(ROOT, resolve(ROOT, dirname(file), i.path)));
      else packages.add(i.path);
    }
  }
  return { files, packages };
}

/** Loaded by a command only when it needs them: never by `run` on the default provider. */
const LAZY_FILES = [
  "plugins/provider-nsjail/render.ts", // nsjail's config renderer
  "src/readiness/prove.ts", // readiness probes and trial plans
  "src/readiness/probes.ts",
  "src/readiness/table.ts",
  "src/cli/readiness-text.ts",
  "src/schema/json-schema.ts", // the schema generator
  "plugins/collector-script/index.ts", // collectors and their glue
  "plugins/collector-sandbox-health/index.ts",
  "src/collector/index.ts",
];
/** Packages and builtins the CLI's start would pay for and a default run never uses. */
const LAZY_PACKAGES = ["handlebars", "shell-quote", "ipaddr.js", "node:net", "node:crypto", "node:dns/promises", "node:dns", "crypto", "net"];

/** The project files and packages a real CLI process had loaded when it exited. */
async function loadedBy(args: string[]): Promise<{ files: string[]; code: number }> {
  const dir = tempDir("cli-startup");
  const trace = join(dir, "loaded.txt");
  const preload = join(dir, "trace.ts");
  await Bun.write(preload, `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(trace)}, Object.keys(require.cache).join("\\n")));\n`);
  const p = Bun.spawn([process.execPath, "--preload", preload, CORDON_CLI, ...args], { cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [, , code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const files = readFileSync(trace, "utf8").split("\n").filter((f) => f.startsWith(`${ROOT}/`)).map((f) => relative(ROOT, f));
  return { files, code };
}

describe("the CLI loads what a command uses", () => {
  test("bin/cordon.ts's eager import graph holds no renderer, probe, generator, collector, handlebars, ipaddr.js, node:net or node:crypto", () => {
    const { files, packages } = eagerGraph("bin/cordon.ts");
    expect(files.size).toBeGreaterThan(50); // the graph was really read
    expect(files.has("src/cordon.ts")).toBe(true);
    expect(packages.has("zod")).toBe(true);
    expect(LAZY_FILES.filter((f) => files.has(f))).toEqual([]);
    expect([...files].filter((f) => f.startsWith("plugins/collector-") || f.startsWith("src/collector/"))).toEqual([]);
    expect(LAZY_PACKAGES.filter((p) => packages.has(p))).toEqual([]);
  });

  test("a real `run` loads none of them; `schema` loads the generator it needs (the trace sees lazy loads)", async () => {
    const run = await loadedBy(["run", "examples/hello.sh"]);
    expect(run.code).toBe(0);
    expect(run.files).toContain("src/cordon.ts");
    expect(run.files).toContain("plugins/provider-bwrap/index.ts");
    expect(LAZY_FILES.filter((f) => run.files.includes(f))).toEqual([]);
    expect(run.files.filter((f) => /node_modules\/(handlebars|shell-quote|ipaddr\.js)\//.test(f))).toEqual([]);

    const schema = await loadedBy(["schema"]);
    expect(schema.code).toBe(0);
    expect(schema.files).toContain("src/schema/json-schema.ts");
  });

  test("isIPv4/isIPv6 (kept off node:net) answer exactly as node:net does", () => {
    const seg = ["0", "1", "9", "10", "99", "100", "199", "249", "255", "256", "01", "001", "300", "-1", ""];
    const hex = ["", "0", "1", "a", "F", "ff", "fff", "ffff", "fffff", "g", "0000", "00000"];
    const corpus = new Set<string>(["::", "::1", "1::", ":::", "1:::2", "::ffff:1.2.3.4", "::ffff:1.2.3", "fe80::1%eth0", "fe80::1%", "fe80::1%a.b:c-d", "1.2.3.4%eth0", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n", "１.2.3.4"]);
    for (const a of seg) for (const b of seg) corpus.add(`${a}.${b}.${b}.${a}`).add(`${a}.${b}.${a}`).add(`::${a}.${b}.${b}.${a}`);
    for (let groups = 1; groups <= 9; groups++)
      for (const h of hex) {
        const full = Array(groups).fill(h || "0").join(":");
        corpus.add(full).add(`${full}::`).add(`::${full}`).add(`${full}::${h}`).add(`${full}:1.2.3.4`).add(`${full}::1.2.3.4`);
      }
    let random = 0x2545f491;
    const alphabet = "0123456789abcdefABCDEF:.%-g ";
    for (let n = 0; n < 20000; n++) {
      let s = "";
      for (let len = (n % 30) + 1; len > 0; len--) s += alphabet[(random = (random * 1103515245 + 12345) >>> 0) % alphabet.length];
      corpus.add(s);
    }
    const differs = [...corpus].filter((s) => isIPv4(s) !== net.isIPv4(s) || isIPv6(s) !== net.isIPv6(s));
    expect(differs).toEqual([]);
    expect([...corpus].filter((s) => net.isIPv6(s)).length).toBeGreaterThan(100); // the corpus reaches the valid side
  });
});

describe("bun run cordon's bundle is never used stale", () => {
  test("an input that changed since the build (here: its recorded size) makes the launcher build again; the output is the sources'", async () => {
    const cli = async (entry: string) => {
      const p = Bun.spawn([process.execPath, entry, "help"], { cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const [out, , code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      return { out, code };
    };
    const manifestFile = join(ROOT, ".cache/cli/manifest.json");
    await cli("bin/launch.ts"); // built if missing or stale
    const manifest = JSON.parse(readFileSync(manifestFile, "utf8")) as { inputs: Record<string, [number, number]> };
    const real = manifest.inputs["src/cli/args.ts"]!;
    expect(real[0]).toBeGreaterThan(0);
    manifest.inputs["src/cli/args.ts"] = [real[0] + 1, real[1]];
    await Bun.write(manifestFile, JSON.stringify(manifest));

    const [launched, sources] = [await cli("bin/launch.ts"), await cli("bin/cordon.ts")];
    expect(launched).toEqual(sources);
    expect(launched.out).toContain("cordon run");
    const rebuilt = JSON.parse(readFileSync(manifestFile, "utf8")) as { inputs: Record<string, [number, number]> };
    expect(rebuilt.inputs["src/cli/args.ts"]).toEqual(real);
  });
});
