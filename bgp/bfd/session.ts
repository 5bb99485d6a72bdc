// One BFD session (RFC 5880 §6), Sans-IO like the BGP FSM (../session/fsm.ts):
// events in, actions out, a table keyed [state][event], timers as deadlines on
// an injected clock, jitter from an injected random source. It owns no socket;
// the manager (manager.ts) selects the session for a received packet and the
// driver (udp.ts) carries out the actions.
//
// What is implemented: Asynchronous mode, the three-way handshake (§6.2, the
// §6.8.6 state table), detection time (§6.8.4), timer negotiation (§6.8.2),
// Poll/Final sequences for parameter changes (§6.5, §6.8.3), the 1 s minimum
// Desired Min TX while not Up (§6.8.3), transmit jitter (§6.8.7), diagnostics,
// administrative down (§6.8.16), the Passive role (§6.1), and a peer's Demand
// mode (we stop periodic transmission when it asks, §6.8.6). We never set the
// D bit (Demand mode off), never run the Echo function (Required Min Echo RX
// is 0), never authenticate (packet.ts).
//
// Where skein departs from the text, on purpose:
// - A new session is AdminDown until Start (§6.8.1 initialises Down): a
//   session never started sends nothing, which is what the peer would see of a
//   disabled one. Start moves it to Down and transmission begins.
// - A state change is announced at once with a packet, not at the next
//   periodic transmission: §6.8.7 bounds only the periodic rate, and waiting
//   up to the idle interval (Calico's idleSendInterval defaults to a minute)
//   would stretch the handshake by as much.
// - LocalDiag is cleared (0) on entering Init or Up: it names the reason of the
//   most recent change of state (§6.8.1), and reaching Up has none.
// - When removed, a session sends one AdminDown packet, not a detection time
//   of them (§6.8.16 SHOULD); if that one is lost the peer's detection timer
//   reaches the same Down.
//
// The C bit (Control Plane Independent, §4.1, §6.8.7): we set it only when
// told to (config.controlPlaneIndependent), which the daemon may do once BFD
// runs in a process that survives its restarts; until then it is clear. The
// peer's C bit is reported with every up/down event and in status().
//
// What a peer's C bit means for BGP graceful restart (RFC 5882 §4.3.1) — our
// decision, applied by whoever couples BFD to the BGP session (the speaker):
// - Default ("strict", BIRD's `bfd on`, FRR's default): a BFD Down ends the
//   BGP session and withdraws the peer's routes at once, whatever the C bit
//   says. The point of BFD here is a dead host routed around in under a second.
// - Opt-in ("graceful", BIRD's `bfd graceful`): a peer whose C bit is set
//   says its BFD survives its control plane, so its BFD going Down means its
//   forwarding is gone: end the session without graceful-restart retention.
//   A peer whose C bit is clear shares fate between BFD and BGP, so its BFD
//   going Down may only be its control plane restarting: keep its routes under
//   graceful restart as if the TCP session alone had failed.
// bgpActionOnBfdDown() states this as a function, so it is tested and shared.
import { BFD_DIAG, type BfdState, type ControlPacket } from './packet.js';

/** Events into a session. */
export type BfdEvent =
  /** administrative enable (§6.8.16 "reenable"; also the first start) */
  | { readonly type: 'Start' }
  /** administrative disable, §6.8.16: diag 7 (Administratively Down) or 5 (Path Down) */
  | { readonly type: 'Stop'; readonly diag?: number }
  /** a packet the manager selected for this session, by its State field (§6.8.6) */
  | { readonly type: 'RecvAdminDown'; readonly packet: ControlPacket }
  | { readonly type: 'RecvDown'; readonly packet: ControlPacket }
  | { readonly type: 'RecvInit'; readonly packet: ControlPacket }
  | { readonly type: 'RecvUp'; readonly packet: ControlPacket }
  /** the periodic transmission is due (§6.8.7) */
  | { readonly type: 'TxTimerExpires' }
  /** a Detection Time passed without a valid packet (§6.8.4) */
  | { readonly type: 'DetectTimerExpires' }
  /** new local parameters (§6.8.3): a Poll Sequence when Up */
  | { readonly type: 'ParamsChange'; readonly params: BfdParams };

export type BfdEventType = BfdEvent['type'];
export const BFD_EVENT_TYPES: readonly BfdEventType[] = [
  'Start', 'Stop', 'RecvAdminDown', 'RecvDown', 'RecvInit', 'RecvUp', 'TxTimerExpires', 'DetectTimerExpires', 'ParamsChange',
];

export const BFD_TIMERS = ['Tx', 'Detect'] as const;
export type BfdTimerName = (typeof BFD_TIMERS)[number];

/** Actions out, for the driver to carry out in order. */
export type BfdAction =
  | { readonly type: 'send'; readonly packet: ControlPacket }
  /** arm (or re-arm) a timer at this clock value, ms */
  | { readonly type: 'setTimer'; readonly timer: BfdTimerName; readonly deadline: number }
  | { readonly type: 'clearTimer'; readonly timer: BfdTimerName }
  | {
      readonly type: 'stateChange';
      readonly from: BfdState;
      readonly to: BfdState;
      /** LocalDiag after the change: why */
      readonly diag: number;
      /** the peer's C bit as last received (false when nothing was received) */
      readonly remoteControlPlaneIndependent: boolean;
    };

/** The local parameters, microseconds as on the wire (bfd.DesiredMinTxInterval etc., §6.8.1). */
export interface BfdParams {
  /** Desired Min TX Interval while Up */
  readonly desiredMinTxUs: number;
  /** Required Min RX Interval; 0 asks the peer to send nothing */
  readonly requiredMinRxUs: number;
  /** Desired Min TX while not Up; raised to 1 s (§6.8.3). BIRD's "idle tx interval", Calico's idleSendInterval */
  readonly idleTxUs: number;
  /** Detect Mult, 1..255 */
  readonly detectMult: number;
}

export interface BfdSessionConfig {
  readonly params: BfdParams;
  /** bfd.LocalDiscr: nonzero, unique on this system (the manager allocates it) */
  readonly localDiscriminator: number;
  /** the C bit we send */
  readonly controlPlaneIndependent?: boolean;
  /** §6.1 Passive role: send nothing until the peer was heard */
  readonly passive?: boolean;
}

export interface BfdClock {
  /** milliseconds, monotonic */
  now(): number;
}

/** §6.8.3: while not Up, Desired Min TX is at least one second. */
export const SLOW_TX_US = 1_000_000;

/** What a BFD Down does to the BGP session above it (the decision in the header). */
export type BfdDownMode = 'strict' | 'graceful';
export function bgpActionOnBfdDown(mode: BfdDownMode, remoteControlPlaneIndependent: boolean): 'teardown' | 'graceful-restart' {
  if (mode === 'strict') return 'teardown';
  return remoteControlPlaneIndependent ? 'teardown' : 'graceful-restart'; // RFC 5882 §4.3.1
}

export function checkParams(p: BfdParams): void {
  const us = (what: string, v: number, min: number): void => {
    if (!Number.isInteger(v) || v < min || v > 0xffffffff) throw new RangeError(`${what} ${v} µs: must be an integer in [${min}, 2^32)`);
  };
  us('desiredMinTxUs', p.desiredMinTxUs, 1); // §4.1: "MUST be nonzero"... §6.8.1 "MUST be greater than zero"
  us('requiredMinRxUs', p.requiredMinRxUs, 0);
  us('idleTxUs', p.idleTxUs, 1);
  if (!Number.isInteger(p.detectMult) || p.detectMult < 1 || p.detectMult > 255) throw new RangeError(`detectMult ${p.detectMult}: must be 1..255`);
}

/** The remote system's variables (§6.8.1), as the last accepted packet left them. */
interface Remote {
  discr: number;
  state: BfdState;
  demand: boolean;
  minRxUs: number;
  /** its Desired Min TX and Detect Mult, for the Detection Time (§6.8.4) */
  minTxUs: number;
  detectMult: number;
  controlPlaneIndependent: boolean;
}

const initialRemote = (): Remote => ({
  discr: 0, // §6.8.1: "MUST be initialized to zero"
  state: 'Down', // §6.8.1: "MUST be initialized to Down"
  demand: false,
  minRxUs: 1, // §6.8.1: "MUST be initialized to 1"
  minTxUs: 0,
  detectMult: 0,
  controlPlaneIndependent: false,
});

type Handler = (m: BfdSession, e: never) => void;
type Row = { readonly [E in BfdEventType]: (m: BfdSession, e: Extract<BfdEvent, { type: E }>) => void };
type RecvEvent = Extract<BfdEvent, { packet: ControlPacket }>;

// ---------------------------------------------------------------- shared cells

const ignore = (): void => {};

/** A received packet in a state that accepts it: §6.8.6 bookkeeping, the state change, then the replies. */
function received(transition: (m: BfdSession) => void) {
  return (m: BfdSession, e: RecvEvent): void => {
    m.absorb(e.packet);
    transition(m);
    m.afterReceive(e.packet);
  };
}

const toUp = (m: BfdSession): void => m.enter('Up', BFD_DIAG.None);
const neighborDown = (m: BfdSession): void => m.enter('Down', BFD_DIAG.NeighborSignaledSessionDown); // §6.8.6

function stop(m: BfdSession, e: { diag?: number }): void {
  m.clearTimer('Detect');
  m.enter('AdminDown', e.diag ?? BFD_DIAG.AdministrativelyDown); // §6.8.16
}

/** §6.8.4: a Detection Time without a packet. In Init/Up the session fails; in every state the peer is forgotten. */
function detectExpired(m: BfdSession): void {
  m.forgetRemote(); // §6.8.1 bfd.RemoteDiscr: zero after a Detection Time without a packet
  if (m.state === 'Init' || m.state === 'Up') m.enter('Down', BFD_DIAG.ControlDetectionTimeExpired);
}

function periodic(m: BfdSession): void {
  m.transmit(false);
  m.armTx();
}

function paramsChange(m: BfdSession, e: { params: BfdParams }): void {
  m.setParams(e.params);
}

// ---------------------------------------------------------------- the table

const ADMIN_DOWN: Row = {
  Start: (m) => m.enter('Down', BFD_DIAG.None), // §6.8.16: reenable
  Stop: ignore,
  // §6.8.6: the remote variables are updated, then "If bfd.SessionState is AdminDown, discard the packet".
  RecvAdminDown: (m, e) => m.absorb(e.packet),
  RecvDown: (m, e) => m.absorb(e.packet),
  RecvInit: (m, e) => m.absorb(e.packet),
  RecvUp: (m, e) => m.absorb(e.packet),
  TxTimerExpires: periodic, // §6.8.16: AdminDown packets MAY be sent indefinitely
  DetectTimerExpires: ignore, // not armed in AdminDown
  ParamsChange: paramsChange,
};

const DOWN: Row = {
  Start: ignore,
  Stop: stop,
  RecvAdminDown: received(ignore), // already Down
  RecvDown: received((m) => m.enter('Init', BFD_DIAG.None)), // §6.8.6 Down + Down → Init
  RecvInit: received(toUp), // §6.8.6 Down + Init → Up
  RecvUp: received(ignore), // §6.8.6: Up is not a state Down moves on
  TxTimerExpires: periodic,
  DetectTimerExpires: detectExpired,
  ParamsChange: paramsChange,
};

const INIT: Row = {
  Start: ignore,
  Stop: stop,
  RecvAdminDown: received(neighborDown), // §6.8.6: AdminDown received, not Down → Down, diag 3
  RecvDown: received(ignore), // §6.8.6: Init moves only on Init or Up
  RecvInit: received(toUp),
  RecvUp: received(toUp),
  TxTimerExpires: periodic,
  DetectTimerExpires: detectExpired,
  ParamsChange: paramsChange,
};

const UP: Row = {
  Start: ignore,
  Stop: stop,
  RecvAdminDown: received(neighborDown),
  RecvDown: received(neighborDown), // §6.8.6 Up + Down → Down, diag 3
  RecvInit: received(ignore),
  RecvUp: received(ignore),
  TxTimerExpires: periodic,
  DetectTimerExpires: detectExpired,
  ParamsChange: paramsChange,
};

export const BFD_TABLE: { readonly [S in BfdState]: Row } = { AdminDown: ADMIN_DOWN, Down: DOWN, Init: INIT, Up: UP };

const TIMER_EVENT: { readonly [T in BfdTimerName]: BfdEventType } = { Tx: 'TxTimerExpires', Detect: 'DetectTimerExpires' };

/** The event a received packet is, by its State field. */
export function receiveEvent(packet: ControlPacket): RecvEvent {
  return { type: `Recv${packet.state}`, packet } as RecvEvent;
}

/** A snapshot for `skeinctl bfd` and tests. */
export interface BfdSessionStatus {
  readonly state: BfdState;
  readonly localDiag: number;
  readonly localDiscriminator: number;
  readonly remoteDiscriminator: number;
  readonly remoteState: BfdState;
  readonly remoteDiag: number;
  readonly remoteControlPlaneIndependent: boolean;
  /** what we advertise (bfd.DesiredMinTxInterval / RequiredMinRxInterval) */
  readonly desiredMinTxUs: number;
  readonly requiredMinRxUs: number;
  readonly detectMult: number;
  /** negotiated: our transmit interval before jitter (§6.8.2), 0 when we send nothing periodically */
  readonly txIntervalUs: number;
  /** negotiated: our Detection Time (§6.8.4), 0 before the peer was heard */
  readonly detectTimeUs: number;
  readonly remoteMinTxUs: number;
  readonly remoteMinRxUs: number;
  readonly remoteDetectMult: number;
  readonly pollActive: boolean;
}

// ---------------------------------------------------------------- the machine

export class BfdSession {
  state: BfdState = 'AdminDown';
  /** bfd.LocalDiag */
  localDiag: number = BFD_DIAG.None;
  /** the last received Diag (for "last down reason" displays) */
  remoteDiag = 0;
  /** armed timers: name → deadline (clock ms) */
  readonly deadlines = new Map<BfdTimerName, number>();
  private remote: Remote = initialRemote();
  private params: BfdParams;
  /** bfd.DesiredMinTxInterval / bfd.RequiredMinRxInterval: what the packets say */
  private advTxUs: number;
  private advRxUs: number;
  /** the values in force for our transmit interval and our Detection Time, which lag during a Poll (§6.8.3) */
  private usedTxUs: number;
  private usedRxUs: number;
  private pollActive = false;
  private pollPending = false;
  private out: BfdAction[] = [];

  constructor(
    readonly config: BfdSessionConfig,
    private readonly clock: BfdClock,
    /** uniform in [0, 1): the jitter source (§6.8.7) */
    private readonly random: () => number = Math.random,
  ) {
    checkParams(config.params);
    if (!Number.isInteger(config.localDiscriminator) || config.localDiscriminator < 1 || config.localDiscriminator > 0xffffffff) {
      throw new RangeError(`localDiscriminator ${config.localDiscriminator}: must be a nonzero 32-bit value`);
    }
    this.params = config.params;
    this.advTxUs = this.usedTxUs = this.targetTxUs();
    this.advRxUs = this.usedRxUs = config.params.requiredMinRxUs;
  }

  /** Feed one event; returns the actions to carry out, in order. */
  handle(event: BfdEvent): BfdAction[] {
    this.out = [];
    const cell = BFD_TABLE[this.state][event.type] as Handler;
    cell(this, event as never);
    return this.out;
  }

  /** Fire every due timer, earliest first; each at most once per call. */
  tick(): BfdAction[] {
    const now = this.clock.now();
    const due = BFD_TIMERS.map((t) => [t, this.deadlines.get(t)] as const)
      .filter((x): x is readonly [BfdTimerName, number] => x[1] !== undefined && x[1] <= now)
      .sort((a, b) => a[1] - b[1]);
    const all: BfdAction[] = [];
    for (const [t, d] of due) {
      if (this.deadlines.get(t) !== d) continue; // re-armed or cleared by an earlier cell
      this.deadlines.delete(t);
      all.push(...this.handle({ type: TIMER_EVENT[t] } as BfdEvent));
    }
    return all;
  }

  nextDeadline(): number | null {
    let min: number | null = null;
    for (const d of this.deadlines.values()) if (min === null || d < min) min = d;
    return min;
  }

  status(): BfdSessionStatus {
    return {
      state: this.state,
      localDiag: this.localDiag,
      localDiscriminator: this.config.localDiscriminator,
      remoteDiscriminator: this.remote.discr,
      remoteState: this.remote.state,
      remoteDiag: this.remoteDiag,
      remoteControlPlaneIndependent: this.remote.controlPlaneIndependent,
      desiredMinTxUs: this.advTxUs,
      requiredMinRxUs: this.advRxUs,
      detectMult: this.params.detectMult,
      txIntervalUs: this.canTransmit() ? this.txIntervalUs() : 0,
      detectTimeUs: this.detectTimeUs(),
      remoteMinTxUs: this.remote.minTxUs,
      remoteMinRxUs: this.remote.minRxUs,
      remoteDetectMult: this.remote.detectMult,
      pollActive: this.pollActive,
    };
  }

  // ---- helpers used by the table cells

  /** §6.8.6, the part every accepted packet gets, AdminDown included. */
  absorb(p: ControlPacket): void {
    const r = this.remote;
    r.discr = p.myDiscriminator;
    r.state = p.state;
    r.demand = p.demand;
    r.minRxUs = p.requiredMinRxUs;
    r.minTxUs = p.desiredMinTxUs;
    r.detectMult = p.detectMult;
    r.controlPlaneIndependent = p.controlPlaneIndependent;
    this.remoteDiag = p.diag;
    // §6.8.6: a Final ends our Poll Sequence; the new values are in force from now (§6.8.3).
    if (this.pollActive && p.final) {
      this.pollActive = false;
      this.usedTxUs = this.advTxUs;
      this.usedRxUs = this.advRxUs;
      if (this.pollPending) {
        this.pollPending = false;
        this.applyParams(false);
      }
    }
  }

  /** §6.8.6, after the state change: Final for a Poll, the detection timer, the periodic timer. */
  afterReceive(p: ControlPacket): void {
    // "If the Poll (P) bit is set, send ... the Final (F) bit set", outside the periodic schedule (§6.8.7).
    if (p.poll) this.transmit(true);
    // "it has been received for purposes of the Detection Time expiration rules" (§6.8.4)
    this.setTimer('Detect', this.detectTimeUs() / 1000);
    this.syncTx();
  }

  forgetRemote(): void {
    this.remote = initialRemote();
  }

  /** State entry: one place for the report, the parameter rules and the announcing packet. */
  enter(to: BfdState, diag: number): void {
    const from = this.state;
    this.localDiag = diag;
    if (from === to) return;
    this.state = to;
    this.out.push({ type: 'stateChange', from, to, diag, remoteControlPlaneIndependent: this.remote.controlPlaneIndependent });
    if (to !== 'Up') {
      // Leaving Up (or never there): no Poll outlives it, and the slow rate is back at once (§6.8.3).
      this.pollActive = false;
      this.pollPending = false;
    }
    this.applyParams(true);
    if (this.canTransmit()) {
      this.transmit(false);
      this.armTx();
    } else {
      this.clearTimer('Tx');
    }
  }

  setParams(params: BfdParams): void {
    checkParams(params);
    this.params = params;
    this.applyParams(false);
    this.syncTx();
  }

  /**
   * Bring the advertised values to what the state and parameters want. While
   * not Up they change at once; while Up through a Poll Sequence (§6.8.3),
   * one at a time: a change during a Poll waits for its Final.
   */
  applyParams(fromEnter: boolean): void {
    const tx = this.targetTxUs();
    const rx = this.params.requiredMinRxUs;
    if (tx === this.advTxUs && rx === this.advRxUs) return;
    if (this.state !== 'Up') {
      this.advTxUs = this.usedTxUs = tx;
      this.advRxUs = this.usedRxUs = rx;
      return;
    }
    if (this.pollActive) {
      this.pollPending = true;
      return;
    }
    // §6.8.3: a larger Desired Min TX takes effect after the Poll; a smaller Required Min RX too.
    this.usedTxUs = Math.min(this.advTxUs, tx);
    this.usedRxUs = Math.max(this.advRxUs, rx);
    this.advTxUs = tx;
    this.advRxUs = rx;
    this.pollActive = true;
    // Entering Up already announces itself with a packet, which will carry the P bit.
    if (!fromEnter && this.canTransmit()) {
      this.transmit(false);
      this.armTx();
    }
  }

  /** §6.8.3: the Desired Min TX the state calls for. */
  private targetTxUs(): number {
    return this.state === 'Up' ? this.params.desiredMinTxUs : Math.max(this.params.idleTxUs, SLOW_TX_US);
  }

  /** §6.8.2: the greater of our Desired Min TX and the peer's Required Min RX. */
  txIntervalUs(): number {
    return Math.max(this.usedTxUs, this.remote.minRxUs);
  }

  /** §6.8.4, Asynchronous mode: the peer's Detect Mult × the greater of our Required Min RX and its Desired Min TX. */
  detectTimeUs(): number {
    return this.remote.detectMult * Math.max(this.usedRxUs, this.remote.minTxUs);
  }

  /** §6.8.7: whether periodic transmission is allowed at all. */
  canTransmit(): boolean {
    if (this.config.passive && this.remote.discr === 0) return false; // §6.8.7 Passive role
    if (this.remote.minRxUs === 0) return false; // §6.8.7: the peer wants nothing
    // §6.8.6: Demand mode active on the remote system ends our periodic packets.
    return !(this.remote.demand && this.state === 'Up' && this.remote.state === 'Up');
  }

  /** §6.8.7 jitter: 75–100% of the interval, 75–90% when Detect Mult is 1. */
  jitteredIntervalMs(): number {
    const spread = this.params.detectMult === 1 ? 0.15 : 0.25;
    return (this.txIntervalUs() * (0.75 + spread * this.random())) / 1000;
  }

  armTx(): void {
    if (this.canTransmit()) this.setTimer('Tx', this.jitteredIntervalMs());
    else this.clearTimer('Tx');
  }

  /** Keep the periodic timer consistent with what is allowed and with a shorter interval. */
  syncTx(): void {
    if (!this.canTransmit()) {
      this.clearTimer('Tx');
      return;
    }
    const d = this.deadlines.get('Tx');
    if (d === undefined || d > this.clock.now() + this.txIntervalUs() / 1000) this.armTx();
  }

  /** §6.8.7: a packet with our state. final: the answer to a Poll (never with P, "MUST NOT have both"). */
  transmit(final: boolean): void {
    const packet: ControlPacket = {
      diag: this.localDiag,
      state: this.state,
      poll: !final && this.pollActive,
      final,
      controlPlaneIndependent: this.config.controlPlaneIndependent ?? false,
      demand: false,
      multipoint: false,
      detectMult: this.params.detectMult,
      myDiscriminator: this.config.localDiscriminator,
      yourDiscriminator: this.remote.discr,
      desiredMinTxUs: this.advTxUs,
      requiredMinRxUs: this.advRxUs,
      requiredMinEchoRxUs: 0, // no Echo function
    };
    this.out.push({ type: 'send', packet });
  }

  setTimer(t: BfdTimerName, ms: number): void {
    const deadline = this.clock.now() + ms;
    this.deadlines.set(t, deadline);
    this.out.push({ type: 'setTimer', timer: t, deadline });
  }

  clearTimer(t: BfdTimerName): void {
    if (this.deadlines.delete(t)) this.out.push({ type: 'clearTimer', timer: t });
  }
}
