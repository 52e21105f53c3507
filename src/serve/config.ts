/**
 * The service's own settings: the `serve` key of a config file (everything else in the file is
 * the cordon config every run uses). Validated like the rest, every field documented.
 */
import { z } from "zod";
import { ConfigFileSchema } from "../config.ts";
import { ConfigValidationError, zodIssues } from "../errors.ts";
import { MiB } from "../policy/index.ts";

const doc = (description: string) => ({ description });
const count = (min: number, max: number, fallback: number, description: string) => z.number().int().min(min).max(max).default(fallback).meta(doc(description));

/** `HOST:PORT` or `[IPv6]:PORT`; port 0 picks a free one. */
export const ListenAddress = z
  .string()
  .max(300)
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { error: "expected HOST:PORT or [IPv6]:PORT" })
  .refine((a) => Number(a.slice(a.lastIndexOf(":") + 1)) <= 65_535, { error: "the port must be at most 65535" });

export const ServeSchema = z.strictObject({
  listen: ListenAddress.default("127.0.0.1:8080").meta(doc("where the service listens, `HOST:PORT` (`--listen` wins); port 0 picks a free one")),
  concurrency: z
    .strictObject({
      global: count(1, 1024, 8, "runs at once, all clients together; more wait in the queue"),
      perToken: count(1, 1024, 8, "requests of one token under way, waiting for a slot or uploading their body; past it: 429"),
    })
    .default({ global: 8, perToken: 8 }),
  queue: z
    .strictObject({
      max: count(0, 100_000, 64, "requests waiting for a free run slot; past it: 429 with Retry-After"),
      maxWaitMs: count(1, 600_000, 30_000, "how long a request may wait in the queue; past it: 429 with Retry-After"),
    })
    .default({ max: 64, maxWaitMs: 30_000 }),
  caps: z
    .strictObject({
      bodyBytes: count(1024, 1024 * MiB, 32 * MiB, "the largest request body; past it: 413"),
      stdinBytes: count(0, 1024 * MiB, 16 * MiB, "the largest stdin a request carries; past it: 413 (a run reads at most the policy's resources.maxStdinBytes)"),
    })
    .default({ bodyBytes: 32 * MiB, stdinBytes: 16 * MiB }),
  providers: z
    .array(z.string().min(1).max(128))
    .max(16)
    .default([])
    .meta(doc("providers a request may name besides the configured one (never implied: `unsafe` only when listed)")),
  drainMs: count(0, 3_600_000, 30_000, "on SIGTERM, how long runs under way may finish before they are killed"),
});

export type ServeSettings = z.output<typeof ServeSchema>;

/** A config file for `cordon serve`: a cordon config plus `serve`. */
export const ServeFileSchema = ConfigFileSchema.extend({ serve: ServeSchema.default(ServeSchema.parse({})) });

/** The warm pool the service runs from when the config does not size one. */
export const SERVE_DEFAULT_POOL = { size: 2 } as const;

/** Split a serve config file into the service's settings and the cordon config; throws ConfigValidationError. */
export function parseServeFile(input: unknown): { serve: ServeSettings; config: Record<string, unknown> } {
  const parsed = ServeFileSchema.safeParse(input ?? {});
  if (!parsed.success) throw new ConfigValidationError(zodIssues(parsed.error));
  const { serve: _settings, ...rest } = (input ?? {}) as Record<string, unknown>;
  // The cordon config as written (Cordon validates it again and applies its defaults), with a pool unless one was sized.
  const config = "pool" in rest ? rest : { ...rest, pool: SERVE_DEFAULT_POOL };
  return { serve: parsed.data.serve, config };
}
