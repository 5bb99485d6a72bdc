// The BFD sessions of one system, Sans-IO: sessions keyed by (peer address,
// local address, interface, hop mode), discriminators allocated here, received
// packets demultiplexed to their session (RFC 5880 §6.3, §6.8.6), and every
// outcome returned as plain data — bytes to send, up/down events — for the
// driver (udp.ts) to carry out. Time and randomness are injected.
import { BFD_DIAG, BfdError, decodeControl, diagName, encodeControl, type BfdState } from './packet.js';
import {
  BfdSession, receiveEvent, type BfdAction, type BfdClock, type BfdParams, type BfdSessionStatus,
} from './session.js';

/** Where a session runs. RFC 5881 (single hop) or RFC 5883 (multihop). */
export interface BfdKey {
  readonly peer: string;
  readonly local: string;
  /** the interface the peer is reached over; '' when not known or multihop */
  readonly interface: string;
  readonly multihop: boolean;
}

/** Outputs, in order. */
export type BfdOutput =
  | { readonly type: 'send'; readonly key: BfdKey; readonly bytes: Buffer }
  /** the session reached Up */
  | { readonly type: 'up'; readonly key: BfdKey; readonly remoteControlPlaneIndependent: boolean }
  /** the session left Up (to Down or AdminDown): a failure, or the peer or we disabled it */
  | {
      readonly type: 'down';
      readonly key: BfdKey;
      readonly diag: number;
      /** e.g. "Control Detection Time Expired" */
      readonly reason: string;
      readonly to: BfdState;
      readonly remoteControlPlaneIndependent: boolean;
    }
  | { readonly type: 'state'; readonly key: BfdKey; readonly from: BfdState; readonly to: BfdState; readonly diag: number }
  /**
   * A timer of this session fired later than half the time a detector allows (lateTimerLimitMs): our own
   * process was not scheduled in time. Late transmissions make the peer declare us dead (its Detection Time,
   * RFC 5880 §6.8.4, runs out), so a flap between live hosts after one of these is our lateness, not the path.
   */
  | { readonly type: 'late'; readonly key: BfdKey; readonly lateMs: number; readonly limitMs: number };

/** Where a received packet came from, as the driver knows it. */
export interface BfdRxMeta {
  readonly peer: string;
  readonly local: string;
  /** '' when the driver cannot tell */
  readonly interface?: string;
  readonly multihop: boolean;
}

export interface BfdSessionInfo extends BfdSessionStatus {
  readonly key: BfdKey;
  /** clock ms of the last state change */
  readonly since: number;
  /** counters since the session was added */
  readonly upCount: number;
  readonly downCount: number;
  readonly lastDownReason: string;
  /** the latest any of its timers fired after its deadline, ms (a starved process shows here) */
  readonly timerLateMaxMs: number;
  /** timer firings later than lateTimerLimitMs() */
  readonly lateTimers: number;
}

/**
 * How late a timer may fire before it is reported: half of the shorter of our Detection Time and the peer's
 * (its multiplier × our transmit interval, RFC 5880 §6.8.4). Half, because a transmission that late leaves the
 * peer one more chance at most; null before the timers are negotiated.
 */
export function lateTimerLimitMs(s: BfdSessionStatus): number | null {
  const ours = s.detectTimeUs;
  const theirs = s.remoteDetectMult * s.txIntervalUs;
  const limits = [ours, theirs].filter((x) => x > 0);
  return limits.length > 0 ? Math.min(...limits) / 2000 : null;
}

export interface BfdManagerOptions {
  readonly clock: BfdClock;
  readonly random?: () => number;
  /** the C bit we send (see session.ts) */
  readonly controlPlaneIndependent?: boolean;
}

export const keyString = (k: BfdKey): string => `${k.multihop ? 'mh' : 'sh'}|${k.peer}|${k.local}|${k.interface}`;
const addrKey = (multihop: boolean, peer: string, local: string): string => `${multihop ? 'mh' : 'sh'}|${peer}|${local}`;

interface Entry {
  readonly key: BfdKey;
  readonly session: BfdSession;
  since: number;
  upCount: number;
  downCount: number;
  lastDownReason: string;
  timerLateMaxMs: number;
  lateTimers: number;
}

export class BfdManager {
  private readonly byKey = new Map<string, Entry>();
  private readonly byDiscr = new Map<number, Entry>();
  private readonly byAddr = new Map<string, Entry[]>();
  private readonly random: () => number;
  /** received packets discarded, by reason */
  readonly discarded = new Map<string, number>();

  constructor(private readonly opts: BfdManagerOptions) {
    this.random = opts.random ?? Math.random;
  }

  /** Adds and starts a session; an existing one gets the new parameters instead. */
  add(key: BfdKey, params: BfdParams, opts: { passive?: boolean } = {}): BfdOutput[] {
    const k = keyString(key);
    const existing = this.byKey.get(k);
    if (existing) return this.update(key, params);
    const session = new BfdSession(
      {
        params,
        localDiscriminator: this.allocateDiscriminator(),
        controlPlaneIndependent: this.opts.controlPlaneIndependent ?? false,
        ...(opts.passive ? { passive: true } : {}),
      },
      this.opts.clock,
      this.random,
    );
    const entry: Entry = { key: { ...key }, session, since: this.opts.clock.now(), upCount: 0, downCount: 0, lastDownReason: '', timerLateMaxMs: 0, lateTimers: 0 };
    this.byKey.set(k, entry);
    this.byDiscr.set(session.config.localDiscriminator, entry);
    const a = addrKey(key.multihop, key.peer, key.local);
    this.byAddr.set(a, [...(this.byAddr.get(a) ?? []), entry]);
    return this.run(entry, session.handle({ type: 'Start' }));
  }

  update(key: BfdKey, params: BfdParams): BfdOutput[] {
    const e = this.byKey.get(keyString(key));
    if (!e) return [];
    return this.run(e, e.session.handle({ type: 'ParamsChange', params }));
  }

  /** Administrative down (§6.8.16) without removing: diag 7, or 5 (Path Down) when the path is known to be gone. */
  disable(key: BfdKey, diag: number = BFD_DIAG.AdministrativelyDown): BfdOutput[] {
    const e = this.byKey.get(keyString(key));
    return e ? this.run(e, e.session.handle({ type: 'Stop', diag })) : [];
  }

  enable(key: BfdKey): BfdOutput[] {
    const e = this.byKey.get(keyString(key));
    return e ? this.run(e, e.session.handle({ type: 'Start' })) : [];
  }

  /** Removes a session, telling the peer with one AdminDown packet (session.ts header). */
  remove(key: BfdKey): BfdOutput[] {
    const k = keyString(key);
    const e = this.byKey.get(k);
    if (!e) return [];
    const out = this.run(e, e.session.handle({ type: 'Stop' }));
    this.byKey.delete(k);
    this.byDiscr.delete(e.session.config.localDiscriminator);
    const a = addrKey(key.multihop, key.peer, key.local);
    const rest = (this.byAddr.get(a) ?? []).filter((x) => x !== e);
    if (rest.length > 0) this.byAddr.set(a, rest);
    else this.byAddr.delete(a);
    const firstSend = out.findIndex((o) => o.type === 'send');
    return out.filter((o, i) => o.type !== 'send' || i === firstSend);
  }

  /**
   * One received UDP payload. Throws BfdError when the packet is discarded
   * (§6.8.6), after counting it; no session is touched then.
   */
  receive(bytes: Uint8Array, meta: BfdRxMeta): BfdOutput[] {
    try {
      const packet = decodeControl(bytes);
      let entry: Entry | undefined;
      if (packet.yourDiscriminator !== 0) {
        entry = this.byDiscr.get(packet.yourDiscriminator); // §6.8.6: select by Your Discriminator
        if (!entry) throw new BfdError('NO_SESSION', `no session has discriminator ${packet.yourDiscriminator}`);
        if (entry.key.peer !== meta.peer || entry.key.multihop !== meta.multihop) {
          // A discriminator guessed or replayed from elsewhere: not this session's peer.
          throw new BfdError('NO_SESSION', `discriminator ${packet.yourDiscriminator} belongs to ${entry.key.peer}, not ${meta.peer}`);
        }
      } else {
        // §6.8.6: "If the Your Discriminator field is zero and the State field is not Down or AdminDown, discard"
        if (packet.state !== 'Down' && packet.state !== 'AdminDown') {
          throw new BfdError('ZERO_YOUR_DISCRIMINATOR', `Your Discriminator is zero in state ${packet.state}`);
        }
        // §6.8.6: otherwise select by the addresses (and the interface when the driver knows it).
        const candidates = this.byAddr.get(addrKey(meta.multihop, meta.peer, meta.local)) ?? [];
        entry = meta.interface ? candidates.find((c) => c.key.interface === meta.interface || c.key.interface === '') : candidates[0];
        if (!entry) throw new BfdError('NO_SESSION', `no session for ${meta.peer} on ${meta.local}`);
      }
      // §6.8.6: A bit set while no authentication is in use (we use none).
      if (packet.auth) throw new BfdError('AUTH_NOT_IN_USE', `authentication type ${packet.auth.type} received; none is configured`);
      return this.run(entry, entry.session.handle(receiveEvent(packet)));
    } catch (e) {
      if (e instanceof BfdError) this.discarded.set(e.code, (this.discarded.get(e.code) ?? 0) + 1);
      throw e;
    }
  }

  /** Fire every due timer of every session. */
  tick(): BfdOutput[] {
    const now = this.opts.clock.now();
    const out: BfdOutput[] = [];
    for (const e of this.byKey.values()) {
      const d = e.session.nextDeadline();
      if (d === null || d > now) continue;
      // How late this firing is: the driver's timer (one for all sessions) and the event loop add to it.
      const late = now - d;
      if (late > e.timerLateMaxMs) e.timerLateMaxMs = late;
      const limit = lateTimerLimitMs(e.session.status());
      if (limit !== null && late > limit) {
        e.lateTimers++;
        out.push({ type: 'late', key: e.key, lateMs: late, limitMs: limit });
      }
      out.push(...this.run(e, e.session.tick()));
    }
    return out;
  }

  nextDeadline(): number | null {
    let min: number | null = null;
    for (const e of this.byKey.values()) {
      const d = e.session.nextDeadline();
      if (d !== null && (min === null || d < min)) min = d;
    }
    return min;
  }

  sessions(): BfdSessionInfo[] {
    return [...this.byKey.values()].map((e) => ({
      ...e.session.status(),
      key: e.key,
      since: e.since,
      upCount: e.upCount,
      downCount: e.downCount,
      lastDownReason: e.lastDownReason,
      timerLateMaxMs: e.timerLateMaxMs,
      lateTimers: e.lateTimers,
    }));
  }

  get(key: BfdKey): BfdSessionInfo | undefined {
    return this.sessions().find((s) => keyString(s.key) === keyString(key));
  }

  get size(): number {
    return this.byKey.size;
  }

  /** §6.3: a nonzero discriminator unique among our sessions, random so it is hard to guess. */
  private allocateDiscriminator(): number {
    for (let i = 0; i < 1000; i++) {
      const d = Math.floor(this.random() * 0xffffffff) + 1;
      if (d <= 0xffffffff && !this.byDiscr.has(d)) return d;
    }
    for (let d = 1; d <= 0xffffffff; d++) if (!this.byDiscr.has(d)) return d;
    throw new RangeError('no free BFD discriminator');
  }

  /** Session actions → outputs: packets encoded, state changes reported. Timers stay inside the session. */
  private run(e: Entry, actions: readonly BfdAction[]): BfdOutput[] {
    const out: BfdOutput[] = [];
    for (const a of actions) {
      if (a.type === 'send') out.push({ type: 'send', key: e.key, bytes: encodeControl(a.packet) });
      else if (a.type === 'stateChange') {
        e.since = this.opts.clock.now();
        out.push({ type: 'state', key: e.key, from: a.from, to: a.to, diag: a.diag });
        if (a.to === 'Up') {
          e.upCount++;
          out.push({ type: 'up', key: e.key, remoteControlPlaneIndependent: a.remoteControlPlaneIndependent });
        } else if (a.from === 'Up') {
          e.downCount++;
          e.lastDownReason = diagName(a.diag);
          out.push({
            type: 'down', key: e.key, diag: a.diag, reason: diagName(a.diag), to: a.to,
            remoteControlPlaneIndependent: a.remoteControlPlaneIndependent,
          });
        }
      }
    }
    return out;
  }
}
