// src/daemon/reachability.ts reads the kernel over rtnetlink (fib/host-routes.ts); it used to read `ip -j` output.
// Here both read the same namespace, with routes of many shapes, and must give the same Reachability: the reference
// is the former reader's parsing of `ip -j -batch -` (kept below, as it was), against the kernel's own table.
// Also checked: the kernel filtered the dumps (strict dump checking), and what must stay out of the view does
// (skein's protocol, blackholes and the like, other tables).
import t, { type Test } from 'tap';
import type { Reachability, ResolvingRoute, ViaHop } from '../../bgp/index.js';
import { resolvingProtocols, addressText } from '../../src/daemon/reachability.js';
import { requires } from '../helpers/env.js';
import { Lab, nsExec } from '../helpers/netns.js';
import { reachAgent } from './reach-client.js';

const rootOk = (t: Test): boolean => requires(t as unknown as Parameters<typeof requires>[0], { root: true });

// ---- the former reader (iproute2's JSON), kept as the reference

interface IpHop { gateway?: string; via?: { family?: string; host?: string }; dev?: string; flags?: string[] }
interface IpRoute extends IpHop { dst?: string; type?: string; metric?: number; nexthops?: IpHop[] }

function viaOf(h: IpHop): ViaHop | undefined {
  if (h.via !== undefined) return undefined;
  return {
    ...(h.gateway !== undefined ? { gateway: h.gateway } : {}),
    ...(h.dev !== undefined ? { dev: h.dev } : {}),
    ...(h.flags?.includes('onlink') === true ? { onlink: true } : {}),
  };
}

function ipReachability(ns: string, protocols: readonly number[]): Reachability {
  const order = [...protocols].sort((a, b) => a - b);
  const batch = order.map((p) => `route show table main proto ${p}`).join('\n') + '\n';
  const sets: { fam: '-4' | '-6'; rs: IpRoute[] }[] = [];
  for (const fam of ['-4', '-6'] as const) {
    const lines = nsExec(ns, 'ip', [fam, '-j', '-batch', '-'], { input: batch }).split('\n').filter((l) => l.trim() !== '');
    if (lines.length !== order.length) throw new Error(`ip ${fam} -batch: ${lines.length} answers to ${order.length} dumps`);
    for (const l of lines) sets.push({ fam, rs: JSON.parse(l) as IpRoute[] });
  }
  const addrs = JSON.parse(nsExec(ns, 'ip', ['-j', 'addr', 'show'])) as { addr_info?: { local?: string }[] }[];
  const addresses = addrs.flatMap((a) => (a.addr_info ?? []).map((i) => i.local).filter((x): x is string => typeof x === 'string'));
  const routes: string[] = [];
  const resolving: ResolvingRoute[] = [];
  for (const { fam, rs } of sets) {
    for (const r of rs) {
      if (r.dst === undefined || (r.type !== undefined && r.type !== 'unicast')) continue;
      const dst = r.dst === 'default' ? (fam === '-4' ? '0.0.0.0/0' : '::/0') : r.dst;
      routes.push(dst);
      const known = (r.nexthops ?? [r]).map(viaOf).filter((h): h is ViaHop => h !== undefined);
      resolving.push({ dst, hops: known, ...(r.metric !== undefined ? { metric: r.metric } : {}) });
    }
  }
  resolving.sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : (a.metric ?? 0) - (b.metric ?? 0)));
  return { addresses: [...new Set(addresses)].sort(), routes: [...new Set(routes)].sort(), resolving };
}

/** `ip route add` in the namespace; false when this kernel refuses the shape (RTA_VIA needs Linux 5.2) */
function route(ns: string, args: string): boolean {
  try {
    nsExec(ns, 'ip', ['route', 'add', ...args.split(' ')]);
    return true;
  } catch {
    return false;
  }
}

t.test('addressText writes addresses as iproute2 (glibc inet_ntop) does', async (t) => {
  const six = (s: string): Uint8Array => {
    const [h, tail] = s.split('::') as [string, string | undefined];
    const words = (x: string): number[] => (x === '' ? [] : x.split(':').map((w) => parseInt(w, 16)));
    const a = words(h), b = tail === undefined ? [] : words(tail);
    const all = [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b];
    return Uint8Array.from(all.flatMap((w) => [w >> 8, w & 255]));
  };
  t.equal(addressText(Uint8Array.of(10, 0, 0, 1)), '10.0.0.1');
  t.equal(addressText(six('fd00::1')), 'fd00::1');
  t.equal(addressText(six('::')), '::');
  t.equal(addressText(six('::1')), '::1');
  t.equal(addressText(six('2001:db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1', 'the first of two equal zero runs');
  t.equal(addressText(six('::ffff:a00:1')), '::ffff:10.0.0.1', 'IPv4-mapped');
  t.equal(addressText(six('::a00:1')), '::10.0.0.1', 'IPv4-compatible');
  t.equal(addressText(six('::1:0:0')), '::1:0:0', 'not an IPv4 form: word 5 is neither 0 nor ffff');
});

t.test('the netlink reader gives what the ip -j reader gave, for routes of many shapes', async (t) => {
  if (!rootOk(t)) return;
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const ns = lab.ns('rch');
  lab.link(ns, ns, 'ra0', 'ra1');
  lab.link(ns, ns, 'rb0', 'rb1');
  lab.addr(ns, 'ra0', '10.1.0.1/24');
  lab.addr(ns, 'rb0', '10.2.0.1/24');
  lab.addr(ns, 'ra0', 'fd01::1/64');
  lab.addr(ns, 'rb0', 'fd02::1/64');
  lab.addr(ns, 'rb0', '10.3.0.1/32'); // no subnet route of its own
  const added = [
    'default via 10.1.0.254 proto static',
    '198.51.100.0/24 via 10.1.0.9 proto static',
    '203.0.113.0/24 proto static nexthop via 10.1.0.9 dev ra0 weight 1 nexthop via 10.2.0.9 dev rb0 weight 3',
    '192.0.2.0/24 via 172.16.0.1 dev ra0 onlink proto static',
    '10.5.5.5 dev rb0 proto boot', // a host route
    '10.6.0.0/16 via 10.1.0.9 metric 50 proto static',
    '10.6.0.0/16 via 10.2.0.9 metric 100 proto static',
    '10.7.0.0/16 via 10.1.0.9 proto 77', // a protocol no table names
    '10.11.0.0/16 dev ra0 proto dhcp',
    'blackhole 10.99.0.0/16 proto static',
    'unreachable 10.98.0.0/16 proto static',
    'prohibit 10.96.0.0/16 proto static',
    '10.97.0.0/16 via 10.1.0.9 proto 171', // skein's own
    '10.95.0.0/16 via 10.1.0.9 table 100 proto static', // another table
  ];
  for (const r of added) t.ok(route(ns, r), `ip route add ${r}`);
  for (const r of [
    '-6 default via fd01::254 proto static',
    '-6 fd03::/64 via fd01::9 proto static',
    '-6 fd04::/64 proto static nexthop via fd01::9 dev ra0 nexthop via fd02::9 dev rb0',
    '-6 fd05::5/128 dev rb0 proto static',
    '-6 fd06::/64 via fd01::9 metric 7 proto bird',
    '-6 blackhole fd99::/64 proto static',
    '-6 fd97::/64 via fd01::9 proto 171',
    '-6 ::ffff:10.20.0.0/112 dev ra0 proto static',
  ]) {
    const [, ...rest] = r.split(' ');
    try {
      nsExec(ns, 'ip', ['-6', 'route', 'add', ...rest]);
      t.pass(`ip -6 route add ${rest.join(' ')}`);
    } catch (e) {
      t.fail(String(e));
    }
  }
  // RFC 5549: an IPv4 route through an IPv6 gateway (Linux 5.2); treated as a link route by both readers
  const via6 = route(ns, '10.8.0.0/16 via inet6 fd01::9 dev ra0 proto static');
  t.comment(`RTA_VIA route: ${via6 ? 'added' : 'refused by this kernel'}`);

  const protocols = [...resolvingProtocols(171), 77];
  const agent = reachAgent(t, ns);
  const got = await agent.call<{ strict: boolean; reach: Reachability }>('read', { protocols });
  t.ok(got.strict, 'the kernel filters the dumps (NETLINK_GET_STRICT_CHK is set)');
  const want = ipReachability(ns, protocols);
  t.same(got.reach, want, 'the same Reachability as from ip -j');
  t.strictSame(JSON.stringify(got.reach), JSON.stringify(want), 'in the same order, with the same fields');

  // and the view is what it must be (whatever ip says)
  const r = got.reach;
  for (const p of ['0.0.0.0/0', '::/0', '198.51.100.0/24', '203.0.113.0/24', '192.0.2.0/24', '10.5.5.5', '10.6.0.0/16', '10.7.0.0/16',
    '10.11.0.0/16', '10.1.0.0/24', 'fd01::/64', 'fd03::/64', 'fd04::/64', 'fd05::5', 'fd06::/64']) t.ok(r.routes.includes(p), `${p} resolves`);
  for (const p of ['10.99.0.0/16', '10.98.0.0/16', '10.96.0.0/16', 'fd99::/64', '10.97.0.0/16', 'fd97::/64', '10.95.0.0/16']) {
    t.notOk(r.routes.includes(p), `${p} does not (blackhole, unreachable, prohibit, skein's protocol, another table)`);
  }
  const res = (dst: string): ResolvingRoute[] => (r.resolving ?? []).filter((x) => x.dst === dst);
  t.same(res('203.0.113.0/24')[0]?.hops, [{ gateway: '10.1.0.9', dev: 'ra0' }, { gateway: '10.2.0.9', dev: 'rb0' }], 'multipath: both hops');
  t.same(res('192.0.2.0/24')[0]?.hops, [{ gateway: '172.16.0.1', dev: 'ra0', onlink: true }], 'onlink');
  t.same(res('10.6.0.0/16').map((x) => x.metric), [50, 100], 'both metrics, lowest first');
  if (via6) t.same(res('10.8.0.0/16')[0]?.hops, [], 'a gateway of the other family: as a link route');
  t.ok(r.addresses.includes('10.3.0.1') && r.addresses.includes('fd02::1'), 'the host addresses');
  t.ok(r.routes.includes('::ffff:10.20.0.0/112'), 'an IPv4-mapped prefix in iproute2\'s text');
});
