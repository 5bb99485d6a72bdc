// Recursive next hops through the Loc-RIB in the engine (bgp/rib/recursive.ts, RFC 4271 §9.1.2.1): a next hop no
// host route covers resolves through the longest Loc-RIB route with a best in the kernel, one level deep, never
// through our own originations, never through the path's own prefix or a more specific of it; a change of the
// covering route re-resolves only the next hops it covers. test/interop/nexthop-bird.test.ts does it against BIRD and the
// kernel.
import t from 'tap';
import { NextHopTable, RibCore, type PathAttributes } from '../../bgp/index.js';
import type { BestChange } from '../../bgp/rib/types.js';
import { unusableWhy } from '../../bgp/rib/decision.js';
import { announce, drain, p4, show, terms, withdraw } from '../helpers/rib.js';

const LOCAL_AS = 64512;
const ebgp = (nextHop: string, ...asns: number[]): PathAttributes => ({ origin: 0, asPath: [{ type: 2, asns }], nextHop });

/** Host reaches 10.0.0.0/24 (peers A eBGP .2, B iBGP .3) and 10.0.3.0/24 (C eBGP). */
function lab() {
  const tbl = new NextHopTable();
  tbl.setReachability({ addresses: ['10.0.0.1'], routes: ['10.0.0.0/24', '10.0.3.0/24'] });
  let moved = 0;
  const core = new RibCore({ localAs: LOCAL_AS, routerId: 0x0a000001, onRecursiveMoved: () => moved++ });
  core.setNextHopCheck((nh) => tbl.check(nh));
  const a = core.addPeer({ address: '10.0.0.2', asn: 65001, localAddress: '10.0.0.1' });
  const b = core.addPeer({ address: '10.0.0.3', asn: LOCAL_AS, localAddress: '10.0.0.1' });
  const c = core.addPeer({ address: '10.0.3.2', asn: 65003, localAddress: '10.0.3.1' });
  core.peerUp(a, terms(0x0a000002, false));
  core.peerUp(b, terms(0x0a000003, true));
  core.peerUp(c, terms(0x0a000302, false));
  for (const id of [a, b, c]) drain(core, id);
  core.drainBestChanges();
  return { core, tbl, a, b, c, moved: () => moved };
}

const usable = (core: RibCore, prefix: string, from: string): boolean | undefined => {
  const r = core.route(p4(prefix));
  const p = r?.paths.find((x) => x.source.address === from);
  return p === undefined ? undefined : core.route(p4(prefix))!.best === p && p.attrs.unusable === null && !(p.inside && p.attrs.viaBgp !== null);
};
const fib = (changes: BestChange[]): string[] => changes.map((c) => `${show(c.prefix)} ${c.best === null ? 'gone' : c.nextHops.join(',')}`);

t.test('a next hop covered by another BGP route resolves through it, and follows it', async (t) => {
  const { core, a, b, c, moved } = lab();
  // B's route to 10.90.6.0/24 has a next hop (a remote loopback) no host route covers
  core.applyUpdate(b, announce(['10.90.6.0/24'], { ...ebgp('198.51.100.7'), localPref: 100 }));
  t.same(fib(core.drainBestChanges()), [], 'unresolvable: nothing for the FIB');
  t.equal(core.route(p4('10.90.6.0/24'))?.best.attrs.unusable?.code, 'unresolvable');
  // A announces the loopback's /24 with a next hop on the host's link: B's route resolves through it
  core.applyUpdate(a, announce(['198.51.100.0/24'], ebgp('10.0.0.2', 65001)));
  t.same(fib(core.drainBestChanges()).sort(), ['10.90.6.0/24 198.51.100.7', '198.51.100.0/24 10.0.0.2'], 'both to the FIB');
  t.equal(usable(core, '10.90.6.0/24', '10.0.0.3'), true, 'usable through 198.51.100.0/24');
  t.same(core.recursiveHops('198.51.100.7'), { via: p4('198.51.100.0/24'), nextHops: ['10.0.0.2'] }, 'installed via A');
  t.same(drain(core, a).flatMap((x) => (x.kind === 'announce' ? x.prefixes.map(show) : [])), ['10.90.6.0/24'], 'and advertised once usable');

  // a more specific route of C takes over (longest match)
  const m0 = moved();
  core.applyUpdate(c, announce(['198.51.100.0/25'], ebgp('10.0.3.2', 65003)));
  t.ok(moved() > m0, 'the FIB is told to look again');
  t.same(core.recursiveHops('198.51.100.7'), { via: p4('198.51.100.0/25'), nextHops: ['10.0.3.2'] }, 'now via C\'s /25');
  core.drainBestChanges();

  // the covering routes go: unusable again, out of the FIB
  core.applyUpdate(c, withdraw(['198.51.100.0/25']));
  t.same(core.recursiveHops('198.51.100.7')?.via, p4('198.51.100.0/24'), 'back to the /24');
  core.drainBestChanges();
  core.applyUpdate(a, withdraw(['198.51.100.0/24']));
  t.same(fib(core.drainBestChanges()).sort(), ['10.90.6.0/24 gone', '198.51.100.0/24 gone'], 'the recursive route leaves the FIB with its cover');
  t.equal(core.route(p4('10.90.6.0/24'))?.best.attrs.unusable?.code, 'unresolvable', 'unresolvable again');
  t.equal(core.recursiveHops('198.51.100.7'), null);

  // a host route covering it later wins over any BGP route: resolved directly, recursion lets go
  core.applyUpdate(a, announce(['198.51.100.0/24'], ebgp('10.0.0.2', 65001)));
  t.ok(core.recursiveHops('198.51.100.7'));
});

t.test('only what a changed route covers is resolved again', async (t) => {
  const { core, a, b, moved } = lab();
  core.applyUpdate(a, announce(['198.51.100.0/24'], ebgp('10.0.0.2', 65001)));
  core.applyUpdate(b, announce(['10.90.6.0/24'], { ...ebgp('198.51.100.7'), localPref: 100 }));
  core.drainBestChanges();
  t.equal(core.recursive.size, 1, 'one next hop followed');
  const m0 = moved();
  // 5,000 routes elsewhere come and go: none covers 198.51.100.7
  const many = Array.from({ length: 5000 }, (_, i) => `10.${100 + (i >> 8)}.${i & 255}.0/24`);
  core.applyUpdate(a, announce(many, ebgp('10.0.0.2', 65001)));
  core.applyUpdate(a, withdraw(many));
  core.drainBestChanges();
  t.equal(moved(), m0, 'no re-resolution for routes that do not cover the next hop');
  // its covering route changes attributes: looked at again
  core.applyUpdate(a, announce(['198.51.100.0/24'], { ...ebgp('10.0.0.2', 65001), med: 7 }));
  t.ok(moved() > m0, 'the covering route\'s change is');
  t.equal(usable(core, '10.90.6.0/24', '10.0.0.3'), true);
});

t.test('one level only; never through our own originations', async (t) => {
  const { core, a, b, c } = lab();
  core.applyUpdate(a, announce(['198.51.100.0/24'], ebgp('10.0.0.2', 65001)));
  // 203.0.113.0/24 resolves recursively through 198.51.100.0/24 ...
  core.applyUpdate(b, announce(['203.0.113.0/24'], { ...ebgp('198.51.100.7'), localPref: 100 }));
  t.equal(usable(core, '203.0.113.0/24', '10.0.0.3'), true, 'first level: usable');
  // ... so it cannot resolve anything itself
  core.applyUpdate(c, announce(['10.91.0.0/24'], ebgp('203.0.113.5', 65003)));
  t.equal(core.route(p4('10.91.0.0/24'))?.best.attrs.unusable?.code, 'unresolvable', 'second level: unresolvable (as BIRD)');
  // our own origination covering a next hop: the kernel has a blackhole there, no way through
  core.originate(p4('10.94.0.0/24'));
  core.applyUpdate(c, announce(['10.95.0.0/24'], ebgp('10.94.0.5', 65003)));
  t.equal(core.route(p4('10.95.0.0/24'))?.best.attrs.unusable?.code, 'unresolvable', 'not through our own block');
  // when the first level goes, the second is still unresolvable; the first becomes so
  core.applyUpdate(a, withdraw(['198.51.100.0/24']));
  t.equal(core.route(p4('203.0.113.0/24'))?.best.attrs.unusable?.code, 'unresolvable');
  t.equal(core.route(p4('10.91.0.0/24'))?.best.attrs.unusable?.code, 'unresolvable');
});

t.test('loops: a next hop inside the route itself never resolves through BGP', async (t) => {
  const { core, a, b } = lab();
  // 10.93.0.0/24 from A with a working next hop, and from B (preferred: LOCAL_PREF 200) with one inside it
  core.applyUpdate(a, announce(['10.93.0.0/24'], ebgp('10.0.0.2', 65001)));
  core.applyUpdate(b, announce(['10.93.0.0/24'], { ...ebgp('10.93.0.1'), localPref: 200 }));
  const r = core.route(p4('10.93.0.0/24'))!;
  t.equal(r.best.source.address, '10.0.0.2', 'A\'s path stays best: B\'s would resolve only through the route itself');
  const bp = r.paths.find((x) => x.source.address === '10.0.0.3')!;
  t.equal(bp.inside, true);
  t.equal(unusableWhy(bp)?.code, 'recursive-loop', 'shown as the loop case');
  t.same(fib(core.drainBestChanges()), ['10.93.0.0/24 10.0.0.2']);
  // nothing oscillates: deciding again changes nothing
  core.applyUpdate(a, announce(['10.93.0.0/24'], ebgp('10.0.0.2', 65001)));
  t.same(fib(core.drainBestChanges()), [], 'stable');
  // a more specific of itself: 10.92.0.0/16 with a next hop in 10.92.3.0/24, which A announces directly
  core.applyUpdate(a, announce(['10.92.3.0/24'], ebgp('10.0.0.2', 65001)));
  core.applyUpdate(b, announce(['10.92.0.0/16'], { ...ebgp('10.92.3.1'), localPref: 100 }));
  const s = core.route(p4('10.92.0.0/16'))!;
  t.equal(usable(core, '10.92.0.0/16', '10.0.0.3'), false, 'resolvable only through a more specific of itself: unusable');
  t.same(fib(core.drainBestChanges()), ['10.92.3.0/24 10.0.0.2'], 'only the /24 reaches the FIB');
  t.equal(s.paths.length, 1);
  // the same next hop serves a route it is not inside
  core.applyUpdate(b, announce(['10.96.0.0/24'], { ...ebgp('10.92.3.1'), localPref: 100 }));
  t.equal(usable(core, '10.96.0.0/24', '10.0.0.3'), true, 'while another prefix resolves through 10.92.3.0/24 with it');
});
