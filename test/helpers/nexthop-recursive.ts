// The recursive-next-hop scenario against real BIRD 2 peers and the kernel (issue 15; RFC 4271 §9.1.2.1, RFC 2545
// for IPv6), one scenario for both families: test/interop/nexthop-recursive-bird.test.ts runs it over IPv4,
// test/interop/nexthop-recursive6-bird.test.ts over IPv6 (the two files were copies but for the addresses). skeind in a
// namespace with two eBGP peers, A and B. B announces REC with its loopback REC_NH as next hop, which no route of
// skein's host covers, and COVER itself with its own address: skein resolves the first through the second (a route
// in its Loc-RIB) and installs it via B, and it forwards (ping). When B withdraws the covering route the path is
// unusable: out of the kernel, withdrawn from A. Then another routing daemon on skein's host — a BIRD with a kernel
// protocol, no BGP — writes COVER via B into the kernel (proto bird): skeind reads the routes of every protocol but
// its own and follows kernel changes over rtnetlink (its poll is set to an hour here, so only the monitor can
// notice), and the prefix is installed again; when that daemon stops and its route goes, so does skein's. The loop
// case: B also announces LOOP with a next hop inside it; that path is unusable ('recursive-loop'), A's path for the
// prefix is installed instead and nothing flaps.
import type { Test } from 'tap';
import { Bird } from './bird.js';
import { requires } from './env.js';
import { nsExec, until } from './netns.js';
import { startSkeind, twoPeerLab } from './two-peer-lab.js';

/** The addresses of one family's run. */
export interface Family {
  v: 4 | 6;
  /** the namespaces' tag, the Node's name prefix (<tag>-a) and the pool's (<tag>-pool) */
  tag: string;
  metricsPort: number;
  /** the recursive route, its next hop (B's loopback), an address inside it to ping */
  REC: string;
  REC_NH: string;
  REC_HOST: string;
  /** B's route covering REC_NH */
  COVER: string;
  /** the loop case: a prefix whose next hop LOOP_NH lies inside it */
  LOOP: string;
  LOOP_NH: string;
  /** skein's and A's ends of link A, skein's and B's ends of link B */
  hostA: string;
  peerA: string;
  hostB: string;
  peerB: string;
  /** the IP pool (Calico's export filter passes pool routes between peers) */
  pool: string;
}

const birdA = (f: Family): string => `
router id 10.0.1.2;
protocol device { scan time 1; }
protocol static s${f.v} { ipv${f.v}; route ${f.LOOP} blackhole; }
protocol bgp sk {
  local ${f.peerA} as 65010; neighbor ${f.hostA} as 64512;
  hold time 30; connect retry time 2; error wait time 1, 5;
  ipv${f.v} { import all; export filter { bgp_path.prepend(65010); bgp_path.prepend(65010); accept; }; };
}
`;

const birdB = (f: Family, withCover: boolean): string => `
router id 10.0.2.2;
protocol device { scan time 1; }
protocol static s${f.v} { ipv${f.v}; route ${f.REC} blackhole; route ${f.LOOP} blackhole; ${withCover ? `route ${f.COVER} blackhole;` : ''} }
protocol bgp sk {
  local ${f.peerB} as 65020; neighbor ${f.hostB} as 64512;
  hold time 30; connect retry time 2; error wait time 1, 5;
  ipv${f.v} {
    import all;
    next hop keep;
    export filter {
      if net = ${f.REC} then bgp_next_hop = ${f.REC_NH};
      if net = ${f.LOOP} then bgp_next_hop = ${f.LOOP_NH};
      accept;
    };
  };
}
`;

/** Another routing daemon on skein's host: BIRD with a kernel protocol only, writing one route (proto bird). */
const birdLocal = (f: Family): string => `
router id 10.0.2.1;
protocol device { scan time 1; }
protocol static s${f.v} { ipv${f.v}; route ${f.COVER} via ${f.peerB}; }
protocol kernel k${f.v} { ipv${f.v} { export all; }; }
`;

function resources(f: Family): string {
  const bgp = f.v === 4 ? { ipv4Address: `${f.hostA}/24` } : { ipv4Address: '10.0.1.1/24', ipv6Address: `${f.hostA}/64` };
  const docs = [
    { apiVersion: 'projectcalico.org/v3', kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: false } },
    { apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: `${f.tag}-a` }, spec: { bgp } },
    // pool routes pass between peers (Calico's export filter), so A hears of what skein can use
    { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `${f.tag}-pool` }, spec: { cidr: f.pool, ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: false } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'a' }, spec: { peerIP: f.peerA, asNumber: 65010 } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'b' }, spec: { peerIP: f.peerB, asNumber: 65020 } },
  ];
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

interface KRoute { dst: string; gateway?: string; dev?: string; protocol?: string }
interface CtlPath { from: string; nextHops: string[]; usable?: boolean; unusableCode?: string | null }
interface CtlRoute { prefix: string; installed: boolean; best: CtlPath | null; paths: CtlPath[] }

export async function recursiveNextHops(t: Test, f: Family): Promise<void> {
  if (!requires(t, { root: true, commands: ['bird', 'birdc', 'ping'] })) return;
  const { REC, REC_NH, REC_HOST, COVER, LOOP, LOOP_NH, hostA, peerA: ipA, hostB, peerB: ipB } = f;
  const l = twoPeerLab(t, f.tag);
  const { lines, host: ns, a: nsA, b: nsB, ifB: sb } = l;
  if (f.v === 6) {
    // the lab's links carry IPv4 only: IPv6 addresses on both ends of both links
    for (const [n, dev, cidr] of [[l.host, l.ifA, `${hostA}/64`], [nsA, l.peerIfA, `${ipA}/64`], [l.host, l.ifB, `${hostB}/64`], [nsB, l.peerIfB, `${ipB}/64`]] as const) l.lab.addr(n, dev, cidr);
  }
  // B's loopback (the recursive next hop), an address inside REC to ping, and the loop case's next hop
  const host = f.v === 4 ? 32 : 128;
  for (const x of [`${REC_NH}/${host}`, `${REC_HOST}/${host}`, `${LOOP_NH}/${host}`]) l.lab.addr(nsB, 'lo', x);

  const peerA = new Bird(nsA);
  const peerB = new Bird(nsB);
  const local = new Bird(ns);
  t.teardown(async () => {
    await peerA.stop();
    await peerB.stop();
    await local.stop();
  });
  await peerA.start(birdA(f));
  await peerB.start(birdB(f, true));

  // an hour between polls: within this test only the rtnetlink monitor can tell skeind of a kernel change
  const { ctl } = startSkeind(l, { node: `${f.tag}-a`, resources: resources(f), metrics: `127.0.0.1:${f.metricsPort}`, config: ['fib: { nextHopScan: 3600 }', 'log: { level: info }'] });
  const route = async (prefix: string): Promise<CtlRoute | undefined> => (JSON.parse(await ctl('routes', '--json')) as { routes: CtlRoute[] }).routes.find((x) => x.prefix === prefix);
  const kernel = (): KRoute[] => JSON.parse(nsExec(ns, 'ip', [`-${f.v}`, '-j', 'route', 'show', 'table', 'main'])) as KRoute[];
  const kroute = (prefix: string): KRoute | undefined => kernel().find((x) => x.dst === prefix);
  const ping = (): true | undefined => {
    try {
      nsExec(ns, 'ping', [`-${f.v}`, '-c', '1', '-W', '1', REC_HOST], { timeoutMs: 5000 });
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
    // 1. Through a BGP route: B's COVER (next hop B's address, on the link) covers REC_NH.
    const k1 = await until(() => {
      const k = kroute(REC);
      return k?.gateway === ipB ? k : undefined;
    }, `${REC} installed through B's ${COVER}`, 60_000, 200);
    t.equal(k1!.dev, sb, `${REC} via ${ipB} on ${sb}, the covering BGP route's next hop, not via ${REC_NH}`);
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
    const viaB = loop!.paths.find((p) => p.from === ipB);
    t.equal(viaB?.usable, false, `${LOOP}: B's path, next hop ${LOOP_NH} inside it, is unusable`);
    t.equal(viaB?.unusableCode, 'recursive-loop', 'as the loop case');
    t.equal(loop!.best?.from, ipA, 'A\'s path is best despite its longer AS_PATH');
    t.equal(kroute(LOOP)?.gateway, ipA, `${LOOP} in the kernel via A`);

    // 2. B withdraws the covering route: unusable again, out of the kernel, withdrawn from A.
    peerB.reconfigure(birdB(f, false));
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
    await local.start(birdLocal(f));
    const cover = await until(() => {
      const k = kroute(COVER);
      return k !== undefined && String(k.protocol) === 'bird' ? k : undefined;
    }, `BIRD's kernel protocol wrote ${COVER}`, 20_000, 200);
    t.equal(cover!.gateway, ipB, `${COVER} via ${ipB}, proto bird`);
    const k3 = await until(() => {
      const k = kroute(REC);
      return k?.gateway === ipB ? k : undefined;
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
    t.equal(kroute(LOOP)?.gateway, ipA, `${LOOP} still via A`);
    t.notOk(kernel().some((x) => x.gateway === REC_NH || x.gateway === LOOP_NH), 'no kernel route via a recursive next hop itself');
    t.notOk(lines.some((l) => /"level":"(error|fatal)"/.test(l)), 'skeind logged no error');
  } catch (e) {
    diag();
    throw e;
  }
}
