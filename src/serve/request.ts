/**
 * A POST /v1/runs body, from bytes to the library's RunRequest: parsed against the API schema
 * (400 naming each bad field), every byte cap checked before anything is staged (413 naming
 * the cap), the policy override held to the operator's ceiling (ceiling.ts). Spawns nothing.
 */
import type { RunRequest } from "../cordon.ts";
import type { CordonConfig } from "../config.ts";
import { zodIssues } from "../errors.ts";
import type { InputFile } from "../files/input.ts";
import type { Policy } from "../policy/index.ts";
import { RunBodySchema, type RunBody } from "./api.ts";
import { loosenedFields } from "./ceiling.ts";
import type { ServeSettings } from "./config.ts";
import { ServeError, tooLarge } from "./http-error.ts";

export interface RequestLimits {
  serve: ServeSettings;
  config: CordonConfig;
  /** The operator's policy: what a request may tighten, never loosen. */
  ceiling: Policy;
  /** The configured provider (a request may name it, or one of serve.providers). */
  provider: string;
}

const fromBase64 = (text: string) => new Uint8Array(Buffer.from(text, "base64"));

export function parseRunBody(bytes: Uint8Array): RunBody {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new ServeError(400, "bad-request", `the body is not UTF-8 JSON: ${(e as Error).message}`);
  }
  const parsed = RunBodySchema.safeParse(json);
  if (!parsed.success) {
    const fields = zodIssues(parsed.error);
    throw new ServeError(400, "bad-request", `invalid run request: ${fields.map((f) => `${f.path || "(body)"}: ${f.message}`).join("; ")}`, { fields });
  }
  return parsed.data;
}

/** The library request for a parsed body; throws ServeError 413 (a cap) or 400 (provider, policy loosening). */
export function toRunRequest(body: RunBody, limits: RequestLimits): RunRequest {
  const { serve, config } = limits;
  const script = "source" in body.script ? body.script : { source: "", name: body.script.name };
  let scriptBytes = "source" in body.script ? Buffer.byteLength(body.script.source) : 0;
  let decodedScript: Uint8Array | null = null;
  if ("base64" in body.script) {
    decodedScript = fromBase64(body.script.base64);
    scriptBytes = decodedScript.length;
  }
  if (scriptBytes > config.maxScriptBytes) throw tooLarge("the script", scriptBytes, config.maxScriptBytes);

  const stdin = body.stdin === undefined ? undefined : typeof body.stdin === "string" ? new TextEncoder().encode(body.stdin) : fromBase64(body.stdin.base64);
  if (stdin && stdin.length > serve.caps.stdinBytes) throw tooLarge("stdin", stdin.length, serve.caps.stdinBytes);

  const files = body.files?.map((f): InputFile => ({ path: f.path, content: fromBase64(f.base64), ...(f.executable ? { executable: true } : {}) }));
  if (files && files.length > config.inputFiles.maxCount) throw new ServeError(413, "too-large", `${files.length} files, over the cap of ${config.inputFiles.maxCount} (inputFiles.maxCount)`);
  const fileBytes = files?.reduce((n, f) => n + (f.content as Uint8Array).length, 0) ?? 0;
  if (fileBytes > config.inputFiles.maxTotalBytes) throw tooLarge("the files", fileBytes, config.inputFiles.maxTotalBytes);

  if (body.provider !== undefined && body.provider !== limits.provider && !serve.providers.includes(body.provider)) {
    throw new ServeError(400, "bad-request", `provider: "${body.provider}" is not allowed here (the configured provider is ${limits.provider}; the operator allows ${serve.providers.length ? serve.providers.join(", ") : "no other"})`, {
      fields: [{ path: "provider", message: "not allowed by the operator (serve.providers)" }],
    });
  }
  const loosened = body.policy ? loosenedFields(limits.ceiling, body.policy) : [];
  if (loosened.length > 0) {
    const fields = loosened.map((f) => ({ path: `policy.${f.path}`, message: f.message }));
    throw new ServeError(400, "bad-request", `the policy override loosens the operator's policy: ${fields.map((f) => `${f.path}: ${f.message}`).join("; ")}`, { fields });
  }

  return {
    // A base64 script is staged as its exact bytes.
    script: decodedScript ? { source: decodedScript, ...(script.name ? { name: script.name } : {}) } : script,
    args: body.args,
    ...(body.runner ? { runner: body.runner } : {}),
    ...(stdin ? { stdin } : {}),
    ...(body.env ? { env: body.env } : {}),
    ...(body.secretEnv ? { secretEnv: body.secretEnv } : {}),
    ...(files ? { files } : {}),
    ...(body.policy ? { policy: body.policy } : {}),
    ...(body.provider ? { provider: body.provider } : {}),
    ...(body.verify ? { verify: true } : {}),
  };
}
