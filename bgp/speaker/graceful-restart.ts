// Graceful restart (RFC 4724 §4.2, RFC 8538) and long-lived graceful restart (RFC 9494), the receiving ("helper")
// side, as one small machine per peer. Inputs: the session went down, a session came up, End-of-RIB for a family,
// and its timers (through an injected TimerClock). Outputs: calls on this peer's part of the RIB (GrRib), 'stale'
// reports, log lines, and "the RIB changed" for the speaker to flush. It owns no socket and reads no configuration
// file: the speaker tells it, per input, what it needs.
//
// Phases (phase getter), per peer:
//   none        nothing kept
//   restart     session down, the peer's routes kept as stale until its restart time runs out (RFC 4724 §4.2)
//   stale-path  session back, stale routes kept until End-of-RIB or the stale-path time
//   long-lived  only families in RFC 9494's long-lived phase are left, each on its own clock (llgr.ts)
// Must not: send anything to the peer, or touch another peer's routes.
import type { NegotiatedSession } from '../session/negotiate.js';
import { CeaseSubcode, ErrorCode, IPV4_UNICAST, IPV6_UNICAST } from '../wire/constants.js';
import type { NotificationMessage } from '../wire/types.js';
import { familyNameOf } from './config.js';
import type { GracefulRestartJson } from './llgr.js';
import { LongLivedState, longLivedTimes, secondsLeft } from './llgr.js';
import { wallClock } from './timers.js';
import type { Timer, TimerClock } from './timers.js';
import type { StaleEvent } from './types.js';

/** Cease subcodes that end graceful restart even with the N bit (RFC 8538 §3 and §5). */
const HARD_CEASE = new Set<number>([
  CeaseSubcode.MaximumPrefixesReached,
  CeaseSubcode.AdministrativeShutdown,
  CeaseSubcode.PeerDeconfigured,
  CeaseSubcode.HardReset,
]);
/** BIRD's and FRR's default stale-path time. */
export const DEFAULT_STALE_PATH_TIME_S = 360;

/** This peer's part of the RIB, as the machine uses it. */
export interface GrRib {
  /** the session's routes leave the RIB (retainStale: false) or stay as stale best-path candidates (true) */
  peerDown(retainStale: boolean): void;
  /** remove the family's stale paths; returns how many went */
  sweepStale(family: number): number;
  /** RFC 9494 §4.2: LLGR_STALE on the family's stale paths, NO_LLGR ones removed */
  enterLongLivedStale(family: number): { kept: number; removed: number };
  /** the peer's paths in all (for the 'retained' report) */
  receivedPaths(): number;
}

export interface GrOutput {
  stale(e: Omit<StaleEvent, 'peer'>): void;
  log(msg: string): void;
  /** the RIB changed: best paths and exports are to be flushed */
  changed(): void;
}

export interface GrSettings {
  /** we announce graceful restart (and so act as helper) */
  readonly enabled: boolean;
  /** we announced LLGR to this peer (and so act as its LLGR helper) */
  readonly llgrOffered: boolean;
  /** seconds to wait for End-of-RIB once the session is back */
  readonly stalePathTime: number;
}

/** How a session ended, as far as graceful restart cares. */
export interface SessionEnd {
  readonly reason: string;
  /** what we sent (sent=true) or received, if any */
  readonly notification?: { readonly sent: boolean; readonly message: NotificationMessage };
  /** false: the routes go whatever the session negotiated (the speaker stops, the peer is removed, or a hard end) */
  readonly mayRetain: boolean;
}

export type GrPhase = 'none' | 'restart' | 'stale-path' | 'long-lived';

export class GracefulRestart {
  /**
   * RFC 4724 §4.2: families whose routes from this peer are kept, marked stale, after its session went down
   * gracefully; emptied as End-of-RIB arrives or a timer sweeps them.
   */
  private readonly staleFamilies = new Set<number>();
  /** the restart timer (session down) or the stale-path timer (session back, End-of-RIB awaited) */
  private timer: Timer | null = null;
  /** when timer fires (clock ms), and which of the two it is */
  private deadline = 0;
  private timerPhase: 'restart' | 'stale-path' = 'restart';
  /** RFC 9494: long-lived stale times and the families in the long-lived phase */
  readonly llgr: LongLivedState;
  /** the peer is gone: timers that still fire do nothing */
  private disposed = false;

  constructor(
    private readonly rib: GrRib,
    private readonly out: GrOutput,
    private readonly settings: () => GrSettings,
    private readonly clock: TimerClock = wallClock,
  ) {
    this.llgr = new LongLivedState(clock);
  }

  // ------------------------------------------------------------------ what the speaker reads

  get phase(): GrPhase {
    if (this.staleFamilies.size === 0) return 'none';
    if ([...this.staleFamilies].every((f) => this.llgr.has(f))) return 'long-lived';
    return this.timerPhase;
  }

  /** the families whose routes are stale now (familyKey values) */
  get stale(): ReadonlySet<number> {
    return this.staleFamilies;
  }

  /** the restart or stale-path timer is running */
  get timerRunning(): boolean {
    return this.timer !== null;
  }

  /** the "helper" part of the peer's JSON; null when nothing is kept */
  helperJson(staleRoutes: () => number): GracefulRestartJson['helper'] {
    if (this.staleFamilies.size === 0) return null;
    const grFamilies = [...this.staleFamilies].filter((f) => !this.llgr.has(f));
    return {
      phase: grFamilies.length === 0 ? 'long-lived' : this.timerPhase,
      families: [...this.staleFamilies].sort((a, b) => a - b).map(familyNameOf),
      secondsLeft: grFamilies.length > 0 && this.timer ? secondsLeft(this.deadline, this.clock.now()) : null,
      staleRoutes: staleRoutes(),
    };
  }

  // ------------------------------------------------------------------ inputs

  /** The session that was in the RIB went down. */
  down(session: NegotiatedSession | null, end: SessionEnd): void {
    this.llgr.times = longLivedTimes(session, this.settings().llgrOffered);
    const keep = this.retainOnDown(session, end);
    if (keep.length > 0) this.retain(keep, session?.gracefulRestart?.restartTime ?? 0, end.reason);
    else {
      this.clearTimer();
      this.staleFamilies.clear();
      this.llgr.clear();
      this.rib.peerDown(false);
    }
  }

  /** A new session reached Established: what its OPEN says decides the fate of the stale routes. */
  up(s: NegotiatedSession): void {
    this.llgr.session = s;
    if (this.staleFamilies.size === 0) return;
    this.clearTimer();
    // RFC 4724 §4.2: no capability now, a family missing, or its F bit clear: the forwarding state is gone.
    const kept = new Set((s.gracefulRestart?.families ?? []).filter((f) => f.forwardingState).map((f) => f.family));
    // RFC 9494 §4.2: for a family in the long-lived phase, the F bit of the new LLGR capability is what counts.
    const llKept = new Set(
      this.settings().llgrOffered && s.gracefulRestart ? (s.longLivedGracefulRestart?.families ?? []).filter((f) => f.forwardingState).map((f) => f.family) : [],
    );
    const drop = [...this.staleFamilies].filter((f) => !(this.llgr.has(f) ? llKept : kept).has(f) || !s.families.includes(f));
    if (drop.length > 0) this.sweep(drop, 'the peer did not preserve forwarding state');
    // Long-lived families keep their own clock until End-of-RIB; the others get the stale-path time.
    if ([...this.staleFamilies].some((f) => !this.llgr.has(f))) {
      this.armTimer(this.settings().stalePathTime, 'no End-of-RIB before the stale-path time', 'stale-path');
    }
  }

  /** The peer sent End-of-RIB for a family (RFC 4724 §4.2; RFC 9494 §4.2 for a long-lived one). */
  endOfRib(family: number): void {
    if (this.staleFamilies.has(family)) this.sweep([family], 'End-of-RIB');
    if (this.staleFamilies.size === 0) this.clearTimer();
  }

  /** Stop every timer (the speaker stops); what is kept stays kept. */
  stopTimers(): void {
    this.clearTimer();
    this.llgr.clear();
  }

  /** The peer is removed: stop every timer for good. */
  dispose(): void {
    this.disposed = true;
    this.stopTimers();
  }

  // ------------------------------------------------------------------ steps

  /**
   * The families whose routes outlive this session's end: those the peer listed in its graceful restart capability,
   * when we announced ours too. A NOTIFICATION ends graceful restart (RFC 4724 §4.2) unless both sides sent the N bit,
   * and even then a Hard Reset does (RFC 8538 §3), as do the Cease subcodes RFC 8538 §5 says to send as one
   * (maximum prefixes, administrative shutdown, peer de-configured) when a peer sends them bare: the operator meant
   * the routes to go. A Cease we send ourselves flushes too: it is a decision about these routes, not a failure.
   */
  private retainOnDown(session: NegotiatedSession | null, end: SessionEnd): number[] {
    const gr = session?.gracefulRestart;
    if (!gr || !this.settings().enabled || !end.mayRetain) return [];
    const n = end.notification;
    if (n) {
      if (!gr.notification) return [];
      if (n.message.code === ErrorCode.Cease && (n.sent || HARD_CEASE.has(n.message.subcode))) return [];
    }
    // RFC 9494 §4.2: a family the peer announced a long-lived stale time for is kept even without GR for it.
    return [...new Set([...gr.families.map((f) => f.family), ...this.llgr.times.keys()])].sort((x, y) => x - y);
  }

  private retain(families: number[], restartTime: number, reason: string): void {
    this.clearTimer();
    // Families the peer does not preserve go now (RFC 4724 §4.2); the rest stay as stale best-path candidates.
    this.rib.peerDown(true);
    for (const f of [IPV4_UNICAST, IPV6_UNICAST]) if (!families.includes(f)) this.rib.sweepStale(f);
    for (const f of [...this.staleFamilies]) {
      if (families.includes(f)) continue;
      this.staleFamilies.delete(f); // swept just above
      this.llgr.stop(f);
    }
    for (const f of families) this.staleFamilies.add(f);
    this.out.stale({ action: 'retained', families: [...this.staleFamilies], paths: this.rib.receivedPaths(), reason });
    // RFC 9494 §4.2: no restart time, or no GR for the family, means straight into the long-lived phase; a family
    // already there (the session came back and dropped again) keeps its clock.
    const grFams = new Set(this.llgr.session?.gracefulRestart?.families.map((f) => f.family) ?? []);
    for (const f of families) if (this.llgr.has(f)) this.rib.enterLongLivedStale(f); // paths re-learned meanwhile
    const now = families.filter((f) => !this.llgr.has(f) && this.llgr.times.has(f) && (restartTime === 0 || !grFams.has(f)));
    if (now.length > 0) this.enterLongLived(now, 'no restart time');
    if ([...this.staleFamilies].every((f) => this.llgr.has(f))) return;
    this.out.log(`session down (${reason}): keeping its routes as stale for up to ${restartTime} s (graceful restart)`);
    this.armTimer(restartTime, 'restart time ran out before the session came back', 'restart');
  }

  /**
   * RFC 9494 §4.2: families enter the long-lived phase: their stale paths get LLGR_STALE (NO_LLGR ones go) and each
   * family's clock starts at the peer's long-lived stale time.
   */
  private enterLongLived(families: readonly number[], reason: string): void {
    let kept = 0;
    let removed = 0;
    for (const f of families) {
      const seconds = this.llgr.times.get(f) ?? 0;
      const r = this.rib.enterLongLivedStale(f);
      kept += r.kept;
      removed += r.removed;
      this.llgr.start(f, seconds, () => {
        if (this.staleFamilies.has(f) && !this.disposed) this.sweep([f], 'long-lived stale time ran out');
      });
      this.out.log(`long-lived graceful restart (${reason}): keeping ${r.kept} route(s) with LLGR_STALE for up to ${seconds} s${r.removed > 0 ? `, ${r.removed} NO_LLGR route(s) removed` : ''}`);
    }
    this.out.stale({ action: 'long-lived', families: [...families], paths: kept, reason });
    if (removed > 0) this.out.stale({ action: 'swept', families: [...families], paths: removed, reason: 'NO_LLGR at the start of the long-lived phase' });
    this.out.changed();
  }

  /** The restart or stale-path timer ran out: families with a long-lived stale time go on (after a restart), the rest go. */
  private graceOver(reason: string): void {
    const gr = [...this.staleFamilies].filter((f) => !this.llgr.has(f));
    const longLived = this.timerPhase === 'restart' ? gr.filter((f) => this.llgr.times.has(f)) : [];
    const gone = gr.filter((f) => !longLived.includes(f));
    if (longLived.length > 0) this.enterLongLived(longLived, reason);
    if (gone.length > 0) this.sweep(gone, reason);
  }

  /**
   * Remove every route still kept stale, now (BFD says the forwarding path is gone, RFC 5882 §4.3: nothing may be
   * retained). Nothing happens when none is kept.
   */
  sweepAll(reason: string): void {
    if (this.staleFamilies.size > 0) this.sweep([...this.staleFamilies], reason);
  }

  private sweep(families: readonly number[], reason: string): void {
    let n = 0;
    for (const f of families) {
      n += this.rib.sweepStale(f);
      this.staleFamilies.delete(f);
      this.llgr.stop(f);
    }
    if (this.staleFamilies.size === 0) this.clearTimer();
    this.out.stale({ action: 'swept', families: [...families], paths: n, reason });
    if (n > 0) this.out.log(`graceful restart: ${n} stale route(s) removed (${reason})`);
    this.out.changed();
  }

  private armTimer(seconds: number, reason: string, phase: 'restart' | 'stale-path'): void {
    this.clearTimer();
    this.timerPhase = phase;
    this.deadline = this.clock.now() + seconds * 1000;
    const t = this.clock.setTimer(seconds * 1000, () => {
      if (this.timer !== t) return;
      this.timer = null;
      if (this.staleFamilies.size > 0 && !this.disposed) this.graceOver(reason);
    });
    this.timer = t;
  }

  private clearTimer(): void {
    this.timer?.cancel();
    this.timer = null;
  }
}
