// Streaming answers on the control socket, and the rules that keep them from stalling the daemon.
//
// A handler may answer with a ControlStream instead of a plain result. On the wire (JSON lines, each carrying the
// request's id, so a connection can still carry several requests):
//   {"id":1,"waiting":{"position":3}}        only when the request had to queue for a slot (see StreamLimiter)
//   {"id":1,"begin":{...header}}             once, when rows are about to come
//   {"id":1,"rows":[row, row, ...]}          zero or more batches, in order
//   {"id":1,"end":{"count":N, ...trailer}}   once, at the end; or {"id":1,"error":{...}} instead
// A batch is what the producer made in one time slice, so a client sees the first rows at once and a slow client
// holds the producer back (the server waits for the socket to drain before asking for more).
//
// Three things bound what one request can cost, as OpenBGPD's resumable rib_context does for its dumps
// (usr.sbin/bgpd/rde_rib.c): work runs in slices of a few milliseconds shared by every stream (TurnScheduler), at
// most `active` streams run at once and `queued` wait (StreamLimiter), and a client that went away cancels its
// request at the next slice.
import { performance } from 'node:perf_hooks';

/** A handler's streaming answer. `rows` is pulled batch by batch; it must stop when `signal` aborts. */
export class ControlStream {
  readonly header: Record<string, unknown>;
  readonly rows: (signal: AbortSignal) => AsyncIterable<readonly unknown[]>;
  /** fields added to the end line, read once the rows are done */
  readonly trailer: () => Record<string, unknown>;
  /** a long-lived stream (watch): exempt from the limiter's slots and the idle timeout */
  readonly live: boolean;
  /** a small answer (a lookup): exempt from the limiter, so it never queues behind table dumps */
  readonly light: boolean;
  /**
   * rows are already JSON text: the producer serialises inside its own time slice, so the cost of making the
   * line counts against the slice instead of landing, unaccounted, between two slices
   */
  readonly raw: boolean;
  constructor(o: {
    header?: Record<string, unknown>;
    rows: (signal: AbortSignal) => AsyncIterable<readonly unknown[]>;
    trailer?: () => Record<string, unknown>;
    live?: boolean;
    light?: boolean;
    raw?: boolean;
  }) {
    this.header = o.header ?? {};
    this.rows = o.rows;
    this.trailer = o.trailer ?? ((): Record<string, unknown> => ({}));
    this.live = o.live ?? false;
    this.light = o.light ?? false;
    this.raw = o.raw ?? false;
  }
}

/** Thrown (as a rejection of acquire) when the queue is full: the client is told to come back later. */
export class BusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BusyError';
  }
}

/** A producer's share of one turn: work while `over()` is false. */
export interface Slice {
  /** true once this slice's time or the turn's budget is used up; the first call starts the slice's clock */
  over(): boolean;
}

/**
 * Time slices shared by every producer. The daemon's event loop also carries KEEPALIVEs, UPDATEs and FIB writes:
 * whatever the number of streams, at most about `turnBudgetMs` of streaming work runs between two visits of the
 * loop to its timers and sockets. Producers await `slice()` before a piece of work and stop when it is `over()`.
 * Every waiter is woken each turn, starting one further along the list each time, so none starves; those that
 * find the turn's budget spent do nothing and wait for the next turn.
 */
export class TurnScheduler {
  readonly turnBudgetMs: number;
  readonly sliceMs: number;
  readonly restMs: number;
  #deadline = 0;
  #waiters: (() => void)[] = [];
  #turn = 0;
  #scheduled = false;
  /** the last turn's budget ran out: the next one waits restMs */
  #spent = false;

  /**
   * `restMs`: after a turn that used its whole budget, the next turn starts no sooner than this. Without a rest,
   * streams keep the process runnable all the time, and on a busy host the kernel's scheduler then makes it wait
   * behind every other runnable task before each of its time slices; the event loop's delay (what a KEEPALIVE
   * waits) grew to the scheduler's latency (a 100k-route bench at load 20: p99 100 ms with no rest). A process that
   * sleeps between turns is woken promptly when its timers or sockets need it. The cost is the dump's speed:
   * streaming gets at most turnBudgetMs / (turnBudgetMs + restMs) of the CPU.
   */
  constructor(o: { turnBudgetMs?: number; sliceMs?: number; restMs?: number } = {}) {
    this.turnBudgetMs = o.turnBudgetMs ?? 4;
    this.sliceMs = o.sliceMs ?? 2;
    this.restMs = o.restMs ?? 4;
  }

  /** Resolves in a later turn of the event loop (never synchronously) with the caller's slice of that turn. */
  slice(): Promise<Slice> {
    return new Promise<void>((resolve) => {
      this.#waiters.push(resolve);
      this.#schedule();
    }).then(() => {
      // The clock starts when the producer first asks, not when it was woken: waiters resume one after the
      // other, and a deadline fixed at wake-up would already be spent for all but the first.
      let end = -1;
      return {
        over: (): boolean => {
          const now = performance.now();
          if (end < 0) end = Math.min(this.#deadline, now + this.sliceMs);
          if (now < end) return false;
          if (now >= this.#deadline) this.#spent = true;
          return true;
        },
      };
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    const run = (): void => {
      this.#scheduled = false;
      this.#deadline = performance.now() + this.turnBudgetMs;
      const wake = this.#waiters;
      this.#waiters = [];
      const first = wake.length === 0 ? 0 : this.#turn++ % wake.length;
      for (let i = 0; i < wake.length; i++) wake[(first + i) % wake.length]!();
    };
    // decided once the current turn is over (its last producer may be the one that used up the budget)
    setImmediate(() => {
      if (!this.#spent || this.restMs <= 0) return run();
      this.#spent = false;
      setTimeout(run, this.restMs);
    });
  }
}

/** The scheduler every stream of this process shares (one event loop). */
export const scheduler = new TurnScheduler();

export interface LimiterStats {
  active: number;
  queued: number;
  /** requests refused because the queue was full */
  refused: number;
}

/**
 * At most `active` streams produce at once; up to `queued` more wait in arrival order; beyond that a request is
 * refused with a clear "busy" error (memory per request is bounded, so the total is bounded too).
 */
export class StreamLimiter {
  readonly maxActive: number;
  readonly maxQueued: number;
  #active = 0;
  #refused = 0;
  readonly #queue: { grant: () => void; signal: AbortSignal }[] = [];

  constructor(o: { active?: number; queued?: number } = {}) {
    this.maxActive = o.active ?? 16;
    this.maxQueued = o.queued ?? 256;
  }

  get stats(): LimiterStats {
    return { active: this.#active, queued: this.#queue.length, refused: this.#refused };
  }

  /**
   * Resolves with a release function once a slot is free; `onWait(position)` is called when the request queues.
   * Rejects with BusyError when the queue is full, or with the signal's reason when it aborts while queued.
   */
  acquire(signal: AbortSignal, onWait?: (position: number) => void): Promise<() => void> {
    if (signal.aborted) return Promise.reject(new Error('cancelled'));
    if (this.#active < this.maxActive && this.#queue.length === 0) {
      this.#active++;
      return Promise.resolve(this.#releaser());
    }
    if (this.#queue.length >= this.maxQueued) {
      this.#refused++;
      return Promise.reject(new BusyError(`busy: ${this.#active} answers running and ${this.#queue.length} waiting; try again later`));
    }
    return new Promise((resolve, reject) => {
      const entry = {
        signal,
        grant: (): void => {
          signal.removeEventListener('abort', onAbort);
          resolve(this.#releaser());
        },
      };
      const onAbort = (): void => {
        const i = this.#queue.indexOf(entry);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(new Error('cancelled'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(entry);
      onWait?.(this.#queue.length);
    });
  }

  #releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#active--;
      const next = this.#queue.shift();
      if (next) {
        this.#active++;
        next.grant();
      }
    };
  }
}
