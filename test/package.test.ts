/**
 * cordon as a package, tried the way an integrator does: a fresh project in a temp dir
 * (outside the checkout) runs `bun add file:<checkout>`, imports each entry by its package
 * name, runs a real sandboxed check under bwrap through the shipped collectors, and
 * type-checks against the entries' types.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freshRunRoot, removeTempDirs, ROOT, tempDir } from "./support.ts";

afterAll(removeTempDirs);

const TSC = join(ROOT, "node_modules/.bin/tsc");

/** What the consumer's program reports: where each entry resolved, and one real sandboxed check. */
const CONSUMER = `
import { Cordon, PolicySchema, cordonClient } from "cordon";
import { builtinProviders, builtinRunners, shellCollector, scriptCollectors, sandboxHealthCollector } from "cordon/plugins";
import { composeSpec, SANDBOX_LAYOUT } from "cordon/plugin";

const cordon = new Cordon({ provider: "bwrap", runRoot: process.argv[2] }, { providers: builtinProviders(), runners: builtinRunners() });
const config = shellCollector.config.parse({ version: 2, data: { script: 'cordon-result ok "uid $(id -u)" n=7' } });
const { result } = await shellCollector.execute({ config, client: cordonClient(cordon), pluginId: "cordon" });
// cordon/checkstack's types need @checkstack/backend-api (a checkstack backend has it): loaded, not type-checked, here.
const checkstack = await import(["cordon", "checkstack"].join("/"));
console.log(JSON.stringify({
  resolved: ["cordon", "cordon/plugins", "cordon/plugin", "cordon/checkstack", "cordon/schema/policy.schema.json"].map((s) => import.meta.resolve(s)),
  names: [typeof Cordon, typeof PolicySchema, typeof composeSpec, typeof SANDBOX_LAYOUT, Object.keys(scriptCollectors).join(","), typeof sandboxHealthCollector, typeof checkstack.checkstackCollectors],
  result,
}));
`;

/**
 * The compiler options `bun init` writes (Bun 1.4.5): what a Bun project has. cordon ships its
 * TypeScript sources, which the consumer's compiler reads under these options.
 */
const TSCONFIG = {
  compilerOptions: {
    lib: ["ESNext"],
    target: "ESNext",
    module: "Preserve",
    moduleDetection: "force",
    jsx: "react-jsx",
    allowJs: true,
    moduleResolution: "bundler",
    allowImportingTsExtensions: true,
    verbatimModuleSyntax: true,
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    noFallthroughCasesInSwitch: true,
    noUncheckedIndexedAccess: true,
    noImplicitOverride: true,
    // The consumer has no @types/bun of its own here (nothing is fetched in a test): the checkout's.
    typeRoots: [join(ROOT, "node_modules/@types")],
    types: ["bun"],
  },
  include: ["check.ts", "bad.ts"],
};

function run(argv: string[], cwd: string) {
  const p = Bun.spawnSync(argv, { cwd, stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

describe("the installed package", () => {
  // World-searchable: the consumer's copy of cordon holds the runners' helpers the sandbox uid reads.
  const project = tempDir("consumer", 0o755);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  writeFileSync(join(project, "check.ts"), CONSUMER);
  writeFileSync(join(project, "tsconfig.json"), JSON.stringify(TSCONFIG));

  test("bun add file:<checkout> installs it (private does not stop a file: install)", () => {
    const add = run([process.execPath, "add", `file:${ROOT}`], project);
    expect(add.code, add.err).toBe(0);
    const manifest = JSON.parse(readFileSync(join(project, "package.json"), "utf8"));
    expect(manifest.dependencies.cordon).toStartWith("file:");
    expect(JSON.parse(readFileSync(join(project, "node_modules/cordon/package.json"), "utf8")).name).toBe("cordon");
  });

  test("each entry imports by its package name, from the consumer's node_modules, and a check runs sandboxed", () => {
    const out = run([process.execPath, "check.ts", freshRunRoot("package")], project);
    expect(out.code, out.err).toBe(0);
    const report = JSON.parse(out.out.trim().split("\n").at(-1)!);
    for (const url of report.resolved) expect(url).toStartWith(`file://${project}/node_modules/cordon/`);
    expect(report.names).toEqual(["function", "object", "function", "object", "shell,python,esm", "function", "function"]);
    expect(report.result.status).toBe("ok");
    expect(report.result.message).toBe("uid 65534");
    expect(report.result.metrics).toEqual({ n: 7 });
    expect(report.result.sandbox.provider).toBe("bwrap");
    expect(report.result.sandbox.downgrades).toEqual([]);
  });

  test("the entries' types come with it: the consumer type-checks, and a wrong use fails", () => {
    // One compiler run over both files: check.ts must be clean, bad.ts must fail (so the check is real).
    writeFileSync(join(project, "bad.ts"), 'import { parsePolicy } from "cordon";\nconst n: number = parsePolicy({});\nvoid n;\n');
    const tsc = run([TSC, "-p", project], project);
    const errors = tsc.out.split("\n").filter((l) => /error TS\d+/.test(l));
    expect(errors.length, tsc.out + tsc.err).toBeGreaterThan(0);
    expect(errors.filter((l) => !l.startsWith("bad.ts(")), tsc.out).toEqual([]);
  });
});
