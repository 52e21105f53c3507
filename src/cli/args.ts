import { parseArgs } from "node:util";
import { CordonError } from "../errors.ts";

export class UsageError extends CordonError {
  constructor(readonly detail: string) {
    super("invalid-job", `${detail}\n${USAGE}`);
  }
}

export const USAGE = `usage:
  cordon run [--runner NAME] [--provider NAME|auto] [--policy FILE.json] [--config FILE.json] [--files DIR] [--out DIR] [--inline] [--verify] [--json] [--report] FILE [-- ARGS...]
    --inline     FILE is a function body, not a module (esm runner: \`return { success, message }\`)
    --verify     the result carries a receipt of what the sandboxed process itself saw (uid, caps, seccomp, network, cgroup)
    --files DIR  stage DIR's regular files (subdirectories kept, no symlinks) into scratch before the run
    --out DIR    write the files the script created or changed under scratch into DIR
  cordon readiness [--provider NAME|auto] [--policy FILE.json] [--config FILE.json] [--json]
    --policy FILE  judge the provider against this policy (as \`run --policy\` would apply it), not only the configured one`;

export type Command =
  | { kind: "run"; file: string; args: string[]; runner?: string; provider?: string; policyFile?: string; configFile?: string; filesDir?: string; outDir?: string; inline: boolean; verify: boolean; json: boolean; report: boolean }
  | { kind: "readiness"; provider?: string; policyFile?: string; configFile?: string; json: boolean }
  | { kind: "help" };

const OPTIONS = {
  runner: { type: "string" },
  provider: { type: "string" },
  policy: { type: "string" },
  config: { type: "string" },
  files: { type: "string" },
  out: { type: "string" },
  json: { type: "boolean", default: false },
  inline: { type: "boolean", default: false },
  verify: { type: "boolean", default: false },
  report: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

/** The options `readiness` uses; every other one is refused there. */
const READINESS_OPTIONS: ReadonlySet<string> = new Set(["provider", "policy", "config", "json", "help"]);

function nonEmpty(option: string, value: string): string {
  if (value === "") throw new UsageError(`${option} needs a directory`);
  return value;
}

export function parseCommand(argv: string[]): Command {
  const [verb, ...rest] = argv;
  if (!verb || verb === "help" || verb === "--help" || verb === "-h") return { kind: "help" };
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, tokens: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals, tokens } = parsed;
  if (values.help) return { kind: "help" };
  const opt = <K extends "runner" | "provider" | "policy" | "config">(k: K) => (values[k] === undefined ? {} : { [k]: values[k] });

  if (verb === "readiness") {
    // Refuse what does not apply rather than ignore it: a gate must not pass on a flag it dropped.
    const runOnly = tokens.find((t) => t.kind === "option" && !READINESS_OPTIONS.has(t.name));
    if (runOnly?.kind === "option") throw new UsageError(`--${runOnly.name} is an option of run, not readiness`);
    if (positionals.length) throw new UsageError(`readiness takes no arguments (got ${positionals.join(" ")})`);
    return {
      kind: "readiness",
      json: values.json,
      ...opt("provider"),
      ...(values.policy !== undefined ? { policyFile: values.policy } : {}),
      ...(values.config !== undefined ? { configFile: values.config } : {}),
    };
  }
  if (verb === "run") {
    // Everything after "--" belongs to the script, even words that look like options.
    const dashIndex = tokens.find((t) => t.kind === "option-terminator")?.index;
    const before = dashIndex === undefined ? positionals : tokens.filter((t) => t.kind === "positional" && t.index < dashIndex).map((t) => (t as { value: string }).value);
    const after = dashIndex === undefined ? [] : rest.slice(dashIndex + 1);
    const [file, ...extra] = before;
    if (!file) throw new UsageError("run needs a script FILE");
    if (extra.length) throw new UsageError(`unexpected arguments before "--": ${extra.join(" ")}`);
    return {
      kind: "run",
      file,
      args: after,
      json: values.json,
      inline: values.inline,
      verify: values.verify,
      report: values.report,
      ...opt("runner"),
      ...opt("provider"),
      ...(values.policy !== undefined ? { policyFile: values.policy } : {}),
      ...(values.config !== undefined ? { configFile: values.config } : {}),
      ...(values.files !== undefined ? { filesDir: nonEmpty("--files", values.files) } : {}),
      ...(values.out !== undefined ? { outDir: nonEmpty("--out", values.out) } : {}),
    };
  }
  throw new UsageError(`unknown command "${verb}"`);
}
