// A change of the host's routes re-judges only the attribute sets whose next hop it concerns (bgp/rib/next-hop.ts
// setReachability tells which next hops; intern.ts AttrTable indexes the sets by first next hop; core.ts
// recheckNextHops judges those). Counted with AttrTable.rejudged, and checked against a full re-judgement: after an
// indexed re-check, judging every set again must change nothing.
import t from 'tap';
import { NextHopTable, RibCore, type PathAttributes, type Reachability } from '../../bgp/index.js';
import { announce, announce6, drain, p4, show, terms } from '../helpers/rib.js';

const LOCAL_AS = 64512;
const ibgp = (med: number): PathAttributes => ({ origin: 0, asPath: [], localPref: 100, med });

function lab(first: Reachability) {
  const tbl = new NextHopTable();
  const core = new RibCore({ localAs: LOCAL_AS, routerId: 0x0a000001 });
  const b = core.addPeer({ address: '10.0.0.3', asn: LOCAL_AS, localAddress: '10.0.0.1', localAddress6: 'fd00::1' });
  core.peerUp(b, terms(0x0a000003, true));
  drain(core, b);
  // the daemon's order: the first view (every set judged), then the check
  t.equal(tbl.setReachability(first), null, 'the first view concerns every next hop');
  core.setNextHopCheck((nh) => tbl.check(nh));
  /** the daemon's path (Speaker.setReachability): the new view, then a re-check of what it concerns */
  const feed = (r: Reachability): number => core.recheckNextHops(tbl.setReachability(r));
  return { core, tbl, b, feed };
}

const base = { addresses: ['10.0.0.1', 'fd00::1'], routes: ['10.0.0.0/24', '10.0.3.0/24', 'fd00::/64'] };
/** `n` prefixes 10.<second>.<i>.0/24, each with its own attribute set (MED i) and next hop `nh` */
const block = (second: number, n: number): string[] => Array.from({ length: n }, (_, i) => `10.${second}.${i}.0/24`);

t.test('only the sets under a changed route or address are judged again', async (t) => {
  const { core, b, feed } = lab(base);
  const groups = { far: '198.51.100.7', near: '10.0.3.9', other: '192.0.2.5' } as const;
  const second = { far: 100, near: 101, other: 102 } as const;
  for (const [g, nh] of Object.entries(groups) as [keyof typeof groups, string][]) {
    block(second[g], 40).forEach((p, i) => core.applyUpdate(b, announce([p], { ...ibgp(i), nextHop: nh })));
  }
  core.applyUpdate(b, announce6(['2001:db8:1::/48'], ibgp(1), ['2001:db8:ff::1']));
  core.applyUpdate(b, announce6(['2001:db8:2::/48'], ibgp(2), ['2001:db8:ff::1']));
  t.equal(core.attrs.size, 122, '122 attribute sets');
  const unusable = (p: string): string | undefined => core.route(p.includes(':') ? p : p4(p))?.best.attrs.unusable?.code;
  t.equal(unusable('10.100.0.0/24'), 'unresolvable');
  t.equal(unusable('10.101.0.0/24'), undefined, 'the near ones are usable');
  core.drainBestChanges();

  // a route that covers the far next hop only
  let r0 = core.attrs.rejudged;
  const n = feed({ ...base, routes: [...base.routes, '198.51.100.0/24'] });
  t.equal(core.attrs.rejudged - r0, 40, 'the 40 sets with the far next hop were judged again, no other');
  t.equal(n, 40, '40 prefixes re-decided');
  t.equal(unusable('10.100.39.0/24'), undefined, 'and are usable now');
  t.equal(unusable('10.102.0.0/24'), 'unresolvable', 'the other ones stay unresolvable');
  t.same(core.drainBestChanges().map((c) => show(c.prefix)).filter((p) => !p.startsWith('10.100.')), [], 'only they reach the FIB');
  r0 = core.attrs.rejudged;
  t.equal(core.recheckNextHops(), 0, 'a full re-judgement afterwards finds nothing the index missed');
  t.equal(core.attrs.rejudged - r0, 122, '(it judged all 122)');

  // the near next hop becomes one of the host's addresses: its 40 sets only
  r0 = core.attrs.rejudged;
  feed({ ...base, addresses: [...base.addresses, '10.0.3.9'], routes: [...base.routes, '198.51.100.0/24'] });
  t.equal(core.attrs.rejudged - r0, 40, 'an address added: the 40 sets with that next hop');
  t.equal(unusable('10.101.5.0/24'), 'own-address');

  // same routes and addresses, another gateway (what the FIB cares about, not the verdict): nothing re-judged
  r0 = core.attrs.rejudged;
  feed({ ...base, addresses: [...base.addresses, '10.0.3.9'], routes: [...base.routes, '198.51.100.0/24'], resolving: [{ dst: '198.51.100.0/24', hops: [{ gateway: '10.0.0.254' }] }] });
  t.equal(core.attrs.rejudged - r0, 0, 'a gateway change judges no set');

  // an IPv6 route covering the IPv6 next hop: its two sets
  r0 = core.attrs.rejudged;
  t.equal(unusable('2001:db8:1::/48'), 'unresolvable');
  feed({ ...base, addresses: [...base.addresses, '10.0.3.9'], routes: [...base.routes, '198.51.100.0/24', '2001:db8:ff::/64'] });
  t.equal(core.attrs.rejudged - r0, 2, 'the two sets with that IPv6 next hop');
  t.equal(unusable('2001:db8:2::/48'), undefined, 'usable');

  // a covering route removed: the sets under it, and the verdict follows
  r0 = core.attrs.rejudged;
  feed({ ...base, addresses: [...base.addresses, '10.0.3.9'], routes: [...base.routes, '2001:db8:ff::/64'] });
  t.equal(core.attrs.rejudged - r0, 40, 'a route removed: the 40 far sets');
  t.equal(unusable('10.100.7.0/24'), 'unresolvable', 'unresolvable again');
  t.equal(core.recheckNextHops(), 0, 'and again nothing the index missed');
});

t.test('sets that go leave the index', async (t) => {
  const { core, b, feed } = lab(base);
  const ps = block(100, 10);
  ps.forEach((p, i) => core.applyUpdate(b, announce([p], { ...ibgp(i), nextHop: '198.51.100.7' })));
  core.applyUpdate(b, { type: 'UPDATE', withdrawn: { afi: 1, safi: 1, prefixes: ps.map(p4), pathIds: null }, attributes: {}, nlri: { afi: 1, safi: 1, prefixes: [], pathIds: null } });
  t.equal(core.attrs.size, 0, 'every set released');
  const r0 = core.attrs.rejudged;
  feed({ ...base, routes: [...base.routes, '198.51.100.0/24'] });
  t.equal(core.attrs.rejudged - r0, 0, 'nothing left to judge under that route');
});
