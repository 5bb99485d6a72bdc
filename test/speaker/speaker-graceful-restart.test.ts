// The graceful restart / LLGR helper machine (bgp/speaker/graceful-restart.ts) on its own: every input (session
// down, session up, End-of-RIB, its timers) in every phase (none, restart, stale-path, long-lived), over a fake
// clock and a fake RIB that records the calls. No sockets, no real time. The same rules run end to end in
// gr-loopback, llgr-loopback, gr-bird and daemon-llgr.
import t from 'tap';
import { GracefulRestart } from '../../bgp/speaker/graceful-restart.js';
import type { GrPhase, GrSettings, SessionEnd } from '../../bgp/speaker/graceful-restart.js';
import type { Timer, TimerClock } from '../../bgp/speaker/timers.js';
import type { StaleEvent } from '../../bgp/speaker/types.js';
import { IPV4_UNICAST, IPV6_UNICAST, notificationOf } from '../../bgp/index.js';
import type { NegotiatedSession } from '../../bgp/index.js';
import { DEFAULT_CONTEXT } from '../../bgp/wire/types.js';

const V4 = IPV4_UNICAST;
const V6 = IPV6_UNICAST;
const name = (f: number): string => (f === V4 ? 'v4' : 'v6');

/** Timers fire only when advance() passes their time, in deadline order. */
class FakeClock implements TimerClock {
  t = 1_000_000;
  private timers: { at: number; fn: () => void; live: boolean }[] = [];
  now(): number {
    return this.t;
  }
  setTimer(ms: number, fn: () => void): Timer {
    const e = { at: this.t + ms, fn, live: true };
    this.timers.push(e);
    return { cancel: () => void (e.live = false) };
  }
  /** armed timers not yet fired or cancelled */
  get pending(): number {
    return this.timers.filter((x) => x.live).length;
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (let i = 0; i < 10_000; i++) {
      const next = this.timers.filter((x) => x.live && x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      next.live = false;
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}

interface Rig {
  gr: GracefulRestart;
  clock: FakeClock;
  calls: string[];
  events: Omit<StaleEvent, 'peer'>[];
  changed: number;
  settings: { -readonly [K in keyof GrSettings]: GrSettings[K] };
}

function rig(): Rig {
  const clock = new FakeClock();
  const calls: string[] = [];
  const events: Omit<StaleEvent, 'peer'>[] = [];
  const r: Rig = {
    clock,
    calls,
    events,
    changed: 0,
    settings: { enabled: true, llgrOffered: true, stalePathTime: 360 },
    gr: undefined as unknown as GracefulRestart,
  };
  r.gr = new GracefulRestart(
    {
      peerDown: (retain) => void calls.push(retain ? 'peerDown(retain)' : 'peerDown'),
      sweepStale: (f) => (calls.push(`sweep ${name(f)}`), 3),
      enterLongLivedStale: (f) => (calls.push(`llgr ${name(f)}`), { kept: 2, removed: 1 }),
      receivedPaths: () => 6,
    },
    { stale: (e) => void events.push(e), log: () => {}, changed: () => void r.changed++ },
    () => r.settings,
    clock,
  );
  return r;
}

/** A session as negotiate() would give it: GR (N bit) for both families, optionally LLGR. */
function session(o: { restartTime?: number; forwarding?: boolean; notification?: boolean; llgr?: { staleTime: number; forwarding?: boolean; families?: number[] } } = {}): NegotiatedSession {
  const fwd = o.forwarding ?? true;
  return {
    peerAs: 65000, peerId: 2, ibgp: true, holdTime: 90, keepaliveTime: 30, families: [V4, V6], as4: true, routeRefresh: true,
    enhancedRouteRefresh: false, extendedMessage: false, addPathRx: new Set(), addPathTx: new Set(),
    gracefulRestart: { restarting: false, notification: o.notification ?? true, restartTime: o.restartTime ?? 120, families: [V4, V6].map((family) => ({ family, forwardingState: fwd })) },
    longLivedGracefulRestart: o.llgr
      ? { families: (o.llgr.families ?? [V4, V6]).map((family) => ({ family, forwardingState: o.llgr?.forwarding ?? true, staleTime: o.llgr?.staleTime ?? 0 })) }
      : null,
    llgrFamilies: new Set(),
    codec: DEFAULT_CONTEXT,
  };
}

const GRACEFUL: SessionEnd = { reason: 'hold timer expired', mayRetain: true };
const LL = session({ restartTime: 0, llgr: { staleTime: 1000 } });

/** Bring a fresh rig into a phase (as in real life, a session came up first); the calls made on the way are cleared. */
const SETUP: Record<GrPhase, (r: Rig) => void> = {
  none: (r) => r.gr.up(session()),
  restart: (r) => {
    r.gr.up(session());
    r.gr.down(session(), GRACEFUL);
  },
  'stale-path': (r) => {
    r.gr.up(session());
    r.gr.down(session(), GRACEFUL);
    r.gr.up(session());
  },
  'long-lived': (r) => {
    r.gr.up(LL);
    r.gr.down(LL, GRACEFUL);
  },
};

/** The up input for a phase: the session that comes back keeps the forwarding state (preserved) or not. */
const upSession = (phase: GrPhase, preserved: boolean): NegotiatedSession =>
  phase === 'long-lived' ? session({ restartTime: 0, llgr: { staleTime: 1000, forwarding: preserved }, forwarding: preserved }) : session({ forwarding: preserved });
const downSession = (phase: GrPhase): NegotiatedSession => (phase === 'long-lived' ? LL : session());

type Input = 'down graceful' | 'down, routes not to be kept' | 'down after a Cease we sent' | 'up, forwarding preserved' | 'up, forwarding lost' | 'End-of-RIB v4' | 'timers run out';
const INPUTS: Record<Input, (r: Rig, phase: GrPhase) => void> = {
  'down graceful': (r, ph) => r.gr.down(downSession(ph), GRACEFUL),
  'down, routes not to be kept': (r, ph) => r.gr.down(downSession(ph), { reason: 'peer removed', mayRetain: false }),
  'down after a Cease we sent': (r, ph) => r.gr.down(downSession(ph), { reason: 'reset', mayRetain: true, notification: { sent: true, message: notificationOf(6, 6) } }),
  'up, forwarding preserved': (r, ph) => r.gr.up(upSession(ph, true)),
  'up, forwarding lost': (r, ph) => r.gr.up(upSession(ph, false)),
  'End-of-RIB v4': (r) => r.gr.endOfRib(V4),
  // longer than every clock in play: restart 120 s, stale-path 360 s, long-lived 1000 s
  'timers run out': (r) => r.clock.advance(2_000_000),
};

/** [phase after, RIB calls, timers still armed] for every (phase, input). */
const EXPECT: Record<GrPhase, Record<Input, [GrPhase, string[], number]>> = {
  none: {
    'down graceful': ['restart', ['peerDown(retain)'], 1],
    'down, routes not to be kept': ['none', ['peerDown'], 0],
    'down after a Cease we sent': ['none', ['peerDown'], 0],
    'up, forwarding preserved': ['none', [], 0],
    'up, forwarding lost': ['none', [], 0],
    'End-of-RIB v4': ['none', [], 0],
    'timers run out': ['none', [], 0],
  },
  restart: {
    'down graceful': ['restart', ['peerDown(retain)'], 1],
    'down, routes not to be kept': ['none', ['peerDown'], 0],
    'down after a Cease we sent': ['none', ['peerDown'], 0],
    'up, forwarding preserved': ['stale-path', [], 1],
    'up, forwarding lost': ['none', ['sweep v4', 'sweep v6'], 0],
    'End-of-RIB v4': ['restart', ['sweep v4'], 1],
    'timers run out': ['none', ['sweep v4', 'sweep v6'], 0],
  },
  'stale-path': {
    'down graceful': ['restart', ['peerDown(retain)'], 1],
    'down, routes not to be kept': ['none', ['peerDown'], 0],
    'down after a Cease we sent': ['none', ['peerDown'], 0],
    'up, forwarding preserved': ['stale-path', [], 1],
    'up, forwarding lost': ['none', ['sweep v4', 'sweep v6'], 0],
    'End-of-RIB v4': ['stale-path', ['sweep v4'], 1],
    'timers run out': ['none', ['sweep v4', 'sweep v6'], 0],
  },
  'long-lived': {
    // RFC 9494 §4.2: families already in the long-lived phase keep their clocks; re-learned paths are marked again
    'down graceful': ['long-lived', ['peerDown(retain)', 'llgr v4', 'llgr v6'], 2],
    'down, routes not to be kept': ['none', ['peerDown'], 0],
    'down after a Cease we sent': ['none', ['peerDown'], 0],
    'up, forwarding preserved': ['long-lived', [], 2],
    'up, forwarding lost': ['none', ['sweep v4', 'sweep v6'], 0],
    'End-of-RIB v4': ['long-lived', ['sweep v4'], 1],
    'timers run out': ['none', ['sweep v4', 'sweep v6'], 0],
  },
};

for (const phase of Object.keys(SETUP) as GrPhase[]) {
  t.test(`in phase ${phase}`, async (t) => {
    for (const input of Object.keys(INPUTS) as Input[]) {
      const r = rig();
      SETUP[phase](r);
      t.equal(r.gr.phase, phase, `set up: ${phase}`);
      r.calls.length = 0;
      INPUTS[input](r, phase);
      const [after, calls, timers] = EXPECT[phase][input];
      t.equal(r.gr.phase, after, `${phase} × ${input} → ${after}`);
      t.same(r.calls, calls, `${phase} × ${input}: RIB calls ${calls.join(', ') || 'none'}`);
      t.equal(r.clock.pending, timers, `${phase} × ${input}: ${timers} timer(s) armed`);
      t.equal(r.gr.stale.size === 0, after === 'none', `${phase} × ${input}: stale families ${after === 'none' ? 'none' : 'some'}`);
    }
  });
}

t.test('restart → long-lived: at the restart time, families with a long-lived stale time go on, the rest go', async (t) => {
  const r = rig();
  const s = session({ llgr: { staleTime: 1000, families: [V4] } });
  r.gr.up(s);
  r.gr.down(s, GRACEFUL);
  t.equal(r.gr.phase, 'restart');
  r.calls.length = 0;
  r.clock.advance(119_000);
  t.same(r.calls, [], 'nothing before the restart time');
  r.clock.advance(1_000);
  t.same(r.calls, ['llgr v4', 'sweep v6'], 'v4 into the long-lived phase, v6 swept');
  t.equal(r.gr.phase, 'long-lived');
  t.same(r.gr.llgr.json(), [{ family: 'ipv4-unicast', secondsLeft: 1000 }], 'v4\'s clock: its stale time');
  t.same(
    r.events.map((e) => e.action),
    ['retained', 'long-lived', 'swept', 'swept'],
    'reported: retained, long-lived, NO_LLGR paths swept, v6 swept',
  );
  r.calls.length = 0;
  r.clock.advance(999_000);
  t.same(r.calls, [], 'not before the long-lived stale time');
  r.clock.advance(1_000);
  t.same(r.calls, ['sweep v4'], 'v4 swept when its clock ends');
  t.equal(r.gr.phase, 'none');
  t.equal(r.clock.pending, 0, 'no timer left');
});

t.test('stale-path: the restart time no longer applies once the session is back', async (t) => {
  const r = rig();
  r.gr.down(session(), GRACEFUL);
  r.clock.advance(100_000);
  r.gr.up(session());
  r.calls.length = 0;
  r.clock.advance(200_000);
  t.same(r.calls, [], 'nothing swept at the old restart deadline');
  t.equal(r.gr.phase, 'stale-path');
  t.same(r.gr.helperJson(() => 9), { phase: 'stale-path', families: ['ipv4-unicast', 'ipv6-unicast'], secondsLeft: 160, staleRoutes: 9 }, 'helper JSON from the clock');
  r.clock.advance(160_000);
  t.same(r.calls, ['sweep v4', 'sweep v6'], 'swept at the stale-path time');
});

t.test('what ends graceful restart at once', async (t) => {
  const cases: [string, () => Rig][] = [
    ['graceful restart not enabled by us', () => {
      const r = rig();
      r.settings.enabled = false;
      r.gr.down(session(), GRACEFUL);
      return r;
    }],
    ['a NOTIFICATION received without the N bit (RFC 4724 §4.2)', () => {
      const r = rig();
      r.gr.down(session({ notification: false }), { ...GRACEFUL, notification: { sent: false, message: notificationOf(4, 0) } });
      return r;
    }],
    ['a Hard Reset received with the N bit (RFC 8538 §3)', () => {
      const r = rig();
      r.gr.down(session(), { ...GRACEFUL, notification: { sent: false, message: notificationOf(6, 9) } });
      return r;
    }],
    ['a bare Administrative Shutdown received (RFC 8538 §5)', () => {
      const r = rig();
      r.gr.down(session(), { ...GRACEFUL, notification: { sent: false, message: notificationOf(6, 2) } });
      return r;
    }],
  ];
  for (const [what, run] of cases) {
    const r = run();
    t.same(r.calls, ['peerDown'], `${what}: the routes go`);
    t.equal(r.gr.phase, 'none', `${what}: nothing kept`);
  }
  const kept = rig();
  kept.gr.down(session(), { ...GRACEFUL, notification: { sent: false, message: notificationOf(4, 0) } });
  t.same(kept.calls, ['peerDown(retain)'], 'with the N bit on both sides, a Hold Timer Expired NOTIFICATION keeps them (RFC 8538 §2)');
});

t.test('LLGR not offered by us: the peer\'s long-lived stale times are ignored', async (t) => {
  const r = rig();
  r.settings.llgrOffered = false;
  r.gr.down(session({ llgr: { staleTime: 1000 } }), GRACEFUL);
  r.calls.length = 0;
  r.clock.advance(120_000);
  t.same(r.calls, ['sweep v4', 'sweep v6'], 'everything swept at the restart time');
  t.equal(r.gr.phase, 'none');
});

t.test('stopped or disposed: timers never fire, what is kept stays kept until then', async (t) => {
  for (const how of ['stopTimers', 'dispose'] as const) {
    const r = rig();
    r.gr.down(session({ llgr: { staleTime: 1000, families: [V4] } }), GRACEFUL);
    r.calls.length = 0;
    r.gr[how]();
    t.equal(r.clock.pending, 0, `${how}: no timer armed`);
    r.clock.advance(10_000_000);
    t.same(r.calls, [], `${how}: nothing swept later`);
    t.same([...r.gr.stale].sort(), [V4, V6], `${how}: the stale families are still recorded`);
  }
});

t.test('every change of the RIB is announced for a flush', async (t) => {
  const r = rig();
  r.gr.down(LL, GRACEFUL);
  const afterLl = r.changed;
  t.ok(afterLl > 0, 'entering the long-lived phase');
  r.gr.endOfRib(V4);
  t.ok(r.changed > afterLl, 'a sweep');
});
