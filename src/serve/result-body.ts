/** A RunResult as the API returns it: the library's JSON form, output files always in base64, the request id. */
import { runResultToJson, type RunResult } from "../result.ts";

export function runResultBody(result: RunResult, requestId: string): Record<string, unknown> {
  const json = runResultToJson({ ...result, files: [] });
  return {
    requestId,
    ...json,
    files: result.files.map(({ content, ...file }) => ({ ...file, contentBase64: Buffer.from(content).toString("base64") })),
  };
}
