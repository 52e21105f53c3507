/**
 * `cordon schema [policy|config|serve]`: print the JSON Schema of a policy file (the default),
 * a config file or a serve config file, exactly as published in schema/*.schema.json. A subcommand of its own,
 * outside the run/readiness parser: it reads nothing and runs nothing.
 */
import { SCHEMA_NAMES, type SchemaName } from "../schema/names.ts";
import { CordonError } from "../errors.ts";

export const SCHEMA_USAGE = `cordon schema [${SCHEMA_NAMES.join("|")}]   the JSON Schema of a policy (default), config or serve file`;

export async function schemaCommand(args: readonly string[], io: { stdout: (data: string) => void }): Promise<number> {
  if (args.length === 1 && (args[0] === "--help" || args[0] === "-h")) {
    io.stdout(`usage: ${SCHEMA_USAGE}\n`);
    return 0;
  }
  const [name = "policy", ...extra] = args;
  // Bad input is status 126, like every other usage error; the message says the one usage this command has.
  if (extra.length > 0) throw new CordonError("invalid-job", `schema takes at most one argument, got ${args.length} (usage: cordon schema [${SCHEMA_NAMES.join("|")}])`);
  if (!(SCHEMA_NAMES as readonly string[]).includes(name)) throw new CordonError("invalid-job", `unknown schema "${name}": expected one of ${SCHEMA_NAMES.join(", ")} (usage: cordon schema [${SCHEMA_NAMES.join("|")}])`);
  // The generator (zod to JSON Schema) loads only for this command.
  const { jsonSchemaText } = await import("../schema/json-schema.ts");
  io.stdout(jsonSchemaText(name as SchemaName));
  return 0;
}
