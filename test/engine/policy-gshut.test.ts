// RFC 8326 graceful shutdown in the RIB: a path carrying GRACEFUL_SHUTDOWN (65535:0) from a peer ranks as LOCAL_PREF
// 0 (it loses to any other path), and while this speaker drains (setDraining) every route it advertises carries
// the community, with LOCAL_PREF 0 to iBGP peers; undrain restores the routes as they were.
import t from 'tap';
import { RibCore, type OutBatch } from '../../bgp/index.js';
import { announce, drain, p4, terms } from '../helpers/rib.js';

const GSHUT = 0xffff0000;
type Announce = Extract<OutBatch, { kind: 'announce' }>;
const announced = (b: OutBatch[]): Announce[] => b.filter((x): x is Announce => x.kind === 'announce');

t.test('a path with GRACEFUL_SHUTDOWN loses to every other path, from iBGP and eBGP peers', (t) => {
  const core = new RibCore({ localAs: 64512, routerId: 1 });
  const i1 = core.addPeer({ address: '192.0.2.1', asn: 64512, localAddress: '192.0.2.100' });
  const i2 = core.addPeer({ address: '192.0.2.2', asn: 64512, localAddress: '192.0.2.100' });
  const e3 = core.addPeer({ address: '192.0.2.3', asn: 65003, localAddress: '192.0.2.100' });
  core.peerUp(i1, terms(1, true));
  core.peerUp(i2, terms(2, true));
  core.peerUp(e3, terms(3, false));
  // i1 is preferred by router id otherwise (same attributes); its path carries the community and must lose
  core.applyUpdate(i1, announce(['10.65.1.0/26'], { origin: 0, asPath: [], localPref: 100, communities: [GSHUT], nextHop: '192.0.2.1' }));
  core.applyUpdate(i2, announce(['10.65.1.0/26'], { origin: 0, asPath: [], localPref: 100, nextHop: '192.0.2.2' }));
  const r = core.route(p4('10.65.1.0/26'));
  t.equal(r?.best.source.address, '192.0.2.2', 'the drained host\'s path loses');
  t.equal(r?.paths.find((p) => p.source.address === '192.0.2.1')?.attrs.attrs.localPref, 0, 'held as LOCAL_PREF 0');
  t.equal(r?.reason, 'local-pref');
  // eBGP: the community maps to LOCAL_PREF 0 too, where ours (100) would apply otherwise
  core.applyUpdate(e3, announce(['10.65.2.0/26'], { origin: 0, asPath: [{ type: 2, asns: [65003] }], communities: [GSHUT], nextHop: '192.0.2.3' }));
  core.applyUpdate(i2, announce(['10.65.2.0/26'], { origin: 0, asPath: [{ type: 2, asns: [65009, 65010] }], localPref: 100, nextHop: '192.0.2.2' }));
  t.equal(core.route(p4('10.65.2.0/26'))?.best.source.address, '192.0.2.2', 'a longer AS_PATH wins over a draining eBGP path');
  // alone, a draining path is still used (it is only the least preferred)
  core.applyUpdate(i1, announce(['10.65.3.0/26'], { origin: 0, asPath: [], localPref: 100, communities: [GSHUT], nextHop: '192.0.2.1' }));
  t.equal(core.route(p4('10.65.3.0/26'))?.best.source.address, '192.0.2.1');
  t.end();
});

t.test('drain: every advertised route carries GRACEFUL_SHUTDOWN, LOCAL_PREF 0 to iBGP; undrain restores', (t) => {
  const core = new RibCore({ localAs: 64512, routerId: 1 });
  const i1 = core.addPeer({ address: '192.0.2.1', asn: 64512, localAddress: '192.0.2.100' });
  const e3 = core.addPeer({ address: '192.0.2.3', asn: 65003, localAddress: '192.0.2.100' });
  core.originate(p4('10.65.9.0/26'), { communities: [(64512 << 16) | 7] });
  core.peerUp(i1, terms(1, true));
  core.peerUp(e3, terms(3, false));
  const before = { i: announced(drain(core, i1)), e: announced(drain(core, e3)) };
  t.equal(before.i[0]?.attrs.attrs.localPref, 100);
  t.notOk(before.e[0]?.attrs.attrs.communities?.includes(GSHUT));
  core.setDraining(true);
  t.ok(core.isDraining);
  const i = announced(drain(core, i1));
  const e = announced(drain(core, e3));
  t.equal(i.length, 1, 're-announced to iBGP');
  t.equal(i[0]!.attrs.attrs.localPref, 0, 'LOCAL_PREF 0 to iBGP');
  t.same(i[0]!.attrs.attrs.communities, [(64512 << 16) | 7, GSHUT], 'the community added, the route\'s own kept');
  t.equal(e.length, 1, 're-announced to eBGP');
  t.ok(e[0]!.attrs.attrs.communities?.includes(GSHUT), 'eBGP: the community');
  t.equal(e[0]!.attrs.attrs.localPref, undefined, 'eBGP: no LOCAL_PREF (RFC 4271 §5.1.5)');
  core.setDraining(true);
  t.same(drain(core, i1), [], 'draining again sends nothing new');
  core.setDraining(false);
  const back = announced(drain(core, i1));
  t.equal(back[0]?.attrs.attrs.localPref, 100, 'undrain: normal LOCAL_PREF again');
  t.notOk(back[0]?.attrs.attrs.communities?.includes(GSHUT));
  t.notOk(announced(drain(core, e3))[0]?.attrs.attrs.communities?.includes(GSHUT));
  t.end();
});
