// Memory back after a spike of control requests (issue 15). Two hundred concurrent table dumps leave the V8 heap at
// its high-water mark: the garbage they made is only found by the next full collection, and an idle daemon
// allocates too little to trigger one, so RSS stayed up (a 100k-route bench: heap used 87 MiB before, 208 MiB
// 30 s after the last client left). Once the streams are over and the daemon has been quiet for a moment, a full
// collection is started if the heap grew enough since the last one; V8 then returns the emptied pages.
//
// Never an atomic collection: V8's gc() (--expose-gc) is one even as gc({ execution: 'async' }), which only runs it
// in a later task; --trace-gc showed it as a Mark-Compact of hundreds of ms at 1M routes, 5.3 s on a loaded host,
// right before a keeper session's hold timer expired (reason "testing"). What is started here is V8's incremental
// marking (bgp/native/skein_native.c StartIncrementalGc: a transient report of external memory, which V8 answers by
// starting to mark, reason "external memory pressure"): the marking runs in small steps in V8's tasks and on its
// concurrent marker threads, and the one pause left is the finalization's (ms, not a full mark of the heap).
//
// Only when the heap grew by more than a quarter and by more than 16 MiB since the baseline (the heap used after the
// last collection asked for here, or the lowest seen since): a full table is most of the heap and it is live, so a
// collection after every small dump would mark 400 MiB of routes to find a few MiB of garbage.
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { startIncrementalGc } from '../../bgp/index.js';

export const GROWTH_RATIO = 0.25;
export const GROWTH_MIN_BYTES = 16 * 2 ** 20;

/** The policy: has the heap grown enough since `baseline` for a full collection to be worth its marking? */
export function grewEnough(used: number, baseline: number, ratio = GROWTH_RATIO, minBytes = GROWTH_MIN_BYTES): boolean {
  return used - baseline > minBytes && used > baseline * (1 + ratio);
}

export interface HeapCollectorOptions {
  /** the heap in use now (default V8's used heap size) */
  used?: () => number;
  /** start an incremental collection; false when it cannot be (default the addon's startIncrementalGc) */
  start?: () => boolean;
  ratio?: number;
  minBytes?: number;
  /** how long collect()'s promise waits for the end of the collection at most (default 30 s) */
  waitMs?: number;
}

/** Starts incremental full collections when the heap grew enough (grewEnough) since its baseline. */
export class HeapCollector {
  readonly #used: () => number;
  readonly #start: () => boolean;
  readonly #ratio: number;
  readonly #minBytes: number;
  readonly #waitMs: number;
  #baseline: number;
  #waiters: (() => void)[] = [];
  #observer: PerformanceObserver | undefined;
  /** collections started so far */
  started = 0;

  constructor(o: HeapCollectorOptions = {}) {
    this.#used = o.used ?? ((): number => process.memoryUsage().heapUsed);
    this.#start = o.start ?? startIncrementalGc;
    this.#ratio = o.ratio ?? GROWTH_RATIO;
    this.#minBytes = o.minBytes ?? GROWTH_MIN_BYTES;
    this.#waitMs = o.waitMs ?? 30_000;
    this.#baseline = this.#used();
  }

  get baseline(): number {
    return this.#baseline;
  }

  /**
   * Starts an incremental full collection if the heap grew enough (or `force`); the promise ends when a full
   * collection has ended (or after waitMs). Undefined when none was started: the heap did not grow enough (the
   * baseline then follows it down), or the engine cannot start one.
   */
  collect(force = false): Promise<void> | undefined {
    const used = this.#used();
    if (!force && !grewEnough(used, this.#baseline, this.#ratio, this.#minBytes)) {
      if (used < this.#baseline) this.#baseline = used;
      return undefined;
    }
    // watch for the end before starting: the marking may be finished by a task before start() returns
    const done = this.#whenCollected();
    if (!this.#start()) {
      this.stop();
      return undefined;
    }
    this.started++;
    return done;
  }

  /** A full collection ended (called by the 'gc' observer; tests call it): the heap now is the new baseline. */
  majorCollectionEnded(): void {
    this.#baseline = this.#used();
    this.stop();
  }

  stop(): void {
    this.#observer?.disconnect();
    this.#observer = undefined;
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  #whenCollected(): Promise<void> {
    // GC entries are watched only while a collection of ours is on: each scavenge makes one, hundreds a second in
    // a dump
    if (this.#observer === undefined) {
      try {
        const obs = new PerformanceObserver((list) => {
          const major = list.getEntries().some((e) => (e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR);
          if (major) this.majorCollectionEnded();
        });
        obs.observe({ entryTypes: ['gc'] });
        this.#observer = obs;
      } catch {
        // no GC entries (another engine): the wait ends by its timer
      }
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((f) => f !== end);
        resolve();
      }, this.#waitMs);
      timer.unref();
      const end = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.#waiters.push(end);
    });
  }
}

let shared: HeapCollector | undefined;

/** The process's collector: the control server's and the datastore's releases share one baseline. */
export function heapCollector(): HeapCollector {
  return (shared ??= new HeapCollector());
}

/**
 * Calls `collect` once the work it watches has been idle for `quietMs`: `busy()` ends a quiet period, `idle()`
 * starts one. Only after a spike: `idle()` after less than `minWorkMs` of work since the last collection does nothing.
 */
export class IdleCollector {
  readonly #quietMs: number;
  readonly #minWorkMs: number;
  readonly #collect: () => unknown;
  #timer: NodeJS.Timeout | undefined;
  #busySince: number | undefined;
  #worked = 0;
  /** full collections started so far (a `collect` that returns false started none) */
  collections = 0;

  constructor(o: { quietMs?: number; minWorkMs?: number; collect?: () => unknown } = {}) {
    this.#quietMs = o.quietMs ?? 2000;
    this.#minWorkMs = o.minWorkMs ?? 1000;
    if (o.collect !== undefined) this.#collect = o.collect;
    else {
      // made now (the control server starts with the daemon), so the first baseline is the heap before any dump
      const heap = heapCollector();
      this.#collect = (): boolean => heap.collect() !== undefined;
    }
  }

  busy(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#busySince ??= Date.now();
  }

  idle(): void {
    if (this.#busySince !== undefined) {
      this.#worked += Date.now() - this.#busySince;
      this.#busySince = undefined;
    }
    if (this.#worked < this.#minWorkMs || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#worked = 0;
      if (this.#collect() !== false) this.collections++;
    }, this.#quietMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
