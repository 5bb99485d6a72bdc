// A wall clock with timers, injectable: graceful restart (graceful-restart.ts, llgr.ts) reads time and arms its
// timers only through a TimerClock, so its unit tests drive it with a fake clock and never wait.
// Must not: know anything of BGP.

/** An armed timer; cancel() is idempotent. */
export interface Timer {
  cancel(): void;
}

export interface TimerClock {
  /** milliseconds since the epoch (deadlines shown to the operator are wall-clock based) */
  now(): number;
  /**
   * Run fn once after ms. unref: the timer alone does not keep the process running (long clocks that only matter
   * while something else does).
   */
  setTimer(ms: number, fn: () => void, opts?: { unref?: boolean }): Timer;
}

/** Date.now() and setTimeout. */
export const wallClock: TimerClock = {
  now: () => Date.now(),
  setTimer(ms, fn, opts) {
    const h = setTimeout(fn, ms);
    if (opts?.unref === true) h.unref();
    return { cancel: () => clearTimeout(h) };
  },
};
