// Memory back after the datastore's list (issue #14). At 100k WorkloadEndpoints the etcd list moves ~20 MB of keys
// and values through gRPC in a few seconds; once it is decoded nearly all of it is garbage, but the C allocator keeps
// the freed native memory (gRPC's messages, Buffers' backing stores) in its heaps, so skeind's RSS stayed ~45 MiB
// above what it holds (bench/datastore-etcd: 172 MiB, 129 MiB after malloc_trim). A while after each full list
// (the first snapshot, a resync) one incremental full collection frees the Buffers (no long pause, even with a
// million routes in the heap), and 2 s later, once V8's sweeper has freed their backing stores, malloc_trim(0)
// returns the allocator's free pages. Both run once per list, off the hot path. (A synchronous collection right
// before the trim measured no better: 159 MiB vs 128 MiB in one run each.)
import { mallocTrim } from '../../bgp/index.js';
import { collector } from '../control/idle-gc.js';

export class ListMemory {
  #timer: NodeJS.Timeout | undefined;
  /** lists after which memory was released (for tests and the log) */
  releases = 0;

  constructor(private readonly o: { gcDelayMs?: number; trimDelayMs?: number; onRelease?: (before: number, after: number) => void } = {}) {}

  /** A full list was just applied: release its garbage a moment later (a second list in the meantime restarts it). */
  listed(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      // incremental marking, finished in tasks of the event loop: no single long pause
      void collector()?.({ type: 'major', execution: 'async' });
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        const before = process.memoryUsage.rss();
        mallocTrim();
        this.releases++;
        this.o.onRelease?.(before, process.memoryUsage.rss());
      }, this.o.trimDelayMs ?? 2000);
      this.#timer.unref();
    }, this.o.gcDelayMs ?? 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
