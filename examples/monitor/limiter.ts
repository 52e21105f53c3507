/**
 * At most `max` runs at once, whatever the number of checks: a run past the limit waits
 * (first come, first served) for a slot. The same bound `cordon serve` puts on its runs
 * (serve.concurrency.global), so a monitor on a small host never starts more sandboxes
 * at once than its cores can build.
 */
export class Limiter {
  private running = 0;
  private peak = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`concurrency must be a whole number ≥ 1, got ${max}`);
  }

  /** Runs at once right now. */
  get inFlight(): number {
    return this.running;
  }

  /** Runs waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** The most runs ever at once. */
  get maxInFlight(): number {
    return this.peak;
  }

  /** Run `fn` once a slot is free; the slot is given back however `fn` ends. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    this.peak = Math.max(this.peak, this.running);
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter: `running` stays the same.
      if (next) next();
      else this.running--;
    }
  }
}
