import { parseArgs } from "node:util";
import { CordonError } from "../errors.ts";

export class UsageError extends CordonError {
  constructor(message: string) {
    super("invalid-job", `${message}\n${USAGE}`);
  }
}

export const USAGE = `usage:
  cordon run [--runner NAME] [--provider NAME|auto] [--policy FILE.json] [--config FILE.json] [--json] [--report] FILE [-- ARGS...]
  cordon readiness [--provider NAME] [--config FILE.json] [--json]`;

export type Command =
  | { kind: "run"; file: string; args: string[]; runner?: string; provider?: string; policyFile?: string; configFile?: string; json: boolean; report: boolean }
  | { kind: "readiness"; provider?: string; configFile?: string; json: boolean }
  | { kind: "help" };

const OPTIONS = {
  runner: { type: "string" },
  provider: { type: "string" },
  policy: { type: "string" },
  config: { type: "string" },
  json: { type: "boolean", default: false },
  report: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

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
    if (positionals.length) throw new UsageError(`readiness takes no arguments (got ${positionals.join(" ")})`);
    return { kind: "readiness", json: values.json, ...opt("provider"), ...(values.config ? { configFile: values.config } : {}) };
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
      report: values.report,
      ...opt("runner"),
      ...opt("provider"),
      ...(values.policy ? { policyFile: values.policy } : {}),
      ...(values.config ? { configFile: values.config } : {}),
    };
  }
  throw new UsageError(`unknown command "${verb}"`);
}
