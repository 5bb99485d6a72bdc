// Memory back after a spike of control requests (issue 15). Two hundred concurrent table dumps leave the V8 heap at
// its high-water mark: the garbage they made is only found by the next full collection, and an idle daemon
// allocates too little to trigger one, so RSS stayed up (a 100k-route bench: heap used 87 MiB before, 208 MiB
// 30 s after the last client left). Once the streams are over and the daemon has been quiet for a moment, one
// incremental full collection is asked for; V8 then returns the emptied pages to the system.
//
// V8's `gc` function is only there with --expose-gc; the flag can be set at run time, and the function is then
// found in a fresh context. When that fails (another engine, a locked-down flag set), nothing happens.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFn = (o?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async' }) => unknown;

let gcFn: GcFn | null | undefined;

export function collector(): GcFn | null {
  if (gcFn !== undefined) return gcFn;
  const existing = (globalThis as { gc?: GcFn }).gc;
  if (typeof existing === 'function') return (gcFn = existing);
  try {
    setFlagsFromString('--expose-gc');
    const f = runInNewContext('gc') as unknown;
    gcFn = typeof f === 'function' ? (f as GcFn) : null;
  } catch {
    gcFn = null;
  }
  return gcFn;
}

/**
 * Calls `collect` once the work it watches has been idle for `quietMs`: `busy()` ends a quiet period, `idle()`
 * starts one. Only after a spike: `idle()` after less than `minWorkMs` of work since the last collection does nothing.
 */
export class IdleCollector {
  readonly #quietMs: number;
  readonly #minWorkMs: number;
  readonly #collect: () => void;
  #timer: NodeJS.Timeout | undefined;
  #busySince: number | undefined;
  #worked = 0;
  /** full collections asked for so far */
  collections = 0;

  constructor(o: { quietMs?: number; minWorkMs?: number; collect?: () => void } = {}) {
    this.#quietMs = o.quietMs ?? 2000;
    this.#minWorkMs = o.minWorkMs ?? 1000;
    this.#collect = o.collect ?? ((): void => {
      // incremental marking, finished in tasks of the event loop: no single long pause
      void collector()?.({ type: 'major', execution: 'async' });
    });
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
      this.collections++;
      this.#collect();
    }, this.#quietMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
