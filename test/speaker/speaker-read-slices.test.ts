// Received input is handled in slices (bgp/speaker/read-slices.ts): a peer that sends a whole table in one burst
// does not hold the event loop until all of it is parsed. Over loopback (no root): a hand-driven peer writes
// thousands of UPDATEs in one go; timers and immediates must get turns while the speaker is half way through them,
// every route must arrive, in order (a withdrawal at the end of the burst wins over the announcement before it), the
// socket must read again once the backlog is handled (a later UPDATE arrives), and a second peer's session and
// routes are handled meanwhile, not after the burst.
import t from 'tap';
import net from 'node:net';
import {
  buildCapabilities, DEFAULT_CONTEXT, encodeMessage, Framer, decodeMessage, packUpdates, packWithdrawals, parseIpv4,
  type Message, type PathAttributes, type Speaker,
} from '../../bgp/index.js';
import { until } from '../helpers/netns.js';
import { loopbackNet, loopbackSpeaker } from '../helpers/loopback.js';

const PORT = 24283;
const addr = loopbackNet();
const speakers: Speaker[] = [];
t.teardown(async () => {
  for (const s of speakers) await s.stop({ message: 'test over' });
});

/** A hand-driven eBGP peer: raw TCP and our codec. */
async function rawPeer(from: string, to: string, asn: number): Promise<{ socket: net.Socket; messages: Message[] }> {
  const socket = net.connect({ host: to, port: PORT, localAddress: from });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const messages: Message[] = [];
  const framer = new Framer();
  socket.on('data', (d: Buffer) => {
    framer.push(d);
    for (let b = framer.next(); b !== null; b = framer.next()) messages.push(decodeMessage(b));
  });
  socket.on('error', () => {});
  socket.write(encodeMessage({
    type: 'OPEN', version: 4, myAs: asn, holdTime: 90, bgpId: parseIpv4(from), capabilities: buildCapabilities({ localAs: asn, families: [0x101] }),
  }));
  await until(() => messages.some((m) => m.type === 'OPEN'), 'the speaker\'s OPEN', 5000);
  socket.write(encodeMessage({ type: 'KEEPALIVE' }));
  return { socket, messages };
}

const attrs = (nh: string, asn: number): PathAttributes => ({ origin: 0, asPath: [{ type: 2, asns: [asn] }], nextHop: nh });
/** n /32s from 10.(64+base).0.0 upwards, as Prefix4 keys */
const block = (base: number, n: number): number[] => Array.from({ length: n }, (_, i) => ((((10 << 24) | ((64 + base) << 16)) >>> 0) + i) * 64 + 32);

/** Turns of the event loop (timers and immediates) seen while `during()` holds, until `done()` (bounded). */
async function turnsWhile(during: () => boolean, done: () => boolean, limitMs = 60_000): Promise<{ timers: number; immediates: number }> {
  const seen = { timers: 0, immediates: 0 };
  const end = Date.now() + limitMs;
  await new Promise<void>((resolve) => {
    const imm = (): void => {
      if (during()) seen.immediates++;
      if (done() || Date.now() > end) resolve();
      else setImmediate(imm);
    };
    const tim = (): void => {
      if (during()) seen.timers++;
      if (!done() && Date.now() <= end) setTimeout(tim, 0);
    };
    setImmediate(imm);
    setTimeout(tim, 0);
  });
  return seen;
}

for (const [name, sliceMs] of [['one message per slice', 0], ['the default slice', undefined]] as const) {
  t.test(`a burst of UPDATEs is handled over many turns of the event loop (${name})`, async (t) => {
    const n = sliceMs === 0 ? 1 : 2;
    const X = loopbackSpeaker(addr, PORT, 10 * n, 65000, [
      { address: addr(10 * n + 1), port: PORT, asn: 65001, passive: true },
      { address: addr(10 * n + 2), port: PORT, asn: 65002, passive: true },
    ], sliceMs === undefined ? {} : { readSliceMs: sliceMs });
    speakers.push(X);
    X.on('best', () => {}); // a FIB consumer, as skeind has
    await X.start();
    const A = await rawPeer(addr(10 * n + 1), addr(10 * n), 65001);
    const B = await rawPeer(addr(10 * n + 2), addr(10 * n), 65002);
    await until(() => X.peerInfo(addr(10 * n + 1))?.state === 'Established' && X.peerInfo(addr(10 * n + 2))?.state === 'Established', 'both sessions', 10_000);

    // ~4 KiB UPDATEs of ~1,000 /32s: 200k prefixes, then the first 1,000 withdrawn, all in one write
    const N = 200_000;
    const prefixes = block(0, N);
    const wire = Buffer.concat([
      ...packUpdates(attrs(addr(10 * n + 1), 65001), { afi: 1, safi: 1, prefixes, pathIds: null }, DEFAULT_CONTEXT),
      ...packWithdrawals({ afi: 1, safi: 1, prefixes: prefixes.slice(0, 1000), pathIds: null }, DEFAULT_CONTEXT),
    ]);
    const received = (): number => X.peerInfo(addr(10 * n + 1))?.counters.messagesIn.UPDATE ?? 0;
    const before = received();
    const msgs = Math.ceil(wire.length / 4096);
    A.socket.write(wire);
    // meanwhile the other peer sends one small UPDATE: it must not wait for the whole burst
    let bAt = -1;
    const small = block(200, 10);
    setImmediate(() => B.socket.write(Buffer.concat(packUpdates(attrs(addr(10 * n + 2), 65002), { afi: 1, safi: 1, prefixes: small, pathIds: null }, DEFAULT_CONTEXT))));
    const seen = await turnsWhile(
      () => {
        const r = received() - before;
        if (bAt < 0 && X.rib.route(small[9]!) !== null) bAt = r;
        return r > 0 && r < msgs - 10;
      },
      // the last withdrawal of the burst is the last message: done once it is applied
      () => X.rib.route(prefixes[N - 1]!) !== null && X.rib.route(prefixes[999]!) === null && X.rib.route(small[9]!) !== null,
    );
    t.comment(`turns while the burst was half handled: ${seen.timers} timer, ${seen.immediates} immediate; the other peer's UPDATE handled after ${bAt} of ~${msgs} UPDATEs`);
    t.ok(seen.timers >= 3, `timers ran while the burst was being handled (${seen.timers})`);
    t.ok(seen.immediates >= 3, `immediates ran while the burst was being handled (${seen.immediates})`);
    if (sliceMs === 0) {
      // one message per slice: a turn of the loop per UPDATE (read all at once, a poll takes up to 32 chunks of 64 KiB)
      t.ok(seen.immediates >= msgs / 4, `a turn of the loop every few UPDATEs (${seen.immediates} turns for ~${msgs})`);
      t.ok(bAt >= 0 && bAt < msgs / 4, `the other peer's UPDATE was handled early in the burst (after ${bAt} of ~${msgs})`);
    }
    t.equal(X.rib.route(prefixes[0]!), null, 'the withdrawal at the end of the burst came after the announcement (order kept)');
    t.equal(X.rib.route(prefixes[999]!), null);
    t.not(X.rib.route(prefixes[1000]!), null);
    t.equal(X.rib.peerStats(1).received, N - 1000, 'every other prefix of the burst is there');
    // the socket reads again: one more UPDATE after the backlog arrives
    const late = block(100, 1);
    A.socket.write(Buffer.concat(packUpdates(attrs(addr(10 * n + 1), 65001), { afi: 1, safi: 1, prefixes: late, pathIds: null }, DEFAULT_CONTEXT)));
    await until(() => X.rib.route(late[0]!) !== null, 'an UPDATE after the burst', 10_000);
    t.equal(X.peerInfo(addr(10 * n + 1))?.state, 'Established');
    t.equal(X.peerInfo(addr(10 * n + 2))?.state, 'Established');
    A.socket.destroy();
    B.socket.destroy();
    await X.stop();
  });
}
