// How late the event loop runs a timer, sampled at a rate that follows how busy the loop is (issue #16, "the per-host
// footprint").
//
// Why not perf_hooks.monitorEventLoopDelay: it is a libuv timer that fires at a fixed resolution whether or not the
// loop has anything to do. skeind had three of them (two at 1 ms for the control socket's `runtime` and
// skein_event_loop_delay_seconds, one at 10 ms for prom-client's nodejs_eventloop_lag_*): ~1,100 wake-ups a second
// that cost an idle skeind 22-29 ms of CPU per second (`npm run bench -- convergence`, CPU of an idle host), on every
// host of a cluster, to measure a loop that was doing nothing.
//
// Here one timer serves every reader. While the loop is quiet it backs off to one sample every SLOW_MS; as soon as a
// sample comes in late or the loop was busy for more than BUSY of the interval (performance.eventLoopUtilization, which
// reads counters libuv keeps anyway), it samples every FAST_MS again, as the fixed monitor did, until the loop has
// been quiet for a while. What a reader gets differs from the fixed monitor in two ways, both said in /metrics' help
// and the README:
// - a sample is the lateness beyond the time the timer was due (0 when on time), not the whole interval between two
//   firings, so an idle loop reads ~0 ms rather than ~1 ms;
// - in a quiet window the percentiles are over the few samples taken every SLOW_MS, and a stall that starts and ends
//   between two of them is not seen; the first stall after a quiet spell is seen only if it covers a due time (so up
//   to its length minus SLOW_MS may be missed), every later one while busy at FAST_MS resolution.
import { createHistogram, performance, type EventLoopUtilization, type RecordableHistogram } from 'node:perf_hooks';

/** Sampling interval while the loop is busy, ms (monitorEventLoopDelay's resolution skeind used). */
export const FAST_MS = 1;
/** Longest sampling interval when the loop is quiet, ms. */
export const SLOW_MS = 100;
/** Share of an interval the loop may spend running callbacks and still count as quiet. */
const BUSY = 0.1;
/** A sample this late (ms) counts as busy whatever the utilisation says. */
const LATE_MS = 2;

export class LoopDelaySampler {
  readonly #views = new Set<RecordableHistogram>();
  #timer: NodeJS.Timeout | undefined;
  #interval = FAST_MS;
  #due = 0;
  #elu: EventLoopUtilization | undefined;
  /** samples taken, for tests and the bench */
  samples = 0;
  /** times the sampler went back to FAST_MS from a longer interval (for tests) */
  speedUps = 0;

  /** A histogram (ns) that every later sample is recorded into; reset it as you like; close() it when done. */
  open(): RecordableHistogram {
    const h = createHistogram();
    this.#views.add(h);
    if (this.#timer === undefined) {
      this.#interval = FAST_MS;
      this.#elu = performance.eventLoopUtilization();
      this.#schedule();
    }
    return h;
  }

  close(h: RecordableHistogram): void {
    this.#views.delete(h);
    if (this.#views.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** The interval the next sample is taken after, ms. */
  get interval(): number {
    return this.#interval;
  }

  #schedule(): void {
    this.#due = performance.now() + this.#interval;
    this.#timer = setTimeout(this.#tick, this.#interval);
    // never keeps a process alive, as monitorEventLoopDelay does not
    this.#timer.unref();
  }

  readonly #tick = (): void => {
    const now = performance.now();
    const lateMs = Math.max(0, now - this.#due);
    // RecordableHistogram takes integers >= 1 (ns)
    const ns = Math.max(1, Math.round(lateMs * 1e6));
    for (const h of this.#views) h.record(ns);
    this.samples++;
    const elu = performance.eventLoopUtilization(this.#elu);
    this.#elu = performance.eventLoopUtilization();
    if (lateMs >= LATE_MS || elu.utilization > BUSY) {
      if (this.#interval > FAST_MS) this.speedUps++;
      this.#interval = FAST_MS;
    } else this.#interval = Math.min(SLOW_MS, this.#interval * 2);
    this.#schedule();
  };
}

/** The one sampler of this process (the daemon's runtime stats and /metrics both read it). */
export const loopDelay = new LoopDelaySampler();
