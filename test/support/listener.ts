/** A TCP listener on the host that counts the connections it accepts. */
export interface CountingListener {
  port: number;
  hits(): number;
  stop(): void;
}

export function countingListener(hostname = "127.0.0.1"): CountingListener {
  let hits = 0;
  const listener = Bun.listen({
    hostname,
    port: 0,
    socket: {
      open: () => void hits++,
      data: () => {},
    },
  });
  return { port: listener.port, hits: () => hits, stop: () => listener.stop(true) };
}
