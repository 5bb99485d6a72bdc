// Resumable whole-table walks (the role of OpenBGPD rde_rib.c's rib context): a peer going down, graceful-restart
// and enhanced-route-refresh sweeps, ROUTE-REFRESH, export re-evaluation after a policy change and a new session's
// initial table each visit every prefix of a table that can hold millions. Done in one go that blocks the event
// loop for up to a second at 1M prefixes (keepalives, the control socket and the FIB wait); here a walk runs in
// slices of about 10 ms and the loop gets a turn between them.
//
// A walk visits the keys the table had when it started (a snapshot: the keys only, 8 bytes per IPv4 prefix) and
// looks each one up when its turn comes, so the table may change freely in between: a prefix removed meanwhile is
// skipped, one added meanwhile is not visited (each walk's visitor is written so that this is right: what arrives
// later is handled by the ordinary per-prefix path). Walks run one after another in the order they were started,
// so their effects keep the order of the calls that started them. The first slice runs inside the call that starts
// the walk when no other walk is waiting; a table smaller than `minPerSlice` keys is therefore walked at once, as
// before (the tests of the core's other behaviour see no difference).
import type { PrefixKey } from './types.js';

/** The keys of a table at one moment (PrefixMap.keySnapshot). */
export interface KeySnapshot {
  readonly v4: Float64Array;
  readonly v6: readonly string[];
}

export interface WalkerOptions {
  /** how long a slice may run before the loop gets a turn (default 10 ms) */
  readonly sliceMs?: number;
  /** keys visited in a slice before the clock is consulted at all (default 4096) */
  readonly minPerSlice?: number;
  /** the clock, in ms (default performance.now) */
  readonly now?: () => number;
  /** runs fn on a later turn of the event loop (default setImmediate) */
  readonly defer?: (fn: () => void) => void;
}

interface Walk {
  readonly keys: KeySnapshot;
  i: number;
  readonly visit: (k: PrefixKey) => void;
  readonly done: (() => void) | undefined;
  /** the walk is no longer wanted (its session went): stop without done() */
  readonly cancelled: (() => boolean) | undefined;
}

export class Walker {
  readonly #queue: Walk[] = [];
  #scheduled = false;
  #running = false;
  readonly #sliceMs: number;
  readonly #minPerSlice: number;
  readonly #now: () => number;
  readonly #defer: (fn: () => void) => void;
  /** told after each slice that ran on a later turn (the driver drains best changes and sends) */
  readonly #onProgress: () => void;

  constructor(o: WalkerOptions, onProgress: () => void) {
    this.#sliceMs = o.sliceMs ?? 10;
    this.#minPerSlice = o.minPerSlice ?? 4096;
    this.#now = o.now ?? (() => performance.now());
    this.#defer = o.defer ?? ((fn) => void setImmediate(fn));
    this.#onProgress = onProgress;
  }

  /** The walker's clock, in ms. */
  now(): number {
    return this.#now();
  }

  /** Walks started and not finished. */
  get pending(): number {
    return this.#queue.length;
  }

  /**
   * Visit every key of `keys` (a snapshot of a table), in slices; done() after the last one. When no other walk
   * waits, the first slice runs now.
   */
  start(keys: KeySnapshot, visit: (k: PrefixKey) => void, done?: () => void, cancelled?: () => boolean): void {
    this.#queue.push({ keys, i: 0, visit, done, cancelled });
    if (this.#running) return; // started from inside a walk (a done() chaining the next): the running loop takes it
    if (this.#queue.length === 1 && !this.#scheduled) {
      if (!this.#run(this.#sliceMs)) this.#schedule();
    } else this.#schedule();
  }

  /** Run every walk to its end now (before work that needs the table complete, and in tests). */
  finish(): void {
    this.#run(Infinity);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#defer(() => {
      this.#scheduled = false;
      const finished = this.#run(this.#sliceMs);
      if (!finished) this.#schedule();
      this.#onProgress();
    });
  }

  /** Works through the queue for about budgetMs; true when it is empty. */
  #run(budgetMs: number): boolean {
    if (this.#running) return false;
    this.#running = true;
    try {
      const until = this.#now() + budgetMs;
      let n = 0;
      const min = this.#minPerSlice;
      // the clock is read every 64 keys once the slice's minimum is done (every key when the minimum is below 64)
      const mask = min < 64 ? 0 : 63;
      while (this.#queue.length > 0) {
        const w = this.#queue[0]!;
        if (w.cancelled?.() === true) {
          this.#queue.shift();
          continue;
        }
        const n4 = w.keys.v4.length;
        const total = n4 + w.keys.v6.length;
        while (w.i < total) {
          const i = w.i++;
          w.visit(i < n4 ? w.keys.v4[i]! : w.keys.v6[i - n4]!);
          if ((++n & mask) === 0 && n >= min && this.#now() >= until) return false;
        }
        this.#queue.shift();
        w.done?.();
      }
      return true;
    } finally {
      this.#running = false;
    }
  }
}
