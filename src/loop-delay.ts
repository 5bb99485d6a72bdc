// How late the event loop runs a timer, sampled at a rate that follows how busy the loop is (issue #16, "the per-host
// footprint").
//
// Why not one perf_hooks.monitorEventLoopDelay for ever: it is a libuv timer that fires at a fixed resolution whether or
// not the loop has anything to do. skeind had three of them (two at 1 ms for the control socket's `runtime` and
// skein_event_loop_delay_seconds, one at 10 ms for prom-client's nodejs_eventloop_lag_*): ~1,100 wake-ups a second
// that cost an idle skeind 22-29 ms of CPU per second (`npm run bench -- convergence`, CPU of an idle host), on every
// host of a cluster, to measure a loop that was doing nothing.
//
// Two modes, one set of readers:
// - quiet: a JavaScript timer takes one sample (how late it fired) and doubles its interval up to SLOW_MS while the loop
//   stays quiet. As soon as the loop was busy for more than GO_BUSY of a window of at least JUDGE_MS
//   (performance.eventLoopUtilization, which reads counters libuv keeps anyway; a stall of the loop is busy time), the
//   sampler goes busy. A late sample
//   with the loop idle is recorded but does not make it busy: the process was not given a CPU (a loaded host), and
//   sampling faster would only add wake-ups to that host.
// - busy: the native monitorEventLoopDelay at FAST_MS does the sampling; its libuv timer records into a C++ histogram
//   without entering JavaScript. A JavaScript timer every CHECK_MS folds those samples into the readers' histograms and
//   goes back to quiet after a window with the loop quiet. The earlier design took the busy samples with a JavaScript
//   timer every 1 ms too: in a host of the 50-host convergence bench (a workload event every 50 ms) that timer was ~12%
//   of the daemon's CPU (`node --cpu-prof`, #tick and Node's timer list); the native timer costs a wake-up and no more.
// What a reader gets differs from one fixed monitor in ways said in /metrics' help and the README:
// - a sample is the lateness beyond the time the timer was due (0 when on time), not the whole interval between two
//   firings, so an idle loop reads ~0 ms rather than ~1 ms (busy samples are the native interval less FAST_MS);
// - busy samples reach the readers' histograms through the native histogram's percentile steps (HdrHistogram: 50, 75,
//   87.5, ... 100), so their distribution between those steps is approximated; min, max and count are exact;
// - in a quiet window the percentiles are over the few samples taken every SLOW_MS, and a stall that starts and ends
//   between two of them is not seen; the first stall after a quiet spell is seen only if it covers a due time (so up
//   to its length minus SLOW_MS may be missed), every later one while busy at FAST_MS resolution.
import { createHistogram, monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram, type RecordableHistogram } from 'node:perf_hooks';

/** Sampling interval while the loop is busy, ms (monitorEventLoopDelay's resolution skeind used). */
export const FAST_MS = 1;
/** Longest sampling interval when the loop is quiet, ms. */
export const SLOW_MS = 100;
/** While busy: how often the native samples are folded into the readers' histograms and busyness is judged, ms. */
export const CHECK_MS = 50;
/** The quiet timer's first interval after a quiet check window, ms: a window that short says little about busyness
 *  (one callback of 0.2 ms is 10% of 2 ms), and a stall shorter than this still covers one of its due times. */
const QUIET_FIRST_MS = 10;
/** While busy, the native samples are folded into the views at a check once there are this many. */
const FOLD_AT = 256;
/** Share of a check window the busy loop may spend running callbacks and still go back to quiet. */
const BUSY = 0.1;
/** Share of a judging window (JUDGE_MS at least) the quiet loop must spend running callbacks to go busy. Higher than
 *  BUSY: the time counted is wall time, and on a loaded host a callback of 1 ms of CPU can take several ms of it. */
const GO_BUSY = 0.25;
/** While quiet, busyness is judged over a window of at least this long, ms; within a shorter one the loop counts as
 *  busy only once it has run callbacks for GO_BUSY of this long. Judged over the quiet timer's own first intervals (10,
 *  20 ms) at 10%, one workload event's 1-2 ms of work read as busy: a host of the convergence bench (an event every
 *  50 ms, ~3% of its CPU) flipped into the busy mode after nearly every event, and the native 1 ms timer costs ~18 µs
 *  a wake-up here (an idle `node` with monitorEventLoopDelay at 1 ms: 18.6 ms of CPU a second, 0.3 without). */
const JUDGE_MS = 100;

/** The views' range, ns: 1 ns to an hour, 3 significant digits (createHistogram's default reaches 2^53). */
const HIGHEST_NS = 3600e9;
const RANGE = { lowest: 1, highest: HIGHEST_NS, figures: 3 };

export class LoopDelaySampler {
  readonly #views = new Set<RecordableHistogram>();
  #native: IntervalHistogram | undefined;
  #busy = false;
  #timer: NodeJS.Timeout | undefined;
  #interval = FAST_MS;
  #due = 0;
  #elu: EventLoopUtilization | undefined;
  /** samples taken (quiet and busy), for tests and the bench */
  samples = 0;
  /** times the sampler went busy from quiet (for tests) */
  speedUps = 0;

  /** A histogram (ns) that every later sample is recorded into; reset it as you like; close() it when done. Call
   *  sync() before reading it so the busy samples of the current check window are in. */
  open(): RecordableHistogram {
    const h = createHistogram(RANGE);
    this.#views.add(h);
    if (this.#timer === undefined) {
      this.#elu = performance.eventLoopUtilization();
      this.#goBusy();
    }
    return h;
  }

  close(h: RecordableHistogram): void {
    this.sync();
    this.#views.delete(h);
    if (this.#views.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#native?.disable();
      this.#native?.reset();
      this.#busy = false;
    }
  }

  /** The interval samples are taken at, ms: FAST_MS while busy, else the quiet timer's current interval. */
  get interval(): number {
    return this.#busy ? FAST_MS : this.#interval;
  }

  /** Moves the busy samples taken so far into every open view (a reader calls it before reading). */
  sync(): void {
    const n = this.#native;
    if (n === undefined || n.count === 0) return;
    const count = n.count;
    const views = [...this.#views];
    const res = FAST_MS * 1e6;
    // Rebuild the distribution from the percentile steps: the samples between one step and the next are recorded at
    // the upper step's value. Each is an interval between two firings, so FAST_MS of it is the schedule, not lateness.
    // Recorded into each view directly: adding one histogram to another walks every counter of the source (~110 µs).
    let done = 0;
    const upTo = (to: number, ns: number): void => {
      const v = Math.min(HIGHEST_NS, Math.max(1, ns - res));
      for (; done < to; done++) for (const h of views) h.record(v);
    };
    for (const [p, v] of n.percentiles) upTo(p === 0 ? 1 : Math.min(count, Math.round((p / 100) * count)), v);
    upTo(count, n.max);
    n.reset();
    this.samples += count;
  }

  #goBusy(): void {
    this.#busy = true;
    // (empty: a new one, or reset by the sync of going quiet or by close; a reset walks every counter, ~9 µs)
    this.#native ??= monitorEventLoopDelay({ resolution: FAST_MS });
    this.#native.enable();
    this.#arm(CHECK_MS);
  }

  #goQuiet(): void {
    const n = this.#native!;
    n.disable();
    // sync() resets it when it holds samples; an enabled-again monitor's first sample would be the whole quiet spell
    // unless it starts from a reset
    if (n.count > 0) this.sync();
    else n.reset();
    this.#busy = false;
    this.#interval = QUIET_FIRST_MS;
    this.#arm(this.#interval);
  }

  #arm(ms: number): void {
    this.#due = performance.now() + ms;
    this.#timer = setTimeout(this.#tick, ms);
    // never keeps a process alive, as monitorEventLoopDelay does not
    this.#timer.unref();
  }

  readonly #tick = (): void => {
    const now = performance.now();
    const lateMs = Math.max(0, now - this.#due);
    const windowStart = this.#elu;
    const elu = performance.eventLoopUtilization(windowStart);
    this.#elu = performance.eventLoopUtilization();
    if (this.#busy) {
      if (elu.utilization > BUSY) {
        // Folding is left to a reader's sync and to going quiet, except that a long busy spell is folded in parts, so
        // no one sync records more than FOLD_AT samples into each view (~0.4 µs a record).
        if (this.#native!.count >= FOLD_AT) this.sync();
        this.#arm(CHECK_MS);
      } else this.#goQuiet();
      return;
    }
    // RecordableHistogram takes integers >= 1 (ns)
    const ns = Math.min(HIGHEST_NS, Math.max(1, Math.round(lateMs * 1e6)));
    for (const h of this.#views) h.record(ns);
    this.samples++;
    // elu covers the judging window (since #windowStart), which spans several quiet ticks until it is JUDGE_MS long
    const windowMs = elu.idle + elu.active;
    if (elu.active > GO_BUSY * Math.max(windowMs, JUDGE_MS)) {
      this.speedUps++;
      this.#goBusy();
    } else {
      // a short window goes on: the next tick judges the time since it began, not only its own interval
      if (windowMs < JUDGE_MS) this.#elu = windowStart;
      this.#interval = Math.min(SLOW_MS, this.#interval * 2);
      this.#arm(this.#interval);
    }
  };
}

/** The one sampler of this process (the daemon's runtime stats and /metrics both read it). */
export const loopDelay = new LoopDelaySampler();
