// An UPDATE that cannot be encoded for a peer (a received AS_PATH near 4,096 octets plus our prepend, to a peer
// without extended messages): RFC 8654 §4 — not sent, a version the peer may hold is withdrawn, and Adj-RIB-Out
// says the peer does not have it, so a later export of the same route is tried again instead of suppressed.
import t from 'tap';
import { DEFAULT_CONTEXT, IPV4_UNICAST, RibCore, packUpdates, type OutBatch, type PrefixKey } from '../../bgp/index.js';
import { announce, drain, p4, show, terms } from '../helpers/rib.js';

type Announce = Extract<OutBatch, { kind: 'announce' }>;

t.test('an announcement too large for the peer is withdrawn and not remembered as sent', (t) => {
  const core = new RibCore({ localAs: 64512, routerId: 1 });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100' });
  const b = core.addPeer({ address: '192.0.2.2', asn: 65002, localAddress: '192.0.2.100' });
  core.peerUp(a, terms(1, false));
  core.peerUp(b, terms(2, false));
  drain(core, a);
  drain(core, b);
  // 1,020 four-octet ASNs: 4,080 octets of AS_PATH segments; with our prepend it cannot fit a 4,096-octet UPDATE.
  const long = Array.from({ length: 4 }, (_, i) => ({ type: 2 as const, asns: Array.from({ length: 255 }, (_x, j) => 65001 + ((i * 255 + j) % 2 === 0 ? 0 : 1000)) }));
  long[0]!.asns[0] = 65001;
  core.applyUpdate(a, announce(['10.9.0.0/16'], { origin: 0, asPath: long, nextHop: '192.0.2.1' }));
  const out = drain(core, b).filter((x): x is Announce => x.kind === 'announce');
  t.equal(out.length, 1);
  const batch = out[0] as Announce;
  t.throws(() => packUpdates(batch.attrs.attrs, { afi: 1, safi: 1, prefixes: batch.prefixes as number[], pathIds: null }, DEFAULT_CONTEXT), RangeError, 'the UPDATE does not fit 4,096 octets');
  t.equal(core.unsendable(b, batch), 1);
  const next = drain(core, b);
  t.same(next.map((x) => [x.kind, x.kind === 'withdraw' ? x.prefixes.map((q: PrefixKey) => show(q)) : []]), [['withdraw', ['10.9.0.0/16']]], 'a withdrawal goes out instead');
  // The same route exported again (a refresh) is tried again: Adj-RIB-Out did not keep it as sent.
  core.refreshExports(b);
  const again = drain(core, b).filter((x) => x.kind === 'announce');
  t.equal(again.length, 1, 'not suppressed as already advertised');
  t.same((again[0] as Announce).prefixes, [p4('10.9.0.0/16')]);
  t.end();
});

t.test('ADD-PATH: only the path that cannot be sent is withdrawn, under its path id, and leaves Adj-RIB-Out', (t) => {
  const core = new RibCore({ localAs: 64512, routerId: 1 });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100' });
  const c = core.addPeer({ address: '192.0.2.3', asn: 65003, localAddress: '192.0.2.100' });
  const b = core.addPeer({ address: '192.0.2.2', asn: 65002, localAddress: '192.0.2.100', addPathSend: { mode: 'all' } });
  core.peerUp(a, terms(1, false));
  core.peerUp(c, terms(3, false));
  core.peerUp(b, terms(2, false, { addPathTx: new Set([IPV4_UNICAST]) }));
  for (const id of [a, b, c]) drain(core, id);
  const long = Array.from({ length: 4 }, () => ({ type: 2 as const, asns: Array.from({ length: 255 }, (_x, j) => (j % 2 === 0 ? 65001 : 66001)) }));
  core.applyUpdate(a, announce(['10.9.0.0/16'], { origin: 0, asPath: long, nextHop: '192.0.2.1' }));
  core.applyUpdate(c, announce(['10.9.0.0/16'], { origin: 0, asPath: [{ type: 2, asns: [65003] }], nextHop: '192.0.2.3' }));
  const out = drain(core, b).filter((x): x is Announce => x.kind === 'announce');
  t.equal(out.length, 2, 'both paths offered to the ADD-PATH peer');
  const bad = out.find((x) => (x.attrs.attrs.asPath?.length ?? 0) > 1);
  const good = out.find((x) => x !== bad);
  t.ok(bad !== undefined && good !== undefined);
  if (bad === undefined || good === undefined) return;
  t.throws(() => packUpdates(bad.attrs.attrs, { afi: 1, safi: 1, prefixes: bad.prefixes as number[], pathIds: bad.pathIds }, DEFAULT_CONTEXT), RangeError);
  const badId = (bad.pathIds as number[])[0];
  const goodId = (good.pathIds as number[])[0];
  t.not(badId, goodId);
  t.equal(core.unsendable(b, bad), 1);
  t.same(core.advertisedPaths(b, p4('10.9.0.0/16')).map((x) => x.pathId), [goodId], 'Adj-RIB-Out keeps only the path the peer has');
  t.same(core.peerStats(b).advertised, 1);
  const next = drain(core, b);
  t.same(next.map((x) => [x.kind, x.kind === 'withdraw' ? x.pathIds : null]), [['withdraw', [badId]]], 'the unsendable path id is withdrawn, the other is not');
  core.refreshExports(b);
  const again = drain(core, b).filter((x): x is Announce => x.kind === 'announce');
  t.equal(again.length, 1, 'a later export offers it again instead of suppressing it');
  t.same(again[0]!.attrs.attrs, bad.attrs.attrs, 'the same route as before');
  t.equal(core.advertisedPaths(b, p4('10.9.0.0/16')).length, 2);
  t.end();
});
