// KernelLearner's bookkeeping (src/daemon/kernel-learn.ts) on hand-made kernel routes: which routes it learns, how
// events and dumps combine, one route per prefix. The real kernel path (events and dumps in a namespace, beside a
// Felix stand-in) is test/interop/calico-felix-learn.test.ts.
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { KernelLearner } from '../../src/daemon/kernel-learn.js';
import type { HostRoute, KernelRoute } from '../../fib/index.js';

const v4 = (s: string): Uint8Array => new Uint8Array(s.split('.').map(Number));
const kr = (dst: string, len: number, o: Partial<KernelRoute> = {}): KernelRoute => ({
  family: 4, addr: v4(dst), len, table: 254, metric: 0, protocol: 80, type: 1, scope: 253, hops: [{ gateway: undefined, ifindex: 7, onlink: false, dead: false, weight: 1 }], ...o,
});
const hr = (dst: string, len: number, o: Partial<HostRoute> = {}): HostRoute => ({
  family: 4, dst: v4(dst), dstLen: len, type: 1, protocol: 80, hops: [{ ifindex: 7, otherFamily: false, onlink: false }], ...o,
});
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

t.test('learns other programs\' routes of the main table, not the kernel\'s, skein\'s or other tables\'', async (t) => {
  let changes = 0;
  const l = new KernelLearner({ ownProtocol: 171, linkName: (i) => (i === 7 ? 'cali1' : undefined), onChange: () => changes++ });
  l.change(true, kr('10.65.0.5', 32));
  l.change(true, kr('10.65.0.6', 32, { protocol: 4, metric: 512 }));
  l.change(true, kr('10.65.0.7', 32, { protocol: 171 })); // skein's own
  l.change(true, kr('10.0.0.0', 24, { protocol: 2 })); // a connected subnet
  l.change(true, kr('10.65.0.8', 32, { table: 100 })); // another table
  l.change(true, kr('10.65.0.9', 32, { type: 9 })); // throw
  l.change(true, kr('10.65.1.0', 26, { type: 6, hops: [] })); // a blackhole: learned, no interface
  await turn();
  t.equal(changes, 1, 'one notification for the burst');
  t.same(l.routes(), [
    { prefix: '10.65.0.5/32', family: 4, metric: 0, protocol: 80, type: 1, ifname: 'cali1' },
    { prefix: '10.65.0.6/32', family: 4, metric: 512, protocol: 4, type: 1, ifname: 'cali1' },
    { prefix: '10.65.1.0/26', family: 4, metric: 0, protocol: 80, type: 6 },
  ]);
  l.change(true, kr('10.65.0.5', 32)); // the same again
  await turn();
  t.equal(changes, 1, 'an unchanged route is no change');
  l.change(false, kr('10.65.0.5', 32));
  await turn();
  t.equal(changes, 2);
  t.notOk(l.routes().some((r) => r.prefix === '10.65.0.5/32'), 'deleted');
  t.end();
});

t.test('one route per prefix: the lowest metric; a route replaced under another protocol moves', async (t) => {
  const l = new KernelLearner({ ownProtocol: 171, onChange: () => {} });
  l.change(true, kr('10.65.0.5', 32, { metric: 1024 }));
  l.change(true, kr('10.65.0.5', 32, { metric: 512, protocol: 4 }));
  t.same(l.routes().map((r) => [r.prefix, r.metric, r.protocol, r.ifname]), [['10.65.0.5/32', 512, 4, 'if7']], 'the one the kernel forwards with; an unknown interface as iproute2 names it');
  l.change(false, kr('10.65.0.5', 32, { metric: 512, protocol: 4 }));
  t.same(l.routes().map((r) => r.metric), [1024], 'the other one is back');
  l.change(true, kr('10.65.0.5', 32, { metric: 1024, protocol: 3 })); // `ip route replace ... proto boot`
  t.same(l.routes().map((r) => r.protocol), [3]);
  t.equal(l.size, 1, 'one destination and metric: one route');
  t.end();
});

t.test('a settled dump replaces what events built for its protocol; an unsettled one does not', async (t) => {
  const l = new KernelLearner({ ownProtocol: 171, onChange: () => {} });
  l.change(true, kr('10.65.0.5', 32));
  l.change(true, kr('10.65.0.6', 32, { protocol: 4 }));
  // the dump of 80 says .5 is gone (an event was missed) and .7 exists; 4's dump overlapped an event: kept as is
  l.settle(new Map([[80, [hr('10.65.0.7', 32)]], [4, []]]), new Set([80]));
  t.same(l.routes().map((r) => r.prefix), ['10.65.0.6/32', '10.65.0.7/32']);
  l.settle(new Map([[4, []], [171, [hr('10.65.0.9', 32, { protocol: 171 })]]]), new Set([4, 171]));
  t.same(l.routes().map((r) => r.prefix), ['10.65.0.7/32'], 'protocol 4 empty now; skein\'s own dump learns nothing');
  const v = l.version;
  l.settle(new Map([[80, [hr('10.65.0.7', 32)]]]), new Set([80]));
  t.equal(l.version, v, 'the same dump again changes nothing');
  t.end();
});

t.test('takeChanges: the changed prefixes with their routes now; applied to a copy, they rebuild routes() (generated)', async (t) => {
  const { default: fc } = await import('fast-check');
  const dsts = ['10.65.0.5', '10.65.0.6', '10.65.0.7'];
  const op = fc.oneof(
    fc.record({ kind: fc.constant('event' as const), added: fc.boolean(), dst: fc.constantFrom(...dsts), metric: fc.constantFrom(0, 512, 1024), protocol: fc.constantFrom(80, 4, 3), ifindex: fc.constantFrom(7, 8) }),
    fc.record({ kind: fc.constant('dump' as const), protocol: fc.constantFrom(80, 4), settled: fc.boolean(),
      routes: fc.array(fc.record({ dst: fc.constantFrom(...dsts), metric: fc.constantFrom(0, 512, 1024) }), { maxLength: 3 }) }),
    fc.constant({ kind: 'take' as const }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
    const l = new KernelLearner({ ownProtocol: 171, linkName: (i) => `eth${i}`, onChange: () => {} });
    const mirror = new Map<string, unknown>();
    const take = (): void => {
      for (const [prefix, r] of l.takeChanges()) {
        if (r === undefined) mirror.delete(prefix);
        else mirror.set(prefix, r);
      }
    };
    for (const o of ops) {
      if (o.kind === 'event') l.change(o.added, kr(o.dst, 32, { metric: o.metric, protocol: o.protocol, hops: [{ gateway: undefined, ifindex: o.ifindex, onlink: false, dead: false, weight: 1 }] }));
      else if (o.kind === 'dump') l.settle(new Map([[o.protocol, o.routes.map((r) => hr(r.dst, 32, { protocol: o.protocol, metric: r.metric }))]]), new Set(o.settled ? [o.protocol] : []));
      else take();
    }
    take();
    const whole = new Map(l.routes().map((r) => [r.prefix, r]));
    // nothing left to take: a second call is empty
    return isDeepStrictEqual(mirror, whole) && l.takeChanges().size === 0;
  }), { numRuns: 500 });
  t.pass('500 generated sequences');
  t.end();
});

t.test('takeChanges names only what changed', async (t) => {
  const l = new KernelLearner({ ownProtocol: 171, onChange: () => {} });
  l.change(true, kr('10.65.0.5', 32));
  l.change(true, kr('10.65.0.6', 32, { metric: 1024 }));
  t.same([...l.takeChanges().keys()], ['10.65.0.5/32', '10.65.0.6/32']);
  l.change(true, kr('10.65.0.5', 32)); // the same route again
  t.same(l.takeChanges().size, 0, 'an unchanged route changes nothing');
  l.change(true, kr('10.65.0.6', 32, { metric: 512 })); // a second route for one prefix, a better one
  t.same([...l.takeChanges()].map(([p, r]) => [p, r?.metric]), [['10.65.0.6/32', 512]], 'one prefix, its best route');
  l.settle(new Map([[80, [hr('10.65.0.5', 32), hr('10.65.0.6', 32, { metric: 1024 }), hr('10.65.0.6', 32, { metric: 512 })]]]), new Set([80]));
  t.same(l.takeChanges().size, 0, 'a dump equal to what events built changes nothing');
  l.change(false, kr('10.65.0.5', 32));
  t.same([...l.takeChanges()], [['10.65.0.5/32', undefined]], 'gone: undefined');
  t.end();
});
