/**
 * Admission: at most `global` runs at once, at most `perToken` running or waiting per token,
 * and a bounded FIFO queue in front with a bounded wait. A request past any bound is a 429
 * with Retry-After at once; nothing queues without limit, so memory stays flat under a flood.
 * A request whose body is still being read waits too (see `hold`): it counts against its
 * token, and at most `global + queueMax` bodies are read at once.
 */
import { ServeError } from "./http-error.ts";

export interface AdmissionLimits {
  global: number;
  perToken: number;
  queueMax: number;
  maxWaitMs: number;
}

interface Waiter {
  token: string;
  admit: () => void;
  refuse: (e: Error) => void;
}

/** Retry-After (s): a slot frees within a run's time; clients should not hammer. */
const RETRY_AFTER_SECONDS = 1;

const busy = (why: string) => new ServeError(429, "busy", why, { retryAfterSeconds: RETRY_AFTER_SECONDS });
const tokenBusy = (held: number) => busy(`this token already has ${held} runs under way or waiting (serve.concurrency.perToken)`);

export class Admission {
  private running = 0;
  /** Requests whose body is being read (each holds a share of its token, see `hold`). */
  private reading = 0;
  private readonly queue: Waiter[] = [];
  private readonly perToken = new Map<string, number>();

  constructor(private readonly limits: AdmissionLimits) {}

  get inFlight(): number {
    return this.running;
  }

  get queued(): number {
    return this.queue.length;
  }

  /**
   * Wait for a run slot; resolves with the function that gives it back (call it exactly once).
   * Throws a 429 ServeError past a bound, or `signal`'s reason when the client went away while waiting.
   */
  async enter(token: string, signal?: AbortSignal): Promise<() => void> {
    const held = this.perToken.get(token) ?? 0;
    if (held >= this.limits.perToken) throw tokenBusy(held);
    if (this.running < this.limits.global && this.queue.length === 0) return this.admitted(token);
    if (this.queue.length >= this.limits.queueMax) throw busy(`${this.running} runs under way and ${this.queue.length} waiting (serve.queue.max)`);
    this.perToken.set(token, held + 1); // a waiting request counts against its token too
    try {
      await new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          token,
          admit: () => {
            done();
            resolve();
          },
          refuse: (e) => {
            done();
            reject(e);
          },
        };
        const timer = setTimeout(() => waiter.refuse(busy(`no run slot within ${this.limits.maxWaitMs} ms (serve.queue.maxWaitMs)`)), this.limits.maxWaitMs);
        const onAbort = () => waiter.refuse(signal?.reason instanceof Error ? signal.reason : new Error("the client went away"));
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          const i = this.queue.indexOf(waiter);
          if (i >= 0) this.queue.splice(i, 1);
        };
        if (signal?.aborted) return onAbort();
        signal?.addEventListener("abort", onAbort, { once: true });
        this.queue.push(waiter);
      });
    } finally {
      this.release(token);
    }
    // The slot was handed over by the run that gave it back (running was not decremented):
    // nobody arriving in between can take it.
    return this.admitted(token, true);
  }

  /**
   * Count a request against its token, and against the bound of bodies read at once, while
   * its body is read (before `enter`): a 429 past either. Why: a body is held whole (up to
   * caps.bodyBytes) before admission sees it; uncounted, one token could have any number
   * read at once (32 MiB each by default) and take the host's memory with 429s still to come.
   * Resolves nothing: returns the function that gives the share back (idempotent); call it
   * right before `enter`, with nothing awaited in between.
   */
  hold(token: string): () => void {
    const held = this.perToken.get(token) ?? 0;
    if (held >= this.limits.perToken) throw tokenBusy(held);
    const most = this.limits.global + this.limits.queueMax;
    if (this.reading >= most) throw busy(`${this.reading} request bodies are being read (at most serve.concurrency.global + serve.queue.max at once)`);
    this.reading++;
    this.perToken.set(token, held + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.reading--;
      this.release(token);
    };
  }

  /** Refuse everyone waiting (shutdown). */
  refuseWaiting(error: Error): void {
    for (const w of [...this.queue]) w.refuse(error);
  }

  private admitted(token: string, handedOver = false): () => void {
    if (!handedOver) this.running++;
    this.perToken.set(token, (this.perToken.get(token) ?? 0) + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.release(token);
      const next = this.queue[0]; // FIFO: the longest waiter takes the slot itself
      if (next) next.admit();
      else this.running--;
    };
  }

  private release(token: string): void {
    const n = (this.perToken.get(token) ?? 1) - 1;
    if (n <= 0) this.perToken.delete(token);
    else this.perToken.set(token, n);
  }
}
