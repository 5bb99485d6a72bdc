// The BGP session finite state machine of RFC 4271 §8, Sans-IO: events in,
// actions out. It owns no socket and no timer; time comes from an injected
// clock, and every timer is a deadline the driver is asked to arm. One
// SessionFsm runs one TCP connection; the driver resolves collisions between
// two connections to the same peer with collisionWinner() (negotiate.ts) and
// tells the loser OpenCollisionDump.
// The file is long (~780 lines) because the whole transition table, every state × event, and the handlers it
// names stay in one place, so a transition can be read against RFC 4271 §8.2.2 without jumping between files.
//
// The table (TABLE below) is written state by state, event by event, after the
// RFC 4271 §8.2.2 text. Where skein departs from the text:
// - A received NOTIFICATION is never answered with a NOTIFICATION (the text
//   lists NotifMsg among the "other events" of OpenSent, which would send an
//   FSM error; RFC 4271 §6.4's spirit and every implementation close quietly).
// - A header error in any state after OPEN is reported with its own code
//   (RFC 4271 §6.1), not as an FSM error.
// - An OPEN on this connection in OpenConfirm or Established is an unexpected
//   message (RFC 6608 subcode 2 / 3): a second connection's OPEN is the
//   driver's to compare (§6.8), so it never reaches this machine.
// - SendNOTIFICATIONwithoutOPEN is false (the RFC default): before we sent our
//   OPEN (Connect/Active with DelayOpen), errors close without a NOTIFICATION.
// - A passive session (PassiveTcpEstablishment) stays in Active when the
//   ConnectRetryTimer expires instead of dialling (§8.2.2 Active, event 9).
// - The KeepaliveTimer restarts when the driver reports an UPDATE written
//   (SendProgress with updates: true): RFC 4271 §4.4 sends KEEPALIVEs only
//   when no other message keeps the peer's hold timer from expiring.
// - In Idle, ManualStop and AutomaticStop clear a pending IdleHoldTimer, so a
//   stopped peer does not restart by itself (§8.2.2 lists them as ignored,
//   but with DampPeerOscillations the armed timer would be an AutomaticStart).
// - AutomaticStop may carry idleHold: null keeps the session in Idle until a
//   ManualStart (maximum prefixes without restart, RFC 4486 §4), a number of
//   seconds replaces the damped wait once.
// - Peer oscillation damping (DampPeerOscillations) is always on: every fall
//   back to Idle that was not a ManualStop arms the IdleHoldTimer, whose
//   duration doubles up to a cap and returns to the start value after a
//   session stayed Established for a stable period. Its expiry is the
//   AutomaticStart.
import { CeaseSubcode, ErrorCode, FsmSubcode } from '../wire/constants.js';
import type { BgpError } from '../wire/errors.js';
import type { Capability, Message, NotificationMessage, OpenMessage, UpdateMessage } from '../wire/types.js';
import { myAsField, negotiate, validateOpen } from './negotiate.js';
import type { NegotiatedSession } from './negotiate.js';

export const STATES = ['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established'] as const;
export type State = (typeof STATES)[number];

export const TIMERS = ['ConnectRetry', 'Hold', 'Keepalive', 'DelayOpen', 'IdleHold', 'SendHold'] as const;
export type TimerName = (typeof TIMERS)[number];

/** Events into the machine. Each names the RFC 4271 §8.1 events it stands for. */
export type FsmEvent =
  /** Event 1 ManualStart; Event 4 ManualStart_with_PassiveTcpEstablishment when config.passive */
  | { readonly type: 'ManualStart' }
  /** Event 2 ManualStop */
  | { readonly type: 'ManualStop'; readonly message?: string }
  /** Events 3, 5, 6, 7 AutomaticStart (with passive TCP / DampPeerOscillations variants, per config) */
  | { readonly type: 'AutomaticStart' }
  /**
   * Event 8 AutomaticStop (e.g. maximum prefixes, peer deconfigured): Cease with this subcode
   * and optional data (RFC 4486 §4: AFI/SAFI and limit for maximum prefixes). idleHold:
   * omitted, the usual damped restart; null, stay in Idle until ManualStart; seconds, restart after that.
   */
  | {
      readonly type: 'AutomaticStop';
      readonly subcode: number;
      readonly reason: string;
      readonly data?: Buffer;
      readonly idleHold?: number | null;
    }
  /** Event 9 ConnectRetryTimer_Expires */
  | { readonly type: 'ConnectRetryTimerExpires' }
  /** Event 10 HoldTimer_Expires */
  | { readonly type: 'HoldTimerExpires' }
  /** Event 11 KeepaliveTimer_Expires */
  | { readonly type: 'KeepaliveTimerExpires' }
  /** Event 12 DelayOpenTimer_Expires */
  | { readonly type: 'DelayOpenTimerExpires' }
  /** Event 13 IdleHoldTimer_Expires */
  | { readonly type: 'IdleHoldTimerExpires' }
  /** RFC 9687 Event 29 SendHoldTimer_Expires */
  | { readonly type: 'SendHoldTimerExpires' }
  /** Events 14 TcpConnection_Valid, 16 Tcp_CR_Acked, 17 TcpConnectionConfirmed (the driver refuses invalid ones, Event 15) */
  | { readonly type: 'TcpConnected' }
  /** Event 18 TcpConnectionFails */
  | { readonly type: 'TcpFails'; readonly reason?: string }
  /** Event 19 BGPOpen; Event 20 BGPOpen with DelayOpenTimer running (the machine knows which) */
  | { readonly type: 'Open'; readonly open: OpenMessage }
  /** Event 21 BGPHeaderErr */
  | { readonly type: 'HeaderError'; readonly error: BgpError }
  /** Event 22 BGPOpenMsgErr (the codec could not decode the OPEN) */
  | { readonly type: 'OpenError'; readonly error: BgpError }
  /** Event 23 OpenCollisionDump */
  | { readonly type: 'OpenCollisionDump' }
  /** Events 24 NotifMsgVerErr (code 2 subcode 1) and 25 NotifMsg */
  | { readonly type: 'Notification'; readonly message: NotificationMessage }
  /** Event 26 KeepAliveMsg */
  | { readonly type: 'Keepalive' }
  /** Event 27 UpdateMsg; the message travels with the event and comes back in the 'update' action */
  | { readonly type: 'Update'; readonly message: UpdateMessage }
  /** Event 28 UpdateMsgErr (an UPDATE error whose RFC 7606 action is session-reset) */
  | { readonly type: 'UpdateError'; readonly error: BgpError }
  /** RFC 2918 §4 / RFC 7313 ROUTE-REFRESH received (not an RFC 4271 event) */
  | { readonly type: 'RouteRefresh'; readonly afi: number; readonly safi: number; readonly subtype: number }
  /**
   * RFC 9687 §4: the driver reports its write side after each write or drain:
   * pending=false, nothing is waiting (the SendHoldTimer stops); pending=true,
   * bytes were accepted but more wait (the timer restarts). updates=true: the
   * write included UPDATEs, which restart the KeepaliveTimer (RFC 4271 §4.4).
   */
  | { readonly type: 'SendProgress'; readonly pending: boolean; readonly updates?: boolean };

export type FsmEventType = FsmEvent['type'];
export const EVENT_TYPES: readonly FsmEventType[] = [
  'ManualStart', 'ManualStop', 'AutomaticStart', 'AutomaticStop', 'ConnectRetryTimerExpires', 'HoldTimerExpires',
  'KeepaliveTimerExpires', 'DelayOpenTimerExpires', 'IdleHoldTimerExpires', 'SendHoldTimerExpires', 'TcpConnected',
  'TcpFails', 'Open', 'HeaderError', 'OpenError', 'OpenCollisionDump', 'Notification', 'Keepalive', 'Update',
  'UpdateError', 'RouteRefresh', 'SendProgress',
];

/** Actions out of the machine, for the driver to carry out in order. */
export type FsmAction =
  /** open a TCP connection to the peer */
  | { readonly type: 'connect' }
  /** close the TCP connection (after flushing anything sent just before) */
  | { readonly type: 'close' }
  | { readonly type: 'send'; readonly message: Message }
  /** arm (or re-arm) a timer to fire at this clock value, in ms */
  | { readonly type: 'setTimer'; readonly timer: TimerName; readonly deadline: number }
  | { readonly type: 'clearTimer'; readonly timer: TimerName }
  | { readonly type: 'stateChange'; readonly from: State; readonly to: State }
  | { readonly type: 'established'; readonly session: NegotiatedSession }
  /** the peer's UPDATE (the one of the Update event) is to be applied (Established only) */
  | { readonly type: 'update'; readonly message: UpdateMessage }
  /** answer a ROUTE-REFRESH for a negotiated family */
  | { readonly type: 'routeRefresh'; readonly afi: number; readonly safi: number; readonly subtype: number }
  /**
   * The connection went back to Idle. wasEstablished: routes learned on it must
   * go (RFC 4271 §8.2.2 "deletes all routes associated with this connection").
   * notification: what we sent (sent=true) or received, if any.
   */
  | {
      readonly type: 'down';
      readonly reason: string;
      readonly wasEstablished: boolean;
      readonly notification?: { readonly sent: boolean; readonly message: NotificationMessage };
    };

export interface Clock {
  /** milliseconds, monotonic */
  now(): number;
}

export interface FsmConfig {
  readonly localAs: number;
  /** our BGP Identifier, uint32 */
  readonly routerId: number;
  /** the peer's AS as configured; 0 accepts any */
  readonly peerAs: number;
  /** seconds we offer; 0 or ≥3. Default 90 (RFC 4271 §10 suggests 90). */
  readonly holdTime?: number;
  /** seconds between KEEPALIVEs when lower than a third of the negotiated hold time */
  readonly keepaliveTime?: number;
  /** seconds, default 120 (RFC 4271 §10) */
  readonly connectRetryTime?: number;
  /** seconds; 0 (default) disables DelayOpen (RFC 4271 §8.1.1 DelayOpen attribute) */
  readonly delayOpenTime?: number;
  /** wait for the peer to connect instead of connecting (PassiveTcpEstablishment) */
  readonly passive?: boolean;
  /** peer oscillation damping, seconds: first wait, cap, and how long Established counts as stable */
  readonly idleHold?: { readonly initial?: number; readonly max?: number; readonly stable?: number };
  /** seconds; default max(480, 2 × hold time) (RFC 9687 §4) */
  readonly sendHoldTime?: number;
  /** the capabilities of our OPEN */
  readonly capabilities: readonly Capability[];
}

/** RFC 4271 §8.2.2: the "large value" the HoldTimer gets while waiting for the peer's OPEN. */
export const OPEN_HOLD_MS = 240_000;
/** RFC 9687 §4: the SendHoldTime is at least 8 minutes. */
export const MIN_SEND_HOLD_MS = 480_000;

export function notificationOf(code: number, subcode: number, data: Buffer = Buffer.alloc(0), message?: string): NotificationMessage {
  return message === undefined
    ? { type: 'NOTIFICATION', code, subcode, data }
    : { type: 'NOTIFICATION', code, subcode, data, message };
}

const fromError = (e: BgpError): NotificationMessage => notificationOf(e.code, e.subcode, e.data);

/** RFC 6608 §4: the FSM error subcode for an unexpected message in each state. */
export function fsmSubcode(state: State): number {
  switch (state) {
    case 'OpenSent': return FsmSubcode.UnexpectedMessageInOpenSent;
    case 'OpenConfirm': return FsmSubcode.UnexpectedMessageInOpenConfirm;
    case 'Established': return FsmSubcode.UnexpectedMessageInEstablished;
    default: return FsmSubcode.Unspecified;
  }
}

type Handler = (m: SessionFsm, e: never) => void;
type Row = { readonly [E in FsmEventType]: (m: SessionFsm, e: Extract<FsmEvent, { type: E }>) => void };

// ---------------------------------------------------------------- shared cells

const ignore = (): void => {};

/** Idle, event 1/3 (and IdleHold expiry): start connecting, or listening when passive. */
function start(m: SessionFsm, manual: boolean): void {
  if (manual) {
    m.connectRetryCounter = 0;
    m.resetBackoff();
  } else if (m.timerRunning('IdleHold')) {
    return; // DampPeerOscillations: an AutomaticStart waits for the IdleHoldTimer
  }
  m.clearTimer('IdleHold');
  m.setTimer('ConnectRetry', m.connectRetryMs);
  if (m.config.passive) {
    m.enter('Active');
  } else {
    m.act({ type: 'connect' });
    m.enter('Connect');
  }
}

/** Connect/Active, events 16/17: either wait DelayOpen or send our OPEN. */
function tcpUp(m: SessionFsm): void {
  m.clearTimer('ConnectRetry');
  if (m.delayOpenMs > 0) {
    m.setTimer('DelayOpen', m.delayOpenMs);
    return;
  }
  m.sendOpen();
  m.setTimer('Hold', OPEN_HOLD_MS);
  m.enter('OpenSent');
}

/** Connect/Active, event 20: the peer's OPEN arrived while our DelayOpenTimer ran. */
function openDuringDelay(m: SessionFsm, e: { open: OpenMessage }): void {
  if (!m.timerRunning('DelayOpen')) return otherBeforeOpen(m, 'OPEN before TCP setup completed');
  m.clearTimer('ConnectRetry');
  m.clearTimer('DelayOpen');
  m.sendOpen();
  acceptOpen(m, e.open);
}

/** Connect/Active "any other event": close quietly, nothing was sent yet. */
function otherBeforeOpen(m: SessionFsm, reason: string): void {
  m.connectRetryCounter++;
  m.toIdle(reason, { damp: true });
}

/** OpenSent event 19 (and Connect/Active event 20): validate, negotiate, KEEPALIVE, OpenConfirm. */
function acceptOpen(m: SessionFsm, open: OpenMessage): void {
  const err = validateOpen(open, m.config);
  if (err) {
    m.connectRetryCounter++;
    m.toIdle(`bad OPEN: ${err.reason}`, { damp: true, notify: fromError(err) });
    return;
  }
  const local = m.localOpen();
  m.negotiated = negotiate(local, open, m.config.localAs);
  m.clearTimer('DelayOpen');
  m.clearTimer('ConnectRetry');
  m.send({ type: 'KEEPALIVE' });
  m.armSessionTimers();
  m.enter('OpenConfirm');
}

/** OpenSent/OpenConfirm/Established: an unexpected message or event, RFC 6608 subcode for the state. */
function fsmError(what: string) {
  return (m: SessionFsm): void => {
    m.connectRetryCounter++;
    const n = notificationOf(ErrorCode.FsmError, fsmSubcode(m.state));
    m.toIdle(`unexpected ${what} in ${m.state}`, { damp: true, notify: n });
  };
}

function closeWith(code: number, subcode: number, reason: string, opts: { manual?: boolean; message?: string } = {}) {
  return (m: SessionFsm): void => {
    if (opts.manual) m.connectRetryCounter = 0;
    else m.connectRetryCounter++;
    m.toIdle(reason, { damp: !opts.manual, notify: notificationOf(code, subcode, Buffer.alloc(0), opts.message) });
  };
}

function manualStopAfterOpen(m: SessionFsm, e: { message?: string }): void {
  closeWith(ErrorCode.Cease, CeaseSubcode.AdministrativeShutdown, 'administrative shutdown', {
    manual: true,
    ...(e.message !== undefined ? { message: e.message } : {}),
  })(m);
}

function manualStopBeforeOpen(m: SessionFsm): void {
  m.connectRetryCounter = 0;
  m.toIdle('administrative shutdown', { damp: false });
}

function automaticStop(m: SessionFsm, e: { subcode: number; reason: string; data?: Buffer; idleHold?: number | null }): void {
  m.connectRetryCounter++;
  m.toIdle(e.reason, { damp: true, notify: notificationOf(ErrorCode.Cease, e.subcode, e.data ?? Buffer.alloc(0)) });
  overrideIdleHold(m, e.idleHold);
}

/** AutomaticStop's idleHold: null stays down (no IdleHoldTimer), seconds replace the damped wait. */
function overrideIdleHold(m: SessionFsm, idleHold: number | null | undefined): void {
  if (idleHold === undefined) return;
  m.clearTimer('IdleHold');
  if (idleHold !== null) m.setTimer('IdleHold', idleHold * 1000);
}

function headerError(m: SessionFsm, e: { error: BgpError }): void {
  m.connectRetryCounter++;
  m.toIdle(`message header error: ${e.error.reason}`, { damp: true, notify: fromError(e.error) });
}

function notificationReceived(m: SessionFsm, e: { message: NotificationMessage }): void {
  // Event 24 (version error) does not count towards ConnectRetryCounter; 25 does.
  const versionError = e.message.code === ErrorCode.OpenMessage && e.message.subcode === 1;
  if (!versionError) m.connectRetryCounter++;
  m.toIdle(`NOTIFICATION received: code ${e.message.code} subcode ${e.message.subcode}`, {
    damp: true,
    received: e.message,
  });
}

function tcpFailsAfterOpen(m: SessionFsm, e: { reason?: string }): void {
  m.connectRetryCounter++;
  m.toIdle(`connection lost${e.reason ? `: ${e.reason}` : ''}`, { damp: true });
}

function holdExpired(m: SessionFsm): void {
  closeWith(ErrorCode.HoldTimerExpired, 0, 'hold timer expired')(m);
}

function sendHoldExpired(m: SessionFsm): void {
  // RFC 9687 §4: the NOTIFICATION is best effort — the socket is stuck by definition.
  closeWith(ErrorCode.SendHoldTimerExpired, 0, 'send hold timer expired: the peer is not reading')(m);
}

function collisionDump(m: SessionFsm): void {
  closeWith(ErrorCode.Cease, CeaseSubcode.ConnectionCollisionResolution, 'connection collision resolution')(m);
}

function sendProgress(m: SessionFsm, e: { pending: boolean; updates?: boolean }): void {
  if (e.pending) m.setTimer('SendHold', m.sendHoldMs());
  else m.clearTimer('SendHold');
  // RFC 4271 §4.4: an UPDATE sent serves as a keepalive; the next KEEPALIVE is due a full interval later.
  if (e.updates && m.state === 'Established' && m.timerRunning('Keepalive')) m.armKeepalive();
}

function keepaliveTimer(m: SessionFsm): void {
  m.send({ type: 'KEEPALIVE' });
  m.armKeepalive();
}

// ---------------------------------------------------------------- the table

const IDLE: Row = {
  ManualStart: (m) => start(m, true),
  // A stop while the IdleHoldTimer runs must cancel the AutomaticStart it stands for.
  ManualStop: (m) => m.clearTimer('IdleHold'),
  AutomaticStart: (m) => start(m, false),
  AutomaticStop: (m, e) => {
    m.clearTimer('IdleHold');
    overrideIdleHold(m, e.idleHold);
  },
  // Events 9-12, 15-28 "do not cause change in the state" of Idle (§8.2.2).
  ConnectRetryTimerExpires: ignore,
  HoldTimerExpires: ignore,
  KeepaliveTimerExpires: ignore,
  DelayOpenTimerExpires: ignore,
  IdleHoldTimerExpires: (m) => {
    m.clearTimer('IdleHold');
    start(m, false);
  },
  SendHoldTimerExpires: ignore,
  TcpConnected: ignore, // the driver refuses connections while Idle
  TcpFails: ignore,
  Open: ignore,
  HeaderError: ignore,
  OpenError: ignore,
  OpenCollisionDump: ignore,
  Notification: ignore,
  Keepalive: ignore,
  Update: ignore,
  UpdateError: ignore,
  RouteRefresh: ignore,
  SendProgress: ignore,
};

const CONNECT: Row = {
  ManualStart: ignore,
  ManualStop: manualStopBeforeOpen,
  AutomaticStart: ignore,
  AutomaticStop: (m, e) => {
    otherBeforeOpen(m, e.reason);
    overrideIdleHold(m, e.idleHold);
  },
  ConnectRetryTimerExpires: (m) => {
    // drop the attempt, try again
    m.act({ type: 'close' });
    m.clearTimer('DelayOpen');
    m.setTimer('ConnectRetry', m.connectRetryMs);
    m.act({ type: 'connect' });
  },
  HoldTimerExpires: (m) => otherBeforeOpen(m, 'hold timer expired before OPEN'),
  KeepaliveTimerExpires: (m) => otherBeforeOpen(m, 'keepalive timer in Connect'),
  DelayOpenTimerExpires: (m) => {
    m.sendOpen();
    m.setTimer('Hold', OPEN_HOLD_MS);
    m.enter('OpenSent');
  },
  IdleHoldTimerExpires: ignore,
  SendHoldTimerExpires: ignore,
  TcpConnected: tcpUp,
  TcpFails: (m, e) => {
    if (m.timerRunning('DelayOpen')) {
      m.clearTimer('DelayOpen');
      m.setTimer('ConnectRetry', m.connectRetryMs);
      m.act({ type: 'close' });
      m.enter('Active');
      return;
    }
    m.toIdle(`connect failed${e.reason ? `: ${e.reason}` : ''}`, { damp: true });
  },
  Open: openDuringDelay,
  // SendNOTIFICATIONwithoutOPEN is false: close without telling the peer.
  HeaderError: (m, e) => otherBeforeOpen(m, `message header error: ${e.error.reason}`),
  OpenError: (m, e) => otherBeforeOpen(m, `bad OPEN: ${e.error.reason}`),
  OpenCollisionDump: (m) => otherBeforeOpen(m, 'connection collision'),
  Notification: notificationReceived,
  Keepalive: (m) => otherBeforeOpen(m, 'KEEPALIVE before OPEN'),
  Update: (m) => otherBeforeOpen(m, 'UPDATE before OPEN'),
  UpdateError: (m) => otherBeforeOpen(m, 'UPDATE before OPEN'),
  RouteRefresh: (m) => otherBeforeOpen(m, 'ROUTE-REFRESH before OPEN'),
  SendProgress: ignore,
};

const ACTIVE: Row = {
  ...CONNECT,
  ConnectRetryTimerExpires: (m) => {
    m.setTimer('ConnectRetry', m.connectRetryMs);
    // A passive session keeps waiting: connecting would defeat the reason it
    // is passive (Calico's mesh has one side listen, one side dial).
    if (m.config.passive) return;
    m.act({ type: 'connect' });
    m.enter('Connect');
  },
  TcpFails: (m, e) => {
    m.clearTimer('DelayOpen');
    m.connectRetryCounter++;
    m.toIdle(`connection failed${e.reason ? `: ${e.reason}` : ''}`, { damp: true });
  },
};

const OPEN_SENT: Row = {
  ManualStart: ignore,
  ManualStop: manualStopAfterOpen,
  AutomaticStart: ignore,
  AutomaticStop: automaticStop,
  ConnectRetryTimerExpires: fsmError('ConnectRetry timer'),
  HoldTimerExpires: holdExpired,
  KeepaliveTimerExpires: fsmError('Keepalive timer'),
  DelayOpenTimerExpires: fsmError('DelayOpen timer'),
  IdleHoldTimerExpires: fsmError('IdleHold timer'),
  SendHoldTimerExpires: sendHoldExpired,
  TcpConnected: ignore, // a second connection is the driver's (collision detection)
  TcpFails: (m) => {
    // §8.2.2 OpenSent event 18: close, restart ConnectRetryTimer, listen: Active.
    m.act({ type: 'close' });
    m.clearTimer('Hold');
    m.clearTimer('SendHold');
    m.setTimer('ConnectRetry', m.connectRetryMs);
    m.enter('Active');
  },
  Open: (m, e) => acceptOpen(m, e.open),
  HeaderError: headerError,
  OpenError: (m, e) => {
    m.connectRetryCounter++;
    m.toIdle(`bad OPEN: ${e.error.reason}`, { damp: true, notify: fromError(e.error) });
  },
  OpenCollisionDump: collisionDump,
  Notification: notificationReceived,
  Keepalive: fsmError('KEEPALIVE'),
  Update: fsmError('UPDATE'),
  UpdateError: fsmError('UPDATE'),
  RouteRefresh: fsmError('ROUTE-REFRESH'),
  SendProgress: sendProgress,
};

const OPEN_CONFIRM: Row = {
  ...OPEN_SENT,
  HoldTimerExpires: holdExpired,
  KeepaliveTimerExpires: keepaliveTimer,
  TcpFails: tcpFailsAfterOpen,
  Open: fsmError('OPEN'),
  OpenError: fsmError('OPEN'),
  Keepalive: (m) => {
    m.armHold();
    m.enter('Established');
  },
};

const ESTABLISHED: Row = {
  ...OPEN_CONFIRM,
  Keepalive: (m) => m.armHold(),
  Update: (m, e) => {
    m.heard();
    m.act({ type: 'update', message: e.message });
  },
  UpdateError: (m, e) => {
    m.connectRetryCounter++;
    m.toIdle(`bad UPDATE: ${e.error.reason}`, { damp: true, notify: fromError(e.error) });
  },
  RouteRefresh: (m, e) => {
    m.heard();
    const s = m.negotiated;
    // RFC 2918 §4: a request for a family not negotiated, or without the capability, is ignored.
    if (!s || !s.routeRefresh || !s.families.includes((e.afi << 8) | e.safi)) return;
    m.act({ type: 'routeRefresh', afi: e.afi, safi: e.safi, subtype: e.subtype });
  },
};

export const TABLE: { readonly [S in State]: Row } = {
  Idle: IDLE,
  Connect: CONNECT,
  Active: ACTIVE,
  OpenSent: OPEN_SENT,
  OpenConfirm: OPEN_CONFIRM,
  Established: ESTABLISHED,
};

const TIMER_EVENT: { readonly [T in TimerName]: FsmEventType } = {
  ConnectRetry: 'ConnectRetryTimerExpires',
  Hold: 'HoldTimerExpires',
  Keepalive: 'KeepaliveTimerExpires',
  DelayOpen: 'DelayOpenTimerExpires',
  IdleHold: 'IdleHoldTimerExpires',
  SendHold: 'SendHoldTimerExpires',
};

// ---------------------------------------------------------------- the machine

export class SessionFsm {
  state: State = 'Idle';
  /** RFC 4271 §8.1.1 ConnectRetryCounter */
  connectRetryCounter = 0;
  /** set once the peer's OPEN was accepted; kept after going down for inspection */
  negotiated: NegotiatedSession | null = null;
  /** armed timers: name → deadline (clock ms) */
  readonly deadlines = new Map<TimerName, number>();
  /** when an UPDATE or ROUTE-REFRESH was last read since the HoldTimer was last set (heard()); -Infinity: none */
  heardAt = -Infinity;
  /** the next IdleHold duration, ms (peer oscillation damping) */
  idleHoldMs: number;
  /** clock value when the session last became Established */
  establishedAt: number | null = null;
  readonly connectRetryMs: number;
  readonly delayOpenMs: number;
  private readonly idleInitialMs: number;
  private readonly idleMaxMs: number;
  private readonly stableMs: number;
  private out: FsmAction[] = [];
  private sentOpen = false;

  constructor(
    readonly config: FsmConfig,
    private readonly clock: Clock,
  ) {
    const hold = config.holdTime ?? 90;
    if (hold !== 0 && hold < 3) throw new RangeError(`hold time ${hold}: must be 0 or at least 3 seconds`);
    this.connectRetryMs = (config.connectRetryTime ?? 120) * 1000;
    this.delayOpenMs = (config.delayOpenTime ?? 0) * 1000;
    this.idleInitialMs = (config.idleHold?.initial ?? 5) * 1000;
    this.idleMaxMs = (config.idleHold?.max ?? 120) * 1000;
    this.stableMs = (config.idleHold?.stable ?? 300) * 1000;
    this.idleHoldMs = this.idleInitialMs;
  }

  /** Feed one event; returns the actions to carry out, in order. */
  handle(event: FsmEvent): FsmAction[] {
    this.out = [];
    const cell = TABLE[this.state][event.type] as Handler;
    cell(this, event as never);
    return this.out;
  }

  /**
   * Fire every armed timer whose deadline has passed, earliest first (ties in
   * TIMERS order). Each timer fires at most once per call, so a zero-length
   * timer cannot spin.
   */
  tick(): FsmAction[] {
    const now = this.clock.now();
    const due = TIMERS.map((t) => [t, this.deadlines.get(t)] as const)
      .filter((x): x is readonly [TimerName, number] => x[1] !== undefined && x[1] <= now)
      .sort((a, b) => a[1] - b[1]);
    const all: FsmAction[] = [];
    for (const [t, d] of due) {
      if (this.deadlines.get(t) !== d) continue; // cleared or re-armed by an earlier timer's cell
      this.deadlines.delete(t);
      if (t === 'Hold') {
        const later = this.heldUntil(now);
        if (later !== null) {
          all.push({ type: 'setTimer', timer: t, deadline: later });
          continue;
        }
      }
      all.push(...this.handle({ type: TIMER_EVENT[t] } as FsmEvent));
    }
    return all;
  }

  /**
   * The driver could not run for a while (a stall of the process, measured by how late its timer fired): push the
   * Hold and SendHold deadlines that fell due meanwhile to now + graceMs (at most their own interval), so that time
   * in which we could neither read nor write is not counted against the peer. Returns the timers moved.
   */
  forgiveStall(graceMs: number): TimerName[] {
    const now = this.clock.now();
    const moved: TimerName[] = [];
    const full: Partial<Record<TimerName, number>> = { Hold: (this.negotiated?.holdTime ?? OPEN_HOLD_MS / 1000) * 1000, SendHold: this.sendHoldMs() };
    for (const t of ['Hold', 'SendHold'] as const) {
      const d = this.deadlines.get(t);
      if (d === undefined || d > now) continue;
      const later = t === 'Hold' ? this.heldUntil(now) : null;
      if (later !== null) continue; // the peer was heard from after all (heldUntil moved it): nothing to forgive
      this.deadlines.set(t, now + Math.min(graceMs, full[t] as number));
      moved.push(t);
    }
    return moved;
  }

  /** The earliest armed deadline, for the driver's single setTimeout; null when none. */
  nextDeadline(): number | null {
    let min: number | null = null;
    for (const d of this.deadlines.values()) if (min === null || d < min) min = d;
    return min;
  }

  // ---- helpers used by the table cells (public so the cells can be plain functions)

  act(a: FsmAction): void {
    this.out.push(a);
  }

  send(message: Message): void {
    this.out.push({ type: 'send', message });
  }

  timerRunning(t: TimerName): boolean {
    return this.deadlines.has(t);
  }

  setTimer(t: TimerName, ms: number): void {
    const deadline = this.clock.now() + ms;
    this.deadlines.set(t, deadline);
    this.out.push({ type: 'setTimer', timer: t, deadline });
  }

  clearTimer(t: TimerName): void {
    if (this.deadlines.delete(t)) this.out.push({ type: 'clearTimer', timer: t });
  }

  resetBackoff(): void {
    this.idleHoldMs = this.idleInitialMs;
  }

  localOpen(): OpenMessage {
    return {
      type: 'OPEN',
      version: 4,
      myAs: myAsField(this.config.localAs),
      holdTime: this.config.holdTime ?? 90,
      bgpId: this.config.routerId >>> 0,
      capabilities: this.config.capabilities,
    };
  }

  sendOpen(): void {
    this.sentOpen = true;
    this.send(this.localOpen());
    // RFC 9687: from our OPEN on, a peer that stops reading is detected.
    this.setTimer('SendHold', this.sendHoldMs());
  }

  sendHoldMs(): number {
    if (this.config.sendHoldTime !== undefined) return this.config.sendHoldTime * 1000;
    const hold = this.negotiated?.holdTime ?? this.config.holdTime ?? 90;
    return Math.max(MIN_SEND_HOLD_MS, 2 * hold * 1000);
  }

  /** Negotiated timers on entering OpenConfirm: hold 0 disables both (RFC 4271 §4.2). */
  armSessionTimers(): void {
    if (this.negotiated?.holdTime === 0) {
      this.clearTimer('Hold');
      this.clearTimer('Keepalive');
      return;
    }
    this.armHold();
    this.armKeepalive();
  }

  armHold(): void {
    const hold = this.negotiated?.holdTime ?? 0;
    this.heardAt = -Infinity;
    if (hold > 0) this.setTimer('Hold', hold * 1000);
  }

  /**
   * An UPDATE or ROUTE-REFRESH was read in Established: RFC 4271 §6.5 restarts the HoldTimer. Restarting it per
   * message meant a new deadline (and a re-armed driver timer) per UPDATE, tens of thousands in a full table; the
   * time read is remembered instead, and when the armed deadline comes, tick() moves it to that time + hold rather
   * than expiring. The expiry moment is the same: hold seconds after the last message read.
   */
  heard(): void {
    this.heardAt = this.clock.now();
  }

  /** When the Hold deadline is due at `now`: the later deadline a message read since asks for, or null (expire). */
  heldUntil(now: number): number | null {
    const hold = this.negotiated?.holdTime ?? 0;
    if (this.state !== 'Established' || hold <= 0) return null;
    const at = this.heardAt + hold * 1000;
    if (at <= now) return null;
    this.deadlines.set('Hold', at);
    return at;
  }

  armKeepalive(): void {
    const s = this.negotiated;
    if (!s || s.holdTime === 0) return;
    const ka = this.config.keepaliveTime !== undefined ? Math.min(this.config.keepaliveTime, s.keepaliveTime) : s.keepaliveTime;
    if (ka > 0) this.setTimer('Keepalive', ka * 1000);
  }

  /** State entry; Established's entry announces the session. */
  enter(to: State): void {
    const from = this.state;
    if (from === to) return;
    this.state = to;
    this.out.push({ type: 'stateChange', from, to });
    if (to === 'Established' && this.negotiated) {
      this.establishedAt = this.clock.now();
      this.out.push({ type: 'established', session: this.negotiated });
    }
  }

  /**
   * Every fall back to Idle goes through here (OpenBGPD's change_state idea):
   * optional NOTIFICATION, timers stopped, connection closed, 'down' reported,
   * and — unless it was a ManualStop — the IdleHoldTimer armed with back-off.
   */
  toIdle(reason: string, opts: { damp: boolean; notify?: NotificationMessage; received?: NotificationMessage }): void {
    const from = this.state;
    const wasEstablished = from === 'Established';
    if (opts.notify) this.send(opts.notify);
    for (const t of TIMERS) this.clearTimer(t);
    this.act({ type: 'close' });
    const notification = opts.notify
      ? { sent: true, message: opts.notify }
      : opts.received
        ? { sent: false, message: opts.received }
        : undefined;
    this.out.push(notification ? { type: 'down', reason, wasEstablished, notification } : { type: 'down', reason, wasEstablished });
    if (wasEstablished && this.establishedAt !== null && this.clock.now() - this.establishedAt >= this.stableMs) {
      this.resetBackoff();
    }
    this.establishedAt = null;
    this.sentOpen = false;
    this.enter('Idle');
    if (opts.damp) {
      this.setTimer('IdleHold', this.idleHoldMs);
      this.idleHoldMs = Math.min(this.idleHoldMs * 2, this.idleMaxMs);
    }
  }

  /** true once our OPEN went out on this connection */
  get openSent(): boolean {
    return this.sentOpen;
  }
}
