/**
 * The CLI's stdout and stderr written with write(2) on fds 1 and 2, not through
 * `process.stdout`/`process.stderr`: the first touch of those builds Node's stream
 * machinery (~20 ms of a CLI start here, measured against `bun -e 0`), and the CLI only
 * ever writes whole strings and buffers once a command is done. Not `Bun.write(Bun.stdout)`
 * either: to a regular file that writes at offset 0, so `cordon run x > out 2>&1` (or `>>`)
 * would clobber what is there.
 *
 * Synchronous, so everything reaches the fds in the order it was written (the script's
 * output before the summary line) and the file offset (O_APPEND too) is the kernel's. A
 * non-blocking fd that is full (EAGAIN) is waited on; a reader that went away (EPIPE:
 * `cordon run … | head`) ends that fd's output quietly (no stack trace; the exit status
 * stays the run's), where `process.stdout` threw an uncaught EPIPE.
 */
import { writeSync } from "node:fs";

export type Writer = (data: string | Uint8Array) => void;

const pause = new Int32Array(new SharedArrayBuffer(4));

/** A writer for `fd` that writes every byte or, once the reader is gone, nothing more. */
export function fdWriter(fd: number): Writer {
  let broken = false;
  return (data) => {
    if (broken) return;
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    let done = 0;
    while (done < bytes.length) {
      try {
        done += writeSync(fd, bytes, done, bytes.length - done);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EAGAIN") {
          Atomics.wait(pause, 0, 0, 1); // the reader is slow: try again in a millisecond
          continue;
        }
        broken = true; // EPIPE, EBADF, …: nobody reads this fd any more
        return;
      }
    }
  };
}
