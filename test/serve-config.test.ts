/**
 * The `serve` key of a config file: validated like the rest (unknown keys, bad addresses and
 * absurd numbers refused, naming the field), documented in the README's Service table, and
 * the shipped example parses.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigValidationError } from "../src/api/index.ts";
import { parseServeFile, ServeSchema } from "../src/serve/config.ts";

const root = join(import.meta.dir, "..");

function leafPaths(shape: Record<string, unknown>, prefix: string): string[] {
  return Object.entries(shape).flatMap(([key, value]) => {
    let inner = value as { def?: { innerType?: unknown; shape?: Record<string, unknown> }; shape?: Record<string, unknown> };
    while (inner.def?.innerType) inner = inner.def.innerType as typeof inner;
    return inner.shape ? leafPaths(inner.shape, `${prefix}${key}.`) : [`${prefix}${key}`];
  });
}

describe("serve settings", () => {
  test("the shipped example parses, and its cordon config keeps its pool", () => {
    const { serve, config } = parseServeFile(JSON.parse(readFileSync(join(root, "examples/serve.json"), "utf8")));
    expect(serve.concurrency).toEqual({ global: 8, perToken: 4 });
    expect(config.pool).toEqual({ size: 2 });
    expect("serve" in config).toBe(false);
  });

  test("a config without a pool gets the service's default pool; defaults fill the rest", () => {
    const { serve, config } = parseServeFile({});
    expect(config.pool).toEqual({ size: 2 });
    expect(serve).toMatchObject({ listen: "127.0.0.1:8080", concurrency: { global: 8, perToken: 8 }, queue: { max: 64 }, providers: [] });
  });

  test("bad settings are refused naming the field", () => {
    const bad: [unknown, string][] = [
      [{ serve: { listen: "0.0.0.0" } }, "serve.listen"],
      [{ serve: { listen: "127.0.0.1:70000" } }, "serve.listen"],
      [{ serve: { concurrency: { global: 0 } } }, "serve.concurrency.global"],
      [{ serve: { queue: { maxWaitMs: -1 } } }, "serve.queue.maxWaitMs"],
      [{ serve: { tokens: ["x"] } }, "serve"],
      [{ serve: { caps: { bodyBytes: 1 } } }, "serve.caps.bodyBytes"],
      [{ pool: { size: -1 } }, "pool.size"],
    ];
    for (const [input, field] of bad) {
      let error: unknown;
      try {
        parseServeFile(input);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigValidationError);
      expect((error as Error).message).toContain(field);
    }
  });

  test("every setting is in the README's Service table", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Service (`cordon serve`)"), readme.indexOf("## Embedding in a checkstack backend"));
    const settings = leafPaths(ServeSchema.shape as Record<string, unknown>, "serve.");
    expect(settings.length).toBeGreaterThanOrEqual(9);
    for (const s of settings) expect({ s, documented: section.includes(`| \`${s}\` |`) }).toEqual({ s, documented: true });
  });
});
