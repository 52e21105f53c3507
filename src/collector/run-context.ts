/**
 * A run's context (which check, which system, which environment) as the environment
 * variables checkstack's script collectors give a script, so a check script written for
 * checkstack reads the same names under cordon:
 *
 *   CHECKSTACK_CHECK_ID, CHECKSTACK_CHECK_NAME, CHECKSTACK_CHECK_INTERVAL_SECONDS,
 *   CHECKSTACK_SYSTEM_ID, CHECKSTACK_SYSTEM_NAME, CHECKSTACK_SYSTEM_<FIELD> per system metadata field,
 *   CHECKSTACK_ENV_ID, CHECKSTACK_ENV_NAME, CHECKSTACK_ENV_<FIELD> per environment field.
 *
 * <FIELD> is the key upper-cased, every run of other characters than A-Z and 0-9 made one
 * `_`. A key that comes out empty or as ID/NAME (which would shadow the built-in variable)
 * is skipped, as is a second key that comes out the same as an earlier one.
 */
import { JobInputError } from "../errors.ts";
import { EnvValue } from "../policy/index.ts";
import type { CollectorRunContext } from "./strategy.ts";

const RESERVED_FIELDS = new Set(["ID", "NAME"]);

export function fieldVariable(prefix: string, key: string): string | null {
  const field = key.toUpperCase().replace(/[^A-Z0-9]+/g, "_").replace(/^_+|_+$/g, "");
  return field === "" || RESERVED_FIELDS.has(field) ? null : `${prefix}_${field}`;
}

/** Strings as they are; numbers and booleans as text; anything else as JSON; null and undefined leave the variable out. */
function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  return JSON.stringify(value) ?? null;
}

/**
 * The variables for `context` (none when it is absent). A value the sandbox cannot carry
 * (a NUL byte, over 128 KiB) is refused with JobInputError naming the variable.
 */
export function runContextEnv(context: CollectorRunContext | undefined): Record<string, string> {
  if (context === undefined) return {};
  const env: Record<string, string> = {};
  const set = (name: string | null, value: unknown) => {
    const asText = text(value);
    if (name === null || asText === null || name in env) return;
    if (!EnvValue.safeParse(asText).success) throw new JobInputError(`run context variable ${name}: its value must hold no NUL byte and be at most 128 KiB`);
    env[name] = asText;
  };
  set("CHECKSTACK_CHECK_ID", context.check.id);
  set("CHECKSTACK_CHECK_NAME", context.check.name);
  set("CHECKSTACK_CHECK_INTERVAL_SECONDS", context.check.intervalSeconds);
  set("CHECKSTACK_SYSTEM_ID", context.system.id);
  set("CHECKSTACK_SYSTEM_NAME", context.system.name);
  for (const [key, value] of Object.entries(context.system.metadata ?? {})) set(fieldVariable("CHECKSTACK_SYSTEM", key), value);
  if (context.environment) {
    set("CHECKSTACK_ENV_ID", context.environment.id);
    set("CHECKSTACK_ENV_NAME", context.environment.name);
    for (const [key, value] of Object.entries(context.environment.fields)) set(fieldVariable("CHECKSTACK_ENV", key), value);
  }
  return env;
}
