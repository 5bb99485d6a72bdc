// The decision process (RFC 4271 §9.1.2): one attribute changed per row from
// a reference path, asserted both ways with the reason; order independence of
// the best path and the multipath set (fast-check); interning refcounts.
import t from 'tap';
import fc from 'fast-check';
import { AttrTable, IPV4_UNICAST, IPV6_UNICAST, Path, RibCore, addressSortKey, compare, selectBest } from '../../bgp/index.js';
import type { AsPathSegment, PathAttributes, PathSource, Reason, UpdateMessage } from '../../bgp/index.js';

const table = new AttrTable();

function source(over: Partial<PathSource> = {}): PathSource {
  const address = over.address ?? '192.0.2.1';
  return { id: 1, local: false, ibgp: false, routerId: 0x0a000005, address, addressKey: addressSortKey(address), ...over };
}

const seq = (...asns: number[]): AsPathSegment => ({ type: 2, asns });
const set = (...asns: number[]): AsPathSegment => ({ type: 1, asns });
const confed = (...asns: number[]): AsPathSegment => ({ type: 3, asns });

const REF_ATTRS: PathAttributes = { origin: 0, asPath: [seq(65001, 65010)], nextHop: '192.0.2.1', med: 0, localPref: 100 };

type Loose = { [K in keyof PathAttributes]?: PathAttributes[K] | undefined };

/** The reference path with some attributes changed; undefined removes one. */
function path(attrs: Loose = {}, src: Partial<PathSource> = {}, pathId = 0): Path {
  const merged: Loose = { ...REF_ATTRS, ...attrs };
  const a = Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) as PathAttributes;
  return new Path(source(src), pathId, table.intern(a, [a.nextHop ?? '']));
}

// [name, a, b, expected winner, reason]
type Row = [string, Path, Path, 'a' | 'b', Reason];
const rows: Row[] = [
  ['higher LOCAL_PREF', path(), path({ localPref: 200 }), 'b', 'local-pref'],
  ['missing LOCAL_PREF counts as 100', path({ localPref: 99 }), path({ localPref: undefined }), 'b', 'local-pref'],
  ['locally originated beats learned', path(), path({}, { local: true, id: 0, address: 'local', addressKey: '' }), 'b', 'local'],
  ['LOCAL_PREF before locality', path({}, { local: true, id: 0 }), path({ localPref: 150 }), 'b', 'local-pref'],
  ['shorter AS_PATH', path(), path({ asPath: [seq(65001)] }), 'b', 'as-path-length'],
  ['AS_SET counts 1', path({ asPath: [seq(65001), set(1, 2, 3, 4)] }), path({ asPath: [seq(65001, 65002, 65003)] }), 'a', 'as-path-length'],
  ['confederation segments count 0', path(), path({ asPath: [confed(1, 2, 3), seq(65001)] }), 'b', 'as-path-length'],
  ['ORIGIN IGP over EGP', path(), path({ origin: 1 }), 'a', 'origin'],
  ['ORIGIN EGP over INCOMPLETE', path({ origin: 2 }), path({ origin: 1 }), 'b', 'origin'],
  ['lower MED, same neighbour AS', path(), path({ med: 10 }), 'a', 'med'],
  ['missing MED is 0', path({ med: undefined }), path({ med: 5 }), 'a', 'med'],
  ['MED ignored between neighbour ASes', path({}, { routerId: 9 }), path({ med: 10, asPath: [seq(65002, 65010)] }, { routerId: 8 }), 'b', 'router-id'],
  ['eBGP over iBGP', path(), path({}, { ibgp: true }), 'a', 'ebgp-over-ibgp'],
  ['lower router id', path(), path({}, { routerId: 0x0a000004 }), 'b', 'router-id'],
  ['router id compared as uint32', path({}, { routerId: 0x0a000001 }), path({}, { routerId: 0xc0000001 }), 'a', 'router-id'],
  ['ORIGINATOR_ID in place of the router id', path({}, { routerId: 0x01000000 }), path({ originatorId: 0x00000001 }, { routerId: 0xf0000000 }), 'b', 'router-id'],
  ['shorter CLUSTER_LIST', path({ clusterList: [1, 2] }), path({ clusterList: [3] }), 'b', 'cluster-list-length'],
  ['lower peer address', path({}, { address: '192.0.2.9' }), path({}, { address: '192.0.2.10' }), 'a', 'peer-address'],
  ['IPv6 peer address numeric order', path({}, { address: 'fd00::a' }), path({}, { address: 'fd00::9' }), 'b', 'peer-address'],
  ['lower path id (ADD-PATH)', path({}, {}, 7), path({}, {}, 3), 'b', 'path-id'],
];

t.test('one attribute at a time, both ways, with the reason', async (t) => {
  for (const [name, a, b, winner, reason] of rows) {
    const ab = compare(a, b);
    const ba = compare(b, a);
    t.equal(ab.reason, reason, `${name}: reason`);
    t.equal(ba.reason, reason, `${name}: reason reversed`);
    t.equal(Math.sign(ab.cmp), winner === 'a' ? -1 : 1, `${name}: ${winner} wins`);
    t.equal(Math.sign(ba.cmp), -Math.sign(ab.cmp), `${name}: reversed comparison agrees`);
    const sel = selectBest(winner === 'a' ? [b, a] : [a, b]);
    t.equal(sel?.best, winner === 'a' ? a : b, `${name}: selectBest picks it`);
    t.equal(sel?.reason, reason, `${name}: selectBest reason`);
  }
  t.equal(compare(rows[0]![1], rows[0]![1]).reason, 'equal');
  t.equal(selectBest([rows[0]![1]])?.reason, 'only-path');
  t.equal(selectBest([]), null);
});

t.test('address sort keys order addresses numerically', async (t) => {
  const v4 = ['10.0.0.1', '9.255.255.255', '192.0.2.10', '192.0.2.9'].sort((x, y) => (addressSortKey(x) < addressSortKey(y) ? -1 : 1));
  t.same(v4, ['9.255.255.255', '10.0.0.1', '192.0.2.9', '192.0.2.10']);
  const v6 = ['fd00::1:0', 'fd00::ffff', '::ffff:192.0.2.1', '2001:db8::1'].sort((x, y) => (addressSortKey(x) < addressSortKey(y) ? -1 : 1));
  t.same(v6, ['::ffff:192.0.2.1', '2001:db8::1', 'fd00::ffff', 'fd00::1:0']);
  t.equal(addressSortKey('::ffff:192.0.2.1'), addressSortKey('::ffff:c000:201'));
  t.ok(addressSortKey('255.255.255.255') < addressSortKey('::'), 'IPv4 before IPv6');
});

t.test('MED is not transitive; grouping by neighbour AS makes the result order-independent', async (t) => {
  // A, B from AS 65001 (B has the lower MED), C from AS 65002.
  // compare: B < A (med), C < B (router id), A < C (router id): a cycle.
  const A = path({ med: 50, nextHop: '192.0.2.1' }, { routerId: 1, address: '192.0.2.1', id: 1 });
  const B = path({ med: 10, nextHop: '192.0.2.3' }, { routerId: 3, address: '192.0.2.3', id: 3 });
  const C = path({ asPath: [seq(65002, 65010)], nextHop: '192.0.2.2' }, { routerId: 2, address: '192.0.2.2', id: 2 });
  t.ok(compare(B, A).cmp < 0 && compare(C, B).cmp < 0 && compare(A, C).cmp < 0, 'the cycle exists');
  const perms = [[A, B, C], [A, C, B], [B, A, C], [B, C, A], [C, A, B], [C, B, A]];
  const winners = new Set(perms.map((p) => selectBest(p)?.best));
  t.equal(winners.size, 1, 'one winner for every order');
  // B wins AS 65001 on MED, then C beats B on router id.
  t.equal([...winners][0], C);
});

t.test('multipath: equal up to IGP cost, distinct next hops, capped', async (t) => {
  const p1 = path({ nextHop: '192.0.2.1' }, { routerId: 1, address: '192.0.2.1', id: 1 });
  const p2 = path({ nextHop: '192.0.2.2' }, { routerId: 2, address: '192.0.2.2', id: 2 });
  const p3 = path({ nextHop: '192.0.2.3', asPath: [seq(65003, 65010)] }, { routerId: 3, address: '192.0.2.3', id: 3 });
  const worseMed = path({ nextHop: '192.0.2.4', med: 7 }, { routerId: 0, address: '192.0.2.4', id: 4 });
  const longer = path({ nextHop: '192.0.2.5', asPath: [seq(65001, 65010, 65011)] }, { routerId: 0, address: '192.0.2.5', id: 5 });
  const ibgp = path({ nextHop: '192.0.2.6' }, { routerId: 0, ibgp: true, address: '192.0.2.6', id: 6 });
  const sameHop = path({ nextHop: '192.0.2.1' }, { routerId: 7, address: '192.0.2.7', id: 7 });
  const all = [worseMed, longer, ibgp, sameHop, p3, p2, p1];
  const sel = selectBest(all, 8);
  t.equal(sel?.best, p1);
  t.same(sel?.multipath, [p1, p2, p3], 'different-AS paths with equal length join; MED loser, longer, iBGP and a duplicate next hop do not');
  t.same(selectBest(all, 2)?.multipath, [p1, p2], 'capped');
  t.same(selectBest(all, 1)?.multipath, [p1]);
});

// ---------------------------------------------------------------- properties

const arbPath = fc.record({
  localPref: fc.constantFrom(100, 200),
  neighbor: fc.constantFrom(65001, 65002, 65003),
  len: fc.integer({ min: 1, max: 3 }),
  origin: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
  med: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
  ibgp: fc.boolean(),
  routerId: fc.integer({ min: 1, max: 4 }),
  originatorId: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
  clusterLen: fc.integer({ min: 0, max: 2 }),
  hop: fc.integer({ min: 1, max: 4 }),
  local: fc.boolean(),
});
type Arb = typeof arbPath extends fc.Arbitrary<infer T> ? T : never;

function build(list: Arb[]): Path[] {
  const t2 = new AttrTable();
  return list.map((x, i) => {
    const attrs: PathAttributes = {
      origin: x.origin,
      asPath: [seq(x.neighbor, ...Array.from({ length: x.len - 1 }, () => 64999))],
      nextHop: `192.0.2.${x.hop}`,
      localPref: x.localPref,
      ...(x.med !== undefined ? { med: x.med } : {}),
      ...(x.originatorId !== undefined ? { originatorId: x.originatorId } : {}),
      ...(x.clusterLen > 0 ? { clusterList: Array.from({ length: x.clusterLen }, (_, k) => k + 1) } : {}),
    };
    // distinct peers: (address, path id) identify a path
    const address = `198.51.100.${i + 1}`;
    const src: PathSource = { id: i + 1, local: x.local && i === 0, ibgp: x.ibgp, routerId: x.routerId, address, addressKey: addressSortKey(address) };
    return new Path(src, 0, t2.intern(attrs, [attrs.nextHop as string]));
  });
}

t.test('best path and multipath set do not depend on insertion order', async (t) => {
  fc.assert(
    fc.property(
      fc.array(arbPath, { minLength: 1, maxLength: 8 }).chain((list) =>
        fc.tuple(fc.constant(list), fc.shuffledSubarray(list.map((_, i) => i), { minLength: list.length, maxLength: list.length })),
      ),
      fc.integer({ min: 1, max: 4 }),
      ([list, order], maxPaths) => {
        const paths = build(list);
        const shuffled = order.map((i) => paths[i] as Path);
        const a = selectBest(paths, maxPaths);
        const b = selectBest(shuffled, maxPaths);
        if (a?.best !== b?.best) return false;
        if (a?.reason !== b?.reason) return false;
        if (a?.multipath.length !== b?.multipath.length) return false;
        if (!a?.multipath.every((p, i) => p === b?.multipath[i])) return false;
        // the best is never beaten by a path from its own neighbour AS
        const best = a.best;
        return paths.every((p) => p.attrs.neighborAs !== best.attrs.neighborAs || compare(best, p).cmp <= 0);
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('2000 random candidate sets, shuffled');
});

// ---------------------------------------------------------------- interning

t.test('interning: one shared frozen set per distinct attributes', async (t) => {
  const tab = new AttrTable();
  const a = tab.intern({ origin: 0, communities: [3, 1, 2], localPref: 100, nextHop: '192.0.2.1' }, ['192.0.2.1']);
  const b = tab.intern({ nextHop: '192.0.2.1', localPref: 100, communities: [1, 2, 3], origin: 0 }, ['192.0.2.1']);
  t.equal(a, b, 'property and community order do not matter');
  t.equal(a.refs, 2);
  t.ok(Object.isFrozen(a.attrs));
  t.ok(Object.isFrozen(a.attrs.communities));
  t.same(a.attrs.communities, [1, 2, 3]);
  const c = tab.intern({ origin: 0, communities: [1, 2, 3], localPref: 100, nextHop: '192.0.2.1' }, ['192.0.2.2']);
  t.not(c, a, 'next hops are part of the key');
  const ext = Buffer.from('0002fde800000064', 'hex');
  const d = tab.intern({ extendedCommunities: [ext] }, []);
  ext[0] = 0xff;
  t.equal(d.attrs.extendedCommunities?.[0]?.[0], 0x00, 'buffers are copied, not shared with the socket');
  t.equal(tab.size, 3);
  tab.release(a);
  tab.release(b);
  tab.release(c);
  tab.release(d);
  t.equal(tab.size, 0);
  t.throws(() => tab.release(a), /released too often/);
  t.throws(() => tab.retain(a), /after release/);
});

t.test('interned sets are released when nothing uses them (fast-check through the RIB core)', async (t) => {
  const v4 = (prefixes: number[]) => ({ afi: 1 as const, safi: 1, prefixes, pathIds: null });
  const arbUpdate = fc.record({
    peer: fc.constantFrom(0, 1, 2),
    prefixes: fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 6 }),
    med: fc.integer({ min: 0, max: 2 }),
    comm: fc.integer({ min: 0, max: 2 }),
    withdraw: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(arbUpdate, { maxLength: 40 }), fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 5 }), (updates, local) => {
      const core = new RibCore({ localAs: 64512, routerId: 1, maxPaths: 4 });
      const ids = [
        core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100' }),
        core.addPeer({ address: '192.0.2.2', asn: 64512, localAddress: '192.0.2.100' }),
        core.addPeer({ address: '192.0.2.3', asn: 65003, localAddress: '192.0.2.100' }),
      ];
      for (const [i, id] of ids.entries()) {
        core.peerUp(id, { peerId: 0x0a000000 + i, ibgp: i === 1, families: [IPV4_UNICAST, IPV6_UNICAST], addPathRx: new Set(), addPathTx: new Set(), enhancedRouteRefresh: false });
      }
      for (const l of local) core.originate(((0x0a400000 + l * 256) * 64) + 24, { communities: [l % 2] });
      for (const u of updates) {
        const prefixes = u.prefixes.map((p) => (0x0a400000 + p * 256) * 64 + 24);
        const msg: UpdateMessage = u.withdraw
          ? { type: 'UPDATE', withdrawn: v4(prefixes), attributes: {}, nlri: v4([]) }
          : { type: 'UPDATE', withdrawn: v4([]), nlri: v4(prefixes), attributes: { origin: 0, asPath: u.peer === 1 ? [] : [seq(65001 + u.peer)], nextHop: `192.0.2.${u.peer + 1}`, med: u.med, communities: [u.comm] } };
        core.applyUpdate(ids[u.peer] as number, msg);
        for (const id of ids) while (core.nextBatch(id, 3)) { /* drain */ }
      }
      for (const l of local) core.withdrawOrigin(((0x0a400000 + l * 256) * 64) + 24);
      for (const id of ids) core.peerDown(id);
      return core.attrs.size === 0 && core.locSize === 0;
    }),
    { numRuns: 300 },
  );
  t.pass('attribute table empty after everything was withdrawn');
});
