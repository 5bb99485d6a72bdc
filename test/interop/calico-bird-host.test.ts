// skein against Calico+BIRD, host by host (issue 13): three hosts, a plain pool, an IPIP pool (Always), an IPIP pool
// (CrossSubnet) and a VXLAN pool, programClusterRoutes Enabled (so BIRD programs the IPIP routes). First every host
// runs BIRD 2 configured as confd renders its templates for this datastore (configFor below); the kernel routes of
// every host are recorded. Then host-b's BIRD is replaced by skeind on the same datastore, and the routes are
// recorded again: host-b must have what BIRD had (same destinations, blackholes, gateways, devices, onlink, metrics;
// only the protocol number differs), and host-a and host-c — still BIRD — must not see a difference either.
//
// A top-of-rack router (BIRD 2 in the fabric namespace, AS 65009) is an eBGP peer of host-a and host-b (node-specific
// BGPPeers) and announces a route inside the plain pool and one outside every pool. So the comparison also covers the
// kernel metric of eBGP-learned routes (BIRD attaches LOCAL_PREF 100 to what it learns over eBGP, bgp_decode_attrs,
// so SetMetricForBGPRoutes writes 2^31-1-100), what the mesh peers host-a and host-c receive from skein (the pool
// route, never the one outside the pools: calico_export_to_bgp_peers) and what the ToR receives from skein and from
// BIRD's host-a (the same set).
//
// BIRD 2 instead of Calico's BIRD 1.6 fork: the fork's `krt_tunnel = "tunl0"` is written with BIRD 2's route
// attributes `ifname = "tunl0"; onlink = true;` (the route the fork installs: via the peer, dev tunl0, onlink), and the
// templates' BIRD 1 protocol syntax becomes channels. Everything else follows node/filesystem/etc/calico/confd/
// templates (bird.cfg, bird_aggr.cfg, bird_ipam.cfg) and confd/pkg/backends/calico/bgp_processor.go (processIPPool,
// extraStatementForKernelProgrammingIPIPNoEncap, SetMetricForBGPRoutes).
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import { Bird } from '../helpers/bird.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';

const root = join(`${import.meta.dirname}/..`, '..');
const skeind = join(root, 'dist/src/skeind.js');
const v3 = 'projectcalico.org/v3';
const AS = 64512;

const POOLS = [
  { name: 'plain', cidr: '10.65.0.0/16', ipipMode: 'Never', vxlanMode: 'Never' },
  { name: 'ipip', cidr: '10.66.0.0/16', ipipMode: 'Always', vxlanMode: 'Never' },
  { name: 'cross', cidr: '10.68.0.0/16', ipipMode: 'CrossSubnet', vxlanMode: 'Never' },
  { name: 'vxlan', cidr: '10.67.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' },
] as const;
const HOSTS = [
  { name: 'host-a', ip: '10.0.0.1', n: 0 },
  { name: 'host-b', ip: '10.0.0.2', n: 1 },
  { name: 'host-c', ip: '10.0.0.3', n: 2 },
] as const;
type Host = (typeof HOSTS)[number];
const SUBNET = '10.0.0.0/24';
const TOR = { ip: '10.0.0.9', as: 65009 };
/** The hosts with a node-specific eBGP BGPPeer to the ToR. */
const TOR_PEERS = new Set(['host-a', 'host-b']);
const TOR_ROUTES = { pool: '10.65.200.0/26', outside: '198.18.0.0/24' };
// krt_tunnel="tunl0" in BIRD 2 words: setting ifname drops the gateway, so it is put back, onlink.
// (the recipe of BIRD's own change log for an IP-in-IP overlay, commit 7144c9ca)
// Only for learned routes: the fork ignores krt_tunnel on the node's own blackholes, BIRD 2 cannot give them a gateway.
const TUNNEL = 'if (defined(bgp_next_hop)) then { ifname = "tunl0"; onlink = true; gw = bgp_next_hop; }';
const blocksOf = (h: Host): string[] => POOLS.map((p) => `${p.cidr.split('.').slice(0, 2).join('.')}.${h.n}.0/26`);

function resources(): string {
  const docs: unknown[] = [
    { apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: AS, nodeToNodeMeshEnabled: true, programClusterRoutes: 'Enabled' } },
    ...POOLS.map((p) => ({ apiVersion: v3, kind: 'IPPool', metadata: { name: p.name }, spec: { cidr: p.cidr, blockSize: 26, ipipMode: p.ipipMode, vxlanMode: p.vxlanMode } })),
  ];
  for (const h of HOSTS) {
    docs.push({ apiVersion: v3, kind: 'Node', metadata: { name: h.name }, spec: { bgp: { ipv4Address: `${h.ip}/24` } } });
    if (TOR_PEERS.has(h.name)) docs.push({ apiVersion: v3, kind: 'BGPPeer', metadata: { name: `${h.name}-tor` }, spec: { node: h.name, peerIP: TOR.ip, asNumber: TOR.as } });
    for (const b of blocksOf(h)) docs.push({ apiVersion: v3, kind: 'BlockAffinity', metadata: { name: `${h.name}-${b.replace(/[./]/g, '-')}` }, spec: { node: h.name, cidr: b, state: 'confirmed', deleted: 'false' } });
  }
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

/** BIRD 2 as confd would configure `h` for resources() (see the header for the two translations from BIRD 1). */
function configFor(h: Host): string {
  const blocks = blocksOf(h);
  // processIPPool for the kernel: VXLAN rejected; IPIP (programClusterRoutes Enabled) with the tunnel statement;
  // plain accepted. Statements sorted as confd sorts them (the pools do not overlap, so order does not matter).
  const kernelPool = POOLS.map((p) => {
    if (p.vxlanMode !== 'Never') return `  if (net ~ ${p.cidr}) then { reject; }`;
    if (p.ipipMode === 'Always') return `  if (net ~ ${p.cidr}) then { ${TUNNEL} accept; }`;
    if (p.ipipMode === 'CrossSubnet') return `  if (net ~ ${p.cidr}) then { if (defined(bgp_next_hop) && (bgp_next_hop ~ ${SUBNET})) then accept; ${TUNNEL} accept; }`;
    return `  if (net ~ ${p.cidr}) then { accept; }`;
  }).sort();
  const lines = [
    `router id ${h.ip};`,
    'log stderr { warning, error, fatal, bug };',
    'protocol device { scan time 2; }',
    // bird.cfg: direct routes of every interface but the workloads' and kube-ipvs0. BIRD 2's kernel protocol would
    // write them back as duplicates of the kernel's own connected routes (the 1.6 fork does not): kept out below.
    'protocol direct { ipv4; interface -"cali*", -"kube-ipvs*", "*"; }',
    // bird_aggr.cfg: a blackhole per affine block, and calico_aggr().
    `protocol static { ipv4; ${blocks.map((b) => `route ${b} blackhole;`).join(' ')} }`,
    'function calico_aggr() {',
    ...blocks.flatMap((b) => [`  if (net = ${b}) then { accept; }`, `  if (net ~ ${b}) then { reject; }`]),
    '}',
    // bird_ipam.cfg: calico_export_to_bgp_peers(); every pool is exported (VXLAN ones too).
    'function calico_export_to_bgp_peers() {',
    '  calico_aggr();',
    ...POOLS.map((p) => `  if (net ~ ${p.cidr}) then { accept; }`),
    '}',
    'filter calico_kernel_programming {',
    '  if (source = RTS_DEVICE) then reject;',
    // SetMetricForBGPRoutes
    '  if (source = RTS_BGP) then {',
    '    krt_metric = 1024;',
    '    if (defined(bgp_local_pref)) then krt_metric = 2147483647 - bgp_local_pref;',
    '  }',
    ...kernelPool,
    '  accept;',
    '}',
    // `metric 0`: Calico's BIRD fork (1.6) leaves the kernel protocol's metric at 0, so krt_metric is what goes into
    // the kernel (sysdep/linux/netlink.c nl_send_route); BIRD 2's default of 32 would override it.
    'protocol kernel { ipv4 { import all; export filter calico_kernel_programming; }; metric 0; learn; persist; scan time 2; graceful restart; merge paths on; }',
    // bird.cfg bgp_template and the mesh peers; export: confd's export filter sets LOCAL_PREF from the metric
    // (buildExportFilter) before calico_export_to_bgp_peers.
    'template bgp bgp_template {',
    `  local as ${AS};`,
    '  graceful restart;',
    '  connect delay time 2;',
    '  connect retry time 5;',
    '  error wait time 5, 30;',
    '  ipv4 { gateway recursive; add paths on; import all;',
    '    export filter { if (source = RTS_BGP && defined(bgp_local_pref)) then krt_metric = 2147483647 - bgp_local_pref; else { if (!defined(krt_metric)) then krt_metric = 1024; bgp_local_pref = 2147483647 - krt_metric; } calico_export_to_bgp_peers(); reject; };',
    '  };',
    '}',
  ];
  for (const p of HOSTS) {
    if (p === h) continue;
    lines.push(`protocol bgp Mesh_${p.ip.replace(/\./g, '_')} from bgp_template { neighbor ${p.ip} as ${AS}; source address ${h.ip};${p.n > h.n ? ' passive on;' : ''} }`);
  }
  // bird.cfg.template's node-specific peers
  if (TOR_PEERS.has(h.name)) lines.push(`protocol bgp Node_${TOR.ip.replace(/\./g, '_')} from bgp_template { neighbor ${TOR.ip} as ${TOR.as}; source address ${h.ip}; }`);
  return `${lines.join('\n')}\n`;
}

interface KRoute { dst: string; type?: string; gateway?: string; dev?: string; flags?: string[]; protocol?: string; metric?: number }
/** The routes a routing daemon wrote (BIRD: "bird"; skein: 171), normalised to what must match. */
function daemonRoutes(ns: string): { key: string[]; metric: Record<string, number> } {
  const all = JSON.parse(nsExec(ns, 'ip', ['-j', 'route', 'show', 'table', 'main'])) as KRoute[];
  const mine = all.filter((r) => r.protocol === 'bird' || r.protocol === '171' || r.protocol === 'skein');
  const metric: Record<string, number> = {};
  for (const r of mine) metric[r.dst] = r.metric ?? 0;
  return {
    key: mine.map((r) => [r.dst, r.type ?? 'unicast', r.gateway ? `via ${r.gateway}` : '', r.dev ? `dev ${r.dev}` : '', r.flags?.includes('onlink') ? 'onlink' : ''].filter(Boolean).join(' ')).sort(),
    metric,
  };
}

t.test('an IPIP pool and a VXLAN pool: skein\'s host has the kernel routes Calico+BIRD would produce', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return;
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skeind-c2bird-'));
  const procs: ChildProcess[] = [];
  const birds = new Map<string, Bird>();
  const logs: string[] = [];
  t.teardown(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const b of birds.values()) await b.stop();
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const fabric = lab.ns('fab');
  nsExec(fabric, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  nsExec(fabric, 'ip', ['link', 'set', 'br0', 'up']);
  const nsOf = new Map<string, string>();
  for (const h of HOSTS) {
    const ns = lab.ns(h.name.slice(-1));
    nsOf.set(h.name, ns);
    lab.link(fabric, ns, `p${h.n}`, 'eth0');
    nsExec(fabric, 'ip', ['link', 'set', `p${h.n}`, 'master', 'br0']);
    lab.addr(ns, 'eth0', `${h.ip}/24`);
    if (!nsExec(ns, 'ip', ['-br', 'link']).includes('tunl0')) {
      try {
        nsExec(ns, 'ip', ['link', 'add', 'tunl0', 'type', 'ipip']);
      } catch {
        nsExec(ns, 'ip', ['link', 'add', 'tunl0', 'type', 'veth', 'peer', 'name', 'tunl0p']);
        nsExec(ns, 'ip', ['link', 'set', 'tunl0p', 'up']);
      }
    }
    nsExec(ns, 'ip', ['link', 'set', 'tunl0', 'up']);
    // Felix gives tunl0 an address from the node's IPIP block (BIRD also needs it to treat tunl0 as up).
    lab.addr(ns, 'tunl0', `10.66.${h.n}.1/32`);
  }
  // The ToR, on the fabric's bridge.
  lab.addr(fabric, 'br0', `${TOR.ip}/24`);
  const tor = new Bird(fabric);
  birds.set('tor', tor);
  await tor.start([
    `router id ${TOR.ip};`,
    'protocol device { scan time 2; }',
    `protocol static tor_routes { ipv4; route ${TOR_ROUTES.pool} blackhole; route ${TOR_ROUTES.outside} blackhole; }`,
    `template bgp host { local ${TOR.ip} as ${TOR.as}; hold time 30; connect retry time 2; ipv4 { import all; export where proto = "tor_routes"; }; }`,
    ...HOSTS.filter((h) => TOR_PEERS.has(h.name)).map((h) => `protocol bgp tor_${h.name.slice(-1)} from host { neighbor ${h.ip} as ${AS}; }`),
    '',
  ].join('\n'));
  const fromHost = (h: string): string[] => tor.routes('protocol', `tor_${h.slice(-1)}`).map((r) => r.prefix).sort();
  // Every host: its own three blackholes (plain, IPIP, CrossSubnet; not VXLAN), the other hosts' plain and
  // CrossSubnet blocks via the peer, their IPIP blocks via the peer on tunl0 onlink, and nothing of the VXLAN pool;
  // the ToR's pool route everywhere, its route outside the pools on its two eBGP peers only.
  const expectedCount = (h: string): number => 3 + 2 * 3 + 1 + (TOR_PEERS.has(h) ? 1 : 0);
  const settled = (ns: string): boolean => daemonRoutes(ns).key.length === expectedCount(HOSTS.find((h) => nsOf.get(h.name) === ns)!.name);

  try {
    // 1. The reference: BIRD everywhere.
    for (const h of HOSTS) {
      const b = new Bird(nsOf.get(h.name)!);
      birds.set(h.name, b);
      await b.start(configFor(h));
    }
    for (const h of HOSTS) await until(() => settled(nsOf.get(h.name)!), `${h.name}: BIRD programmed ${expectedCount(h.name)} routes`, 60_000, 250);
    const reference = new Map(HOSTS.map((h) => [h.name, daemonRoutes(nsOf.get(h.name)!)]));
    t.same(reference.get('host-b')!.key, [
      '10.65.0.0/26 unicast via 10.0.0.1 dev eth0', '10.65.1.0/26 blackhole', '10.65.2.0/26 unicast via 10.0.0.3 dev eth0',
      '10.66.0.0/26 unicast via 10.0.0.1 dev tunl0 onlink', '10.66.1.0/26 blackhole', '10.66.2.0/26 unicast via 10.0.0.3 dev tunl0 onlink',
      '10.65.200.0/26 unicast via 10.0.0.9 dev eth0',
      '10.68.0.0/26 unicast via 10.0.0.1 dev eth0', '10.68.1.0/26 blackhole', '10.68.2.0/26 unicast via 10.0.0.3 dev eth0',
      '198.18.0.0/24 unicast via 10.0.0.9 dev eth0',
    ].sort(), 'the reference is what Calico programs (checks the BIRD rendering itself)');
    t.notOk(reference.get('host-c')!.key.some((k) => k.startsWith(TOR_ROUTES.outside)), 'reference: the ToR\'s route outside the pools does not cross the mesh');
    const torFromBird = fromHost('host-b');

    // 2. host-b: skeind instead of BIRD, same datastore.
    const hb = nsOf.get('host-b')!;
    await birds.get('host-b')!.stop();
    birds.delete('host-b');
    nsExec(hb, 'ip', ['route', 'flush', 'proto', 'bird']);
    t.same(daemonRoutes(hb).key, [], 'host-b starts clean');
    const resFile = join(dir, 'resources.yaml');
    writeFileSync(resFile, resources());
    const cfg = join(dir, 'host-b.yaml');
    writeFileSync(cfg, `nodeName: host-b\ndatastore: { type: file, path: ${resFile} }\ncontrol: { socket: ${join(dir, 'host-b.sock')} }\nmetrics: { listen: "" }\n`);
    const child = nsSpawn(hb, 'node', [skeind, '--config', cfg]);
    procs.push(child);
    child.stdout!.on('data', (d: Buffer) => logs.push(...d.toString().split('\n').filter(Boolean)));
    child.stderr!.on('data', (d: Buffer) => logs.push(`stderr: ${d.toString()}`));
    await until(() => settled(hb), 'host-b: skein programmed its routes', 90_000, 250);
    for (const h of ['host-a', 'host-c']) {
      await until(() => birds.get(h)!.protocol('Mesh_10_0_0_2').bgpState === 'Established', `${h}: BIRD's session to skein Established`, 60_000, 250);
    }
    // Let BIRD's graceful-restart stale paths be replaced by skein's announcements.
    await until(() => ['host-a', 'host-c'].every((h) => birds.get(h)!.routes('protocol', 'Mesh_10_0_0_2').length === 5), 'BIRD hosts learned host-b\'s four blocks and the ToR\'s pool route from skein (every pool is exported)', 60_000, 250);
    await until(() => fromHost('host-b').join() === torFromBird.join(), 'the ToR has from skein what it had from BIRD on host-b', 60_000, 250);
    for (const h of HOSTS) {
      const now = daemonRoutes(nsOf.get(h.name)!);
      t.same(now.key, reference.get(h.name)!.key, `${h.name}: the same kernel routes as with BIRD on host-b`);
    }
    // The metric of every route too: learned ones at 2^31-1 minus LOCAL_PREF (1024 here), blackholes at none (0), on
    // skein's host as on BIRD's, and on the BIRD hosts for what they learn from skein (its LOCAL_PREF).
    t.same(reference.get('host-b')!.metric, {
      '10.65.0.0/26': 1024, '10.65.1.0/26': 0, '10.65.2.0/26': 1024, '10.66.0.0/26': 1024, '10.66.1.0/26': 0,
      '10.66.2.0/26': 1024, '10.68.0.0/26': 1024, '10.68.1.0/26': 0, '10.68.2.0/26': 1024,
      // eBGP-learned: LOCAL_PREF 100 attached on import, so 2^31-1-100
      '10.65.200.0/26': 2147483547, '198.18.0.0/24': 2147483547,
    }, 'the reference\'s metrics are what Calico\'s BIRD writes (checks the rendering)');
    for (const h of HOSTS) {
      t.same(daemonRoutes(nsOf.get(h.name)!).metric, reference.get(h.name)!.metric, `${h.name}: every route at the metric it had with BIRD on host-b`);
    }
    t.equal(reference.get('host-c')!.metric[TOR_ROUTES.pool], 2147483547, 'reference: host-c, over the mesh, at the LOCAL_PREF (100) the route came in with');
    // the export allow-list at real mesh peers configured as confd renders them
    for (const h of ['host-a', 'host-c']) {
      const got = birds.get(h)!.routes('protocol', 'Mesh_10_0_0_2').map((r) => r.prefix).sort();
      t.same(got, [...blocksOf(HOSTS[1]), TOR_ROUTES.pool].sort(), `${h} (BIRD mesh peer) gets from skein its four blocks and the ToR's pool route`);
      t.notOk(got.includes(TOR_ROUTES.outside), `${h}: NOT the ToR's route outside the pools`);
      t.notOk(got.some((p) => p.startsWith('10.0.0.')), `${h}: NOT the host subnet`);
    }
    const r200 = birds.get('host-c')!.routes(TOR_ROUTES.pool).find((r) => r.from === 'Mesh_10_0_0_2');
    t.equal(r200?.bgp.local_pref, '100', 'skein passes the eBGP route on at LOCAL_PREF 100, as BIRD does');
    // and at the eBGP ToR: the same set from skein as from BIRD (before, on host-b; and on host-a), every one a pool route
    t.same(fromHost('host-b'), torFromBird, 'ToR: from skein exactly what it got from BIRD on host-b');
    t.same(fromHost('host-b'), fromHost('host-a'), 'ToR: and what it gets from BIRD on host-a');
    t.equal(fromHost('host-b').length, 12, 'the twelve blocks of the three hosts, nothing else (no host subnet, nothing of its own)');
    t.ok(birds.get('host-a')!.routes('10.67.1.0/26').length === 1, 'skein still announces its VXLAN block (Calico exports VXLAN pools; only the kernel skips them)');
  } catch (e) {
    t.comment(`--- host-b skeind\n${logs.slice(-25).join('\n')}`);
    for (const [h, b] of birds) t.comment(`--- ${h} BIRD\n${b.log.slice(-2000)}`);
    throw e;
  }
});
