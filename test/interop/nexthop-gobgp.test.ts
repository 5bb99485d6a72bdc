// Our own address as a next hop, from a real peer, against the real kernel (issue 15's MP_REACH / NEXT_HOP cases).
// test/interop/nexthop-bird covers the other bad next hops with BIRD 2, but BIRD 2.0.12 will not send a next hop equal to
// the neighbour's own address, so this case was tested in the engine only. GoBGP will, through an export policy
// whose set-next-hop names skein's address (without one it puts its own address on routes to an eBGP peer, as
// RFC 4271 §5.1.3 has it).
//
// skeind in a namespace with two eBGP peers: BIRD "good" announces 10.91.2.0/24 with a working next hop (itself)
// and a long AS_PATH; GoBGP "bad" announces the same prefix with a shorter AS_PATH (it would win) and next hop
// 10.0.2.1, skeind's own address on that link, and 10.91.7.0/24 with that next hop only.
// Asserted: the bad path is kept but unusable with the reason 'own-address' (RFC 4271 §6.3: a NEXT_HOP equal to the
// receiver's own address is not to be used), the kernel keeps the working route and never has a route via 10.0.2.1,
// the bad-only prefix is neither installed nor advertised to the other peer.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { requires } from '../helpers/env.js';
import { startSkeind, twoPeerLab } from '../helpers/two-peer-lab.js';
import { nsExec, nsSpawn, until } from '../helpers/netns.js';
import { Bird } from '../helpers/bird.js';

const BOTH = '10.91.2.0/24';
const BAD_ONLY = '10.91.7.0/24';
const OWN = '10.0.2.1'; // skeind's address on the link to GoBGP (two-peer-lab.ts)
/** announced by GoBGP with a working next hop (itself): the control that skein does pass GoBGP's routes on */
const GOOD_FROM_BAD = '10.91.8.0/24';

const birdGood = `
router id 10.0.1.2;
protocol device { scan time 1; }
protocol static s4 { ipv4; route ${BOTH} blackhole; }
protocol bgp sk {
  local 10.0.1.2 as 65010; neighbor 10.0.1.1 as 64512;
  hold time 30; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export filter { bgp_path.prepend(65010); bgp_path.prepend(65010); accept; }; };
}
`;

const gobgpConf = `[global.config]
  as = 65020
  router-id = "10.0.2.2"
  local-address-list = ["10.0.2.2"]
[global.apply-policy.config]
  export-policy-list = ["own-nh"]
  default-export-policy = "accept-route"
[[defined-sets.prefix-sets]]
  prefix-set-name = "bad"
  [[defined-sets.prefix-sets.prefix-list]]
    ip-prefix = "${BOTH}"
  [[defined-sets.prefix-sets.prefix-list]]
    ip-prefix = "${BAD_ONLY}"
[[policy-definitions]]
  name = "own-nh"
  [[policy-definitions.statements]]
    name = "to-skein-itself"
    [policy-definitions.statements.conditions.match-prefix-set]
      prefix-set = "bad"
    [policy-definitions.statements.actions]
      route-disposition = "accept-route"
    [policy-definitions.statements.actions.bgp-actions]
      set-next-hop = "${OWN}"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.0.2.1"
    peer-as = 64512
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 30
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
`;

function resources(): string {
  const docs = [
    { apiVersion: 'projectcalico.org/v3', kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: false } },
    { apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: 'nhg-a' }, spec: { bgp: { ipv4Address: '10.0.1.1/24' } } },
    // in an IP pool, so Calico's export filter would pass the routes on between the peers (no transit otherwise):
    // what keeps the bad-only prefix from the good peer is its next hop, not the filter
    { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'nhg-pool' }, spec: { cidr: '10.91.0.0/16', ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: false } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'good' }, spec: { peerIP: '10.0.1.2', asNumber: 65010 } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'bad' }, spec: { peerIP: '10.0.2.2', asNumber: 65020 } },
  ];
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

interface KRoute { dst: string; gateway?: string; nexthops?: { gateway?: string }[] }
interface CtlPath { from: string; nextHops: string[]; usable?: boolean; unusableReason?: string | null; unusableCode?: string | null }
interface CtlRoute { prefix: string; installed: boolean; best: CtlPath | null; paths: CtlPath[] }

t.test('skeind with a GoBGP peer that sends skein\'s own address as next hop: kept, unusable, never installed or passed on', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc', 'gobgpd', 'gobgp'] })) return;
  const l = twoPeerLab(t, 'nhg');
  const { lines, host: ns, a: nsGood, b: nsBad } = l;

  const good = new Bird(nsGood);
  t.teardown(async () => {
    await good.stop();
  });
  await good.start(birdGood);
  const gdir = join(l.dir, 'gobgp');
  mkdirSync(gdir);
  writeFileSync(join(gdir, 'gobgpd.toml'), gobgpConf);
  const gobgpd = nsSpawn(nsBad, 'gobgpd', ['-f', join(gdir, 'gobgpd.toml'), '-t', 'toml', '--api-hosts', '127.0.0.1:50051', '-l', 'info']);
  l.procs.push(gobgpd);
  let glog = '';
  gobgpd.stdout?.on('data', (d: Buffer) => (glog = (glog + d.toString()).slice(-5000)));
  gobgpd.stderr?.on('data', (d: Buffer) => (glog = (glog + d.toString()).slice(-5000)));
  const gobgp = (...args: string[]): string => nsExec(nsBad, 'gobgp', args, { timeoutMs: 5000 });
  // the API comes up a moment after the process starts
  await until(() => {
    try {
      gobgp('global');
      return true;
    } catch {
      return undefined;
    }
  }, 'gobgpd answers on its API', 20_000, 200);
  for (const p of [BOTH, BAD_ONLY]) gobgp('global', 'rib', 'add', p);
  gobgp('global', 'rib', 'add', GOOD_FROM_BAD);

  const { ctl } = startSkeind(l, { node: 'nhg-a', resources: resources(), metrics: '127.0.0.1:29978', config: ['fib: { nextHopScan: 1 }', 'log: { level: info }'] });
  const routes = async (): Promise<CtlRoute[]> => (JSON.parse(await ctl('routes', '--json')) as { routes: CtlRoute[] }).routes;
  const kernel = (): KRoute[] => JSON.parse(nsExec(ns, 'ip', ['-j', 'route', 'show', 'table', 'main'])) as KRoute[];

  try {
    const rs = await until(async () => {
      const r = await routes();
      const both = r.find((x) => x.prefix === BOTH);
      return both?.paths.length === 2 && r.some((x) => x.prefix === BAD_ONLY) ? r : undefined;
    }, 'both peers\' paths in skein', 60_000, 300);
    const both = rs!.find((x) => x.prefix === BOTH)!;
    const badPath = both.paths.find((p) => p.from === '10.0.2.2');
    t.same(badPath?.nextHops, [OWN], `GoBGP sent next hop ${OWN}, skein's own address, unchanged`);
    t.equal(badPath?.usable, false, 'that path is kept but unusable');
    t.equal(badPath?.unusableCode, 'own-address');
    t.match(badPath?.unusableReason, /10\.0\.2\.1/, 'the reason names the next hop');
    t.equal(both.best?.from, '10.0.1.2', `${BOTH}: the working path is best despite its longer AS_PATH`);
    const only = rs!.find((x) => x.prefix === BAD_ONLY)!;
    t.equal(only.best?.usable, false, `${BAD_ONLY}: its only path is unusable`);
    t.equal(only.best?.unusableCode, 'own-address');
    t.equal(only.installed, false, `${BAD_ONLY}: not installed`);

    const k = await until(() => {
      const kr = kernel();
      return kr.some((x) => x.dst === BOTH && x.gateway === '10.0.1.2') ? kr : undefined;
    }, `${BOTH} in the kernel via the good peer`, 20_000, 200);
    t.pass(`${BOTH} in the kernel via the good peer`);
    t.notOk(k!.some((x) => x.dst === BAD_ONLY), `${BAD_ONLY} not in the kernel`);
    t.notOk(k!.some((x) => x.gateway === OWN || x.nexthops?.some((h) => h.gateway === OWN) === true), `no kernel route via ${OWN}`);

    // The good peer gets GoBGP's usable route from skein (so skein does pass GoBGP's routes on, and has had its
    // chance to send the bad-only one, which GoBGP gave it first) but never the bad-only prefix.
    await until(() => good.routes().some((r) => r.prefix === GOOD_FROM_BAD && r.from === 'sk') || undefined, `${GOOD_FROM_BAD} reaches the good peer`, 20_000, 300);
    t.pass(`GoBGP's usable ${GOOD_FROM_BAD} is passed on to the good peer`);
    t.notOk(good.routes().some((r) => r.prefix === BAD_ONLY), `${BAD_ONLY} never advertised to the good peer`);
    t.notOk(lines.some((x) => /"level":"(error|fatal)"/.test(x)), 'skeind logged no error');
  } catch (e) {
    t.comment(`skein's table:\n${await ctl('routes').catch((x: unknown) => String(x))}`);
    t.comment(`skeind log (last lines):\n${lines.slice(-30).join('\n')}\ngobgpd:\n${glog}`);
    throw e;
  }
});
