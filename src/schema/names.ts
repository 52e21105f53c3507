/** The published JSON Schemas by name (apart from their generator, so the CLI's usage text can name them cheaply). */
export const SCHEMA_NAMES = ["policy", "config", "serve"] as const;
export type SchemaName = (typeof SCHEMA_NAMES)[number];
