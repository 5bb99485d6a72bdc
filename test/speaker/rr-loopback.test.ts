// Route reflection (RFC 4456) between Speakers over loopback (no root): each
// speaker binds its own 127.x.y.N on this file's port. Scene one: two
// reflectors in ONE cluster, four clients, one non-client iBGP peer. Scene
// two: two reflectors in DIFFERENT clusters. Then the maximum-prefix limit
// (RFC 4486), which reflectors need most.
import t from 'tap';
import net from 'node:net';
import type {
  Speaker} from '../../bgp/index.js';
import { decodeMessage, encodeMessage, parseIpv4, parsePrefixText,
  type BestEvent, type Message, type PeerOptions, type SpeakerOptions,
} from '../../bgp/index.js';
import { until } from '../helpers/netns.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { fibView, loopbackNet, loopbackSpeaker } from '../helpers/loopback.js';

const PORT = 24181;
const addr = loopbackNet();
const AS = 65000;
const speakers: Speaker[] = [];

t.teardown(async () => {
  for (const s of speakers) await s.stop();
});

/** A speaker and the FIB-facing view built from its 'best' stream (prefix → next hops; absent when withdrawn). */
function speaker(n: number, peers: PeerOptions[], extra: Partial<SpeakerOptions> = {}): { s: Speaker; fib: Map<string, BestEvent> } {
  const s = loopbackSpeaker(addr, PORT, n, AS, peers, { maxPaths: 1 /* ECMP off */, ...extra });
  speakers.push(s);
  return { s, fib: fibView(s).fib };
}

const peer = (n: number, o: Partial<PeerOptions> = {}): PeerOptions => ({ address: addr(n), port: PORT, asn: AS, ...o });
const prefixOf = (n: number): string => `10.${n}.0.0/24`;
const attrsAt = (s: Speaker, prefix: string) => s.rib.route(parsePrefixText(prefix))?.best.attrs.attrs;
const fromAt = (s: Speaker, prefix: string) => s.rib.route(parsePrefixText(prefix))?.best.source.address;
const allUp = (s: Speaker): boolean => s.peerAddresses().every((a) => s.peerInfo(a)?.state === 'Established');

t.test('two reflectors in one cluster, four clients, one non-client', async (t) => {
  const CLIENTS = [3, 4, 5, 6];
  const CLUSTER = '10.0.0.250';
  // Reflectors wait for their clients and for the non-client; RR1 dials RR2.
  const rrPeers = (other: number): PeerOptions[] => [
    ...CLIENTS.map((c) => peer(c, { routeReflectorClient: true, passive: true })),
    peer(7, { passive: true }),
    peer(other, other === 2 ? {} : { passive: true }),
  ];
  const rr1 = speaker(1, rrPeers(2), { clusterId: CLUSTER });
  const rr2 = speaker(2, rrPeers(1), { clusterId: CLUSTER });
  const clients = new Map(CLIENTS.map((c) => [c, speaker(c, [peer(1), peer(2)])]));
  // The non-client originates a route whose ORIGINATOR_ID already names client 3:
  // reflected to the clients, client 3 must drop it as its own (RFC 4456 §8).
  const ORIG = '10.77.0.0/24';
  const n7 = speaker(7, [
    peer(1, { exportPolicy: (p, a) => (p === parsePrefixText(ORIG) ? { accept: true, attrs: { ...a, originatorId: parseIpv4('10.0.0.3') } } : { accept: true }) }),
    peer(2, { exportPolicy: (p, a) => (p === parsePrefixText(ORIG) ? { accept: true, attrs: { ...a, originatorId: parseIpv4('10.0.0.3') } } : { accept: true }) }),
  ]);
  for (const [c, { s }] of clients) s.originate(prefixOf(c));
  n7.s.originate(prefixOf(7));
  n7.s.originate(ORIG);
  await Promise.all(speakers.map((s) => s.start()));
  const all = [rr1, rr2, ...clients.values(), n7];
  await until(() => all.every(({ s }) => allUp(s)), 'every session Established', 20_000);

  // every client sees every other client's route (and the non-client's) in its FIB view
  const want = (c: number) => [...CLIENTS.filter((x) => x !== c).map(prefixOf), prefixOf(7)].sort();
  await until(
    () => [...clients].every(([c, { fib }]) => want(c).every((p) => fib.has(p))),
    'clients see each other through the reflectors',
    15_000,
  ).catch((e: unknown) => {
    for (const [c, { fib }] of clients) t.comment(`client ${c}: ${[...fib.keys()].join(' ')}`);
    throw e;
  });
  // let late duplicates (a second reflector's copy) arrive before judging
  await new Promise((r) => setTimeout(r, 500));
  for (const [c, { s, fib }] of clients) {
    const seen = [...fib.keys()].filter((p) => p !== ORIG).sort();
    t.same(seen, want(c), `client ${c}: each other client's route exactly once, nothing of its own`);
    for (const x of CLIENTS.filter((y) => y !== c)) {
      const best = fib.get(prefixOf(x));
      t.same(best?.nextHops, [addr(x)], `client ${c}: next hop of ${prefixOf(x)} is client ${x} (reflector left it unchanged)`);
      const a = attrsAt(s, prefixOf(x));
      t.equal(a?.originatorId, parseIpv4(`10.0.0.${x}`) >>> 0, 'ORIGINATOR_ID names the originating client');
      t.same(a?.clusterList, [parseIpv4(CLUSTER) >>> 0], 'CLUSTER_LIST holds the one cluster once');
    }
    const paths = s.rib.route(parsePrefixText(prefixOf(CLIENTS.find((y) => y !== c) as number)))?.paths.length;
    t.equal(paths, 2, `client ${c} holds one path per reflector`);
  }

  // the non-client sees the clients' routes (from a client: reflected to non-clients too)
  await until(() => CLIENTS.every((c) => n7.fib.has(prefixOf(c))), 'non-client sees clients', 10_000);
  t.pass('the non-client sees every client route');

  // loops: client 3 drops the route carrying its own ORIGINATOR_ID, client 4 takes it
  t.ok(clients.get(4)?.fib.has(ORIG), 'the marked route reaches another client');
  t.notOk(clients.get(3)?.fib.has(ORIG), 'client 3 drops a route with its own ORIGINATOR_ID');
  const c3 = clients.get(3)?.s.peersJson().peers.find((p) => p.address === addr(1));
  t.ok((c3?.prefixes.received ?? 0) > (c3?.prefixes.accepted ?? 0), 'client 3 received more than it accepted');
  // RR-to-RR: each reflects client routes to the other, which drops them by CLUSTER_LIST
  const rr2ViewOfRr1 = rr2.s.peersJson().peers.find((p) => p.address === addr(1));
  const rr1ViewOfRr2 = rr1.s.peersJson().peers.find((p) => p.address === addr(2));
  t.ok((rr1ViewOfRr2?.prefixes.advertised ?? 0) >= CLIENTS.length, 'RR1 reflects client routes to RR2');
  t.ok((rr2ViewOfRr1?.prefixes.received ?? 0) >= CLIENTS.length, 'RR2 receives them');
  t.equal(rr2ViewOfRr1?.prefixes.accepted, 0, 'RR2 drops them all: its cluster is in CLUSTER_LIST');
  for (const c of CLIENTS) t.equal(fromAt(rr2.s, prefixOf(c)), addr(c), `RR2 holds ${prefixOf(c)} from the client itself`);

  // reflector loss: stop RR1, every client keeps every route via RR2
  await rr1.s.stop({ message: 'reflector maintenance' });
  await until(
    () => [...clients].every(([c, { s }]) => want(c).every((p) => fromAt(s, p) === addr(2))),
    'routes held via RR2 only',
    10_000,
  );
  for (const [c, { fib }] of clients) {
    t.same([...fib.keys()].filter((p) => p !== ORIG).sort(), want(c), `client ${c} lost nothing when RR1 stopped`);
  }
  await Promise.all(all.map(({ s }) => s.stop()));
});

t.test('two reflectors in different clusters', async (t) => {
  // RRa (cluster 1.1.1.1) with client A; RRb (cluster 2.2.2.2) with client B; client AB of both.
  const rra = speaker(11, [peer(13, { routeReflectorClient: true, passive: true }), peer(15, { routeReflectorClient: true, passive: true }), peer(12)], { clusterId: '1.1.1.1' });
  const rrb = speaker(12, [peer(14, { routeReflectorClient: true, passive: true }), peer(15, { routeReflectorClient: true, passive: true }), peer(11, { passive: true })], { clusterId: '2.2.2.2' });
  const a = speaker(13, [peer(11)]);
  const b = speaker(14, [peer(12)]);
  const ab = speaker(15, [peer(11), peer(12)]);
  a.s.originate(prefixOf(13));
  b.s.originate(prefixOf(14));
  ab.s.originate(prefixOf(15));
  const all = [rra, rrb, a, b, ab];
  await Promise.all(all.map(({ s }) => s.start()));
  await until(() => all.every(({ s }) => allUp(s)), 'every session Established', 20_000);
  await until(() => b.fib.has(prefixOf(13)) && a.fib.has(prefixOf(14)) && ab.fib.has(prefixOf(13)) && ab.fib.has(prefixOf(14)), 'routes across clusters', 10_000);
  const one = parseIpv4('1.1.1.1') >>> 0;
  const two = parseIpv4('2.2.2.2') >>> 0;
  t.same(attrsAt(b.s, prefixOf(13))?.clusterList, [two, one], 'A\'s route at B went through both clusters, nearest first');
  t.equal(attrsAt(b.s, prefixOf(13))?.originatorId, parseIpv4('10.0.0.13') >>> 0);
  t.same(b.fib.get(prefixOf(13))?.nextHops, [addr(13)], 'next hop still A');
  // RRb has AB's route twice (direct, and via RRa with a longer CLUSTER_LIST): the direct one wins
  const r = rrb.s.rib.route(parsePrefixText(prefixOf(15)));
  t.equal(r?.paths.length, 2, 'RRb accepts the copy from the other cluster');
  t.equal(r?.best.source.address, addr(15), 'the direct path wins');
  await new Promise((r) => setTimeout(r, 300));
  t.same([...ab.fib.keys()].sort(), [prefixOf(13), prefixOf(14)], 'AB sees A and B once, never its own route');
  t.same([...a.fib.keys()].sort(), [prefixOf(14), prefixOf(15)]);
  await Promise.all(all.map(({ s }) => s.stop()));
});

/** A scripted peer (test/helpers/raw-peer.ts) at addr(from), in our AS, with a session to the speaker at addr(to). */
const rawPeer = (to: number, from: number, families: number[]): Promise<RawPeer> =>
  RawPeer.session({ host: addr(to), port: PORT, localAddress: addr(from), asn: AS, routerId: `10.0.0.${from}`, families });

t.test('maximum prefixes: warned, then shut with Cease/1 (AFI/SAFI, limit), held down; the others unaffected', async (t) => {
  const logs: { level: string; msg: string; peer?: string }[] = [];
  const m = speaker(21, [
    peer(22, { passive: true, maxPrefixes: { limit: 5, warningThreshold: 60 } }),
    peer(23, { passive: true }),
    peer(24, { passive: true, maxPrefixes: { limit: 2, restartAfterSec: 1 } }),
  ]);
  m.s.on('log', (l: { level: string; msg: string; peer?: string }) => logs.push(l));
  const y = speaker(23, [peer(21)]);
  const z = speaker(24, [peer(21)]);
  y.s.originate('10.23.0.0/24');
  for (let i = 0; i < 3; i++) z.s.originate(`10.24.${i}.0/24`);
  await Promise.all([m.s.start(), y.s.start(), z.s.start()]);
  await until(() => m.fib.has('10.23.0.0/24'), 'Y\'s route at M', 10_000);
  const yConn = m.s.peerInfo(addr(23))?.connection;

  // a raw peer (X): OPEN, then 4 prefixes (warning at 3), then 4 more (limit 5 exceeded)
  const x = await rawPeer(21, 22, [0x101]);
  await until(() => m.s.peerInfo(addr(22))?.state === 'Established', 'X Established', 10_000);
  const update = (from: number, n: number): Buffer => {
    const prefixes = Array.from({ length: n }, (_, i) => parsePrefixText(`10.22.${from + i}.0/24`) as number);
    return encodeMessage({
      type: 'UPDATE',
      withdrawn: { afi: 1, safi: 1, prefixes: [], pathIds: null },
      attributes: { origin: 0, asPath: [], nextHop: addr(22), localPref: 100 },
      nlri: { afi: 1, safi: 1, prefixes, pathIds: null },
    });
  };
  x.socket.write(update(0, 4));
  await until(() => m.s.peerInfo(addr(22))?.counters.messagesIn.UPDATE === 1, 'first UPDATE in', 5000);
  await until(() => logs.some((l) => l.level === 'warn' && l.peer === addr(22)), 'warning logged', 5000);
  t.equal(m.s.peerInfo(addr(22))?.state, 'Established', 'below the limit: still up');
  x.socket.write(update(4, 4));
  await until(() => x.closed, 'X closed', 5000);
  const n = x.messages.find((x): x is Extract<Message, { type: 'NOTIFICATION' }> => x.type === 'NOTIFICATION');
  t.equal(n?.code, 6, 'Cease');
  t.equal(n?.subcode, 1, 'Maximum Number of Prefixes Reached');
  t.same([...(n?.data ?? [])], [0, 1, 1, 0, 0, 0, 5], 'data: AFI 1, SAFI 1, limit 5 (RFC 4486 §4)');
  t.equal(logs.filter((l) => l.level === 'warn' && l.peer === addr(22)).length, 1, 'warned once');
  await until(() => ![...m.fib.keys()].some((p) => p.startsWith('10.22.')), 'X\'s routes gone', 5000);

  // held down: no restart, a new connection from X is refused with Cease / Connection Rejected
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(m.s.peerInfo(addr(22))?.state, 'Idle', 'X stays down');
  const again = net.connect({ host: addr(21), port: PORT, localAddress: addr(22) });
  again.on('error', () => {});
  const bytes: Buffer[] = [];
  again.on('data', (d: Buffer) => bytes.push(d));
  await new Promise<void>((r) => again.once('close', () => r()));
  const refusal = decodeMessage(Buffer.concat(bytes));
  t.match(refusal, { type: 'NOTIFICATION', code: 6, subcode: 5 }, 'reconnection refused while held down');

  // the others: Y untouched (same connection), Z (limit 2, restart after 1 s) shut and back, shut again
  t.equal(m.s.peerInfo(addr(23))?.connection, yConn, 'Y\'s session was not reset');
  t.ok(m.fib.has('10.23.0.0/24'));
  await until(() => (z.s.peerInfo(addr(21))?.counters.notificationsIn['6/1'] ?? 0) >= 2, 'Z shut, restarted after 1 s, shut again', 10_000).catch((e: unknown) => {
    t.comment(JSON.stringify([z.s.peerInfo(addr(21)), m.s.peerInfo(addr(24)), logs.filter((l) => l.peer === addr(24))]));
    throw e;
  });
  t.pass('restartAfterSec lets the peer back');
  x.socket.destroy();
  await Promise.all([m.s.stop(), y.s.stop(), z.s.stop()]);
});

t.test('maximum prefixes count per address family; perFamily overrides one family', async (t) => {
  // IPv4 4 + IPv6 3 = 7 prefixes against limit 5: fine while each family is within its own limit
  // (as BIRD's channel limits and FRR's per-AFI maximum-prefix count). IPv6 is capped at 3 here.
  const m = speaker(31, [peer(32, { passive: true, families: ['ipv4-unicast', 'ipv6-unicast'], maxPrefixes: { limit: 5, perFamily: { 'ipv6-unicast': 3 } } })]);
  const warned: string[] = [];
  m.s.on('log', (l: { level: string; msg: string }) => { if (l.level === 'warn') warned.push(l.msg); });
  await m.s.start();
  const x = await rawPeer(31, 32, [0x101, 0x201]);
  await until(() => m.s.peerInfo(addr(32))?.state === 'Established', 'Established', 10_000);
  const none = { afi: 1 as const, safi: 1, prefixes: [], pathIds: null };
  const v4 = (n: number): Buffer => encodeMessage({
    type: 'UPDATE', withdrawn: none, attributes: { origin: 0, asPath: [], nextHop: addr(32), localPref: 100 },
    nlri: { afi: 1, safi: 1, prefixes: Array.from({ length: n }, (_, i) => parsePrefixText(`10.32.${i}.0/24`) as number), pathIds: null },
  });
  const v6 = (from: number, n: number): Buffer => encodeMessage({
    type: 'UPDATE', withdrawn: none, nlri: none,
    attributes: { origin: 0, asPath: [], localPref: 100 },
    mpReach: { afi: 2, safi: 1, nextHops: ['fd00::32'], nlri: { afi: 2, safi: 1, prefixes: Array.from({ length: n }, (_, i) => parsePrefixText(`fd00:32:${from + i}::/64`)), pathIds: null } },
  } as Parameters<typeof encodeMessage>[0]);
  x.socket.write(v4(4));
  x.socket.write(v6(0, 3));
  const accepted = (): number | undefined => m.s.peersJson().peers.find((x) => x.address === addr(32))?.prefixes.accepted;
  await until(() => accepted() === 7, 'seven prefixes accepted', 5000);
  t.equal(m.s.peerInfo(addr(32))?.state, 'Established', '7 in all, but no family above its limit: still up');
  t.ok(warned.some((w) => /ipv4-unicast/.test(w) && /limit of 5/.test(w)), 'IPv4 warned at 75% of 5');
  t.ok(warned.some((w) => /ipv6-unicast/.test(w) && /limit of 3/.test(w)), 'IPv6 warned against its own limit of 3');
  x.socket.write(v6(3, 1));
  await until(() => x.closed, 'closed at the fourth IPv6 prefix', 5000);
  const n = x.messages.find((x): x is Extract<Message, { type: 'NOTIFICATION' }> => x.type === 'NOTIFICATION');
  t.equal(n?.code, 6, 'Cease');
  t.equal(n?.subcode, 1, 'Maximum Number of Prefixes Reached');
  t.same([...(n?.data ?? [])], [0, 2, 1, 0, 0, 0, 3], 'data: AFI 2, SAFI 1 and the IPv6 limit 3 (RFC 4486 §4)');
  x.socket.destroy();
  await m.s.stop();
});
