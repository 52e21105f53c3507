/** Reads a stream keeping at most `cap` bytes; calls onOverflow once when more arrives. Memory stays bounded. */
export async function readCapped(
  stream: ReadableStream<Uint8Array>,
  cap: number,
  onOverflow: () => void,
  stop?: AbortSignal,
): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  const reader = stream.getReader();
  stop?.addEventListener("abort", () => void reader.cancel().catch(() => {}), { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (truncated) continue; // drain until the killed tree closes the pipe
      const room = cap - size;
      if (value.length > room) {
        chunks.push(value.subarray(0, room));
        size = cap;
        truncated = true;
        onOverflow();
      } else {
        chunks.push(value);
        size += value.length;
      }
    }
  } catch {
    // cancelled after the run ended (a descendant that escaped kept the pipe open)
  } finally {
    reader.releaseLock();
  }
  return { bytes: Buffer.concat(chunks), truncated };
}
