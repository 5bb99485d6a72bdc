// The session FSM (RFC 4271 §8) as a table: every (state, event) pair, OPEN
// validation, capability negotiation, collision resolution, timers against a
// fake clock. No sockets, no real time.
import t from 'tap';
import {
  BgpError, CeaseSubcode, EVENT_TYPES, ErrorCode, IPV4_UNICAST, IPV6_UNICAST, MIN_SEND_HOLD_MS, OPEN_HOLD_MS, STATES,
  SessionFsm, TABLE, buildCapabilities, collisionWinner, familyKey, negotiate, notificationOf, validateOpen,
} from '../../bgp/index.js';
import type { Capability, FsmAction, FsmConfig, FsmEvent, FsmEventType, Message, OpenMessage, State } from '../../bgp/index.js';

class FakeClock {
  t = 1_000_000;
  now(): number {
    return this.t;
  }
}

const LOCAL_AS = 64512;
const PEER_AS = 65001;
const ROUTER_ID = 0x0a000001; // 10.0.0.1
const PEER_ID = 0x0a000002;

const mp = (afi: number, safi: number): Capability => ({ code: 1, name: 'multiprotocol', afi, safi });
const as4 = (asn: number): Capability => ({ code: 65, name: '4-octet-as', asn });
const RR: Capability = { code: 2, name: 'route-refresh' };

function config(over: Partial<FsmConfig> = {}): FsmConfig {
  return {
    localAs: LOCAL_AS,
    routerId: ROUTER_ID,
    peerAs: PEER_AS,
    holdTime: 90,
    capabilities: [mp(1, 1), mp(2, 1), RR, as4(LOCAL_AS)],
    ...over,
  };
}

function peerOpen(over: Partial<OpenMessage> = {}): OpenMessage {
  return {
    type: 'OPEN',
    version: 4,
    myAs: PEER_AS,
    holdTime: 30,
    bgpId: PEER_ID,
    capabilities: [mp(1, 1), mp(2, 1), RR, as4(PEER_AS)],
    ...over,
  };
}

/** A machine driven into a state by real events (not by poking fields). */
function machineIn(state: State, over: Partial<FsmConfig> = {}): { m: SessionFsm; clock: FakeClock } {
  const clock = new FakeClock();
  const m = new SessionFsm(config({ ...(state === 'Active' ? { passive: true } : {}), ...over }), clock);
  const path: FsmEvent[] = [];
  if (state !== 'Idle') path.push({ type: 'ManualStart' });
  if (['OpenSent', 'OpenConfirm', 'Established'].includes(state)) path.push({ type: 'TcpConnected' });
  if (['OpenConfirm', 'Established'].includes(state)) path.push({ type: 'Open', open: peerOpen() });
  if (state === 'Established') path.push({ type: 'Keepalive' });
  for (const e of path) m.handle(e);
  if (m.state !== state) throw new Error(`could not reach ${state}: in ${m.state}`);
  return { m, clock };
}

const SAMPLE: { readonly [E in FsmEventType]: Extract<FsmEvent, { type: E }> } = {
  ManualStart: { type: 'ManualStart' },
  ManualStop: { type: 'ManualStop' },
  AutomaticStart: { type: 'AutomaticStart' },
  AutomaticStop: { type: 'AutomaticStop', subcode: CeaseSubcode.MaximumPrefixesReached, reason: 'maximum prefixes' },
  ConnectRetryTimerExpires: { type: 'ConnectRetryTimerExpires' },
  HoldTimerExpires: { type: 'HoldTimerExpires' },
  KeepaliveTimerExpires: { type: 'KeepaliveTimerExpires' },
  DelayOpenTimerExpires: { type: 'DelayOpenTimerExpires' },
  IdleHoldTimerExpires: { type: 'IdleHoldTimerExpires' },
  SendHoldTimerExpires: { type: 'SendHoldTimerExpires' },
  TcpConnected: { type: 'TcpConnected' },
  TcpFails: { type: 'TcpFails', reason: 'ECONNRESET' },
  Open: { type: 'Open', open: peerOpen() },
  HeaderError: { type: 'HeaderError', error: new BgpError(1, 2, 'bad message length') },
  OpenError: { type: 'OpenError', error: new BgpError(2, 4, 'unsupported optional parameter') },
  OpenCollisionDump: { type: 'OpenCollisionDump' },
  Notification: { type: 'Notification', message: notificationOf(6, 2) },
  Keepalive: { type: 'Keepalive' },
  Update: { type: 'Update', message: { type: 'UPDATE', withdrawn: { afi: 1, safi: 1, prefixes: [], pathIds: null }, attributes: {}, nlri: { afi: 1, safi: 1, prefixes: [], pathIds: null } } },
  UpdateError: { type: 'UpdateError', error: new BgpError(3, 1, 'malformed attribute list') },
  RouteRefresh: { type: 'RouteRefresh', afi: 1, safi: 1, subtype: 0 },
  SendProgress: { type: 'SendProgress', pending: true },
};

/** What a cell sends: nothing, a message type, or a NOTIFICATION [code, subcode]. */
type Sent = '-' | 'OPEN' | 'KEEPALIVE' | readonly [number, number];
type Cell = readonly [State, Sent, ...string[]];

// Expected next state, message sent, and other notable actions, per state and event.
const I: Cell = ['Idle', '-'];
const EXPECT: { readonly [S in State]: { readonly [E in FsmEventType]: Cell } } = {
  Idle: {
    ManualStart: ['Connect', '-', 'connect'], ManualStop: I, AutomaticStart: ['Connect', '-', 'connect'], AutomaticStop: I,
    ConnectRetryTimerExpires: I, HoldTimerExpires: I, KeepaliveTimerExpires: I, DelayOpenTimerExpires: I,
    IdleHoldTimerExpires: ['Connect', '-', 'connect'], SendHoldTimerExpires: I, TcpConnected: I, TcpFails: I, Open: I,
    HeaderError: I, OpenError: I, OpenCollisionDump: I, Notification: I, Keepalive: I, Update: I, UpdateError: I,
    RouteRefresh: I, SendProgress: I,
  },
  Connect: {
    ManualStart: ['Connect', '-'], ManualStop: ['Idle', '-', 'close'], AutomaticStart: ['Connect', '-'], AutomaticStop: I,
    ConnectRetryTimerExpires: ['Connect', '-', 'close', 'connect'], HoldTimerExpires: I, KeepaliveTimerExpires: I,
    DelayOpenTimerExpires: ['OpenSent', 'OPEN'], IdleHoldTimerExpires: ['Connect', '-'], SendHoldTimerExpires: ['Connect', '-'],
    TcpConnected: ['OpenSent', 'OPEN'], TcpFails: ['Idle', '-', 'down'], Open: I, HeaderError: I, OpenError: I,
    OpenCollisionDump: I, Notification: I, Keepalive: I, Update: I, UpdateError: I, RouteRefresh: I, SendProgress: ['Connect', '-'],
  },
  Active: {
    ManualStart: ['Active', '-'], ManualStop: I, AutomaticStart: ['Active', '-'], AutomaticStop: I,
    ConnectRetryTimerExpires: ['Active', '-', 'setTimer'], HoldTimerExpires: I, KeepaliveTimerExpires: I,
    DelayOpenTimerExpires: ['OpenSent', 'OPEN'], IdleHoldTimerExpires: ['Active', '-'], SendHoldTimerExpires: ['Active', '-'],
    TcpConnected: ['OpenSent', 'OPEN'], TcpFails: I, Open: I, HeaderError: I, OpenError: I, OpenCollisionDump: I,
    Notification: I, Keepalive: I, Update: I, UpdateError: I, RouteRefresh: I, SendProgress: ['Active', '-'],
  },
  OpenSent: {
    ManualStart: ['OpenSent', '-'], ManualStop: ['Idle', [6, 2]], AutomaticStart: ['OpenSent', '-'], AutomaticStop: ['Idle', [6, 1]],
    ConnectRetryTimerExpires: ['Idle', [5, 1]], HoldTimerExpires: ['Idle', [4, 0]], KeepaliveTimerExpires: ['Idle', [5, 1]],
    DelayOpenTimerExpires: ['Idle', [5, 1]], IdleHoldTimerExpires: ['Idle', [5, 1]], SendHoldTimerExpires: ['Idle', [8, 0]],
    TcpConnected: ['OpenSent', '-'], TcpFails: ['Active', '-', 'close'], Open: ['OpenConfirm', 'KEEPALIVE'],
    HeaderError: ['Idle', [1, 2]], OpenError: ['Idle', [2, 4]], OpenCollisionDump: ['Idle', [6, 7]], Notification: ['Idle', '-', 'down'],
    Keepalive: ['Idle', [5, 1]], Update: ['Idle', [5, 1]], UpdateError: ['Idle', [5, 1]], RouteRefresh: ['Idle', [5, 1]],
    SendProgress: ['OpenSent', '-'],
  },
  OpenConfirm: {
    ManualStart: ['OpenConfirm', '-'], ManualStop: ['Idle', [6, 2]], AutomaticStart: ['OpenConfirm', '-'], AutomaticStop: ['Idle', [6, 1]],
    ConnectRetryTimerExpires: ['Idle', [5, 2]], HoldTimerExpires: ['Idle', [4, 0]], KeepaliveTimerExpires: ['OpenConfirm', 'KEEPALIVE'],
    DelayOpenTimerExpires: ['Idle', [5, 2]], IdleHoldTimerExpires: ['Idle', [5, 2]], SendHoldTimerExpires: ['Idle', [8, 0]],
    TcpConnected: ['OpenConfirm', '-'], TcpFails: ['Idle', '-', 'close'], Open: ['Idle', [5, 2]], HeaderError: ['Idle', [1, 2]],
    OpenError: ['Idle', [5, 2]], OpenCollisionDump: ['Idle', [6, 7]], Notification: I, Keepalive: ['Established', '-', 'established'],
    Update: ['Idle', [5, 2]], UpdateError: ['Idle', [5, 2]], RouteRefresh: ['Idle', [5, 2]], SendProgress: ['OpenConfirm', '-'],
  },
  Established: {
    ManualStart: ['Established', '-'], ManualStop: ['Idle', [6, 2], 'down'], AutomaticStart: ['Established', '-'],
    AutomaticStop: ['Idle', [6, 1]], ConnectRetryTimerExpires: ['Idle', [5, 3]], HoldTimerExpires: ['Idle', [4, 0]],
    KeepaliveTimerExpires: ['Established', 'KEEPALIVE'], DelayOpenTimerExpires: ['Idle', [5, 3]], IdleHoldTimerExpires: ['Idle', [5, 3]],
    SendHoldTimerExpires: ['Idle', [8, 0]], TcpConnected: ['Established', '-'], TcpFails: ['Idle', '-', 'down'],
    Open: ['Idle', [5, 3]], HeaderError: ['Idle', [1, 2]], OpenError: ['Idle', [5, 3]], OpenCollisionDump: ['Idle', [6, 7]],
    Notification: ['Idle', '-', 'down'], Keepalive: ['Established', '-'], Update: ['Established', '-', 'update'],
    UpdateError: ['Idle', [3, 1]], RouteRefresh: ['Established', '-', 'routeRefresh'], SendProgress: ['Established', '-'],
  },
};

function sentOf(actions: FsmAction[]): Sent {
  const sends = actions.filter((a) => a.type === 'send');
  if (sends.length === 0) return '-';
  const m = sends[0]!.message;
  if (m.type === 'NOTIFICATION') return [m.code, m.subcode];
  return m.type === 'OPEN' ? 'OPEN' : 'KEEPALIVE';
}

t.test('every (state, event) pair has a table cell and behaves as expected', async (t) => {
  let pairs = 0;
  for (const s of STATES) {
    for (const e of EVENT_TYPES) {
      t.type(TABLE[s][e], 'function', `${s} × ${e} has a cell`);
      const [next, sent, ...notable] = EXPECT[s][e];
      const { m } = machineIn(s);
      const actions = m.handle(SAMPLE[e] as FsmEvent);
      t.equal(m.state, next, `${s} × ${e} → ${next}`);
      t.same(sentOf(actions), sent, `${s} × ${e} sends ${JSON.stringify(sent)}`);
      for (const kind of notable) t.ok(actions.some((a) => a.type === kind), `${s} × ${e} emits ${kind}`);
      if (next === 'Idle' && s !== 'Idle') {
        t.ok(actions.some((a) => a.type === 'close'), `${s} × ${e}: connection closed on the way to Idle`);
        t.equal(m.deadlines.has('Hold') || m.deadlines.has('Keepalive') || m.deadlines.has('ConnectRetry'), false, `${s} × ${e}: timers stopped`);
        const down = actions.find((a) => a.type === 'down');
        t.equal(down?.type === 'down' && down.wasEstablished, s === 'Established', `${s} × ${e}: down.wasEstablished`);
      }
      pairs++;
    }
  }
  t.equal(pairs, STATES.length * EVENT_TYPES.length);
  t.equal(EVENT_TYPES.length, 22);
});

t.test('unexpected messages get the RFC 6608 subcode of the state', async (t) => {
  const rows: [State, number][] = [['OpenSent', 1], ['OpenConfirm', 2], ['Established', 3]];
  for (const [s, sub] of rows) {
    const { m } = machineIn(s);
    const a = m.handle({ type: s === 'OpenSent' ? 'Keepalive' : 'Open', ...(s === 'OpenSent' ? {} : { open: peerOpen() }) } as FsmEvent);
    const n = a.find((x) => x.type === 'send');
    t.match(n, { message: { type: 'NOTIFICATION', code: ErrorCode.FsmError, subcode: sub } }, s);
  }
});

t.test('reaching Established: negotiated session, timers from the negotiated hold time', async (t) => {
  const { m, clock } = machineIn('OpenConfirm');
  clock.t += 500;
  const a = m.handle({ type: 'Keepalive' });
  const est = a.find((x) => x.type === 'established');
  t.ok(est);
  if (est?.type !== 'established') return;
  t.equal(est.session.holdTime, 30, 'min(90, 30)');
  t.equal(est.session.keepaliveTime, 10);
  t.equal(est.session.peerAs, PEER_AS);
  t.same(est.session.families, [IPV4_UNICAST, IPV6_UNICAST]);
  t.equal(m.deadlines.get('Hold'), clock.t + 30_000, 'hold restarted on KEEPALIVE');
  t.same(a.find((x) => x.type === 'stateChange'), { type: 'stateChange', from: 'OpenConfirm', to: 'Established' });

  // keepalive timer: fires at +10 s, sends KEEPALIVE, re-arms
  clock.t += 10_000;
  const k = m.tick();
  t.same(sentOf(k), 'KEEPALIVE');
  t.equal(m.deadlines.get('Keepalive'), clock.t + 10_000);
  // hold expires 30 s after the last KEEPALIVE received
  clock.t += 20_001;
  const h = m.tick();
  const kinds = h.filter((x) => x.type === 'send').map((x) => x.message);
  t.match(kinds, [{ type: 'KEEPALIVE' }, { type: 'NOTIFICATION', code: 4, subcode: 0 }], 'the due keepalive first, then the hold expiry');
  t.equal(m.state, 'Idle');
});

t.test('hold timer after UPDATEs (RFC 4271 §6.5): expires hold seconds after the last message read, not re-armed per UPDATE', async (t) => {
  const { m, clock } = machineIn('Established');
  const armed = m.deadlines.get('Hold');
  t.equal(armed, clock.t + 30_000);
  clock.t += 20_000;
  const a = m.handle(SAMPLE.Update);
  t.ok(a.some((x) => x.type === 'update'), 'the UPDATE is passed on');
  t.notOk(a.some((x) => x.type === 'setTimer'), 'no timer action per UPDATE');
  t.equal(m.deadlines.get('Hold'), armed, 'the armed deadline stays where it was');
  // the old deadline comes: not an expiry, the deadline moves to 30 s after the UPDATE
  clock.t += 10_001;
  const b = m.tick();
  t.equal(m.state, 'Established', 'not expired: an UPDATE was read 10 s ago');
  t.notOk(b.some((x) => x.type === 'send' && x.message.type === 'NOTIFICATION'), 'no NOTIFICATION');
  t.equal(m.deadlines.get('Hold'), clock.t - 10_001 + 30_000, 'moved to the UPDATE + hold time');
  t.match(b.find((x) => x.type === 'setTimer' && x.timer === 'Hold'), { deadline: clock.t - 10_001 + 30_000 }, 'and the driver is told');
  // a ROUTE-REFRESH counts as heard too; then silence: expiry 30 s after it, not before
  clock.t += 5_000;
  m.handle(SAMPLE.RouteRefresh);
  const heard = clock.t;
  clock.t = heard + 29_999;
  m.tick();
  t.equal(m.state, 'Established', 'one ms before hold after the last message: still up');
  clock.t = heard + 30_000;
  const c = m.tick();
  t.equal(m.state, 'Idle', 'hold seconds after the last message read: expired');
  t.match(c.filter((x) => x.type === 'send').map((x) => x.message).at(-1), { type: 'NOTIFICATION', code: 4, subcode: 0 });
});

t.test('a stall of the process forgives the Hold only when nothing was read: a read UPDATE just moves it', async (t) => {
  const { m, clock } = machineIn('Established');
  clock.t += 25_000;
  m.handle(SAMPLE.Update);
  clock.t += 40_000; // the driver fires late (a stall); the UPDATE read at +25 s says hold until +55 s: already past
  t.same(m.forgiveStall(40_000), ['Hold'], 'past due and nothing read since +25 s: forgiven');
  const { m: m2, clock: c2 } = machineIn('Established');
  c2.t += 25_000;
  m2.handle(SAMPLE.Update);
  c2.t += 10_000; // the first deadline (+30 s) is past, the UPDATE's (+55 s) is not
  t.same(m2.forgiveStall(5_000), [], 'not due after all: nothing to forgive');
  t.equal(m2.deadlines.get('Hold'), c2.t - 35_000 + 55_000, 'moved to the UPDATE + hold time');
});

t.test('OpenSent: hold timer is the large value, then the negotiated one', async (t) => {
  const { m, clock } = machineIn('Connect');
  const a = m.handle({ type: 'TcpConnected' });
  t.match(a.find((x) => x.type === 'setTimer' && x.timer === 'Hold'), { deadline: clock.t + OPEN_HOLD_MS });
  t.equal(m.deadlines.get('SendHold'), clock.t + MIN_SEND_HOLD_MS, 'send hold armed with our OPEN');
  m.handle({ type: 'Open', open: peerOpen() });
  t.equal(m.deadlines.get('Hold'), clock.t + 30_000);
  t.equal(m.deadlines.get('Keepalive'), clock.t + 10_000);
});

t.test('hold time 0 negotiated: no hold and no keepalive timers', async (t) => {
  const { m } = machineIn('OpenSent');
  m.handle({ type: 'Open', open: peerOpen({ holdTime: 0 }) });
  t.equal(m.state, 'OpenConfirm');
  t.notOk(m.deadlines.has('Hold'));
  t.notOk(m.deadlines.has('Keepalive'));
  m.handle({ type: 'Keepalive' });
  t.equal(m.state, 'Established');
  t.notOk(m.deadlines.has('Hold'));
});

t.test('DelayOpen: OPEN held back until the timer or the peer OPEN', async (t) => {
  const { m, clock } = machineIn('Connect', { delayOpenTime: 5 });
  let a = m.handle({ type: 'TcpConnected' });
  t.equal(m.state, 'Connect');
  t.same(sentOf(a), '-');
  t.equal(m.deadlines.get('DelayOpen'), clock.t + 5000);
  t.notOk(m.deadlines.has('ConnectRetry'));
  a = m.handle({ type: 'Open', open: peerOpen() });
  t.equal(m.state, 'OpenConfirm', 'event 20: OPEN while DelayOpen runs');
  t.same(a.filter((x) => x.type === 'send').map((x) => x.message.type), ['OPEN', 'KEEPALIVE']);

  const second = machineIn('Connect', { delayOpenTime: 5 });
  second.m.handle({ type: 'TcpConnected' });
  second.clock.t += 5000;
  a = second.m.tick();
  t.equal(second.m.state, 'OpenSent');
  t.same(sentOf(a), 'OPEN');

  // TCP fails while DelayOpen runs: back to Active with ConnectRetry armed;
  // not being passive, its expiry dials again (§8.2.2 Active, event 9)
  const third = machineIn('Connect', { delayOpenTime: 5 });
  third.m.handle({ type: 'TcpConnected' });
  third.m.handle({ type: 'TcpFails' });
  t.equal(third.m.state, 'Active');
  t.ok(third.m.deadlines.has('ConnectRetry'));
  third.clock.t += 120_000;
  t.ok(third.m.tick().some((x) => x.type === 'connect'));
  t.equal(third.m.state, 'Connect');
});

t.test('bad OPEN in OpenSent: the validation error goes out and the machine falls to Idle', async (t) => {
  const { m } = machineIn('OpenSent');
  const a = m.handle({ type: 'Open', open: peerOpen({ holdTime: 2 }) });
  t.same(sentOf(a), [2, 6]);
  t.equal(m.state, 'Idle');
  t.match(a.find((x) => x.type === 'down'), { notification: { sent: true, message: { code: 2, subcode: 6 } } });
});

t.test('SendHold (RFC 9687): restarted by progress, stopped when nothing waits, closes when stuck', async (t) => {
  const { m, clock } = machineIn('Established');
  m.handle({ type: 'SendProgress', pending: false });
  t.notOk(m.deadlines.has('SendHold'), 'nothing pending: not running');
  m.handle({ type: 'SendProgress', pending: true });
  // max(8 min, 2 × 30 s) = 8 min
  t.equal(m.deadlines.get('SendHold'), clock.t + 480_000);
  clock.t += 479_999;
  m.handle({ type: 'Keepalive' }); // keep the hold timer away
  t.same(m.tick().filter((x) => x.type === 'send' && x.message.type === 'NOTIFICATION'), []);
  clock.t += 1;
  m.handle({ type: 'Keepalive' });
  const a = m.tick();
  t.match(a.find((x) => x.type === 'send' && x.message.type === 'NOTIFICATION'), { message: { code: 8, subcode: 0 } });
  t.equal(m.state, 'Idle');

  const big = machineIn('OpenSent', { holdTime: 600 });
  big.m.handle({ type: 'Open', open: peerOpen({ holdTime: 300 }) });
  big.m.handle({ type: 'SendProgress', pending: true });
  t.equal(big.m.deadlines.get('SendHold'), big.clock.t + 600_000, '2 × 300 s when above 8 min');
});

t.test('ManualStop: Cease/Administrative Shutdown with the RFC 9003 message, no automatic restart', async (t) => {
  const { m } = machineIn('Established');
  const a = m.handle({ type: 'ManualStop', message: 'maintenance' });
  t.match(a.find((x) => x.type === 'send'), { message: { code: 6, subcode: 2, message: 'maintenance' } });
  t.notOk(m.deadlines.has('IdleHold'));
  t.equal(m.connectRetryCounter, 0);
});

t.test('route refresh is passed on only for negotiated families', async (t) => {
  const { m } = machineIn('Established');
  t.ok(m.handle({ type: 'RouteRefresh', afi: 2, safi: 1, subtype: 0 }).some((a) => a.type === 'routeRefresh'));
  t.notOk(m.handle({ type: 'RouteRefresh', afi: 1, safi: 128, subtype: 0 }).some((a) => a.type === 'routeRefresh'));
  const noRr = machineIn('OpenSent');
  noRr.m.handle({ type: 'Open', open: peerOpen({ capabilities: [mp(1, 1), as4(PEER_AS)] }) });
  noRr.m.handle({ type: 'Keepalive' });
  t.notOk(noRr.m.handle({ type: 'RouteRefresh', afi: 1, safi: 1, subtype: 0 }).some((a) => a.type === 'routeRefresh'));
});

t.test('IdleHold back-off doubles up to the cap, and resets after a stable session', async (t) => {
  const clock = new FakeClock();
  const m = new SessionFsm(config({ idleHold: { initial: 5, max: 60, stable: 300 } }), clock);
  m.handle({ type: 'ManualStart' });
  const waits: number[] = [];
  for (let i = 0; i < 6; i++) {
    m.handle({ type: 'TcpConnected' });
    m.handle({ type: 'HoldTimerExpires' });
    t.equal(m.state, 'Idle');
    const d = m.deadlines.get('IdleHold');
    if (d === undefined) throw new Error('IdleHold not armed');
    waits.push((d - clock.t) / 1000);
    // an AutomaticStart while damped is ignored
    m.handle({ type: 'AutomaticStart' });
    t.equal(m.state, 'Idle');
    clock.t = d;
    m.tick();
    t.equal(m.state, 'Connect', 'IdleHold expiry starts the session');
  }
  t.same(waits, [5, 10, 20, 40, 60, 60]);
  t.equal(m.connectRetryCounter, 6);

  // a session Established for the stable period resets the back-off
  m.handle({ type: 'TcpConnected' });
  m.handle({ type: 'Open', open: peerOpen() });
  m.handle({ type: 'Keepalive' });
  clock.t += 300_000;
  m.handle({ type: 'Notification', message: notificationOf(6, 4) });
  t.equal((m.deadlines.get('IdleHold') ?? 0) - clock.t, 5000);

  // a ManualStart also resets it
  m.handle({ type: 'ManualStart' });
  m.handle({ type: 'TcpConnected' });
  m.handle({ type: 'HoldTimerExpires' });
  t.equal((m.deadlines.get('IdleHold') ?? 0) - clock.t, 5000);
});

t.test('tick fires only due timers, each once', async (t) => {
  const clock = new FakeClock();
  const m = new SessionFsm(config({ connectRetryTime: 0 }), clock);
  m.handle({ type: 'ManualStart' });
  const a = m.tick();
  t.equal(a.filter((x) => x.type === 'connect').length, 1, 'a zero ConnectRetry fires once per tick');
  t.equal(m.state, 'Connect');
  t.equal(m.nextDeadline(), clock.t);
  const idle = new SessionFsm(config(), clock);
  t.same(idle.tick(), []);
  t.equal(idle.nextDeadline(), null);
});

t.test('the constructor refuses a hold time of 1 or 2', async (t) => {
  t.throws(() => new SessionFsm(config({ holdTime: 2 }), new FakeClock()), RangeError);
});

// ---------------------------------------------------------------- OPEN validation

t.test('OPEN validation: code, subcode and data', async (t) => {
  const want = { localAs: LOCAL_AS, routerId: ROUTER_ID, peerAs: PEER_AS };
  const rows: [string, Partial<OpenMessage>, typeof want | null, [number, number] | null][] = [
    ['good', {}, null, null],
    ['version 3', { version: 3 }, null, [2, 1]],
    ['peer AS mismatch', { myAs: 65002, capabilities: [as4(65002)] }, null, [2, 2]],
    ['4-octet capability wins over My AS', { myAs: PEER_AS, capabilities: [as4(65002)] }, null, [2, 2]],
    ['AS_TRANS with a matching 4-octet AS', { myAs: 23456, capabilities: [as4(4200000001)] }, { ...want, peerAs: 4200000001 }, null],
    ['2-octet peer, no capability', { capabilities: [] }, null, null],
    ['AS 0', { myAs: 0, capabilities: [] }, { ...want, peerAs: 0 }, [2, 2]],
    ['any AS accepted when none configured', { myAs: 65099, capabilities: [] }, { ...want, peerAs: 0 }, null],
    ['hold time 1', { holdTime: 1 }, null, [2, 6]],
    ['hold time 2', { holdTime: 2 }, null, [2, 6]],
    ['hold time 0', { holdTime: 0 }, null, null],
    ['hold time 3', { holdTime: 3 }, null, null],
    ['BGP Identifier 0', { bgpId: 0 }, null, [2, 3]],
    ['iBGP with our identifier', { myAs: LOCAL_AS, bgpId: ROUTER_ID, capabilities: [] }, { ...want, peerAs: LOCAL_AS }, [2, 3]],
    ['eBGP with our identifier (RFC 6286 §2.2 allows it)', { bgpId: ROUTER_ID }, null, null],
    ['unknown optional parameter', { otherParameters: [{ type: 1, value: Buffer.from([0]) }] }, null, [2, 4]],
  ];
  for (const [name, over, w, exp] of rows) {
    const err = validateOpen(peerOpen(over), w ?? want);
    if (exp === null) t.equal(err, null, name);
    else t.same([err?.code, err?.subcode], exp, name);
  }
  t.same(validateOpen(peerOpen({ version: 5 }), want)?.data, Buffer.from([0, 4]), 'data: the version we speak');
});

// ---------------------------------------------------------------- negotiation

const localOpen = (caps: Capability[], holdTime = 90): OpenMessage => ({ type: 'OPEN', version: 4, myAs: LOCAL_AS, holdTime, bgpId: ROUTER_ID, capabilities: caps });

t.test('negotiation: 2-octet-only peer', async (t) => {
  const s = negotiate(localOpen([mp(1, 1), as4(LOCAL_AS)]), peerOpen({ capabilities: [mp(1, 1)] }));
  t.equal(s.as4, false);
  t.equal(s.codec.as4, false);
  t.equal(s.peerAs, PEER_AS);
  t.equal(s.ibgp, false);
});

t.test('negotiation: a peer without any multiprotocol capability is IPv4 unicast only (RFC 4760 §8)', async (t) => {
  const s = negotiate(localOpen([mp(1, 1), mp(2, 1), as4(LOCAL_AS)]), peerOpen({ capabilities: [as4(PEER_AS)] }));
  t.same(s.families, [IPV4_UNICAST]);
  const v6only = negotiate(localOpen([mp(2, 1)]), peerOpen({ capabilities: [as4(PEER_AS)] }));
  t.same(v6only.families, [], 'we only do IPv6, the peer only IPv4');
  const both = negotiate(localOpen([mp(1, 1), mp(2, 1)]), peerOpen({ capabilities: [mp(2, 1), mp(1, 1), mp(1, 2)] }));
  t.same(both.families, [IPV4_UNICAST, IPV6_UNICAST], 'intersection, sorted');
});

t.test('negotiation: ADD-PATH per family and direction (RFC 7911 §4)', async (t) => {
  const ap = (sr: 1 | 2 | 3, afi = 1): Capability => ({ code: 69, name: 'add-path', families: [{ afi, safi: 1, sendReceive: sr }] });
  // [ours, theirs, rx, tx]
  const rows: [0 | 1 | 2 | 3, 0 | 1 | 2 | 3, boolean, boolean][] = [
    [0, 0, false, false], [1, 0, false, false], [1, 1, false, false], [1, 2, true, false], [1, 3, true, false],
    [2, 1, false, true], [2, 2, false, false], [2, 3, false, true], [3, 3, true, true], [3, 1, false, true],
    [3, 2, true, false], [0, 3, false, false],
  ];
  for (const [o, th, rx, tx] of rows) {
    const s = negotiate(localOpen([mp(1, 1), ...(o ? [ap(o)] : [])]), peerOpen({ capabilities: [mp(1, 1), ...(th ? [ap(th)] : [])] }));
    t.equal(s.addPathRx.has(IPV4_UNICAST), rx, `ours ${o} theirs ${th}: rx`);
    t.equal(s.addPathTx.has(IPV4_UNICAST), tx, `ours ${o} theirs ${th}: tx`);
    t.equal(s.codec.addPathRx.has(IPV4_UNICAST), rx);
  }
  // not for a family that was not negotiated
  const s = negotiate(localOpen([mp(1, 1), ap(3, 2)]), peerOpen({ capabilities: [mp(1, 1), mp(2, 1), ap(3, 2)] }));
  t.equal(s.addPathRx.size + s.addPathTx.size, 0);
});

t.test('negotiation: extended message, route refresh, hold time, graceful restart', async (t) => {
  const em: Capability = { code: 6, name: 'extended-message' };
  const err: Capability = { code: 70, name: 'enhanced-route-refresh' };
  t.equal(negotiate(localOpen([em]), peerOpen({ capabilities: [] })).extendedMessage, false, 'only we sent it');
  t.equal(negotiate(localOpen([]), peerOpen({ capabilities: [em] })).extendedMessage, false, 'only they sent it');
  t.equal(negotiate(localOpen([em]), peerOpen({ capabilities: [em] })).codec.extendedMessage, true, 'both');
  t.equal(negotiate(localOpen([RR, err]), peerOpen({ capabilities: [RR, err] })).enhancedRouteRefresh, true);
  t.equal(negotiate(localOpen([RR, err]), peerOpen({ capabilities: [RR] })).enhancedRouteRefresh, false);
  t.equal(negotiate(localOpen([RR]), peerOpen({ capabilities: [] })).routeRefresh, false);
  const h = negotiate(localOpen([], 9), peerOpen({ holdTime: 240 }));
  t.equal(h.holdTime, 9);
  t.equal(h.keepaliveTime, 3);
  t.equal(negotiate(localOpen([], 0), peerOpen()).keepaliveTime, 0);
  const gr: Capability = {
    code: 64, name: 'graceful-restart', restarting: true, notification: false, restartTime: 120,
    families: [{ afi: 1, safi: 1, forwardingState: true }, { afi: 2, safi: 1, forwardingState: false }],
  };
  const g = negotiate(localOpen([mp(1, 1)]), peerOpen({ capabilities: [mp(1, 1), mp(2, 1), gr] }));
  t.same(g.gracefulRestart, { restarting: true, notification: false, restartTime: 120, families: [{ family: familyKey(1, 1), forwardingState: true }] });
  t.equal(negotiate(localOpen([]), peerOpen()).gracefulRestart, null);
  const ibgp = negotiate(localOpen([as4(LOCAL_AS)]), peerOpen({ myAs: LOCAL_AS, capabilities: [as4(LOCAL_AS)] }));
  t.equal(ibgp.ibgp, true);
});

// ---------------------------------------------------------------- collisions

t.test('collision resolution: the connection opened by the higher BGP Identifier wins', async (t) => {
  const rows: [number, number, number, number, 'local' | 'remote'][] = [
    [0x0a000002, 0x0a000001, 1, 1, 'local'],
    [0x0a000001, 0x0a000002, 1, 1, 'remote'],
    [0xc0000201, 0x0a000001, 1, 1, 'local'], // compared as uint32, not as signed int32
    [0x0a000001, 0xc0000201, 1, 1, 'remote'],
    [0x0a000001, 0x0a000001, 65002, 65001, 'local'], // RFC 6286 §2.3: equal ids, larger AS
    [0x0a000001, 0x0a000001, 65001, 65002, 'remote'],
  ];
  for (const [l, r, la, ra, w] of rows) t.equal(collisionWinner(l, r, la, ra), w, `${l.toString(16)} vs ${r.toString(16)}`);
  // the loser is closed with Cease / Connection Collision Resolution
  for (const s of ['OpenSent', 'OpenConfirm', 'Established'] as const) {
    const { m } = machineIn(s);
    const a = m.handle({ type: 'OpenCollisionDump' });
    t.match(a.find((x) => x.type === 'send'), { message: { code: ErrorCode.Cease, subcode: CeaseSubcode.ConnectionCollisionResolution } }, s);
  }
});

// ---------------------------------------------------------------- two machines

/** Turn what one machine sends into the other's event. */
function deliver(msg: Message): FsmEvent {
  switch (msg.type) {
    case 'OPEN': return { type: 'Open', open: msg };
    case 'KEEPALIVE': return { type: 'Keepalive' };
    case 'NOTIFICATION': return { type: 'Notification', message: msg };
    case 'UPDATE': return { type: 'Update', message: msg };
    case 'ROUTE-REFRESH': return { type: 'RouteRefresh', afi: msg.afi, safi: msg.safi, subtype: msg.subtype };
  }
}

/** Run two machines wired back to back until neither has anything to say. */
function pump(x: SessionFsm, y: SessionFsm, first: FsmAction[], second: FsmAction[]): { x: FsmAction[]; y: FsmAction[] } {
  const log = { x: [...first], y: [...second] };
  let qx = first; // actions of x, to be delivered to y
  let qy = second;
  for (let rounds = 0; rounds < 20 && (qx.length > 0 || qy.length > 0); rounds++) {
    const toY = qx.filter((a) => a.type === 'send').map((a) => deliver(a.message));
    const toX = qy.filter((a) => a.type === 'send').map((a) => deliver(a.message));
    qx = toX.flatMap((e) => x.handle(e));
    qy = toY.flatMap((e) => y.handle(e));
    log.x.push(...qx);
    log.y.push(...qy);
  }
  return log;
}

t.test('two machines back to back reach Established, then a ManualStop takes both down', async (t) => {
  const clock = new FakeClock();
  const caps = buildCapabilities({ localAs: LOCAL_AS, families: [IPV4_UNICAST, IPV6_UNICAST], enhancedRouteRefresh: true });
  const x = new SessionFsm(config({ capabilities: caps, peerAs: 4200000001 }), clock);
  const y = new SessionFsm(
    { localAs: 4200000001, routerId: PEER_ID, peerAs: LOCAL_AS, holdTime: 9, capabilities: buildCapabilities({ localAs: 4200000001, families: [IPV4_UNICAST] }), passive: true },
    clock,
  );
  x.handle({ type: 'ManualStart' });
  y.handle({ type: 'ManualStart' });
  t.equal(y.state, 'Active');
  const log = pump(x, y, x.handle({ type: 'TcpConnected' }), y.handle({ type: 'TcpConnected' }));
  t.equal(x.state, 'Established');
  t.equal(y.state, 'Established');
  const ex = log.x.find((a) => a.type === 'established');
  const ey = log.y.find((a) => a.type === 'established');
  t.match(ex, { session: { peerAs: 4200000001, holdTime: 9, keepaliveTime: 3, families: [IPV4_UNICAST], as4: true, enhancedRouteRefresh: false } });
  t.match(ey, { session: { peerAs: LOCAL_AS, holdTime: 9, ibgp: false } });
  t.equal(y.localOpen().myAs, 23456, 'AS_TRANS in My AS for a 4-octet AS');

  const down = pump(x, y, x.handle({ type: 'ManualStop' }), []);
  t.equal(x.state, 'Idle');
  t.equal(y.state, 'Idle');
  t.match(down.y.find((a) => a.type === 'down'), { wasEstablished: true, notification: { sent: false, message: { code: 6, subcode: 2 } } });
  t.ok(y.deadlines.has('IdleHold'), 'the peer that was stopped on will retry after its IdleHold');
  t.notOk(x.deadlines.has('IdleHold'), 'the one stopped by hand will not');
});

t.test('buildCapabilities: families, options, 4-octet AS always', async (t) => {
  const caps = buildCapabilities({
    localAs: 65000, families: [IPV4_UNICAST, IPV6_UNICAST], extendedMessage: true,
    addPath: new Map([[IPV4_UNICAST, 3], [familyKey(1, 128), 1]]), gracefulRestart: { restartTime: 5000, forwardingState: true },
  });
  t.same(caps.map((c) => c.name), ['multiprotocol', 'multiprotocol', 'route-refresh', 'extended-message', 'graceful-restart', '4-octet-as', 'add-path']);
  t.match(caps.find((c) => c.name === 'graceful-restart'), { restartTime: 4095, families: [{ afi: 1, safi: 1, forwardingState: true }, { afi: 2, safi: 1 }] });
  t.match(caps.find((c) => c.name === 'add-path'), { families: [{ afi: 1, safi: 1, sendReceive: 3 }] });
  t.same(buildCapabilities({ localAs: 1, families: [], routeRefresh: false }).map((c) => c.name), ['4-octet-as']);
});

t.test('a stop in Idle cancels the IdleHold restart (no automatic restart after a stop)', async (t) => {
  for (const stop of [{ type: 'ManualStop' }, SAMPLE.AutomaticStop] as const) {
    const { m, clock } = machineIn('Established');
    m.handle({ type: 'HoldTimerExpires' });
    t.equal(m.state, 'Idle');
    t.ok(m.deadlines.has('IdleHold'), 'damped restart armed after the failure');
    m.handle(stop);
    t.notOk(m.deadlines.has('IdleHold'), `${stop.type} in Idle clears IdleHold`);
    clock.t += 3_600_000;
    m.tick();
    t.equal(m.state, 'Idle', `after ${stop.type} the peer stays down`);
  }
});

t.test('AutomaticStop with idleHold: null stays down, seconds restart after that; data goes into the NOTIFICATION', async (t) => {
  const data = Buffer.from([0, 1, 1, 0, 0, 0, 10]);
  const a = machineIn('Established');
  const out = a.m.handle({ type: 'AutomaticStop', subcode: CeaseSubcode.MaximumPrefixesReached, reason: 'too many', data, idleHold: null });
  t.match(out.find((x) => x.type === 'send'), { message: { code: 6, subcode: 1, data } });
  t.notOk(a.m.deadlines.has('IdleHold'));
  a.clock.t += 3_600_000;
  a.m.tick();
  t.equal(a.m.state, 'Idle');
  t.equal(a.m.handle({ type: 'ManualStart' }).some((x) => x.type === 'connect'), true, 'a ManualStart brings it back');

  const b = machineIn('Established');
  b.m.handle({ type: 'AutomaticStop', subcode: 1, reason: 'too many', idleHold: 30 });
  t.equal((b.m.deadlines.get('IdleHold') ?? 0) - b.clock.t, 30_000);
});

t.test('an UPDATE written restarts the keepalive timer (RFC 4271 §4.4)', async (t) => {
  const { m, clock } = machineIn('Established');
  const before = m.deadlines.get('Keepalive');
  t.ok(before !== undefined);
  clock.t += 5000;
  m.handle({ type: 'SendProgress', pending: false });
  t.equal(m.deadlines.get('Keepalive'), before, 'a write of no UPDATE leaves it');
  m.handle({ type: 'SendProgress', pending: false, updates: true });
  t.equal(m.deadlines.get('Keepalive'), (before ?? 0) + 5000, 'restarted from the UPDATE');
  const fired = m.tick();
  t.notOk(fired.some((x) => x.type === 'send'), 'no KEEPALIVE before the new deadline');
});
