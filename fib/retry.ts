// Routes the kernel refused (ENETUNREACH, ENODEV, EEXIST, ...): the failure is kept on the entry with the kernel's
// errno, for `skeinctl fib` and the 'failure' event, and the write is tried again with exponential back-off
// (retryMinMs doubling up to retryMaxMs), or at once when an interface appears or comes up.
import type { Core } from './core.js';
import type { Entry } from './entries.js';

export class Retry {
  readonly failed = new Set<Entry>();
  #timer: NodeJS.Timeout | undefined;
  #at = Infinity;
  readonly core: Core;

  constructor(core: Core) {
    this.core = core;
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
  }

  /** Remember a failed write of `e`; retried after `delay`, or after the back-off for its attempt count. */
  record(e: Entry, code: string, message: string, delay: number | undefined): void {
    const core = this.core;
    const attempts = (e.fail?.attempts ?? 0) + 1;
    const wait = delay ?? Math.min(core.retryMax, core.retryMin * 2 ** Math.min(attempts - 1, 20));
    const now = Date.now();
    e.fail = { code, message, attempts, at: now, retryAt: now + wait };
    this.failed.add(e);
    this.#arm(now + wait);
    if (attempts === 1 || attempts % 10 === 0) core.bus.emit('failure', core.view(e));
  }

  clear(e: Entry): void {
    if (e.fail === undefined) return;
    e.fail = undefined;
    this.failed.delete(e);
  }

  #arm(at: number): void {
    if (this.core.closed || at >= this.#at) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#at = at;
    this.#timer = setTimeout(() => this.#due(), Math.max(0, at - Date.now()));
  }

  #due(): void {
    this.#timer = undefined;
    this.#at = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const e of this.failed) {
      const f = e.fail!;
      if (f.retryAt <= now) {
        // keep e.fail (attempt count) until it succeeds; retryAt moves so it is not picked twice
        e.fail = { ...f, retryAt: Infinity };
        this.core.writer.enqueue(e);
      } else next = Math.min(next, f.retryAt);
    }
    if (next < Infinity) this.#arm(next);
  }

  /** Retry every failing route now (an interface came back). */
  allNow(): void {
    for (const e of this.failed) {
      e.fail = { ...e.fail!, retryAt: Infinity };
      this.core.writer.enqueue(e);
    }
  }
}
