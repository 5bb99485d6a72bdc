// The route-processing core: UPDATE application, withdrawal, RFC 7606
// treat-as-withdraw, AS loops with an allowance, eBGP/iBGP export rules, local
// origination, ROUTE-REFRESH, and the two change streams (FIB and per peer).
import { EventEmitter } from 'node:events';
import t from 'tap';
import fc from 'fast-check';
import { IPV4_UNICAST, RibCore } from '../../bgp/index.js';
import type { OutBatch, PathAttributes, PeerConfig, PolicyError, PrefixKey, UpdateMessage } from '../../bgp/index.js';
import { trackBestListeners } from '../../bgp/speaker/best.js';
import { announce, announce6, drain, p4, show, terms, v4, v6, withdraw } from '../helpers/rib.js';

const LOCAL_AS = 64512;
const ROUTER_ID = 0x0a000001;

const EBGP_ATTRS: PathAttributes = { origin: 0, asPath: [{ type: 2, asns: [65001, 65100] }], nextHop: '192.0.2.1', med: 20, localPref: 500 };

/** A core with eBGP peer A (AS 65001), iBGP peer B, eBGP peer C (AS 65003), all Established. */
function lab(extra: Partial<Record<'a' | 'b' | 'c', Partial<PeerConfig>>> = {}, maxPaths = 1) {
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID, maxPaths });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100', localAddress6: 'fd00::100', ...extra.a });
  const b = core.addPeer({ address: '192.0.2.2', asn: LOCAL_AS, localAddress: '192.0.2.100', localAddress6: 'fd00::100', ...extra.b });
  const c = core.addPeer({ address: '192.0.2.3', asn: 65003, localAddress: '192.0.2.100', localAddress6: 'fd00::100', ...extra.c });
  core.peerUp(a, terms(0xc0000201, false));
  core.peerUp(b, terms(0xc0000202, true));
  core.peerUp(c, terms(0xc0000203, false));
  for (const id of [a, b, c]) drain(core, id);
  return { core, a, b, c };
}

/** Announced prefixes per batch, as text, with the attributes that went out. */
const announced = (batches: OutBatch[]) =>
  batches.filter((b) => b.kind === 'announce').map((b) => ({ prefixes: b.prefixes.map(show), attrs: b.attrs.attrs, nextHops: b.attrs.nextHops }));
const withdrawn = (batches: OutBatch[]) => batches.filter((b) => b.kind === 'withdraw').flatMap((b) => b.prefixes.map(show));

t.test('UPDATE application: Adj-RIB-In, Loc-RIB, best-change stream', async (t) => {
  const { core, a } = lab();
  const r = core.applyUpdate(a, announce(['10.1.0.0/24', '10.1.1.0/24'], EBGP_ATTRS));
  t.same(r, { announced: 2, withdrawn: 0, rejected: 0, ignored: 0 });
  const [path] = core.received(a, p4('10.1.0.0/24'));
  t.equal(path?.attrs.attrs.localPref, 100, 'LOCAL_PREF from an eBGP peer replaced by ours (RFC 4271 §5.1.5)');
  t.equal(core.peerStats(a).received, 2);
  const changes = core.drainBestChanges();
  t.same(changes.map((c) => [show(c.prefix), c.nextHops, c.from, c.local]), [
    ['10.1.0.0/24', ['192.0.2.1'], '192.0.2.1', false],
    ['10.1.1.0/24', ['192.0.2.1'], '192.0.2.1', false],
  ]);
  t.equal(core.attrs.size > 0, true);
  t.same(core.drainBestChanges(), [], 'drained');

  // the same UPDATE again changes nothing anywhere
  core.applyUpdate(a, announce(['10.1.0.0/24'], EBGP_ATTRS));
  t.same(core.drainBestChanges(), []);

  // a changed path replaces the old one
  core.applyUpdate(a, announce(['10.1.0.0/24'], { ...EBGP_ATTRS, nextHop: '192.0.2.11' }));
  t.same(core.drainBestChanges().map((c) => c.nextHops), [['192.0.2.11']]);
  t.equal(core.peerStats(a).received, 2, 'replaced, not added');

  // withdrawal
  const w = core.applyUpdate(a, withdraw(['10.1.0.0/24', '10.9.9.0/24']));
  t.equal(w.withdrawn, 1, 'an unknown prefix withdrawn is no change');
  const gone = core.drainBestChanges();
  t.same(gone.map((c) => [show(c.prefix), c.best]), [['10.1.0.0/24', null]]);
  t.equal(core.route(p4('10.1.0.0/24')), null);
});

t.test('best changes are coalesced per prefix until drained', async (t) => {
  const { core, a } = lab();
  core.applyUpdate(a, announce(['10.1.0.0/24'], EBGP_ATTRS));
  core.applyUpdate(a, announce(['10.1.0.0/24'], { ...EBGP_ATTRS, nextHop: '192.0.2.12' }));
  core.applyUpdate(a, withdraw(['10.1.0.0/24']));
  t.equal(core.pendingBestChanges, 1);
  t.same(core.drainBestChanges().map((c) => c.best), [null]);
});

t.test('MP_REACH / MP_UNREACH for IPv6', async (t) => {
  const { core, a, c } = lab();
  const r = core.applyUpdate(a, announce6(['fd00:1::/64'], EBGP_ATTRS, ['fd00::1', 'fe80::1']));
  t.equal(r.announced, 1);
  const best = core.route('fd00:1::/64')?.best;
  t.same(best?.attrs.nextHops, ['fd00::1', 'fe80::1']);
  t.equal(best?.attrs.attrs.nextHop, undefined, 'the IPv4 NEXT_HOP attribute is not kept for MP NLRI');
  t.same(core.drainBestChanges().map((x) => [x.prefix, x.afi, x.nextHops]), [['fd00:1::/64', 2, ['fd00::1']]]);
  const out = drain(core, c);
  t.match(out[0], { kind: 'announce', afi: 2, safi: 1, prefixes: ['fd00:1::/64'] });
  t.same(out[0]?.kind === 'announce' && out[0].attrs.nextHops, ['fd00::100'], 'next hop self in IPv6');
  core.applyUpdate(a, { type: 'UPDATE', withdrawn: v4([]), attributes: {}, nlri: v4([]), mpUnreach: { afi: 2, safi: 1, withdrawn: v6(['fd00:1::/64']) } });
  t.equal(core.route('fd00:1::/64'), null);
  t.same(withdrawn(drain(core, c)), ['fd00:1::/64']);
});

t.test('RFC 7606 treat-as-withdraw removes what the UPDATE announced', async (t) => {
  const { core, a } = lab();
  core.applyUpdate(a, announce(['10.1.0.0/24', '10.1.1.0/24'], EBGP_ATTRS));
  const bad: UpdateMessage = { ...announce(['10.1.0.0/24'], { ...EBGP_ATTRS, med: 99 }), errorAction: 'treat-as-withdraw' };
  const r = core.applyUpdate(a, bad);
  t.same(r, { announced: 0, withdrawn: 1, rejected: 0, ignored: 0, errorAction: 'treat-as-withdraw' });
  t.equal(core.route(p4('10.1.0.0/24')), null);
  t.ok(core.route(p4('10.1.1.0/24')), 'other prefixes untouched');
  // attribute-discard: the codec dropped the attribute, the rest applies
  const discard: UpdateMessage = { ...announce(['10.1.2.0/24'], EBGP_ATTRS), errorAction: 'attribute-discard' };
  t.equal(core.applyUpdate(a, discard).announced, 1);
});

t.test('AS loop detection with an allowance (numAllowedLocalASNumbers)', async (t) => {
  const looped = (n: number): PathAttributes => ({ ...EBGP_ATTRS, asPath: [{ type: 2, asns: [65001, ...Array<number>(n).fill(LOCAL_AS), 65100] }] });
  const strict = lab();
  let r = strict.core.applyUpdate(strict.a, announce(['10.1.0.0/24'], looped(1)));
  t.same([r.announced, r.rejected], [0, 1], 'our AS once: refused by default');
  // our AS inside an AS_SET counts too
  r = strict.core.applyUpdate(strict.a, announce(['10.1.0.0/24'], { ...EBGP_ATTRS, asPath: [{ type: 2, asns: [65001] }, { type: 1, asns: [LOCAL_AS, 7] }] }));
  t.equal(r.rejected, 1);
  // an accepted path replaced by a looped one is withdrawn (implicit withdraw)
  strict.core.applyUpdate(strict.a, announce(['10.1.1.0/24'], EBGP_ATTRS));
  r = strict.core.applyUpdate(strict.a, announce(['10.1.1.0/24'], looped(1)));
  t.same([r.rejected, r.withdrawn], [1, 1]);
  t.equal(strict.core.route(p4('10.1.1.0/24')), null);

  const lax = lab({ a: { allowOwnAs: 2 } });
  t.equal(lax.core.applyUpdate(lax.a, announce(['10.1.0.0/24'], looped(2))).announced, 1, 'twice allowed with 2');
  t.equal(lax.core.applyUpdate(lax.a, announce(['10.1.1.0/24'], looped(3))).rejected, 1, 'three times is too many');

  // RFC 4456 §8: our own ORIGINATOR_ID
  const rr = lab();
  t.equal(rr.core.applyUpdate(rr.b, announce(['10.1.0.0/24'], { ...EBGP_ATTRS, asPath: [], originatorId: ROUTER_ID })).rejected, 1);
});

t.test('families not negotiated are ignored', async (t) => {
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100' });
  core.peerUp(a, terms(1, false, { families: [IPV4_UNICAST] }));
  const r = core.applyUpdate(a, announce6(['fd00:1::/64'], EBGP_ATTRS, ['fd00::1']));
  t.same([r.announced, r.ignored], [0, 1]);
  t.throws(() => core.applyUpdate(core.addPeer({ address: '192.0.2.9', asn: 1 }), announce(['10.0.0.0/8'], EBGP_ATTRS)), /not Established/);
});

t.test('export rules: eBGP-learned route to iBGP and eBGP peers, not back to its source', async (t) => {
  const { core, a, b, c } = lab();
  const attrs: PathAttributes = {
    ...EBGP_ATTRS,
    originatorId: 9,
    unknown: [
      { flags: 0xc0, type: 99, value: Buffer.from([1]) }, // optional transitive
      { flags: 0x80, type: 98, value: Buffer.from([2]) }, // optional non-transitive
    ],
  };
  core.applyUpdate(a, announce(['10.1.0.0/24', '10.1.1.0/24'], attrs));
  t.same(drain(core, a).filter((x) => x.kind !== 'end-of-rib'), [], 'nothing back to the peer it came from');

  const toB = announced(drain(core, b));
  t.equal(toB.length, 1, 'one group: both prefixes share the attribute set');
  t.same(toB[0]?.prefixes, ['10.1.0.0/24', '10.1.1.0/24']);
  t.same(toB[0]?.attrs.asPath, [{ type: 2, asns: [65001, 65100] }], 'iBGP: AS_PATH unchanged');
  t.equal(toB[0]?.attrs.localPref, 100, 'iBGP: LOCAL_PREF present');
  t.equal(toB[0]?.attrs.nextHop, '192.0.2.1', 'iBGP: next hop kept');
  t.equal(toB[0]?.attrs.med, 20, 'iBGP: MED kept inside the AS');

  const toC = announced(drain(core, c));
  t.same(toC[0]?.attrs.asPath, [{ type: 2, asns: [LOCAL_AS, 65001, 65100] }], 'eBGP: our AS prepended');
  t.equal(toC[0]?.attrs.nextHop, '192.0.2.100', 'eBGP: next hop self');
  t.same(toC[0]?.nextHops, ['192.0.2.100']);
  t.equal(toC[0]?.attrs.localPref, undefined, 'eBGP: no LOCAL_PREF');
  t.equal(toC[0]?.attrs.med, undefined, 'eBGP: MED from another AS not passed on (RFC 4271 §5.1.4)');
  t.equal(toC[0]?.attrs.originatorId, undefined, 'eBGP: no RR attributes');
  t.same(toC[0]?.attrs.unknown, [{ flags: 0xe0, type: 99, value: Buffer.from([1]) }], 'transitive unknown kept with Partial; non-transitive dropped');

  // re-announcing identical state sends nothing
  core.applyUpdate(a, announce(['10.1.0.0/24'], attrs));
  t.same(drain(core, b), []);
  t.same(drain(core, c), []);
  t.ok(core.advertised(c, p4('10.1.0.0/24')), 'Adj-RIB-Out remembers it');
  t.equal(core.peerStats(c).advertised, 2);
});

t.test('export rules: iBGP-learned routes do not go to iBGP peers; next-hop-self per iBGP peer', async (t) => {
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID });
  const b = core.addPeer({ address: '192.0.2.2', asn: LOCAL_AS, localAddress: '192.0.2.100' });
  const d = core.addPeer({ address: '192.0.2.4', asn: LOCAL_AS, localAddress: '192.0.2.100' });
  const e = core.addPeer({ address: '192.0.2.5', asn: LOCAL_AS, localAddress: '192.0.2.100', nextHopSelf: true });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100' });
  const c = core.addPeer({ address: '192.0.2.3', asn: 65003, localAddress: '192.0.2.100' });
  for (const [i, id] of [b, d, e].entries()) core.peerUp(id, terms(10 + i, true));
  core.peerUp(a, terms(20, false));
  core.peerUp(c, terms(21, false));
  for (const id of [a, b, c, d, e]) drain(core, id);

  core.applyUpdate(b, announce(['10.2.0.0/24'], { origin: 0, asPath: [], nextHop: '192.0.2.2', localPref: 300 }));
  t.same(announced(drain(core, d)), [], 'iBGP → iBGP: not without route reflection');
  t.same(announced(drain(core, e)), []);
  const toC = announced(drain(core, c));
  t.same(toC[0]?.attrs.asPath, [{ type: 2, asns: [LOCAL_AS] }], 'to eBGP: a new AS_SEQUENCE with our AS');

  core.applyUpdate(a, announce(['10.3.0.0/24'], EBGP_ATTRS));
  t.equal(announced(drain(core, d))[0]?.attrs.nextHop, '192.0.2.1', 'next hop kept by default');
  t.equal(announced(drain(core, e))[0]?.attrs.nextHop, '192.0.2.100', 'next-hop-self peer');
});

t.test('eBGP next hop keep (Calico nextHopMode Keep): a third-party next hop, but ours for our own routes', async (t) => {
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID });
  const b = core.addPeer({ address: '192.0.2.2', asn: LOCAL_AS, localAddress: '192.0.2.100', localAddress6: 'fd00::100' });
  const keep = core.addPeer({ address: '192.0.2.3', asn: 65003, localAddress: '192.0.2.100', localAddress6: 'fd00::100', nextHopKeep: true });
  const self = core.addPeer({ address: '192.0.2.4', asn: 65004, localAddress: '192.0.2.100', localAddress6: 'fd00::100' });
  core.peerUp(b, terms(10, true));
  core.peerUp(keep, terms(11, false));
  core.peerUp(self, terms(12, false));
  for (const id of [b, keep, self]) drain(core, id);

  core.applyUpdate(b, announce(['10.2.0.0/24'], { origin: 0, asPath: [], nextHop: '192.0.2.2', localPref: 300 }));
  core.applyUpdate(b, announce6(['fd00:2::/64'], { origin: 0, asPath: [], localPref: 300 }, ['fd00::2']));
  core.originate(p4('10.65.0.0/26'));
  const toKeep = announced(drain(core, keep));
  const hopOf = (xs: typeof toKeep, p: string): readonly string[] | undefined => xs.find((x) => x.prefixes.includes(p))?.nextHops;
  t.same(hopOf(toKeep, '10.2.0.0/24'), ['192.0.2.2'], 'IPv4: the iBGP neighbour\'s next hop passed on');
  t.same(hopOf(toKeep, 'fd00:2::/64'), ['fd00::2'], 'IPv6 (MP_REACH): kept too');
  t.same(hopOf(toKeep, '10.65.0.0/26'), ['192.0.2.100'], 'our own route has no next hop to keep: ours');
  t.same(toKeep.find((x) => x.prefixes.includes('10.2.0.0/24'))?.attrs.asPath, [{ type: 2, asns: [LOCAL_AS] }], 'still eBGP: our AS prepended');
  const toSelf = announced(drain(core, self));
  t.same(hopOf(toSelf, '10.2.0.0/24'), ['192.0.2.100'], 'without keep: next hop self toward eBGP (RFC 4271 §5.1.3)');
  t.same(hopOf(toSelf, 'fd00:2::/64'), ['fd00::100']);
});

t.test('a full leading AS_SEQUENCE gets a new segment for our AS', async (t) => {
  const { core, a, c } = lab();
  const long = Array.from({ length: 255 }, (_, i) => 65001 + (i === 0 ? 0 : 1000 + i));
  core.applyUpdate(a, announce(['10.1.0.0/24'], { ...EBGP_ATTRS, asPath: [{ type: 2, asns: long }] }));
  const out = announced(drain(core, c))[0]?.attrs.asPath;
  t.equal(out?.length, 2);
  t.same(out?.[0], { type: 2, asns: [LOCAL_AS] });
});

t.test('local origination', async (t) => {
  const { core, a, b, c } = lab();
  core.originate(p4('10.65.1.0/26'), { communities: [(65000 << 16) | 100], localPref: 200, med: 5 });
  const [ch] = core.drainBestChanges();
  t.same([show(ch!.prefix), ch!.local, ch!.from, ch!.nextHops], ['10.65.1.0/26', true, 'local', []]);
  const toB = announced(drain(core, b))[0];
  t.same(toB?.attrs.asPath, [], 'iBGP: empty AS_PATH');
  t.equal(toB?.attrs.localPref, 200);
  t.equal(toB?.attrs.nextHop, '192.0.2.100', 'no next hop given: ours');
  t.same(toB?.attrs.communities, [(65000 << 16) | 100]);
  const toC = announced(drain(core, c))[0];
  t.same(toC?.attrs.asPath, [{ type: 2, asns: [LOCAL_AS] }]);
  t.equal(toC?.attrs.med, 5, 'our own MED may go to a neighbouring AS');
  t.equal(announced(drain(core, a)).length, 1, 'and to A');

  // a learned path to the same prefix loses to ours at equal LOCAL_PREF
  core.originate(p4('10.65.1.0/26'), { localPref: 100 });
  core.applyUpdate(a, announce(['10.65.1.0/26'], EBGP_ATTRS));
  t.equal(core.route(p4('10.65.1.0/26'))?.reason, 'local');
  t.equal(core.route(p4('10.65.1.0/26'))?.best.source.local, true);
  t.equal(core.route(p4('10.65.1.0/26'))?.paths.length, 2);
  // origination gone: the learned path takes over, and is withdrawn from A (its source)
  drain(core, a);
  core.drainBestChanges();
  t.equal(core.withdrawOrigin(p4('10.65.1.0/26')), true);
  t.equal(core.withdrawOrigin(p4('10.65.1.0/26')), false);
  t.same(core.drainBestChanges().map((x) => [x.from, x.nextHops]), [['192.0.2.1', ['192.0.2.1']]]);
  t.same(withdrawn(drain(core, a)), ['10.65.1.0/26']);
  t.equal(announced(drain(core, c))[0]?.attrs.med, undefined, 'now learned: its MED does not go to C');

  // IPv6 origination with an explicit next hop
  core.originate('fd00:65::/64', { nextHop: '192.0.2.55' });
  t.same(core.route('fd00:65::/64')?.best.attrs.nextHops, [], 'the IPv4 NEXT_HOP does not apply to IPv6');
});

t.test('batches: grouped by attribute set, capped, withdrawals first, End-of-RIB after the initial dump', async (t) => {
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100' });
  core.peerUp(a, terms(1, false, { families: [IPV4_UNICAST] }));
  const one: PathAttributes = { ...EBGP_ATTRS };
  const two: PathAttributes = { ...EBGP_ATTRS, communities: [7] };
  core.applyUpdate(a, announce(['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24', '10.1.3.0/24', '10.1.4.0/24'], one));
  core.applyUpdate(a, announce(['10.2.0.0/24', '10.2.1.0/24'], two));
  core.originate(p4('10.9.0.0/24'));
  const c = core.addPeer({ address: '192.0.2.3', asn: 65003, localAddress: '192.0.2.100' });
  core.peerUp(c, terms(3, false, { families: [IPV4_UNICAST], addPathTx: new Set([IPV4_UNICAST]) }));
  const out = drain(core, c, 2);
  // groups come in table-walk order: per set, ceil(n / 2) batches
  const sizes = out.map((b) => (b.kind === 'announce' ? `${b.attrs.key.length}:${b.prefixes.length}` : b.kind));
  t.equal(out.length, 6);
  t.equal(out[5]?.kind, 'end-of-rib');
  t.same(out.slice(0, 5).map((b) => (b.kind === 'announce' ? b.prefixes.length : 0)).sort(), [1, 1, 2, 2, 2], `batches ${sizes.join(' ')}`);
  t.same(out.flatMap((b) => (b.kind === 'announce' ? b.prefixes.map(show) : [])).sort(), [
    '10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24', '10.1.3.0/24', '10.1.4.0/24', '10.2.0.0/24', '10.2.1.0/24', '10.9.0.0/24',
  ]);
  for (const b of out) if (b.kind === 'announce') t.ok(b.prefixes.length <= 2, 'capped at maxPrefixes');
  // (which group comes first depends on the table's hash order, so every batch is checked)
  const anns = out.filter((b) => b.kind === 'announce');
  t.same(anns.map((b) => b.pathIds), anns.map((b) => b.prefixes.map(() => 1)), 'ADD-PATH send: path ids present');
  const sets = new Set(out.map((b) => (b.kind === 'announce' ? b.attrs : null)));
  t.equal(sets.size, 4, 'three attribute sets and the marker');

  // withdrawals go before announcements
  core.applyUpdate(a, withdraw(['10.1.0.0/24']));
  core.applyUpdate(a, announce(['10.3.0.0/24'], one));
  const next = drain(core, c);
  t.same(next.map((b) => b.kind), ['withdraw', 'announce']);
  t.same(next[0]?.kind === 'withdraw' && next[0].pathIds, [1]);
  // a prefix announced then withdrawn before the sender got to it leaves only the withdrawal
  core.applyUpdate(a, announce(['10.4.0.0/24'], one));
  core.applyUpdate(a, withdraw(['10.4.0.0/24']));
  t.same(drain(core, c).map((b) => b.kind), ['withdraw']);
  t.equal(core.nextBatch(c, 10), null);
});

t.test('ROUTE-REFRESH re-queues the whole Adj-RIB-Out (enhanced: BoRR/EoRR)', async (t) => {
  const { core, a, c } = lab();
  core.applyUpdate(a, announce(['10.1.0.0/24', '10.1.1.0/24'], EBGP_ATTRS));
  drain(core, c);
  core.routeRefresh(c, 1, 1);
  t.same(announced(drain(core, c)).flatMap((x) => x.prefixes).sort(), ['10.1.0.0/24', '10.1.1.0/24']);
  core.routeRefresh(c, 2, 1);
  t.same(drain(core, c), [], 'nothing advertised in IPv6');

  const e = core.addPeer({ address: '192.0.2.6', asn: 65006, localAddress: '192.0.2.100' });
  core.peerUp(e, terms(6, false, { families: [IPV4_UNICAST], enhancedRouteRefresh: true }));
  drain(core, e);
  core.routeRefresh(e, 1, 1);
  t.same(drain(core, e).map((b) => b.kind), ['begin-refresh', 'announce', 'end-refresh']);
});

t.test('policy hooks: import accept/modify/reject, export change with refreshExports', async (t) => {
  const { core, a, c } = lab({
    a: {
      importPolicy: (prefix, attrs) => {
        if (prefix === p4('10.66.0.0/24')) return { accept: false };
        if (prefix === p4('10.67.0.0/24')) return { accept: true, attrs: { ...attrs, communities: [42] } };
        return { accept: true };
      },
    },
  });
  const r = core.applyUpdate(a, announce(['10.66.0.0/24', '10.67.0.0/24', '10.68.0.0/24'], EBGP_ATTRS));
  t.same([r.announced, r.rejected], [2, 1]);
  t.same(core.route(p4('10.67.0.0/24'))?.best.attrs.attrs.communities, [42]);
  t.equal(core.route(p4('10.68.0.0/24'))?.best.attrs.attrs.communities, undefined);
  t.equal(core.route(p4('10.66.0.0/24')), null);
  t.equal(announced(drain(core, c)).flatMap((x) => x.prefixes).length, 2);

  core.updatePeer(c, {
    address: '192.0.2.3', asn: 65003, localAddress: '192.0.2.100',
    exportPolicy: (prefix, attrs) => (prefix === p4('10.67.0.0/24') ? { accept: false } : { accept: true, attrs: { ...attrs, communities: [1] } }),
  });
  core.refreshExports(c);
  const out = drain(core, c);
  t.same(withdrawn(out), ['10.67.0.0/24']);
  t.same(announced(out).map((x) => [x.prefixes, x.attrs.communities]), [[['10.68.0.0/24'], [1]]]);
  t.throws(() => core.updatePeer(c, { address: '192.0.2.99', asn: 65003 }), /fixed/);
});

t.test('peer down: its routes leave Loc-RIB, others see withdrawals, the next-best takes over', async (t) => {
  const { core, a, b, c } = lab();
  core.applyUpdate(a, announce(['10.1.0.0/24', '10.1.1.0/24'], EBGP_ATTRS));
  // B's path is longer (learned by B from AS 65002), so A's is best while A is up
  core.applyUpdate(b, announce(['10.1.1.0/24'], { origin: 0, asPath: [{ type: 2, asns: [65002, 65100, 65200] }], nextHop: '192.0.2.22', localPref: 100 }));
  t.equal(core.route(p4('10.1.1.0/24'))?.reason, 'as-path-length');
  t.equal(core.route(p4('10.1.1.0/24'))?.best.source.address, '192.0.2.1');
  for (const id of [a, b, c]) drain(core, id);
  core.drainBestChanges();
  core.peerDown(a);
  const ch = core.drainBestChanges();
  t.same(ch.map((x) => [show(x.prefix), x.from]).sort(), [['10.1.0.0/24', null], ['10.1.1.0/24', '192.0.2.2']]);
  // 10.1.1.0/24 is now B's own route: what we had sent B for it is withdrawn
  t.same(withdrawn(drain(core, b)).sort(), ['10.1.0.0/24', '10.1.1.0/24']);
  const toC = drain(core, c);
  t.same(withdrawn(toC), ['10.1.0.0/24']);
  t.same(announced(toC).map((x) => x.prefixes), [['10.1.1.0/24']], 'the iBGP path replaces it towards C');
  t.equal(core.peerStats(a).received, 0);
  core.removePeer(b);
  t.equal(core.locSize, 0);
  t.equal(core.attrs.size, 0, 'every attribute set released');
});

t.test('multipath through the core: equal eBGP paths give several next hops', async (t) => {
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID, maxPaths: 4 });
  const x = core.addPeer({ address: '192.0.2.1', asn: 65001 });
  const y = core.addPeer({ address: '192.0.2.7', asn: 65001 });
  core.peerUp(x, terms(1, false));
  core.peerUp(y, terms(7, false));
  core.applyUpdate(x, announce(['10.1.0.0/24'], EBGP_ATTRS));
  core.applyUpdate(y, announce(['10.1.0.0/24'], { ...EBGP_ATTRS, nextHop: '192.0.2.7' }));
  t.same(core.drainBestChanges().map((c) => c.nextHops), [['192.0.2.1', '192.0.2.7']]);
  core.applyUpdate(y, announce(['10.1.0.0/24'], { ...EBGP_ATTRS, nextHop: '192.0.2.7', med: 21 }));
  t.same(core.drainBestChanges().map((c) => c.nextHops), [['192.0.2.1']], 'a worse MED leaves the set');
});

t.test('ADD-PATH receive: several paths of one peer for one prefix', async (t) => {
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID, maxPaths: 4 });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001 });
  core.peerUp(a, terms(1, false, { addPathRx: new Set([IPV4_UNICAST]) }));
  core.applyUpdate(a, announce(['10.1.0.0/24'], EBGP_ATTRS, [1]));
  core.applyUpdate(a, announce(['10.1.0.0/24'], { ...EBGP_ATTRS, nextHop: '192.0.2.9' }, [2]));
  t.equal(core.received(a, p4('10.1.0.0/24')).length, 2);
  t.same(core.route(p4('10.1.0.0/24'))?.multipath.map((p) => p.pathId), [1, 2]);
  t.equal(core.route(p4('10.1.0.0/24'))?.reason, 'path-id');
  core.applyUpdate(a, withdraw(['10.1.0.0/24'], [1]));
  t.same(core.received(a, p4('10.1.0.0/24')).map((p) => p.pathId), [2]);
  core.peerDown(a);
  t.equal(core.attrs.size, 0);
});

t.test('export cache: keyed by locality and peer settings', async (t) => {
  const { core, b, c } = lab();
  const same: PathAttributes = { origin: 0, asPath: [], nextHop: '192.0.2.77', localPref: 100, med: 5 };
  core.originate(p4('10.70.0.0/24'), same);
  core.applyUpdate(b, announce(['10.71.0.0/24'], same));
  t.equal(core.route(p4('10.70.0.0/24'))?.best.attrs, core.route(p4('10.71.0.0/24'))?.best.attrs, 'one interned set for both');
  const out = announced(drain(core, c));
  const med = (prefix: string) => out.find((x) => x.prefixes.includes(prefix))?.attrs.med;
  t.equal(med('10.70.0.0/24'), 5, 'ours: MED kept');
  t.equal(med('10.71.0.0/24'), undefined, 'learned over iBGP: MED removed');

  // a settings change is seen by refreshExports, despite the cache
  const d = core.addPeer({ address: '192.0.2.4', asn: LOCAL_AS, localAddress: '192.0.2.100' });
  core.peerUp(d, terms(4, true));
  t.equal(announced(drain(core, d)).find((x) => x.prefixes.includes('10.70.0.0/24'))?.attrs.nextHop, '192.0.2.77');
  core.updatePeer(d, { address: '192.0.2.4', asn: LOCAL_AS, localAddress: '192.0.2.100', nextHopSelf: true });
  core.refreshExports(d);
  t.same(announced(drain(core, d)).map((x) => [x.prefixes, x.attrs.nextHop]), [[['10.70.0.0/24'], '192.0.2.100']]);
});

t.test('PrefixMap agrees with a Map under random operations (including deletes during a walk)', async (t) => {
  const { PrefixMap } = await import('../../bgp/rib/prefix-map.js');
  const key = fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 32 })).map(([a, l]) => (0xc0000000 + a * 256) * 64 + l) },
    // neighbouring /32s and /26s share slot groups (see PrefixMap.slot): runs of them collide on purpose
    { weight: 3, arbitrary: fc.tuple(fc.integer({ min: 0, max: 200 }), fc.constantFrom(26, 32)).map(([a, l]) => (0x0a000000 + a * 2 ** (32 - l)) * 64 + l) },
    { weight: 1, arbitrary: fc.constantFrom('fd00::/64', 'fd00:1::/64', '::/0') },
  );
  const op = fc.oneof(
    fc.record({ op: fc.constant('set' as const), k: key, v: fc.integer() }),
    fc.record({ op: fc.constant('delete' as const), k: key }),
    fc.record({ op: fc.constant('swap' as const), k: key, v: fc.integer({ min: -2, max: 2 }) }),
    fc.record({ op: fc.constant('take' as const), k: key }),
    fc.record({ op: fc.constant('takeIf' as const), k: key, v: fc.integer({ min: -2, max: 2 }) }),
    fc.record({ op: fc.constant('getOrSet' as const), k: key, v: fc.integer() }),
    fc.record({ op: fc.constant('walk-delete' as const), mod: fc.integer({ min: 2, max: 5 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
      const m = new PrefixMap<number>(16);
      const ref = new Map<number | string, number>();
      for (const o of ops) {
        if (o.op === 'set') {
          m.set(o.k, o.v);
          ref.set(o.k, o.v);
        } else if (o.op === 'delete') {
          if (m.delete(o.k) !== ref.delete(o.k)) return false;
        } else if (o.op === 'swap') {
          if (m.swap(o.k, o.v) !== ref.get(o.k)) return false;
          ref.set(o.k, o.v);
        } else if (o.op === 'take') {
          if (m.take(o.k) !== ref.get(o.k)) return false;
          ref.delete(o.k);
        } else if (o.op === 'getOrSet') {
          if (m.getOrSet(o.k, o.v) !== ref.get(o.k)) return false;
          if (!ref.has(o.k)) ref.set(o.k, o.v);
        } else if (o.op === 'takeIf') {
          const hit = ref.has(o.k) && ref.get(o.k) === o.v;
          if (m.takeIf(o.k, o.v) !== hit) return false;
          if (hit) ref.delete(o.k);
        } else {
          // delete every entry whose value is divisible by mod, while walking
          m.forEach((v, k) => {
            if (v % o.mod === 0) m.delete(k);
          });
          for (const [k, v] of [...ref]) if (v % o.mod === 0) ref.delete(k);
        }
        if (m.size !== ref.size) return false;
      }
      for (const [k, v] of ref) if (m.get(k) !== v || !m.has(k)) return false;
      const seen = [...m.keysIter()];
      return seen.length === ref.size && seen.every((k) => ref.has(k));
    }),
    { numRuns: 500 },
  );
  t.pass('500 random operation sequences');

  // a big table emptied during a walk gives its arrays back and stays usable
  const big = new PrefixMap<number>();
  for (let i = 0; i < 5000; i++) big.set((0x0a000000 + i * 256) * 64 + 24, i);
  t.equal(big.size, 5000);
  let visited = 0;
  big.forEach((_v, k) => {
    visited++;
    big.delete(k);
  });
  t.equal(visited, 5000);
  t.equal(big.size, 0);
  big.set(p4('10.0.0.0/8'), 1);
  t.equal(big.get(p4('10.0.0.0/8')), 1);
  t.equal(big.get(p4('10.0.1.0/24')), undefined);

  // an outbound queue's life: bursts of neighbouring /32s queued and taken
  // until empty (the table is then cleared in place or shrunk), again and again
  const q = new PrefixMap<number>();
  const ref = new Map<number, number>();
  for (let burst = 0; burst < 6; burst++) {
    const n = [3000, 3000, 40, 5000, 1, 3000][burst] as number;
    for (let i = 0; i < n; i++) {
      const k = (0x0a800000 + burst * 10000 + i) * 64 + 32;
      q.swap(k, i);
      ref.set(k, i);
    }
    t.equal(q.size, n, `burst ${burst}: queued`);
    let ok = true;
    for (const [k, v] of ref) if (!q.takeIf(k, v)) ok = false;
    ref.clear();
    t.ok(ok && q.size === 0, `burst ${burst}: every entry taken once`);
    t.equal(q.get((0x0a800000 + burst * 10000) * 64 + 32), undefined, `burst ${burst}: nothing left behind`);
  }
});

t.test('the Loc-RIB does not depend on the order UPDATEs arrive in (fast-check)', async (t) => {
  const arbAnn = fc.record({
    peer: fc.integer({ min: 0, max: 3 }),
    prefix: fc.integer({ min: 0, max: 5 }),
    len: fc.integer({ min: 1, max: 3 }),
    med: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
    origin: fc.constantFrom(0, 2) as fc.Arbitrary<0 | 2>,
  });
  const peersCfg: PeerConfig[] = [
    { address: '192.0.2.1', asn: 65001 },
    { address: '192.0.2.2', asn: 65001 },
    { address: '192.0.2.3', asn: 65002 },
    { address: '192.0.2.4', asn: LOCAL_AS },
  ];
  const play = (anns: (typeof arbAnn extends fc.Arbitrary<infer T> ? T : never)[]) => {
    const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID, maxPaths: 3 });
    const ids = peersCfg.map((c, i) => {
      const id = core.addPeer(c);
      core.peerUp(id, terms(0x0a000010 + ((i * 7) % 4), c.asn === LOCAL_AS));
      return id;
    });
    for (const a of anns) {
      const first = a.peer === 3 ? 65009 : peersCfg[a.peer]!.asn;
      const attrs: PathAttributes = {
        origin: a.origin,
        asPath: [{ type: 2, asns: [first, ...Array<number>(a.len - 1).fill(64000)] }],
        nextHop: `192.0.2.${a.peer + 1}`,
        ...(a.med !== undefined ? { med: a.med } : {}),
        ...(a.peer === 3 ? { localPref: 100 } : {}),
      };
      core.applyUpdate(ids[a.peer]!, announce([`10.${a.prefix}.0.0/16`], attrs));
    }
    return Array.from({ length: 6 }, (_, i) => {
      const r = core.route(p4(`10.${i}.0.0/16`));
      return r ? [r.best.source.address, r.reason, r.multipath.map((m) => m.source.address)] : null;
    });
  };
  fc.assert(
    fc.property(
      fc.uniqueArray(arbAnn, { selector: (a) => `${a.peer}/${a.prefix}`, maxLength: 24 }).chain((anns) =>
        fc.tuple(fc.constant(anns), fc.shuffledSubarray(anns, { minLength: anns.length, maxLength: anns.length })),
      ),
      ([anns, shuffled]) => JSON.stringify(play(anns)) === JSON.stringify(play(shuffled)),
    ),
    { numRuns: 300 },
  );
  t.pass('300 random sets of announcements, two orders each');
});

t.test('graceful restart helper: routes kept stale across a session loss, swept after End-of-RIB', async (t) => {
  const { core, a, c } = lab();
  core.applyUpdate(a, announce(['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24'], EBGP_ATTRS));
  core.applyUpdate(a, announce6(['fd00:1::/64'], EBGP_ATTRS, ['fd00::1']));
  drain(core, c);
  core.drainBestChanges();
  const sets = core.attrs.size;

  core.peerDown(a, { retainStale: true });
  t.same(core.drainBestChanges(), [], 'the FIB keeps forwarding');
  t.same(drain(core, c), [], 'other peers see nothing');
  t.equal(core.locSize, 4);
  t.equal(core.attrs.size, sets);

  core.peerUp(a, terms(0xc0000201, false));
  core.applyUpdate(a, announce(['10.1.0.0/24'], EBGP_ATTRS)); // the same again
  core.applyUpdate(a, announce(['10.1.1.0/24'], { ...EBGP_ATTRS, nextHop: '192.0.2.11' })); // changed
  t.equal(core.sweepStale(a, IPV4_UNICAST), 1, 'End-of-RIB for IPv4: the one not re-announced goes');
  t.same(core.drainBestChanges().map((x) => [show(x.prefix), x.best === null]), [['10.1.1.0/24', false], ['10.1.2.0/24', true]]);
  t.ok(core.route('fd00:1::/64'), 'IPv6 still waits for its own End-of-RIB');
  t.equal(core.sweepStale(a), 1, 'restart timer: everything still stale');
  t.equal(core.route('fd00:1::/64'), null);
  t.equal(core.sweepStale(a), 0);
  t.equal(core.peerStats(a).received, 2);
});

t.test('enhanced route refresh received (RFC 7313): BoRR marks stale, EoRR sweeps', async (t) => {
  const { core, a } = lab();
  core.applyUpdate(a, announce(['10.1.0.0/24', '10.1.1.0/24'], EBGP_ATTRS));
  core.markStale(a, IPV4_UNICAST);
  core.applyUpdate(a, announce(['10.1.1.0/24'], EBGP_ATTRS));
  t.equal(core.sweepStale(a, IPV4_UNICAST), 1);
  t.same(core.received(a, p4('10.1.0.0/24')), []);
  t.equal(core.received(a, p4('10.1.1.0/24')).length, 1);
  core.peerDown(a);
  t.equal(core.attrs.size, 0);
});

t.test('explain: why each candidate won or lost', async (t) => {
  const { core, a, b } = lab();
  core.applyUpdate(a, announce(['10.1.0.0/24'], EBGP_ATTRS));
  core.applyUpdate(b, announce(['10.1.0.0/24'], { origin: 0, asPath: [{ type: 2, asns: [65002, 65100] }], nextHop: '192.0.2.22', localPref: 100 }));
  core.originate(p4('10.1.0.0/24'), { localPref: 50 });
  const ex = core.explain(p4('10.1.0.0/24'));
  t.same(ex.map((x) => [x.path.source.address, x.best, x.reason]), [
    ['192.0.2.1', true, 'ebgp-over-ibgp'],
    ['192.0.2.2', false, 'ebgp-over-ibgp'],
    ['local', false, 'local-pref'],
  ]);
  t.same(core.explain(p4('10.9.0.0/24')), []);
});

t.test('per-peer local AS: prepended toward that eBGP peer, counted in the loop check, decides iBGP/eBGP', async (t) => {
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID });
  const x = core.addPeer({ address: '192.0.2.1', asn: 65001, localAs: 65050, localAddress: '192.0.2.100' });
  const y = core.addPeer({ address: '192.0.2.2', asn: 65002, localAddress: '192.0.2.100' });
  // asn equal to the session's local AS, not the speaker's: iBGP
  const z = core.addPeer({ address: '192.0.2.3', asn: 65050, localAs: 65050, localAddress: '192.0.2.100' });
  core.peerUp(x, terms(0xc0000201, false));
  core.peerUp(y, terms(0xc0000202, false));
  for (const id of [x, y]) drain(core, id);
  t.equal(core.peerStats(z).established, false);
  core.applyUpdate(y, announce(['10.9.0.0/24'], { origin: 0, asPath: [{ type: 2, asns: [65002] }], nextHop: '192.0.2.2' }));
  const toX = announced(drain(core, x));
  t.same(toX[0]?.attrs.asPath, [{ type: 2, asns: [65050, 65002] }], 'the session\'s AS is prepended, not the speaker\'s');
  // a route carrying the session's local AS is a loop on that session
  const r = core.applyUpdate(x, announce(['10.8.0.0/24'], { origin: 0, asPath: [{ type: 2, asns: [65001, 65050] }], nextHop: '192.0.2.1' }));
  t.equal(r.rejected, 1, 'own (per-peer) AS in the path: loop');
  const r2 = core.applyUpdate(x, announce(['10.8.1.0/24'], { origin: 0, asPath: [{ type: 2, asns: [65001, LOCAL_AS] }], nextHop: '192.0.2.1' }));
  t.equal(r2.rejected, 1, 'the speaker\'s AS is still a loop');
  t.throws(() => core.updatePeer(x, { address: '192.0.2.1', asn: 65001, localAs: 65051 }), /fixed/);
  // iBGP by the per-peer AS: gets LOCAL_PREF, no prepend
  core.peerUp(z, terms(0xc0000203, true));
  const toZ = announced(drain(core, z));
  t.same(toZ[0]?.attrs.asPath, [{ type: 2, asns: [65002] }]);
  t.equal(toZ[0]?.attrs.localPref, 100);
});

t.test('a throwing policy hook rejects its route, is reported, and other peers are processed fully', async (t) => {
  const errors: PolicyError[] = [];
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID, onPolicyError: (e) => errors.push(e) });
  const bad = (prefix: PrefixKey) => {
    if (show(prefix) === '10.1.1.0/24') throw new Error('boom');
    return { accept: true } as const;
  };
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100', importPolicy: bad });
  const b = core.addPeer({ address: '192.0.2.2', asn: 65002, localAddress: '192.0.2.100', exportPolicy: bad });
  const c = core.addPeer({ address: '192.0.2.3', asn: 65003, localAddress: '192.0.2.100' });
  for (const [id, n] of [[a, 1], [b, 2], [c, 3]] as const) core.peerUp(id, terms(0xc0000200 + n, false));
  for (const id of [a, b, c]) drain(core, id);
  const r = core.applyUpdate(a, announce(['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24'], EBGP_ATTRS));
  t.same([r.announced, r.rejected], [2, 1], 'the throwing import rejected one route, the rest went in');
  t.same(errors.map((e) => [e.which, show(e.prefix), e.peer.address]), [['import', '10.1.1.0/24', '192.0.2.1']]);
  core.applyUpdate(c, announce(['10.1.1.0/24', '10.1.3.0/24'], { ...EBGP_ATTRS, asPath: [{ type: 2, asns: [65003] }], nextHop: '192.0.2.3' }));
  t.same(announced(drain(core, b)).flatMap((x) => x.prefixes).sort(), ['10.1.0.0/24', '10.1.2.0/24', '10.1.3.0/24'], 'export hook threw for one prefix only');
  t.same(announced(drain(core, a)).flatMap((x) => x.prefixes).sort(), ['10.1.1.0/24', '10.1.3.0/24'], 'another peer got everything');
  t.equal(core.policyErrors, 2);
});

t.test('route reflection (RFC 4456): who gets what, ORIGINATOR_ID / CLUSTER_LIST, loops dropped', async (t) => {
  const CLUSTER = 0x0a0000fe;
  const core = new RibCore({ localAs: LOCAL_AS, routerId: ROUTER_ID, clusterId: CLUSTER });
  const mk = (n: number, o: Partial<PeerConfig> = {}) => core.addPeer({ address: `192.0.2.${n}`, asn: LOCAL_AS, localAddress: '192.0.2.100', ...o });
  const c1 = mk(1, { routeReflectorClient: true });
  const c2 = mk(2, { routeReflectorClient: true });
  const n1 = mk(3);
  const n2 = mk(4);
  const e = core.addPeer({ address: '192.0.2.5', asn: 65005, localAddress: '192.0.2.100' });
  const ids = [c1, c2, n1, n2, e];
  ids.forEach((id, i) => core.peerUp(id, terms(0xc0000201 + i, id !== e)));
  for (const id of ids) drain(core, id);
  const got = (id: number) => announced(drain(core, id));
  const ibgp: PathAttributes = { origin: 0, asPath: [], localPref: 200 };

  core.applyUpdate(c1, announce(['10.1.0.0/24'], { ...ibgp, nextHop: '192.0.2.1' }));
  const toC2 = got(c2);
  t.same(toC2[0]?.prefixes, ['10.1.0.0/24'], 'client → other clients');
  t.equal(toC2[0]?.attrs.originatorId, 0xc0000201, 'ORIGINATOR_ID: the client\'s BGP Identifier');
  t.same(toC2[0]?.attrs.clusterList, [CLUSTER], 'our CLUSTER_ID in CLUSTER_LIST');
  t.equal(toC2[0]?.attrs.nextHop, '192.0.2.1', 'next hop unchanged');
  t.equal(toC2[0]?.attrs.localPref, 200, 'LOCAL_PREF unchanged');
  t.same(got(n1)[0]?.prefixes, ['10.1.0.0/24'], 'client → non-clients');
  t.same(got(c1), [], 'not back to the client it came from');
  const toE = got(e);
  t.equal(toE[0]?.attrs.originatorId, undefined, 'no ORIGINATOR_ID toward eBGP');
  t.equal(toE[0]?.attrs.clusterList, undefined, 'no CLUSTER_LIST toward eBGP');
  for (const id of ids) drain(core, id);

  core.applyUpdate(n1, announce(['10.3.0.0/24'], { ...ibgp, nextHop: '192.0.2.3', originatorId: 0x01020304, clusterList: [7] }));
  const fromN = got(c1);
  t.same(fromN[0]?.prefixes, ['10.3.0.0/24'], 'non-client → clients');
  t.equal(fromN[0]?.attrs.originatorId, 0x01020304, 'an existing ORIGINATOR_ID is kept');
  t.same(fromN[0]?.attrs.clusterList, [CLUSTER, 7], 'CLUSTER_ID prepended');
  t.same(got(n2), [], 'non-client → non-client: not reflected');
  for (const id of ids) drain(core, id);

  core.applyUpdate(e, announce(['10.5.0.0/24'], { origin: 0, asPath: [{ type: 2, asns: [65005] }], nextHop: '192.0.2.5' }));
  for (const id of [c1, c2, n1, n2]) {
    const out = got(id);
    t.same(out[0]?.prefixes, ['10.5.0.0/24'], 'eBGP → every iBGP peer');
    t.equal(out[0]?.attrs.clusterList, undefined, 'an eBGP route is not reflected: no RR attributes');
  }

  const loop1 = core.applyUpdate(n2, announce(['10.6.0.0/24'], { ...ibgp, nextHop: '192.0.2.4', clusterList: [9, CLUSTER] }));
  t.equal(loop1.rejected, 1, 'our CLUSTER_ID in CLUSTER_LIST: dropped');
  const loop2 = core.applyUpdate(c2, announce(['10.6.1.0/24'], { ...ibgp, nextHop: '192.0.2.2', originatorId: ROUTER_ID }));
  t.equal(loop2.rejected, 1, 'our router ID as ORIGINATOR_ID: dropped');

  // two clients with identical attributes: each reflected set names its own originator (export cache)
  core.applyUpdate(c2, announce(['10.7.0.0/24'], { ...ibgp, nextHop: '192.0.2.9' }));
  core.applyUpdate(c1, announce(['10.7.1.0/24'], { ...ibgp, nextHop: '192.0.2.9' }));
  const toN2 = got(n2);
  const orig = Object.fromEntries(toN2.flatMap((x) => x.prefixes.map((p) => [p, x.attrs.originatorId])));
  t.same(orig, { '10.7.0.0/24': 0xc0000202, '10.7.1.0/24': 0xc0000201 });
});

t.test('best-change tracking off records nothing; turning it on hands over the whole Loc-RIB', async (t) => {
  const { core, a } = lab();
  core.setBestTracking(false);
  core.applyUpdate(a, announce(['10.1.0.0/24', '10.1.1.0/24'], EBGP_ATTRS));
  t.same(core.drainBestChanges(), [], 'nothing recorded while off');
  t.equal(core.pendingBestChanges, 0);
  core.setBestTracking(true);
  t.same(core.drainBestChanges().map((c) => show(c.prefix)).sort(), ['10.1.0.0/24', '10.1.1.0/24'], 'a late consumer gets the table');
  core.applyUpdate(a, withdraw(['10.1.0.0/24']));
  t.same(core.drainBestChanges().map((c) => [show(c.prefix), c.best]), [['10.1.0.0/24', null]], 'and changes from then on');
});

t.test('best-change tracking without replay: changes from then on only; a whole-table consumer joining later still gets it all', async (t) => {
  const { core, a } = lab();
  core.setBestTracking(false);
  core.applyUpdate(a, announce(['10.1.0.0/24', '10.1.1.0/24'], EBGP_ATTRS));
  core.setBestTracking(true, false);
  core.finishWalks();
  t.same(core.drainBestChanges(), [], 'no replay of the Loc-RIB');
  core.applyUpdate(a, announce(['10.1.2.0/24'], EBGP_ATTRS));
  core.applyUpdate(a, withdraw(['10.1.0.0/24']));
  t.same(core.drainBestChanges().map((c) => [show(c.prefix), c.best === null]), [['10.1.2.0/24', false], ['10.1.0.0/24', true]], 'the changes after it');
  core.applyUpdate(a, withdraw(['10.1.1.0/24']));
  core.replayBest();
  core.finishWalks();
  const all = core.drainBestChanges().map((c) => [show(c.prefix), c.best === null]).sort();
  t.same(all, [['10.1.1.0/24', true], ['10.1.2.0/24', false]], 'replay: the whole table, and the withdrawal pending before it is not lost');
});

t.test('speaker listeners: bestLive records from its joining, best/bestBatch get the table, none: tracking off', async (t) => {
  const { core, a } = lab();
  const s = new EventEmitter();
  trackBestListeners(s, core);
  core.applyUpdate(a, announce(['10.1.0.0/24'], EBGP_ATTRS));
  t.equal(core.pendingBestChanges, 0, 'no listener: nothing recorded');
  const live = (): void => undefined;
  s.on('bestLive', live);
  core.finishWalks();
  t.equal(core.pendingBestChanges, 0, 'a live listener gets no replay');
  core.applyUpdate(a, announce(['10.1.1.0/24'], EBGP_ATTRS));
  t.equal(core.pendingBestChanges, 1, 'but the change after it');
  const batch = (): void => undefined;
  s.on('bestBatch', batch);
  core.finishWalks();
  t.equal(core.pendingBestChanges, 2, 'a whole-table listener: every Loc-RIB prefix marked');
  s.off('bestBatch', batch);
  t.equal(core.pendingBestChanges, 2, 'the live listener still there: tracking stays on');
  s.off('bestLive', live);
  t.equal(core.pendingBestChanges, 0, 'the last listener gone: tracking off');
  core.applyUpdate(a, announce(['10.1.2.0/24'], EBGP_ATTRS));
  t.equal(core.pendingBestChanges, 0, 'and nothing recorded');
});
