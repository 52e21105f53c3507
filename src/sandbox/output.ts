import { longestSecretBytes, maskCapped } from "../secrets.ts";

/**
 * Reads a stream keeping at most `cap` bytes; calls onOverflow once when more arrives.
 * Memory stays bounded. With `secrets`, what is kept is masked across the cut: the reader
 * holds back the longest secret's length − 1 bytes past the cap (so a secret that starts
 * before the cap is whole), masks, then cuts to `cap` (see maskCapped).
 */
export async function readCapped(
  stream: ReadableStream<Uint8Array>,
  cap: number,
  onOverflow: () => void,
  stop?: AbortSignal,
  secrets: readonly string[] = [],
): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const holdback = secrets.length > 0 ? Math.max(0, longestSecretBytes(secrets) - 1) : 0;
  const keep = cap + holdback;
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  const reader = stream.getReader();
  stop?.addEventListener("abort", () => void reader.cancel().catch(() => {}), { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const room = keep - size; // 0: drain until the killed tree closes the pipe
      if (room > 0) {
        const chunk = value.length > room ? value.subarray(0, room) : value;
        chunks.push(chunk);
        size += chunk.length;
      }
      if (!truncated && (size > cap || value.length > room)) {
        truncated = true;
        onOverflow();
      }
    }
  } catch {
    // cancelled after the run ended (a descendant that escaped kept the pipe open)
  } finally {
    reader.releaseLock();
  }
  const window = Buffer.concat(chunks);
  return { bytes: secrets.length > 0 ? maskCapped(window, cap, truncated, secrets) : window.subarray(0, cap), truncated };
}
