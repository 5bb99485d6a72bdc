// Next hops in the engine: the verdicts of NextHopTable (RFC 4271 §6.3 semantically incorrect next hops, RFC 2545
// §3 link-local only, RFC 4271 §9.1.2 unresolvable), and what the core does with an unusable path: kept in
// Adj-RIB-In, never best while anything else is, never handed to the FIB, never advertised (ADD-PATH included), and
// back in the decision when the host learns a route to its next hop.
import t from 'tap';
import fc from 'fast-check';
import { NextHopTable, RibCore, isUsable } from '../../bgp/index.js';
import type { OutBatch, PathAttributes, PeerConfig, PrefixKey } from '../../bgp/index.js';
import { IPV4_UNICAST } from '../../bgp/index.js';
import { renderRoutes } from '../../src/ctl/index.js';
import { announce, announce6, drain, p4, show, terms } from '../helpers/rib.js';

const LOCAL_AS = 64512;

const code = (tbl: NextHopTable, ...nh: string[]): string => tbl.check(nh)?.code ?? 'usable';

t.test('NextHopTable: address checks apply always, resolution only once fed', async (t) => {
  const tbl = new NextHopTable();
  for (const bad of ['0.0.0.0', '0.1.2.3', '224.0.0.5', '239.1.1.1', '240.0.0.1', '255.255.255.255']) t.equal(code(tbl, bad), 'martian', `${bad} is martian`);
  for (const bad of ['::', '::1', 'ff02::1', '::ffff:192.0.2.1']) t.equal(code(tbl, bad), 'martian', `${bad} is martian`);
  t.equal(code(tbl, 'fe80::1'), 'link-local-only', 'a lone link-local next hop (RFC 2545 §3)');
  t.equal(code(tbl, '::', 'fe80::1'), 'link-local-only', ':: followed by a link-local (unnumbered sessions)');
  t.equal(code(tbl, 'fd00::1', 'fe80::1'), 'usable', 'global + link-local is fine');
  t.equal(code(tbl, '203.0.113.9'), 'usable', 'without a feed every well-formed next hop counts as resolvable');
  t.equal(tbl.resolving, false);

  tbl.addSessionAddress('192.0.2.100');
  t.equal(code(tbl, '192.0.2.100'), 'own-address', 'our end of a session is our address (RFC 4271 §6.3)');

  tbl.setReachability({ addresses: ['10.0.0.1', 'fd00:1::1'], routes: ['10.0.0.0/24', '198.51.100.0/25', 'fd00:1::/64', '2001:db8:7::5'] });
  t.equal(tbl.resolving, true);
  t.equal(code(tbl, '10.0.0.2'), 'usable', 'on a connected subnet');
  t.equal(code(tbl, '198.51.100.127'), 'usable', 'inside a /25');
  t.equal(code(tbl, '198.51.100.128'), 'unresolvable', 'just outside it');
  t.equal(code(tbl, '203.0.113.9'), 'unresolvable', 'no route covers it');
  t.equal(code(tbl, '10.0.0.1'), 'own-address', 'a host address from the feed');
  t.equal(code(tbl, '192.0.2.100'), 'own-address', 'session addresses stay ours whatever the feed says');
  t.equal(code(tbl, 'fd00:1::9'), 'usable');
  t.equal(code(tbl, 'fd00:1:0:0::1'), 'own-address', 'any spelling of our address');
  t.equal(code(tbl, '2001:db8:7::5'), 'usable', 'a host route');
  t.equal(code(tbl, '2001:db8:7::6'), 'unresolvable');
  t.match(tbl.check(['203.0.113.9'])?.text, /203\.0\.113\.9 is not resolvable.*RFC 4271 §9\.1\.2/, 'the reason names the next hop and the rule');

  tbl.setReachability({ addresses: [], routes: ['0.0.0.0/0', '::/0', 'not-a-prefix'] });
  t.equal(code(tbl, '203.0.113.9'), 'usable', 'a default route resolves (Calico nodes often reach each other through one)');
  t.equal(code(tbl, '2001:db8::1'), 'usable');
  tbl.setReachability({ addresses: [], routes: [] });
  t.equal(code(tbl, '203.0.113.9'), 'unresolvable', 'an empty feed resolves nothing');
  tbl.setReachability(null);
  t.equal(code(tbl, '203.0.113.9'), 'usable', 'null stops checking resolution');

  // the cache is bounded: next hops come from the network
  tbl.setReachability({ addresses: [], routes: ['10.0.0.0/8'] });
  for (let i = 0; i < 20_000; i++) tbl.check([`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`]);
  t.equal(code(tbl, '11.0.0.1'), 'unresolvable', 'still right after many distinct next hops');
});

const GOOD: PathAttributes = { origin: 0, asPath: [{ type: 2, asns: [65001, 65100, 65200] }], nextHop: '10.0.0.2' };
/** shorter AS_PATH: would win on §9.1.2.2 a if its next hop were usable */
const BAD = (nextHop: string): PathAttributes => ({ origin: 0, asPath: [{ type: 2, asns: [65003] }], nextHop });

/** A core with eBGP peers A (AS 65001) and C (AS 65003), iBGP peer B, and the host reaching 10.0.0.0/24 and 10.0.3.0/24. */
function lab(maxPaths = 1, extraB: Partial<PeerConfig> = {}) {
  const tbl = new NextHopTable();
  tbl.setReachability({ addresses: ['10.0.0.1', 'fd00::1'], routes: ['10.0.0.0/24', '10.0.3.0/24', 'fd00::/64'] });
  const core = new RibCore({ localAs: LOCAL_AS, routerId: 0x0a000001, maxPaths });
  core.setNextHopCheck((nh) => tbl.check(nh));
  const a = core.addPeer({ address: '10.0.0.2', asn: 65001, localAddress: '10.0.0.1', localAddress6: 'fd00::1' });
  const b = core.addPeer({ address: '10.0.0.3', asn: LOCAL_AS, localAddress: '10.0.0.1', localAddress6: 'fd00::1', ...extraB });
  const c = core.addPeer({ address: '10.0.3.2', asn: 65003, localAddress: '10.0.3.1', localAddress6: 'fd00::1' });
  core.peerUp(a, terms(0x0a000002, false));
  core.peerUp(b, terms(0x0a000003, true, extraB.addPathSend !== undefined ? { addPathTx: new Set([IPV4_UNICAST]) } : {}));
  core.peerUp(c, terms(0x0a000302, false));
  for (const id of [a, b, c]) drain(core, id);
  return { core, tbl, a, b, c };
}

type Sent = { prefix: string; nextHop: string | undefined; pathId?: number };
function sent(batches: OutBatch[]): { announced: Sent[]; withdrawn: string[] } {
  const announced: Sent[] = [];
  const withdrawn: string[] = [];
  for (const b of batches) {
    if (b.kind === 'announce') b.prefixes.forEach((p, i) => announced.push({ prefix: show(p), nextHop: b.attrs.nextHops[0], ...(b.pathIds ? { pathId: b.pathIds[i] as number } : {}) }));
    if (b.kind === 'withdraw') withdrawn.push(...b.prefixes.map(show));
  }
  return { announced, withdrawn };
}

t.test('an unresolvable path loses to a usable one whatever its attributes, and goes nowhere', async (t) => {
  const { core, a, b, c } = lab();
  core.applyUpdate(a, announce(['10.9.0.0/24'], GOOD));
  core.applyUpdate(c, announce(['10.9.0.0/24'], BAD('203.0.113.9')));
  const changes = core.drainBestChanges();
  t.same(changes.map((x) => [show(x.prefix), x.nextHops, x.from]), [['10.9.0.0/24', ['10.0.0.2'], '10.0.0.2']], 'the FIB gets the working path only');
  const ex = core.explain(p4('10.9.0.0/24'));
  t.equal(ex[0]?.path.source.address, '10.0.0.2', 'A is best despite its longer AS_PATH');
  t.equal(ex[1]?.reason, 'next-hop', 'C lost on its next hop (RFC 4271 §9.1.2)');
  t.equal(ex[1]?.path.attrs.unusable?.code, 'unresolvable');
  t.equal(core.received(c, p4('10.9.0.0/24')).length, 1, 'the path is kept in Adj-RIB-In');
  t.same(sent(drain(core, b)).announced, [{ prefix: '10.9.0.0/24', nextHop: '10.0.0.2' }], 'iBGP B gets A\'s path');
  t.same(sent(drain(core, c)).announced.map((x) => x.prefix), ['10.9.0.0/24'], 'C gets A\'s path too');
});

t.test('a lone unusable path: no FIB entry, no advertisement; usable again when the host learns a route', async (t) => {
  const { core, tbl, b, c } = lab();
  for (const [nh, why] of [['203.0.113.9', 'unresolvable'], ['10.0.0.1', 'own-address'], ['224.0.0.9', 'martian']] as const) {
    core.applyUpdate(c, announce(['10.8.0.0/16'], BAD(nh)));
    const ch = core.drainBestChanges();
    t.ok(ch.every((x) => x.best === null), `${nh}: nothing for the FIB to install`);
    t.equal(core.route(p4('10.8.0.0/16'))?.best.attrs.unusable?.code, why, `${nh}: ${why}`);
    t.same(sent(drain(core, b)).announced, [], `${nh}: not advertised`);
  }
  core.applyUpdate(c, announce(['10.8.0.0/16'], BAD('203.0.113.9')));
  core.drainBestChanges();
  drain(core, b);
  // the host learns a route to the next hop: the path takes part again
  tbl.setReachability({ addresses: ['10.0.0.1'], routes: ['10.0.0.0/24', '10.0.3.0/24', '203.0.113.0/24'] });
  t.equal(core.recheckNextHops(), 1, 'one prefix re-decided');
  t.same(core.drainBestChanges().map((x) => [show(x.prefix), x.nextHops]), [['10.8.0.0/16', ['203.0.113.9']]], 'now installed');
  t.same(sent(drain(core, b)).announced, [{ prefix: '10.8.0.0/16', nextHop: '203.0.113.9' }], 'now advertised');
  t.equal(core.recheckNextHops(), 0, 'nothing changed: no walk');
  // and loses the route again
  tbl.setReachability({ addresses: ['10.0.0.1'], routes: ['10.0.0.0/24', '10.0.3.0/24'] });
  t.equal(core.recheckNextHops(), 1);
  t.same(core.drainBestChanges().map((x) => [show(x.prefix), x.best]), [['10.8.0.0/16', null]], 'removed from the FIB');
  t.same(sent(drain(core, b)).withdrawn, ['10.8.0.0/16'], 'withdrawn from B');
  t.same(sent(drain(core, c)).withdrawn, [], 'C never had it (its own route)');
});

t.test('flips between two candidates: the better one takes over when it becomes usable, and gives back', async (t) => {
  const { core, tbl, a, b, c } = lab();
  core.applyUpdate(a, announce(['10.7.0.0/24'], GOOD));
  core.applyUpdate(c, announce(['10.7.0.0/24'], BAD('203.0.113.9')));
  core.drainBestChanges();
  drain(core, b);
  tbl.setReachability({ addresses: ['10.0.0.1'], routes: ['10.0.0.0/24', '10.0.3.0/24', '203.0.113.0/24'] });
  core.recheckNextHops();
  t.same(core.drainBestChanges().map((x) => x.nextHops), [['203.0.113.9']], 'C wins once usable (shorter AS_PATH)');
  t.same(sent(drain(core, b)).announced, [{ prefix: '10.7.0.0/24', nextHop: '203.0.113.9' }]);
  tbl.setReachability({ addresses: ['10.0.0.1'], routes: ['10.0.0.0/24', '10.0.3.0/24'] });
  core.recheckNextHops();
  t.same(core.drainBestChanges().map((x) => x.nextHops), [['10.0.0.2']], 'back to A');
  t.same(sent(drain(core, b)).announced, [{ prefix: '10.7.0.0/24', nextHop: '10.0.0.2' }]);
});

t.test('IPv6: link-local only and our own address', async (t) => {
  const { core, b, c } = lab();
  const attrs: PathAttributes = { origin: 0, asPath: [{ type: 2, asns: [65003] }] };
  core.applyUpdate(c, announce6(['fd00:9::/64'], attrs, ['fe80::2']));
  t.equal(core.route('fd00:9::/64')?.best.attrs.unusable?.code, 'link-local-only');
  core.applyUpdate(c, announce6(['fd00:a::/64'], attrs, ['fd00::1']));
  t.equal(core.route('fd00:a::/64')?.best.attrs.unusable?.code, 'own-address', 'a host address');
  core.applyUpdate(c, announce6(['fd00:b::/64'], attrs, ['fd00::9', 'fe80::9']));
  t.equal(core.route('fd00:b::/64')?.best.attrs.unusable, null, 'global + link-local, global on a connected subnet');
  t.same(core.drainBestChanges().filter((x) => x.best !== null).map((x) => show(x.prefix)), ['fd00:b::/64']);
  t.same(sent(drain(core, b)).announced.map((x) => x.prefix), ['fd00:b::/64']);
});

t.test('multipath and ADD-PATH never carry an unusable path', async (t) => {
  const { core, a, b, c } = lab(4, { addPathSend: { mode: 'all' } } as Partial<PeerConfig>);
  const eq = (nextHop: string): PathAttributes => ({ origin: 0, asPath: [{ type: 2, asns: [65009] }], nextHop });
  core.applyUpdate(a, announce(['10.6.0.0/24'], eq('10.0.0.2')));
  core.applyUpdate(c, announce(['10.6.0.0/24'], eq('203.0.113.9')));
  const ch = core.drainBestChanges();
  t.same(ch.map((x) => x.nextHops), [['10.0.0.2']], 'the multipath set leaves the unusable path out');
  const toB = sent(drain(core, b)).announced;
  t.same(toB.map((x) => x.nextHop), ['10.0.0.2'], 'ADD-PATH send: only the usable path');
});

t.test('property: the best handed out is usable whenever a usable candidate exists, and nothing unusable is advertised', async (t) => {
  const hops = ['10.0.0.2', '10.0.3.5', '203.0.113.9', '198.51.100.1', '10.0.0.1'];
  fc.assert(
    fc.property(
      fc.array(fc.record({ peer: fc.constantFrom(0, 2), prefix: fc.integer({ min: 0, max: 3 }), hop: fc.integer({ min: 0, max: hops.length - 1 }), len: fc.integer({ min: 1, max: 4 }) }), { maxLength: 30 }),
      fc.array(fc.subarray(['10.0.0.0/24', '10.0.3.0/24', '203.0.113.0/24', '198.51.100.0/24']), { maxLength: 4 }),
      (ops, feeds) => {
        const { core, tbl, a, b, c } = lab(2);
        const peers = [a, b, c];
        const run = (): void => {
          for (const ch of core.drainBestChanges()) {
            const r = core.route(ch.prefix);
            const anyUsable = r !== null && r.paths.some(isUsable);
            if (anyUsable !== (ch.best !== null)) throw new Error(`${show(ch.prefix)}: best ${ch.best === null ? 'none' : 'set'} but usable candidates: ${anyUsable}`);
            if (ch.best !== null && ch.best.unusable !== null) throw new Error('an unusable best reached the FIB stream');
          }
          for (const batch of drain(core, b)) {
            if (batch.kind !== 'announce') continue;
            for (const p of batch.prefixes) {
              const r = core.route(p as PrefixKey);
              if (r === null || !isUsable(r.best)) throw new Error(`${show(p as PrefixKey)} advertised without a usable best`);
            }
          }
        };
        let f = 0;
        for (const op of ops) {
          const asns = Array.from({ length: op.len }, (_, i) => 65100 + i);
          core.applyUpdate(peers[op.peer] as number, announce([`10.${50 + op.prefix}.0.0/24`], { origin: 0, asPath: [{ type: 2, asns }], nextHop: hops[op.hop] as string }));
          if (op.len === 1 && f < feeds.length) {
            tbl.setReachability({ addresses: ['10.0.0.1'], routes: feeds[f++] as string[] });
            core.recheckNextHops();
          }
          run();
        }
      },
    ),
    { numRuns: 200, seed: 1505 },
  );
  t.pass('held for 200 runs (seed 1505)');
});

t.test('skeinctl routes shows an unusable path with its reason, never starred', async (t) => {
  const path = { from: '10.0.3.2', nextHops: ['203.0.113.9'], asPath: [65003], origin: 'IGP', localPref: 100, med: 0, communities: [], largeCommunities: [], reason: 'only path' };
  const bad = { ...path, usable: false, unusableReason: 'next hop 203.0.113.9 is not resolvable: no connected or non-BGP route covers it (RFC 4271 §9.1.2)', unusableCode: 'unresolvable' };
  const out = renderRoutes({ routes: [{ prefix: '10.8.0.0/16', installed: false, best: bad, paths: [bad] }] });
  t.match(out, /^ {2}! {2}10\.0\.3\.2 .*unusable: next hop 203\.0\.113\.9 is not resolvable/m, 'marked ! with the reason');
  t.notMatch(out, /\*/, 'not starred');
  const good = renderRoutes({ routes: [{ prefix: '10.8.0.0/16', installed: true, best: { ...path, usable: true, unusableReason: null, unusableCode: null }, paths: [] }] });
  t.notMatch(good, /unusable/, 'a usable path shows its decision reason');
});
