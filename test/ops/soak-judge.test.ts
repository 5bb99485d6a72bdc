// The soak's route judge (test/helpers/soak-routes.ts): given what the datastore asked each host's kernel to hold over
// time and what the kernel held (from `ip -ts monitor route`), it must report every moment a wanted route was missing
// that the datastore did not ask for, and nothing else. Unit cases (ones that must fail, ones that must pass), a
// brute-force model checked with fast-check, and the parser on lines as iproute2 prints them.
import t from 'tap';
import fc from 'fast-check';
import { judgeRoutes, parseMonitorLine, PrefixTracker, type KernelChange, type RouteIntent } from '../helpers/soak-routes.js';

const H = 'host-a';
const P = '10.64.0.64/26';
const want = (t: number, w = true, prefix = P, host = H): RouteIntent => ({ t, host, prefix, want: w });
const kern = (t: number, present = true, prefix = P, host = H): KernelChange => ({ t, host, prefix, present });

t.test('must fail: a gap during a leader kill (the route dropped and put back, never asked)', async (t) => {
  const v = judgeRoutes({ from: 1000, to: 20_000, settleMs: 2000, intents: [want(0)], kernel: [kern(100), kern(5000, false), kern(7000)] });
  t.same(v.gaps, [{ host: H, prefix: P, from: 5000, to: 7000, kind: 'removed' }]);
  t.same(v.lingering, []);
});

t.test('must fail: a route removed without being asked, not back by the end', async (t) => {
  const v = judgeRoutes({ from: 1000, to: 20_000, settleMs: 2000, intents: [want(0), want(0, true, '10.64.0.0/26')], kernel: [kern(100), kern(100, true, '10.64.0.0/26'), kern(9000, false)] });
  t.same(v.gaps, [{ host: H, prefix: P, from: 9000, to: 20_000, kind: 'removed' }], 'only the removed prefix, up to the end of the window');
  t.equal(v.compared, 2);
});

t.test('must fail: a removal shorter than the settle time still counts (delete then add instead of replace)', async (t) => {
  const v = judgeRoutes({ from: 1000, to: 20_000, settleMs: 5000, intents: [want(0)], kernel: [kern(100), kern(8000, false), kern(8001)] });
  t.same(v.gaps, [{ host: H, prefix: P, from: 8000, to: 8001, kind: 'removed' }]);
});

t.test('must fail: a new route not installed within the settle time', async (t) => {
  const v = judgeRoutes({ from: 1000, to: 20_000, settleMs: 2000, intents: [want(3000)], kernel: [kern(9000)] });
  t.same(v.gaps, [{ host: H, prefix: P, from: 5000, to: 9000, kind: 'late' }]);
});

t.test('must fail: another host\'s removal does not excuse this one', async (t) => {
  const v = judgeRoutes({
    from: 0, to: 10_000, settleMs: 1000,
    intents: [want(-5000), want(-5000, true, P, 'host-b'), want(4000, false, P, 'host-b')],
    kernel: [kern(-4000), kern(-4000, true, P, 'host-b'), kern(4100, false, P, 'host-b'), kern(4200, false)],
  });
  t.same(v.gaps, [{ host: H, prefix: P, from: 4200, to: 10_000, kind: 'removed' }]);
});

t.test('must pass: a removal the datastore asked for, and the route added back later within the settle time', async (t) => {
  const v = judgeRoutes({ from: 1000, to: 20_000, settleMs: 2000, intents: [want(0), want(5000, false), want(9000)], kernel: [kern(100), kern(5100, false), kern(10_500)] });
  t.same(v.gaps, []);
  t.same(v.lingering, []);
});

t.test('must pass: the kernel lags a delete-and-recreate of the record', async (t) => {
  // the datastore deletes and re-adds within 50 ms; the kernel follows half a second later
  const v = judgeRoutes({ from: 1000, to: 20_000, settleMs: 2000, intents: [want(0), want(5000, false), want(5050)], kernel: [kern(100), kern(5500, false), kern(5600)] });
  t.same(v.gaps, []);
});

t.test('must pass: events before the window; a gap that ended before it is not reported', async (t) => {
  const v = judgeRoutes({ from: 10_000, to: 20_000, settleMs: 100, intents: [want(0)], kernel: [kern(3000), kern(4000, false), kern(5000)] });
  t.same(v.gaps, []);
});

t.test('lingering: a route kept past the settle time after its removal was asked is reported apart from gaps', async (t) => {
  const v = judgeRoutes({ from: 0, to: 20_000, settleMs: 1000, intents: [want(-1000), want(5000, false)], kernel: [kern(-900), kern(8000, false)] });
  t.same(v.gaps, []);
  t.same(v.lingering, [{ host: H, prefix: P, from: 6000, to: 8000, kind: 'late' }]);
});

t.test('agrees with a brute-force model at every millisecond (fast-check)', async (t) => {
  // the model: at integer x in [from, to), the prefix must be present when it was wanted at x and at every integer
  // moment back to x - settle; it lingers when unwanted (and present) over the same span
  const ev = fc.record({ t: fc.integer({ min: 0, max: 120 }), host: fc.constantFrom('a', 'b'), prefix: fc.constantFrom('p', 'q'), on: fc.boolean() });
  fc.assert(fc.property(fc.array(ev, { maxLength: 12 }), fc.array(ev, { maxLength: 12 }), fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 60 }), (is, ks, settle, from) => {
    // in time order (the judge sorts stably too: equal times apply in the order given)
    const intents = is.map((e) => ({ t: e.t, host: e.host, prefix: e.prefix, want: e.on })).sort((a, b) => a.t - b.t);
    const kernel = ks.map((e) => ({ t: e.t, host: e.host, prefix: e.prefix, present: e.on })).sort((a, b) => a.t - b.t);
    const to = 150;
    const v = judgeRoutes({ intents, kernel, from, to, settleMs: settle });
    const stateAt = <T extends { t: number; host: string; prefix: string }>(l: readonly T[], on: (e: T) => boolean, host: string, prefix: string, x: number): boolean => {
      let s = false;
      for (const e of l) if (e.host === host && e.prefix === prefix && e.t <= x) s = on(e);
      return s;
    };
    for (const host of ['a', 'b']) {
      for (const prefix of ['p', 'q']) {
        for (let x = from; x < to; x++) {
          // the intent last changed at or before x: find when
          const w = stateAt(intents, (e) => e.want, host, prefix, x);
          let since = -Infinity;
          let cur = false;
          for (const e of intents) if (e.host === host && e.prefix === prefix && e.t <= x && e.want !== cur) { cur = e.want; since = e.t; }
          const settled = x - since >= settle;
          const present = stateAt(kernel, (e) => e.present, host, prefix, x);
          const inGap = v.gaps.some((g) => g.host === host && g.prefix === prefix && g.from <= x && x < g.to);
          const inLinger = v.lingering.some((g) => g.host === host && g.prefix === prefix && g.from <= x && x < g.to);
          if (inGap !== (settled && w && !present)) return false;
          if (inLinger !== (settled && !w && present)) return false;
        }
      }
    }
    return true;
  }), { numRuns: 400, seed: 14 });
  t.pass('400 random timelines');
});

t.test('parseMonitorLine: lines as `ip -ts monitor route` prints them', async (t) => {
  const at = (s: string, us: number): number => new Date(s).getTime() + us / 1000;
  t.same(parseMonitorLine('[2026-12-05T21:31:10.934743] blackhole 10.98.0.0/26 proto 171 '), { t: at('2026-12-05T21:31:10', 934_743), deleted: false, prefix: '10.98.0.0/26', id: '10.98.0.0/26 0 0' });
  t.same(parseMonitorLine('[2026-12-05T21:31:11.036392] Deleted 10.98.1.0/26 via 10.99.0.3 dev d0 proto 171 metric 20 '), { t: at('2026-12-05T21:31:11', 36_392), deleted: true, prefix: '10.98.1.0/26', id: '10.98.1.0/26 0 20' });
  // a delete and an add within one millisecond are still apart (a gap of 0.25 ms)
  const d = parseMonitorLine('[2026-12-05T21:31:12.000100] Deleted 10.98.1.0/26 via 10.99.0.3 dev d0 proto 171')!.t!;
  const a = parseMonitorLine('[2026-12-05T21:31:12.000350] 10.98.1.0/26 via 10.99.0.3 dev d0 proto 171')!.t!;
  t.ok(a - d > 0.2 && a - d < 0.3, `microseconds kept: ${(a - d).toFixed(3)} ms apart`);
  t.same(parseMonitorLine('[2026-12-05T21:31:11.007337] 10.98.3.5 dev d0 proto skein scope link ')?.prefix, '10.98.3.5/32', 'a host address; the protocol by name');
  t.equal(parseMonitorLine('\tnexthop via 10.99.0.2 dev d0 weight 1 '), undefined, 'a multipath continuation line');
  t.equal(parseMonitorLine('[2026-12-05T21:31:11.402182] local fe80::fcd1:2ff:fec7:3960 dev d0p table local proto kernel metric 0 pref medium'), undefined, 'not proto 171');
  t.equal(parseMonitorLine('[2026-12-05T21:31:11.5] 10.1.0.0/24 via 10.99.0.2 dev d0 table 100 proto 171'), undefined, 'another table');
  t.equal(parseMonitorLine('10.1.0.0/24 via 10.99.0.2 dev d0 proto 171')?.t, undefined, 'no timestamp: the caller uses its own clock');
});

t.test('PrefixTracker: a route replaced by one of another metric keeps its prefix present throughout', async (t) => {
  const tr = new PrefixTracker(H);
  const lines = [
    '[2026-12-05T21:00:00.000] 10.98.1.0/26 via 10.99.0.2 dev d0 proto 171 metric 20',
    '[2026-12-05T21:00:01.000] 10.98.1.0/26 via 10.99.0.3 dev d0 proto 171 metric 20', // replace: same identity
    '[2026-12-05T21:00:02.000] 10.98.1.0/26 via 10.99.0.3 dev d0 proto 171 metric 10', // added beside it
    '[2026-12-05T21:00:03.000] Deleted 10.98.1.0/26 via 10.99.0.3 dev d0 proto 171 metric 20',
    '[2026-12-05T21:00:04.000] Deleted 10.98.1.0/26 via 10.99.0.3 dev d0 proto 171 metric 10',
  ];
  for (const l of lines) tr.apply(parseMonitorLine(l)!, 0);
  t.same(tr.changes.map((c) => c.present), [true, false], 'one add, one removal');
  t.equal(tr.changes[1]?.t, new Date('2026-12-05T21:00:04.000').getTime(), 'absent only once the last route of the prefix went');
  t.same([...tr.present()], []);
});
