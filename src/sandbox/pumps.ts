/**
 * The run's two streams besides stdout and stderr (output.ts): the result channel read
 * under its cap, and stdin forwarded under its cap.
 */
import { closeSync } from "node:fs";
import type { ChannelBytes } from "../protocol/result-channel.ts";
import { readCapped } from "./output.ts";
import type { StdinSource } from "./spec.ts";

/**
 * Read the result channel under its cap. Going over the cap ends the run like an output
 * flood (`onOverflow`): draining a flood would burn the supervisor's CPU, outside the run's
 * cgroup, for the whole wall time.
 */
export async function readChannel(fd: number, cap: number, onOverflow: () => void, stop: AbortSignal): Promise<ChannelBytes> {
  try {
    return await readCapped(Bun.file(fd).stream(), cap, onOverflow, stop);
  } finally {
    closeSync(fd); // Bun does not close an extra stdio fd for us
  }
}

export interface FileSinkLike {
  write(chunk: Uint8Array): number | Promise<number>;
  flush(): number | Promise<number>;
  end(): number | Promise<number>;
}

/**
 * Forward stdin as it arrives, at most `cap` bytes, waiting for the pipe to drain after
 * each chunk: memory stays bounded and a script that never reads stdin still starts at
 * once (it just never drains the pipe). Resolves true when the source had more than `cap`.
 */
export async function pumpStdin(source: StdinSource, sink: FileSinkLike, cap: number, stop: AbortSignal): Promise<boolean> {
  const stream = source instanceof Uint8Array ? new Blob([source]).stream() : source;
  const reader = stream.getReader();
  stop.addEventListener("abort", () => void reader.cancel().catch(() => {}), { once: true });
  let sent = 0;
  let truncated = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || stop.aborted) break;
      const room = cap - sent;
      const chunk = value.length > room ? value.subarray(0, room) : value;
      if (chunk.length > 0) {
        // Awaited, not fired: when the pipe is full write() returns a promise, which rejects
        // with EPIPE once the script closes its stdin. Left alone, that rejection went
        // unhandled in the supervisor (a script could make any library caller log errors,
        // exit 1, or crash under strict rejection handling); here it ends the pump below.
        await sink.write(chunk);
        await sink.flush();
        sent += chunk.length;
      }
      if (value.length > room) {
        truncated = true;
        break;
      }
    }
  } catch {
    // the script closed its stdin (EPIPE) or the run ended: stop forwarding
  } finally {
    void reader.cancel().catch(() => {});
    try {
      await sink.end();
    } catch {
      // already closed
    }
  }
  return truncated;
}
