// A host's views arrive one after another, each a route or two away from the last (a workload's route beside Felix),
// and NextHopTable (bgp/rib/next-hop.ts) and NextHopResolver (bgp/rib/nexthop-resolve.ts) keep what they parsed for
// the last view. Property: after any sequence of views, a table fed the whole sequence judges every next hop as a
// fresh table fed only the last view does, and a resolver built for the last view answers as one built before any
// other view was parsed.
import t from 'tap';
import fc from 'fast-check';
import { NextHopResolver, NextHopTable, type Reachability, type ResolvingRoute } from '../../bgp/index.js';

// routes from a small pool, so that views share most of them; some are not prefixes at all
const POOL = ['10.0.0.0/24', '10.0.0.5', '10.0.0.6', '10.0.1.0/24', '10.1.0.0/16', '0.0.0.0/0', '192.0.2.7', '192.0.2.0/25',
  'fd00::/64', 'fd00::5', 'fd00:1::/48', '::/0', 'not-a-prefix', '10.0.0.0/33'];
const NEXT_HOPS = ['10.0.0.5', '10.0.0.6', '10.0.0.9', '10.0.1.1', '10.1.2.3', '192.0.2.7', '192.0.2.9', '192.0.2.200', '203.0.113.1',
  'fd00::5', 'fd00::9', 'fd00:1::1', '2001:db8::1'];
const ADDRS = ['10.0.0.1', 'fd00::1'];

const view = fc.record({
  routes: fc.subarray(POOL),
  addresses: fc.subarray(ADDRS),
  gateways: fc.array(fc.constantFrom('10.0.0.254', '10.0.0.253'), { minLength: POOL.length, maxLength: POOL.length }),
}).map(({ routes, addresses, gateways }): Reachability => ({
  addresses,
  routes,
  resolving: routes.map((dst, i): ResolvingRoute => ({ dst, hops: dst.endsWith('/16') || dst.endsWith('/0') ? [{ gateway: gateways[i]! }] : [] })),
}));

t.test('a table fed a sequence of views judges as a fresh one fed the last', (t) => {
  fc.assert(fc.property(fc.array(view, { minLength: 1, maxLength: 8 }), (views) => {
    const seq = new NextHopTable();
    for (const v of views) seq.setReachability(v);
    const last = views[views.length - 1]!;
    const fresh = new NextHopTable();
    fresh.setReachability(last);
    for (const nh of NEXT_HOPS) {
      const a = seq.check([nh]);
      const b = fresh.check([nh]);
      if ((a?.code ?? null) !== (b?.code ?? null)) throw new Error(`${nh}: ${a?.code ?? 'usable'} after the sequence, ${b?.code ?? 'usable'} fresh`);
    }
    // and resolvers built along the way answer for the last view as a new one does
    for (const v of views) new NextHopResolver(v.resolving ?? []);
    const r1 = new NextHopResolver(last.resolving ?? []);
    for (const nh of NEXT_HOPS) {
      const want = JSON.stringify(resolveFresh(last.resolving ?? [], nh));
      if (JSON.stringify(r1.resolve(nh)) !== want) throw new Error(`${nh}: the resolver differs from a by-hand longest match`);
    }
  }), { numRuns: 300 });
  t.pass('300 sequences');
  t.end();
});

/** Longest match by hand over the routes that parse (lowest metric first; all 0 here). */
function resolveFresh(routes: readonly ResolvingRoute[], nh: string): readonly { gateway?: string }[] | null {
  const v6 = nh.includes(':');
  let best: ResolvingRoute | undefined;
  let bestLen = -1;
  for (const r of routes) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(r.dst);
    if (m === null || m[1]!.includes(':') !== v6) continue;
    const full = v6 ? 128 : 32;
    const len = m[2] === undefined ? full : Number(m[2]);
    if (len > full) continue;
    if (!covers(m[1]!, len, nh, v6) || len <= bestLen) continue;
    best = r;
    bestLen = len;
  }
  return best === undefined ? null : best.hops;
}

function covers(net: string, len: number, addr: string, v6: boolean): boolean {
  const bits = (a: string): string => v6 ? expand6(a) : a.split('.').map((x) => Number(x).toString(2).padStart(8, '0')).join('');
  if (!v6 && !/^\d+\.\d+\.\d+\.\d+$/.test(net)) return false;
  return bits(net).slice(0, len) === bits(addr).slice(0, len);
}

function expand6(a: string): string {
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const tl = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl];
  return groups.map((g) => parseInt(g, 16).toString(2).padStart(16, '0')).join('');
}

// The same with route events in between (NextHopTable.applyRoutes, NextHopResolver.add/remove): after a first view and
// any sequence of routes coming and going, the table and the resolver answer as fresh ones given the final view, and
// each change's `concerns` covers every next hop whose verdict it changed.
const hopsOf = (dst: string): ResolvingRoute['hops'] => (dst.endsWith('/16') || dst.endsWith('/0') ? [{ gateway: '10.0.0.254' }] : []);
const change = fc.record({ add: fc.subarray(POOL), remove: fc.subarray(POOL) });

t.test('routes that come and go one change at a time: as a fresh table and resolver of the final view', (t) => {
  fc.assert(fc.property(fc.subarray(POOL), fc.array(change, { maxLength: 8 }), (first, changes) => {
    const viewOf = (routes: readonly string[]): Reachability => ({ addresses: ADDRS, routes: [...routes], resolving: routes.map((dst) => ({ dst, hops: hopsOf(dst) })) });
    const table = new NextHopTable();
    table.setReachability(viewOf(first));
    const resolver = new NextHopResolver(viewOf(first).resolving!);
    const now = new Set(first);
    for (const c of changes) {
      const added = c.add.filter((x) => !now.has(x));
      const removed = c.remove.filter((x) => now.has(x) && !added.includes(x));
      const before = new NextHopTable();
      before.setReachability(viewOf([...now]));
      for (const x of removed) now.delete(x);
      for (const x of added) now.add(x);
      const concerns = table.applyRoutes(added, removed);
      for (const x of removed) resolver.remove({ dst: x, hops: hopsOf(x) });
      for (const x of added) resolver.add({ dst: x, hops: hopsOf(x) });
      const after = new NextHopTable();
      after.setReachability(viewOf([...now]));
      for (const nh of NEXT_HOPS) {
        const was = before.check([nh])?.code ?? null;
        const is = after.check([nh])?.code ?? null;
        const got = table.check([nh])?.code ?? null;
        if (got !== is) throw new Error(`${nh}: ${got ?? 'usable'} after the changes, ${is ?? 'usable'} fresh`);
        if (was !== is && concerns?.(nh) !== true) throw new Error(`${nh} changed (${was ?? 'usable'} -> ${is ?? 'usable'}) but the change does not concern it`);
      }
    }
    const fresh = new NextHopResolver(viewOf([...now]).resolving!);
    for (const nh of NEXT_HOPS) {
      if (JSON.stringify(resolver.resolve(nh)) !== JSON.stringify(fresh.resolve(nh))) throw new Error(`${nh}: the resolver differs from a fresh one`);
    }
  }), { numRuns: 300 });
  t.pass('300 sequences');
  t.end();
});
