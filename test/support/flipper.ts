/** An attacker racing the host-side file walks: two paths swapped in a tight loop. */

/** A process swapping two paths with renameat2(RENAME_EXCHANGE) in a tight loop, until stopped. */
export interface Flipper {
  /** Stop it; resolves to how many swaps succeeded (proof the attack really ran). */
  stop(): Promise<number>;
}

const FLIPPER = `
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
n = 0
while not stop:
    if libc.renameat2(-100, a, -100, b, 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
        n += 1
print(n, flush=True)
`;

/** Start a flipper on `a` and `b` (as `ids` when given: an unprivileged owner of the tree). Missing paths are retried. */
export async function startFlipper(a: string, b: string, ids: { uid: number; gid: number } | null = null): Promise<Flipper> {
  const p = Bun.spawn(["/usr/bin/python3", "-c", FLIPPER, a, b], { stdin: "ignore", stdout: "pipe", stderr: "inherit", env: {}, ...(ids ?? {}) });
  const reader = p.stdout.getReader();
  let out = "";
  while (!out.includes("ready\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`flipper exited before starting: ${out}`);
    out += new TextDecoder().decode(value);
  }
  return {
    async stop() {
      p.kill("SIGTERM");
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        out += new TextDecoder().decode(value);
      }
      await p.exited;
      return Number(out.trim().split("\n").at(-1));
    },
  };
}
