/**
 * What `cordon run` refuses before anything is planned, for what only the command line
 * gets wrong: a FILE that is not there, `--inline` for a runner that has no such form, an
 * `--out` that is not a directory.
 */
import { statSync } from "node:fs";
import type { Cordon } from "../cordon.ts";
import { JobInputError } from "../errors.ts";
import type { RunCommand } from "./args.ts";

/**
 * `--inline` is the esm runner's `form: "inline"` option. The other runners take no
 * options: they would run the file as it is and the flag would have done nothing.
 */
const INLINE_RUNNER = "esm";

export function checkRunCommand(cmd: RunCommand, cordon: Cordon): void {
  checkScriptExists(cmd.file);
  if (cmd.inline) {
    const runner = cordon.runnerFor({ ...(cmd.runner ? { runner: cmd.runner } : {}), script: { file: cmd.file } });
    if (runner.name !== INLINE_RUNNER) throw new JobInputError(`--inline applies to the ${INLINE_RUNNER} runner (FILE is a function body); ${cmd.file} runs with the ${runner.name} runner`);
  }
  if (cmd.outDir) checkOutDir(cmd.outDir);
}

/**
 * A missing FILE is said to be missing, whatever its name: without this, one without an
 * extension was reported as an unknown runner (the runner is picked by extension first).
 * Other failures (permissions, size, kind) are the script reader's to report.
 */
function checkScriptExists(file: string): void {
  try {
    statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new JobInputError(`cannot read script ${file}: no such file`);
  }
}

/** --out must be a directory or not exist yet (it is created after the run). */
function checkOutDir(dir: string): void {
  let st;
  try {
    st = statSync(dir, { throwIfNoEntry: false });
  } catch (e) {
    throw new JobInputError(`cannot use --out ${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (st && !st.isDirectory()) throw new JobInputError(`--out ${dir} exists and is not a directory`);
}
