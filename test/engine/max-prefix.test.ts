// Maximum prefixes (RFC 4486 §4, issue 15) at scale: a peer announces 1M routes against a limit of 100k. The UPDATE
// that would cross the limit must not be applied — no route beyond the limit ever enters the peer's Adj-RIB-In, the
// Loc-RIB or the FIB stream — and the session ends with Cease / Maximum Number of Prefixes Reached carrying
// AFI/SAFI and the limit. Another peer's session and routes stay as they were.
// Here in-process over loopback, the flooding peer a scripted BGP peer (test/helpers/raw-peer.ts) so the order of
// the prefixes is known: every RibCore.applyUpdate is watched, and after each the peer's count must be within the
// limit and none of the prefixes after the 100,000th may be held (both fail without the check before applying).
import t from 'tap';
import { encodeMessage, packUpdates, parsePrefixText, prefix4ToString, type Message, type PathAttributes, type Speaker } from '../../bgp/index.js';
import { until } from '../helpers/netns.js';
import { RAW_CTX, RawPeer } from '../helpers/raw-peer.js';
import { fibView, loopbackNet, loopbackSpeaker } from '../helpers/loopback.js';

const PORT = 24183;
const addr = loopbackNet();
const AS = 65000;
const N = 1_000_000;
const LIMIT = 100_000;
/** route i: a /32 in 10.128.0.0/9, in sending order */
const route = (i: number): number => parsePrefixText(`10.${128 + (i >>> 16)}.${(i >>> 8) & 255}.${i & 255}/32`) as number;

t.test(`1M routes against a limit of 100k: the crossing UPDATE is not applied, Cease/1, the other peer undisturbed`, async (t) => {
  const speakers: Speaker[] = [];
  t.teardown(async () => {
    for (const s of speakers) await s.stop();
  });
  const m = loopbackSpeaker(addr, PORT, 1, AS, [
    { address: addr(2), port: PORT, asn: AS, passive: true, maxPrefixes: { limit: LIMIT } },
    { address: addr(3), port: PORT, asn: AS, passive: true, maxPrefixes: { limit: LIMIT } },
  ]);
  const y = loopbackSpeaker(addr, PORT, 3, AS, [{ address: addr(1), port: PORT, asn: AS }]);
  speakers.push(m, y);
  const logs: { level: string; msg: string; peer?: string }[] = [];
  m.on('log', (l: { level: string; msg: string; peer?: string }) => logs.push(l));
  const { fib } = fibView(m);
  // every best-path change M reports (what the FIB would be told): the flooding peer's distinct prefixes
  const seen = new Set<string>();
  m.on('best', (cs: { prefix: string; attributes: unknown }[]) => {
    for (const c of cs) if (c.attributes !== null && c.prefix.startsWith('10.') && Number(c.prefix.split('.')[1]) >= 128) seen.add(c.prefix);
  });
  for (let i = 0; i < 5; i++) y.originate(`10.3.${i}.0/24`);
  await Promise.all([m.start(), y.start()]);
  await until(() => [0, 1, 2, 3, 4].every((i) => fib.has(`10.3.${i}.0/24`)), 'Y\'s routes at M', 15_000);
  const yConn = m.peerInfo(addr(3))?.connection;

  // Watch every UPDATE M applies: the flooding peer's count after it, and whether a route past the limit is held.
  const rib = m.rib;
  const xId = m.coreIdOf(addr(2))!;
  const beyond = new Set<number>();
  for (let i = LIMIT; i < LIMIT + 20_000; i++) beyond.add(route(i));
  let applied = 0;
  let maxHeld = 0;
  let beyondHeld = 0;
  const apply = rib.applyUpdate.bind(rib);
  rib.applyUpdate = (id, u) => {
    const r = apply(id, u);
    if (id === xId) {
      applied++;
      maxHeld = Math.max(maxHeld, rib.peerStats(id).received4);
      for (const p of u.nlri.prefixes) if (beyond.has(p as number) && rib.route(p) !== null) beyondHeld++;
    }
    return r;
  };

  const x = await RawPeer.session({ host: addr(1), port: PORT, localAddress: addr(2), asn: AS, routerId: '10.0.0.2', families: [0x101] });
  await until(() => m.peerInfo(addr(2))?.state === 'Established', 'X Established', 10_000);
  // 1M /32s, packed as the codec packs them (about 800 to a 4,096-octet UPDATE), written in order
  const prefixes = Array.from({ length: N }, (_, i) => route(i));
  const updates = packUpdates({ origin: 0, asPath: [], nextHop: addr(2), localPref: 100 }, { afi: 1, safi: 1, prefixes, pathIds: null }, RAW_CTX);
  t.ok(updates.length > 1000, `${updates.length} UPDATEs`);
  let written = 0;
  for (const b of updates) {
    if (x.closed) break;
    if (!x.socket.write(b)) await new Promise<void>((r) => { x.socket.once('drain', r); x.socket.once('close', r); });
    written++;
  }
  await until(() => x.closed, 'X closed by M', 30_000);
  t.ok(applied < updates.length / 5, `M stopped taking UPDATEs at the limit (${applied} of ${written} written applied)`);

  const n = x.messages.find((x): x is Extract<Message, { type: 'NOTIFICATION' }> => x.type === 'NOTIFICATION');
  t.equal(n?.code, 6, 'Cease');
  t.equal(n?.subcode, 1, 'Maximum Number of Prefixes Reached');
  t.same([...(n?.data ?? [])], [0, 1, 1, ...[...Buffer.from([0, 0, 0, 0])].map((_, i) => (LIMIT >>> (24 - 8 * i)) & 255)], 'data: AFI 1, SAFI 1, limit 100,000 (RFC 4486 §4)');
  // the UPDATE holding the 100,000th route would have crossed (it holds more after it): not applied, so X holds
  // less than the limit by at most one UPDATE's routes
  const perUpdate = Math.ceil(N / updates.length) + 1;
  t.ok(maxHeld <= LIMIT, `X held ${maxHeld} at most, never more than the limit`);
  t.ok(maxHeld > LIMIT - perUpdate, 'and every UPDATE before the crossing one was applied');
  t.equal(beyondHeld, 0, 'no route past the 100,000th was ever in the RIB');
  t.ok(seen.size <= LIMIT, `best-path stream: ${seen.size} of X's prefixes ever reported, never more than the limit`);
  t.notOk(seen.has(prefix4ToString(route(LIMIT))) || seen.has(prefix4ToString(route(LIMIT + 1))), 'the routes past the limit were never reported to the FIB');
  t.ok(logs.some((l) => l.level === 'error' && l.peer === addr(2) && /maximum ipv4-unicast prefixes exceeded/.test(l.msg)), 'the hit is logged');
  await until(() => ![...fib.keys()].some((p) => Number(p.split('.')[1]) >= 128), 'X\'s routes gone from M', 30_000);
  t.equal(m.rib.peerStats(xId).received, 0, 'nothing of X left');

  // Y: the same connection throughout, its routes still there
  t.equal(m.peerInfo(addr(3))?.state, 'Established', 'Y still Established');
  t.equal(m.peerInfo(addr(3))?.connection, yConn, 'Y\'s session was never reset');
  t.ok([0, 1, 2, 3, 4].every((i) => fib.has(`10.3.${i}.0/24`)), 'Y\'s routes stay');
  t.notOk(logs.some((l) => l.peer === addr(3) && (l.level === 'error' || /down|NOTIFICATION/.test(l.msg))), 'nothing logged against Y');
  x.socket.destroy();
});

t.test('an UPDATE that would cross the limit only with a withdrawal in it is applied; an announcement of held routes is not new', async (t) => {
  const m = loopbackSpeaker(addr, PORT + 1, 11, AS, [{ address: addr(12), port: PORT + 1, asn: AS, passive: true, maxPrefixes: { limit: 4 } }]);
  t.teardown(() => m.stop());
  const { events } = fibView(m);
  await m.start();
  const x = await RawPeer.session({ host: addr(11), port: PORT + 1, localAddress: addr(12), asn: AS, routerId: '10.0.0.12', families: [0x101] });
  t.teardown(() => x.socket.destroy());
  await until(() => m.peerInfo(addr(12))?.state === 'Established', 'Established', 10_000);
  const p = (i: number): string => `10.12.${i}.0/24`;
  const attrs: PathAttributes = { origin: 0, asPath: [], nextHop: addr(12), localPref: 100 };
  const accepted = (): number => m.rib.peerStats(m.coreIdOf(addr(12))!).received4;
  x.announce([p(0), p(1), p(2), p(3)], attrs);
  await until(() => accepted() === 4, 'four held (the limit)', 5000);
  // the same four again with other attributes: nothing new, within the limit
  x.announce([p(0), p(1), p(2), p(3)], { ...attrs, localPref: 200 });
  // one withdrawn and one new in one UPDATE: still four
  x.socket.write(encodeMessage({
    type: 'UPDATE',
    withdrawn: { afi: 1, safi: 1, prefixes: [parsePrefixText(p(0)) as number], pathIds: null },
    attributes: attrs,
    nlri: { afi: 1, safi: 1, prefixes: [parsePrefixText(p(4)) as number], pathIds: null },
  }));
  await until(() => m.rib.route(parsePrefixText(p(4)))?.best, 'the new route in', 5000);
  t.equal(accepted(), 4, 'four held');
  t.equal(m.peerInfo(addr(12))?.state, 'Established', 'still up: a withdrawal in the same UPDATE makes room');
  t.equal(m.rib.route(parsePrefixText(p(1)))?.best.attrs.attrs.localPref, 200, 'the re-announcement was applied');
  // two new against one withdrawn: five, over the limit: not applied, closed
  x.socket.write(encodeMessage({
    type: 'UPDATE',
    withdrawn: { afi: 1, safi: 1, prefixes: [parsePrefixText(p(1)) as number], pathIds: null },
    attributes: attrs,
    nlri: { afi: 1, safi: 1, prefixes: [parsePrefixText(p(5)) as number, parsePrefixText(p(6)) as number], pathIds: null },
  }));
  await until(() => x.closed, 'closed', 5000);
  t.match(x.messages.find((x) => x.type === 'NOTIFICATION'), { code: 6, subcode: 1 }, 'Cease/1');
  t.notOk(events.some((e) => e.prefix === p(5) || e.prefix === p(6)), 'the crossing UPDATE\'s routes were never taken');
  t.ok(events.some((e) => e.prefix === p(4)), 'while the earlier ones were');
});
