// IPv6 recursive next hops through the Loc-RIB in the engine (bgp/rib/recursive.ts, RFC 4271 §9.1.2.1 with
// RFC 2545 next hops): the IPv6 counterpart of engine-nexthop-recursive.test.ts. A path whose next hop no host route
// and no usable Loc-RIB route covers is never best, never installed, never advertised; a covering route makes it
// usable, installed via that route's next hops; a next hop inside the path's own prefix never resolves through BGP.
// nextHopInside (which decides that loop case per route, from a cache on the attribute set) is checked against a
// plain bitwise reference.
import t from 'tap';
import { NextHopTable, RibCore, type PathAttributes } from '../../bgp/index.js';
import type { BestChange } from '../../bgp/rib/types.js';
import { unusableWhy } from '../../bgp/rib/decision.js';
import { AttrSet } from '../../bgp/rib/intern.js';
import { nextHopInside } from '../../bgp/rib/recursive.js';
import { parseIpv6, parsePrefix6, prefix6Bytes, prefix6Len } from '../../bgp/wire/prefix.js';
import { announce6, drain, show, terms, v4, v6 } from '../helpers/rib.js';
import type { UpdateMessage } from '../../bgp/index.js';

const LOCAL_AS = 64512;
const ebgp = (...asns: number[]): PathAttributes => ({ origin: 0, asPath: [{ type: 2, asns }] });
const ibgp = (localPref: number): PathAttributes => ({ origin: 0, asPath: [], localPref });
const withdraw6 = (prefixes: string[]): UpdateMessage => ({ type: 'UPDATE', withdrawn: v4([]), attributes: {}, nlri: v4([]), mpUnreach: { afi: 2, safi: 1, withdrawn: v6(prefixes) } });

/** Host reaches fd00::/64 (peers A eBGP fd00::2, B iBGP fd00::3) and fd00:3::/64 (C eBGP fd00:3::2). */
function lab() {
  const tbl = new NextHopTable();
  tbl.setReachability({ addresses: ['10.0.0.1', 'fd00::1', 'fd00:3::1'], routes: ['10.0.0.0/24', '10.0.3.0/24', 'fd00::/64', 'fd00:3::/64'] });
  let moved = 0;
  const core = new RibCore({ localAs: LOCAL_AS, routerId: 0x0a000001, onRecursiveMoved: () => moved++ });
  core.setNextHopCheck((nh) => tbl.check(nh));
  const a = core.addPeer({ address: '10.0.0.2', asn: 65001, localAddress: '10.0.0.1', localAddress6: 'fd00::1' });
  const b = core.addPeer({ address: '10.0.0.3', asn: LOCAL_AS, localAddress: '10.0.0.1', localAddress6: 'fd00::1' });
  const c = core.addPeer({ address: '10.0.3.2', asn: 65003, localAddress: '10.0.3.1', localAddress6: 'fd00:3::1' });
  core.peerUp(a, terms(0x0a000002, false));
  core.peerUp(b, terms(0x0a000003, true));
  core.peerUp(c, terms(0x0a000302, false));
  for (const id of [a, b, c]) drain(core, id);
  core.drainBestChanges();
  return { core, tbl, a, b, c, moved: () => moved };
}

const fib = (changes: BestChange[]): string[] => changes.map((x) => `${show(x.prefix)} ${x.best === null ? 'gone' : x.nextHops.join(',')}`);
const announced = (core: RibCore, id: number): string[] => drain(core, id).flatMap((x) => (x.kind === 'announce' ? x.prefixes.map(show) : []));
const usable = (core: RibCore, prefix: string, from: string): boolean | undefined => {
  const r = core.route(prefix);
  const p = r?.paths.find((x) => x.source.address === from);
  return p === undefined ? undefined : r!.best === p && p.attrs.unusable === null && !(p.inside && p.attrs.viaBgp !== null);
};

t.test('an IPv6 next hop covered only by another BGP route: unusable until that route exists, then via it', async (t) => {
  const { core, a, b, c, moved } = lab();
  // B's route has a next hop (a remote loopback) that no host route covers, and nothing in the Loc-RIB either
  core.applyUpdate(b, announce6(['2001:db8:90::/48'], ibgp(100), ['2001:db8:ff::7']));
  t.equal(core.route('2001:db8:90::/48')?.best.attrs.unusable?.code, 'unresolvable', 'unresolvable');
  t.same(fib(core.drainBestChanges()), [], 'never installed');
  t.same(announced(core, a), [], 'never advertised');
  t.same(announced(core, c), [], 'to no peer');
  t.equal(core.recursiveHops('2001:db8:ff::7'), null);

  // A announces the loopback's /64 with a next hop on the host's link: B's route resolves through it
  core.applyUpdate(a, announce6(['2001:db8:ff::/64'], ebgp(65001), ['fd00::2']));
  t.same(fib(core.drainBestChanges()).sort(), ['2001:db8:90::/48 2001:db8:ff::7', '2001:db8:ff::/64 fd00::2'], 'both to the FIB');
  t.equal(usable(core, '2001:db8:90::/48', '10.0.0.3'), true, 'usable through 2001:db8:ff::/64');
  t.same(core.recursiveHops('2001:db8:ff::7'), { via: '2001:db8:ff::/64', nextHops: ['fd00::2'] }, 'installed via A');
  t.same(announced(core, a), ['2001:db8:90::/48'], 'advertised once usable');

  // a more specific route of C takes over (longest match)
  const m0 = moved();
  core.applyUpdate(c, announce6(['2001:db8:ff::/120'], ebgp(65003), ['fd00:3::2']));
  t.ok(moved() > m0, 'the FIB is told to look again');
  t.same(core.recursiveHops('2001:db8:ff::7'), { via: '2001:db8:ff::/120', nextHops: ['fd00:3::2'] }, 'now via C\'s /120');
  core.drainBestChanges();

  // the covering routes go: unusable again, out of the FIB and withdrawn
  core.applyUpdate(c, withdraw6(['2001:db8:ff::/120']));
  t.same(core.recursiveHops('2001:db8:ff::7')?.via, '2001:db8:ff::/64', 'back to the /64');
  core.drainBestChanges();
  drain(core, a);
  core.applyUpdate(a, withdraw6(['2001:db8:ff::/64']));
  t.same(fib(core.drainBestChanges()).sort(), ['2001:db8:90::/48 gone', '2001:db8:ff::/64 gone'], 'the recursive route leaves the FIB with its cover');
  t.equal(core.route('2001:db8:90::/48')?.best.attrs.unusable?.code, 'unresolvable', 'unresolvable again');
  const out = drain(core, a).flatMap((x) => (x.kind === 'withdraw' ? x.prefixes.map(show) : []));
  t.ok(out.includes('2001:db8:90::/48'), 'and withdrawn from A');
  t.equal(core.recursiveHops('2001:db8:ff::7'), null);
});

t.test('IPv6: one level only, and not through a route that is itself unusable', async (t) => {
  const { core, a, b, c } = lab();
  core.applyUpdate(a, announce6(['2001:db8:ff::/64'], ebgp(65001), ['fd00::2']));
  // first level resolves through A's /64 ...
  core.applyUpdate(b, announce6(['2001:db8:a0::/48'], ibgp(100), ['2001:db8:ff::7']));
  t.equal(usable(core, '2001:db8:a0::/48', '10.0.0.3'), true, 'first level: usable');
  // ... and cannot resolve anything itself
  core.applyUpdate(c, announce6(['2001:db8:b0::/48'], ebgp(65003), ['2001:db8:a0::5']));
  t.equal(core.route('2001:db8:b0::/48')?.best.attrs.unusable?.code, 'unresolvable', 'second level: unresolvable (as BIRD)');
  // a covering route whose only path is unusable is no cover: the kernel would not have it
  core.applyUpdate(c, announce6(['2001:db8:c0::/48'], ebgp(65003), ['2001:db8:dead::1']));
  core.applyUpdate(b, announce6(['2001:db8:d0::/48'], ibgp(100), ['2001:db8:c0::9']));
  t.equal(core.route('2001:db8:d0::/48')?.best.attrs.unusable?.code, 'unresolvable', 'not through an unusable route');
  const installed = fib(core.drainBestChanges()).map((x) => x.split(' ')[0]).sort();
  t.same(installed, ['2001:db8:a0::/48', '2001:db8:ff::/64'], 'only the resolvable ones were installed');
});

t.test('IPv6 loops: a next hop inside the route itself never resolves through BGP', async (t) => {
  const { core, a, b } = lab();
  core.applyUpdate(a, announce6(['2001:db8:93::/48'], ebgp(65001), ['fd00::2']));
  core.applyUpdate(b, announce6(['2001:db8:93::/48'], ibgp(200), ['2001:db8:93::1']));
  const r = core.route('2001:db8:93::/48')!;
  t.equal(r.best.source.address, '10.0.0.2', 'A\'s path stays best: B\'s would resolve only through the route itself');
  const bp = r.paths.find((x) => x.source.address === '10.0.0.3')!;
  t.equal(bp.inside, true);
  t.equal(unusableWhy(bp)?.code, 'recursive-loop', 'shown as the loop case');
  t.same(fib(core.drainBestChanges()), ['2001:db8:93::/48 fd00::2']);
  // a more specific of itself: a /48 whose next hop is in a /64 of it that A announces
  core.applyUpdate(a, announce6(['2001:db8:92:3::/64'], ebgp(65001), ['fd00::2']));
  core.applyUpdate(b, announce6(['2001:db8:92::/48'], ibgp(100), ['2001:db8:92:3::1']));
  t.equal(usable(core, '2001:db8:92::/48', '10.0.0.3'), false, 'resolvable only through a more specific of itself: unusable');
  t.same(fib(core.drainBestChanges()), ['2001:db8:92:3::/64 fd00::2'], 'only the /64 reaches the FIB');
  // the same next hop (the same attribute set) serves a prefix it is not inside
  core.applyUpdate(b, announce6(['2001:db8:96::/48'], ibgp(100), ['2001:db8:92:3::1']));
  t.equal(usable(core, '2001:db8:96::/48', '10.0.0.3'), true, 'another prefix resolves through 2001:db8:92:3::/64 with it');
});

/** The reference: the next hop's first `len` bits equal the prefix's, compared bit by bit. */
function insideRef(prefix: string, nh: string): boolean {
  const a = parseIpv6(nh);
  const p = prefix6Bytes(prefix);
  for (let i = 0; i < prefix6Len(prefix); i++) {
    const bit = (x: Uint8Array): number => ((x[i >> 3] as number) >> (7 - (i & 7))) & 1;
    if (bit(a) !== bit(p)) return false;
  }
  return true;
}

t.test('nextHopInside for IPv6 agrees with a bitwise reference, and caches per set and length', async (t) => {
  // a small deterministic generator (no Math.random: a failure must replay)
  let x = 0x2545f491;
  const rnd = (n: number): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  // addresses from a small space, so that inside and outside both come up often
  const addr = (): string => `2001:db8:${rnd(4).toString(16)}:${rnd(4).toString(16)}::${rnd(4).toString(16)}`;
  const sets = Array.from({ length: 8 }, (_, i) => new AttrSet(`k${i}`, ebgp(65001), [addr()]));
  let inside = 0;
  let mismatches = 0;
  for (let i = 0; i < 2000; i++) {
    const set = sets[rnd(sets.length)]!;
    const len = [0, 1, 32, 47, 48, 63, 64, 100, 127, 128][rnd(10)]!;
    const prefix = parsePrefix6(`${addr()}/${len}`);
    const want = insideRef(prefix, set.nextHops[0]!);
    if (nextHopInside(prefix, set) !== want) mismatches++;
    if (want) inside++;
  }
  t.equal(mismatches, 0, 'no disagreement in 2000 cases');
  t.ok(inside > 100 && inside < 1900, `both answers came up (${inside} inside)`);
  for (const s of sets) t.ok(s.nh6 !== null && s.nh6 !== undefined && s.nh6.covers.size <= 10, 'one cover per length asked, kept on the set');
  // an IPv4 next hop on an IPv6 prefix (RFC 5549 the other way round is not ours): never inside
  const four = new AttrSet('v4', ebgp(65001), ['10.0.0.2']);
  t.equal(nextHopInside('::/0', four), false);
  t.equal(four.nh6, null, 'remembered as not IPv6');
});
