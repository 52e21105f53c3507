/**
 * The HTTP API's bodies as zod schemas: what POST /v1/runs accepts (mirroring the library's
 * RunRequest, with bytes as base64) and what it answers. The same schemas validate requests
 * and generate the OpenAPI document (openapi.ts), so the two cannot disagree.
 *
 * Deliberately absent from the request: `script.file` and `scriptFileAccess` (a client never
 * names a file on the server), `options` (runner internals). Every object is strict: an
 * unknown field is a 400 naming it, never silently ignored.
 */
import { z } from "zod";
import { EnvName, EnvValue, PolicyOverrideSchema } from "../policy/index.ts";

const doc = (description: string) => ({ description });
const Name = z.string().min(1).max(128).regex(/^[\w.:-]+$/, { error: "must be a plain name (letters, digits, _ . : -)" });
const Base64 = z.base64({ error: "must be standard base64" });
const ScriptName = z.string().min(1).max(255).meta(doc("the script's file name inside the sandbox (runners pick an extension from it)"));

export const RunBodySchema = z
  .strictObject({
    runner: Name.optional().meta(doc("`shell`, `python`, `esm`; inferred from `script.name`'s extension when absent")),
    script: z
      .union([
        z.strictObject({ source: z.string().meta(doc("the script's text")), name: ScriptName.optional() }),
        z.strictObject({ base64: Base64.meta(doc("the script's bytes")), name: ScriptName.optional() }),
      ])
      .meta(doc("the script: its text, or its bytes in base64")),
    args: z.array(z.string()).max(4096).default([]).meta(doc("the script's arguments")),
    stdin: z
      .union([z.string(), z.strictObject({ base64: Base64 })])
      .optional()
      .meta(doc("the script's standard input: text, or bytes in base64; none: end of file at once")),
    env: z.record(EnvName, EnvValue).optional().meta(doc("variables set for the script")),
    secretEnv: z.record(EnvName, EnvValue).optional().meta(doc("variables set for the script whose values are masked as **** in everything returned (each at least 8 bytes)")),
    files: z
      .array(z.strictObject({ path: z.string().min(1).max(1024), base64: Base64, executable: z.boolean().optional() }))
      .max(100_000)
      .optional()
      .meta(doc("files staged into the script's working directory (scratch) before the run")),
    policy: PolicyOverrideSchema.optional().meta(doc("tightens the operator's policy; a field that would loosen it past the operator's ceiling is a 400 naming it")),
    provider: Name.optional().meta(doc("a provider the operator allows (`serve.providers`); the configured one when absent")),
    verify: z.boolean().optional().meta(doc("carry a receipt of what the sandboxed process itself saw")),
  })
  .meta({ title: "RunRequest" });

export type RunBody = z.output<typeof RunBodySchema>;

const FieldIssueSchema = z.strictObject({ path: z.string(), message: z.string() });

export const ErrorBodySchema = z
  .strictObject({
    requestId: z.string(),
    error: z.strictObject({
      code: z.string().meta(doc("`unauthorized`, `forbidden`, `bad-request`, `too-large`, `busy`, `shutting-down`, `not-found`, or a cordon error code")),
      message: z.string(),
      fields: z.array(FieldIssueSchema).optional(),
    }),
  })
  .meta({ title: "Error" });

const OutputFileSchema = z.object({ path: z.string(), size: z.number(), contentBase64: z.string() }).loose();

/** The RunResult as JSON: text streams, output files in base64, the effective-sandbox report. Open: the report has many fields. */
export const RunResultBodySchema = z
  .object({
    requestId: z.string().meta(doc("this request's id, also in the `x-request-id` header and the service's log line")),
    outcome: z.enum(["ok", "exit-nonzero", "timeout", "killed", "limit", "refused", "error"]),
    limitHit: z.enum(["wall", "cpu", "memory", "pids", "fsize", "output"]).nullable(),
    exitCode: z.number().nullable(),
    signal: z.string().nullable(),
    stdout: z.string(),
    stderr: z.string(),
    stdoutBase64: z.string().optional().meta(doc("stdout's exact bytes, when they are not valid UTF-8")),
    stderrBase64: z.string().optional(),
    stdoutTruncated: z.boolean(),
    stderrTruncated: z.boolean(),
    durationMs: z.number(),
    sandbox: z.record(z.string(), z.unknown()).nullable().meta(doc("the effective-sandbox report: what was asked, enforced, degraded and why")),
    error: z.object({ code: z.string(), message: z.string() }).loose().nullable(),
    files: z.array(OutputFileSchema),
    filesOmitted: z.array(z.object({ path: z.string(), reason: z.string() }).loose()),
  })
  .loose()
  .meta({ title: "RunResult" });
