// ADD-PATH send (RFC 7911) through a route reflector: ECMP across a reflector.
// 1. Speakers over loopback (no root): two clients announce one prefix with
//    different next hops; a third client with maxPaths 2 and ADD-PATH receive
//    gets both paths and installs both next hops; a fourth without ADD-PATH
//    gets the best only; one client leaving withdraws exactly its path.
// 2. BIRD 2 (`add paths rx`) and GoBGP (add-paths receive) as ADD-PATH
//    clients of a skein reflector in network namespaces: both hold both paths;
//    BIRD with `merge paths` puts a two-way ECMP route in its kernel table.
// 3. skeind as the reflector, configured by skein.yaml bgp.addPaths.
import t from 'tap';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Speaker} from '../../bgp/index.js';
import { parsePrefixText, type BestEvent, type PeerOptions, type SpeakerOptions } from '../../bgp/index.js';
import { requires } from '../helpers/env.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';
import { Bird } from '../helpers/bird.js';
import { AGENT, AgentClient } from '../helpers/agent-client.js';
import { fibView, loopbackNet, loopbackSpeaker } from '../helpers/loopback.js';

const PORT = 24191;
const addr = loopbackNet();
const AS = 65000;
const PREFIX = '10.99.0.0/24';

function speaker(n: number, peers: PeerOptions[], extra: Partial<SpeakerOptions> = {}): { s: Speaker; fib: Map<string, BestEvent>; events: BestEvent[] } {
  const s = loopbackSpeaker(addr, PORT, n, AS, peers, extra);
  return { s, ...fibView(s) };
}

const peer = (n: number, o: Partial<PeerOptions> = {}): PeerOptions => ({ address: addr(n), port: PORT, asn: AS, families: ['ipv4-unicast'], ...o });
const allUp = (s: Speaker): boolean => s.peerAddresses().every((a) => s.peerInfo(a)?.state === 'Established');

t.test('loopback: a reflector sends every path to an ADD-PATH client, which installs both next hops', async (t) => {
  // Reflector 1; clients 3 and 4 announce PREFIX (next hop: themselves); client 5 takes several paths
  // (ADD-PATH receive, maxPaths 2); client 6 does not offer ADD-PATH.
  const rr = speaker(1, [3, 4, 5, 6].map((c) => peer(c, { routeReflectorClient: true, passive: true, addPathSend: { mode: 'all' } })));
  const c3 = speaker(3, [peer(1)]);
  const c4 = speaker(4, [peer(1)]);
  const c5 = speaker(5, [peer(1, { addPathReceive: true })], { maxPaths: 2 });
  const c6 = speaker(6, [peer(1)], { maxPaths: 2 });
  const all = [rr, c3, c4, c5, c6];
  t.teardown(async () => {
    for (const x of all) await x.s.stop();
  });
  c3.s.originate(PREFIX);
  c4.s.originate(PREFIX);
  await Promise.all(all.map((x) => x.s.start()));
  await until(() => all.every((x) => allUp(x.s)), 'every session Established', 20_000);
  const apOf = (n: number) => rr.s.peersJson().peers.find((p) => p.address === addr(n))?.addPath;
  t.same(apOf(5), { send: ['ipv4-unicast'], receive: [], sendMode: 'all' }, 'peers JSON: ADD-PATH send negotiated with client 5');
  t.same(apOf(6), { send: [], receive: [], sendMode: 'all' }, 'client 6 did not offer receive: nothing negotiated');
  t.same(c5.s.peersJson().peers[0]?.addPath.receive, ['ipv4-unicast'], 'and client 5 receives');

  const key = parsePrefixText(PREFIX);
  await until(() => c5.fib.get(PREFIX)?.nextHops.length === 2, 'client 5 installs two next hops', 15_000).catch((e: unknown) => {
    t.comment(JSON.stringify(c5.s.rib.route(key)?.paths.map((p) => [p.pathId, p.attrs.nextHops])));
    throw e;
  });
  await until(() => c6.fib.has(PREFIX), 'client 6 has the route', 10_000);
  await new Promise((r) => setTimeout(r, 300)); // nothing else should arrive

  t.same([...(c5.fib.get(PREFIX)?.nextHops ?? [])].sort(), [addr(3), addr(4)].sort(), 'client 5 FIB view: both next hops (ECMP through the reflector)');
  const paths5 = c5.s.rib.route(key)?.paths ?? [];
  t.equal(paths5.length, 2, 'client 5 holds two paths from the one reflector session');
  t.same(new Set(paths5.map((p) => p.source.address)), new Set([addr(1)]));
  t.equal(new Set(paths5.map((p) => p.pathId)).size, 2, 'under two path ids');
  t.same(paths5.map((p) => p.attrs.attrs.originatorId).sort(), [0x0a000003, 0x0a000004], 'each with the ORIGINATOR_ID of its client');
  t.ok(c5.events.some((e) => e.prefix === PREFIX && e.nextHops.length === 2), 'the best-change stream carried both next hops');
  t.same(c6.s.rib.route(key)?.paths.map((p) => [p.pathId, p.attrs.nextHops]), [[0, [addr(3)]]], 'client 6 (no ADD-PATH): the best path only, no path id');
  t.same(c6.fib.get(PREFIX)?.nextHops, [addr(3)]);
  // the reflector did not send the clients' own paths back to them
  t.same(c3.s.rib.route(key)?.paths.map((p) => p.source.address), ['local'], 'client 3: only its own route');

  // best 1 instead of all, live: no session reset (a capability is only about on/off), one path withdrawn
  const conn = rr.s.peerInfo(addr(5))?.connection;
  const rrPeer5 = (send: PeerOptions['addPathSend']): PeerOptions => peer(5, { routeReflectorClient: true, passive: true, ...(send ? { addPathSend: send } : {}) });
  rr.s.updatePeer(rrPeer5({ mode: 'best', count: 1 }));
  await until(() => c5.s.rib.route(key)?.paths.length === 1, 'client 5 down to the best path', 10_000);
  t.same(c5.s.rib.route(key)?.paths.map((p) => p.attrs.nextHops[0]), [addr(3)], 'the best (lower ORIGINATOR_ID) stays');
  rr.s.updatePeer(rrPeer5({ mode: 'all' }));
  await until(() => c5.s.rib.route(key)?.paths.length === 2, 'client 5 has both again', 10_000);
  t.equal(rr.s.peerInfo(addr(5))?.connection, conn, 'the same session throughout');
  const paths5b = c5.s.rib.route(key)?.paths ?? [];

  // client 4 is removed from the reflector's configuration (a plain stop would leave its path stale for a
  // while: graceful restart, RFC 4724): exactly its path is withdrawn at client 5, the other keeps its id
  const keep = paths5b.find((p) => p.attrs.nextHops[0] === addr(3));
  const updatesBefore = c5.s.peerInfo(addr(1))?.counters.messagesIn.UPDATE ?? 0;
  rr.s.removePeer(addr(4));
  await until(() => c5.fib.get(PREFIX)?.nextHops.length === 1, 'client 5 is down to one next hop', 15_000);
  await new Promise((r) => setTimeout(r, 300));
  const after = c5.s.rib.route(key)?.paths ?? [];
  t.same(after.map((p) => [p.pathId, p.attrs.nextHops[0]]), [[keep?.pathId, addr(3)]], 'the remaining path is client 3\'s, under the same path id');
  t.equal(after[0], keep, 'not even re-announced (the same Path object in client 5\'s RIB)');
  t.equal((c5.s.peerInfo(addr(1))?.counters.messagesIn.UPDATE ?? 0) - updatesBefore, 1, 'one UPDATE: the withdrawal of one path id');
  t.same(c5.fib.get(PREFIX)?.nextHops, [addr(3)]);
  t.same(c6.fib.get(PREFIX)?.nextHops, [addr(3)], 'client 6 keeps its best');
});

// ------------------------------------------------------------------ BIRD 2

type Teardown = { teardown: (fn: () => unknown) => void };
const ip = (n: number, host: number): string => `10.9.${n}.${host}`;

async function agent(t: Teardown, ns: string, config: SpeakerOptions): Promise<AgentClient> {
  const a = AgentClient.spawn(t, ns);
  await a.call('start', { config });
  return a;
}

/**
 * Hub (a skein reflector sending every path to its clients) with a veth to each of three spokes, 10.9.N.1 (hub)
 * — 10.9.N.2 (spoke N); spokes 1 and 2 are skein clients announcing 10.70.0.0/24 (next hop: themselves), spoke 3
 * is left for the daemon under test.
 */
async function reflectorLab(t: Teardown): Promise<{ spoke3: string; rr: AgentClient; clients: AgentClient[] }> {
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const hub = lab.ns('rr');
  const spokes = [1, 2, 3].map((n) => {
    const ns = lab.ns(`c${n}`);
    const [h, s] = lab.link(hub, ns);
    lab.addr(hub, h, `${ip(n, 1)}/24`);
    lab.addr(ns, s, `${ip(n, 2)}/24`);
    // Static neighbour entries: the kernel's ARP table limit (gc_thresh3) is shared by every namespace, and
    // other tests on the machine can fill it, which makes connect() fail with EHOSTUNREACH; permanent
    // entries are exempt from that limit.
    const mac = (nsx: string, dev: string): string => nsExec(nsx, 'cat', [`/sys/class/net/${dev}/address`]).trim();
    nsExec(hub, 'ip', ['neigh', 'replace', ip(n, 2), 'lladdr', mac(ns, s), 'dev', h, 'nud', 'permanent']);
    nsExec(ns, 'ip', ['neigh', 'replace', ip(n, 1), 'lladdr', mac(hub, h), 'dev', s, 'nud', 'permanent']);
    return ns;
  }) as [string, string, string];
  const base = { localAsn: AS, listenPort: 179, holdTime: 30, connectRetryTime: 1, idleHold: { initial: 1, max: 2 } };
  const rr = await agent(t, hub, {
    ...base,
    routerId: '10.9.0.1',
    listenAddress: '0.0.0.0',
    peers: [1, 2, 3].map((n) => ({
      address: ip(n, 2), asn: AS, passive: true, routeReflectorClient: true, families: ['ipv4-unicast'] as const, addPathSend: { mode: 'all' as const },
    })),
  });
  const clients = await Promise.all([1, 2].map((n) =>
    agent(t, spokes[n - 1] as string, { ...base, routerId: ip(n, 2), listenAddress: ip(n, 2), peers: [{ address: ip(n, 1), asn: AS, families: ['ipv4-unicast'] }] })));
  for (const c of clients) await c.call('originate', { prefix: '10.70.0.0/24' });
  return { spoke3: spokes[2], rr, clients };
}

/**
 * One L2 segment (a bridge in a fabric namespace) with a namespace per host, eth0 = the host's /24 address, and
 * permanent neighbour entries between all of them (see reflectorLab). The lab goes on teardown.
 */
function segment(t: Teardown, hosts: readonly { name: string; ip: string }[]): Map<string, string> {
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const fabric = lab.ns('fab');
  nsExec(fabric, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  nsExec(fabric, 'ip', ['link', 'set', 'br0', 'up']);
  const made = hosts.map((h, i) => {
    const ns = lab.ns(h.name.slice(-1));
    lab.link(fabric, ns, `p${i}`, 'eth0');
    nsExec(fabric, 'ip', ['link', 'set', `p${i}`, 'master', 'br0']);
    lab.addr(ns, 'eth0', `${h.ip}/24`);
    return { ...h, ns, mac: nsExec(ns, 'cat', ['/sys/class/net/eth0/address']).trim() };
  });
  for (const h of made) for (const o of made) if (o !== h) nsExec(h.ns, 'ip', ['neigh', 'replace', o.ip, 'lladdr', o.mac, 'dev', 'eth0', 'nud', 'permanent']);
  return new Map(made.map((h) => [h.name, h.ns]));
}

const rrUp = (rr: AgentClient) => async () => (await rr.peers()).every((p) => p.state === 'Established');

t.test('BIRD 2 as an ADD-PATH client of a skein reflector gets both paths', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return;
  if (!existsSync(AGENT)) return t.fail(`${AGENT} is missing: run npm run build first`);
  const { spoke3, rr, clients } = await reflectorLab(t);
  const bird = new Bird(spoke3);
  t.teardown(() => bird.stop());
  await bird.start(`router id ${ip(3, 2)};
protocol device { scan time 1; }
# the clients' next hops resolve through the reflector's side (recursive, as iBGP does)
protocol static toclients { ipv4; route 10.9.0.0/16 via ${ip(3, 1)}; }
protocol bgp refl {
  local ${ip(3, 2)} as ${AS};
  neighbor ${ip(3, 1)} as ${AS};
  hold time 30;
  connect retry time 1;
  ipv4 { import all; export none; gateway recursive; add paths rx; };
}
`);
  const twoPaths = () => bird.routes('10.70.0.0/24').filter((r) => r.from === 'refl');
  try {
    await until(async () => (await rrUp(rr)()) && bird.protocol('refl').bgpState === 'Established', 'sessions Established', 30_000, 200);
    await until(() => twoPaths().length === 2, 'BIRD holds two paths for 10.70.0.0/24', 15_000, 200);
  } catch (e) {
    t.comment(`${bird.protocol('refl').text}\n${bird.birdc('show', 'route', 'all')}\n${JSON.stringify(await rr.peers())}`);
    throw e;
  }
  const routes = twoPaths();
  t.same(routes.map((r) => r.bgp.next_hop).sort(), [ip(1, 2), ip(2, 2)], 'one path per client, next hops unchanged');
  t.same(routes.map((r) => r.bgp.originator_id).sort(), [ip(1, 2), ip(2, 2)], 'ORIGINATOR_ID of each client');
  t.equal(routes.filter((r) => r.primary).length, 1, 'BIRD picked one best of the two');
  const proto = bird.protocol('refl');
  t.match(proto.text, /Neighbor capabilities[\s\S]*ADD-PATH\s+RX:\s*\n\s+TX: ipv4/, 'skein offered ADD-PATH send (TX) for IPv4');
  t.equal(proto.channels.ipv4?.imported, 2, 'BIRD imported two routes on the one session');

  // one client withdraws: BIRD is left with exactly the other path
  await clients[1]?.call('withdraw', { prefix: '10.70.0.0/24' });
  await until(() => twoPaths().length === 1, 'BIRD down to one path', 15_000, 200);
  t.same(twoPaths().map((r) => r.bgp.next_hop), [ip(1, 2)]);
});

t.test('BIRD 2 with merge paths installs an ECMP kernel route from the two paths of a skein reflector', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return;
  if (!existsSync(AGENT)) return t.fail(`${AGENT} is missing: run npm run build first`);
  // one segment, so that BIRD reaches both clients' next hops directly (gateway direct)
  const ns = segment(t, [
    { name: 'c1', ip: '10.0.0.1' },
    { name: 'c2', ip: '10.0.0.2' },
    { name: 'rr', ip: '10.0.0.10' },
    { name: 'bird', ip: '10.0.0.20' },
  ]);
  const base = { localAsn: AS, listenPort: 179, holdTime: 30, connectRetryTime: 1, idleHold: { initial: 1, max: 2 } };
  const rr = await agent(t, ns.get('rr') as string, {
    ...base, routerId: '10.0.0.10', listenAddress: '10.0.0.10',
    peers: ['10.0.0.1', '10.0.0.2', '10.0.0.20'].map((a) => ({
      address: a, asn: AS, passive: true, routeReflectorClient: true, families: ['ipv4-unicast'] as const, addPathSend: { mode: 'all' as const },
    })),
  });
  for (const [name, a] of [['c1', '10.0.0.1'], ['c2', '10.0.0.2']] as const) {
    const c = await agent(t, ns.get(name) as string, { ...base, routerId: a, listenAddress: a, peers: [{ address: '10.0.0.10', asn: AS, families: ['ipv4-unicast'] }] });
    await c.call('originate', { prefix: '10.70.0.0/24' });
  }
  const bird = new Bird(ns.get('bird') as string);
  t.teardown(() => bird.stop());
  await bird.start(`router id 10.0.0.20;
protocol device { scan time 1; }
protocol kernel k4 { ipv4 { import none; export where proto = "refl"; }; merge paths on; }
protocol bgp refl {
  local 10.0.0.20 as ${AS};
  neighbor 10.0.0.10 as ${AS};
  direct;
  hold time 30;
  connect retry time 1;
  ipv4 { import all; export none; gateway direct; add paths rx; };
}
`);
  const kernel = (): string[] => {
    const r = JSON.parse(nsExec(ns.get('bird') as string, 'ip', ['-j', 'route', 'show', '10.70.0.0/24'])) as { gateway?: string; nexthops?: { gateway: string }[] }[];
    return r.flatMap((x) => (x.nexthops ? x.nexthops.map((h) => h.gateway) : x.gateway ? [x.gateway] : [])).sort();
  };
  try {
    await until(async () => (await rrUp(rr)()) && bird.protocol('refl').bgpState === 'Established', 'sessions Established', 30_000, 200);
    await until(() => kernel().length === 2, 'a two-way ECMP route in BIRD\'s kernel table', 20_000, 200);
  } catch (e) {
    t.comment(`${bird.birdc('show', 'route', 'all')}\n${nsExec(ns.get('bird') as string, 'ip', ['route'])}`);
    throw e;
  }
  t.same(kernel(), ['10.0.0.1', '10.0.0.2'], 'the kernel forwards 10.70.0.0/24 over both clients: ECMP through the reflector');
});

t.test('GoBGP as an ADD-PATH client of a skein reflector gets both paths', async (t) => {
  if (!requires(t, { root: true, commands: ['gobgpd', 'gobgp'] })) return;
  if (!existsSync(AGENT)) return t.fail(`${AGENT} is missing: run npm run build first`);
  const { spoke3, rr, clients } = await reflectorLab(t);
  const dir = mkdtempSync(join(tmpdir(), 'skein-gobgp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'gobgpd.toml'), `[global.config]
  as = ${AS}
  router-id = "${ip(3, 2)}"
  local-address-list = ["${ip(3, 2)}"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "${ip(3, 1)}"
    peer-as = ${AS}
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 30
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.add-paths.config]
      receive = true
`);
  const gobgpd = nsSpawn(spoke3, 'gobgpd', ['-f', join(dir, 'gobgpd.toml'), '-t', 'toml', '--api-hosts', '127.0.0.1:50051', '-l', 'info']);
  let log = '';
  gobgpd.stdout?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-5000)));
  gobgpd.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-5000)));
  t.teardown(() => {
    gobgpd.kill('SIGKILL');
  });
  /** Next hops of the paths GoBGP holds for the prefix (`gobgp global rib -j`). */
  const paths = (): string[] => {
    let text: string;
    try {
      text = nsExec(spoke3, 'gobgp', ['global', 'rib', '-a', 'ipv4', '10.70.0.0/24', '-j'], { timeoutMs: 5000 });
    } catch {
      return [];
    }
    const j = JSON.parse(text || '{}') as Record<string, { attrs?: { type: number; nexthop?: string }[] }[]>;
    return (j['10.70.0.0/24'] ?? []).map((p) => p.attrs?.find((a) => a.type === 3)?.nexthop ?? '?').sort();
  };
  try {
    await until(rrUp(rr), 'sessions Established', 30_000, 200);
    await until(() => paths().length === 2, 'GoBGP holds two paths for 10.70.0.0/24', 15_000, 200);
  } catch (e) {
    t.comment(`${log}\n${nsExec(spoke3, 'gobgp', ['neighbor', ip(3, 1)], { timeoutMs: 5000 })}\n${JSON.stringify(await rr.peers())}`);
    t.comment(JSON.stringify(rr.events.slice(-30)));
    t.comment(JSON.stringify(clients[0]?.events.slice(-30)));
    throw e;
  }
  t.same(paths(), [ip(1, 2), ip(2, 2)], 'one path per client, next hops unchanged');
  const nb = nsExec(spoke3, 'gobgp', ['neighbor', ip(3, 1)], { timeoutMs: 5000 });
  t.match(nb, /add-path:\s+advertised and received\s+Local:\s+ipv4-unicast:\s+receive\s+Remote:\s+ipv4-unicast:\s+send/, 'add-path: we receive, skein sends');
  await clients[0]?.call('withdraw', { prefix: '10.70.0.0/24' });
  await until(() => paths().length === 1, 'GoBGP down to one path', 15_000, 200);
  t.same(paths(), [ip(2, 2)]);
});

// ------------------------------------------------------------------ skeind

t.test('skeind as a reflector with skein.yaml bgp.addPaths.toClients: all sends both nodes\' paths to an ADD-PATH client', async (t) => {
  if (!requires(t, { root: true })) return;
  const skeind = 'dist/src/skeind.js';
  if (!existsSync(skeind) || !existsSync(AGENT)) return t.fail('dist/ is missing: run npm run build first');
  // One L2 segment (a bridge in a fabric namespace): skeind on host-a, host-b (Calico nodes, clients of the
  // reflector) and host-r (the reflector, routeReflectorClusterID set); a speaker on 10.0.0.20 peers with host-r
  // through a BGPPeer (peerIP, same AS: a client of the reflector), offering ADD-PATH receive.
  const dir = mkdtempSync(join(tmpdir(), 'skein-addpath-'));
  const daemons: ReturnType<typeof nsSpawn>[] = [];
  const logs = new Map<string, string[]>();
  const hostList = [
    { name: 'host-a', ip: '10.0.0.1' },
    { name: 'host-b', ip: '10.0.0.2' },
    { name: 'host-r', ip: '10.0.0.10' },
    { name: 'ext', ip: '10.0.0.20' },
  ];
  const nsOf = segment(t, hostList);
  t.teardown(() => {
    for (const d of daemons) if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const hosts = hostList.map((h) => ({ ...h, ns: nsOf.get(h.name) as string }));

  const docs: unknown[] = [
    { apiVersion: 'projectcalico.org/v3', kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    {
      apiVersion: 'projectcalico.org/v3', kind: 'BGPConfiguration', metadata: { name: 'default' },
      spec: { asNumber: 64512, nodeToNodeMeshEnabled: false, serviceClusterIPs: [{ cidr: '10.96.0.0/16' }] },
    },
    { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'pods' }, spec: { cidr: '10.65.0.0/16', blockSize: 26 } },
    { apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: 'host-a' }, spec: { bgp: { ipv4Address: '10.0.0.1/24' } } },
    { apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: 'host-b' }, spec: { bgp: { ipv4Address: '10.0.0.2/24' } } },
    {
      apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: 'host-r', labels: { 'route-reflector': 'true' } },
      spec: { bgp: { ipv4Address: '10.0.0.10/24', routeReflectorClusterID: '244.0.0.1' } },
    },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'to-rr' }, spec: { nodeSelector: '!has(route-reflector)', peerSelector: 'has(route-reflector)' } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'ext' }, spec: { node: 'host-r', peerIP: '10.0.0.20', asNumber: 64512 } },
  ];
  const resFile = join(dir, 'resources.yaml');
  writeFileSync(resFile, docs.map((d) => `---\n${JSON.stringify(d)}\n`).join(''));
  for (const h of hosts.slice(0, 3)) {
    const cfg = join(dir, `${h.name}.yaml`);
    writeFileSync(cfg, [
      `nodeName: ${h.name}`,
      `datastore: { type: file, path: ${resFile}, debounce: 50ms }`,
      `control: { socket: ${join(dir, `${h.name}.sock`)} }`,
      'metrics: { listen: "" }',
      'fib: { enabled: false }',
      ...(h.name === 'host-r' ? ['bgp: { addPaths: { toClients: all } }'] : []),
      '',
    ].join('\n'));
    const child = nsSpawn(h.ns, process.execPath, [skeind, '--config', cfg]);
    const lines: string[] = [];
    logs.set(h.name, lines);
    child.stdout?.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    child.stderr?.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString()}`));
    daemons.push(child);
  }
  const ext = await agent(t, hosts[3]?.ns as string, {
    localAsn: 64512, routerId: '10.0.0.20', listenAddress: '10.0.0.20', listenPort: 179, holdTime: 30, connectRetryTime: 1,
    idleHold: { initial: 1, max: 2 }, maxPaths: 4,
    peers: [{ address: '10.0.0.10', asn: 64512, addPathReceive: true, families: ['ipv4-unicast'] }],
  });
  const svc = async () => (await ext.route('10.96.0.0/16'))?.paths ?? [];
  try {
    await until(async () => (await svc()).length === 3, 'the client holds three paths for the service range', 60_000, 250);
  } catch (e) {
    for (const [h, lines] of logs) t.comment(`--- ${h}\n${lines.slice(-20).join('\n')}`);
    t.comment(JSON.stringify(await ext.peers()));
    throw e;
  }
  const paths = await svc();
  // every node announces the service range (Calico serviceClusterIPs): the reflector's own path and the two
  // reflected ones, with the nodes' next hops
  t.same(paths.map((p) => p.nextHops[0]).sort(), ['10.0.0.1', '10.0.0.10', '10.0.0.2'], 'one path per node, next hops unchanged by the reflector');
  t.same(new Set(paths.map((p) => p.from)), new Set(['10.0.0.10']), 'both over the one session with the reflector');
  t.ok(daemons.every((d) => d.exitCode === null), 'every skeind still runs');
  await new Promise((r) => setTimeout(r, 500));
  t.equal((await svc()).length, 3, 'and no more paths arrive');
});
