#!/usr/bin/env bun
/**
 * `bun run schema`: regenerate what is derived from the zod schemas of a policy and a config,
 * after changing one of them (src/policy/schema.ts, src/config.ts):
 *   - schema/policy.schema.json, schema/config.schema.json (published; `cordon schema NAME`);
 *   - the README's policy and config tables, between their `generated` markers.
 * test/schema.test.ts fails while any of them differs from what the zod schemas say.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { jsonSchemaText, SCHEMA_FILES, SCHEMA_NAMES, tableSchema, type SchemaName } from "../src/schema/json-schema.ts";
import { schemaTable } from "../src/schema/table.ts";

export const ROOT = resolve(import.meta.dir, "..");
export const README = join(ROOT, "README.md");

const begin = (name: SchemaName) => `<!-- generated from ${SCHEMA_FILES[name]} by \`bun run schema\`: edit the zod schema, not this table -->`;
const end = (name: SchemaName) => `<!-- end of the generated ${name} table -->`;

/** The README's generated block for `name`, or null when its markers are missing. */
export function readmeBlock(readme: string, name: SchemaName): string | null {
  const from = readme.indexOf(begin(name));
  const to = readme.indexOf(end(name));
  if (from < 0 || to < from) return null;
  return readme.slice(from + begin(name).length, to).trim();
}

/** The README with `name`'s block replaced by `table`; throws when the markers are missing (never appends silently). */
export function withReadmeBlock(readme: string, name: SchemaName, table: string): string {
  if (readmeBlock(readme, name) === null) throw new Error(`README.md has no generated ${name} table: put the markers\n${begin(name)}\n${end(name)}\nwhere it belongs`);
  const from = readme.indexOf(begin(name)) + begin(name).length;
  return `${readme.slice(0, from)}\n${table}\n${readme.slice(readme.indexOf(end(name)))}`;
}

if (import.meta.main) {
  let readme = readFileSync(README, "utf8");
  for (const name of SCHEMA_NAMES) {
    writeFileSync(join(ROOT, SCHEMA_FILES[name]), jsonSchemaText(name));
    readme = withReadmeBlock(readme, name, schemaTable(tableSchema(name)));
    console.log(`wrote ${SCHEMA_FILES[name]} and the README's ${name} table`);
  }
  writeFileSync(README, readme);
}
