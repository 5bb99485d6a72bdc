// Process stalls, seen from the timers: a timer that fires much later than its deadline means the event loop could
// not run (a long synchronous task, swapping, SIGSTOP). Such a stall is the daemon's, not a peer's: the speaker
// reads pending input before judging a hold timer and gives back the stalled time (SessionFsm.forgiveStall). This
// watch decides what counts as a stall and reports each one once, however many peers' timers it delayed.

/** Lateness from which a timer firing counts as a stall of the process, ms (timers are normally a few ms late). */
export const STALL_MS = 1000;

/** The 'stall' event of a Speaker. */
export interface StallEvent {
  /** how late the first timer to notice it fired, ms */
  readonly ms: number;
}

export class StallWatch {
  /** end (clock ms) of the last stall reported: timers due before it were delayed by the same stall */
  private reportedUntil = -Infinity;
  stalls = 0;

  constructor(private readonly report: (ms: number) => void) {}

  /** A timer due at `at` fired lateMs late: true when that is a stall (reported once per stall). */
  late(at: number, lateMs: number): boolean {
    if (lateMs < STALL_MS) return false;
    if (at >= this.reportedUntil) {
      this.reportedUntil = at + lateMs;
      this.stalls++;
      this.report(lateMs);
    }
    return true;
  }
}
