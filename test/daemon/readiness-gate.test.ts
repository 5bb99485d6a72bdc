// The readiness gate (src/http.ts ReadinessGate) decides whether to announce a flip from counts kept as its inputs
// change (issue 16: a reflector's hundreds of sessions each report their state, and a pass over every peer per
// report made start-up quadratic). Property: after any sequence of inputs, the listeners have been told exactly the
// flips of check()'s full answer — never a missed flip, never one that did not happen.
import t from 'tap';
import fc from 'fast-check';
import { ReadinessGate, type ReadinessReport } from '../../src/http.js';

const addrs = ['192.0.2.1', '192.0.2.2', '192.0.2.3', '2001:db8::4'];
type Op =
  | { k: 'peers'; list: string[] }
  | { k: 'up'; a: string; up: boolean }
  | { k: 'synced'; v: boolean }
  | { k: 'fib'; v: boolean }
  | { k: 'blocker'; name: string; reason: string | undefined; soft: boolean }
  | { k: 'clock'; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('peers' as const), list: fc.subarray(addrs) }),
  fc.record({ k: fc.constant('up' as const), a: fc.constantFrom(...addrs, '198.51.100.9'), up: fc.boolean() }),
  fc.record({ k: fc.constant('synced' as const), v: fc.boolean() }),
  fc.record({ k: fc.constant('fib' as const), v: fc.boolean() }),
  fc.record({ k: fc.constant('blocker' as const), name: fc.constantFrom('gr', 'cluster'), reason: fc.option(fc.constant('held'), { nil: undefined }), soft: fc.boolean() }),
  fc.record({ k: fc.constant('clock' as const), ms: fc.integer({ min: 0, max: 700 }) }),
);

t.test('readiness gate: the flips announced are those of check(), over random inputs', async (t) => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), fc.boolean(), fc.boolean(), (ops, fibEnabled, requirePeer) => {
      let now = 0;
      const g = new ReadinessGate({ now: () => now, startupWindowMs: 1000, fibEnabled, requirePeerAfterStartup: requirePeer });
      const told: ReadinessReport[] = [];
      g.onChange((r) => told.push(r));
      // what a listener should have heard: every change of (ready, started) after an input, with check()'s report
      let last = { ready: false, started: false };
      let expected = 0;
      for (const o of ops) {
        switch (o.k) {
          case 'peers': g.setPeers(o.list); break;
          case 'up': g.setPeerEstablished(o.a, o.up); break;
          case 'synced': g.setDatastoreSynced(o.v); break;
          case 'fib': g.setFibReconciled(o.v); break;
          case 'blocker': g.setBlocker(o.name, o.reason, { soft: o.soft }); break;
          case 'clock': now += o.ms; g.poll(); break;
        }
        const r = g.check();
        const flipped = r.ready !== last.ready || r.started !== last.started;
        if (flipped) {
          expected++;
          last = { ready: r.ready, started: r.started ?? r.ready };
          const heard = told.at(-1);
          if (told.length !== expected || heard === undefined) return false;
          if (heard.ready !== r.ready || heard.started !== r.started || heard.missing.join('|') !== r.missing.join('|')) return false;
        } else if (told.length !== expected) {
          return false; // a flip announced that check() does not show
        }
      }
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass('500 random runs');
});

t.test('readiness gate: a peer reported twice, or one it does not know, changes nothing', async (t) => {
  const g = new ReadinessGate({ now: () => 0, startupWindowMs: 1000, fibEnabled: false });
  const told: ReadinessReport[] = [];
  g.onChange((r) => told.push(r));
  g.setDatastoreSynced(true);
  g.setPeers(['192.0.2.1', '192.0.2.2']);
  t.same(told.map((r) => r.ready), [true, false], 'ready with no peers, then waiting for two');
  g.setPeerEstablished('192.0.2.1', true);
  g.setPeerEstablished('192.0.2.1', true);
  g.setPeerEstablished('198.51.100.9', true);
  t.same(g.check().missing, ['waiting for peers: 192.0.2.2'], 'the repeated report counted once, the unknown peer not at all');
  t.equal(told.length, 2, 'no flip yet');
  g.setPeerEstablished('192.0.2.2', true);
  t.same(told.map((r) => r.ready), [true, false, true]);
  g.setPeers(['192.0.2.2', '192.0.2.3']);
  t.same(told.at(-1)?.missing, ['waiting for peers: 192.0.2.3'], 'a new peer starts down; a dropped one no longer counts');
  g.setPeers(['192.0.2.2']);
  t.equal(told.at(-1)?.ready, true, 'dropping the one down peer makes it ready again');
});
