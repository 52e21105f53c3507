/**
 * A POST /v1/runs body, from bytes to the library's RunRequest: parsed against the API schema
 * (400 naming each bad field), every byte cap checked before anything is staged (413 naming
 * the cap), the policy override held to the operator's ceiling (ceiling.ts). Spawns nothing.
 */
import type { RunRequest } from "../cordon.ts";
import type { CordonConfig } from "../config.ts";
import { PolicyValidationError, zodIssues, type FieldIssue } from "../errors.ts";
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

/**
 * How many JSON values (strings, and each `,` `[` `{`) a run body may hold: room for every
 * field at its schema's bound (4096 args, a thousand variables in each map, the policy's
 * lists) and for inputFiles.maxCount files. Why: the byte cap alone let a 30 MB body carry
 * two million variables, and parsing, validating and planning those held the event loop for
 * tens of seconds and took gigabytes, for every client of the service.
 */
export function maxJsonValues(config: Pick<CordonConfig, "inputFiles">): number {
  return 32_768 + 12 * config.inputFiles.maxCount;
}

/** The JSON values in `bytes` (see maxJsonValues), counted up to just past `most` without parsing. */
function jsonValuesOver(bytes: Uint8Array, most: number): number | null {
  let n = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next byte
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      n++;
    } else if (c === 0x2c || c === 0x5b || c === 0x7b) n++;
    if (n > most) return n;
  }
  return null;
}

export function parseRunBody(bytes: Uint8Array, maxValues = Number.POSITIVE_INFINITY): RunBody {
  if (jsonValuesOver(bytes, maxValues) !== null) {
    throw new ServeError(413, "too-large", `the request body holds more than ${maxValues} JSON values, over the cap (a run request needs far fewer; inputFiles.maxCount raises it)`);
  }
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

/** The fields where the override loosens the ceiling; an override that makes the whole policy invalid is a 400 too, naming its fields. */
function policyIssues(ceiling: Policy, policy: NonNullable<RunBody["policy"]>): FieldIssue[] {
  try {
    return loosenedFields(ceiling, policy);
  } catch (e) {
    // e.g. network.allow under the operator's mode "deny": valid alone, invalid merged. Was a 500.
    if (e instanceof PolicyValidationError) return e.issues.map((i) => ({ path: i.path, message: i.message }));
    throw e;
  }
}

/** The library request for a parsed body; throws ServeError 413 (a cap) or 400 (provider, policy loosening). */
export function toRunRequest(body: RunBody, limits: RequestLimits): RunRequest {
  const { serve, config } = limits;
  // A base64 script is its exact bytes (any encoding); text is counted as UTF-8.
  const { name } = body.script;
  const script = "source" in body.script ? body.script : { source: fromBase64(body.script.base64), ...(name ? { name } : {}) };
  const scriptBytes = typeof script.source === "string" ? Buffer.byteLength(script.source) : script.source.length;
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
  const loosened = body.policy ? policyIssues(limits.ceiling, body.policy) : [];
  if (loosened.length > 0) {
    const fields = loosened.map((f) => ({ path: `policy.${f.path}`, message: f.message }));
    throw new ServeError(400, "bad-request", `the policy override loosens the operator's policy (or is invalid on top of it): ${fields.map((f) => `${f.path}: ${f.message}`).join("; ")}`, { fields });
  }

  return {
    script,
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
