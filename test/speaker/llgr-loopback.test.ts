// Long-lived graceful restart (RFC 9494) on loopback, no root. A Speaker is the helper; its peers are driven by hand
// over raw TCP with our codec, so each case controls what a peer's OPEN announces (GR, LLGR, F bits, times), which
// routes and communities it sends, and how its session ends. Timers are real but short (1-3 s): the speaker's
// graceful restart clocks are wall-clock timers, and the tests only wait for what they cause, never measure them.
import t from 'tap';
import fc from 'fast-check';
import {
  AttrTable,
  IPV4_UNICAST,
  IPV6_UNICAST,
  Path,
  RibCore,
  addressSortKey,
  selectBest,
  LLGR_STALE,
  NO_LLGR,
  Speaker,
  parsePrefixText,
  type PathAttributes,
  type OutBatch,
  type PathSource,
  type StaleEvent,
} from '../../bgp/index.js';
import { LongLivedState } from '../../bgp/speaker/llgr.js';
import { until } from '../helpers/netns.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { loopbackNet } from '../helpers/loopback.js';

type Tap = { teardown: (f: () => unknown) => void };

const PORT = 24281;
const addr = loopbackNet();
const LOCAL_AS = 65000;

interface OpenSpec {
  asn: number;
  gr?: { restartTime: number; forwardingState?: boolean; notification?: boolean; restarting?: boolean };
  llgr?: { staleTime: number; forwardingState?: boolean };
}

/** A hand-driven peer n (test/helpers/raw-peer.ts), which keeps what the speaker advertises to it. */
const session = (n: number, o: OpenSpec): Promise<RawPeer> =>
  RawPeer.session({
    host: addr(1), port: PORT, localAddress: addr(n), asn: o.asn, routerId: `10.0.0.${n}`,
    ...(o.gr ? { gracefulRestart: o.gr } : {}),
    ...(o.llgr ? { longLivedGracefulRestart: o.llgr } : {}),
  });

/** What peer AS asn announces: its AS in the path (none over iBGP), next hop 192.0.2.1, plus extra. */
const from = (asn: number, extra: PathAttributes = {}): PathAttributes =>
  ({ origin: 0, asPath: asn === LOCAL_AS ? [] : [{ type: 2, asns: [asn] }], nextHop: '192.0.2.1', ...extra });

const speakers: Speaker[] = [];
t.teardown(async () => {
  for (const s of speakers) await s.stop();
});

/** The helper: peer n has AS asOf(n), and LLGR offered with longLivedStaleTime when given. */
function helper(t: Tap, peers: { n: number; asn: number; llst?: number }[]): { s: Speaker; stale: StaleEvent[] } {
  const s = new Speaker({
    localAsn: LOCAL_AS,
    routerId: '10.0.0.1',
    listenAddress: addr(1),
    listenPort: PORT,
    holdTime: 30,
    connectRetryTime: 1,
    idleHold: { initial: 1, max: 1 },
    nextHop4: '192.0.2.254',
    peers: peers.map((p) => ({
      address: addr(p.n),
      port: PORT,
      asn: p.asn,
      passive: true,
      restartTime: 90,
      ...(p.llst !== undefined ? { longLivedStaleTime: p.llst } : {}),
    })),
  });
  s.on('log', () => {});
  const stale: StaleEvent[] = [];
  s.on('stale', (e: StaleEvent) => stale.push(e));
  speakers.push(s);
  t.teardown(() => s.stop()); // a failed test must not keep the port
  return { s, stale };
}

const route = (s: Speaker, prefix: string) => s.routesJson(prefix).routes[0];
const up = (s: Speaker, n: number): boolean => s.peerInfo(addr(n))?.state === 'Established';
const gr = (s: Speaker, n: number) => s.peersJson().peers.find((p) => p.address === addr(n))?.gracefulRestart;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('our OPEN carries LLGR beside GR only when configured', async (t) => {
  const { s } = helper(t, [{ n: 2, asn: 65002, llst: 3600 }, { n: 3, asn: 65003 }]);
  await s.start();
  const a = await session(2, { asn: 65002 });
  const b = await session(3, { asn: 65003 });
  const llgrA = a.open()?.capabilities.find((c) => c.name === 'long-lived-graceful-restart');
  t.ok(a.open()?.capabilities.some((c) => c.name === 'graceful-restart'), 'GR present');
  t.same(llgrA?.name === 'long-lived-graceful-restart' ? llgrA.families.map((f) => [f.afi, f.safi, f.staleTime]) : null, [[1, 1, 3600], [2, 1, 3600]], 'LLGR 3600 s per family (RFC 9494 §3)');
  t.notOk(b.open()?.capabilities.some((c) => c.name === 'long-lived-graceful-restart'), 'no LLGR where not configured');
  await until(() => up(s, 2) && up(s, 3), 'sessions', 5000);
  t.same(gr(s, 2)?.local, { enabled: true, restartTime: 90, longLivedStaleTime: 3600 }, 'peer JSON: what we announce');
  t.equal(gr(s, 3)?.local.longLivedStaleTime, null, 'peer JSON: no LLGR offered');
  a.reset();
  b.reset();
  await s.stop();
});

t.test('GR then LLGR: LLGR_STALE, NO_LLGR removed, depreference, re-advertisement, sweep at the end', async (t) => {
  // 2: the restarting peer (eBGP, GR 1 s, LLGR 3 s); 3: an iBGP peer with a competing path of LOCAL_PREF 50;
  // 4: an eBGP peer that announced LLGR (receives stale paths); 5: an eBGP peer without LLGR (must not).
  const { s, stale } = helper(t, [
    { n: 2, asn: 65002, llst: 600 },
    { n: 3, asn: LOCAL_AS },
    { n: 4, asn: 65004, llst: 600 },
    { n: 5, asn: 65005 },
  ]);
  await s.start();
  const a = await session(2, { asn: 65002, gr: { restartTime: 1, forwardingState: true, notification: true }, llgr: { staleTime: 3, forwardingState: true } });
  const b = await session(3, { asn: LOCAL_AS, gr: { restartTime: 60 } });
  const c = await session(4, { asn: 65004, gr: { restartTime: 60 }, llgr: { staleTime: 60 } });
  const d = await session(5, { asn: 65005, gr: { restartTime: 60 } });
  await until(() => [2, 3, 4, 5].every((n) => up(s, n)), 'four sessions', 5000);
  t.same(gr(s, 2)?.peer?.longLived.map((f) => [f.family, f.staleTime]), [['ipv4-unicast', 3], ['ipv6-unicast', 3]], 'peer JSON: the peer\'s LLGR capability');

  a.announce(['10.20.1.0/24', '10.20.3.0/24'], from(65002, { communities: [((65002 << 16) | 1) >>> 0] }));
  a.announce(['10.20.2.0/24'], from(65002, { communities: [NO_LLGR] }));
  b.announce(['10.20.3.0/24'], from(LOCAL_AS, { localPref: 50 }));
  a.endOfRib(1, 2);
  await until(() => route(s, '10.20.3.0/24')?.paths.length === 2 && route(s, '10.20.2.0/24') !== undefined && route(s, '10.20.1.0/24') !== undefined, 'routes learned', 5000);
  t.equal(route(s, '10.20.3.0/24')?.best.from, addr(2), 'before: the eBGP path (LOCAL_PREF 100) beats LOCAL_PREF 50');
  await until(() => c.rib.has('10.20.1.0/24') && d.rib.has('10.20.1.0/24') && d.rib.has('10.20.3.0/24'), 'both receivers have the routes', 5000);
  await until(() => gr(s, 2)?.endOfRib.pending.length === 0, 'End-of-RIB recorded', 5000);
  t.same(gr(s, 2)?.endOfRib.received, ['ipv4-unicast', 'ipv6-unicast'], 'peer JSON: End-of-RIB received per family');

  a.reset();
  await until(() => stale.some((e) => e.action === 'retained'), 'GR phase', 5000);
  const h = gr(s, 2)?.helper;
  t.equal(h?.phase, 'restart', 'peer JSON: helper in the restart phase');
  t.same(h?.families, ['ipv4-unicast', 'ipv6-unicast'], 'peer JSON: stale families');
  t.equal(h?.staleRoutes, 3, 'peer JSON: three stale routes');
  t.ok(h?.secondsLeft !== null && h?.secondsLeft !== undefined && h.secondsLeft <= 1, 'peer JSON: time left on the restart timer');
  t.notOk(route(s, '10.20.1.0/24')?.best.communities.includes('65535:6'), 'GR phase: no LLGR_STALE yet');
  t.ok(route(s, '10.20.2.0/24'), 'GR phase: the NO_LLGR route is still kept');

  await until(() => stale.some((e) => e.action === 'long-lived'), 'LLGR phase after the 1 s restart time', 5000);
  t.same(route(s, '10.20.1.0/24')?.best.communities, ['65002:1', '65535:6'], 'LLGR_STALE added to the stale path (RFC 9494 §4.2)');
  t.notOk(route(s, '10.20.2.0/24'), 'the NO_LLGR route was removed at the transition (RFC 9494 §3.3)');
  const r3 = route(s, '10.20.3.0/24');
  t.equal(r3?.best.from, addr(3), 'depreference: the non-stale LOCAL_PREF 50 path now wins (RFC 9494 §4.4)');
  t.equal(r3?.paths.find((p) => p.from === addr(2))?.reason, 'not long-lived stale (RFC 9494)', 'the stale path lost on the LLGR step');
  const j = gr(s, 2);
  t.equal(j?.helper?.phase, 'long-lived', 'peer JSON: long-lived phase');
  t.same(j?.longLived.map((f) => f.family), ['ipv4-unicast', 'ipv6-unicast'], 'peer JSON: LLGR families');
  t.ok(j?.longLived.every((f) => f.secondsLeft > 0 && f.secondsLeft <= 3), 'peer JSON: seconds left on the LLGR clocks');
  t.equal(j?.helper?.staleRoutes, 2, 'peer JSON: two stale routes left');

  await until(() => c.rib.get('10.20.1.0/24')?.communities?.includes(LLGR_STALE) === true, 'the LLGR peer gets the path again with LLGR_STALE', 5000);
  await until(() => !d.rib.has('10.20.1.0/24'), 'the non-LLGR peer gets a withdrawal (RFC 9494 §4.3)', 5000);
  t.pass('LLGR_STALE path re-advertised to the LLGR peer and withdrawn from the other');
  await until(() => d.rib.get('10.20.3.0/24')?.asPath?.[0]?.asns[0] === LOCAL_AS && d.rib.get('10.20.3.0/24')?.asPath?.[0]?.asns.length === 1, 'the non-LLGR peer now gets the fresh path of peer 3', 5000);
  t.pass('the non-LLGR peer follows the new best path');
  t.notOk(c.rib.has('10.20.2.0/24') || d.rib.has('10.20.2.0/24'), 'the NO_LLGR route is withdrawn everywhere');

  await until(() => !route(s, '10.20.1.0/24'), 'swept when the 3 s long-lived stale time ends', 8000);
  t.ok(stale.some((e) => e.action === 'swept' && /long-lived stale time/.test(e.reason)), 'swept by the LLGR timer');
  t.equal(route(s, '10.20.3.0/24')?.paths.length, 1, 'only the fresh path of peer 3 is left');
  await until(() => !c.rib.has('10.20.1.0/24'), 'withdrawn from the LLGR peer', 5000);
  t.equal(gr(s, 2)?.helper, null, 'peer JSON: no longer a helper');
  t.same(gr(s, 2)?.longLived, [], 'peer JSON: no LLGR clocks');
  for (const x of [b, c, d]) x.reset();
  await s.stop();
});

t.test('LLGR: reconnect + End-of-RIB refreshes the re-announced path (community gone) and sweeps the rest', async (t) => {
  const { s, stale } = helper(t, [{ n: 6, asn: 65006, llst: 600 }]);
  await s.start();
  // restart time 0: straight into the long-lived phase (RFC 9494 §4.2)
  let a = await session(6, { asn: 65006, gr: { restartTime: 0, forwardingState: true }, llgr: { staleTime: 120, forwardingState: true } });
  await until(() => up(s, 6), 'session', 5000);
  a.announce(['10.21.1.0/24', '10.21.2.0/24'], from(65006));
  await until(() => route(s, '10.21.2.0/24') !== undefined, 'routes learned', 5000);
  a.reset();
  await until(() => stale.some((e) => e.action === 'long-lived'), 'LLGR phase at once', 5000);
  t.same(route(s, '10.21.1.0/24')?.best.communities, ['65535:6'], 'LLGR_STALE attached');
  t.equal(stale.some((e) => e.action === 'retained'), true, 'retained first');

  await sleep(1200); // the speaker's idle hold
  a = await session(6, { asn: 65006, gr: { restartTime: 0, forwardingState: true, restarting: true }, llgr: { staleTime: 120, forwardingState: true } });
  await until(() => up(s, 6), 'session back', 5000);
  t.same(gr(s, 6)?.longLived.map((f) => f.family), ['ipv4-unicast', 'ipv6-unicast'], 'the long-lived clocks keep running after the reconnect');
  a.announce(['10.21.1.0/24'], from(65006));
  await until(() => route(s, '10.21.1.0/24')?.best.communities.length === 0, 'the re-announced path is fresh: no LLGR_STALE', 5000);
  t.ok(route(s, '10.21.2.0/24'), 'the path not re-announced stays until End-of-RIB');
  a.endOfRib(1, 2);
  await until(() => !route(s, '10.21.2.0/24'), 'End-of-RIB sweeps what was not re-announced', 5000);
  t.ok(route(s, '10.21.1.0/24'), 'the refreshed route stays');
  t.equal(gr(s, 6)?.helper, null, 'peer JSON: helper mode over');
  t.same(gr(s, 6)?.longLived, [], 'peer JSON: clocks stopped');
  a.reset();
  await s.stop();
});

t.test('without LLGR offered, a restart timer expiry sweeps as plain GR does; a received LLGR_STALE path is depreferenced', async (t) => {
  const { s, stale } = helper(t, [{ n: 7, asn: 65007 }, { n: 8, asn: 65008 }]);
  await s.start();
  const a = await session(7, { asn: 65007, gr: { restartTime: 1, forwardingState: true }, llgr: { staleTime: 600, forwardingState: true } });
  const b = await session(8, { asn: 65008, gr: { restartTime: 60 } });
  await until(() => up(s, 7) && up(s, 8), 'sessions', 5000);
  // RFC 9494 §4.3/§4.4: a path that arrives with LLGR_STALE ranks below a fresh one, even with a shorter AS_PATH.
  a.announce(['10.22.1.0/24'], from(65007, { communities: [LLGR_STALE] }));
  b.announce(['10.22.1.0/24'], from(65008, { asPath: [{ type: 2, asns: [65008, 65100, 65101] }] }));
  a.announce(['10.22.2.0/24'], from(65007));
  await until(() => route(s, '10.22.1.0/24')?.paths.length === 2 && route(s, '10.22.2.0/24') !== undefined, 'routes learned', 5000);
  t.equal(route(s, '10.22.1.0/24')?.best.from, addr(8), 'the fresh path with the longer AS_PATH wins over a received LLGR_STALE one');
  a.reset();
  await until(() => !route(s, '10.22.2.0/24'), 'swept when the restart time ends: we did not offer LLGR', 5000);
  t.notOk(stale.some((e) => e.action === 'long-lived'), 'no long-lived phase');
  b.reset();
  await s.stop();
});

// ---------------------------------------------------------------- the RIB core and the decision process, no sockets

t.test('core: enterLongLivedStale marks, removes NO_LLGR, keeps paths stale; exports follow the peer\'s LLGR', async (t) => {
  const core = new RibCore({ localAs: LOCAL_AS, routerId: 0x0a000001 });
  const cfg = (n: number, asn: number) => ({ address: `192.0.2.${n}`, asn, localAddress: '192.0.2.100' });
  const terms = (id: number, ibgp: boolean, llgr: boolean) => ({
    peerId: id, ibgp, families: [IPV4_UNICAST, IPV6_UNICAST], addPathRx: new Set<number>(), addPathTx: new Set<number>(), enhancedRouteRefresh: false,
    ...(llgr ? { llgrFamilies: new Set([IPV4_UNICAST]) } : {}),
  });
  const src = core.addPeer(cfg(1, 65001));
  const withLlgr = core.addPeer(cfg(2, 65002));
  const without = core.addPeer(cfg(3, 65003));
  core.peerUp(src, terms(1, false, false));
  core.peerUp(withLlgr, terms(2, false, true));
  core.peerUp(without, terms(3, false, false));
  const drain = (id: number): OutBatch[] => {
    const out: OutBatch[] = [];
    for (let b = core.nextBatch(id, 100); b; b = core.nextBatch(id, 100)) out.push(b);
    return out;
  };
  for (const id of [src, withLlgr, without]) drain(id);
  const p = (text: string) => parsePrefixText(text);
  const attrs = (extra: PathAttributes = {}): PathAttributes => ({ origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '192.0.2.1', ...extra });
  core.applyUpdate(src, { type: 'UPDATE', withdrawn: { afi: 1, safi: 1, prefixes: [], pathIds: null }, attributes: attrs(), nlri: { afi: 1, safi: 1, prefixes: [p('10.1.0.0/24') as number, p('10.1.1.0/24') as number], pathIds: null } });
  core.applyUpdate(src, { type: 'UPDATE', withdrawn: { afi: 1, safi: 1, prefixes: [], pathIds: null }, attributes: attrs({ communities: [NO_LLGR] }), nlri: { afi: 1, safi: 1, prefixes: [p('10.1.2.0/24') as number], pathIds: null } });
  drain(withLlgr);
  drain(without);
  t.equal(core.staleCount(src), 0, 'nothing stale yet');

  core.peerDown(src, { retainStale: true });
  t.equal(core.staleCount(src), 3, 'three stale paths after a graceful session end');
  t.same(core.enterLongLivedStale(src, IPV6_UNICAST), { kept: 0, removed: 0 }, 'another family: nothing to do');
  t.same(core.enterLongLivedStale(src, IPV4_UNICAST), { kept: 2, removed: 1 }, 'two kept, the NO_LLGR one removed');
  t.equal(core.route(p('10.1.2.0/24')), null, 'NO_LLGR path gone');
  t.ok(core.route(p('10.1.0.0/24'))?.best.attrs.llgrStale, 'LLGR_STALE attached');
  t.equal(core.staleCount(src), 2, 'still stale: sweepStale would remove them');
  t.same(core.enterLongLivedStale(src, IPV4_UNICAST), { kept: 2, removed: 0 }, 'idempotent');

  const toLlgr = drain(withLlgr);
  const ann = toLlgr.filter((b): b is Extract<OutBatch, { kind: 'announce' }> => b.kind === 'announce');
  t.ok(ann.length === 1 && ann[0]?.attrs.attrs.communities?.includes(LLGR_STALE) && ann[0].prefixes.length === 2, 'the LLGR peer gets both again, with LLGR_STALE');
  t.ok(toLlgr.some((b) => b.kind === 'withdraw' && b.prefixes.length === 1), 'and the NO_LLGR prefix withdrawn');
  const toOther = drain(without);
  t.ok(toOther.every((b) => b.kind === 'withdraw'), 'the peer without LLGR gets withdrawals only');
  t.equal(toOther.reduce((n, b) => n + (b.kind === 'withdraw' ? b.prefixes.length : 0), 0), 3, 'all three withdrawn from it');
  t.equal(core.advertised(without, p('10.1.0.0/24')), undefined, 'nothing in its Adj-RIB-Out');

  t.equal(core.sweepStale(src, IPV4_UNICAST), 2, 'sweep removes the long-lived stale paths');
  t.equal(core.staleCount(src), 0);
});

t.test('decision: a path with LLGR_STALE never beats one without, and never shares a multipath set with it', async (t) => {
  const arb = fc.record({
    stale: fc.boolean(),
    localPref: fc.constantFrom(0, 100, 200),
    len: fc.integer({ min: 1, max: 3 }),
    neighbor: fc.constantFrom(65001, 65002),
    ibgp: fc.boolean(),
    local: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(arb, { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 4 }), (list, maxPaths) => {
      const table = new AttrTable();
      const paths = list.map((x, i) => {
        const a: PathAttributes = {
          origin: 0,
          asPath: [{ type: 2, asns: [x.neighbor, ...Array.from({ length: x.len - 1 }, () => 64999)] }],
          nextHop: `192.0.2.${i + 1}`,
          localPref: x.localPref,
          ...(x.stale ? { communities: [LLGR_STALE] } : {}),
        };
        const address = `198.51.100.${i + 1}`;
        const s: PathSource = { id: i + 1, local: x.local && i === 0, ibgp: x.ibgp, routerId: i + 1, address, addressKey: addressSortKey(address) };
        return new Path(s, 0, table.intern(a, [a.nextHop as string]));
      });
      const sel = selectBest(paths, maxPaths);
      if (!sel) return false;
      const anyFresh = paths.some((x) => !x.attrs.llgrStale);
      if (anyFresh && sel.best.attrs.llgrStale) return false;
      return sel.multipath.every((x) => x.attrs.llgrStale === sel.best.attrs.llgrStale);
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 random candidate sets');
});

t.test('a long-lived clock of the largest stale time (2^24-1 s, beyond setTimeout\'s 2^31-1 ms) does not fire early', async (t) => {
  const st = new LongLivedState();
  let fired = 0;
  st.start(IPV4_UNICAST, 0xffffff, () => fired++);
  st.start(IPV6_UNICAST, 1, () => fired++);
  await sleep(100);
  t.equal(fired, 0, 'neither clock fired yet');
  t.ok(st.has(IPV4_UNICAST), 'still running');
  const left = st.json().find((f) => f.family === 'ipv4-unicast')?.secondsLeft ?? 0;
  t.ok(left > 0xffffff - 5 && left <= 0xffffff, 'about 194 days left');
  await until(() => fired === 1, 'the 1 s clock fires', 5000);
  t.notOk(st.has(IPV6_UNICAST), 'a fired clock is gone');
  st.stop(IPV4_UNICAST);
  t.same(st.json(), [], 'stopped');
});
