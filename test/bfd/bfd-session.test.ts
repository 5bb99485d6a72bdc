// The BFD session machine (RFC 5880 §6) as a table: every (state, event) pair
// against a fake clock, then the behaviours across events: the three-way
// handshake, timer negotiation, detection time, Poll/Final, the 1 s rule,
// jitter, Demand, the Passive role, the C bit. No sockets, no real time.
import t from 'tap';
import fc from 'fast-check';
import {
  BFD_DIAG, BFD_EVENT_TYPES, BFD_STATES, BFD_TABLE, BfdSession, SLOW_TX_US, bgpActionOnBfdDown, receiveEvent,
} from '../../bgp/index.js';
import type { BfdAction, BfdEvent, BfdEventType, BfdParams, BfdState, ControlPacket } from '../../bgp/index.js';

class FakeClock {
  t = 5_000;
  now(): number {
    return this.t;
  }
}

const LOCAL = 0x1111;
const REMOTE = 0x2222;
const FAST: BfdParams = { desiredMinTxUs: 100_000, requiredMinRxUs: 100_000, idleTxUs: 1_000_000, detectMult: 3 };

function peerPacket(state: BfdState, over: Partial<ControlPacket> = {}): ControlPacket {
  return {
    diag: 0, state, poll: false, final: false, controlPlaneIndependent: false, demand: false, multipoint: false,
    detectMult: 3, myDiscriminator: REMOTE, yourDiscriminator: state === 'Down' ? 0 : LOCAL,
    desiredMinTxUs: 100_000, requiredMinRxUs: 100_000, requiredMinEchoRxUs: 0, ...over,
  };
}

function session(over: { params?: BfdParams; passive?: boolean; c?: boolean; random?: () => number } = {}) {
  const clock = new FakeClock();
  const m = new BfdSession(
    {
      params: over.params ?? FAST,
      localDiscriminator: LOCAL,
      ...(over.passive ? { passive: true } : {}),
      ...(over.c ? { controlPlaneIndependent: true } : {}),
    },
    clock,
    over.random ?? (() => 0.5),
  );
  return { m, clock };
}

/** A machine driven into a state by real events. Up is reached with its Poll answered. */
function machineIn(state: BfdState) {
  const s = session();
  const { m } = s;
  if (state === 'AdminDown') {
    m.handle({ type: 'Start' });
    m.handle({ type: 'Stop' });
  }
  if (state !== 'AdminDown') m.handle({ type: 'Start' });
  if (state === 'Init') m.handle(receiveEvent(peerPacket('Down')));
  if (state === 'Up') {
    m.handle(receiveEvent(peerPacket('Init')));
    m.handle(receiveEvent(peerPacket('Up', { final: true })));
  }
  if (m.state !== state) throw new Error(`could not reach ${state}: in ${m.state}`);
  return s;
}

const SAMPLE: { readonly [E in BfdEventType]: Extract<BfdEvent, { type: E }> } = {
  Start: { type: 'Start' },
  Stop: { type: 'Stop' },
  RecvAdminDown: { type: 'RecvAdminDown', packet: peerPacket('AdminDown', { diag: 7 }) },
  RecvDown: { type: 'RecvDown', packet: peerPacket('Down') },
  RecvInit: { type: 'RecvInit', packet: peerPacket('Init') },
  RecvUp: { type: 'RecvUp', packet: peerPacket('Up') },
  TxTimerExpires: { type: 'TxTimerExpires' },
  DetectTimerExpires: { type: 'DetectTimerExpires' },
  ParamsChange: { type: 'ParamsChange', params: { ...FAST, desiredMinTxUs: 300_000 } },
};

/** Next state and what was sent: '-' or "State/diag" with "+P" / "+F". */
type Cell = readonly [BfdState, string];
const A = (s: BfdState): Cell => [s, '-'];
const EXPECT: { readonly [S in BfdState]: { readonly [E in BfdEventType]: Cell } } = {
  AdminDown: {
    Start: ['Down', 'Down/0'], Stop: A('AdminDown'), RecvAdminDown: A('AdminDown'), RecvDown: A('AdminDown'),
    RecvInit: A('AdminDown'), RecvUp: A('AdminDown'), TxTimerExpires: ['AdminDown', 'AdminDown/7'],
    DetectTimerExpires: A('AdminDown'), ParamsChange: A('AdminDown'),
  },
  Down: {
    Start: A('Down'), Stop: ['AdminDown', 'AdminDown/7'], RecvAdminDown: A('Down'), RecvDown: ['Init', 'Init/0'],
    RecvInit: ['Up', 'Up/0+P'], RecvUp: A('Down'), TxTimerExpires: ['Down', 'Down/0'], DetectTimerExpires: A('Down'),
    ParamsChange: A('Down'),
  },
  Init: {
    Start: A('Init'), Stop: ['AdminDown', 'AdminDown/7'], RecvAdminDown: ['Down', 'Down/3'], RecvDown: A('Init'),
    RecvInit: ['Up', 'Up/0+P'], RecvUp: ['Up', 'Up/0+P'], TxTimerExpires: ['Init', 'Init/0'],
    DetectTimerExpires: ['Down', 'Down/1'], ParamsChange: A('Init'),
  },
  Up: {
    Start: A('Up'), Stop: ['AdminDown', 'AdminDown/7'], RecvAdminDown: ['Down', 'Down/3'], RecvDown: ['Down', 'Down/3'],
    RecvInit: A('Up'), RecvUp: A('Up'), TxTimerExpires: ['Up', 'Up/0'], DetectTimerExpires: ['Down', 'Down/1'],
    ParamsChange: ['Up', 'Up/0+P'],
  },
};

const sends = (acts: readonly BfdAction[]): ControlPacket[] =>
  acts.flatMap((a) => (a.type === 'send' ? [a.packet] : []));

function sentOf(acts: readonly BfdAction[]): string {
  const p = sends(acts)[0];
  if (!p) return '-';
  return `${p.state}/${p.diag}${p.poll ? '+P' : ''}${p.final ? '+F' : ''}`;
}

t.test('every (state, event) pair of the table', async (t) => {
  t.same(Object.keys(BFD_TABLE).sort(), [...BFD_STATES].sort(), 'the table has a row per state');
  for (const state of BFD_STATES) {
    t.same(Object.keys(BFD_TABLE[state]).sort(), [...BFD_EVENT_TYPES].sort(), `${state}: a cell per event`);
    for (const ev of BFD_EVENT_TYPES) {
      const { m } = machineIn(state);
      const acts = m.handle(SAMPLE[ev]);
      const [next, sent] = EXPECT[state][ev];
      t.equal(m.state, next, `${state} × ${ev}: next state`);
      t.equal(sentOf(acts), sent, `${state} × ${ev}: packet sent`);
      const change = acts.find((a) => a.type === 'stateChange');
      if (next === state) t.notOk(change, `${state} × ${ev}: no state change reported`);
      else t.match(change, { from: state, to: next }, `${state} × ${ev}: the change is reported`);
      // Every packet we send is one a peer would accept (§6.8.6 checks of our own output).
      for (const p of sends(acts)) {
        t.ok(p.detectMult > 0 && p.myDiscriminator === LOCAL && !(p.poll && p.final) && !p.demand, `${state} × ${ev}: valid packet`);
      }
    }
  }
});

t.test('a packet received in AdminDown updates the peer variables but is discarded', async (t) => {
  const { m } = machineIn('AdminDown');
  const acts = m.handle(receiveEvent(peerPacket('Init', { poll: true, desiredMinTxUs: 250_000 })));
  t.equal(sends(acts).length, 0, 'no Final for a Poll in AdminDown');
  t.notOk(m.deadlines.has('Detect'), 'no detection timer in AdminDown');
  t.equal(m.status().remoteMinTxUs, 250_000, 'bfd.Remote* updated first (§6.8.6)');
  t.equal(m.status().remoteDiscriminator, REMOTE);
});

t.test('a new session sends nothing before Start, then Down at the slow rate', async (t) => {
  const { m, clock } = session({ params: { ...FAST, idleTxUs: 50_000 } });
  t.equal(m.state, 'AdminDown');
  t.equal(m.nextDeadline(), null, 'no timer before Start');
  const acts = m.handle({ type: 'Start' });
  const [p] = sends(acts);
  t.equal(p?.state, 'Down');
  t.equal(p?.desiredMinTxUs, SLOW_TX_US, '§6.8.3: Desired Min TX at least 1 s while not Up, even with a 50 ms idle interval');
  t.equal(p?.yourDiscriminator, 0, 'peer unknown');
  // The periodic packets follow at 75–100% of one second.
  let last = clock.t;
  for (let i = 0; i < 5; i++) {
    clock.t = m.nextDeadline()!;
    const out = m.tick();
    t.equal(sends(out).length, 1);
    t.ok(clock.t - last >= 750 && clock.t - last < 1000, `interval ${clock.t - last} ms within 75–100% of 1 s`);
    last = clock.t;
  }
});

t.test('idle interval above one second is used as is', async (t) => {
  const { m } = session({ params: { ...FAST, idleTxUs: 60_000_000 } });
  const [p] = sends(m.handle({ type: 'Start' }));
  t.equal(p?.desiredMinTxUs, 60_000_000);
});

t.test('jitter: 75–100% of the interval (a 0–25% reduction), 75–90% with Detect Mult 1 (§6.8.7)', async () => {
  fc.assert(
    fc.property(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.constantFrom(1, 3, 5), (r, mult) => {
      const s = new BfdSession({ params: { ...FAST, detectMult: mult }, localDiscriminator: 1 }, { now: () => 0 }, () => r);
      const iv = s.jitteredIntervalMs() / (s.txIntervalUs() / 1000);
      return iv >= 0.75 && iv <= (mult === 1 ? 0.9 : 1.0);
    }),
  );
});

/** Two sessions wired back to back through a lossless, instant network with one fake clock. */
function pair(pa: BfdParams, pb: BfdParams, opts: { randomA?: () => number } = {}) {
  const clock = new FakeClock();
  const a = new BfdSession({ params: pa, localDiscriminator: 0xa }, clock, opts.randomA ?? (() => 0.5));
  const b = new BfdSession({ params: pb, localDiscriminator: 0xb }, clock, () => 0.5);
  const log: { t: number; from: 'a' | 'b'; packet: ControlPacket }[] = [];
  const changes: { t: number; who: 'a' | 'b'; to: BfdState; diag: number }[] = [];
  let cut: 'a' | 'b' | null = null;
  const deliver = (from: 'a' | 'b', acts: BfdAction[]): void => {
    const queue: [('a' | 'b'), BfdAction[]][] = [[from, acts]];
    for (let n = 0; n < 1000 && queue.length > 0; n++) {
      const [who, list] = queue.shift()!;
      for (const act of list) {
        if (act.type === 'stateChange') changes.push({ t: clock.t, who, to: act.to, diag: act.diag });
        if (act.type !== 'send') continue;
        log.push({ t: clock.t, from: who, packet: act.packet });
        if (cut === who) continue; // this side's packets are lost
        const to = who === 'a' ? b : a;
        queue.push([who === 'a' ? 'b' : 'a', to.handle(receiveEvent(act.packet))]);
      }
    }
  };
  const run = (untilMs: number): void => {
    for (let i = 0; i < 100_000; i++) {
      const next = Math.min(a.nextDeadline() ?? Infinity, b.nextDeadline() ?? Infinity);
      if (next > untilMs) break;
      clock.t = next;
      deliver('a', a.tick());
      deliver('b', b.tick());
    }
    clock.t = untilMs;
  };
  return {
    a, b, clock, log, changes, run, deliver,
    start(): void {
      deliver('a', a.handle({ type: 'Start' }));
      deliver('b', b.handle({ type: 'Start' }));
    },
    lose(who: 'a' | 'b' | null): void {
      cut = who;
    },
  };
}

t.test('three-way handshake: both Up, then the negotiated timers of §6.8.2 and §6.8.4', async (t) => {
  const pa: BfdParams = { desiredMinTxUs: 100_000, requiredMinRxUs: 100_000, idleTxUs: 1_000_000, detectMult: 3 };
  const pb: BfdParams = { desiredMinTxUs: 300_000, requiredMinRxUs: 200_000, idleTxUs: 1_000_000, detectMult: 5 };
  const n = pair(pa, pb);
  n.start();
  t.equal(n.a.state, 'Up');
  t.equal(n.b.state, 'Up');
  // a started first and heard b's Down: Down → Init → Up; b heard a's Init: Down → Up.
  t.same(n.changes.filter((c) => c.who === 'a').map((c) => c.to), ['Down', 'Init', 'Up']);
  t.same(n.changes.filter((c) => c.who === 'b').map((c) => c.to), ['Down', 'Up']);
  t.ok(n.a.status().pollActive === false && n.b.status().pollActive === false, 'the Polls for the fast rates were answered');
  const sa = n.a.status();
  const sb = n.b.status();
  t.equal(sa.desiredMinTxUs, 100_000, 'a advertises its Up rate');
  t.equal(sa.txIntervalUs, 200_000, 'a sends at max(own 100 ms, b wants ≥ 200 ms)');
  t.equal(sa.detectTimeUs, 5 * 300_000, 'a detects in b.mult × max(a rx 100, b tx 300)');
  t.equal(sb.txIntervalUs, 300_000, 'b sends at max(300, 100)');
  t.equal(sb.detectTimeUs, 3 * 200_000, 'b detects in a.mult × max(b rx 200, a tx 100)');
  // Steady state: a's packets are 150–200 ms apart.
  n.run(n.clock.t + 5_000);
  const ta = n.log.filter((l) => l.from === 'a' && !l.packet.final).map((l) => l.t).slice(-10);
  for (let i = 1; i < ta.length; i++) t.ok(ta[i]! - ta[i - 1]! >= 150 && ta[i]! - ta[i - 1]! <= 200, `a interval ${ta[i]! - ta[i - 1]!} ms`);
  t.equal(n.a.state, 'Up');
  t.equal(n.b.state, 'Up', 'no false detection with jittered packets');
});

t.test('a silent peer is detected one Detection Time after its last packet, with diag 1', async (t) => {
  const n = pair(FAST, FAST);
  n.start();
  n.run(n.clock.t + 2_000);
  n.lose('b');
  const lastB = Math.max(...n.log.filter((l) => l.from === 'b').map((l) => l.t));
  n.run(n.clock.t + 2_000);
  const down = n.changes.find((c) => c.who === 'a' && c.to === 'Down' && c.t > lastB);
  t.ok(down, 'a went Down');
  t.equal(down?.diag, BFD_DIAG.ControlDetectionTimeExpired);
  t.equal(down!.t - lastB, 300, 'exactly 3 × 100 ms after the last packet (fake clock)');
  t.equal(n.a.status().remoteDiscriminator, 0, 'the peer is forgotten (§6.8.1)');
  // b hears a's Down and follows with diag 3.
  const bDown = n.changes.find((c) => c.who === 'b' && c.to === 'Down' && c.t > lastB);
  t.equal(bDown?.diag, BFD_DIAG.NeighborSignaledSessionDown);
  // Packets flow again: both come back Up.
  n.lose(null);
  n.run(n.clock.t + 5_000);
  t.equal(n.a.state, 'Up');
  t.equal(n.b.state, 'Up');
});

t.test('Poll Sequence: a slower Desired Min TX takes effect only after the Final (§6.8.3)', async (t) => {
  const n = pair(FAST, FAST);
  n.start();
  n.run(n.clock.t + 1_000);
  n.lose('b'); // hold b's Final back
  const before = n.log.length;
  n.deliver('a', n.a.handle({ type: 'ParamsChange', params: { ...FAST, desiredMinTxUs: 500_000 } }));
  const polled = n.log.slice(before).filter((l) => l.from === 'a');
  t.ok(polled.length > 0 && polled.every((l) => l.packet.poll && l.packet.desiredMinTxUs === 500_000), 'P bit with the new value');
  t.equal(n.a.status().txIntervalUs, 100_000, 'still the old rate while the Poll is unanswered');
  t.ok(n.a.status().pollActive);
  n.lose(null);
  n.run(n.clock.t + 250); // a's next Poll gets b's Final
  t.notOk(n.a.status().pollActive, 'the Final ended the Poll');
  t.equal(n.a.status().txIntervalUs, 500_000, 'the new rate is in force');
  t.equal(n.b.status().detectTimeUs, 3 * 500_000, 'b detects with a’s new rate');
  t.equal(n.b.state, 'Up');
});

t.test('Poll Sequence: a lower Required Min RX keeps the old detection time until the Final (§6.8.3)', async (t) => {
  const slowRx: BfdParams = { ...FAST, requiredMinRxUs: 400_000 };
  const n = pair(slowRx, { ...FAST, desiredMinTxUs: 50_000 });
  n.start();
  n.run(n.clock.t + 2_000);
  t.equal(n.a.status().detectTimeUs, 3 * 400_000);
  n.lose('b');
  n.deliver('a', n.a.handle({ type: 'ParamsChange', params: FAST }));
  t.equal(n.a.status().detectTimeUs, 3 * 400_000, 'old value while polling');
  n.lose(null);
  n.run(n.clock.t + 150);
  t.notOk(n.a.status().pollActive);
  t.equal(n.a.status().detectTimeUs, 3 * 100_000, 'new value after the Final');
});

t.test('a change during a Poll waits for its Final, then is polled in turn', async (t) => {
  const n = pair(FAST, FAST);
  n.start();
  n.run(n.clock.t + 1_000);
  n.lose('b');
  n.deliver('a', n.a.handle({ type: 'ParamsChange', params: { ...FAST, desiredMinTxUs: 200_000 } }));
  n.deliver('a', n.a.handle({ type: 'ParamsChange', params: { ...FAST, desiredMinTxUs: 300_000 } }));
  const last = n.log.filter((l) => l.from === 'a').at(-1)!.packet;
  t.equal(last.desiredMinTxUs, 200_000, 'the Poll in flight keeps its values');
  n.lose(null);
  n.run(n.clock.t + 2_000);
  t.equal(n.a.status().desiredMinTxUs, 300_000, 'the second change was polled after the first Final');
  t.equal(n.a.status().txIntervalUs, 300_000);
  t.notOk(n.a.status().pollActive);
});

t.test('a Poll is answered at once with F and without P, even while our own Poll runs', async (t) => {
  const { m } = machineIn('Up');
  m.handle({ type: 'ParamsChange', params: { ...FAST, desiredMinTxUs: 200_000 } });
  t.ok(m.status().pollActive);
  const acts = m.handle(receiveEvent(peerPacket('Up', { poll: true })));
  const [p] = sends(acts);
  t.ok(p?.final, 'F set');
  t.notOk(p?.poll, 'P clear: never both (§6.8.7)');
  t.ok(m.status().pollActive, 'our Poll continues');
});

t.test('going Down ends a Poll and returns to the slow rate at once', async (t) => {
  const { m } = machineIn('Up');
  m.handle({ type: 'ParamsChange', params: { ...FAST, desiredMinTxUs: 200_000 } });
  const acts = m.handle(receiveEvent(peerPacket('Down')));
  t.equal(m.state, 'Down');
  t.notOk(m.status().pollActive);
  const [p] = sends(acts);
  t.equal(p?.desiredMinTxUs, SLOW_TX_US);
  t.notOk(p?.poll);
});

t.test('a peer in Demand mode stops our periodic packets while both are Up (§6.8.6)', async (t) => {
  const { m } = machineIn('Up');
  t.ok(m.deadlines.has('Tx'));
  m.handle(receiveEvent(peerPacket('Up', { demand: true })));
  t.notOk(m.deadlines.has('Tx'), 'no periodic transmission');
  // A Poll is still answered.
  t.ok(sends(m.handle(receiveEvent(peerPacket('Up', { demand: true, poll: true }))))[0]?.final);
  m.handle(receiveEvent(peerPacket('Up')));
  t.ok(m.deadlines.has('Tx'), 'periodic again when D clears');
});

t.test('Required Min RX 0 from the peer stops periodic transmission (§6.8.7)', async (t) => {
  const { m } = machineIn('Up');
  m.handle(receiveEvent(peerPacket('Up', { requiredMinRxUs: 0 })));
  t.notOk(m.deadlines.has('Tx'));
  t.equal(m.status().txIntervalUs, 0);
});

t.test('Passive role: nothing is sent until the peer is heard (§6.1, §6.8.7)', async (t) => {
  const { m } = session({ passive: true });
  const acts = m.handle({ type: 'Start' });
  t.equal(m.state, 'Down');
  t.equal(sends(acts).length, 0);
  t.notOk(m.deadlines.has('Tx'));
  const reply = m.handle(receiveEvent(peerPacket('Down')));
  t.equal(m.state, 'Init');
  t.equal(sends(reply)[0]?.yourDiscriminator, REMOTE, 'answers once the peer is known');
});

t.test('the C bit: sent only when configured, the peer’s reported on state changes', async (t) => {
  const plain = machineIn('Down').m;
  t.notOk(sends(plain.handle({ type: 'TxTimerExpires' }))[0]?.controlPlaneIndependent);
  const { m } = session({ c: true });
  t.ok(sends(m.handle({ type: 'Start' }))[0]?.controlPlaneIndependent, 'C set when the config says so');
  const acts = m.handle(receiveEvent(peerPacket('Init', { controlPlaneIndependent: true })));
  t.match(acts.find((a) => a.type === 'stateChange'), { to: 'Up', remoteControlPlaneIndependent: true });
  t.ok(m.status().remoteControlPlaneIndependent);
});

t.test('RFC 5882 §4.3.1 decision: strict tears down always, graceful keeps GR only for a C-clear peer', async (t) => {
  t.equal(bgpActionOnBfdDown('strict', false), 'teardown');
  t.equal(bgpActionOnBfdDown('strict', true), 'teardown');
  t.equal(bgpActionOnBfdDown('graceful', true), 'teardown');
  t.equal(bgpActionOnBfdDown('graceful', false), 'graceful-restart');
});

t.test('Stop with Path Down, then Start again', async (t) => {
  const { m } = machineIn('Up');
  const acts = m.handle({ type: 'Stop', diag: BFD_DIAG.PathDown });
  t.equal(sentOf(acts), 'AdminDown/5');
  t.notOk(m.deadlines.has('Detect'));
  const again = m.handle({ type: 'Start' });
  t.equal(sentOf(again), 'Down/0');
  t.equal(m.state, 'Down');
});

t.test('bad parameters are refused with a RangeError', async (t) => {
  t.throws(() => session({ params: { ...FAST, detectMult: 0 } }), RangeError);
  t.throws(() => session({ params: { ...FAST, desiredMinTxUs: 0 } }), RangeError);
  t.throws(() => new BfdSession({ params: FAST, localDiscriminator: 0 }, new FakeClock()), RangeError);
  const { m } = machineIn('Up');
  t.throws(() => m.handle({ type: 'ParamsChange', params: { ...FAST, detectMult: 256 } }), RangeError);
  t.equal(m.state, 'Up', 'a refused change leaves the session alone');
});
