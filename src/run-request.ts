/**
 * The strings of a RunRequest, checked before anything is planned: clear, field-named
 * errors for NUL bytes, bad variable names and absurd sizes. The launcher choke point
 * (sandbox/launcher-input.ts) still checks the rendered plan whatever passes here.
 */
import { z } from "zod";
import { describeIssues, JobInputError, zodIssues } from "./errors.ts";
import { EnvName, EnvValue, KiB } from "./policy/index.ts";

const noNul = (s: string) => !s.includes("\0");
const Arg = z.string().max(128 * KiB).refine(noNul, { error: "must not contain NUL bytes" });
const Name = z.string().min(1).max(128).regex(/^[\w.:-]+$/, { error: "must be a plain name (letters, digits, _ . : -)" });

const RunRequestStrings = z.object({
  script: z.union([
    z.object({ file: z.string().min(1).max(4096).refine(noNul, { error: "must not contain NUL bytes" }) }),
    z.object({
      source: z.union([z.string(), z.instanceof(Uint8Array)]),
      name: z.string().min(1).max(255).regex(/^[^/\u0000-\u001f\u007f]+$/, { error: "must be a file name without '/' or control characters" }).optional(),
    }),
  ]),
  args: z.array(Arg).max(4096),
  env: z.record(EnvName, EnvValue).optional(),
  secretEnv: z.record(EnvName, EnvValue).optional(),
  runner: Name.optional(),
  provider: Name.optional(),
  verify: z.boolean().optional(),
  scriptFileAccess: z.enum(["sandbox", "caller"]).optional(),
});

/** Throws JobInputError naming every offending field; spawns and creates nothing. */
export function checkRunRequest(request: unknown): void {
  const parsed = RunRequestStrings.safeParse(request);
  if (!parsed.success) throw new JobInputError(`invalid run request: ${describeIssues(zodIssues(parsed.error))}`);
}
