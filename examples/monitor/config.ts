/** The monitor's config file: which provider, where to listen, which checks. */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { AbsolutePath, describeIssues, PolicyOverrideSchema, zodIssues } from "../../src/api/index.ts";
import { scriptCollectors, type ScriptCollector, type ScriptConfig } from "../../plugins/collector-script/index.ts";

const Comment = z.string().optional();

const CheckSchema = z.strictObject({
  $comment: Comment,
  id: z.string().regex(/^[A-Za-z0-9._-]+$/, { error: "letters, digits, '.', '_' and '-' only" }),
  collector: z.enum(["shell", "python", "esm"]),
  intervalMs: z.number().int().min(100),
  /** Stored collector config: `{ version, data }`, migrated to the current version at startup. */
  config: z.strictObject({ version: z.number(), data: z.unknown() }),
});

const MonitorConfigSchema = z.strictObject({
  $comment: Comment,
  /** The one line that picks the sandbox: a provider name or "auto". */
  provider: z.string().min(1),
  /** 0 picks a free port; the PORT environment variable overrides it. */
  port: z.number().int().min(0).max(65535).default(8787),
  hostname: z.string().default("127.0.0.1"),
  /** The most sandboxed runs at once, all checks together; a check's run past it waits for a slot. */
  concurrency: z.number().int().min(1).max(64).default(2),
  /** Where run directories go (default: cordon's per-uid default). */
  runRoot: AbsolutePath.optional(),
  /** Applied under every check's own policy override. */
  policy: PolicyOverrideSchema.optional(),
  checks: z.array(CheckSchema).min(1),
});

export type MonitorConfig = z.output<typeof MonitorConfigSchema>;

export interface CheckDefinition {
  id: string;
  intervalMs: number;
  collector: ScriptCollector;
  config: ScriptConfig;
}

/** Bad config: the message names the file and the field. */
export class MonitorConfigError extends Error {}

export function loadMonitorConfig(path: string): MonitorConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new MonitorConfigError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const parsed = MonitorConfigSchema.safeParse(raw);
  if (!parsed.success) throw new MonitorConfigError(`invalid ${path}: ${describeIssues(zodIssues(parsed.error))}`);
  const ids = parsed.data.checks.map((c) => c.id);
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup) throw new MonitorConfigError(`invalid ${path}: check id "${dup}" is used twice`);
  return parsed.data;
}

/**
 * Each check's stored config goes through its collector's `config.parse`, so v1
 * records are migrated; a script file is resolved against the config's directory.
 */
export function checkDefinitions(config: MonitorConfig, configPath: string): CheckDefinition[] {
  const base = dirname(resolve(configPath));
  return config.checks.map((check) => {
    const collector = scriptCollectors[check.collector];
    let parsed: ScriptConfig;
    try {
      parsed = collector.config.parse(check.config);
    } catch (e) {
      throw new MonitorConfigError(`check "${check.id}" (${collector.id}): ${e instanceof Error ? e.message : String(e)}`);
    }
    const withFile = parsed.file === undefined ? parsed : { ...parsed, file: resolve(base, parsed.file) };
    return { id: check.id, intervalMs: check.intervalMs, collector, config: withFile };
  });
}
