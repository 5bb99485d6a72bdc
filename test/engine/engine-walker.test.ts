// Whole-table walks of the route-processing core (bgp/rib/walker.ts): a peer going down with a large table leaves
// no route of it behind and lets the event loop turn while it goes; and for any sequence of UPDATEs, peers going
// down (with or without keeping stale paths) and up, stale marks and sweeps, ROUTE-REFRESH and export
// re-evaluation, a core whose walks run in tiny slices between other work ends in the same state as one whose
// walks run at once: the same Loc-RIB, Adj-RIB-Out and per-peer counts, the same routes at each peer and in the FIB
// (a consumer of the best-change stream), and the incremental stale count equals a count by walking the table.
import t from 'tap';
import fc from 'fast-check';
import { IPV4_UNICAST, RibCore } from '../../bgp/index.js';
import type { OutBatch, PathAttributes, PrefixKey, UpdateMessage } from '../../bgp/index.js';
import { show, terms, v4 } from '../helpers/rib.js';

const LOCAL_AS = 64512;
const ROUTER_ID = 0x0a000001;

const attrsOf = (peer: number, variant: number): PathAttributes => ({
  origin: 0, asPath: [{ type: 2, asns: [65001 + peer, 65100 + variant] }], nextHop: `192.0.2.${10 + peer * 3 + variant}`, med: variant,
});
const announce = (prefixes: number[], a: PathAttributes): UpdateMessage => ({ type: 'UPDATE', withdrawn: v4([]), attributes: a, nlri: v4(prefixes) });
const withdraw = (prefixes: number[]): UpdateMessage => ({ type: 'UPDATE', withdrawn: v4(prefixes), attributes: {}, nlri: v4([]) });

t.test('a peer holding many routes goes down: the loop turns meanwhile, and none of its routes is left', async (t) => {
  // A clock that moves 1 ms each time it is read makes the slices the same on any machine; the loop is the real one.
  let clock = 0;
  let progress = 0;
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID, walk: { now: () => ++clock }, onWork: () => progress++ });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100' });
  const b = core.addPeer({ address: '192.0.2.2', asn: 65002, localAddress: '192.0.2.100' });
  core.peerUp(a, terms(1, false));
  core.peerUp(b, terms(2, false));
  const N = 100_000;
  const base = (10 << 24) >>> 0;
  const prefixes = Array.from({ length: N }, (_, i) => (base + i) * 64 + 32);
  for (let i = 0; i < N; i += 5000) core.applyUpdate(a, announce(prefixes.slice(i, i + 5000), attrsOf(0, 0)));
  t.equal(core.drainBestChanges().length, N);
  let toB = 0;
  for (let x = core.nextBatch(b, 10_000); x; x = core.nextBatch(b, 10_000)) if (x.kind === 'announce') toB += x.prefixes.length;
  t.equal(toB, N, 'B got every route');

  core.peerDown(a);
  t.ok(core.walksPending > 0, 'the walk did not run to its end inside peerDown');
  const seen: number[] = [];
  let turns = 0;
  while (core.walksPending > 0 && turns < 100_000) {
    await new Promise((r) => setImmediate(r));
    turns++;
    seen.push(core.locSize);
  }
  t.equal(core.walksPending, 0, 'the walk finished');
  t.ok(seen.some((n) => n > 0 && n < N), 'the event loop turned while part of the table was still there');
  t.ok(progress > 1, 'the driver was told after the slices that ran later');
  t.equal(core.locSize, 0, 'no route of the peer is left in the Loc-RIB');
  t.equal(core.peerStats(a).received, 0);
  t.equal(core.staleCount(a), 0);
  const gone = core.drainBestChanges();
  t.equal(gone.length, N, 'one best-path removal per prefix');
  t.ok(gone.every((c) => c.best === null));
  let withdrawn = 0;
  for (let x = core.nextBatch(b, 10_000); x; x = core.nextBatch(b, 10_000)) if (x.kind === 'withdraw') withdrawn += x.prefixes.length;
  t.equal(withdrawn, N, 'B is told of every one');
  t.equal(core.peerStats(b).advertised, 0);
});

t.test('next hops becoming unreachable, a late best-change consumer, a peer going down: walks the loop turns during', async (t) => {
  let clock = 0;
  const down = new Set<string>();
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID, walk: { now: () => ++clock } });
  core.setNextHopCheck((nh) => (down.has(nh[0] ?? '') ? { code: 'unresolvable' as const, text: 'test' } : null));
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100' });
  const b = core.addPeer({ address: '192.0.2.2', asn: 65002, localAddress: '192.0.2.100' });
  core.peerUp(a, terms(1, false));
  core.peerUp(b, terms(2, false));
  const N = 30_000;
  const prefixes = Array.from({ length: N }, (_, i) => (((10 << 24) >>> 0) + i) * 64 + 32);
  for (let i = 0; i < N; i += 5000) core.applyUpdate(a, announce(prefixes.slice(i, i + 5000), attrsOf(0, 0)));
  core.drainBestChanges();
  const sent = (kind: 'announce' | 'withdraw'): number => {
    let n = 0;
    for (let x = core.nextBatch(b, 10_000); x; x = core.nextBatch(b, 10_000)) if (x.kind === kind) n += x.prefixes.length;
    return n;
  };
  t.equal(sent('announce'), N);
  /** turns of the real event loop until every walk is done; how many of them saw the walk half way */
  const settle = async (half: () => boolean): Promise<number> => {
    let seen = 0;
    for (let i = 0; i < 100_000 && core.walksPending > 0; i++) {
      await new Promise((r) => setImmediate(r));
      if (core.walksPending > 0 && half()) seen++;
    }
    t.equal(core.walksPending, 0, 'the walk finished');
    return seen;
  };

  down.add(attrsOf(0, 0).nextHop as string);
  const first = core.recheckNextHops();
  t.ok(first < N && core.walksPending > 0, 'the re-check did not run to its end inside the call');
  let gone = 0;
  const seen = await settle(() => {
    gone += core.drainBestChanges().filter((c) => c.best === null).length;
    return gone > 0 && gone < N;
  });
  gone += core.drainBestChanges().filter((c) => c.best === null).length;
  t.ok(seen > 0, 'other work ran while part of the table was re-decided');
  t.equal(gone, N, 'every prefix lost its best path, once');
  t.equal(sent('withdraw'), N, 'and was withdrawn from B');

  down.clear();
  core.recheckNextHops();
  await settle(() => true);
  t.equal(core.drainBestChanges().length, N, 'reachable again: every prefix has its best back');
  t.equal(sent('announce'), N);

  core.setBestTracking(false);
  core.setBestTracking(true);
  t.ok(core.walksPending > 0, 'a consumer that starts late: the table is marked in a walk');
  let handed = 0;
  const half = await settle(() => {
    handed += core.drainBestChanges().length;
    return handed > 0 && handed < N;
  });
  handed += core.drainBestChanges().length;
  t.ok(half > 0, 'changes were handed out while the walk went on');
  t.equal(handed, N, 'the whole table, each prefix once');

  core.peerDown(b);
  t.equal(core.peerStats(b).advertised, 0, 'a downed peer\'s Adj-RIB-Out is empty at once');
  t.ok(core.walksPending > 0, 'its old entries are released in a walk');
  await settle(() => true);
  core.peerUp(b, terms(2, false));
  await settle(() => true);
  t.equal(sent('announce'), N, 'the next session gets the whole table');
});

t.test('drainBestChanges with a budget hands out part and keeps the rest, in order', async (t) => {
  let clock = 0;
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID, walk: { now: () => ++clock, minPerSlice: 100 } });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100' });
  core.peerUp(a, terms(1, false));
  const prefixes = Array.from({ length: 5000 }, (_, i) => (((10 << 24) >>> 0) + i) * 64 + 32);
  core.applyUpdate(a, announce(prefixes, attrsOf(0, 0)));
  const got: PrefixKey[] = [];
  let calls = 0;
  while (core.pendingBestChanges > 0 && calls < 10_000) {
    const part = core.drainBestChanges(5);
    t.ok(part.length > 0 || core.pendingBestChanges === 0);
    got.push(...part.map((c) => c.prefix));
    calls++;
  }
  t.ok(calls > 1, 'more than one call');
  t.same(got, prefixes, 'every change once, in order');
});

// ---------------------------------------------------------------------------------------------------------------
// The same operations on a core whose walks run at once and on one whose walks run a few keys at a time.

const PREFIXES = [...Array.from({ length: 10 }, (_, i) => (((10 << 24) >>> 0) + i * 256) * 64 + 24), 'fd00:1::/64', 'fd00:2::/64'];
const PEERS = [
  { address: '192.0.2.1', asn: 65001 },
  { address: '192.0.2.2', asn: 65002 },
  { address: '192.0.2.3', asn: LOCAL_AS, routeReflectorClient: true },
];

type Op =
  | { op: 'announce'; peer: number; prefixes: number[]; variant: number }
  | { op: 'withdraw'; peer: number; prefixes: number[] }
  | { op: 'down'; peer: number; retain: boolean }
  | { op: 'up'; peer: number }
  | { op: 'mark'; peer: number; v6: boolean }
  | { op: 'sweep'; peer: number; fam: 'v4' | 'v6' | 'all' }
  | { op: 'refresh'; peer: number }
  | { op: 'reexport'; peer: number }
  | { op: 'turn' }
  | { op: 'drain' }
  /** these next hops (indexes into NEXT_HOPS) become unreachable, the others reachable; the core re-checks */
  | { op: 'nexthop'; down: number[] }
  /** RFC 9494: the peer's stale paths of a family enter the long-lived phase */
  | { op: 'llgr'; peer: number; v6: boolean }
  /** the best-change consumer starts again: tracking off, its view dropped, tracking on (the whole table comes) */
  | { op: 'track' }
  /** the peer's import policy now refuses routes of one variant (MED); what it sent is imported again */
  | { op: 'reimport'; peer: number; refuse: number | null };

const peerArb = fc.integer({ min: 0, max: PEERS.length - 1 });
const prefixIdx = fc.uniqueArray(fc.integer({ min: 0, max: PREFIXES.length - 1 }), { minLength: 1, maxLength: 6 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('announce' as const), peer: peerArb, prefixes: prefixIdx, variant: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('withdraw' as const), peer: peerArb, prefixes: prefixIdx }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('down' as const), peer: peerArb, retain: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('up' as const), peer: peerArb }) },
  fc.record({ op: fc.constant('mark' as const), peer: peerArb, v6: fc.boolean() }),
  fc.record({ op: fc.constant('sweep' as const), peer: peerArb, fam: fc.constantFrom('v4' as const, 'v6' as const, 'all' as const) }),
  fc.record({ op: fc.constant('refresh' as const), peer: peerArb }),
  fc.record({ op: fc.constant('reexport' as const), peer: peerArb }),
  fc.record({ op: fc.constant('nexthop' as const), down: fc.uniqueArray(fc.integer({ min: 0, max: 11 }), { maxLength: 4 }) }),
  fc.record({ op: fc.constant('llgr' as const), peer: peerArb, v6: fc.boolean() }),
  fc.record({ op: fc.constant('track' as const) }),
  fc.record({ op: fc.constant('reimport' as const), peer: peerArb, refuse: fc.option(fc.integer({ min: 0, max: 2 })) }),
  { weight: 3, arbitrary: fc.record({ op: fc.constant('turn' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('drain' as const) }) },
);

/** every next hop the operations use: attrsOf's IPv4 ones, then the IPv6 ones of the announcements */
const NEXT_HOPS = [...Array.from({ length: 9 }, (_, i) => `192.0.2.${10 + i}`), 'fd00::1', 'fd00::2', 'fd00::3'];

/** One core with what its consumers hold: each peer's received routes, and the FIB made from the best changes. */
class Side {
  readonly core: RibCore;
  readonly ids: number[];
  readonly up: boolean[];
  /** per peer: prefix -> attributes as JSON (what the peer would hold after applying what it was sent) */
  readonly rx: Map<string, string>[];
  readonly eor: number[];
  /** End-of-RIB received over all sessions */
  eorAll: number[] = [];
  readonly fib = new Map<string, string>();
  readonly deferred: (() => void)[] = [];
  readonly unreachable = new Set<string>();
  constructor(slow: boolean) {
    let clock = 0;
    this.core = new RibCore({
      localAs: LOCAL_AS, routerId: ROUTER_ID,
      walk: slow ? { now: () => ++clock, sliceMs: 2, minPerSlice: 1, defer: (fn) => this.deferred.push(fn) } : { sliceMs: Infinity },
    });
    this.ids = PEERS.map((p) => this.core.addPeer({ ...p, localAddress: '192.0.2.100', localAddress6: 'fd00::100' }));
    this.core.setNextHopCheck((nh) => (this.unreachable.has(nh[0] ?? '') ? { code: 'unresolvable' as const, text: 'down in this test' } : null));
    this.up = PEERS.map(() => false);
    this.rx = PEERS.map(() => new Map());
    this.eor = PEERS.map(() => 0);
    this.eorAll = PEERS.map(() => 0);
    for (let i = 0; i < PEERS.length; i++) this.apply({ op: 'up', peer: i });
  }
  turn(): void {
    this.deferred.shift()?.();
  }
  settle(): void {
    for (let i = 0; i < 100_000 && this.deferred.length > 0; i++) this.turn();
    if (this.deferred.length > 0) throw new Error('walks did not settle');
  }
  drain(): void {
    for (const c of this.core.drainBestChanges()) {
      if (c.best === null) this.fib.delete(show(c.prefix));
      else this.fib.set(show(c.prefix), `${c.from} ${c.nextHops.join(',')}`);
    }
    for (let i = 0; i < this.ids.length; i++) {
      for (let x = this.core.nextBatch(this.ids[i]!, 1000), n = 0; x && n < 100_000; x = this.core.nextBatch(this.ids[i]!, 1000), n++) this.receive(i, x);
    }
  }
  receive(i: number, b: OutBatch): void {
    if (b.kind === 'announce') for (const p of b.prefixes) this.rx[i]!.set(show(p), JSON.stringify(b.attrs.attrs));
    else if (b.kind === 'withdraw') for (const p of b.prefixes) this.rx[i]!.delete(show(p));
    else if (b.kind === 'end-of-rib') {
      this.eor[i]!++;
      this.eorAll[i]!++;
    }
  }
  apply(o: Op): void {
    const core = this.core;
    switch (o.op) {
      case 'announce':
      case 'withdraw': {
        if (!this.up[o.peer]) return;
        const ps = o.prefixes.map((i) => PREFIXES[i]!);
        const p4 = ps.filter((p): p is number => typeof p === 'number');
        const p6 = ps.filter((p): p is string => typeof p === 'string');
        const id = this.ids[o.peer]!;
        if (o.op === 'withdraw') {
          core.applyUpdate(id, { ...withdraw(p4), mpUnreach: { afi: 2, safi: 1, withdrawn: { afi: 2, safi: 1, prefixes: p6, pathIds: null } } });
          return;
        }
        const a = attrsOf(o.peer, o.variant);
        if (p4.length > 0) core.applyUpdate(id, announce(p4, a));
        if (p6.length > 0) {
          const { nextHop: _n, ...rest } = a;
          core.applyUpdate(id, { type: 'UPDATE', withdrawn: v4([]), attributes: rest, nlri: v4([]), mpReach: { afi: 2, safi: 1, nextHops: [`fd00::${o.peer + 1}`], nlri: { afi: 2, safi: 1, prefixes: p6, pathIds: null } } });
        }
        return;
      }
      case 'down':
        if (!this.up[o.peer]) return;
        this.up[o.peer] = false;
        this.rx[o.peer]!.clear(); // the session is gone: so is what the peer held from us
        this.eor[o.peer] = 0; // and whether it got End-of-RIB (a session cut during its initial table gets none)
        core.peerDown(this.ids[o.peer]!, { retainStale: o.retain });
        return;
      case 'up':
        if (this.up[o.peer]) return;
        this.up[o.peer] = true;
        core.peerUp(this.ids[o.peer]!, terms(o.peer + 1, PEERS[o.peer]!.asn === LOCAL_AS, { enhancedRouteRefresh: true }));
        core.keepReceived(this.ids[o.peer]!, true); // for 'reimport'
        return;
      case 'nexthop':
        this.unreachable.clear();
        for (const i of o.down) this.unreachable.add(NEXT_HOPS[i]!);
        core.recheckNextHops();
        return;
      case 'llgr':
        core.enterLongLivedStale(this.ids[o.peer]!, o.v6 ? 0x0201 : IPV4_UNICAST);
        return;
      case 'track':
        core.setBestTracking(false);
        this.fib.clear();
        core.setBestTracking(true);
        return;
      case 'reimport': {
        const refuse = o.refuse;
        core.updatePeer(this.ids[o.peer]!, {
          ...PEERS[o.peer]!, localAddress: '192.0.2.100', localAddress6: 'fd00::100',
          ...(refuse === null ? {} : { importPolicy: (_p, a) => (a.med === refuse ? { accept: false } : { accept: true }) }),
        });
        core.reimport(this.ids[o.peer]!);
        return;
      }
      case 'mark':
        core.markStale(this.ids[o.peer]!, o.v6 ? 0x0201 : IPV4_UNICAST);
        return;
      case 'sweep':
        core.sweepStale(this.ids[o.peer]!, o.fam === 'all' ? undefined : o.fam === 'v6' ? 0x0201 : IPV4_UNICAST);
        return;
      case 'refresh':
        core.routeRefresh(this.ids[o.peer]!, 1, 1);
        return;
      case 'reexport':
        core.refreshExports(this.ids[o.peer]!);
        return;
      case 'turn':
        this.turn();
        return;
      case 'drain':
        this.drain();
        return;
    }
  }
  /** Everything the outside can see, as text. */
  view(): string {
    const core = this.core;
    const loc = PREFIXES.map((p) => {
      const r = core.route(p);
      return r === null ? '-' : `${r.best.source.address} ${JSON.stringify(r.best.attrs.attrs)} ${r.paths.length}`;
    });
    const out = this.ids.map((id) => PREFIXES.map((p) => JSON.stringify(core.advertised(id, p)?.attrs ?? null)));
    const stats = this.ids.map((id) => [JSON.stringify(core.peerStats(id)), core.staleCount(id)]);
    return JSON.stringify({ loc, out, stats, rx: this.rx.map((m) => [...m].sort()), eor: this.eor, fib: [...this.fib].sort() });
  }
}

t.test('a session that goes down while its initial table is still going out: that walk stops, the next session gets it all', async (t) => {
  const s = new Side(true);
  s.apply({ op: 'announce', peer: 0, prefixes: [0, 1, 2, 3, 4, 5, 6, 7], variant: 0 });
  s.apply({ op: 'drain' });
  s.apply({ op: 'down', peer: 1, retain: false });
  s.apply({ op: 'up', peer: 1 });
  t.ok(s.core.walksPending > 0, 'the initial table is still being walked');
  s.apply({ op: 'down', peer: 1, retain: false });
  s.settle();
  t.equal(s.core.peerStats(s.ids[1]!).advertised, 0, 'nothing was exported to the peer while it was down');
  s.apply({ op: 'up', peer: 1 });
  s.settle();
  s.drain();
  t.equal(s.rx[1]!.size, 8, 'the new session received every route');
  t.equal(s.eorAll[1], 4, 'End-of-RIB per family (two) for each session that got its table (the first at construction), none for the cut one');
});

t.test('walks in tiny slices between other work end where walks at once end', async (t) => {
  fc.assert(fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
    const fast = new Side(false);
    const slow = new Side(true);
    for (const o of ops) {
      fast.apply(o);
      slow.apply(o);
      // the incremental stale count is the count by walking the table, at any moment
      for (const s of [fast, slow]) {
        for (const id of s.ids) {
          if (s.core.staleCount(id) !== s.core.staleCountByWalk(id)) throw new Error(`peer ${id}: stale count ${s.core.staleCount(id)}, by walking ${s.core.staleCountByWalk(id)}`);
        }
      }
    }
    t.equal(fast.core.walksPending, 0, 'walks at once leave nothing pending');
    slow.settle();
    fast.drain();
    slow.drain();
    const a = fast.view();
    const b = slow.view();
    if (a !== b) throw new Error(`differ:\n at once: ${a}\n sliced:  ${b}`);
    // and what each peer holds is what Adj-RIB-Out says it was sent
    for (const s of [fast, slow]) {
      s.ids.forEach((id, i) => {
        const want = PREFIXES.map((p) => [show(p), s.core.advertised(id, p)] as const).filter(([, x]) => x !== undefined).map(([p, x]) => [p, JSON.stringify(x!.attrs)]).sort();
        if (JSON.stringify(want) !== JSON.stringify([...s.rx[i]!].sort())) throw new Error(`peer ${i} holds ${JSON.stringify([...s.rx[i]!])}, Adj-RIB-Out ${JSON.stringify(want)}`);
      });
    }
  }), { numRuns: 1500 });
  t.pass('equal');
});
