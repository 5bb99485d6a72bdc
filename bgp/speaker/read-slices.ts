// Reading sockets in bounded slices of time. libuv reads a ready socket up to 32 times per wakeup, so a peer sending
// a full table delivers megabytes in one go: parsed and applied at once, that held the event loop for up to ~2 s at
// 1M prefixes (bench/skeind.ts), and keepalives, other peers and the control socket waited. Instead each connection
// handles its input until the current slice (SLICE_MS, shared by every socket of this speaker) is spent, then
// pauses its socket (the kernel's receive buffer and TCP's window push back on the peer) and continues in a later
// turn of the event loop; its socket is resumed once everything buffered has been handled.
//
// Fairness: connections that wait for a slice are served first come, first served; those a slice did not reach stay
// at the front for the next one. Every turn handles at least one message of the connection it serves, so each makes
// progress however small the slice.
import { performance } from 'node:perf_hooks';

/** How long input may be handled before the event loop gets a turn (the route table and the sender use ~10 ms). */
export const SLICE_MS = 8;

export class ReadSlices {
  /** when the current slice began; -1: none running */
  #start = -1;
  #endScheduled = false;
  /** continuations of connections that were stopped by the end of a slice, in the order they were stopped */
  #waiting: (() => void)[] = [];
  #runScheduled = false;

  constructor(
    private readonly sliceMs = SLICE_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Whether the current slice is spent. The first question of an event-loop turn starts a slice, which ends at the
   * turn's check phase (setImmediate): every 'data' event of one poll shares it.
   */
  spent(): boolean {
    const t = this.now();
    if (this.#start < 0) {
      this.#start = t;
      if (!this.#endScheduled) {
        this.#endScheduled = true;
        setImmediate(() => {
          this.#endScheduled = false;
          this.#start = -1;
        });
      }
      return false;
    }
    return t - this.#start >= this.sliceMs;
  }

  /** Run `more` in a later slice (a connection stopped by the end of this one). */
  later(more: () => void): void {
    this.#waiting.push(more);
    this.#schedule();
  }

  /** connections waiting for a slice */
  get waiting(): number {
    return this.#waiting.length;
  }

  #schedule(): void {
    if (this.#runScheduled) return;
    this.#runScheduled = true;
    setImmediate(() => this.#run());
  }

  #run(): void {
    this.#runScheduled = false;
    const list = this.#waiting;
    this.#waiting = [];
    this.#start = this.now();
    let i = 0;
    for (; i < list.length; i++) {
      if (i > 0 && this.now() - this.#start >= this.sliceMs) break;
      (list[i] as () => void)(); // connection handling catches its own errors (connection.ts receive)
    }
    // those not reached go first next time, before any stopped during this run
    if (i < list.length) this.#waiting = [...list.slice(i), ...this.#waiting];
    this.#start = -1;
    if (this.#waiting.length > 0) this.#schedule();
  }
}
