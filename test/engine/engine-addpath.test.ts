// ADD-PATH send (RFC 7911) in the route-processing core: several paths per
// prefix to a peer that negotiated it, under stable path ids, each through the
// export rules; ROUTE-REFRESH with every path; peers without it unchanged.
import t from 'tap';
import fc from 'fast-check';
import { IPV4_UNICAST, IPV6_UNICAST, RibCore, selectBest } from '../../bgp/index.js';
import type { AddPathSend, OutBatch, PathAttributes, PeerConfig, SessionTerms, UpdateMessage } from '../../bgp/index.js';
import { announce, drain, p4, show, terms, v4, withdraw } from '../helpers/rib.js';

const AS = 64512;
const ROUTER_ID = 0x0a000001;
const SELF = '192.0.2.100';

const ibgp = (nextHop: string, localPref = 100, extra: PathAttributes = {}): PathAttributes => ({ origin: 0, asPath: [], nextHop, localPref, ...extra });

/** Wire-level view of batches: "A prefix#id nexthop" / "W prefix#id" / markers. */
function lines(batches: OutBatch[]): string[] {
  const out: string[] = [];
  for (const b of batches) {
    if (b.kind === 'announce') b.prefixes.forEach((p, i) => out.push(`A ${show(p)}#${b.pathIds?.[i] ?? '-'} ${b.attrs.nextHops.join(',')}`));
    else if (b.kind === 'withdraw') b.prefixes.forEach((p, i) => out.push(`W ${show(p)}#${b.pathIds?.[i] ?? '-'}`));
    else out.push(b.kind);
  }
  return out.sort();
}

/**
 * A route reflector (AS 64512) with clients A, B, D, non-clients N, M, eBGP
 * peer E, and the ADD-PATH receivers: client C and non-client R (mode given),
 * eBGP X (mode all); P is a plain client without ADD-PATH.
 */
function rr(modes: { c?: AddPathSend; r?: AddPathSend } = {}, extra: Partial<Record<string, Partial<PeerConfig>>> = {}) {
  const core = new RibCore({ localAs: AS, routerId: ROUTER_ID });
  const ids: Record<string, number> = {};
  const mk = (name: string, n: number, cfg: Partial<PeerConfig>, tm: Partial<SessionTerms> = {}) => {
    const id = core.addPeer({ address: `192.0.2.${n}`, asn: AS, localAddress: SELF, ...cfg, ...extra[name] });
    core.peerUp(id, terms(0xc0000200 + n, (cfg.asn ?? AS) === AS, tm));
    ids[name] = id;
    return id;
  };
  const tx = { addPathTx: new Set([IPV4_UNICAST]) };
  const rx = { addPathRx: new Set([IPV4_UNICAST]) };
  mk('a', 1, { routeReflectorClient: true }, rx);
  mk('b', 2, { routeReflectorClient: true });
  mk('d', 4, { routeReflectorClient: true });
  mk('n', 14, {});
  mk('m', 15, {});
  mk('e', 30, { asn: 65030 });
  mk('c', 3, { routeReflectorClient: true, addPathSend: modes.c ?? { mode: 'all' } }, tx);
  mk('r', 20, { addPathSend: modes.r ?? { mode: 'all' } }, tx);
  mk('x', 40, { asn: 65040, addPathSend: { mode: 'all' } }, tx);
  mk('p', 5, { routeReflectorClient: true });
  for (const id of Object.values(ids)) drain(core, id);
  return { core, ids: ids as Record<'a' | 'b' | 'c' | 'd' | 'n' | 'm' | 'e' | 'r' | 'x' | 'p', number> };
}

t.test('two clients, one prefix: an ADD-PATH client gets both paths, a plain one the best', async (t) => {
  const { core, ids } = rr();
  core.applyUpdate(ids.a, announce(['10.1.0.0/24'], ibgp('10.0.0.1')));
  core.applyUpdate(ids.b, announce(['10.1.0.0/24'], ibgp('10.0.0.2')));
  t.same(lines(drain(core, ids.c)), ['A 10.1.0.0/24#1 10.0.0.1', 'A 10.1.0.0/24#2 10.0.0.2']);
  t.same(lines(drain(core, ids.p)), ['A 10.1.0.0/24#- 10.0.0.1'], 'no ADD-PATH: the best (lower router id) and no path id');
  const adv = core.advertisedPaths(ids.c, p4('10.1.0.0/24'));
  t.same(adv.map((x) => [x.pathId, x.attrs.attrs.originatorId, x.attrs.attrs.clusterList]), [
    [1, 0xc0000201, [ROUTER_ID]],
    [2, 0xc0000202, [ROUTER_ID]],
  ], 'each reflected path carries its ORIGINATOR_ID and our CLUSTER_LIST (RFC 4456 §8)');
  t.equal(core.peerStats(ids.c).advertised, 2);
  // to the eBGP ADD-PATH peer: both, with the eBGP rules on each
  const x = core.advertisedPaths(ids.x, p4('10.1.0.0/24'));
  t.same(x.map((p) => [p.attrs.nextHops, p.attrs.attrs.asPath, p.attrs.attrs.localPref, p.attrs.attrs.originatorId]), [
    [[SELF], [{ type: 2, asns: [AS] }], undefined, undefined],
    [[SELF], [{ type: 2, asns: [AS] }], undefined, undefined],
  ]);
});

t.test('path ids are stable: best changes and withdrawals touch only the paths concerned', async (t) => {
  const { core, ids } = rr();
  core.applyUpdate(ids.a, announce(['10.1.0.0/24'], ibgp('10.0.0.1')));
  core.applyUpdate(ids.b, announce(['10.1.0.0/24'], ibgp('10.0.0.2')));
  drain(core, ids.c);
  // D's path becomes the best (LOCAL_PREF 200): only D's path goes out, under a new id
  core.applyUpdate(ids.d, announce(['10.1.0.0/24'], ibgp('10.0.0.4', 200)));
  t.equal(core.route(p4('10.1.0.0/24'))?.best.source.address, '192.0.2.4');
  t.same(lines(drain(core, ids.c)), ['A 10.1.0.0/24#3 10.0.0.4'], 'new best: one announcement, no churn of the others');
  t.same(lines(drain(core, ids.p)), ['A 10.1.0.0/24#- 10.0.0.4'], 'the plain client: the new best replaces the old');
  // A replaces its path (new next hop): re-announced under its id
  core.applyUpdate(ids.a, announce(['10.1.0.0/24'], ibgp('10.0.0.11')));
  t.same(lines(drain(core, ids.c)), ['A 10.1.0.0/24#1 10.0.0.11']);
  // withdraw of a non-best path withdraws exactly its id
  core.applyUpdate(ids.b, withdraw(['10.1.0.0/24']));
  t.same(lines(drain(core, ids.c)), ['W 10.1.0.0/24#2']);
  t.same(drain(core, ids.p), [], 'the plain client saw no change');
  // a new path does not take an id freed in the same change, but later the lowest free one
  core.applyUpdate(ids.b, announce(['10.1.0.0/24'], ibgp('10.0.0.2')));
  t.same(lines(drain(core, ids.c)), ['A 10.1.0.0/24#2 10.0.0.2']);
  // the best goes: the others stay where they are
  core.applyUpdate(ids.d, withdraw(['10.1.0.0/24']));
  t.same(lines(drain(core, ids.c)), ['W 10.1.0.0/24#3']);
  t.same(core.advertisedPaths(ids.c, p4('10.1.0.0/24')).map((x) => x.pathId), [1, 2]);
  // the last ones go
  core.applyUpdate(ids.a, withdraw(['10.1.0.0/24'], [0]));
  core.applyUpdate(ids.b, withdraw(['10.1.0.0/24']));
  t.same(lines(drain(core, ids.c)), ['W 10.1.0.0/24#1', 'W 10.1.0.0/24#2']);
  t.equal(core.peerStats(ids.c).advertised, 0);
});

t.test('IPv6 (MP_REACH): both paths with their own next hops, only in the family negotiated', async (t) => {
  const core = new RibCore({ localAs: AS, routerId: ROUTER_ID });
  const mk = (n: number, cfg: Partial<PeerConfig>, tm: Partial<SessionTerms> = {}) => {
    const id = core.addPeer({ address: `192.0.2.${n}`, asn: AS, localAddress: SELF, localAddress6: 'fd00::100', routeReflectorClient: true, ...cfg });
    core.peerUp(id, terms(0xc0000200 + n, true, tm));
    return id;
  };
  const a = mk(1, {});
  const b = mk(2, {});
  // ADD-PATH send negotiated for IPv6 only
  const c = mk(3, { addPathSend: { mode: 'all' } }, { addPathTx: new Set([IPV6_UNICAST]) });
  drain(core, c);
  const an6 = (nh: string): UpdateMessage => ({
    type: 'UPDATE', withdrawn: v4([]), attributes: { origin: 0, asPath: [], localPref: 100 }, nlri: v4([]),
    mpReach: { afi: 2, safi: 1, nextHops: [nh], nlri: { afi: 2, safi: 1, prefixes: ['fd00:70::/64'], pathIds: null } },
  });
  core.applyUpdate(a, an6('fd00::1'));
  core.applyUpdate(b, an6('fd00::2'));
  core.applyUpdate(a, announce(['10.1.0.0/24'], ibgp('10.0.0.1')));
  core.applyUpdate(b, announce(['10.1.0.0/24'], ibgp('10.0.0.2')));
  t.same(lines(drain(core, c)), ['A 10.1.0.0/24#- 10.0.0.1', 'A fd00:70::/64#1 fd00::1', 'A fd00:70::/64#2 fd00::2'], 'IPv4 without ADD-PATH: the best, no id');
  core.applyUpdate(a, { type: 'UPDATE', withdrawn: v4([]), attributes: {}, nlri: v4([]), mpUnreach: { afi: 2, safi: 1, withdrawn: { afi: 2, safi: 1, prefixes: ['fd00:70::/64'], pathIds: null } } });
  t.same(lines(drain(core, c)), ['W fd00:70::/64#1']);
});

t.test('a peer sending several paths itself (ADD-PATH receive): each is a path of its own', async (t) => {
  const { core, ids } = rr();
  core.applyUpdate(ids.a, announce(['10.1.0.0/24', '10.1.0.0/24'], ibgp('10.0.0.1'), [7, 9]));
  core.applyUpdate(ids.a, announce(['10.1.0.0/24'], ibgp('10.0.0.5'), [9]));
  t.same(lines(drain(core, ids.c)), ['A 10.1.0.0/24#1 10.0.0.1', 'A 10.1.0.0/24#2 10.0.0.5'], 'ids are ours, not the source\'s');
  core.applyUpdate(ids.a, withdraw(['10.1.0.0/24'], [7]));
  t.same(lines(drain(core, ids.c)), ['W 10.1.0.0/24#1']);
});

t.test('best N: the N best exportable paths in the decision order', async (t) => {
  const { core, ids } = rr({ c: { mode: 'best', count: 2 } });
  core.applyUpdate(ids.a, announce(['10.1.0.0/24'], ibgp('10.0.0.1', 100)));
  t.same(lines(drain(core, ids.c)), ['A 10.1.0.0/24#1 10.0.0.1']);
  core.applyUpdate(ids.b, announce(['10.1.0.0/24'], ibgp('10.0.0.2', 150)));
  t.same(lines(drain(core, ids.c)), ['A 10.1.0.0/24#2 10.0.0.2']);
  core.applyUpdate(ids.d, announce(['10.1.0.0/24'], ibgp('10.0.0.4', 120)));
  t.same(lines(drain(core, ids.c)), ['A 10.1.0.0/24#3 10.0.0.4', 'W 10.1.0.0/24#1'], 'the LOCAL_PREF 150 and 120 paths: the 100 one goes');
  // the best goes: the third comes back (the lowest id free), the second keeps its id
  core.applyUpdate(ids.b, withdraw(['10.1.0.0/24']));
  t.same(lines(drain(core, ids.c)), ['A 10.1.0.0/24#1 10.0.0.1', 'W 10.1.0.0/24#2']);
  // C's own path is not sent back to it and does not count: the next one fills its place
  core.applyUpdate(ids.c, announce(['10.1.0.0/24'], ibgp('10.0.0.3', 300)));
  t.equal(core.route(p4('10.1.0.0/24'))?.best.source.address, '192.0.2.3');
  t.same(drain(core, ids.c), [], 'still the same two paths');
  t.same(core.advertisedPaths(ids.c, p4('10.1.0.0/24')).map((x) => x.attrs.nextHops[0]), ['10.0.0.1', '10.0.0.4']);
  // best 1 is the best path under a stable id
  const one = rr({ c: { mode: 'best', count: 1 } });
  one.core.applyUpdate(one.ids.a, announce(['10.1.0.0/24'], ibgp('10.0.0.1', 100)));
  one.core.applyUpdate(one.ids.b, announce(['10.1.0.0/24'], ibgp('10.0.0.2', 150)));
  t.same(lines(drain(one.core, one.ids.c)), ['A 10.1.0.0/24#2 10.0.0.2'], 'A\'s path came and went before the sender ran: no withdrawal of an id the peer never saw');
  t.throws(() => one.core.addPeer({ address: '192.0.2.99', asn: AS, addPathSend: { mode: 'best', count: 0 } }), /ADD-PATH send/);
  t.throws(() => one.core.addPeer({ address: '192.0.2.99', asn: AS, addPathSend: { mode: 'every' } as unknown as AddPathSend }), /ADD-PATH send/);
});

t.test('export rules per path: split horizon, reflection, source, policy', async (t) => {
  const noTen2: PeerConfig['exportPolicy'] = (_p, a) => (a.nextHop === '10.0.0.2' ? { accept: false } : { accept: true });
  const { core, ids } = rr({}, { r: { exportPolicy: noTen2 } });
  core.applyUpdate(ids.n, announce(['10.1.0.0/24'], ibgp('10.0.0.14')));
  core.applyUpdate(ids.a, announce(['10.1.0.0/24'], ibgp('10.0.0.1')));
  core.applyUpdate(ids.b, announce(['10.1.0.0/24'], ibgp('10.0.0.2')));
  core.applyUpdate(ids.e, announce(['10.1.0.0/24'], { origin: 0, asPath: [{ type: 2, asns: [65030] }], nextHop: '192.0.2.30' }));
  // client C: every path (non-client's reflected to clients, RFC 4456 §6)
  t.same(lines(drain(core, ids.c)), [
    'A 10.1.0.0/24#1 10.0.0.14', 'A 10.1.0.0/24#2 10.0.0.1', 'A 10.1.0.0/24#3 10.0.0.2', 'A 10.1.0.0/24#4 192.0.2.30',
  ].sort());
  // non-client R: not N's path (iBGP non-client to non-client, RFC 4271 §9.2), not B's (its export policy)
  t.same(lines(drain(core, ids.r)), ['A 10.1.0.0/24#1 10.0.0.1', 'A 10.1.0.0/24#2 192.0.2.30']);
  // the eBGP path to an iBGP peer keeps no ORIGINATOR_ID; the reflected ones have one
  const adv = core.advertisedPaths(ids.r, p4('10.1.0.0/24'));
  t.same(adv.map((x) => x.attrs.attrs.originatorId), [0xc0000201, undefined]);
  // eBGP X: every path, eBGP rules
  t.same(lines(drain(core, ids.x)).length, 4);
  // a path from C is not sent back to C but is to R
  core.applyUpdate(ids.c, announce(['10.2.0.0/24'], ibgp('10.0.0.3')));
  t.same(drain(core, ids.c), []);
  t.same(lines(drain(core, ids.r)), ['A 10.2.0.0/24#1 10.0.0.3']);
  // a route we originate goes to everyone, with our next hop
  core.originate(p4('10.9.0.0/24'));
  t.same(lines(drain(core, ids.c)), [`A 10.9.0.0/24#1 ${SELF}`]);
});

t.test('ROUTE-REFRESH re-sends every path under its id; EoR and session restarts', async (t) => {
  const { core, ids } = rr();
  core.applyUpdate(ids.a, announce(['10.1.0.0/24'], ibgp('10.0.0.1')));
  core.applyUpdate(ids.b, announce(['10.1.0.0/24', '10.1.1.0/24'], ibgp('10.0.0.2')));
  const first = lines(drain(core, ids.c));
  core.routeRefresh(ids.c, 1, 1);
  t.same(lines(drain(core, ids.c)), first, 'the same (prefix, id, next hop) again');
  core.routeRefresh(ids.c, 2, 1);
  t.same(drain(core, ids.c), [], 'nothing in IPv6');
  // enhanced route refresh: BoRR, every path, EoRR
  core.peerDown(ids.c);
  core.peerUp(ids.c, terms(0xc0000203, true, { addPathTx: new Set([IPV4_UNICAST]), enhancedRouteRefresh: true }));
  const up = drain(core, ids.c);
  t.same(lines(up), [...first, 'end-of-rib', 'end-of-rib'].sort(), 'initial dump with every path, End-of-RIB per family');
  t.equal(up.at(-1)?.kind, 'end-of-rib');
  core.routeRefresh(ids.c, 1, 1);
  const r = drain(core, ids.c);
  t.same(r.map((b) => b.kind), ['begin-refresh', 'announce', 'announce', 'end-refresh'].slice(0, r.length));
  t.equal(r[0]?.kind, 'begin-refresh');
  t.equal(r.at(-1)?.kind, 'end-refresh');
  t.same(lines(r.slice(1, -1)), first);
  // the session comes back without ADD-PATH send negotiated: today's behaviour
  core.peerDown(ids.c);
  core.peerUp(ids.c, terms(0xc0000203, true));
  t.same(lines(drain(core, ids.c)), ['A 10.1.0.0/24#- 10.0.0.1', 'A 10.1.1.0/24#- 10.0.0.2', 'end-of-rib', 'end-of-rib']);
  t.equal(core.peerStats(ids.c).advertised, 2);
  // and the references of the ADD-PATH Adj-RIB-Out were given back: a full teardown empties the attribute table
  for (const id of Object.values(ids)) core.removePeer(id);
  t.equal(core.attrs.size, 0);
});

t.test('changing best N to all on a live session: refreshExports brings the rest', async (t) => {
  const { core, ids } = rr({ c: { mode: 'best', count: 1 } });
  core.applyUpdate(ids.a, announce(['10.1.0.0/24'], ibgp('10.0.0.1')));
  core.applyUpdate(ids.b, announce(['10.1.0.0/24'], ibgp('10.0.0.2')));
  t.same(lines(drain(core, ids.c)), ['A 10.1.0.0/24#1 10.0.0.1']);
  core.updatePeer(ids.c, { address: '192.0.2.3', asn: AS, localAddress: SELF, routeReflectorClient: true, addPathSend: { mode: 'all' } });
  core.refreshExports(ids.c);
  t.same(lines(drain(core, ids.c)), ['A 10.1.0.0/24#2 10.0.0.2']);
  core.updatePeer(ids.c, { address: '192.0.2.3', asn: AS, localAddress: SELF, routeReflectorClient: true, addPathSend: { mode: 'best', count: 1 } });
  core.refreshExports(ids.c);
  t.same(lines(drain(core, ids.c)), ['W 10.1.0.0/24#2']);
});

// ---------------------------------------------------------------- properties

/** Throw (so fast-check shrinks) when two values differ. */
function same(a: unknown, b: unknown, what: string): void {
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  if (x !== y) throw new Error(`${what}: got ${x}, expected ${y}`);
}
const NO_SEND = { addPathSend: undefined } as unknown as Partial<PeerConfig>;

type Op = { kind: 'announce' | 'withdraw'; peer: 'a' | 'b' | 'd' | 'n' | 'e' | 'c'; prefix: number; pathId: number; lp: number; hop: number };
const opArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.constantFrom('announce' as const, 'announce' as const, 'withdraw' as const),
  peer: fc.constantFrom('a' as const, 'b' as const, 'd' as const, 'n' as const, 'e' as const, 'c' as const),
  prefix: fc.integer({ min: 0, max: 3 }),
  pathId: fc.integer({ min: 1, max: 2 }), // only A sends path ids (ADD-PATH receive)
  lp: fc.constantFrom(100, 150),
  hop: fc.integer({ min: 1, max: 3 }),
});

function apply(core: RibCore, ids: Record<string, number>, op: Op): void {
  const prefix = `10.${op.prefix}.0.0/24`;
  const pid = op.peer === 'a' ? [op.pathId] : null;
  if (op.kind === 'withdraw') {
    core.applyUpdate(ids[op.peer] as number, withdraw([prefix], pid));
    return;
  }
  const hop = `10.${op.peer.charCodeAt(0)}.${op.pathId}.${op.hop}`;
  const attrs: PathAttributes = op.peer === 'e'
    ? { origin: 0, asPath: [{ type: 2, asns: [65030] }], nextHop: hop }
    : ibgp(hop, op.lp);
  core.applyUpdate(ids[op.peer] as number, announce([prefix], attrs, pid));
}

/** The receiver's table, built from the batches alone; a withdrawal of an id never announced is an error. */
class WireModel {
  readonly table = new Map<string, Map<number, string>>();
  apply(batches: OutBatch[], errors: string[]): void {
    for (const b of batches) {
      if (b.kind === 'announce') {
        b.prefixes.forEach((p, i) => {
          const id = b.pathIds?.[i] as number;
          let m = this.table.get(show(p));
          if (!m) this.table.set(show(p), (m = new Map()));
          m.set(id, desc(b.attrs.attrs, b.attrs.nextHops));
        });
      } else if (b.kind === 'withdraw') {
        b.prefixes.forEach((p, i) => {
          const id = b.pathIds?.[i] as number;
          const m = this.table.get(show(p));
          if (!m?.delete(id)) errors.push(`withdraw of ${show(p)}#${id}, not advertised`);
          if (m?.size === 0) this.table.delete(show(p));
        });
      }
    }
  }
  view(): Record<string, string[]> {
    const o: Record<string, string[]> = {};
    for (const [p, m] of [...this.table].sort()) o[p] = [...m.values()].sort();
    return o;
  }
}
const desc = (a: PathAttributes, hops: readonly string[]): string =>
  `${hops.join(',')} lp=${a.localPref ?? '-'} orig=${a.originatorId ?? '-'} cl=${(a.clusterList ?? []).join(',')} as=${JSON.stringify(a.asPath)}`;

/**
 * What an iBGP RR client with ADD-PATH should hold, from the Loc-RIB alone:
 * every candidate except its own, reflected (ORIGINATOR_ID, CLUSTER_LIST) when
 * from iBGP — limited to the count best in the decision order.
 */
function expected(core: RibCore, clientAddr: string, count: number): Record<string, string[]> {
  const o: Record<string, string[]> = {};
  for (const prefix of [...core.prefixes()].sort((x, y) => show(x).localeCompare(show(y)))) {
    const r = core.route(prefix);
    if (!r) continue;
    let rest = r.paths.filter((x) => x.source.address !== clientAddr);
    const picked = [];
    while (rest.length > 0 && picked.length < count) {
      const w = selectBest(rest, 1)?.best;
      if (!w) break;
      picked.push(w);
      rest = rest.filter((x) => x !== w);
    }
    if (picked.length === 0) continue;
    o[show(prefix)] = picked
      .map((x) => {
        const a = x.attrs.attrs;
        const reflect = x.source.ibgp && !x.source.local;
        const out: PathAttributes = {
          ...a,
          localPref: a.localPref ?? 100,
          ...(reflect ? { originatorId: a.originatorId ?? x.source.routerId, clusterList: [ROUTER_ID, ...(a.clusterList ?? [])] } : {}),
        };
        return desc(out, x.attrs.nextHops);
      })
      .sort();
  }
  return o;
}

t.test('property: what an ADD-PATH client holds equals the model from the Loc-RIB (all and best 2)', async (t) => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 60 }), fc.integer({ min: 1, max: 40 }), (ops, drainEvery) => {
      const all = rr({ c: { mode: 'all' } });
      const two = rr({ c: { mode: 'best', count: 2 } });
      const mAll = new WireModel();
      const mTwo = new WireModel();
      const errors: string[] = [];
      ops.forEach((op, i) => {
        apply(all.core, all.ids, op);
        apply(two.core, two.ids, op);
        if (i % drainEvery === 0) {
          mAll.apply(drain(all.core, all.ids.c, 3), errors);
          mTwo.apply(drain(two.core, two.ids.c, 3), errors);
        }
      });
      mAll.apply(drain(all.core, all.ids.c, 3), errors);
      mTwo.apply(drain(two.core, two.ids.c, 3), errors);
      if (errors.length > 0) throw new Error(errors.join('; '));
      same(mAll.view(), expected(all.core, '192.0.2.3', Infinity), 'all');
      same(mTwo.view(), expected(two.core, '192.0.2.3', 2), 'best 2');
      // the core's own Adj-RIB-Out agrees with the receiver
      let advertised = 0;
      for (const m of mAll.table.values()) advertised += m.size;
      same(all.core.peerStats(all.ids.c).advertised, advertised, 'advertised count');
    }),
    { numRuns: Number(process.env.SKEIN_FC_RUNS ?? 300) },
  );
  t.pass('300 random runs');
});

t.test('property: peers without ADD-PATH send see exactly what they would without ADD-PATH peers around', async (t) => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
      const withAp = rr();
      const without = rr({}, { c: NO_SEND, r: NO_SEND, x: NO_SEND });
      for (const op of ops) {
        apply(withAp.core, withAp.ids, op);
        apply(without.core, without.ids, op);
      }
      for (const name of ['p', 'b', 'n', 'e'] as const) {
        // the same (kind, attributes, prefix, path id) sent; the order of attribute groups and of prefixes in them
        // may differ (an attribute set that other peers' Adj-RIB-Out keep alive is the same object, and its queue
        // group keeps its place)
        const canon = (bs: OutBatch[]): string[] => bs.flatMap((b) =>
          b.kind === 'announce' || b.kind === 'withdraw'
            ? b.prefixes.map((p, i) => `${b.kind} ${b.kind === 'announce' ? b.attrs.key : ''} ${show(p)} ${b.pathIds?.[i] ?? '-'}`)
            : [b.kind]).sort();
        const x = canon(drain(withAp.core, withAp.ids[name]));
        const y = canon(drain(without.core, without.ids[name]));
        same(x, y, `peer ${name}`);
      }
      // ADD-PATH negotiated without a send mode: the best, as path id 1 (what skein always did)
      const c = drain(without.core, without.ids.c);
      for (const b of c) if ((b.kind === 'announce' || b.kind === 'withdraw') && !b.pathIds?.every((id) => id === 1)) throw new Error('path id not 1');
      for (const prefix of without.core.prefixes()) {
        const adv = without.core.advertisedPaths(without.ids.c, prefix);
        if (!(adv.length <= 1 && adv.every((x) => x.pathId === 1))) throw new Error('more than one path without a send mode');
      }
    }),
    { numRuns: Number(process.env.SKEIN_FC_RUNS ?? 200) },
  );
  t.pass('200 random runs');
});
