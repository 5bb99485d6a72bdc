// IPv6 recursive next hops against real BIRD 2 peers and the kernel (issue 15; RFC 4271 §9.1.2.1, RFC 2545; the
// engine side is test/engine-nexthop-recursive6.test.ts; the IPv4 one is test/nexthop-recursive-bird.test.ts, which
// this follows step by step). skeind in a namespace with two eBGP peers over IPv6 sessions, A and B. B announces
// 2001:db8:90::/48 with its loopback 2001:db8:ff::7 as next hop, which no route of skein's host covers, and
// 2001:db8:ff::/64 itself with its own address: skein resolves the first through the second (a Loc-RIB route) and
// installs it via fd00:2::2, and it forwards (ping). When B withdraws the covering route the path is unusable: out
// of the kernel, withdrawn from A. Then another routing daemon on skein's host (BIRD with a kernel protocol only)
// writes 2001:db8:ff::/64 via fd00:2::2 (proto bird): skeind follows the kernel over rtnetlink (its poll is an hour
// here) and installs the prefix again; when that daemon stops, skein's route goes too. The loop case: B announces
// 2001:db8:97::/48 with a next hop inside it; that path is 'recursive-loop', A's path is installed and nothing flaps.
import t from 'tap';

import { requires } from './helpers/env.js';
import { startSkeind, twoPeerLab } from './helpers/two-peer-lab.js';
import { nsExec, until } from './helpers/netns.js';
import { Bird } from './helpers/bird.js';

const REC = '2001:db8:90::/48';
const REC_NH = '2001:db8:ff::7';
const REC_HOST = '2001:db8:90::1';
const COVER = '2001:db8:ff::/64';
const LOOP = '2001:db8:97::/48';
const LOOP_NH = '2001:db8:97::1';

const birdA = `
router id 10.0.1.2;
protocol device { scan time 1; }
protocol static s6 { ipv6; route ${LOOP} blackhole; }
protocol bgp sk {
  local fd00:1::2 as 65010; neighbor fd00:1::1 as 64512;
  hold time 30; connect retry time 2; error wait time 1, 5;
  ipv6 { import all; export filter { bgp_path.prepend(65010); bgp_path.prepend(65010); accept; }; };
}
`;

const birdB = (withCover: boolean): string => `
router id 10.0.2.2;
protocol device { scan time 1; }
protocol static s6 { ipv6; route ${REC} blackhole; route ${LOOP} blackhole; ${withCover ? `route ${COVER} blackhole;` : ''} }
protocol bgp sk {
  local fd00:2::2 as 65020; neighbor fd00:2::1 as 64512;
  hold time 30; connect retry time 2; error wait time 1, 5;
  ipv6 {
    import all;
    next hop keep;
    export filter {
      if net = ${REC} then bgp_next_hop = ${REC_NH};
      if net = ${LOOP} then bgp_next_hop = ${LOOP_NH};
      accept;
    };
  };
}
`;

/** Another routing daemon on skein's host: BIRD with a kernel protocol only, writing one route (proto bird). */
const birdLocal = `
router id 10.0.2.1;
protocol device { scan time 1; }
protocol static s6 { ipv6; route ${COVER} via fd00:2::2; }
protocol kernel k6 { ipv6 { export all; }; }
`;

function resources(): string {
  const docs = [
    { apiVersion: 'projectcalico.org/v3', kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: false } },
    { apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: 'nr6-a' }, spec: { bgp: { ipv4Address: '10.0.1.1/24', ipv6Address: 'fd00:1::1/64' } } },
    // pool routes pass between peers (Calico's export filter), so A hears of what skein can use
    { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'nr6-pool' }, spec: { cidr: '2001:db8:80::/41', ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: false } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'a' }, spec: { peerIP: 'fd00:1::2', asNumber: 65010 } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'b' }, spec: { peerIP: 'fd00:2::2', asNumber: 65020 } },
  ];
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

interface KRoute { dst: string; gateway?: string; dev?: string; protocol?: string }
interface CtlPath { from: string; nextHops: string[]; usable?: boolean; unusableCode?: string | null }
interface CtlRoute { prefix: string; installed: boolean; best: CtlPath | null; paths: CtlPath[] }

t.test('skeind resolves IPv6 next hops through BGP routes and other daemons\' kernel routes, one level, loop-safe', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc', 'ping'] })) return;
  const l = twoPeerLab(t, 'nr6');
  const { lines, host: ns, a: nsA, b: nsB, ifB: sb } = l;
  // B's loopback (the recursive next hop), an address inside REC to ping, and the loop case's next hop
  for (const [ns, dev, cidr] of [[l.host, l.ifA, 'fd00:1::1/64'], [nsA, l.peerIfA, 'fd00:1::2/64'], [l.host, l.ifB, 'fd00:2::1/64'], [nsB, l.peerIfB, 'fd00:2::2/64']] as const) l.lab.addr(ns, dev, cidr);
  for (const x of [`${REC_NH}/128`, `${REC_HOST}/128`, `${LOOP_NH}/128`]) l.lab.addr(nsB, 'lo', x);

  const peerA = new Bird(nsA);
  const peerB = new Bird(nsB);
  const local = new Bird(ns);
  t.teardown(async () => {
    await peerA.stop();
    await peerB.stop();
    await local.stop();
  });
  await peerA.start(birdA);
  await peerB.start(birdB(true));

  // an hour between polls: within this test only the rtnetlink monitor can tell skeind of a kernel change
  const { ctl } = startSkeind(l, { node: 'nr6-a', resources: resources(), metrics: '127.0.0.1:29982', config: ['fib: { nextHopScan: 3600 }', 'log: { level: info }'] });
  const route = async (prefix: string): Promise<CtlRoute | undefined> => (JSON.parse(await ctl('routes', '--json')) as { routes: CtlRoute[] }).routes.find((x) => x.prefix === prefix);
  const kernel = (): KRoute[] => JSON.parse(nsExec(ns, 'ip', ['-6', '-j', 'route', 'show', 'table', 'main'])) as KRoute[];
  const kroute = (prefix: string): KRoute | undefined => kernel().find((x) => x.dst === prefix);
  const ping = (): true | undefined => {
    try {
      nsExec(ns, 'ping', ['-6', '-c', '1', '-W', '1', REC_HOST], { timeoutMs: 5000 });
      return true;
    } catch {
      return undefined;
    }
  };
  const atA = (prefix: string): boolean => peerA.routes().some((r) => r.prefix === prefix && r.from === 'sk');
  const diag = (): void => {
    t.comment(`skeind log (last lines):\n${lines.slice(-30).join('\n')}`);
    t.comment(`kernel:\n${JSON.stringify(kernel())}`);
  };

  try {
    // 1. Through a BGP route: B's 2001:db8:ff::/64 (next hop fd00:2::2, on the link) covers 2001:db8:ff::7.
    const k1 = await until(() => {
      const k = kroute(REC);
      return k?.gateway === 'fd00:2::2' ? k : undefined;
    }, `${REC} installed through B's ${COVER}`, 60_000, 200);
    t.equal(k1!.dev, sb, `${REC} via fd00:2::2 on ${sb}, the covering BGP route's next hop, not via ${REC_NH}`);
    t.ok(['171', 'skein'].includes(String(k1!.protocol)), 'as skein\'s route');
    const r1 = await route(REC);
    t.equal(r1?.best?.usable, true, 'usable');
    t.same(r1?.best?.nextHops, [REC_NH], 'the BGP next hop itself is unchanged in the RIB');
    await until(ping, `ping ${REC_HOST} through ${REC}`, 15_000, 200);
    t.pass(`${REC_HOST} answers through the route resolved through another BGP route`);
    await until(() => atA(REC) || undefined, `${REC} advertised to A`, 20_000, 300);
    t.pass(`${REC} advertised to A once usable`);

    // the loop case: B's path for LOOP has a next hop inside it, reachable only through BGP routes
    const loop = await until(async () => {
      const r = await route(LOOP);
      return r !== undefined && r.paths.length === 2 ? r : undefined;
    }, `both paths of ${LOOP}`, 20_000, 300);
    const viaB = loop!.paths.find((p) => p.from === 'fd00:2::2');
    t.equal(viaB?.usable, false, `${LOOP}: B's path, next hop ${LOOP_NH} inside it, is unusable`);
    t.equal(viaB?.unusableCode, 'recursive-loop', 'as the loop case');
    t.equal(loop!.best?.from, 'fd00:1::2', 'A\'s path is best despite its longer AS_PATH');
    t.equal(kroute(LOOP)?.gateway, 'fd00:1::2', `${LOOP} in the kernel via A`);

    // 2. B withdraws the covering route: unusable again, out of the kernel, withdrawn from A.
    peerB.reconfigure(birdB(false));
    await until(() => (kroute(REC) === undefined ? true : undefined), `${REC} out of the kernel once ${COVER} is withdrawn`, 30_000, 200);
    t.pass(`${REC} left the kernel with its covering BGP route`);
    const r2 = await until(async () => {
      const r = await route(REC);
      return r?.best?.usable === false ? r : undefined;
    }, `${REC} unusable`, 20_000, 300);
    t.equal(r2!.best?.unusableCode, 'unresolvable');
    await until(() => (atA(REC) ? undefined : true), `${REC} withdrawn from A`, 20_000, 300);
    t.pass(`${REC} withdrawn from A`);

    // 3. Another routing daemon on the host writes the covering route into the kernel (proto bird).
    await local.start(birdLocal);
    const cover = await until(() => {
      const k = kroute(COVER);
      return k !== undefined && String(k.protocol) === 'bird' ? k : undefined;
    }, `BIRD's kernel protocol wrote ${COVER}`, 20_000, 200);
    t.equal(cover!.gateway, 'fd00:2::2', `${COVER} via fd00:2::2, proto bird`);
    const k3 = await until(() => {
      const k = kroute(REC);
      return k?.gateway === 'fd00:2::2' ? k : undefined;
    }, `${REC} installed through the other daemon's kernel route (seen on the monitor: the poll is an hour)`, 30_000, 200);
    t.ok(['171', 'skein'].includes(String(k3!.protocol)), `${REC} back, via the proto-bird route's gateway`);
    await until(ping, `ping ${REC_HOST} again`, 15_000, 200);
    t.pass('and forwards');
    t.equal((await route(REC))?.best?.usable, true, 'usable again');

    // 4. That daemon stops (BIRD removes its kernel routes): skein's route through it goes too.
    await local.stop();
    await until(() => (kroute(COVER) === undefined ? true : undefined), `${COVER} gone with BIRD`, 20_000, 200);
    await until(() => (kroute(REC) === undefined ? true : undefined), `${REC} out of the kernel once the other daemon's route is gone`, 30_000, 200);
    t.pass(`${REC} left the kernel when the other daemon's route went`);

    // nothing flapped for the loop prefix, and skeind never wrote a route via the recursive next hop itself
    t.equal(kroute(LOOP)?.gateway, 'fd00:1::2', `${LOOP} still via A`);
    t.notOk(kernel().some((x) => x.gateway === REC_NH || x.gateway === LOOP_NH), 'no kernel route via a recursive next hop itself');
    t.notOk(lines.some((l) => /"level":"(error|fatal)"/.test(l)), 'skeind logged no error');
  } catch (e) {
    diag();
    throw e;
  }
});
