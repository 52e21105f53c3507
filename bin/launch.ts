#!/usr/bin/env bun
/**
 * `bun run cordon`: the CLI from its bundle (.cache/cli/cordon.js, scripts/build-cli.ts) when
 * the bundle is current: the same CLI as bin/cordon.ts, faster to start (bench/cli.ts). Never stale:
 * when any input changed since the build (size or mtime), Bun changed, or the checkout moved,
 * the bundle is built again first; if that fails, the CLI runs from its sources (bin/cordon.ts).
 */
import { readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const bundle = join(root, ".cache/cli/cordon.js");

function current(): boolean {
  try {
    const manifest = JSON.parse(readFileSync(join(root, ".cache/cli/manifest.json"), "utf8")) as { bun: string; root: string; inputs: Record<string, [number, number]> };
    if (manifest.bun !== Bun.version || manifest.root !== root) return false;
    for (const [name, [size, mtimeMs]] of Object.entries(manifest.inputs)) {
      const st = statSync(join(root, name), { throwIfNoEntry: false });
      if (!st || st.size !== size || st.mtimeMs !== mtimeMs) return false;
    }
    return true;
  } catch {
    return false;
  }
}

let fresh = current();
if (!fresh) {
  try {
    await (await import("../scripts/build-cli.ts")).buildCli();
    fresh = current();
  } catch {
    fresh = false; // the sources below report what is wrong with them
  }
}
if (fresh) require(bundle); // CommonJS, with its bytecode
else await import("./cordon.ts");
