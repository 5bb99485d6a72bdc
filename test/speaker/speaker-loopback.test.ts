// Speakers over loopback (no root): every speaker binds its own 127.x.y.N
// (127.0.0.0/8 is all local on Linux) on this file's port, so sessions are
// told apart by address as they would be between hosts.
import t from 'tap';
import net from 'node:net';
import type {
  Speaker} from '../../bgp/index.js';
import {
  CeaseSubcode,
  ErrorCode,
  Framer,
  bindSocket,
  buildCapabilities,
  createSocket,
  decodeMessage,
  encodeMessage,
  parseIpv4,
  parsePrefixText,
  setIntOpt,
  sockoptConstants,
  type BestEvent,
  type Message,
  type PeerOptions,
  type SpeakerOptions,
} from '../../bgp/index.js';
import { until } from '../helpers/netns.js';
import { loopbackNet, loopbackSpeaker } from '../helpers/loopback.js';

const PORT = 24179;
const addr = loopbackNet();
const speakers: Speaker[] = [];

t.teardown(async () => {
  for (const s of speakers) await s.stop({ message: 'test over' });
});

function speaker(n: number, asn: number, peers: PeerOptions[], extra: Partial<SpeakerOptions> = {}): Speaker {
  const s = loopbackSpeaker(addr, PORT, n, asn, peers, { nextHop6: `fd00::${n}`, ...extra });
  speakers.push(s);
  return s;
}

const peer = (n: number, asn: number, o: Partial<PeerOptions> = {}): PeerOptions => ({ address: addr(n), port: PORT, asn, ...o });

function route(s: Speaker, prefix: string) {
  return s.routesJson().routes.find((r) => r.prefix === prefix);
}

const established = (s: Speaker, n: number): boolean => s.peerInfo(addr(n))?.state === 'Established';

/** A hand-driven peer: raw TCP, our codec, nothing else. */
class RawPeer {
  readonly socket: net.Socket;
  readonly messages: Message[] = [];
  closed = false;
  private readonly framer = new Framer();
  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.framer.push(d);
      for (let b = this.framer.next(); b !== null; b = this.framer.next()) this.messages.push(decodeMessage(b));
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  static async connect(from: string, to: string, opts: { rcvbuf?: number } = {}): Promise<RawPeer> {
    let s: net.Socket;
    if (opts.rcvbuf !== undefined) {
      // A small receive buffer set before connect() keeps the advertised window small,
      // so a peer that stops reading pushes back on the sender after a few KiB.
      const fd = createSocket(4);
      const c = sockoptConstants();
      setIntOpt(fd, c.SOL_SOCKET, 8 /* SO_RCVBUF on Linux */, opts.rcvbuf);
      bindSocket(fd, from);
      s = new net.Socket({ fd, readable: true, writable: true });
      s.connect({ host: to, port: PORT });
    } else {
      s = net.connect({ host: to, port: PORT, localAddress: from });
    }
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    return new RawPeer(s);
  }

  open(asn: number, id: string): void {
    this.socket.write(
      encodeMessage({
        type: 'OPEN',
        version: 4,
        myAs: asn,
        holdTime: 90,
        bgpId: parseIpv4(id),
        capabilities: buildCapabilities({ localAs: asn, families: [0x101, 0x201] }),
      }),
    );
  }

  has(type: Message['type']): boolean {
    return this.messages.some((m) => m.type === type);
  }

  notification(): Extract<Message, { type: 'NOTIFICATION' }> | undefined {
    return this.messages.find((m): m is Extract<Message, { type: 'NOTIFICATION' }> => m.type === 'NOTIFICATION');
  }
}

// ---------------------------------------------------------------- the scene
// A, B, C: an iBGP mesh in AS 65000 (the higher address of each pair is passive,
// as in Calico's mesh). D: AS 65001, eBGP to A.
const A = speaker(1, 65000, [peer(2, 65000), peer(3, 65000), peer(4, 65001)]);
const B = speaker(2, 65000, [peer(1, 65000, { passive: true }), peer(3, 65000)]);
const C = speaker(3, 65000, [peer(1, 65000, { passive: true }), peer(2, 65000, { passive: true })]);
const D = speaker(4, 65001, [peer(1, 65000, { passive: true })]);

const bestAtC: BestEvent[] = [];
C.on('best', (changes: BestEvent[]) => bestAtC.push(...changes));

t.test('iBGP mesh of three and an eBGP neighbour', async (t) => {
  await Promise.all([A, B, C, D].map((s) => s.start()));
  A.originate('10.1.1.0/24');
  A.originate('fd00:1::/64');
  B.originate('10.1.2.0/24', { localPref: 200, med: 77, communities: [65000 * 65536 + 2] });
  B.originate('fd00:2::/64');
  C.originate('10.1.3.0/24');
  C.originate('fd00:3::/64');
  D.originate('10.4.0.0/16', { med: 50, communities: [65001 * 65536 + 7], largeCommunities: [[65001, 1, 2]] });
  D.originate('fd00:4::/48');

  await until(() => [A, B, C].every((s) => [1, 2, 3].every((n) => route(s, `10.1.${n}.0/24`) && route(s, `fd00:${n}::/64`))), 'mesh convergence', 15_000);
  for (const [s, n] of [[A, 1], [B, 2], [C, 3]] as const) {
    for (const m of [1, 2, 3].filter((x) => x !== n)) {
      const r4 = route(s, `10.1.${m}.0/24`);
      const r6 = route(s, `fd00:${m}::/64`);
      t.same(r4?.best.from, addr(m), `speaker ${n} learned 10.1.${m}.0/24 from ${m}`);
      // a local route without a next hop goes out with the session's address (IPv4) and the configured IPv6 next hop
      t.same(r4?.best.nextHops, [addr(m)], `next hop of 10.1.${m}.0/24 at ${n}`);
      t.same(r6?.best.nextHops, [`fd00::${m}`], `IPv6 next hop of fd00:${m}::/64 at ${n}`);
      t.same(r4?.best.asPath, [], 'iBGP leaves AS_PATH empty');
    }
  }
  t.equal(route(A, '10.1.2.0/24')?.best.localPref, 200, 'iBGP keeps LOCAL_PREF');
  t.equal(route(A, '10.1.2.0/24')?.best.med, 77, 'iBGP keeps MED');
  const peers = A.peersJson().peers;
  const pb = peers.find((p) => p.address === addr(2));
  t.equal(pb?.state, 'Established');
  t.same(pb?.families, ['ipv4-unicast', 'ipv6-unicast'], 'one session carries both families');
  t.equal(pb?.prefixes.accepted, 2, 'A accepted B\'s two prefixes');
  t.ok((pb?.messages.in.UPDATE ?? 0) >= 2, 'UPDATEs counted');

  // eBGP: D's routes at A and then at B; A's and B's routes at D.
  await until(() => route(B, '10.4.0.0/16') && route(D, '10.1.2.0/24') && route(D, 'fd00:3::/64'), 'eBGP propagation', 15_000);
  const atA = route(A, '10.4.0.0/16');
  t.same(atA?.best.asPath, [65001], 'D\'s AS prepended');
  t.same(atA?.best.nextHops, [addr(4)], 'eBGP next hop is the neighbour');
  t.equal(atA?.best.med, 50, 'MED set by the originating neighbour is received');
  t.equal(atA?.best.localPref, 100, 'eBGP routes get our default LOCAL_PREF');
  t.same(atA?.best.communities, ['65001:7']);
  t.same(atA?.best.largeCommunities, ['65001:1:2']);
  const atB = route(B, '10.4.0.0/16');
  t.same(atB?.best.asPath, [65001], 'iBGP passes the AS_PATH unchanged');
  t.same(atB?.best.nextHops, [addr(4)], 'iBGP keeps the eBGP next hop (no next-hop-self)');
  const atD = route(D, '10.1.2.0/24');
  t.same(atD?.best.asPath, [65000], 'our AS prepended towards eBGP');
  t.same(atD?.best.nextHops, [addr(1)], 'next hop self towards eBGP');
  t.equal(atD?.best.localPref, 100, 'D applies its own default: the LOCAL_PREF of 200 was stripped');
  t.equal(atD?.best.med, null, 'MED learned over iBGP is not passed to another AS');
  t.same(atD?.best.communities, ['65000:2'], 'communities pass');
  t.same(route(D, 'fd00:3::/64')?.best.nextHops, ['fd00::1'], 'IPv6 next hop self towards eBGP');
  t.notOk(route(D, '10.4.0.0/16')?.paths.some((p) => p.from !== 'local'), 'D\'s own route is not sent back to it');
});

t.test('withdrawals propagate', async (t) => {
  t.ok(B.withdraw('10.1.2.0/24'));
  await until(() => !route(A, '10.1.2.0/24') && !route(C, '10.1.2.0/24') && !route(D, '10.1.2.0/24'), 'withdrawal of 10.1.2.0/24', 10_000);
  D.withdraw('fd00:4::/48');
  await until(() => !route(A, 'fd00:4::/48') && !route(B, 'fd00:4::/48'), 'IPv6 withdrawal through A', 10_000);
  t.ok(route(C, '10.1.1.0/24'), 'other routes stay');
  // the FIB's feed at C: the route appeared with its next hop, then went
  const events = bestAtC.filter((e) => e.prefix === '10.1.2.0/24');
  t.same(events.at(0)?.nextHops, [addr(2)], 'best-path event with the next hop');
  t.equal(events.at(0)?.attributes?.localPref, 200, 'best-path event carries the attributes');
  t.equal(events.at(-1)?.attributes, null, 'best-path event for the withdrawal');
  t.notOk(bestAtC.some((e) => e.prefix === '10.1.3.0/24' && !e.local), 'C\'s own route is reported as local');
});

t.test('peers added, changed and removed live; the others are not reset', async (t) => {
  const before = [2, 3, 4].map((n) => A.peerInfo(addr(n)));
  const E = speaker(5, 65005, [peer(1, 65000)]);
  E.originate('10.5.0.0/16');
  await E.start();
  A.addPeer(peer(5, 65005, { passive: true }));
  await until(() => established(A, 5) && route(A, '10.5.0.0/16') && route(E, '10.1.3.0/24'), 'new peer E', 15_000);
  // A passes E's route on in its next pump turn: wait for it at C rather than race it (seen to lose under load)
  await until(() => route(C, '10.5.0.0/16') !== undefined, 'E\'s route at C', 10_000);
  t.same(route(C, '10.5.0.0/16')?.best.asPath, [65005], 'E\'s route reaches the mesh');

  // policy only: stop exporting 10.1.3.0/24 to D, without a reset
  const dConn = A.peerInfo(addr(4))?.connection;
  const hidden = parsePrefixText('10.1.3.0/24');
  A.updatePeer(peer(4, 65001, { exportPolicy: (p) => (p === hidden ? { accept: false } : { accept: true }) }));
  await until(() => !route(D, '10.1.3.0/24'), 'export policy withdraws 10.1.3.0/24 at D', 10_000);
  t.ok(route(D, '10.1.1.0/24'), 'the rest still exported');
  t.equal(A.peerInfo(addr(4))?.connection, dConn, 'policy change kept D\'s session');
  // import policy (one that throws, which rejects): applied at A after a ROUTE-REFRESH, still no reset
  A.updatePeer(peer(4, 65001, { importPolicy: () => {
    throw new Error('broken policy');
  } }));
  await until(() => !route(A, '10.4.0.0/16'), 'import policy applied via ROUTE-REFRESH', 10_000);
  t.equal(A.peerInfo(addr(4))?.connection, dConn, 'import policy change kept D\'s session');
  t.ok((A.peerInfo(addr(4))?.counters.messagesOut['ROUTE-REFRESH'] ?? 0) >= 1, 'ROUTE-REFRESH sent');
  A.updatePeer(peer(4, 65001));
  await until(() => route(A, '10.4.0.0/16') && route(D, '10.1.3.0/24'), 'policies lifted', 10_000);

  A.removePeer(addr(5));
  await until(() => E.peerInfo(addr(1))?.counters.notificationsIn[`${ErrorCode.Cease}/${CeaseSubcode.PeerDeconfigured}`] === 1, 'E told Cease / Peer De-configured', 10_000);
  await until(() => !route(B, '10.5.0.0/16') && !route(D, '10.5.0.0/16'), 'E\'s routes gone with it', 10_000);
  t.notOk(A.peerAddresses().includes(addr(5)), 'E no longer configured at A');

  // a session parameter change resets that peer alone, with Cease / Other Configuration Change
  A.updatePeer(peer(4, 65001, { holdTime: 30 }));
  await until(() => D.peerInfo(addr(1))?.counters.notificationsIn[`${ErrorCode.Cease}/${CeaseSubcode.OtherConfigurationChange}`] === 1, 'D told Cease / Other Configuration Change', 10_000);
  await until(() => established(A, 4) && route(D, '10.1.3.0/24'), 'D re-established', 15_000);

  const after = [2, 3].map((n) => A.peerInfo(addr(n)));
  for (const [i, n] of [2, 3].entries()) {
    t.equal(after[i]?.connection, before[i]?.connection, `A's session to ${n} kept its connection`);
    t.equal(after[i]?.since.getTime(), before[i]?.since.getTime(), `A's session to ${n} kept its since`);
    t.equal(after[i]?.counters.established, 1, `A's session to ${n} was established once`);
  }
  await E.stop();
});

t.test('a connection from an unconfigured address gets Cease / Connection Rejected', async (t) => {
  const raw = await RawPeer.connect(addr(99), addr(1));
  await until(() => raw.closed, 'closed by the speaker', 5000);
  const n = raw.notification();
  t.equal(n?.code, ErrorCode.Cease);
  t.equal(n?.subcode, CeaseSubcode.ConnectionRejected);
  t.ok(established(A, 2) && established(A, 3), 'the mesh is untouched');
});

t.test('collision: both ends dial at once, one session survives', async (t) => {
  const F = speaker(6, 65000, []);
  const G = speaker(7, 65000, []);
  await Promise.all([F.start(), G.start()]);
  // both listen before either dials, then both dial in the same turn
  F.addPeer(peer(7, 65000));
  G.addPeer(peer(6, 65000));
  await until(() => established(F, 7) && established(G, 6), 'F-G session', 15_000);
  await new Promise((r) => setTimeout(r, 1500)); // time for a second session to show up, were there one
  const f = F.peerInfo(addr(7));
  const g = G.peerInfo(addr(6));
  t.equal(f?.state, 'Established');
  t.equal(g?.state, 'Established');
  t.equal(f?.counters.established, 1, 'F established exactly one session');
  t.equal(g?.counters.established, 1, 'G established exactly one session');
  const dumps = (f?.counters.notificationsOut['6/7'] ?? 0) + (g?.counters.notificationsOut['6/7'] ?? 0);
  t.ok(dumps >= 1, `the losing connection was closed with Cease / Connection Collision Resolution (${dumps})`);
  F.originate('10.6.0.0/16');
  await until(() => route(G, '10.6.0.0/16'), 'routes flow over the surviving session', 5000);
  await Promise.all([F.stop(), G.stop()]);
});

t.test('a peer that stops reading does not hold the others up, and costs bounded memory', async (t) => {
  const H = 8;
  const X = speaker(9, 65000, [peer(H, 65099, { passive: true }), peer(10, 65000, { passive: true })]);
  const Y = speaker(10, 65000, [peer(9, 65000)]);
  await Promise.all([X.start(), Y.start()]);
  const raw = await RawPeer.connect(addr(H), addr(9), { rcvbuf: 4096 });
  raw.open(65099, '10.0.0.8');
  await until(() => raw.has('OPEN'), 'X\'s OPEN', 5000);
  raw.socket.write(encodeMessage({ type: 'KEEPALIVE' }));
  await until(() => established(X, H) && established(X, 10), 'both sessions of X', 10_000);
  raw.socket.pause(); // from now on H reads nothing
  // ...but it still talks: a peer that stops reading is not a silent one. Without KEEPALIVEs X's hold timer (30 s,
  // the speakers' default here) ends the session whenever this test runs longer than that on a loaded machine.
  const keepalive = setInterval(() => raw.socket.write(encodeMessage({ type: 'KEEPALIVE' })), 5000);
  t.teardown(() => clearInterval(keepalive));

  // distinct MEDs: one attribute set, hence one UPDATE, per prefix (~60 octets each, ~6 MB in all)
  const t0 = Date.now();
  const N = 100_000;
  for (let i = 0; i < N; i++) X.originate(`${11 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`, { med: i });
  let peak = 0;
  let blocked = false;
  await until(
    () => {
      const info = X.peerInfo(addr(H));
      peak = Math.max(peak, info?.writeBuffered ?? 0);
      blocked ||= info?.writeBlocked ?? false;
      return Y.rib.locSize >= N;
    },
    'Y receives every prefix while H is stuck',
    120_000,
    20,
  );
  const info = X.peerInfo(addr(H));
  t.ok(blocked, 'the stuck peer\'s socket pushed back');
  t.comment(`stuck peer: ${info?.counters.messagesOut.UPDATE} UPDATEs written, peak buffered ${peak}, took ${Date.now() - t0} ms`);
  t.equal(info?.state, 'Established', 'the stuck peer is still Established (the send hold timer is minutes)');
  t.ok(peak < 1 << 20, `user-space write buffer for the stuck peer stayed under 1 MiB (peak ${peak} octets)`);
  t.ok((info?.counters.messagesOut.UPDATE ?? 0) < N, 'the stuck peer did not get everything written to it');
  clearInterval(keepalive);
  raw.socket.destroy();
  await Promise.all([X.stop(), Y.stop()]);
});

t.test('a malformed UPDATE resets only that session, with the right NOTIFICATION', async (t) => {
  A.addPeer(peer(11, 65011, { passive: true }));
  const raw = await RawPeer.connect(addr(11), addr(1));
  raw.open(65011, '10.0.0.11');
  await until(() => raw.has('OPEN'), 'A\'s OPEN', 5000);
  raw.socket.write(encodeMessage({ type: 'KEEPALIVE' }));
  await until(() => established(A, 11), 'raw session', 5000);
  const before = [2, 3, 4].map((n) => A.peerInfo(addr(n))?.connection);
  // UPDATE whose Total Path Attribute Length (100) overruns the message: RFC 4271 §6.3 / RFC 7606 §4 session reset, 3/1
  const body = Buffer.from([0, 0, 0, 100, 0x40, 1, 1, 0]);
  const msg = Buffer.concat([Buffer.alloc(16, 0xff), Buffer.from([0, 19 + body.length, 2]), body]);
  raw.socket.write(msg);
  await until(() => raw.closed, 'A closes the session', 5000);
  const n = raw.notification();
  t.equal(n?.code, ErrorCode.UpdateMessage, 'UPDATE Message Error');
  t.equal(n?.subcode, 1, 'Malformed Attribute List');
  t.match(A.peerInfo(addr(11))?.info, /sent NOTIFICATION/);
  t.same([2, 3, 4].map((n) => A.peerInfo(addr(n))?.connection), before, 'the other sessions are untouched');
  t.ok([2, 3, 4].every((n) => established(A, n)), JSON.stringify(A.peersJson().peers.map((p) => [p.address, p.state, p.info, p.notifications])));
  A.removePeer(addr(11));
});

t.test('TCP MD5 and GTSM are applied to both dialled and accepted connections', async (t) => {
  const P = speaker(12, 65000, [
    peer(13, 65000, { md5Key: 'secret' }),
    peer(14, 65000, { md5Key: 'secret' }),
    peer(15, 65000, { ttlSecurity: 1 }),
    peer(16, 65000, { ttlSecurity: 1 }),
  ]);
  const Q = speaker(13, 65000, [peer(12, 65000, { passive: true, md5Key: Buffer.from('secret') })]);
  const R = speaker(14, 65000, [peer(12, 65000, { passive: true, md5Key: 'wrong' })]);
  const S = speaker(15, 65000, [peer(12, 65000, { passive: true, ttlSecurity: 1 })]);
  // U sends with the default TTL of 64: P, expecting 255 (one hop), drops its segments
  const U = speaker(16, 65000, [peer(12, 65000)]);
  await Promise.all([P, Q, R, S, U].map((s) => s.start()));
  await until(() => established(P, 13) && established(Q, 12), 'MD5 session with the right key', 10_000);
  await until(() => established(P, 15) && established(S, 12), 'GTSM session', 10_000);
  await new Promise((r) => setTimeout(r, 3000));
  t.notOk(established(P, 14) || established(R, 12), 'no session with a wrong MD5 key');
  t.notOk(established(P, 16) || established(U, 12), 'no session when the peer\'s TTL is below the GTSM minimum');
  t.equal(P.peerInfo(addr(14))?.counters.messagesIn.OPEN, 0, 'not a single message got through with the wrong key');
  await Promise.all([P, Q, R, S, U].map((s) => s.stop()));
});

t.test('a local AS override is what the peer sees', async (t) => {
  const V = speaker(17, 65000, [peer(18, 65077, { localAsn: 65050 })]);
  const W = speaker(18, 65077, [peer(17, 65050, { passive: true })]);
  V.originate('10.17.0.0/16');
  await Promise.all([V.start(), W.start()]);
  await until(() => route(W, '10.17.0.0/16'), 'route over the overridden AS', 10_000);
  t.same(route(W, '10.17.0.0/16')?.best.asPath, [65050], 'the AS prepended is the session\'s local AS');
  t.equal(W.peersJson().peers[0]?.asn, 65050);
  t.equal(V.peersJson().peers[0]?.localAsn, 65050);
  await Promise.all([V.stop(), W.stop()]);
});

t.test('RFC 8654 extended messages: offered by default, UPDATEs grow past 4096 octets only when both ends offer it', async (t) => {
  // 20,000 /32s behind one attribute set. A 4096-octet UPDATE holds about 800 of them, so without the capability
  // at least 25 UPDATEs are needed; with it, one UPDATE per 2,048-prefix batch of the outbound queue (about 10).
  const count = async (n1: number, n2: number, offer: boolean): Promise<number> => {
    const X = speaker(n1, 65000, [peer(n2, 65000)]);
    const Y = speaker(n2, 65000, [peer(n1, 65000, { passive: true, ...(offer ? {} : { extendedMessage: false }) })]);
    for (let i = 0; i < 20_000; i++) X.originate(`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
    await Promise.all([X.start(), Y.start()]);
    await until(() => Y.rib.locSize === 20_000, `all 20,000 prefixes at ${addr(n2)}`, 20_000);
    const updates = Y.peersJson().peers[0]?.messages.in.UPDATE ?? -1;
    await Promise.all([X.stop(), Y.stop()]);
    return updates;
  };
  const both = await count(19, 20, true);
  t.ok(both > 0 && both <= 16, `both ends offer it: ${both} UPDATEs for 20,000 prefixes`);
  const one = await count(21, 22, false);
  t.ok(one >= 25, `one end does not: ${one} UPDATEs (4096 octets at most)`);
});

t.test('stop() sends Cease / Administrative Shutdown with the message', async (t) => {
  await A.stop({ message: 'maintenance' });
  await until(() => B.peerInfo(addr(1))?.counters.notificationsIn['6/2'] === 1, 'B told of the shutdown', 5000).catch((e: unknown) => {
    t.comment(JSON.stringify(B.peersJson().peers));
    throw e;
  });
  t.match(B.peerInfo(addr(1))?.info, /maintenance/);
  await until(() => !route(B, '10.1.1.0/24') && !route(C, '10.1.1.0/24'), 'A\'s routes gone', 5000);
});
