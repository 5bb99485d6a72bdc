// "Wait for peers, then sweep": the one loop behind both places where skeind holds routes it may no longer want
// until the peers that could announce them again have done so.
//   - At start-up, the kernel routes adopted by fib.start() stay until every start-up peer has sent its routes (or
//     a deadline passes); then fib.markSynced() removes the ones nobody asked for again (docs/contract.md, "What
//     skein writes into the kernel"; RFC 4724 §4.1 for the restarting side).
//   - When the speaker is replaced (its identity changed), its learned routes stay in the route table marked stale
//     until the new sessions have announced theirs again (or a deadline passes).
// A PeerWait only decides when; what "sweep" means is the caller's `done`.
import type { PeerInfo } from '../../bgp/index.js';
import type { DesiredPeer } from '../controller/index.js';
import type { FibSyncJson } from './status.js';

/** How long a wait lasts at most (start-up: unless a peer's restart time is longer). */
export const DEFAULT_SYNC_DEADLINE_MS = 30_000;
const MAX_SYNC_DEADLINE_MS = 300_000;
/**
 * The speaker reports no End-of-RIB for a peer without graceful restart, so such a peer counts as having sent its
 * table once it is Established and no best-path change arrived for this long (a mesh peer's table comes in the
 * first few UPDATEs after OPEN).
 */
const PEER_QUIET_MS = 1000;
const POLL_MS = 250;

/** The start-up wait's deadline: 30 s, or the longest restart time a peer asked for, at most 300 s. */
export function startupDeadline(peers: readonly DesiredPeer[]): number {
  const longest = Math.max(0, ...peers.map((p) => p.restartTimeMs ?? 0));
  return Math.min(MAX_SYNC_DEADLINE_MS, Math.max(DEFAULT_SYNC_DEADLINE_MS, longest));
}

/**
 * Has a peer sent all its routes since it came up (at: when, 0 not yet)? A peer with graceful restart promises
 * End-of-RIB per family (RFC 4724 §2), and that is the answer; for others, 1 s without a best-path change.
 */
export function peerSent(info: PeerInfo | null | undefined, at: number, lastBestAt: number, now: number): boolean {
  if (at === 0 || !info || info.state !== 'Established') return false;
  if (info.gracefulRestart) return info.endOfRibPending.length === 0;
  return now - Math.max(at, lastBestAt) >= PEER_QUIET_MS;
}

export interface PeerWaitOptions {
  /** has this peer sent its routes since `at` (0: it is not up yet)? */
  sent: (address: string, at: number, now: number) => boolean;
  /** true: the wait ends without `done` (skeind is stopping, the speaker was replaced) */
  cancelled: () => boolean;
  /** false: do not finish yet, even past the deadline (the ClusterInformation gate is closed) */
  mayFinish?: () => boolean;
  /**
   * false: what the peers sent has not all reached the table the sweep reads yet (best-path changes still queued
   * between the speaker and the route table). A peer's End-of-RIB is read in the same turn as its last UPDATE, but
   * that UPDATE's best-path change reaches fib/ one or two turns later; a poll that fell in between swept a route its
   * peer had just sent again (the e2e restart test saw one deleted and re-added). Not waited for past the deadline.
   */
  settled?: () => boolean;
  /** called once, with the peers still not heard from (empty when every one was) */
  done: (waiting: string[]) => void;
}

export class PeerWait {
  /** peers waited for, with the time each came up (0: not yet) */
  readonly #peers = new Map<string, number>();
  readonly #o: PeerWaitOptions;
  #deadline = 0;
  #done = false;
  #timer: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;

  constructor(o: PeerWaitOptions) {
    this.#o = o;
  }

  /** Wait for this peer too; at: when it came up (0: not yet, see up()). */
  add(address: string, at = 0): void {
    this.#peers.set(address, at);
  }

  /** The peer was removed: nothing to wait for. */
  delete(address: string): void {
    this.#peers.delete(address);
  }

  /** The peer's session is Established (first time only counts). */
  up(address: string, now: number): void {
    if (this.#peers.get(address) === 0) this.#peers.set(address, now);
  }

  get done(): boolean {
    return this.#done;
  }

  /** Start the clock: poll every 250 ms, finish at the deadline at the latest. */
  start(deadlineMs: number): void {
    this.#deadline = Date.now() + deadlineMs;
    this.#timer = setTimeout(() => this.check(true), deadlineMs);
    this.#timer.unref();
    this.#poll = setInterval(() => this.check(), POLL_MS);
    this.#poll.unref();
    this.check();
  }

  /** Finish now if every peer has been heard from, or the deadline has passed (and finishing is allowed). */
  check(deadline = false): void {
    if (this.#done || this.#deadline === 0) return;
    if (this.#o.cancelled()) {
      this.close();
      return;
    }
    if (this.#o.mayFinish && !this.#o.mayFinish()) return;
    const now = Date.now();
    const waiting = this.#waiting(now);
    const late = deadline || now >= this.#deadline;
    if (!late && (waiting.length > 0 || this.#o.settled?.() === false)) return;
    this.#done = true;
    this.close();
    this.#o.done(waiting);
  }

  /** The wait as `skeinctl status` shows it: done, or waiting for which peers and for how long at most. */
  json(): FibSyncJson {
    if (this.#done || this.#deadline === 0) return { done: this.#done, secondsLeft: null, waitingFor: [] };
    const now = Date.now();
    return { done: false, secondsLeft: Math.max(0, Math.ceil((this.#deadline - now) / 1000)), waitingFor: this.#waiting(now) };
  }

  close(): void {
    clearTimeout(this.#timer);
    clearInterval(this.#poll);
  }

  #waiting(now: number): string[] {
    return [...this.#peers].filter(([a, at]) => !this.#o.sent(a, at, now)).map(([a]) => a);
  }
}
