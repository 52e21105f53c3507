/**
 * THE choke point between outside input and a launcher. Every string a launcher will
 * parse (its argv, bwrap's NUL-separated `--args` file, nsjail's text config, env names
 * and values, mount paths, the command and its arguments) is checked here, once, after
 * rendering and before anything is created or spawned.
 *
 * Why: bwrap's `--args FD` splits on NUL, so a NUL inside an env value becomes new bwrap
 * options (`--bind / /x`, `--share-net`); a newline or quote in nsjail's text config
 * could start a new config field. Field-by-field validation upstream is a courtesy for
 * clear error messages; this check is what makes the plan safe whatever a caller,
 * runner or plugin forgot.
 */
import { CordonError } from "../errors.ts";
import type { Launch, SandboxSpec } from "./spec.ts";

/** A string that would change what the launcher is told to do. Nothing was spawned. */
export class LauncherInputError extends CordonError {
  constructor(
    readonly where: string,
    readonly problem: string,
  ) {
    super("invalid-job", `refused before anything ran: ${where} ${problem}`);
  }
}

/** C0 controls and DEL: anything a line-based config reader could treat as structure. */
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Every string in a value, with a dotted path, walking plain objects and arrays only. */
function* stringsIn(value: unknown, path: string): Generator<{ where: string; value: string }> {
  if (typeof value === "string") {
    yield { where: path, value };
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) yield* stringsIn(value[i], `${path}[${i}]`);
  } else if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
    for (const [k, v] of Object.entries(value)) {
      const name = /^[\w-]+$/.test(k) ? k : JSON.stringify(k);
      yield { where: `${path} key ${name}`, value: k };
      yield* stringsIn(v, `${path}.${name}`);
    }
  }
}

/**
 * Does any string or key in the value fail `bad`? The same walk as stringsIn without naming
 * paths: nearly every plan is clean, and naming each of its few thousand strings' paths was
 * most of what planning a run cost. A hit is then located (and named) by stringsIn.
 */
function anyString(value: unknown, bad: (s: string) => boolean): boolean {
  if (typeof value === "string") return bad(value);
  if (Array.isArray(value)) return value.some((v) => anyString(v, bad));
  if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
    for (const k in value) if (bad(k) || anyString((value as Record<string, unknown>)[k], bad)) return true;
  }
  return false;
}

/** A short, printable description of the offending character (never the value: it may be a secret). */
function describe(value: string, controlFree: boolean): string | null {
  if (value.includes("\0")) return "contains a NUL byte";
  if (controlFree) {
    const m = CONTROL.exec(value);
    if (m) return `contains the control character U+${m[0].charCodeAt(0).toString(16).padStart(4, "0")} (this launcher reads a text config)`;
  }
  return null;
}

export interface LauncherInputRules {
  /** The launcher reads its options as text (nsjail's config): refuse every control character too. */
  textConfig: boolean;
}

/**
 * Throw LauncherInputError for the first unsafe string in the spec (what the layers
 * decided, staged file contents excepted: those are file bytes, never launcher options)
 * or in the rendered launch (argv, launcher args, the launcher's own env).
 */
export function checkLauncherInput(spec: SandboxSpec, launch: Launch, rules: LauncherInputRules): void {
  const { stage: _fileContents, ...filesystem } = spec.filesystem;
  const specParts = { ...spec, filesystem };
  const { command, ...configText } = specParts;
  const hasNul = (v: string) => v.includes("\0");
  const clean =
    !anyString(configText, (v) => describe(v, rules.textConfig) !== null) &&
    !anyString([command, launch.argv, launch.launcherArgs ?? [], launch.env, launch.cwd], hasNul);
  if (clean) return;
  const sources = [
    stringsIn(specParts, "spec"),
    stringsIn(launch.argv, "launcher argv"),
    stringsIn(launch.launcherArgs ?? [], "launcher arguments"),
    stringsIn(launch.env, "launcher env"),
    stringsIn(launch.cwd, "launcher cwd"),
  ];
  for (const source of sources) {
    for (const { where, value } of source) {
      // The command is the launcher's argv after `--`, not config text: only NUL matters there
      // (the --verify prologue is a multi-line `sh -c` script).
      const inConfigText = rules.textConfig && where.startsWith("spec") && !where.startsWith("spec.command");
      const problem = describe(value, inConfigText);
      if (problem) throw new LauncherInputError(where.replace(/^spec\.env\.vars\.(\w+)$/, "env $1"), problem);
    }
  }
}
