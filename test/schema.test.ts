/**
 * One schema, published: the JSON Schemas in schema/ and the README's policy and config tables
 * are what the zod schemas generate (src/schema/), so none can drift; the shipped examples
 * follow them; `cordon schema` prints them. A field added to a zod schema fails here until
 * `bun run schema` regenerates the files and tables (shown by adding one).
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import { z } from "zod";
import { ConfigFileSchema, parseConfig, parsePolicyOverride, PolicyFileSchema } from "../src/api/index.ts";
import { PrivilegeSchema } from "../src/policy/index.ts";
import { configJsonSchema, jsonSchema, jsonSchemaText, policyJsonSchema, SCHEMA_FILES, SCHEMA_NAMES, tableSchema, type JsonSchema, type SchemaName } from "../src/schema/json-schema.ts";
import { schemaFields, schemaTable } from "../src/schema/table.ts";
import { README, readmeBlock } from "../scripts/schema.ts";
import { ROOT, runCli } from "./support.ts";

const readme = () => readFileSync(README, "utf8");

/** The README table's rows, by field: its default cell and its description cell. */
function readmeRows(text: string, name: SchemaName): Map<string, { default: string; description: string }> {
  const rows = new Map<string, { default: string; description: string }>();
  for (const line of (readmeBlock(text, name) ?? "").split("\n")) {
    const m = /^\| `([^`]+)` \| (.*?) \| (.*) \|$/.exec(line);
    if (m) rows.set(m[1]!, { default: m[2]!, description: m[3]! });
  }
  return rows;
}

/** What the README's table says wrong or leaves out about `schema`'s fields, one line each. */
function tableDrift(text: string, name: SchemaName, schema: JsonSchema): string[] {
  const rows = readmeRows(text, name);
  const problems: string[] = [];
  for (const f of schemaFields(schema)) {
    const row = rows.get(f.field);
    if (f.description === "") problems.push(`${f.field}: no description in the zod schema (.meta({ description }))`);
    if (!row) problems.push(`${f.field}: not in the README's ${name} table`);
    else if (row.default !== f.default) problems.push(`${f.field}: README default "${row.default}", schema default "${f.default}"`);
  }
  const known = new Set(schemaFields(schema).map((f) => f.field));
  for (const field of rows.keys()) if (!known.has(field)) problems.push(`${field}: in the README's ${name} table, not in the schema`);
  return problems;
}

const REGENERATE = "run `bun run schema` after changing src/policy/schema.ts or src/config.ts";

describe("generated from the zod schemas, committed, no drift", () => {
  for (const name of SCHEMA_NAMES) {
    test(`${SCHEMA_FILES[name]} is what the zod schema generates`, () => {
      expect(readFileSync(join(ROOT, SCHEMA_FILES[name]), "utf8"), REGENERATE).toBe(jsonSchemaText(name));
    });

    test(`every ${name} field is in the README's table, documented, with the schema's default`, () => {
      expect(tableDrift(readme(), name, tableSchema(name)), REGENERATE).toEqual([]);
      expect(readmeBlock(readme(), name), REGENERATE).toBe(schemaTable(tableSchema(name)));
    });
  }

  test("a field added to a zod schema fails the check until regenerated (policy and config alike)", () => {
    // A hypothetical addition of each shape: a policy boolean, a config key.
    const policy = PolicyFileSchema.extend({ privilege: PrivilegeSchema.extend({ landlock: z.boolean().meta({ description: "a Landlock ruleset" }) }).partial().optional() });
    const config = ConfigFileSchema.extend({ warmPool: z.enum(["off", "on"]).default("off").meta({ description: "sandboxes started ahead" }) });
    expect(tableDrift(readme(), "policy", policyJsonSchema(policy))).toEqual(["privilege.landlock: not in the README's policy table"]);
    expect(tableDrift(readme(), "config", configJsonSchema(config))).toEqual(["warmPool: not in the README's config table"]);
    // Undocumented and re-defaulted fields are named too.
    const bare = ConfigFileSchema.extend({ warmPool: z.string().optional(), maxScriptBytes: z.number().default(5) });
    expect(tableDrift(readme(), "config", configJsonSchema(bare))).toEqual([
      "maxScriptBytes: no description in the zod schema (.meta({ description }))",
      'maxScriptBytes: README default "1 MiB", schema default "5"',
      "warmPool: no description in the zod schema (.meta({ description }))",
      "warmPool: not in the README's config table",
    ]);
  });

  test("a policy field's default is DEFAULT_POLICY's; the config's policy is the policy file's fields, kept once", () => {
    const policy = policyJsonSchema() as { properties: Record<string, { properties: Record<string, { default: unknown }> }> };
    expect(policy.properties.resources!.properties.memoryBytes!.default).toBe(256 * 1024 * 1024);
    expect(policy.properties.privilege!.properties.seccomp!.default).toBe(true);
    const config = configJsonSchema() as { properties: Record<string, unknown>; $defs: Record<string, { properties: Record<string, unknown> }> };
    expect(config.properties.policy).toMatchObject({ $ref: "#/$defs/policy", default: {} });
    expect(Object.keys(config.$defs.policy!.properties)).toEqual(["onUnavailable", "resources", "filesystem", "network", "privilege", "env"]);
  });
});

describe("the published schemas validate what cordon accepts", () => {
  // zod writes an address pattern beside `format: ipv4|ipv6`: the pattern is what is checked here.
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  const validators = Object.fromEntries(SCHEMA_NAMES.map((n) => [n, ajv.compile(JSON.parse(readFileSync(join(ROOT, SCHEMA_FILES[n]), "utf8")))]));

  test("every shipped example file names its schema with $schema, follows it, and cordon reads it", () => {
    const examples = readdirSync(join(ROOT, "examples")).filter((f) => f.endsWith(".json"));
    expect(examples.sort()).toEqual(["config.json", "policy.json", "serve.json"]);
    for (const file of examples) {
      const name = file.replace(/\.json$/, "") as SchemaName;
      const data = JSON.parse(readFileSync(join(ROOT, "examples", file), "utf8"));
      expect(data.$schema).toBe(`../${SCHEMA_FILES[name]}`);
      expect(validators[name]!(data), JSON.stringify(validators[name]!.errors)).toBe(true);
    }
    expect(parsePolicyOverride(JSON.parse(readFileSync(join(ROOT, "examples/policy.json"), "utf8")))).not.toHaveProperty("$schema");
    expect(parseConfig(JSON.parse(readFileSync(join(ROOT, "examples/config.json"), "utf8")))).not.toHaveProperty("$schema");
  });

  test("the JSON Schema and zod agree on what a file may hold", () => {
    const cases: [SchemaName, unknown, boolean][] = [
      ["policy", { resources: { wallMs: 5 }, filesystem: { readOnlyBinds: ["/opt/x", { source: "/srv/a", target: "/a" }] } }, true],
      ["policy", { resources: { wallMs: 0 } }, false],
      ["policy", { resources: { wallMs: 1.5 } }, false],
      ["policy", { network: { mode: "everything" } }, false],
      ["policy", { privilege: { seccomp: "yes" } }, false],
      ["policy", { typo: 1 }, false],
      ["policy", { resources: { typo: 1 } }, false],
      ["config", {}, true],
      ["config", { provider: "auto", policy: { env: { set: { A: "b" } } }, staticHosts: { "api.example": ["192.0.2.1"] } }, true],
      ["config", { policy: { $schema: "x" } }, false],
      ["config", { cgroups: "sometimes" }, false],
      ["config", { outputFiles: { maxDepth: 0 } }, false],
      ["config", { staticHosts: { "api.example": ["not an address"] } }, false],
    ];
    for (const [name, data, valid] of cases) {
      const zodOk = (name === "policy" ? PolicyFileSchema : ConfigFileSchema).safeParse(data).success;
      expect([name, data, zodOk]).toEqual([name, data, valid]);
      expect([name, data, validators[name]!(data)]).toEqual([name, data, valid]);
    }
  });
});

describe("cordon schema", () => {
  test("prints each published schema; policy is the default", async () => {
    for (const [args, name] of [[["schema"], "policy"], [["schema", "policy"], "policy"], [["schema", "config"], "config"]] as const) {
      const out = await runCli([...args]);
      expect(out.code).toBe(0);
      expect(out.stdout).toBe(readFileSync(join(ROOT, SCHEMA_FILES[name]), "utf8"));
    }
  });

  test("bad input is refused with 126 and says the usage", async () => {
    for (const args of [["schema", "bogus"], ["schema", "policy", "config"]]) {
      const out = await runCli(args);
      expect(out.code).toBe(126);
      expect(out.stdout).toBe("");
      expect(out.stderr).toContain("usage: cordon schema [policy|config|serve]");
    }
  });
});
