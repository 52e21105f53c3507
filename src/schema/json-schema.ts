/**
 * The published JSON Schemas of a policy file and a config file, generated from the zod
 * schemas that validate them (zod 4's `toJSONSchema`), so the two cannot disagree. Field
 * documentation is each zod field's `description`; a policy field's default is the shipped
 * DEFAULT_POLICY's value. `bun run schema` writes them to schema/*.schema.json, where
 * test/schema.test.ts holds them to what this module generates.
 */
import { z } from "zod";
import { ConfigFileSchema } from "../config.ts";
import { isPlainObject } from "../plain-object.ts";
import { DEFAULT_POLICY, PolicyFileSchema } from "../policy/index.ts";
import { ServeFileSchema, ServeSchema } from "../serve/config.ts";

export type JsonSchema = Record<string, unknown>;

import { SCHEMA_NAMES, type SchemaName } from "./names.ts";

export { SCHEMA_NAMES, type SchemaName };

/** Where each schema is published, relative to the package root (package.json `exports` maps the same paths). */
export const SCHEMA_FILES: Record<SchemaName, string> = { policy: "schema/policy.schema.json", config: "schema/config.schema.json", serve: "schema/serve.schema.json" };

const TITLES: Record<SchemaName, string> = {
  serve: "cordon serve config file (`cordon serve --config FILE`): a config file plus the service's `serve` settings",
  policy: "cordon policy file: the fields to change on top of the configured policy (`--policy FILE`, a collector's `policy`)",
  config: "cordon config file (`--config FILE`, `new Cordon(config)`, `startCordon(config)`)",
};

/**
 * A file is read as its input: fields with a default may be left out, and a transform (a
 * read-only bind's string form becoming `{ source, target }`) is described by what it accepts.
 */
function fromZod(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { io: "input", target: "draft-2020-12", override: publishDefault }) as JsonSchema;
}

/**
 * zod 4.6 leaves out the `default` of some defaulted objects (the config's `policy: {}`);
 * every zod default is published, so the table and an editor show it.
 */
function publishDefault(ctx: { zodSchema: unknown; jsonSchema: Record<string, unknown> }): void {
  const def = (ctx.zodSchema as { _zod?: { def?: { type?: string; defaultValue?: unknown } } })._zod?.def;
  if (def?.type === "default" && ctx.jsonSchema.default === undefined) ctx.jsonSchema.default = structuredClone(def.defaultValue);
}

/** Copy `defaults`' values into the matching `properties` of `node` as JSON Schema `default`s (editors show them). */
function withDefaults(node: JsonSchema, defaults: Record<string, unknown>): JsonSchema {
  const properties = node.properties;
  if (!isPlainObject(properties)) return node;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(properties)) {
    const value = defaults[key];
    if (!isPlainObject(child) || value === undefined) out[key] = child;
    else if (isPlainObject(value) && isPlainObject(child.properties)) out[key] = withDefaults(child, value);
    else out[key] = { ...child, default: value };
  }
  return { ...node, properties: out };
}

/** The JSON Schema of a policy file; `schema` is replaceable so a test can show an added field is caught. */
export function policyJsonSchema(schema: z.ZodType = PolicyFileSchema): JsonSchema {
  return { ...withDefaults(fromZod(schema), DEFAULT_POLICY), title: TITLES.policy };
}

/**
 * The JSON Schema of a config file. Its `policy` holds a policy file's fields: kept once, under
 * `$defs.policy` (with the shipped defaults), so the document stands alone and the config's own
 * fields read apart from the policy's.
 */
export function configJsonSchema(schema: z.ZodType = ConfigFileSchema): JsonSchema {
  const generated = fromZod(schema);
  const properties = generated.properties as Record<string, JsonSchema>;
  const { description, default: fallback, ...policy } = properties.policy ?? {};
  const reference = { $ref: "#/$defs/policy", ...(description === undefined ? {} : { description }), ...(fallback === undefined ? {} : { default: fallback }) };
  return {
    ...generated,
    properties: { ...properties, policy: reference },
    $defs: { policy: withDefaults(policy, DEFAULT_POLICY) },
    title: TITLES.config,
  };
}

/** The JSON Schema of a `cordon serve` config file: a config file plus `serve`. */
export function serveJsonSchema(): JsonSchema {
  return { ...configJsonSchema(ServeFileSchema), title: TITLES.serve };
}

export function jsonSchema(name: SchemaName): JsonSchema {
  return name === "policy" ? policyJsonSchema() : name === "config" ? configJsonSchema() : serveJsonSchema();
}

/** What the README's table for `name` lists: the whole file, but for serve only its own `serve` settings (the rest is the config table). */
export function tableSchema(name: SchemaName): JsonSchema {
  return name === "serve" ? { type: "object", properties: { serve: fromZod(ServeSchema) } } : jsonSchema(name);
}

/** The text written to schema/NAME.schema.json and printed by `cordon schema NAME`. */
export function jsonSchemaText(name: SchemaName): string {
  return `${JSON.stringify(jsonSchema(name), null, 2)}\n`;
}
