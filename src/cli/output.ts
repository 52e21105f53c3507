/**
 * The CLI's stdout and stderr as Bun files, not `process.stdout`/`process.stderr`: the first
 * touch of those builds Node's stream machinery (~20 ms of a CLI start here, measured
 * against `bun -e 0`), and the CLI only ever writes whole strings and buffers.
 *
 * Each fd's writes are chained, so they reach it in the order they were made; the process
 * stays alive until the last one finished (a pending write keeps the event loop busy). A
 * reader that went away (EPIPE: `cordon run … | head`) ends that fd's output quietly, as
 * Node's streams do for a CLI.
 */
export type Writer = (data: string | Uint8Array) => void;

export function fdWriter(file: ReturnType<typeof Bun.file>): Writer {
  let last: Promise<unknown> = Promise.resolve();
  let broken = false;
  return (data) => {
    if (broken) return;
    last = last.then(() => (broken ? 0 : Bun.write(file, data))).catch(() => {
      broken = true;
    });
  };
}
