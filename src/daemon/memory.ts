// Memory back after the datastore's list (issue #14). At 100k WorkloadEndpoints the etcd list moves ~20 MB of keys
// and values through gRPC in a few seconds; once it is decoded nearly all of it is garbage, but the C allocator keeps
// the freed native memory (gRPC's messages, Buffers' backing stores) in its heaps, so skeind's RSS stayed ~45 MiB
// above what it holds (bench/datastore-etcd: 172 MiB, 129 MiB after malloc_trim). Shortly after each full list (the
// first snapshot, a resync) one full collection frees the Buffers, and as soon as it is over malloc_trim(0) returns
// the allocator's free pages; a second trim a moment later takes what V8's concurrent sweeper freed after the first.
// Both run once per list, off the hot path.
//
// Why as soon as the collection is over and not on a fixed timer: the collection runs as a task of the event loop
// (V8's `gc({ execution: 'async' })`, a promise), so on a loaded host it ends late, and a trim on a timer of its own
// could run before it and release nothing. A 100k-WorkloadEndpoint skeind was still at the list's RSS (127 MiB vs
// 102 MiB for its own-node-only reference) 5 s after ready with the timers of 1 s + 2 s on a host at load 13-21,
// and 108 MiB a second later (bench/datastore-etcd, `ps` sampling /proc during the run).
import { mallocTrim } from '../../bgp/index.js';
import { collector } from '../control/idle-gc.js';

export class ListMemory {
  #timer: NodeJS.Timeout | undefined;
  /** bumped by every list: a collection still running for an earlier list does not trim for it */
  #generation = 0;
  /** lists after which memory was released (for tests and the log) */
  releases = 0;

  constructor(private readonly o: {
    gcDelayMs?: number;
    /** after the collection, before the first trim (the sweeper frees backing stores concurrently) */
    settleMs?: number;
    /** from the first trim to the second */
    trimDelayMs?: number;
    onRelease?: (before: number, after: number) => void;
    /** for tests: the collection (default V8's, or nothing when the engine has none) and the trim */
    collect?: () => Promise<unknown> | undefined;
    trim?: () => void;
  } = {}) {}

  /** A full list was just applied: release its garbage a moment later (a second list in the meantime restarts it). */
  listed(): void {
    this.#clear();
    const gen = ++this.#generation;
    const collect = this.o.collect ?? ((): Promise<unknown> | undefined => collector()?.({ type: 'major', execution: 'async' }) as Promise<unknown> | undefined);
    const trim = this.o.trim ?? mallocTrim;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const done = Promise.resolve(collect()).catch(() => undefined);
      void done.then(() => {
        if (gen !== this.#generation) return;
        this.#timer = setTimeout(() => {
          const before = process.memoryUsage.rss();
          trim();
          this.#timer = setTimeout(() => {
            this.#timer = undefined;
            trim();
            this.releases++;
            this.o.onRelease?.(before, process.memoryUsage.rss());
          }, this.o.trimDelayMs ?? 2000);
          this.#timer.unref();
        }, this.o.settleMs ?? 200);
        this.#timer.unref();
      });
    }, this.o.gcDelayMs ?? 250);
    this.#timer.unref();
  }

  #clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  stop(): void {
    this.#clear();
    this.#generation++;
  }
}
