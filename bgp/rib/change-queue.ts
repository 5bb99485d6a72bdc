// Best-path changes on their way to the FIB consumer, without an object per change (docs/architecture.md,
// "Representation"). A full table arriving, or a peer with a million routes going down, changes a million
// prefixes at once; an object per change (the RIB's change record, then the speaker's event) cost ~150 bytes each
// and was the largest single item of skeind's peak memory at 1M prefixes (bench/skeind.ts).
//
// ChangeQueue: each changed prefix once (a set for the de-duplication, a list for the order it first changed in).
// BestBatch: what one drain hands out, as parallel arrays: the prefix key, the best path (or null) and the next
// hops of the multipath set, read from the Loc-RIB when drained. Accessors by index give the consumer what it
// reads; event(i) makes the old one-object-per-change view for listeners that want it (tests, skeinctl watch).
import type { PathAttributes } from '../wire/types.js';
import type { Path } from './decision.js';
import { PrefixMap } from './prefix-map.js';
import type { BestChange, PrefixKey } from './types.js';

const NO_HOPS: readonly string[] = Object.freeze([]);

/** One drain of best-path changes: entry i is prefix key(i) with best path best[i] (null: gone or unusable). */
export class BestBatch {
  /** the RIB's prefix keys (IPv4 ones are numbers, so the array stays unboxed while it holds IPv4 only) */
  readonly keys: PrefixKey[] = [];
  readonly best: (Path | null)[] = [];
  /** next hops of the multipath set, best first; the best's own frozen array in the common single-path case */
  readonly hops: (readonly string[])[] = [];

  get length(): number {
    return this.keys.length;
  }

  /** @internal (core.ts) */
  push(key: PrefixKey, best: Path | null, hops: readonly string[]): void {
    this.keys.push(key);
    this.best.push(best);
    this.hops.push(best === null ? NO_HOPS : hops);
  }

  key(i: number): PrefixKey {
    return this.keys[i] as PrefixKey;
  }

  afi(i: number): 1 | 2 {
    return typeof this.keys[i] === 'number' ? 1 : 2;
  }

  /** the best path's attributes, null when the prefix has no usable best */
  attributes(i: number): PathAttributes | null {
    return this.best[i]?.attrs.attrs ?? null;
  }

  nextHops(i: number): readonly string[] {
    return this.hops[i] as readonly string[];
  }

  /** the best path is our own origination */
  local(i: number): boolean {
    return this.best[i]?.source.local ?? false;
  }

  /** peer address of the best path, 'local' for our own, null when gone */
  from(i: number): string | null {
    return this.best[i]?.source.address ?? null;
  }

  /** Entry i as one object (RibCore.drainBestChanges' shape). */
  change(i: number): BestChange {
    const b = this.best[i] ?? null;
    return {
      prefix: this.key(i), afi: this.afi(i), best: b === null ? null : b.attrs, nextHops: this.nextHops(i), local: this.local(i), from: this.from(i),
    };
  }
}

/** Prefixes whose best path changed and were not handed out yet, each once, in the order they first changed. */
export class ChangeQueue {
  readonly #marked = new PrefixMap<true>(64, true);
  #list: PrefixKey[] = [];
  #pos = 0;

  get size(): number {
    return this.#marked.size;
  }

  has(prefix: PrefixKey): boolean {
    return this.#marked.has(prefix);
  }

  add(prefix: PrefixKey): void {
    if (this.#marked.getOrSet(prefix, true) !== undefined) return;
    this.#list.push(prefix);
  }

  clear(): void {
    this.#marked.clear();
    this.#list = [];
    this.#pos = 0;
  }

  /**
   * Hand out changes in order: `read` turns each prefix into its current state and appends it to the batch. Stops
   * when `stop()` says so (asked every 256 prefixes) or the queue is empty.
   */
  drain(batch: BestBatch, read: (prefix: PrefixKey, batch: BestBatch) => void, stop: () => boolean): void {
    const list = this.#list;
    const from = this.#pos;
    let i = from;
    for (; i < list.length; i++) {
      if (((i - from) & 255) === 255 && stop()) break;
      const prefix = list[i] as PrefixKey;
      this.#marked.delete(prefix);
      read(prefix, batch);
    }
    if (i >= list.length) {
      this.#list = [];
      this.#pos = 0;
    } else this.#pos = i;
  }
}
