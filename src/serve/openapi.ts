/** The OpenAPI 3.1 document of the service, generated from the zod schemas that validate its bodies (api.ts). */
import { z } from "zod";
import { ErrorBodySchema, RunBodySchema, RunResultBodySchema } from "./api.ts";

const schema = (s: z.ZodType, io: "input" | "output") => z.toJSONSchema(s, { io, target: "draft-2020-12", unrepresentable: "any" });

const errorResponse = (description: string, headers?: Record<string, unknown>) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});

export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: "3.1.0",
    info: { title: "cordon serve", version, description: "Runs untrusted scripts in real Linux sandboxes; every result carries the effective-sandbox report." },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: { RunRequest: schema(RunBodySchema, "input"), RunResult: schema(RunResultBodySchema, "output"), Error: schema(ErrorBodySchema, "output") },
    },
    paths: {
      "/v1/runs": {
        post: {
          summary: "Run a script in a sandbox and return its result",
          security: [{ bearer: [] }],
          requestBody: { required: true, content: { "application/json": { schema: { $ref: "#/components/schemas/RunRequest" } } } },
          responses: {
            "200": { description: "the run's result (a script's own failure, a limit or a refusal is a result too)", content: { "application/json": { schema: { $ref: "#/components/schemas/RunResult" } } } },
            "400": errorResponse("a bad field, or a policy override that loosens the operator's policy (the field is named)"),
            "401": errorResponse("no or a wrong bearer token"),
            "403": errorResponse("without tokens (--insecure-loopback): a Host or Origin that is not loopback (a web page, or DNS rebinding)"),
            "413": errorResponse("the body, script, stdin or files are over a cap"),
            "429": errorResponse("too many runs under way or waiting", { "Retry-After": { schema: { type: "integer" }, description: "seconds" } }),
            "503": errorResponse("the service is shutting down"),
          },
        },
      },
      "/v1/readiness": {
        get: {
          summary: "What this host enforces, and whether the configured policy can run",
          responses: { "200": { description: "ready" }, "503": { description: "the configured policy cannot run here (or readiness is not proven yet, or shutting down)" } },
        },
      },
      "/healthz": { get: { summary: "The process answers", responses: { "200": { description: "ok" } } } },
      "/metrics": { get: { summary: "Prometheus metrics", responses: { "200": { description: "text exposition format", content: { "text/plain": {} } } } } },
      "/v1/openapi.json": { get: { summary: "This document", responses: { "200": { description: "OpenAPI 3.1" } } } },
    },
  };
}
