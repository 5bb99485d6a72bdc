// Rate limit for log lines a remote party can cause (refused connections, malformed UPDATEs, NOTIFICATIONs, sessions
// going down): per (source, kind), at
// most `burst` lines per window; the rest are counted, and the next line let through says how many were suppressed.
// The table of keys is bounded (sources come from the network): when full, the oldest window is dropped.

export interface RateLimitOptions {
  /** lines per window per key (default 5) */
  readonly burst?: number;
  /** window length, ms (default 10 s) */
  readonly windowMs?: number;
  /** most keys kept (default 4096) */
  readonly maxKeys?: number;
  readonly now?: () => number;
  /** told of every suppressed line, by kind (skeind counts them in /metrics) */
  readonly onSuppressed?: (kind: string) => void;
}

interface Window {
  start: number;
  passed: number;
  suppressed: number;
}

export class LogRateLimit {
  readonly #w = new Map<string, Window>();
  readonly #burst: number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #onSuppressed: ((kind: string) => void) | undefined;
  /** lines suppressed so far, per kind (for /metrics) */
  readonly suppressedByKind = new Map<string, number>();

  constructor(o: RateLimitOptions = {}) {
    this.#burst = o.burst ?? 5;
    this.#windowMs = o.windowMs ?? 10_000;
    this.#maxKeys = o.maxKeys ?? 4096;
    this.#now = o.now ?? Date.now;
    this.#onSuppressed = o.onSuppressed;
  }

  /**
   * May a line for (source, kind) be logged now? null: suppress it. A number: log it, and that many earlier lines
   * of the same key were suppressed (say so in the line).
   */
  take(source: string, kind: string): number | null {
    const key = `${kind}\u0000${source}`;
    const now = this.#now();
    let w = this.#w.get(key);
    if (w !== undefined && now - w.start >= this.#windowMs) {
      const suppressed = w.suppressed;
      this.#w.delete(key);
      w = { start: now, passed: 1, suppressed: 0 };
      this.#w.set(key, w);
      return suppressed;
    }
    if (w === undefined) {
      if (this.#w.size >= this.#maxKeys) this.#w.delete(this.#w.keys().next().value as string);
      this.#w.set(key, { start: now, passed: 1, suppressed: 0 });
      return 0;
    }
    if (w.passed < this.#burst) {
      w.passed++;
      return 0;
    }
    w.suppressed++;
    this.suppressedByKind.set(kind, (this.suppressedByKind.get(kind) ?? 0) + 1);
    this.#onSuppressed?.(kind);
    return null;
  }
}
