/** Read a request body up to a cap: a declared or streamed body past it is a 413 before it is held whole. */
import { tooLarge } from "./http-error.ts";

export async function readCappedBody(request: Request, cap: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > cap) throw tooLarge("the request body", declared, cap);
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > cap) throw tooLarge("the request body", size, cap);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
