import { z } from "zod";
import { ConfigValidationError } from "./errors.ts";
import { AbsolutePath, MiB, PolicyOverrideSchema, zodIssues } from "./policy/index.ts";

export const CordonConfigSchema = z.strictObject({
  /** A provider name, or "auto": the first provider in providerOrder that is available and can run the policy. */
  provider: z.string().min(1).default("bwrap"),
  providerOrder: z.array(z.string().min(1)).min(1).default(["bwrap"]),
  /** Applied on top of the shipped default policy. */
  policy: PolicyOverrideSchema.default({}),
  /** Where per-run directories are created (default: $TMPDIR/cordon-runs-<uid>). */
  runRoot: AbsolutePath.optional(),
  maxScriptBytes: z.number().int().min(1).max(64 * MiB).default(1 * MiB),
});

export type CordonConfig = z.output<typeof CordonConfigSchema>;
export type CordonConfigInput = z.input<typeof CordonConfigSchema>;

export function parseConfig(input: unknown): CordonConfig {
  const parsed = CordonConfigSchema.safeParse(input ?? {});
  if (!parsed.success) throw new ConfigValidationError(zodIssues(parsed.error));
  return parsed.data;
}
