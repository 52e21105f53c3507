/**
 * The warm pool: per shape (provider, runner, policy), up to `size` sandboxes started ahead,
 * each waiting for exactly one run. A run takes an idle one or, when there is none, starts
 * cold at once (the pool never makes a run wait); every take starts a replacement in the
 * background. A shape is kept warm only while it is used: an idle sandbox older than
 * `idleMs` is destroyed and not replaced. A sandbox that dies while idle is removed and
 * replaced. Idle sandboxes together stay under `memoryBytes`, and with the ones runs have
 * taken hold at most half the identity pool, so cold runs always find host identities.
 */
import { NotPoolableError, WarmSandbox, type WarmShape } from "./warm-sandbox.ts";

/** How long after a take its replacement starts (see take). */
const REFILL_DELAY_MS = 15;

export interface PoolConfig {
  /** Sandboxes kept ready per shape; 0 turns the pool off. */
  size: number;
  /** An idle sandbox is destroyed after this long (and its shape no longer kept warm). */
  idleMs: number;
  /** What idle sandboxes may hold in memory together; past it no more are started. */
  memoryBytes: number;
}

/** What the pool says about a shape: why its runs start cold, and its counters. */
export interface PoolStats {
  idle: number;
  starting: number;
  hits: number;
  misses: number;
  /** Sandboxes that died while idle (each was replaced). */
  diedIdle: number;
  /** Shapes the pool remembers (kept warm, or holding a sandbox); a shape nobody uses is forgotten. */
  shapes: number;
  /** Why a shape is not pooled, by key (its runs all start cold). */
  notPoolable: Record<string, string>;
  /** The last error a start gave, if any. */
  lastStartError: string | null;
}

/** Shapes remembered at most (those holding no sandbox are forgotten first, least recently taken first). */
const MAX_SHAPES = 256;
/** Keys whose shape cannot be pooled, remembered at most. */
const MAX_NOT_POOLABLE = 256;

interface ShapeState {
  shape: WarmShape;
  /** A run took (or tried to take) one since the shape last expired: keep it filled. */
  wanted: boolean;
  /** When a run last took (or tried to take) one (performance.now()). */
  takenMs: number;
  idle: WarmSandbox[];
  starting: number;
  timers: Map<WarmSandbox, ReturnType<typeof setTimeout>>;
}

export class WarmPool {
  private readonly shapes = new Map<string, ShapeState>();
  private readonly notPoolable = new Map<string, string>();
  private readonly pending = new Set<Promise<void>>();
  private closed = false;
  private counters = { hits: 0, misses: 0, diedIdle: 0 };
  /** Sandboxes taken by runs and not yet destroyed: they hold identities too. */
  private readonly inFlight = new Set<WarmSandbox>();
  private lastStartError: string | null = null;

  constructor(
    readonly config: PoolConfig,
    /** The most host identities pooled sandboxes may hold together. */
    private readonly maxIdentities: number,
  ) {}

  /**
   * An idle sandbox of this shape for one run, or null (the run starts cold). Either way
   * the shape is kept warm from now on: a replacement starts in the background.
   */
  take(shape: WarmShape): WarmSandbox | null {
    if (this.closed || this.config.size === 0 || this.notPoolable.has(shape.key)) return null;
    const state = this.stateOf(shape);
    state.wanted = true;
    let sandbox: WarmSandbox | null = null;
    while (state.idle.length && !sandbox) {
      const candidate = state.idle.shift()!;
      this.stopIdleTimer(state, candidate);
      if (candidate.claim()) sandbox = candidate;
      else this.track(candidate.dispose());
    }
    if (sandbox) {
      this.inFlight.add(sandbox);
      void sandbox.ended.then(() => this.inFlight.delete(sandbox)); // close() waits for these too
    } else {
      this.counters.misses++;
    }
    // The replacement starts a moment later: its synchronous steps (the run directory, the
    // cgroup, the spawn) share this event loop with the run that was just handed a sandbox,
    // and would otherwise sit in the middle of that run's hand-over.
    this.track(Bun.sleep(REFILL_DELAY_MS).then(() => this.refill(state)));
    return sandbox;
  }

  /** A taken sandbox was handed its run (a hit), or was not and the run started cold (a miss). */
  counted(handedOver: boolean): void {
    if (handedOver) this.counters.hits++;
    else this.counters.misses++;
  }

  /** Why runs of this key start cold, if the pool found it cannot hold them. */
  whyNotPooled(key: string): string | null {
    return this.notPoolable.get(key) ?? null;
  }

  stats(): PoolStats {
    let idle = 0;
    let starting = 0;
    for (const s of this.shapes.values()) {
      idle += s.idle.length;
      starting += s.starting;
    }
    return { idle, starting, ...this.counters, shapes: this.shapes.size, notPoolable: Object.fromEntries(this.notPoolable), lastStartError: this.lastStartError };
  }

  /** Wait until every start and removal under way has ended (tests, benchmarks); runs in flight are not waited for. */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  /**
   * Destroy every idle sandbox and keep no shape warm until a run takes one again (the pool
   * stays open); resolves once nothing of them is left.
   */
  async drain(): Promise<void> {
    await this.settled();
    for (const state of this.shapes.values()) {
      state.wanted = false;
      for (const sandbox of [...state.idle]) this.retire(state, sandbox, false);
      this.forgetIfUnused(state);
    }
    await this.settled();
  }

  /** Stop starting sandboxes and destroy every pooled one; resolves once nothing of them is left. */
  async close(): Promise<void> {
    this.closed = true;
    await this.settled();
    const all: Promise<void>[] = [];
    for (const state of this.shapes.values()) {
      for (const sandbox of state.idle) {
        this.stopIdleTimer(state, sandbox);
        all.push(sandbox.dispose());
      }
      state.idle = [];
    }
    await Promise.allSettled(all);
    // Runs in flight finish; their sandboxes are destroyed after them, and only then is the pool closed.
    await Promise.allSettled([...this.inFlight].map((sandbox) => sandbox.ended));
    await this.settled();
  }

  private stateOf(shape: WarmShape): ShapeState {
    let state = this.shapes.get(shape.key);
    if (state) {
      this.shapes.delete(shape.key); // most recently taken last: the oldest are forgotten first
    } else {
      state = { shape, wanted: true, takenMs: 0, idle: [], starting: 0, timers: new Map() };
    }
    state.takenMs = performance.now();
    this.shapes.set(shape.key, state);
    this.forgetEmptyShapes(MAX_SHAPES);
    return state;
  }

  /**
   * Keep at most `keep` shapes, forgetting the least recently taken that hold no sandbox. A
   * shape is keyed by its whole policy: each caller with an override never seen before (a
   * service's clients) adds one, so without this the states would grow without bound. Shapes
   * that hold sandboxes are bounded by the identity budget.
   */
  private forgetEmptyShapes(keep: number): void {
    const stale = performance.now() - this.config.idleMs;
    for (const [key, state] of this.shapes) {
      if (state.idle.length > 0 || state.starting > 0) continue;
      // Not taken for idleMs, like an idle sandbox's expiry (one the budgets never let start has no timer of its own).
      if (this.shapes.size > keep || state.takenMs < stale) this.shapes.delete(key);
    }
  }

  /** A shape no run wants and that holds nothing is forgotten at once. */
  private forgetIfUnused(state: ShapeState): void {
    if (!state.wanted && state.idle.length === 0 && state.starting === 0 && this.shapes.get(state.shape.key) === state) this.shapes.delete(state.shape.key);
  }

  /** Why a shape is not poolable, remembered for the most recent MAX_NOT_POOLABLE keys. */
  private rememberNotPoolable(key: string, why: string): void {
    this.notPoolable.delete(key);
    this.notPoolable.set(key, why);
    for (const oldest of this.notPoolable.keys()) {
      if (this.notPoolable.size <= MAX_NOT_POOLABLE) break;
      this.notPoolable.delete(oldest);
    }
  }

  private idleCount(): number {
    let n = 0;
    for (const s of this.shapes.values()) n += s.idle.length;
    return n;
  }

  private held(): { sandboxes: number; memory: number } {
    let sandboxes = this.inFlight.size;
    let memory = 0;
    for (const s of this.shapes.values()) {
      sandboxes += s.idle.length + s.starting;
      memory += s.idle.reduce((sum, w) => sum + w.memoryBytes, 0);
    }
    return { sandboxes, memory };
  }

  /** What one idle sandbox holds, averaged over those measured so far (null before the first). */
  private typicalMemory: number | null = null;

  private measured(sandbox: WarmSandbox): void {
    this.typicalMemory = this.typicalMemory === null ? sandbox.memoryBytes : 0.8 * this.typicalMemory + 0.2 * sandbox.memoryBytes;
  }

  /** Start sandboxes until the shape has `size` idle or starting, within the identity and memory budgets. */
  private refill(state: ShapeState): void {
    while (!this.closed && state.idle.length + state.starting < this.config.size) {
      const held = this.held();
      if (held.sandboxes >= this.maxIdentities) return;
      // Before the first sandbox is measured, one start at a time; then each start under way
      // counts as a typical one against the budget.
      const starting = held.sandboxes - this.idleCount() - this.inFlight.size;
      if (this.typicalMemory === null ? starting > 0 : held.memory + this.typicalMemory * (starting + 1) > this.config.memoryBytes) return;
      state.starting++;
      this.track(this.startOne(state));
    }
  }

  private async startOne(state: ShapeState): Promise<void> {
    let sandbox: WarmSandbox;
    try {
      sandbox = await WarmSandbox.start(state.shape);
    } catch (e) {
      state.starting--;
      if (e instanceof NotPoolableError) {
        this.rememberNotPoolable(state.shape.key, e.message);
        state.wanted = false;
        this.forgetIfUnused(state);
      } else this.lastStartError = e instanceof Error ? e.message : String(e);
      return; // the next take tries again
    }
    state.starting--;
    if (this.closed || this.shapes.get(state.shape.key) !== state) {
      await sandbox.dispose(); // closed, or the shape was forgotten while this one started
      return;
    }
    this.measured(sandbox);
    state.idle.push(sandbox);
    this.watchIdle(state, sandbox);
    // Starts held back until one was measured (or by the budget) may go now, for any shape.
    for (const other of this.shapes.values()) if (other.wanted) this.refill(other);
  }

  /** Destroy the sandbox when it dies idle (and replace it), or when it has been idle too long (and not). */
  private watchIdle(state: ShapeState, sandbox: WarmSandbox): void {
    const timer = setTimeout(() => {
      state.wanted = false; // unused for idleMs: not kept warm until a run takes one again
      this.retire(state, sandbox, false);
    }, this.config.idleMs);
    timer.unref?.();
    state.timers.set(sandbox, timer);
    void sandbox.launcher.proc.exited.then(() => {
      if (state.idle.includes(sandbox)) {
        this.counters.diedIdle++;
        this.retire(state, sandbox, true);
      }
    });
  }

  private retire(state: ShapeState, sandbox: WarmSandbox, replace: boolean): void {
    const at = state.idle.indexOf(sandbox);
    if (at < 0) return;
    state.idle.splice(at, 1);
    this.stopIdleTimer(state, sandbox);
    this.track(sandbox.dispose());
    if (replace) this.refill(state);
    this.forgetIfUnused(state);
    this.forgetEmptyShapes(MAX_SHAPES);
  }

  private stopIdleTimer(state: ShapeState, sandbox: WarmSandbox): void {
    const timer = state.timers.get(sandbox);
    if (timer) clearTimeout(timer);
    state.timers.delete(sandbox);
  }

  /** Keep track of a sandbox's removal after its run: close() and settled() wait for it. */
  disposeLater(removal: Promise<void>): void {
    this.track(removal);
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((e) => {
      this.lastStartError = e instanceof Error ? e.message : String(e);
    });
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }
}
