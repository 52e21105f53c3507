/**
 * The README's field tables, generated from a published JSON Schema (src/schema/json-schema.ts):
 * one row per field a file can set, its default and its description, so the docs say what
 * the validating schema says. Nested objects are walked; everything else (arrays, records,
 * unions, a `$ref`) is one field.
 */
import { isPlainObject } from "../plain-object.ts";
import type { JsonSchema } from "./json-schema.ts";

export interface SchemaField {
  /** Dotted path from the top of the file, e.g. `resources.wallMs`. */
  field: string;
  /** The default as the table shows it; empty when the field has none. */
  default: string;
  description: string;
}

/** A file's pointer to its own schema: allowed everywhere, documented once, not a setting. */
const ENVELOPE_KEYS = new Set(["$schema"]);

const BYTE_UNITS: [number, string][] = [
  [1024 ** 3, "GiB"],
  [1024 ** 2, "MiB"],
  [1024, "KiB"],
];

/** `...Bytes` fields read in binary units when they divide evenly ("256 MiB"); strings, lists, objects and null as code. */
export function formatDefault(field: string, value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "number") {
    if (!field.endsWith("Bytes")) return String(value);
    const unit = BYTE_UNITS.find(([size]) => value >= size && value % size === 0);
    return unit ? `${value / unit[0]} ${unit[1]}` : String(value);
  }
  if (typeof value === "boolean") return `\`${value}\``;
  if (typeof value === "string") return `\`${value}\``;
  return `\`${JSON.stringify(value).replaceAll(",", ", ")}\``;
}

/** Every field of the schema, depth first in declaration order. */
export function schemaFields(schema: JsonSchema, prefix = ""): SchemaField[] {
  const properties = schema.properties;
  if (!isPlainObject(properties)) return [];
  return Object.entries(properties).flatMap(([key, child]): SchemaField[] => {
    if (ENVELOPE_KEYS.has(key) || !isPlainObject(child)) return [];
    const field = `${prefix}${key}`;
    if (child.type === "object" && isPlainObject(child.properties)) return schemaFields(child, `${field}.`);
    const description = typeof child.description === "string" ? child.description : "";
    return [{ field, default: formatDefault(field, child.default), description }];
  });
}

/** A table cell: a `|` would end the cell, a newline the row. */
function cell(text: string): string {
  return text.replaceAll("|", "\\|").replace(/\s*\n\s*/g, " ");
}

export function schemaTable(schema: JsonSchema): string {
  const rows = schemaFields(schema).map((f) => `| \`${f.field}\` | ${cell(f.default)} | ${cell(f.description)} |`);
  return ["| field | default | meaning |", "| --- | --- | --- |", ...rows].join("\n");
}
