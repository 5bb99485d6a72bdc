// Memory back after the datastore's list (issue #14). At 100k WorkloadEndpoints the etcd list moves ~20 MB of keys
// and values through gRPC in a few seconds; once it is decoded nearly all of it is garbage, but the C allocator keeps
// the freed native memory (gRPC's messages, Buffers' backing stores) in its heaps, so skeind's RSS stayed ~45 MiB
// above what it holds (bench/datastore-etcd: 172 MiB, 129 MiB after malloc_trim). Shortly after each full list (the
// first snapshot, a resync) one full collection frees the Buffers, and as soon as it is over malloc_trim(0) returns
// the allocator's free pages (not on a timer of its own: the collection runs as a task of the event loop, V8's
// `gc({ execution: 'async' })`, a promise, and on a loaded host it ends late).
//
// That left V8's young generation: the list fills both of its semi-spaces (16 MiB each at most, all of it touched),
// while a skeind that never listed much has the same capacity committed but mostly untouched. V8 gives the pages back
// only when it shrinks the young generation, which it does at a collection that finds the allocation rate low over
// the last ~5 s (Heap::ReduceNewSpaceSize, V8's gc-tracer throughput window), and an idle daemon collects too seldom
// for that to happen. So a second collection follows the first after shrinkDelayMs (6 s) of the daemon's quiet, and a
// second trim after it. Measured with bench/datastore-etcd (100k WorkloadEndpoints, RSS 15 s after ready): the full
// datastore's skeind was its own-node-only reference + 26 MiB before (the young generation's pages 23 MiB of it,
// /proc/PID/smaps); after, 84 MiB vs 87 MiB (+3 MiB), the drop ~6.5 s after the first release (RSS sampled every
// 200 ms: 125 -> 86 MiB at 8.9 s after start, the reference 100 -> 83 MiB).
import { mallocTrim } from '../../bgp/index.js';
import { heapCollector } from '../control/idle-gc.js';

/** RSS growth since the last release (or the start) past which a list's first collection runs regardless */
const CHURN_BYTES = 24 * 1024 * 1024;

export class ListMemory {
  #timer: NodeJS.Timeout | undefined;
  /** bumped by every list: a collection still running for an earlier list does not trim for it */
  #generation = 0;
  /** lists after which memory was released (for tests and the log) */
  releases = 0;
  /** the RSS at the start, then after each release: what a list's growth is measured from */
  #rssBase = process.memoryUsage.rss();

  constructor(private readonly o: {
    gcDelayMs?: number;
    /** after a collection, before its trim (the sweeper frees backing stores concurrently) */
    settleMs?: number;
    /** from the end of the first collection to the second (V8 shrinks its young generation after ~5 s of quiet) */
    shrinkDelayMs?: number;
    onRelease?: (before: number, after: number) => void;
    /**
     * for tests: the collection (default an incremental one of V8's, idle-gc.ts; the first only if the heap grew
     * enough, `force` for the second) and the trim; undefined: no collection was started
     */
    collect?: (force: boolean) => Promise<unknown> | undefined;
    trim?: () => void;
    /** for tests: did the RSS grow by more than `bytes` since the last release */
    churned?: (bytes: number) => boolean;
  } = {}) {
    // the process's collector made now, at the daemon's start: its first baseline is the heap before the list
    if (o.collect === undefined) heapCollector();
  }

  /**
   * A full list was just applied: release its garbage a moment later (a second list in the meantime restarts it).
   * churnBytes: RSS growth since the last release past which the first collection runs whatever the heap's growth
   * (default CHURN_BYTES).
   */
  listed(churnBytes = CHURN_BYTES): void {
    this.#clear();
    const gen = ++this.#generation;
    const collect = this.o.collect ?? ((force: boolean): Promise<unknown> | undefined => heapCollector().collect(force));
    const trim = this.o.trim ?? mallocTrim;
    const later = (ms: number, f: () => void): void => {
      this.#timer = setTimeout(() => { this.#timer = undefined; f(); }, ms);
      this.#timer.unref();
    };
    // one collection, then (if no newer list came meanwhile) its trim, then `next`
    let collected = false;
    const round = (force: boolean, second: boolean, next: (before: number) => void): void => {
      const p = second && !collected ? undefined : collect(force);
      if (p !== undefined) collected = true;
      void Promise.resolve(p).catch(() => undefined).then(() => {
        if (gen !== this.#generation) return;
        later(this.o.settleMs ?? 200, () => {
          const before = process.memoryUsage.rss();
          trim();
          next(before);
        });
      });
    };
    // A list read through skeind's own etcd client (config/etcdclient.ts) makes its garbage in Buffers (socket reads,
    // joined messages) and the young generation rather than in the old heap, which then grows too little for the
    // collector to start: no first collection, hence no second, and V8 keeps the young generation it grew to
    // (bench/datastore-etcd: skeind 118 MiB 10 s after ready instead of ~80). So a list during which the RSS grew by
    // more than CHURN_BYTES since the last release (or the start) forces the first collection. Not every list: after
    // a small one (a file datastore's few resources) a forced collection left the idle daemon ~1.5 MiB larger.
    const churned = (this.o.churned ?? ((bytes: number): boolean => process.memoryUsage.rss() - this.#rssBase > bytes))(churnBytes);
    later(this.o.gcDelayMs ?? 250, () => round(churned, false, (before) => {
      later(this.o.shrinkDelayMs ?? 6000, () => round(true, true, () => {
        this.releases++;
        this.#rssBase = process.memoryUsage.rss();
        this.o.onRelease?.(before, process.memoryUsage.rss());
      }));
    }));
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
