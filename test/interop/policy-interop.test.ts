// Calico's routing policy against real peers and the real kernel: skeind on a dual-homed host (its own network
// namespace, fib enabled) with two top-of-rack routers in different ASes — BIRD 2 (AS 65101) and FRR bgpd
// (AS 65102), each in its namespace — that announce a default route, pool routes and routes outside every pool,
// over IPv4 and IPv6 sessions. Checked at each ToR (what it received from the host, and what it must not have)
// and in the host's kernel (what import let in):
//  1. no BGPFilter: only pool routes, our own blocks leave the host (calico_export_to_bgp_peers); everything is
//     imported; our own block is not installed over its blackhole;
//  2. a BGPFilter per direction and family using every match field and operator, put on the peers live;
//  3. the filter edited live (the default route let in): applied without resetting any session;
//  4–6. IP pools changed live (a pool added, disableBGPExport lifted, then set again, a pool deleted, one disabled).
// The same BIRD also plays three more peers of the host, each over IPv4 and IPv6, each in a table of its own so the
// ToR's routes and theirs never mix: a node-to-node mesh peer (Node h2, BGPConfiguration nodeToNodeMeshEnabled; it
// also announces a /32 beneath this host's block at elevated priority, as a live migration's target does, and an
// ordinary one), and a global BGPPeer (no node, no nodeSelector) in the host's own AS: a plain iBGP peer, no
// reflection. Each of them is checked for what it receives and for what it must not.
// Expected outcomes come from Calico's confd templates (bird_ipam.cfg.template, bird_aggr.cfg.template) and
// template_funcs.go's rendering of BGPFilter rules, not from skein's output.
import t from 'tap';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { requires } from '../helpers/env.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';
import { runCommand } from '../helpers/run.js';
import { Bird } from '../helpers/bird.js';
import { BGPD, Frr } from '../helpers/frr.js';

const root = join(`${import.meta.dirname}/..`, '..');
const skeind = join(root, 'dist/src/skeind.js');
const skeinctl = join(root, 'dist/src/skeinctl.js');

const HOST_AS = 64512;
const TOR1_AS = 65101; // BIRD
const TOR2_AS = 65102; // FRR

const res = (kind: string, name: string, spec: unknown): unknown => ({ apiVersion: 'projectcalico.org/v3', kind, metadata: { name }, spec });

/** The BGPFilter of phase 2 (and, with its first import rule accepting, phase 3). Rule order matters: first match wins. */
function edgeFilter(rejectDefault: boolean): unknown {
  return res('BGPFilter', 'edge', {
    importV4: [
      // phase 3 turns this rule around (the NotIn rule below would refuse the default otherwise)
      { action: rejectDefault ? 'Reject' : 'Accept', cidr: '0.0.0.0/0', matchOperator: 'Equal' },
      // In + prefixLength: pool routes longer than /26 stay out
      { action: 'Reject', cidr: '10.65.0.0/16', matchOperator: 'In', prefixLength: { min: 27 } },
      // communities: BIRD tags 172.16.0.0/16 with (65101,666)
      { action: 'Reject', communities: { values: ['65101:666'] } },
      // asPathPrefix: FRR prepends 65199 to 172.17.0.0/16
      { action: 'Reject', asPathPrefix: [TOR2_AS, 65199] },
      // operations on import: a community, and a priority the export side matches below
      { action: 'Accept', cidr: '192.0.2.0/24', matchOperator: 'Equal', operations: [{ addCommunity: { value: '64512:77' } }] },
      { action: 'Accept', cidr: '10.65.7.0/26', matchOperator: 'Equal', operations: [{ setPriority: { value: 512 } }] },
      // NotIn + peerType: anything else from an eBGP peer outside 10/8 stays out (198.51.100.0/24)
      { action: 'Reject', cidr: '10.0.0.0/8', matchOperator: 'NotIn', peerType: 'eBGP' },
    ],
    exportV4: [
      // interface: 192.0.2.0/24 (learned from BIRD, over the tor1 link) may go on, prepended and tagged
      { action: 'Accept', cidr: '192.0.2.0/24', matchOperator: 'Equal', interface: 'ptor1', operations: [{ prependASPath: { prefix: [64999] } }, { addCommunity: { value: '64512:99' } }] },
      // priority (set on import above)
      { action: 'Accept', priority: 512, operations: [{ addCommunity: { value: '64512:512' } }] },
      // source + NotEqual: no learned route goes on except 10.65.7.0/26 (so 10.65.8.0/26 stops at the host)
      { action: 'Reject', source: 'RemotePeers', cidr: '10.65.7.0/26', matchOperator: 'NotEqual' },
    ],
    importV6: [
      { action: 'Reject', cidr: '::/0', matchOperator: 'Equal' },
      { action: 'Reject', cidr: 'fd65::/48', matchOperator: 'In', prefixLength: { min: 123, max: 128 } },
      { action: 'Reject', cidr: 'fd00::/8', matchOperator: 'NotIn' },
    ],
    exportV6: [
      { action: 'Accept', cidr: 'fd99::/64', matchOperator: 'Equal', peerType: 'eBGP' },
      { action: 'Reject', source: 'RemotePeers', cidr: 'fd65::/48', matchOperator: 'In', prefixLength: { min: 122, max: 122 } },
    ],
  });
}

type Phase = 1 | 2 | 3 | 4 | 5 | 6;
function resources(phase: Phase): string {
  const filters = phase === 1 ? {} : { filters: ['edge'] };
  const peer = (name: string, ip: string, asn: number): unknown =>
    res('BGPPeer', name, { node: 'h1', peerIP: ip, asNumber: asn, sourceAddress: 'None', ...filters });
  const docs: unknown[] = [
    res('ClusterInformation', 'default', { datastoreReady: true }),
    res('BGPConfiguration', 'default', { asNumber: HOST_AS, nodeToNodeMeshEnabled: true, logSeverityScreen: 'Info' }),
    res('Node', 'h1', { bgp: { ipv4Address: '10.1.1.2/24', ipv6Address: 'fd01:1::2/64' } }),
    // the mesh peer, played by BIRD (protocols m4, m6)
    res('Node', 'h2', { bgp: { ipv4Address: '10.1.1.3/24', ipv6Address: 'fd01:1::3/64' } }),
    res('IPPool', 'pool4', { cidr: '10.65.0.0/16', blockSize: 26 }),
    // phase 4 lifts disableBGPExport, phase 5 sets it again
    res('IPPool', 'noexp', { cidr: '10.66.0.0/16', blockSize: 26, disableBGPExport: phase !== 4 }),
    res('IPPool', 'pool6', { cidr: 'fd65::/48', blockSize: 122 }),
    res('BlockAffinity', 'h1-10-65-1-0-26', { node: 'h1', cidr: '10.65.1.0/26', state: 'confirmed', deleted: 'false' }),
    res('BlockAffinity', 'h1-fd65--1-0-122', { node: 'h1', cidr: 'fd65::1:0/122', state: 'confirmed', deleted: 'false' }),
    peer('tor1-v4', '10.1.1.1', TOR1_AS),
    peer('tor1-v6', 'fd01:1::1', TOR1_AS),
    peer('tor2-v4', '10.1.2.1', TOR2_AS),
    peer('tor2-v6', 'fd01:2::1', TOR2_AS),
    // global peers (no node, no nodeSelector) in our own AS: plain iBGP, played by BIRD (protocols g4, g6)
    res('BGPPeer', 'rack-ibgp-v4', { peerIP: '10.1.1.4', asNumber: HOST_AS }),
    res('BGPPeer', 'rack-ibgp-v6', { peerIP: 'fd01:1::4', asNumber: HOST_AS }),
  ];
  // Phase 4 adds two pools holding routes the ToRs announce (192.0.2.0/24 from BIRD, fd98::/64 from FRR); phase 5
  // disables the first and deletes the second; phase 6 deletes the first.
  if (phase === 4) docs.push(res('IPPool', 'extra4', { cidr: '192.0.2.0/24', blockSize: 26 }));
  if (phase === 5) docs.push(res('IPPool', 'extra4', { cidr: '192.0.2.0/24', blockSize: 26, disabled: true }));
  if (phase === 4) docs.push(res('IPPool', 'extra6', { cidr: 'fd98::/64', blockSize: 122 }));
  if (phase !== 1) docs.push(edgeFilter(phase === 2));
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

// LOCAL_PREF of a route at Calico's normal priority (2^31-1 - 1024) and at an elevated one (2^31-1 - 512), as a Calico
// node's export filter sets it from the kernel metric (bgp_processor.go buildExportFilter)
const NORMAL_LP = 2147483647 - 1024;
const ELEVATED_LP = 2147483647 - 512;

// BIRD 2.0.12 runs one session per neighbor address at a time (its object lock is the remote address and port), so
// the mesh peer and the global peer are BIRD instances of their own beside the ToR's, in the same namespace; `strict
// bind` gives each its own listening address.
const BIRD_CONF = `
router id 10.1.1.1;
protocol device { scan time 1; }
protocol static s4 { ipv4;
  route 0.0.0.0/0 blackhole; route 10.65.7.0/26 blackhole; route 10.65.9.16/28 blackhole; route 10.65.1.0/26 blackhole;
  route 10.66.5.0/26 blackhole; route 192.0.2.0/24 blackhole; route 172.16.0.0/16 blackhole; }
protocol static s6 { ipv6; route ::/0 blackhole; route fd65::7:0/122 blackhole; route fd65::9:0/124 blackhole; route fd99::/64 blackhole; }
protocol bgp h4 {
  local 10.1.1.1 as ${TOR1_AS}; neighbor 10.1.1.2 as ${HOST_AS}; strict bind on;
  hold time 30; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export filter { if proto != "s4" then reject; if net = 172.16.0.0/16 then bgp_community.add((65101, 666)); accept; }; };
}
protocol bgp h6 {
  local fd01:1::1 as ${TOR1_AS}; neighbor fd01:1::2 as ${HOST_AS}; strict bind on;
  hold time 30; connect retry time 2; error wait time 1, 5;
  ipv6 { import all; export where proto = "s6"; };
}
`;

/** An iBGP peer of the host in its own AS, at `.n` (IPv4 and IPv6), announcing `routes` with the LOCAL_PREF given. */
const ibgpConf = (n: number, routes: [string, number?][]): string => `
router id 10.1.1.${n};
protocol device { scan time 1; }
protocol static s4 { ipv4; ${routes.filter(([p]) => !p.includes(':')).map(([p]) => `route ${p} blackhole;`).join(' ')} }
protocol static s6 { ipv6; ${routes.filter(([p]) => p.includes(':')).map(([p]) => `route ${p} blackhole;`).join(' ')} }
filter to_host {
  if !(proto ~ "s*") then reject;
  ${routes.filter(([, lp]) => lp !== undefined).map(([p, lp]) => `if net = ${p} then bgp_local_pref = ${lp};`).join('\n  ')}
  accept;
}
template bgp ibgp_t { local as ${HOST_AS}; strict bind on; hold time 30; connect retry time 2; error wait time 1, 5; }
protocol bgp p4 from ibgp_t { local 10.1.1.${n}; neighbor 10.1.1.2 as ${HOST_AS}; ipv4 { import all; export filter to_host; }; }
protocol bgp p6 from ibgp_t { local fd01:1::${n}; neighbor fd01:1::2 as ${HOST_AS}; ipv6 { import all; export filter to_host; }; }
`;
// the mesh peer h2: its block, a /32 and a /128 beneath OUR blocks at elevated priority (a live migration's target),
// an ordinary /32 and /128 beneath our blocks, routes outside every pool
const MESH_CONF = ibgpConf(3, [
  ['10.65.3.0/26', NORMAL_LP], ['10.65.1.9/32', ELEVATED_LP], ['10.65.1.5/32', NORMAL_LP], ['203.0.113.0/24', NORMAL_LP],
  ['fd65::3:0/122', NORMAL_LP], ['fd65::1:9/128', ELEVATED_LP], ['fd65::1:5/128', NORMAL_LP], ['2001:db8:9::/48', NORMAL_LP],
]);
// the global iBGP peer: routes outside every pool only
const GLOB_CONF = ibgpConf(4, [['198.18.5.0/24'], ['2001:db8:5::/48']]);

const FRR_CONF = `
hostname tor2
router bgp ${TOR2_AS}
 bgp router-id 10.1.2.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.1.2.2 remote-as ${HOST_AS}
 neighbor 10.1.2.2 timers connect 2
 neighbor fd01:2::2 remote-as ${HOST_AS}
 neighbor fd01:2::2 timers connect 2
 address-family ipv4 unicast
  network 0.0.0.0/0
  network 10.65.8.0/26
  network 198.51.100.0/24
  network 172.17.0.0/16 route-map PREPEND
  no neighbor fd01:2::2 activate
 exit-address-family
 address-family ipv6 unicast
  network ::/0
  network fd65::8:0/122
  network fd98::/64
  network 2001:db8:1::/48
  neighbor fd01:2::2 activate
 exit-address-family
!
route-map PREPEND permit 10
 set as-path prepend 65199
!
`;

interface KRoute { dst: string; gateway?: string; type?: string; nexthops?: { gateway: string }[] }

t.test('two ToRs (BIRD 2, FRR): export allow-list, BGPFilter every field, live changes, kernel', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc', BGPD, 'vtysh'] })) return;
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skein-policy-'));
  const proc: { daemon?: ChildProcess } = {};
  const log: string[] = [];
  const bird = new Bird(lab.ns('tor1'));
  const nsTor1 = bird.ns;
  const meshBird = new Bird(nsTor1);
  const globBird = new Bird(nsTor1);
  const nsTor2 = lab.ns('tor2');
  const frr = new Frr(nsTor2);
  t.teardown(async () => {
    if (proc.daemon && proc.daemon.exitCode === null) proc.daemon.kill('SIGKILL');
    await bird.stop().catch(() => undefined);
    await meshBird.stop().catch(() => undefined);
    await globBird.stop().catch(() => undefined);
    await frr.stop().catch(() => undefined);
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const nsHost = lab.ns('host');
  lab.link(nsHost, nsTor1, 'ptor1', 'phost');
  lab.link(nsHost, nsTor2, 'ptor2', 'phost');
  lab.addr(nsHost, 'ptor1', '10.1.1.2/24');
  lab.addr(nsHost, 'ptor1', 'fd01:1::2/64');
  lab.addr(nsHost, 'ptor2', '10.1.2.2/24');
  lab.addr(nsHost, 'ptor2', 'fd01:2::2/64');
  lab.addr(nsTor1, 'phost', '10.1.1.1/24');
  lab.addr(nsTor1, 'phost', 'fd01:1::1/64');
  // the mesh peer (h2) and the global iBGP peer, played by the same BIRD
  for (const a of ['10.1.1.3/24', '10.1.1.4/24', 'fd01:1::3/64', 'fd01:1::4/64']) lab.addr(nsTor1, 'phost', a);
  lab.addr(nsTor2, 'phost', '10.1.2.1/24');
  lab.addr(nsTor2, 'phost', 'fd01:2::1/64');
  for (const ns of [nsHost, nsTor1, nsTor2]) nsExec(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.accept_dad=0']);
  // DAD would hold the IPv6 addresses tentative for a second or two; wait until they are usable.
  await until(() => !/tentative/.test(nsExec(nsHost, 'ip', ['-6', 'addr'])), 'IPv6 addresses ready', 10_000, 200);

  await bird.start(BIRD_CONF);
  await meshBird.start(MESH_CONF);
  await globBird.start(GLOB_CONF);
  await frr.start(FRR_CONF);

  const resFile = join(dir, 'resources.yaml');
  const write = (phase: Phase): void => {
    writeFileSync(`${resFile}.tmp`, resources(phase));
    renameSync(`${resFile}.tmp`, resFile);
  };
  write(1);
  const sock = join(dir, 'skein.sock');
  const cfg = join(dir, 'skein.yaml');
  writeFileSync(cfg, [
    'nodeName: h1',
    `datastore: { type: file, path: ${resFile}, debounce: 50ms }`,
    `control: { socket: ${sock} }`,
    'metrics: { listen: "127.0.0.1:9309" }',
    'log: { level: info }',
    '',
  ].join('\n'));
  const daemon = nsSpawn(nsHost, 'node', [skeind, '--config', cfg]);
  proc.daemon = daemon;
  daemon.stdout!.on('data', (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean)));
  daemon.stderr!.on('data', (d: Buffer) => log.push(`stderr: ${d.toString()}`));

  const ctl = async (...args: string[]): Promise<Record<string, unknown>> => {
    const r = await runCommand('node', [skeinctl, '--socket', sock, ...args, '--json'], { timeoutMs: 15_000 });
    // `routes PREFIX` exits 1 when nothing matches, and still prints the document (with the policy trace)
    const nothing = args[0] === 'routes' && r.code === 1 && r.out.trim().startsWith('{');
    if (r.code !== 0 && !nothing) throw new Error(`skeinctl ${args.join(' ')}: exit ${r.code}: ${r.err}`);
    return JSON.parse(r.out) as Record<string, unknown>;
  };
  const kernel = (): string[] => {
    const show = (fam: '-4' | '-6', dflt: string): string[] => (JSON.parse(nsExec(nsHost, 'ip', [fam, '-j', 'route', 'show', 'proto', '171'])) as KRoute[])
      .map((r) => `${r.dst === 'default' ? dflt : r.dst}${r.type === 'blackhole' ? ' blackhole' : ''}`);
    return [...show('-4', '0.0.0.0/0'), ...show('-6', '::/0')].sort();
  };
  // What each ToR holds from the host (BIRD: routes of protocols h4/h6; FRR: paths whose peer is the host).
  const atBird = (): string[] => [...bird.routes('table', 'master4'), ...bird.routes('table', 'master6')]
    .filter((r) => r.from === 'h4' || r.from === 'h6').map((r) => r.prefix).sort();
  const atFrr = (): string[] => {
    const out: string[] = [];
    for (const afi of ['ipv4', 'ipv6'] as const) {
      for (const [prefix, paths] of Object.entries(frr.routes(afi))) if (paths.some((p) => p.peerId === '10.1.2.2' || p.peerId === 'fd01:2::2')) out.push(prefix);
    }
    return out.sort();
  };
  // What the mesh peer (m4/m6) and the global iBGP peer (g4/g6) hold from the host, each in its own tables.
  const atTables = (b: Bird) => (): string[] => [...b.routes('table', 'master4'), ...b.routes('table', 'master6')]
    .filter((r) => r.from === 'p4' || r.from === 'p6').map((r) => r.prefix).sort();
  const atMesh = atTables(meshBird);
  const atGlob = atTables(globBird);
  const sessions = async (): Promise<Record<string, string>> => {
    const s = await ctl('status');
    return Object.fromEntries((s.peers as { address: string; state: string; since: string }[]).map((p) => [p.address, `${p.state} ${p.since}`]));
  };
  const frrUp = (): string => ['10.1.2.2', 'fd01:2::2'].map((a) => `${frr.neighbor(a)?.connectionsEstablished}`).join(',');
  // the Since column of `show protocols`: when the protocol last changed state
  const birdUp = (): string => ([[bird, 'h4'], [bird, 'h6'], [meshBird, 'p4'], [meshBird, 'p6'], [globBird, 'p4'], [globBird, 'p6']] as const)
    .map(([b, p]) => new RegExp(`^${p}\\s+\\S+\\s+\\S+\\s+\\S+\\s+(\\S+)`, 'm').exec(b.protocol(p).text)?.[1]).join(',');
  // BIRD prints a protocol's "since" from its monotonic clock turned into wall time at each call, so the same
  // moment can read a millisecond apart (seen: 13.210 then 13.211). A reset moves it by seconds (BIRD waits before it
  // connects again), so a session counts as kept when every "since" is within 500 ms of the one read before.
  const sinceMs = (list: string): number[] => list.split(',').map((x) => {
    const m = /(\d\d):(\d\d):(\d\d)(?:\.(\d+))?$/.exec(x);
    return m === null ? NaN : ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number((m[4] ?? '0').padEnd(3, '0').slice(0, 3));
  });
  const birdKept = (before: string): boolean => {
    const a = sinceMs(before);
    const b = sinceMs(birdUp());
    return a.length === b.length && a.every((x, i) => Number.isFinite(x) && Math.abs(x - b[i]!) <= 500);
  };
  const diag = (): void => {
    t.comment(`skeind log:\n${log.slice(-40).join('\n')}\nBIRD h4:\n${bird.protocol('h4').text}\nFRR:\n${frr.vtysh('show bgp summary')}\n${frr.log.slice(-1500)}`);
  };

  // Phase 1 ------------------------------------------------------------------------------------------------------
  const OWN = ['10.65.1.0/26', 'fd65::1:0/122'];
  // from the mesh peer, what Calico lets out towards the ToRs: h2's pool block and, beneath our own block, only the
  // /32 and /128 at elevated priority (bird_aggr.cfg.template: krt_metric < NormalRoutePriority)
  const MESH_OUT = ['10.65.3.0/26', '10.65.1.9/32', 'fd65::3:0/122', 'fd65::1:9/128'];
  // what nobody may receive from the host: the mesh peer's ordinary /32 and /128 beneath our block (calico_aggr) and
  // the routes outside every pool of the mesh peer and the global peer
  const NEVER = ['10.65.1.5/32', 'fd65::1:5/128', '203.0.113.0/24', '2001:db8:9::/48', '198.18.5.0/24', '2001:db8:5::/48'];
  // towards the plain iBGP peers (mesh and global): our blocks and the pool routes learned over eBGP; routes
  // learned from one iBGP peer are not passed to another (RFC 4271 §9.1.1, no reflection configured)
  const IBGP_1 = [...OWN, '10.65.7.0/26', '10.65.9.16/28', '10.65.8.0/26', 'fd65::7:0/122', 'fd65::9:0/124', 'fd65::8:0/122'].sort();
  // outside every exportable pool (the ToRs' default routes and other prefixes, the disableBGPExport pool)
  const OUTSIDE = ['0.0.0.0/0', '::/0', '192.0.2.0/24', '172.16.0.0/16', '10.66.5.0/26', 'fd99::/64', '198.51.100.0/24', '172.17.0.0/16', 'fd98::/64', '2001:db8:1::/48'];
  const EXPECT_BIRD_1 = [...OWN, '10.65.8.0/26', 'fd65::8:0/122', ...MESH_OUT].sort();
  const EXPECT_FRR_1 = [...OWN, '10.65.7.0/26', '10.65.9.16/28', 'fd65::7:0/122', 'fd65::9:0/124', ...MESH_OUT].sort();
  try {
    await until(async () => Object.values(await sessions().catch(() => ({}))).filter((v) => v.startsWith('Established')).length === 8, 'eight sessions Established', 60_000, 300);
    await until(() => atBird().join() === EXPECT_BIRD_1.join(), 'BIRD holds what Calico lets out', 20_000, 300);
    await until(() => atFrr().join() === EXPECT_FRR_1.join(), 'FRR holds what Calico lets out', 20_000, 300);
    await until(() => atMesh().join() === IBGP_1.join() && atGlob().join() === IBGP_1.join(), 'the iBGP peers hold what Calico lets out', 20_000, 300);
  } catch (e) {
    t.comment(JSON.stringify(await sessions().catch(() => ({}))));
    t.comment(`BIRD ${atBird().join(' ')}\nFRR ${atFrr().join(' ')}\nmesh ${atMesh().join(' ')}\nglobal ${atGlob().join(' ')}`);
    diag();
    throw e;
  }
  t.same(atBird(), EXPECT_BIRD_1, 'BIRD: our blocks, the other ToR\'s pool routes, the mesh peer\'s block and elevated /32 and /128, nothing else');
  t.same(atFrr(), EXPECT_FRR_1, 'FRR: our blocks and the other ToR\'s pool routes (a /28 inside the pool too), the mesh peer\'s, nothing else');
  for (const p of ['0.0.0.0/0', '::/0', '192.0.2.0/24', '172.16.0.0/16', '10.66.5.0/26', 'fd99::/64', ...NEVER]) t.notOk(atFrr().includes(p), `FRR never gets ${p} from the host`);
  for (const p of ['0.0.0.0/0', '::/0', '198.51.100.0/24', '172.17.0.0/16', 'fd98::/64', '2001:db8:1::/48', ...NEVER]) t.notOk(atBird().includes(p), `BIRD never gets ${p} from the host`);
  t.same(atMesh(), IBGP_1, 'mesh peer (v4 and v6): our blocks and the ToRs\' pool routes, nothing else');
  t.same(atGlob(), IBGP_1, 'global iBGP peer (v4 and v6): the same');
  for (const p of [...OUTSIDE, ...NEVER]) {
    t.notOk(atMesh().includes(p), `the mesh peer never gets ${p}`);
    t.notOk(atGlob().includes(p), `the global peer never gets ${p}`);
  }
  t.notOk(atGlob().includes('10.65.3.0/26'), 'the mesh peer\'s pool route is not passed to the global iBGP peer (no reflection)');
  const r9 = bird.routes('10.65.1.9/32').find((r) => r.from === 'h4');
  t.equal(r9?.bgp.as_path, `${HOST_AS}`, 'the elevated /32 reaches the eBGP ToR with our AS only');
  const k1 = (await until(() => {
    const k = kernel();
    return ['0.0.0.0/0', '::/0', '192.0.2.0/24', 'fd98::/64', '172.16.0.0/16', '172.17.0.0/16'].every((p) => k.includes(p)) ? k : undefined;
  }, 'kernel has what import let in', 20_000, 300)) ?? [];
  t.ok(k1.includes('10.65.1.0/26 blackhole'), 'our own block is a blackhole');
  t.notOk(k1.includes('10.65.1.0/26'), 'and BIRD\'s route for it is not installed over it');
  for (const p of ['10.65.7.0/26', '10.65.8.0/26', '198.51.100.0/24', '172.16.0.0/16', '172.17.0.0/16', 'fd65::7:0/122', 'fd99::/64', '2001:db8:1::/48']) {
    t.ok(k1.includes(p), `kernel: ${p} (Calico imports everything without a filter)`);
  }
  const up1 = { skein: await sessions(), frr: frrUp(), bird: birdUp() };

  // Phase 2: the BGPFilter arrives, and the peers name it --------------------------------------------------------
  write(2);
  // the mesh peer's elevated /32 goes out by exportV4[1] (priority 512 = its LOCAL_PREF), its /128 by calico_aggr
  // (no exportV6 rule matches a /128); its block is held back (exportV4[2]; exportV6[1] In /122..122)
  const ELEVATED = ['10.65.1.9/32', 'fd65::1:9/128'];
  const EXPECT_FRR_2 = [...OWN, '10.65.7.0/26', '192.0.2.0/24', 'fd99::/64', ...ELEVATED].sort();
  // BIRD: 10.65.8.0/26 is learned and not 10.65.7.0/26 (source + NotEqual); fd65::8:0/122 is learned, /122 (exportV6)
  const EXPECT_BIRD_2 = [...OWN, ...ELEVATED].sort();
  // the iBGP peers have no filters: 10.65.9.16/28 and fd65::9:0/124 are gone because import refused them
  const IBGP_2 = [...OWN, '10.65.7.0/26', '10.65.8.0/26', 'fd65::7:0/122', 'fd65::8:0/122'].sort();
  try {
    await until(() => atFrr().join() === EXPECT_FRR_2.join(), 'FRR: phase 2 exports', 30_000, 300);
    await until(() => atBird().join() === EXPECT_BIRD_2.join(), 'BIRD: phase 2 exports', 30_000, 300);
    await until(() => atMesh().join() === IBGP_2.join() && atGlob().join() === IBGP_2.join(), 'iBGP peers: phase 2 exports', 30_000, 300);
  } catch (e) {
    t.comment(`FRR has ${atFrr().join(' ')}; BIRD has ${atBird().join(' ')}; mesh ${atMesh().join(' ')}; global ${atGlob().join(' ')}`);
    diag();
    throw e;
  }
  t.same(atFrr(), EXPECT_FRR_2, 'FRR: + 192.0.2.0/24 (interface rule), + fd99::/64 (peerType eBGP); 10.65.7.0/26 still');
  t.same(atBird(), EXPECT_BIRD_2, 'BIRD: 10.65.8.0/26 (source RemotePeers NotEqual) and fd65::8:0/122 (In /122..122) held back');
  t.same(atMesh(), IBGP_2, 'mesh peer: the pool routes import let in, nothing else');
  t.same(atGlob(), IBGP_2, 'global iBGP peer: the same');
  const r192 = frr.route('ipv4', '192.0.2.0/24')?.paths.find((p) => p.peer?.peerId === '10.1.2.2');
  t.equal(r192?.aspath?.string, `${HOST_AS} 64999 ${TOR1_AS}`, 'prependASPath ran before our own AS (BIRD order)');
  t.match(r192?.community?.string ?? '', /64512:77/, 'the community added on import travels on');
  t.match(r192?.community?.string ?? '', /64512:99/, 'the community added on export');
  const r7 = frr.route('ipv4', '10.65.7.0/26')?.paths.find((p) => p.peer?.peerId === '10.1.2.2');
  t.match(r7?.community?.string ?? '', /64512:512/, 'priority set on import (setPriority) matched on export (priority)');
  const k2 = (await until(() => {
    const k = kernel();
    return !k.includes('0.0.0.0/0') && !k.includes('198.51.100.0/24') ? k : undefined;
  }, 'kernel follows the import rules', 30_000, 300)) ?? [];
  t.same(
    ['0.0.0.0/0', '10.65.9.16/28', '172.16.0.0/16', '172.17.0.0/16', '198.51.100.0/24', '::/0', 'fd65::9:0/124', '2001:db8:1::/48'].filter((p) => k2.includes(p)),
    [], 'kernel: nothing the import rules reject (Equal, In+prefixLength, communities, asPathPrefix, NotIn+peerType; v6 Equal, In, NotIn)',
  );
  for (const p of ['10.65.7.0/26', '10.65.8.0/26', '192.0.2.0/24', 'fd65::7:0/122', 'fd65::8:0/122', 'fd99::/64', 'fd98::/64', '10.66.5.0/26']) t.ok(k2.includes(p), `kernel still has ${p}`);
  const why = await ctl('routes', '0.0.0.0/0');
  t.same(why.routes, [], 'the rejected default is not in the Loc-RIB');
  const trace = (why as { policy?: { imported: { peer: string; accept: boolean; rule: string }[] } }).policy;
  t.same(trace?.imported.filter((v) => v.peer === '10.1.1.1'), [{ peer: '10.1.1.1', accept: false, rule: 'BGPFilter/edge importV4[0]' }], 'skeinctl routes says which rule refused it');
  const why192 = await ctl('routes', '192.0.2.0/24') as { policy?: { exported: { peer: string; accept: boolean; rule: string }[] } };
  t.same(why192.policy?.exported.find((v) => v.peer === '10.1.2.1'), { peer: '10.1.2.1', accept: true, rule: 'BGPFilter/edge exportV4[0]' });

  // #19: what import refused is kept per peer with the rule that refused it, listable, and nowhere else
  type AdjRow = { prefix: string; installed: boolean; paths: { accepted: boolean; rule: string }[] };
  const verdicts = (rows: AdjRow[]): Record<string, [boolean, string][]> => Object.fromEntries(rows.map((r) => [r.prefix, r.paths.map((p) => [p.accepted, p.rule])]));
  const refused = verdicts((await ctl('routes', '--peer', '10.1.1.1', '--refused')).routes as AdjRow[]);
  t.same(refused, {
    '0.0.0.0/0': [[false, 'BGPFilter/edge importV4[0]']],
    '10.65.9.16/28': [[false, 'BGPFilter/edge importV4[1]']],
    '172.16.0.0/16': [[false, 'BGPFilter/edge importV4[2]']],
  }, 'routes --refused: every route BIRD sent that import refused, with its rule');
  t.same((await ctl('routes', '--prefix-within', '10.65.9.16/28')).routes, [], 'the refused pool route is not in the Loc-RIB');
  t.notOk(k2.includes('10.65.9.16/28'), 'nor in the kernel');
  t.notOk(atFrr().includes('10.65.9.16/28'), 'nor exported (in phase 1, accepted, it went to FRR)');
  const received = verdicts((await ctl('routes', '--peer', '10.1.1.1', '--received')).routes as AdjRow[]);
  t.same(received['10.65.7.0/26'], [[true, 'BGPFilter/edge importV4[5]']], 'routes --received: an accepted route with the rule that accepted it');
  t.same(received['192.0.2.0/24'], [[true, 'BGPFilter/edge importV4[4]']]);
  t.same(received['10.65.9.16/28'], [[false, 'BGPFilter/edge importV4[1]']], 'and the refused ones, marked');
  const text = await runCommand('node', [skeinctl, '--socket', sock, 'routes', '--peer', '10.1.1.1', '--refused'], { timeoutMs: 15_000 });
  t.equal(text.code, 0);
  t.match(text.out, /10\.65\.9\.16\/28[^\n]*\n[^\n]*IMPORT RULE\n\s+x\s+10\.1\.1\.1[^\n]*BGPFilter\/edge importV4\[1\]/, 'the text listing marks it refused and names the rule');
  const kept = (await ctl('peers')).peers as { address: string; refusedRoutes?: { kept: number; notKept: number } }[];
  t.same(kept.find((p) => p.address === '10.1.1.1')?.refusedRoutes, { kept: 3, notKept: 0 }, 'skeinctl peers counts them');

  // Phase 3: the filter edited: the default route comes in; no session was reset ----------------------------------
  write(3);
  await until(() => kernel().includes('0.0.0.0/0'), 'the default route is installed after the edit', 30_000, 300).catch(async (e: unknown) => {
    t.comment(JSON.stringify(await ctl('routes', '0.0.0.0/0')));
    t.comment(JSON.stringify(await ctl('peers')));
    t.comment(kernel().join(' '));
    diag();
    throw e;
  });
  t.notOk(kernel().includes('::/0'), 'the IPv6 default is still refused');
  // FRR announces a default too, and each peer's routes are evaluated again on their own: the kernel can hold FRR's
  // default while BIRD's is still being looked at, so wait (bounded) for BIRD's verdict to change
  const refusedNow = async (): Promise<boolean> =>
    ((await ctl('routes', '--peer', '10.1.1.1', '--refused')).routes as AdjRow[]).some((r) => r.prefix === '0.0.0.0/0');
  await until(async () => !(await refusedNow()), 'BIRD\'s default evaluated again', 30_000, 300).catch(() => undefined);
  t.notOk(await refusedNow(), 'the default is no longer listed as refused');
  t.same(verdicts((await ctl('routes', '--peer', '10.1.1.1', '--received')).routes as AdjRow[])['0.0.0.0/0'], [[true, 'BGPFilter/edge importV4[0]']], 'it is received, accepted by the edited rule');
  t.notOk(atFrr().includes('0.0.0.0/0'), 'and the default still does not reach the other ToR (allow-list)');
  t.same(await sessions(), up1.skein, 'skein: every session up since before the policy changes');
  t.equal(frrUp(), up1.frr, 'FRR: no new connection');
  t.ok(birdKept(up1.bird), `BIRD: protocols up since the same time (${up1.bird} / ${birdUp()})`);
  const peers = await ctl('peers') as { peers: { address: string; filters?: string[] }[] };
  const filtersOf = Object.fromEntries(peers.peers.map((p) => [p.address, p.filters ?? []]));
  t.same(filtersOf, {
    '10.1.1.1': ['edge'], 'fd01:1::1': ['edge'], '10.1.2.1': ['edge'], 'fd01:2::1': ['edge'],
    '10.1.1.3': [], 'fd01:1::3': [], '10.1.1.4': [], 'fd01:1::4': [],
  }, 'skeinctl peers shows the filters (none on the mesh and global peers)');
  t.same(atMesh(), IBGP_2, 'the default route let in is still not exported to the mesh peer (outside every pool)');
  t.same(atGlob(), IBGP_2, 'nor to the global peer');

  // Phases 4–6: IP pools changed live. bird_ipam.cfg.template lets a route out when it lies in a pool without
  // disableBGPExport (processIPPool in confd's bgp_processor.go; it never reads `disabled`, so a disabled pool's
  // routes still go out); a pool deleted takes its routes with it.
  const IBGP_4 = [...IBGP_2, '192.0.2.0/24', '10.66.5.0/26', 'fd98::/64'].sort();
  write(4);
  try {
    await until(() => atMesh().join() === IBGP_4.join() && atGlob().join() === IBGP_4.join(), 'iBGP peers: the new pools\' routes arrive', 30_000, 300);
    await until(() => atBird().includes('fd98::/64'), 'BIRD: FRR\'s fd98::/64 arrives (no exportV6 rule matches, the new pool does)', 30_000, 300);
  } catch (e) {
    t.comment(`BIRD ${atBird().join(' ')}; mesh ${atMesh().join(' ')}; global ${atGlob().join(' ')}`);
    diag();
    throw e;
  }
  t.same(atMesh(), IBGP_4, 'pool added (192.0.2.0/24, fd98::/64) and disableBGPExport lifted (10.66.5.0/26): their routes reach the mesh peer');
  t.same(atGlob(), IBGP_4, 'and the global peer');
  t.same(atBird(), [...EXPECT_BIRD_2, 'fd98::/64'].sort(), 'BIRD: + fd98::/64, nothing else');
  t.same(atFrr(), EXPECT_FRR_2, 'FRR: unchanged (exportV4[2] still holds 10.66.5.0/26 back)');
  for (const p of ['0.0.0.0/0', '::/0', 'fd99::/64', '172.16.0.0/16', '172.17.0.0/16', '198.51.100.0/24', ...NEVER]) {
    t.notOk(atMesh().includes(p) || atGlob().includes(p), `still never ${p} to the iBGP peers`);
  }

  write(5);
  const IBGP_5 = [...IBGP_2, '192.0.2.0/24'].sort();
  await until(() => atMesh().join() === IBGP_5.join() && atGlob().join() === IBGP_5.join() && !atBird().includes('fd98::/64'), 'withdrawn after phase 5', 30_000, 300)
    .catch((e: unknown) => {
      t.comment(`BIRD ${atBird().join(' ')}; mesh ${atMesh().join(' ')}; global ${atGlob().join(' ')}`);
      throw e;
    });
  t.same(atMesh(), IBGP_5, 'disableBGPExport set again: 10.66.5.0/26 withdrawn; pool deleted: fd98::/64 withdrawn; disabled pool: 192.0.2.0/24 stays (as Calico)');
  t.same(atGlob(), IBGP_5, 'the same at the global peer');
  t.same(atBird(), EXPECT_BIRD_2, 'BIRD: fd98::/64 withdrawn');

  write(6);
  await until(() => atMesh().join() === IBGP_2.join() && atGlob().join() === IBGP_2.join(), 'withdrawn after phase 6', 30_000, 300);
  t.same(atMesh(), IBGP_2, 'the disabled pool deleted: 192.0.2.0/24 withdrawn from the mesh peer');
  t.same(atGlob(), IBGP_2, 'and from the global peer');
  t.same(atFrr(), EXPECT_FRR_2, 'FRR still has 192.0.2.0/24 (its own BGPFilter rule accepts it, pools or not)');
  t.same(await sessions(), up1.skein, 'skein: no session reset by any pool change');
  t.ok(birdKept(up1.bird), `BIRD: protocols up since the same time (${up1.bird} / ${birdUp()})`);

  // the counters are sampled every 5 s
  const scrape = async (): Promise<string> => (await runCommand('ip', ['netns', 'exec', nsHost, 'curl', '-s', 'http://127.0.0.1:9309/metrics'], { timeoutMs: 10_000 })).out;
  const metrics = await until(async () => {
    const m = await scrape();
    return /skein_policy_rejected_routes_total\{peer="10\.1\.2\.1",direction="export"\}/.test(m) ? m : undefined;
  }, 'policy counters in /metrics', 15_000, 500) ?? '';
  t.match(metrics, /skein_policy_rejected_routes_total\{peer="10\.1\.1\.1",direction="import"\} [1-9]/, 'rejections counted per peer and direction');
  t.match(metrics, /skein_policy_rejected_routes_total\{peer="10\.1\.2\.1",direction="export"\} [1-9]/);
});
