// Event-loop delay: how long a ready callback (a socket read, a timer, a control request) waited for the loop.
// One thread runs every BGP session, the control socket and the kernel writer, so a whole-table walk that does
// not yield shows up here first: keepalives and `skeinctl` wait exactly this long. Node samples the delay itself
// (perf_hooks.monitorEventLoopDelay, a histogram filled from a libuv timer, no work on our side per sample).
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface LoopDelaySummary {
  /** seconds */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** samples in the window (0: nothing measured yet; the figures are then 0) */
  readonly samples: number;
}

/** Sampling resolution in ms: finer costs a timer wake-up per ms for no figure anyone reads. */
const RESOLUTION_MS = 10;

export class LoopDelay {
  readonly #h: IntervalHistogram;
  readonly #resolutionNs: number;
  #running = false;

  constructor(resolutionMs = RESOLUTION_MS) {
    this.#h = monitorEventLoopDelay({ resolution: resolutionMs });
    this.#resolutionNs = resolutionMs * 1e6;
  }

  start(): this {
    if (!this.#running) this.#h.enable();
    this.#running = true;
    return this;
  }

  stop(): void {
    if (this.#running) this.#h.disable();
    this.#running = false;
  }

  /**
   * The delay since the last reset (or start), in seconds. Node records the whole interval between two firings
   * of its sampling timer (an idle loop reads ~10 ms at a 10 ms resolution), so the resolution is taken off:
   * what is left is how late the timer ran, which is what a waiting callback suffered.
   */
  summary(): LoopDelaySummary {
    const h = this.#h;
    if (h.count === 0) return { p50: 0, p99: 0, max: 0, samples: 0 };
    const late = (ns: number): number => Math.max(0, ns - this.#resolutionNs) / 1e9;
    return { p50: late(h.percentile(50)), p99: late(h.percentile(99)), max: late(h.max), samples: h.count };
  }

  /** Starts a new window (the metrics scrape does, so each scrape reports the delay since the one before). */
  reset(): void {
    this.#h.reset();
  }

  /** summary() then reset(). */
  take(): LoopDelaySummary {
    const s = this.summary();
    this.reset();
    return s;
  }
}
