// Graceful restart (RFC 4724, RFC 8538) on loopback, no root: a Speaker is the
// receiving speaker ("helper"); the restarting peer is driven by hand over raw
// TCP with our codec, so each case controls exactly what the peer's OPEN says
// (R/F/N bits, restart time), which UPDATEs and End-of-RIB it sends, and how
// the session ends (TCP reset, NOTIFICATION, Hard Reset).
import t from 'tap';
import {
  CeaseSubcode,
  ErrorCode,
  Speaker,
  type EndOfRibEvent,
  type Message,
  type PathAttributes,
  type StaleEvent,
} from '../../bgp/index.js';
import { until } from '../helpers/netns.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { loopbackNet } from '../helpers/loopback.js';

const PORT = 24279;
const addr = loopbackNet();

interface Gr {
  restartTime: number;
  restarting?: boolean;
  forwardingState?: boolean;
  notification?: boolean;
}

/** A hand-driven peer n in AS 65001 (eBGP to the speaker), with the given GR capability or none. */
const session = (n: number, gr: Gr | null): Promise<RawPeer> =>
  RawPeer.session({ host: addr(1), port: PORT, localAddress: addr(n), asn: 65001, routerId: `10.0.0.${n}`, ...(gr ? { gracefulRestart: gr } : {}) });
const EBGP: PathAttributes = { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '192.0.2.1' };

const speakers: Speaker[] = [];
t.teardown(async () => {
  for (const s of speakers) await s.stop();
});

function helper(peers: number[], o: { stalePathTime?: number; restarting?: boolean; forwardingState?: boolean } = {}): {
  s: Speaker;
  stale: StaleEvent[];
  eor: EndOfRibEvent[];
} {
  const s = new Speaker({
    localAsn: 65000,
    routerId: '10.0.0.1',
    listenAddress: addr(1),
    listenPort: PORT,
    holdTime: 30,
    connectRetryTime: 1,
    idleHold: { initial: 1, max: 1 },
    ...o,
    peers: peers.map((n) => ({ address: addr(n), port: PORT, asn: 65001, passive: true, restartTime: 90 })),
  });
  s.on('log', () => {});
  const stale: StaleEvent[] = [];
  const eor: EndOfRibEvent[] = [];
  s.on('stale', (e: StaleEvent) => stale.push(e));
  s.on('endOfRib', (e: EndOfRibEvent) => eor.push(e));
  speakers.push(s);
  return { s, stale, eor };
}

const has = (s: Speaker, prefix: string): boolean => s.routesJson().routes.some((r) => r.prefix === prefix);
const up = (s: Speaker, n: number): boolean => s.peerInfo(addr(n))?.state === 'Established';
const down = (s: Speaker, n: number): boolean => s.peerInfo(addr(n))?.state !== 'Established';

t.test('our OPEN carries the graceful restart capability: restart time, R, F and N bits', async (t) => {
  const { s } = helper([2], { restarting: true, forwardingState: true });
  await s.start();
  let r = await session(2, null);
  await until(() => up(s, 2), 'session', 5000);
  let gr = r.open()?.capabilities.find((c) => c.name === 'graceful-restart');
  t.ok(gr, 'capability 64 present');
  if (gr?.name === 'graceful-restart') {
    t.equal(gr.restartTime, 90, 'the peer\'s configured restart time');
    t.equal(gr.restarting, true, 'R: started after a restart');
    t.equal(gr.notification, true, 'N (RFC 8538)');
    t.same(gr.families.map((f) => [f.afi, f.safi, f.forwardingState]), [[1, 1, true], [2, 1, true]], 'F for both unicast families');
  }
  s.restartComplete();
  r.reset();
  await until(() => down(s, 2), 'session gone', 5000);
  await new Promise((res) => setTimeout(res, 1200)); // idle hold
  r = await session(2, null);
  gr = r.open()?.capabilities.find((c) => c.name === 'graceful-restart');
  t.equal(gr?.name === 'graceful-restart' && gr.restarting, false, 'R cleared once the restart is complete');
  r.reset();
  await s.stop();
});

t.test('helper: routes of a peer that drops its TCP session stay, marked stale; End-of-RIB sweeps what was not re-announced', async (t) => {
  const { s, stale, eor } = helper([3]);
  await s.start();
  let r = await session(3, { restartTime: 60, forwardingState: true, notification: true });
  await until(() => up(s, 3), 'session', 5000);
  r.announce(['10.3.1.0/24', '10.3.2.0/24'], EBGP);
  r.endOfRib();
  await until(() => has(s, '10.3.1.0/24') && has(s, '10.3.2.0/24'), 'routes learned', 5000);
  await until(() => eor.length === 1, 'End-of-RIB event', 5000);
  t.same(eor[0], { peer: addr(3), afi: 1, safi: 1 }, 'the End-of-RIB is reported, not dropped');

  r.reset();
  await until(() => down(s, 3), 'session down', 5000);
  await until(() => stale.some((e) => e.action === 'retained'), 'retained', 5000);
  t.ok(has(s, '10.3.1.0/24') && has(s, '10.3.2.0/24'), 'routes kept while the peer restarts');
  t.same(s.staleFamilies(addr(3)).sort(), [0x101, 0x201], 'both families stale');

  await new Promise((res) => setTimeout(res, 1200)); // the speaker's idle hold
  r = await session(3, { restartTime: 60, restarting: true, forwardingState: true, notification: true });
  await until(() => up(s, 3), 'session back', 5000);
  r.announce(['10.3.1.0/24'], EBGP);
  // give the UPDATE time to land before anything could sweep: the stale route must still be there
  await new Promise((res) => setTimeout(res, 300));
  t.ok(has(s, '10.3.2.0/24'), 'a stale route stays until End-of-RIB');
  r.endOfRib();
  await until(() => !has(s, '10.3.2.0/24'), 'the route not re-announced is swept on End-of-RIB', 5000);
  t.ok(has(s, '10.3.1.0/24'), 're-announced route kept');
  t.same(s.staleFamilies(addr(3)), [0x201], 'IPv6 still waits for its End-of-RIB');
  t.ok(stale.some((e) => e.action === 'swept' && e.reason === 'End-of-RIB' && e.paths === 1), 'one path swept on End-of-RIB');
  r.reset();
  await s.stop();
});

t.test('helper: the restart timer sweeps when the peer does not come back', async (t) => {
  const { s, stale } = helper([4]);
  await s.start();
  const r = await session(4, { restartTime: 1, forwardingState: true });
  await until(() => up(s, 4), 'session', 5000);
  r.announce(['10.4.1.0/24'], EBGP);
  await until(() => has(s, '10.4.1.0/24'), 'route learned', 5000);
  r.reset();
  await until(() => stale.some((e) => e.action === 'retained'), 'retained', 5000);
  t.ok(has(s, '10.4.1.0/24'), 'kept during the restart time');
  await until(() => !has(s, '10.4.1.0/24'), 'swept after the 1 s restart time', 5000);
  t.ok(stale.some((e) => e.action === 'swept' && /restart time/.test(e.reason)), 'swept by the restart timer');
  await s.stop();
});

t.test('helper: the stale-path timer sweeps when the peer comes back but sends no End-of-RIB', async (t) => {
  const { s } = helper([5], { stalePathTime: 1 });
  await s.start();
  let r = await session(5, { restartTime: 60, forwardingState: true });
  await until(() => up(s, 5), 'session', 5000);
  r.announce(['10.5.1.0/24'], EBGP);
  await until(() => has(s, '10.5.1.0/24'), 'route learned', 5000);
  r.reset();
  await until(() => down(s, 5), 'down', 5000);
  await new Promise((res) => setTimeout(res, 1200));
  r = await session(5, { restartTime: 60, restarting: true, forwardingState: true });
  await until(() => up(s, 5), 'session back', 5000);
  t.ok(has(s, '10.5.1.0/24'), 'still there right after the new session');
  await until(() => !has(s, '10.5.1.0/24'), 'swept by the stale-path timer', 5000);
  r.reset();
  await s.stop();
});

t.test('helper: a new OPEN without the F bit flushes that family at once (RFC 4724 §4.2)', async (t) => {
  const { s } = helper([6]);
  await s.start();
  let r = await session(6, { restartTime: 60, forwardingState: true });
  await until(() => up(s, 6), 'session', 5000);
  r.announce(['10.6.1.0/24'], EBGP);
  await until(() => has(s, '10.6.1.0/24'), 'route learned', 5000);
  r.reset();
  await until(() => down(s, 6), 'down', 5000);
  t.ok(has(s, '10.6.1.0/24'), 'kept while down');
  await new Promise((res) => setTimeout(res, 1200));
  r = await session(6, { restartTime: 60, restarting: true, forwardingState: false });
  await until(() => up(s, 6), 'session back', 5000);
  await until(() => !has(s, '10.6.1.0/24'), 'flushed: the peer lost its forwarding state', 5000);
  r.reset();
  await s.stop();
});

t.test('NOTIFICATION: kept with the N bit on both sides, flushed without it, flushed on Hard Reset', async (t) => {
  const { s } = helper([7, 8, 9]);
  await s.start();
  const cases: [number, Gr, number, boolean, string][] = [
    [7, { restartTime: 60, forwardingState: true, notification: true }, CeaseSubcode.AdministrativeReset, true, 'N on both sides: a Cease keeps the routes (RFC 8538 §2)'],
    [8, { restartTime: 60, forwardingState: true, notification: false }, CeaseSubcode.AdministrativeReset, false, 'no N from the peer: a NOTIFICATION ends graceful restart (RFC 4724 §4.2)'],
    [9, { restartTime: 60, forwardingState: true, notification: true }, CeaseSubcode.HardReset, false, 'Hard Reset flushes (RFC 8538 §3)'],
  ];
  for (const [n, gr, subcode, kept, what] of cases) {
    const r = await session(n, gr);
    await until(() => up(s, n), `session ${n}`, 5000);
    const p = `10.${n}.1.0/24`;
    r.announce([p], EBGP);
    await until(() => has(s, p), `route from ${n}`, 5000);
    r.notify(ErrorCode.Cease, subcode);
    await until(() => down(s, n), `session ${n} down`, 5000);
    await new Promise((res) => setTimeout(res, 200));
    t.equal(has(s, p), kept, what);
  }
  await s.stop();
});

t.test('a peer without the capability: routes go as soon as the session does', async (t) => {
  const { s, stale } = helper([10]);
  await s.start();
  const r = await session(10, null);
  await until(() => up(s, 10), 'session', 5000);
  r.announce(['10.10.1.0/24'], EBGP);
  r.withdraw('10.10.9.0/24'); // nothing to withdraw: harmless
  await until(() => has(s, '10.10.1.0/24'), 'route learned', 5000);
  r.reset();
  await until(() => !has(s, '10.10.1.0/24'), 'flushed', 5000);
  t.equal(stale.length, 0, 'no graceful restart');
  await s.stop();
});

t.test('restarting: our UPDATEs wait for every peer\'s End-of-RIB (RFC 4724 §4.1), then go out with our End-of-RIB', async (t) => {
  const { s } = helper([11, 12], { restarting: true, forwardingState: true });
  await s.start();
  s.originate('10.99.0.0/24', { nextHop: '192.0.2.99' });
  t.ok(s.deferringUpdates, 'deferring after a restart');
  const r11 = await session(11, { restartTime: 60, forwardingState: true, notification: true });
  await until(() => up(s, 11), 'session 11', 5000);
  const r12 = await session(12, { restartTime: 60, forwardingState: true, notification: true });
  await until(() => up(s, 12), 'session 12', 5000);
  const updates = (r: RawPeer): number => r.messages.filter((m) => m.type === 'UPDATE').length;
  r11.endOfRib(1, 2);
  await new Promise((res) => setTimeout(res, 300));
  t.equal(updates(r11) + updates(r12), 0, 'nothing sent while peer 12 has not sent End-of-RIB');
  t.ok(s.deferringUpdates, 'still deferring');
  r12.endOfRib(1, 2);
  await until(() => !s.deferringUpdates, 'deferral over', 5000);
  for (const [n, r] of [[11, r11], [12, r12]] as const) {
    await until(() => updates(r) >= 3, `peer ${n}: our route and two End-of-RIBs`, 5000);
    const u = r.messages.filter((m): m is Extract<Message, { type: 'UPDATE' }> => m.type === 'UPDATE');
    const firstEor = u.findIndex((m) => m.nlri.prefixes.length === 0 && m.withdrawn.prefixes.length === 0 && m.mpReach === undefined);
    const route = u.findIndex((m) => m.nlri.prefixes.length > 0);
    t.ok(route >= 0 && route < firstEor, `peer ${n}: the route comes before End-of-RIB`);
  }
  r11.reset();
  r12.reset();
  await s.stop();
});

t.test('restarting: restartComplete() ends the deferral when a peer never sends End-of-RIB', async (t) => {
  const { s } = helper([13], { restarting: true });
  await s.start();
  s.originate('10.98.0.0/24', { nextHop: '192.0.2.98' });
  const r = await session(13, { restartTime: 60, notification: true });
  await until(() => up(s, 13), 'session', 5000);
  await new Promise((res) => setTimeout(res, 300));
  t.notOk(r.messages.some((m) => m.type === 'UPDATE'), 'held back');
  s.restartComplete();
  await until(() => r.messages.some((m) => m.type === 'UPDATE' && m.nlri.prefixes.length > 0), 'sent after restartComplete()', 5000);
  t.notOk(s.deferringUpdates, 'no longer deferring');
  r.reset();
  await s.stop();
});

t.test('skein to skein: one speaker dies and a new one (R bit) takes over; the other keeps, refreshes and sweeps', async (t) => {
  const mk = (restarting: boolean): Speaker => {
    const s = new Speaker({
      localAsn: 65001,
      routerId: '10.0.0.21',
      listenAddress: addr(21),
      listenPort: PORT,
      holdTime: 30,
      connectRetryTime: 1,
      idleHold: { initial: 1, max: 1 },
      restarting,
      forwardingState: true,
      peers: [{ address: addr(20), port: PORT, asn: 65000, restartTime: 30 }],
    });
    s.on('log', () => {});
    speakers.push(s);
    return s;
  };
  const A = new Speaker({
    localAsn: 65000,
    routerId: '10.0.0.20',
    listenAddress: addr(20),
    listenPort: PORT,
    holdTime: 30,
    connectRetryTime: 1,
    idleHold: { initial: 1, max: 1 },
    peers: [{ address: addr(21), port: PORT, asn: 65001, passive: true, restartTime: 30 }],
  });
  A.on('log', () => {});
  speakers.push(A);
  const gone: string[] = [];
  A.on('best', (evs: { prefix: string; attributes: unknown }[]) => {
    for (const e of evs) if (e.attributes === null) gone.push(e.prefix);
  });
  await A.start();
  A.originate('10.20.0.0/24', { nextHop: '192.0.2.20' });
  let B = mk(false);
  await B.start();
  B.originate('10.21.1.0/24', { nextHop: '192.0.2.21' });
  B.originate('10.21.2.0/24', { nextHop: '192.0.2.21' });
  await until(() => has(A, '10.21.1.0/24') && has(A, '10.21.2.0/24') && has(B, '10.20.0.0/24'), 'routes both ways', 10_000);

  // B "dies": its sessions close without a NOTIFICATION, as with kill -9.
  await B.stop({ notify: false });
  await until(() => down(A, 21), 'A sees B go', 5000);
  t.ok(has(A, '10.21.1.0/24') && has(A, '10.21.2.0/24'), 'A keeps B\'s routes');
  B = mk(true);
  await B.start();
  B.originate('10.21.1.0/24', { nextHop: '192.0.2.21' }); // 10.21.2.0/24 is no longer announced
  await until(() => up(A, 21), 'session back', 10_000);
  await until(() => !has(A, '10.21.2.0/24'), 'A sweeps the route B no longer has, after B\'s End-of-RIB', 10_000);
  await until(() => !B.deferringUpdates, 'B sent its routes once A\'s End-of-RIB came', 5000);
  t.ok(has(A, '10.21.1.0/24'), 'the refreshed route is there');
  t.ok(has(B, '10.20.0.0/24'), 'B re-learned A\'s route');
  t.same(gone, ['10.21.2.0/24'], 'the only best-path removal at A was the route that is really gone');
  await B.stop();
  await A.stop();
});
