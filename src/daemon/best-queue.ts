// The route table's queue of best-path changes (src/daemon/routes.ts). They arrive in batches of up to hundreds of
// thousands (one per speaker flush); they are queued and handed on in slices of ~5 ms, in order (a later change of
// a prefix wins), so the event loop keeps turning (keepalives, the control socket) meanwhile. What a change does to
// the table is the table's business: this file only decides when.
import { performance } from 'node:perf_hooks';
import { prefixText, type BestBatch, type PrefixKey } from '../../bgp/index.js';

/** What the route table reads of a best-path change (the speaker's BestEvent). */
export interface BestInput {
  /** the RIB's key; when absent, `prefix` is parsed */
  readonly key?: PrefixKey;
  readonly prefix: string;
  /** null: the prefix is gone */
  readonly attributes: { readonly localPref?: number | undefined } | null;
  readonly nextHops: readonly string[];
  readonly local: boolean;
  readonly afi?: 1 | 2;
}

/**
 * How long one slice of queued best-path changes may run before the loop gets a turn. Other slices run in the same
 * turn (the RIB walker's, the FIB writer's pump and its replies, the speaker's flush), and a turn is what the event
 * loop's delay measures: at 10 ms here those turns reached 50-60 ms while a peer holding 1M routes went down.
 */
const SLICE_MS = 5;

/** A BestBatch entry seen as a BestInput, for the hooks (elevation, learnedMetric) that read one synchronously. */
class BatchCursor implements BestInput {
  #b: BestBatch | undefined;
  #i = 0;
  at(b: BestBatch, i: number): this {
    this.#b = b;
    this.#i = i;
    return this;
  }
  get key(): PrefixKey {
    return this.#b!.key(this.#i);
  }
  get prefix(): string {
    return prefixText(this.key);
  }
  get attributes(): { readonly localPref?: number | undefined } | null {
    return this.#b!.attributes(this.#i);
  }
  get nextHops(): readonly string[] {
    return this.#b!.nextHops(this.#i);
  }
  get local(): boolean {
    return this.#b!.local(this.#i);
  }
  get afi(): 1 | 2 {
    return this.#b!.afi(this.#i);
  }
}

export class BestQueue {
  readonly #apply: (ev: BestInput) => void;
  readonly #sliceMs: number;
  /** queued best-path batches and the position in the first one */
  #queue: (readonly BestInput[] | BestBatch)[] = [];
  /** entry i of a queued BestBatch as the hooks read it: one object, refilled per change (no object per change) */
  readonly #cursor = new BatchCursor();
  #queuePos = 0;
  #queued = 0;
  #scheduled = false;
  #idleWaiters: (() => void)[] = [];
  /** slices run so far: what apply remembers from one change to the next holds within one slice */
  turn = 0;

  /**
   * apply: what one change does (called synchronously, in order; a BestBatch entry is handed as one reused object,
   * to be read before apply returns). sliceMs: how long one slice may run (default 5 ms; 0: 256 changes a slice).
   */
  constructor(apply: (ev: BestInput) => void, sliceMs: number = SLICE_MS) {
    this.#apply = apply;
    this.#sliceMs = sliceMs;
  }

  push(evs: readonly BestInput[] | BestBatch): void {
    if (evs.length === 0) return;
    this.#queue.push(evs);
    this.#queued += evs.length;
    this.#schedule();
  }

  /** Changes queued and not applied yet. */
  get pending(): number {
    return this.#queued;
  }

  /** Resolves once every queued change is applied. */
  idle(): Promise<void> {
    if (this.#queued === 0) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  /** Applies every queued change now. */
  drain(): void {
    this.#run(Infinity);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#run(this.#sliceMs);
    });
  }

  #run(budgetMs: number): void {
    this.turn++;
    const until = performance.now() + budgetMs;
    let n = 0;
    while (this.#queue.length > 0) {
      const batch = this.#queue[0]!;
      const compact = !Array.isArray(batch);
      while (this.#queuePos < batch.length) {
        const ev = compact ? this.#cursor.at(batch as BestBatch, this.#queuePos++) : (batch as readonly BestInput[])[this.#queuePos++]!;
        this.#queued--;
        this.#apply(ev);
        // the clock is read every 256 changes: a change costs a microsecond or so
        if ((++n & 255) === 0 && performance.now() >= until) {
          this.#schedule();
          return;
        }
      }
      this.#queue.shift();
      this.#queuePos = 0;
    }
    const w = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const f of w) f();
  }
}
