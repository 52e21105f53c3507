import { parseArgs } from "node:util";
import { CordonError } from "../errors.ts";
import { SCHEMA_USAGE } from "./schema.ts";

export class UsageError extends CordonError {
  constructor(readonly detail: string) {
    super("invalid-job", `${detail}\n${USAGE}`);
  }
}

/** Kept within 100 columns, like everything else the CLI prints. */
export const USAGE = `usage:
  cordon run [OPTIONS] FILE [-- ARGS...]
    runs FILE in a sandbox: its stdout and stderr pass through, a summary line follows on stderr
    --runner NAME          the runner (shell, python, esm); default: by FILE's extension
    --provider NAME|auto   the sandbox provider; default: the config's (bwrap)
    --policy FILE.json     policy fields to change for this run
    --config FILE.json     cordon's configuration (provider, runRoot, policy, ...)
    --files DIR            stage DIR's regular files (subdirectories kept, no symlinks) into scratch
    --out DIR              write the files the script created or changed under scratch into DIR
    --inline               esm runner only: FILE is a function body (\`return { success, message }\`)
    --verify               show a receipt of what the sandboxed process itself saw (uid,
                           capabilities, no_new_privs, seccomp, network interfaces, cgroup)
    --report               show the full effective-sandbox report (not with --json: it holds it)
    --json                 print one RunResult JSON object on stdout instead of the script's output
  cordon readiness [--provider NAME|auto] [--policy FILE.json] [--config FILE.json] [--json]
    proves what each provider enforces on this host; exit 0 if the configured one is ready
    --policy FILE.json     judge against the configured policy with FILE on top, as run --policy
  ${SCHEMA_USAGE}
  cordon help
exit statuses: the script's own, or 1 if it used one of cordon's: 123 a resource limit,
  124 the wall-clock limit, 125 refused (nothing ran), 126 bad input or usage, 70 internal error;
  readiness: 0 ready, 1 not ready`;

export interface RunCommand {
  kind: "run";
  file: string;
  args: string[];
  runner?: string;
  provider?: string;
  policyFile?: string;
  configFile?: string;
  filesDir?: string;
  outDir?: string;
  inline: boolean;
  verify: boolean;
  json: boolean;
  report: boolean;
}

export interface ReadinessCommand {
  kind: "readiness";
  provider?: string;
  policyFile?: string;
  configFile?: string;
  json: boolean;
}

export type Command = RunCommand | ReadinessCommand | { kind: "help" };

const OPTIONS = {
  runner: { type: "string" },
  provider: { type: "string" },
  policy: { type: "string" },
  config: { type: "string" },
  files: { type: "string" },
  out: { type: "string" },
  json: { type: "boolean" },
  inline: { type: "boolean" },
  verify: { type: "boolean" },
  report: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

type OptionName = keyof typeof OPTIONS;

/**
 * The options each command takes; any other is refused, never ignored: a gate must not
 * pass on a flag it dropped, and a user must not believe a flag did something.
 */
const COMMAND_OPTIONS: Record<"run" | "readiness", ReadonlySet<OptionName>> = {
  run: new Set(["runner", "provider", "policy", "config", "files", "out", "json", "inline", "verify", "report", "help"]),
  readiness: new Set(["provider", "policy", "config", "json", "help"]),
};

/** What a string option's value names, for the message when it is empty. */
const VALUE_OF: Partial<Record<OptionName, string>> = {
  runner: "a runner name",
  provider: "a provider name",
  policy: "a policy file",
  config: "a config file",
  files: "a directory",
  out: "a directory",
};

type Values = { [K in OptionName]?: (typeof OPTIONS)[K]["type"] extends "string" ? string : boolean };

/** The options given, each at most once, every one of them taken by `verb`. */
function optionValues(verb: "run" | "readiness", tokens: readonly { kind: string; name?: string; rawName?: string; value?: string | undefined }[]): Values {
  const values: Values = {};
  for (const t of tokens) {
    if (t.kind !== "option") continue;
    const name = t.name as OptionName;
    if (!COMMAND_OPTIONS[verb].has(name)) {
      const owner = (Object.keys(COMMAND_OPTIONS) as ("run" | "readiness")[]).find((c) => COMMAND_OPTIONS[c].has(name));
      throw new UsageError(owner ? `--${name} is an option of ${owner}, not ${verb}` : `--${name} is not an option of ${verb}`);
    }
    // A second value would silently replace the first: one of them would be ignored.
    if (values[name] !== undefined) throw new UsageError(`--${name} is given more than once`);
    if (OPTIONS[name].type === "string") {
      if (!t.value) throw new UsageError(`--${name} needs ${VALUE_OF[name] ?? "a value"}`);
      (values as Record<string, string>)[name] = t.value;
    } else {
      (values as Record<string, boolean>)[name] = true;
    }
  }
  return values;
}

export function parseCommand(argv: string[]): Command {
  const [verb, ...rest] = argv;
  if (verb === undefined) throw new UsageError("no command given");
  if (verb === "help" || verb === "--help" || verb === "-h") {
    if (rest.length) throw new UsageError(`${verb} takes no arguments (got ${rest.join(" ")})`);
    return { kind: "help" };
  }
  if (verb !== "run" && verb !== "readiness") throw new UsageError(`unknown command "${verb}"`);
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, tokens: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { tokens } = parsed;
  const values = optionValues(verb, tokens);
  if (values.help) return { kind: "help" };
  const common = {
    json: values.json === true,
    ...(values.provider !== undefined ? { provider: values.provider } : {}),
    ...(values.policy !== undefined ? { policyFile: values.policy } : {}),
    ...(values.config !== undefined ? { configFile: values.config } : {}),
  };

  if (verb === "readiness") {
    if (parsed.positionals.length) throw new UsageError(`readiness takes no arguments (got ${parsed.positionals.join(" ")})`);
    return { kind: "readiness", ...common };
  }
  // Everything after "--" belongs to the script, even words that look like options.
  const dashIndex = tokens.find((t) => t.kind === "option-terminator")?.index;
  const before = tokens.filter((t) => t.kind === "positional" && (dashIndex === undefined || t.index < dashIndex)).map((t) => (t as { value: string }).value);
  const after = dashIndex === undefined ? [] : rest.slice(dashIndex + 1);
  const [file, ...extra] = before;
  if (!file) throw new UsageError("run needs a script FILE");
  if (extra.length) throw new UsageError(`unexpected arguments before "--": ${extra.join(" ")}`);
  // --json carries the whole report (the result's `sandbox`): --report would print nothing more.
  if (values.report && values.json) throw new UsageError("--report prints the report as text; with --json it is the result's `sandbox` field");
  return {
    kind: "run",
    file,
    args: after,
    ...common,
    inline: values.inline === true,
    verify: values.verify === true,
    report: values.report === true,
    ...(values.runner !== undefined ? { runner: values.runner } : {}),
    ...(values.files !== undefined ? { filesDir: values.files } : {}),
    ...(values.out !== undefined ? { outDir: values.out } : {}),
  };
}
