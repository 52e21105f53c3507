/**
 * Bundles the CLI (bin/cordon.ts, every module it imports, its dependencies) into one file,
 * .cache/cli/cordon.js, for `bun run cordon` (bin/launch.ts): one file to read instead of ~180
 * to resolve and transpile. Run by scripts/setup; bin/launch.ts runs it again whenever the
 * bundle is missing or older than any of its inputs.
 *
 * Files the sources read next to themselves (`new URL("./x", import.meta.url)`: runner helpers,
 * ruleset templates, probe scripts) are read from the source tree as before: each module's
 * import.meta.url is pinned to its source file. manifest.json records every input's size and
 * mtime, Bun's version and the checkout's path; the launcher uses the bundle only when all match.
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";

export const ROOT = resolve(import.meta.dir, "..");
export const BUNDLE_DIR = join(ROOT, ".cache", "cli");
export const BUNDLE_FILE = join(BUNDLE_DIR, "cordon.js");
export const BYTECODE_FILE = `${BUNDLE_FILE}.jsc`;
export const MANIFEST_FILE = join(BUNDLE_DIR, "manifest.json");

export interface BundleManifest {
  bun: string;
  root: string;
  /** Every input, relative to root: [size, mtimeMs]. */
  inputs: Record<string, [number, number]>;
}

/** Inputs the bundler does not list but that decide what it produces. */
const EXTRA_INPUTS = ["package.json", "bun.lock", "scripts/build-cli.ts"];

/** Build the bundle, its bytecode and its manifest (each written whole, then renamed into place). Throws when the build fails. */
export async function buildCli(): Promise<void> {
  const started = Date.now();
  // Bun.build writes into outdir itself: a private directory, moved into place file by file below.
  mkdirSync(BUNDLE_DIR, { recursive: true });
  const outdir = mkdtempSync(join(BUNDLE_DIR, ".build-"));
  try {
    await buildInto(outdir, started);
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

async function buildInto(outdir: string, started: number): Promise<void> {
  const ownFiles = new RegExp(`^${ROOT.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/(?:src|plugins|bin)/.*\\.ts$`);
  const result = await Bun.build({
    entrypoints: [join(ROOT, "bin/cordon.ts")],
    target: "bun",
    // CommonJS, for Bun's bytecode cache (cordon.js.jsc: no parse or compile at start). What a
    // command loads on first use (readiness probes, the schema generator, handlebars) is
    // initialised on first use, node builtins included.
    format: "cjs",
    bytecode: true,
    outdir,
    naming: "[name].[ext]",
    minify: { whitespace: true, syntax: true },
    // Loaded from node_modules on first render (the nft templates): most of the bundle's
    // size otherwise, and no command but a filtered-egress run uses it.
    external: ["handlebars"],
    metafile: true,
    plugins: [
      {
        name: "source-relative-import-meta-url",
        setup(build) {
          build.onLoad({ filter: ownFiles }, ({ path }) => ({
            contents: readFileSync(path, "utf8").replaceAll("import.meta.url", JSON.stringify(pathToFileURL(path).href)),
            loader: "ts",
          }));
        },
      },
    ],
  });
  if (!result.success) throw new AggregateError(result.logs, "the CLI bundle did not build");
  const output = result.outputs.find((o) => o.kind === "entry-point");
  const bytecode = result.outputs.find((o) => o.kind === "bytecode");
  if (!output || !bytecode || !result.metafile) throw new Error("the CLI bundle did not build: no entry point or metafile");
  const inputs: BundleManifest["inputs"] = {};
  for (const name of [...Object.keys(result.metafile.inputs).map((p) => relative(ROOT, resolve(process.cwd(), p))), ...EXTRA_INPUTS]) {
    const st = statSync(join(ROOT, name));
    // An input edited while the build ran may or may not be in it: write no manifest, so the next launch builds again.
    if (st.mtimeMs >= started - 1000) return;
    inputs[name] = [st.size, st.mtimeMs];
  }
  const manifest: BundleManifest = { bun: Bun.version, root: ROOT, inputs };
  writeFileSync(join(outdir, "manifest.json"), JSON.stringify(manifest));
  // Bytecode and bundle first, the manifest last: a launcher that reads the old manifest
  // with the new bundle finds it stale and builds again.
  renameSync(bytecode.path, BYTECODE_FILE);
  renameSync(output.path, BUNDLE_FILE);
  renameSync(join(outdir, "manifest.json"), MANIFEST_FILE);
}

if (import.meta.main) await buildCli();
