// A BFD timer that fired late, as a log line (skeind and skein-bfdd both use it). Its own file so skein-bfdd
// does not load skeind's configuration code with it.
import type { BfdOutput } from '../../bgp/index.js';
import type { Logger } from '../log.js';

/** At most one "timer late" line per this many ms per process; the others are counted into the next one. */
export const LATE_LOG_EVERY_MS = 10_000;

/**
 * A BFD timer that fired late (bgp/bfd/manager.ts, 'late'): logged at most once per LATE_LOG_EVERY_MS, with how
 * many more there were. A flap between live hosts that follows such a line was caused by this process being
 * starved of CPU (the peer stopped hearing us), not by the path; `skein_bfd_late_timers_total` counts them all.
 */
export class LateTimerLog {
  #last = -Infinity;
  #suppressed = 0;
  constructor(private readonly log: Logger, private readonly now: () => number = () => performance.now()) {}

  note(e: Extract<BfdOutput, { type: 'late' }>): void {
    const t = this.now();
    if (t - this.#last < LATE_LOG_EVERY_MS) {
      this.#suppressed++;
      return;
    }
    this.#last = t;
    this.log.warn('bfd timer fired late: this process was not scheduled in time; a peer may take it for a failure', {
      peer: e.key.peer, lateMs: Math.round(e.lateMs), limitMs: Math.round(e.limitMs), moreSinceLastLine: this.#suppressed,
    });
    this.#suppressed = 0;
  }
}
