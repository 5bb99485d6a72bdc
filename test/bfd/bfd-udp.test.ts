// The BFD UDP driver on loopback (no root needed): two drivers on 127.0.0.1
// and 127.0.0.2 reach Up with negotiated timers; RFC 5881 §5's TTL check is
// made by the kernel (a datagram with TTL 254 never reaches the session, the
// same datagram with TTL 255 does); a driver that stops silently is detected
// by the other's detection timer, one that stops gracefully says AdminDown.
import t from 'tap';
import dgram from 'node:dgram';
import {
  BFD_SOURCE_PORT_MAX, BFD_SOURCE_PORT_MIN, BfdUdpDriver, decodeControl, encodeControl,
} from '../../bgp/index.js';
import type { BfdKey, BfdOutput, BfdParams, ControlPacket } from '../../bgp/index.js';
import { until } from '../helpers/netns.js';

const FAST: BfdParams = { desiredMinTxUs: 50_000, requiredMinRxUs: 50_000, idleTxUs: 1_000_000, detectMult: 3 };
// Ports of their own so that a BFD daemon on this host (or another test) is never disturbed.
const PORTS = { singleHopPort: 13784 + (process.pid % 1000), multihopPort: 14784 + (process.pid % 1000) };

type Ev = BfdOutput | { type: 'discard'; code: string; reason: string; from: string };

function driver(events: Ev[]): BfdUdpDriver {
  return new BfdUdpDriver({ ...PORTS, onEvent: (e) => events.push(e), onError: () => {} });
}

const keyAB: BfdKey = { peer: '127.0.0.2', local: '127.0.0.1', interface: 'lo', multihop: false };
const keyBA: BfdKey = { peer: '127.0.0.1', local: '127.0.0.2', interface: 'lo', multihop: false };

t.test('two drivers reach Up over loopback with negotiated timers', async (t) => {
  const ea: Ev[] = [];
  const eb: Ev[] = [];
  const a = driver(ea);
  const b = driver(eb);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await a.add(keyAB, FAST);
  await b.add(keyBA, { ...FAST, desiredMinTxUs: 80_000, detectMult: 4 });
  await until(() => a.manager.get(keyAB)?.state === 'Up' && b.manager.get(keyBA)?.state === 'Up', 'both Up', 10_000);
  await until(() => !a.manager.get(keyAB)?.pollActive && !b.manager.get(keyBA)?.pollActive, 'Polls answered', 5_000);
  const sa = a.manager.get(keyAB)!;
  t.equal(sa.txIntervalUs, 50_000, 'a sends every 50 ms (b accepts 50 ms)');
  t.equal(sa.detectTimeUs, 4 * 80_000, 'a detects in b.mult 4 × b tx 80 ms');
  t.equal(b.manager.get(keyBA)!.detectTimeUs, 3 * 50_000);
  const port = a.sourcePort(keyAB)!;
  t.ok(port >= BFD_SOURCE_PORT_MIN && port <= BFD_SOURCE_PORT_MAX, `source port ${port} in RFC 5881 §4's range`);
  t.ok(ea.some((e) => e.type === 'up'), 'an up event');
  // It stays Up: no false detection over a second of jittered packets.
  await new Promise((r) => setTimeout(r, 1000));
  t.notOk(ea.some((e) => e.type === 'down') || eb.some((e) => e.type === 'down'), 'no down event while both run');
});

t.test('RFC 5881 §5: a packet with TTL below 255 is dropped by the kernel', async (t) => {
  const events: Ev[] = [];
  const a = driver(events);
  const key: BfdKey = { peer: '127.0.0.3', local: '127.0.0.1', interface: 'lo', multihop: false };
  await a.add(key, FAST);
  const probe = dgram.createSocket('udp4');
  t.teardown(async () => {
    probe.close();
    await a.close();
  });
  await new Promise<void>((r) => probe.bind(0, '127.0.0.3', () => r()));
  const down: ControlPacket = {
    diag: 0, state: 'Down', poll: false, final: false, controlPlaneIndependent: false, demand: false, multipoint: false,
    detectMult: 3, myDiscriminator: 99, yourDiscriminator: 0, desiredMinTxUs: 1_000_000, requiredMinRxUs: 50_000,
    requiredMinEchoRxUs: 0,
  };
  const send = (ttl: number): Promise<void> =>
    new Promise((r) => {
      probe.setTTL(ttl);
      probe.send(encodeControl(down), PORTS.singleHopPort, '127.0.0.1', () => r());
    });
  for (let i = 0; i < 3; i++) await send(254);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(a.packetsReceived, 0, 'TTL 254: nothing reached the driver');
  t.equal(a.manager.get(key)?.state, 'Down', 'and the session did not move');
  await send(255);
  await until(() => a.manager.get(key)?.state === 'Init', 'Init after a TTL-255 packet', 5_000);
  t.equal(a.packetsReceived, 1);
  t.equal(a.manager.get(key)?.remoteDiscriminator, 99);
});

t.test('RFC 5883 multihop: port 4784 (here moved), no TTL floor by default', async (t) => {
  const ea: Ev[] = [];
  const eb: Ev[] = [];
  const a = driver(ea);
  const b = driver(eb);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await a.add({ ...keyAB, multihop: true, interface: '' }, FAST);
  await b.add({ ...keyBA, multihop: true, interface: '' }, FAST);
  await until(() => a.manager.sessions()[0]?.state === 'Up' && b.manager.sessions()[0]?.state === 'Up', 'multihop Up', 10_000);
  t.pass('multihop sessions Up');
});

t.test('a driver stopped silently is detected (diag 1); one stopped gracefully says AdminDown (diag 3)', async (t) => {
  const ea: Ev[] = [];
  const a = driver(ea);
  let b = driver([]);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await a.add(keyAB, FAST);
  await b.add(keyBA, FAST);
  await until(() => a.manager.get(keyAB)?.state === 'Up', 'Up', 10_000);
  const stoppedAt = performance.now();
  await b.close(); // like a crash: no AdminDown
  await until(() => ea.some((e) => e.type === 'down'), 'a sees b go', 10_000);
  const down = ea.find((e) => e.type === 'down');
  t.match(down, { type: 'down', diag: 1, reason: 'Control Detection Time Expired' });
  t.comment(`silent stop detected after ${(performance.now() - stoppedAt).toFixed(0)} ms (detection time ${3 * 50} ms)`);

  b = driver([]);
  await b.add(keyBA, FAST);
  await until(() => a.manager.get(keyAB)?.state === 'Up', 'Up again', 10_000);
  ea.length = 0;
  await b.close({ graceful: true });
  await until(() => ea.some((e) => e.type === 'down'), 'a hears AdminDown', 10_000);
  t.match(ea.find((e) => e.type === 'down'), { diag: 3, reason: 'Neighbor Signaled Session Down' });
});

t.test('the bytes on the wire are what the codec says', async (t) => {
  // Capture a's packets with a plain socket standing in for the peer.
  const sink = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  sink.on('message', (m, r) => {
    if (r.address === '127.0.0.1') got.push(m);
  });
  await new Promise<void>((r) => sink.bind(PORTS.singleHopPort, '127.0.0.4', () => r()));
  const a = driver([]);
  t.teardown(async () => {
    sink.close();
    await a.close();
  });
  await a.add({ peer: '127.0.0.4', local: '127.0.0.1', interface: 'lo', multihop: false }, FAST);
  await until(() => got.length >= 1, 'a packet', 5_000);
  const p = decodeControl(got[0]!);
  t.equal(p.state, 'Down');
  t.equal(p.yourDiscriminator, 0);
  t.equal(p.desiredMinTxUs, 1_000_000, '1 s while not Up');
  t.equal(p.requiredMinRxUs, 50_000);
  t.equal(p.requiredMinEchoRxUs, 0, 'no Echo');
  t.notOk(p.auth);
});
