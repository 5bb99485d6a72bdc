// Long-lived graceful restart (RFC 9494) for one peer: the per-family long-lived clocks, the stale times a session
// leaves us to honour, and the JSON the operator sees of a peer's graceful restart state. The protocol steps run in
// the per-peer machine (graceful-restart.ts) and in the RIB core (RibCore.enterLongLivedStale: LLGR_STALE, NO_LLGR,
// depreference). Time comes from an injected TimerClock (timers.ts).
//
// Phases of one family of a peer's routes after its session went down gracefully:
//   restart     RFC 4724 §4.2: kept as they were, for the peer's restart time
//   stale-path  the session is back; waiting for End-of-RIB, at most the stale-path time
//   long-lived  RFC 9494 §4.2: the restart time ran out (or was 0) and the peer announced a long-lived stale time for
//               the family: kept with LLGR_STALE for that long. The session coming back does not stop the clock;
//               End-of-RIB (§4.2, as in RFC 4724) or the clock's end removes what was not re-announced.
import type { NegotiatedSession } from '../session/negotiate.js';
import { familyNameOf } from './config.js';
import type { FamilyName } from './config.js';
import { wallClock } from './timers.js';
import type { Timer, TimerClock } from './timers.js';

/** setTimeout holds at most 2^31-1 ms (about 24.8 days); a long-lived stale time can be 2^24-1 s (about 194 days). */
const MAX_TIMER_MS = 0x7fffffff;

/** One timer of any length: re-armed in steps the platform accepts. */
class LongTimer {
  private handle: Timer | null = null;
  constructor(
    readonly deadline: number,
    private readonly fire: () => void,
    private readonly clock: TimerClock,
  ) {
    this.arm();
  }

  /** Always asynchronous, so fire() never runs before the constructor has returned. */
  private arm(): void {
    this.handle = this.clock.setTimer(
      Math.min(Math.max(0, this.deadline - this.clock.now()), MAX_TIMER_MS),
      () => {
        if (this.clock.now() >= this.deadline) {
          this.handle = null;
          this.fire();
        } else this.arm();
      },
      { unref: true },
    );
  }

  cancel(): void {
    this.handle?.cancel();
    this.handle = null;
  }
}

/** Per peer: what its last session said about LLGR, and the families now in the long-lived phase. */
export class LongLivedState {
  /** familyKey → seconds: the long-lived stale times of the session that went down (only when we offered LLGR) */
  times = new Map<number, number>();
  /** the families in the long-lived phase, each with its own clock (RFC 9494 §4.2: the stale time is per family) */
  private readonly active = new Map<number, LongTimer>();
  /** the last session that reached Established (for the operator: what the peer announced) */
  session: NegotiatedSession | null = null;

  constructor(private readonly clock: TimerClock = wallClock) {}

  has(family: number): boolean {
    return this.active.has(family);
  }

  /** Start a family's long-lived clock; onExpire runs once when it ends (not after stop()). */
  start(family: number, seconds: number, onExpire: () => void): void {
    this.stop(family);
    const t = new LongTimer(this.clock.now() + seconds * 1000, () => {
      if (this.active.get(family) !== t) return;
      this.active.delete(family);
      onExpire();
    }, this.clock);
    this.active.set(family, t);
  }

  stop(family: number): void {
    this.active.get(family)?.cancel();
    this.active.delete(family);
  }

  clear(): void {
    for (const t of this.active.values()) t.cancel();
    this.active.clear();
  }

  /** families in the long-lived phase with the seconds left, for the peer JSON */
  json(): { family: FamilyName; secondsLeft: number }[] {
    return [...this.active].sort(([a], [b]) => a - b).map(([f, t]) => ({ family: familyNameOf(f), secondsLeft: secondsLeft(t.deadline, this.clock.now()) }));
  }
}

/**
 * The long-lived stale times a session's end leaves us to honour: the peer's LLGR capability (RFC 9494 §3, limited to
 * negotiated families, and ignored without GR), when we offered LLGR to the peer ourselves; families with time 0 are
 * left out (§4.2: no long-lived phase for them).
 */
export function longLivedTimes(s: NegotiatedSession | null, offered: boolean): Map<number, number> {
  const out = new Map<number, number>();
  if (!offered || !s?.longLivedGracefulRestart) return out;
  for (const f of s.longLivedGracefulRestart.families) if (f.staleTime > 0) out.set(f.family, f.staleTime);
  return out;
}

/** Whole seconds from now to a Date.now() deadline, never negative. */
export function secondsLeft(deadline: number, now = Date.now()): number {
  return Math.max(0, Math.ceil((deadline - now) / 1000));
}

/** The graceful restart part of a peer's JSON (`skeinctl peers --json`, field "gracefulRestart"). */
export interface GracefulRestartJson {
  /** what we announce to this peer */
  local: { enabled: boolean; restartTime: number; longLivedStaleTime: number | null };
  /** what the peer announced in its current or last session; null before any session, or when it sent no GR */
  peer: {
    restartTime: number;
    restarting: boolean;
    notification: boolean;
    families: { family: FamilyName; forwardingState: boolean }[];
    longLived: { family: FamilyName; forwardingState: boolean; staleTime: number }[];
  } | null;
  /** we keep the peer's routes after its session went down (helper mode); null when not */
  helper: {
    /** restart: waiting for the session; stale-path: session back, waiting for End-of-RIB; long-lived: only LLGR families are left */
    phase: 'restart' | 'stale-path' | 'long-lived';
    /** every family whose routes from the peer are stale now */
    families: FamilyName[];
    /** seconds left on the restart or stale-path timer; null when only long-lived clocks run */
    secondsLeft: number | null;
    /** the peer's paths that are stale now */
    staleRoutes: number;
  } | null;
  /** families in the long-lived phase (RFC 9494), with the seconds left on each one's clock */
  longLived: { family: FamilyName; secondsLeft: number }[];
  /** End-of-RIB of the current session, per family; both empty when not Established */
  endOfRib: { received: FamilyName[]; pending: FamilyName[] };
}

/** The peer's side of the JSON from a session (its GR and LLGR capabilities). */
export function peerGrJson(s: NegotiatedSession | null): GracefulRestartJson['peer'] {
  const gr = s?.gracefulRestart;
  if (!s || !gr) return null;
  return {
    restartTime: gr.restartTime,
    restarting: gr.restarting,
    notification: gr.notification,
    families: gr.families.map((f) => ({ family: familyNameOf(f.family), forwardingState: f.forwardingState })),
    longLived: (s.longLivedGracefulRestart?.families ?? []).map((f) => ({ family: familyNameOf(f.family), forwardingState: f.forwardingState, staleTime: f.staleTime })),
  };
}
