// skeind without root: the command line (bad configuration -> exit 2 and one line naming file, line and field;
// --version; --help), the pure mappings (DesiredPeer -> speaker peer options, origination -> path attributes,
// router ID, listen socket, addresses to bytes, BGP next hops to a kernel target), the route table's
// precedence and gate, and two in-process Daemons (FIB disabled) peering over loopback: mesh, learned routes,
// live datastore edits, a descriptive peer change that keeps the session, reload, and a clean stop.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdKey, etcdValueOf, loadDaemonConfig, loadResourcesText, parseDaemonConfig } from '../../config/index.js';
import type { DesiredPeer, Origination } from '../../src/controller/index.js';
import {
  Daemon, RouteTable, addressBytes, bgpTarget, originationAttributes, peerOptionsFor, prefixBytes, routerIdFor, sortByPrefix,
  speakerIdentity,
} from '../../src/daemon.js';
import { LogRateLimit, parsePrefixText } from '../../bgp/index.js';
import { speakerOptions } from '../../src/daemon/speaker.js';
import { requires } from '../helpers/env.js';
import { startEtcd } from '../helpers/etcd.js';
import { until } from '../helpers/netns.js';

const root = join(`${import.meta.dirname}/..`, '..');
const skeind = join(root, 'dist/src/skeind.js');

function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'skeind-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('command line: bad configuration exits 2 with one line naming file, line and field', async (t) => {
  const dir = tmp();
  const cases: { name: string; text: string | null; want: RegExp }[] = [
    { name: 'typo.yaml', text: 'nodeName: host-a\nfib:\n  enabeld: true\n', want: /typo\.yaml:3:3: fib\.enabeld: .*did you mean "enabled"/ },
    { name: 'value.yaml', text: 'fib:\n  protocol: 2\n', want: /value\.yaml:2:\d+: fib\.protocol: .*reserved/ },
    { name: 'port.yaml', text: 'bgp:\n  listen: { port: 70000 }\n', want: /port\.yaml:2:\d+: bgp\.listen\.port: / },
    { name: 'syntax.yaml', text: 'fib: [\n', want: /syntax\.yaml:\d+(:\d+)?: / },
    { name: 'missing.yaml', text: null, want: /missing\.yaml: \(file\): cannot read: ENOENT/ },
  ];
  for (const c of cases) {
    const file = join(dir, c.name);
    if (c.text !== null) writeFileSync(file, c.text);
    const r = spawnSync('node', [skeind, '--config', file], { encoding: 'utf8', timeout: 20_000 });
    t.equal(r.status, 2, `${c.name}: exit 2`);
    const lines = r.stderr.split('\n').filter(Boolean);
    t.equal(lines.length, 1, `${c.name}: one line on stderr: ${r.stderr}`);
    t.match(lines[0], c.want, `${c.name}: names file, line and field`);
    t.notMatch(r.stderr, /\n\s+at /, `${c.name}: no stack trace`);
    t.equal(r.stdout, '', `${c.name}: nothing on stdout`);
  }
  // SKEIN_CONFIG is the fallback for --config
  const r = spawnSync('node', [skeind], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, SKEIN_CONFIG: join(dir, 'typo.yaml') } });
  t.equal(r.status, 2);
  t.match(r.stderr, /typo\.yaml:3:3: fib\.enabeld/);
});

t.test('command line: --version, --help, unknown arguments', async (t) => {
  const v = spawnSync('node', [skeind, '--version'], { encoding: 'utf8', timeout: 20_000 });
  t.equal(v.status, 0);
  t.match(v.stdout, /^skeind \d+\.\d+\.\d+\n$/);
  const h = spawnSync('node', [skeind, '--help'], { encoding: 'utf8', timeout: 20_000 });
  t.equal(h.status, 0);
  t.match(h.stdout, /usage: skeind \[--config FILE\]/);
  const u = spawnSync('node', [skeind, '--frobnicate'], { encoding: 'utf8', timeout: 20_000 });
  t.equal(u.status, 2);
  t.match(u.stderr, /unknown argument "--frobnicate"/);
});

const basePeer: DesiredPeer = {
  key: '10.0.0.2', address: '10.0.0.2', family: 4, name: 'Mesh_10_0_0_2', type: 'node-to-node mesh', peerNode: 'host-b',
  peerAS: 64512, localAS: 64512, passive: false, sourceAddress: '10.0.0.1', nextHop: 'auto', filters: [], rrClient: false,
  reflection: 'none', sources: [{ kind: 'mesh' }],
};

t.test('DesiredPeer -> speaker peer options', async (t) => {
  const key = Buffer.from('s3cret');
  const rows: { name: string; peer: { [K in keyof DesiredPeer]?: DesiredPeer[K] | undefined }; ctx?: Parameters<typeof peerOptionsFor>[1]; want: Record<string, unknown> }[] = [
    {
      name: 'mesh peer',
      peer: {},
      want: { address: '10.0.0.2', asn: 64512, passive: false, families: ['ipv4-unicast'], type: 'node-to-node mesh', sourceAddress: '10.0.0.1' },
    },
    {
      name: 'passive IPv6 mesh peer',
      peer: { address: 'fd00::2', key: 'fd00::2', family: 6, passive: true, sourceAddress: 'fd00::1' },
      want: { address: 'fd00::2', asn: 64512, passive: true, families: ['ipv6-unicast'], type: 'node-to-node mesh', sourceAddress: 'fd00::1' },
    },
    {
      name: 'eBGP ToR with port, password, GTSM, restart time, keepalive, allowas-in, next-hop self',
      peer: {
        type: 'node specific', peerAS: 65001, port: 1790, ttlSecurity: 1, restartTimeMs: 120_500, keepaliveTimeMs: 10_000,
        numAllowedLocalASNumbers: 2, nextHop: 'self', sourceAddress: undefined,
      },
      ctx: { localAsn: 64512, md5Key: key },
      want: {
        address: '10.0.0.2', asn: 65001, port: 1790, passive: false, families: ['ipv4-unicast'], type: 'node specific',
        md5Key: key, ttlSecurity: 1, restartTime: 121, keepaliveTime: 10, allowOwnAs: 2, nextHopSelf: true,
      },
    },
    {
      name: 'restart time is capped at 4095 s (RFC 4724 12-bit field); port 179 is the default',
      peer: { restartTimeMs: 10_000_000, port: 179 },
      want: { restartTime: 4095 },
    },
    {
      name: 'local AS override',
      peer: { localAS: 65500 },
      ctx: { localAsn: 64512 },
      want: { localAsn: 65500 },
    },
    {
      name: 'route reflector client',
      peer: { rrClient: true, reflection: 'client' },
      want: { routeReflectorClient: true, type: 'node-to-node mesh' },
    },
    {
      name: 'ADD-PATH: every path to a reflector client (skein.yaml bgp.addPaths.toClients), receive offered',
      peer: { rrClient: true, reflection: 'client' },
      ctx: { localAsn: 64512, addPaths: { toClients: { mode: 'all' }, receive: true } },
      want: { routeReflectorClient: true, addPathSend: { mode: 'all' }, addPathReceive: true },
    },
    {
      name: 'ADD-PATH best 2 to a reflector client',
      peer: { rrClient: true, reflection: 'client' },
      ctx: { localAsn: 64512, addPaths: { toClients: { mode: 'best', count: 2 }, receive: false } },
      want: { routeReflectorClient: true, addPathSend: { mode: 'best', count: 2 } },
    },
    {
      name: 'our route reflector',
      peer: { reflection: 'reflector', type: 'global' },
      want: { type: 'route reflector' },
    },
    {
      name: 'maximum prefixes from skein.yaml: per family, with a per-family override',
      peer: {},
      ctx: { localAsn: 64512, maxPrefixes: { limit: 5000, ipv6: 500, warningThreshold: 80, restartAfter: 60, peers: { '10.0.0.9': 7 } } },
      want: { maxPrefixes: { limit: 5000, warningThreshold: 80, perFamily: { 'ipv6-unicast': 500 }, restartAfterSec: 60 } },
    },
    {
      name: 'maximum prefixes: a per-peer limit replaces the per-family ones',
      peer: { address: '10.0.0.9' },
      ctx: { localAsn: 64512, maxPrefixes: { limit: 5000, ipv6: 500, warningThreshold: 75, peers: { '10.0.0.9': 7 } } },
      want: { maxPrefixes: { limit: 7, warningThreshold: 75 } },
    },
    {
      name: 'keep next hop on iBGP: nothing to set (iBGP keeps it anyway)',
      peer: { nextHop: 'keep' },
      want: { address: '10.0.0.2', asn: 64512, passive: false, families: ['ipv4-unicast'], type: 'node-to-node mesh', sourceAddress: '10.0.0.1' },
    },
    {
      name: 'keep next hop on eBGP: a third-party next hop (Calico nextHopMode Keep)',
      peer: { nextHop: 'keep', peerAS: 65001, type: 'global' },
      want: { address: '10.0.0.2', asn: 65001, passive: false, families: ['ipv4-unicast'], type: 'global', sourceAddress: '10.0.0.1', nextHopKeep: true },
    },
  ];
  for (const r of rows) {
    const p = { ...basePeer, ...r.peer } as DesiredPeer;
    for (const k of Object.keys(r.peer) as (keyof DesiredPeer)[]) if (r.peer[k] === undefined) delete p[k];
    const got = peerOptionsFor(p, r.ctx ?? { localAsn: 64512 }) as unknown as Record<string, unknown>;
    if (r.name.startsWith('mesh peer') || r.name.startsWith('passive') || r.name.startsWith('eBGP') || r.name.startsWith('keep')) t.same(got, r.want, r.name);
    else t.match(got, r.want, r.name);
  }
  t.notOk('localAsn' in peerOptionsFor(basePeer, { localAsn: 64512 }), 'no override when the local AS is the speaker\'s');
  t.same(peerOptionsFor({ ...basePeer, address: '10.0.0.9' }, { localAsn: 64512, maxPrefixes: { limit: 50, ipv4: 40, warningThreshold: 75, peers: { '10.0.0.9': 7 } } }).maxPrefixes,
    { limit: 7, warningThreshold: 75 }, 'a per-peer limit: no per-family overrides left over');
  t.notOk('maxPrefixes' in peerOptionsFor(basePeer, { localAsn: 64512 }), 'no bgp.maxPrefixes: no limit');
  t.notOk('port' in peerOptionsFor({ ...basePeer, port: 179 }, { localAsn: 64512 }));
  // ADD-PATH send only toward reflector clients; off and non-clients get none
  const ap = { toClients: { mode: 'all' as const }, receive: false };
  t.notOk('addPathSend' in peerOptionsFor(basePeer, { localAsn: 64512, addPaths: ap }), 'a mesh peer (not a client): no ADD-PATH send');
  t.notOk('addPathReceive' in peerOptionsFor(basePeer, { localAsn: 64512, addPaths: ap }));
  t.notOk('addPathSend' in peerOptionsFor({ ...basePeer, rrClient: true }, { localAsn: 64512, addPaths: { toClients: { mode: 'off' }, receive: false } }), 'off');
  t.notOk('addPathSend' in peerOptionsFor({ ...basePeer, rrClient: true }, { localAsn: 64512 }), 'default off');
});

t.test('origination -> path attributes', async (t) => {
  const o = (c: [number, number][], l: [number, number, number][] = []): Origination => ({
    key: '10.65.0.0/26', prefix: '10.65.0.0/26', family: 4, kind: 'block', communities: c, largeCommunities: l, localPref: 2147482623, sources: [],
  });
  // LOCAL_PREF 2^31-1 - 1024, as Calico v3.32+ nodes export their routes (confd buildExportFilter).
  t.same(originationAttributes(o([])), { origin: 0, localPref: 2147482623 }, 'plain: ORIGIN IGP and Calico\'s LOCAL_PREF');
  t.same(originationAttributes(o([[65000, 100], [65535, 65281]])), { origin: 0, localPref: 2147482623, communities: [65000 * 65536 + 100, 0xffffff01] }, 'RFC 1997 values');
  t.same(originationAttributes(o([], [[4200000000, 1, 2]])), { origin: 0, localPref: 2147482623, largeCommunities: [[4200000000, 1, 2]] }, 'RFC 8092 large communities');
});

t.test('router ID and speaker identity', async (t) => {
  t.equal(routerIdFor('192.0.2.9', '10.0.0.1', 'host-a'), '192.0.2.9', 'configured wins');
  t.equal(routerIdFor(undefined, '10.0.0.1', 'host-a'), '10.0.0.1', 'else the node IPv4 address');
  const a = routerIdFor(undefined, undefined, 'host-a');
  t.match(a, /^\d+\.\d+\.\d+\.\d+$/, 'IPv6-only: a dotted quad');
  t.equal(routerIdFor(undefined, undefined, 'host-a'), a, 'stable');
  t.not(routerIdFor(undefined, undefined, 'host-b'), a, 'different per node');
  t.not(a, '0.0.0.0');

  const cfg = parseDaemonConfig('nodeName: host-a\nbgp: { listen: { port: 1179 } }\n', '/etc/skein/skein.yaml');
  const model = (yaml: string): ReturnType<typeof loadResourcesText>['model'] => {
    const l = loadResourcesText(yaml, 'r.yaml');
    t.same(l.issues.filter((i) => i.severity === 'error'), [], 'fixture is valid');
    return l.model;
  };
  const node = (extra = ''): string => `apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: { name: host-a }\nspec: { bgp: { ipv4Address: 10.0.0.1/24, ipv6Address: "fd00::1/64"${extra} } }\n`;
  t.same(speakerIdentity(cfg, model(node())), { asn: 64512, routerId: '10.0.0.1', listenAddress: '::', listenPort: 1179, v4: '10.0.0.1', v6: 'fd00::1' }, 'defaults');
  const withCfg = `${node(', asNumber: 65010')}---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: { name: default }\nspec: { asNumber: 65000, listenPort: 2179, bindMode: NodeIP }\n`;
  t.same(speakerIdentity(cfg, model(withCfg)), { asn: 65010, routerId: '10.0.0.1', listenAddress: '10.0.0.1', alsoListen: 'fd00::1', listenPort: 2179, listenPortFrom: 'BGPConfiguration default spec.listenPort', v4: '10.0.0.1', v6: 'fd00::1' }, 'node AS, listenPort (and where it comes from), bindMode NodeIP: both node addresses on a dual-stack node (bird and bird6)');
  const perNode = `${withCfg}---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: { name: node.host-a }\nspec: { listenPort: 3179 }\n`;
  t.equal(speakerIdentity(cfg, model(perNode)).listenPort, 3179, 'node.<name> listenPort wins');
  // the route path's warm-up (bgp/speaker/warm.ts) only where whole tables come: a route reflector
  const hooks = { routeInterface: () => undefined, onUpdateApplied: () => undefined, remoteLog: new LogRateLimit(), forwardingState: false, restarting: false };
  t.equal(speakerOptions(speakerIdentity(cfg, model(node())), cfg, hooks).warmUp, false, 'a mesh host: no warm-up');
  t.equal(speakerOptions(speakerIdentity(cfg, model(node(', routeReflectorClusterID: 10.0.0.1'))), cfg, hooks).warmUp, true, 'a route reflector: warm-up');
});

t.test('addresses and prefixes to bytes; BGP next hops to a kernel target', async (t) => {
  const hex = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : Buffer.from(b).toString('hex'));
  t.equal(hex(addressBytes('10.65.0.1')), '0a410001');
  t.equal(hex(addressBytes('fd00::1')), 'fd000000000000000000000000000001');
  t.equal(hex(addressBytes('::')), '00000000000000000000000000000000');
  t.equal(hex(addressBytes('2001:db8:1:2:3:4:5:6')), '20010db8000100020003000400050006');
  t.equal(hex(addressBytes('::ffff:10.0.0.1')), '00000000000000000000ffff0a000001');
  t.equal(hex(addressBytes('fe80::1:2')), 'fe800000000000000000000000010002');
  t.equal(addressBytes('10.0.0'), undefined);
  t.same(prefixBytes('10.65.0.0/26'), { family: 4, addr: Uint8Array.from([10, 65, 0, 0]), len: 26 });
  t.equal(prefixBytes('10.65.0.1')?.len, 32);
  t.equal(prefixBytes('fd00::/130'), undefined);
  t.equal(prefixBytes('10.0.0.0/x'), undefined);
  const rows = ['fd00::/64', '10.65.1.0/26', 'junk', '10.65.0.0/26', '9.255.0.0/16', '10.65.0.0/16', 'fd00::1/128', '10.65.0.7/32']
    .map((prefix, i) => ({ prefix, i }));
  t.same(sortByPrefix(rows).map((r) => r.prefix),
    ['9.255.0.0/16', '10.65.0.0/16', '10.65.0.0/26', '10.65.0.7/32', '10.65.1.0/26', 'fd00::/64', 'fd00::1/128', 'junk'],
    'IPv4 first, by address bytes (not text), shorter first; unparsable last');

  const own = new Set(['10.0.0.1']);
  t.same(bgpTarget(4, ['10.0.0.2'], own), { hops: [{ gateway: Uint8Array.from([10, 0, 0, 2]) }] });
  t.same(bgpTarget(4, ['10.0.0.2', '10.0.0.3'], own), { hops: [{ gateway: Uint8Array.from([10, 0, 0, 2]) }, { gateway: Uint8Array.from([10, 0, 0, 3]) }] }, 'ECMP');
  t.equal(bgpTarget(4, ['10.0.0.1'], own), undefined, 'never via ourselves');
  t.equal(bgpTarget(4, ['fd00::2'], own), undefined, 'wrong family');
  t.equal(bgpTarget(6, ['fe80::2'], own), undefined, 'link-local needs an interface');
  t.equal(bgpTarget(6, ['fd00::2'], own)?.hops?.length, 1);
});

t.test('route table: device > blackhole > BGP; nothing written while the gate is closed', async (t) => {
  const rt = new RouteTable(undefined);
  rt.setBgp('10.65.0.0/26', ['10.0.0.2']);
  t.equal(rt.desired('10.65.0.0/26')?.kind, 'bgp');
  rt.setBlackhole('10.65.0.0/26', true);
  t.equal(rt.desired('10.65.0.0/26')?.kind, 'blackhole', 'the affine block\'s blackhole beats a BGP path');
  rt.setDevice('10.65.0.0/26', 'cali1');
  t.equal(rt.desired('10.65.0.0/26')?.dev, 'cali1', 'a local workload beats both');
  rt.setDevice('10.65.0.0/26', null);
  rt.setBlackhole('10.65.0.0/26', false);
  t.same(rt.desired('10.65.0.0/26')?.nextHops, ['10.0.0.2'], 'back to BGP');
  rt.setBgp('10.65.0.0/26', null);
  t.equal(rt.desired('10.65.0.0/26'), undefined);
  t.equal(rt.size, 0, 'forgotten');
  rt.own = new Set(['10.0.0.1']);
  rt.setBgp('10.0.0.1/32', ['10.0.0.1']);
  t.equal(rt.desired('10.0.0.1/32'), undefined, 'unusable next hops install nothing');

  // What reaches the Programmer (a recording stand-in: the real one is exercised in skeind-e2e).
  const calls: string[] = [];
  const fake = {
    set: (_f: number, a: Uint8Array, l: number, tg: { blackhole?: boolean; hops?: readonly { dev?: string }[] }) =>
      calls.push(`set ${[...a].join('.')}/${l} ${tg.blackhole ? 'blackhole' : (tg.hops ?? []).map((h) => h.dev ?? 'gw').join(',')}`),
    remove: (_f: number, a: Uint8Array, l: number) => calls.push(`remove ${[...a].join('.')}/${l}`),
  };
  const gated = new RouteTable(fake as unknown as ConstructorParameters<typeof RouteTable>[0]);
  gated.setBlackhole('10.65.0.0/26', true);
  gated.setDevice('10.65.0.2/32', 'cali1');
  t.same(calls, [], 'gate closed: nothing written');
  gated.setOpen(true);
  t.same(calls.sort(), ['set 10.65.0.0/26 blackhole', 'set 10.65.0.2/32 cali1'], 'gate opened: the whole state is written');
  calls.length = 0;
  gated.setBgp('10.65.0.0/26', ['10.0.0.2']);
  t.same(calls, [], 'a BGP path under a blackhole changes nothing in the kernel');
  gated.setBlackhole('10.65.0.0/26', false);
  t.same(calls, ['set 10.65.0.0/26 gw'], 'the BGP path takes over when the blackhole goes');
  gated.setBgp('10.65.0.0/26', null);
  gated.setDevice('10.65.0.2/32', null);
  t.same(calls.slice(1), ['remove 10.65.0.0/26', 'remove 10.65.0.2/32'], 'and routes nobody wants are removed');
  t.equal(gated.size, 0);

  // Stale BGP paths after a speaker restart: kept until announced again or swept.
  calls.length = 0;
  gated.setBgp('10.65.1.0/26', ['10.0.0.2']);
  gated.setBgp('10.65.2.0/26', ['10.0.0.3']);
  t.equal(gated.markBgpStale(), 2);
  gated.setBgp('10.65.1.0/26', ['10.0.0.2']);
  t.equal(calls.length, 2, 'a path announced again is not rewritten');
  t.equal(gated.sweepBgpStale(), 1);
  t.same(calls.slice(2), ['remove 10.65.2.0/26'], 'only the path nobody announced again is removed');
  t.equal(gated.sweepBgpStale(), 0, 'a second sweep does nothing');
});

// ---------------------------------------------------------------------------------------------------------------
// Two daemons in this process, on 127.0.0.1 and 127.0.0.2, FIB disabled (no root).

interface Node { name: string; ip: string }
const N1: Node = { name: 'node-1', ip: '127.0.0.1' };
const N2: Node = { name: 'node-2', ip: '127.0.0.2' };

function clusterYaml(port: number, opts: { extraPodOn2?: boolean; label?: string; asn?: number } = {}): string {
  const docs = [
    `kind: BGPConfiguration\nmetadata: { name: default }\nspec: { asNumber: ${opts.asn ?? 64512}, listenPort: ${port}, bindMode: NodeIP }`,
    'kind: IPPool\nmetadata: { name: pods }\nspec: { cidr: 10.65.0.0/16, blockSize: 26 }',
    `kind: Node\nmetadata: { name: node-1${opts.label ? `, labels: { rack: ${opts.label} }` : ''} }\nspec: { bgp: { ipv4Address: 127.0.0.1/8 } }`,
    'kind: Node\nmetadata: { name: node-2 }\nspec: { bgp: { ipv4Address: 127.0.0.2/8 } }',
    'kind: BlockAffinity\nmetadata: { name: node-1-10-65-0-0-26 }\nspec: { node: node-1, cidr: 10.65.0.0/26, state: confirmed, deleted: "false" }',
    'kind: BlockAffinity\nmetadata: { name: node-2-10-65-0-64-26 }\nspec: { node: node-2, cidr: 10.65.0.64/26, state: confirmed, deleted: "false" }',
    'kind: WorkloadEndpoint\nmetadata: { name: node--2-k8s-p1-eth0, namespace: default }\nspec: { orchestrator: k8s, node: node-2, pod: p1, endpoint: eth0, interfaceName: cali1234567890a, ipNetworks: [10.65.0.70/32] }',
  ];
  if (opts.extraPodOn2) {
    docs.push('kind: WorkloadEndpoint\nmetadata: { name: node--2-k8s-p2-eth0, namespace: default }\nspec: { orchestrator: k8s, node: node-2, pod: p2, endpoint: eth0, interfaceName: cali1234567890b, ipNetworks: [10.65.0.9/32] }');
  }
  return docs.map((d) => `---\napiVersion: projectcalico.org/v3\n${d}\n`).join('');
}

t.test('two daemons in-process: mesh over loopback, learned routes, live edits, reload, stop', async (t) => {
  const dir = tmp();
  mkdirSync(join(dir, 'run'));
  const port = 31000 + (process.pid % 2000);
  const res = join(dir, 'resources.yaml');
  const write = (text: string): void => {
    writeFileSync(`${res}.tmp`, text);
    renameSync(`${res}.tmp`, res);
  };
  write(clusterYaml(port));
  const daemons: Daemon[] = [];
  const logs: string[][] = [];
  t.teardown(async () => {
    for (const d of daemons) await d.stop('test over');
  });
  for (const n of [N1, N2]) {
    const file = join(dir, `${n.name}.yaml`);
    writeFileSync(file, [
      `nodeName: ${n.name}`,
      `datastore: { type: file, path: ${res}, debounce: 20ms }`,
      'fib: { enabled: false }',
      `control: { socket: ${join(dir, 'run', `${n.name}.sock`)} }`,
      'metrics: { listen: "" }',
      'log: { level: info }',
      '',
    ].join('\n'));
    const lines: string[] = [];
    logs.push(lines);
    const d = new Daemon(loadDaemonConfig(file, {}), { logSink: (l) => lines.push(l), env: {} });
    daemons.push(d);
    await d.start();
  }
  const [d1, d2] = daemons as [Daemon, Daemon];
  try {
    for (const d of daemons) {
      await until(() => d.peers().length === 1 && d.peers()[0]!.state === 'Established', `${d.cfg.nodeName}: mesh peer Established`, 20_000, 50);
    }
    t.equal(d1.status().routerId, '127.0.0.1');
    t.equal(d1.peers()[0]!.type, 'node-to-node mesh');
    await until(() => d1.routesJson('10.65.0.64/26').routes.length === 1, 'node-1 learns node-2 block', 10_000, 50);
    const r = d1.routesJson('10.65.0.64/26').routes[0]!;
    t.equal(r.best?.from, '127.0.0.2');
    t.same(r.best?.nextHops, ['127.0.0.2']);
    t.equal(r.installed, false, 'FIB disabled: not installed');
    t.equal(d1.fibJson().enabled, false);
    // fib.enabled false: the route table keeps no learned route (nothing of it is ever written; routes.ts
    // #keepLearned), only this node's own (the device route below)
    t.equal(d1.fibJson().routes.find((x) => x.prefix === '10.65.0.64/26'), undefined, 'FIB disabled: the learned route is not in the fib view');
    t.equal(d1.speaker!.rib.trackBest, false, 'FIB disabled, nobody watching: the speaker records no best-path changes');
    t.same(d2.fibJson().routes.find((x) => x.prefix === '10.65.0.70/32')?.desired, { type: 'device', nextHops: [], dev: 'cali1234567890a' });
    await until(() => d1.status().ready && d2.status().ready, 'both ready', 10_000, 50);
    const conn = (d1.speaker!.peersJson().peers[0] as { connection: number | null }).connection;

    // A borrowed address appears on node-2 (its address is in node-1's block): node-1 learns the /32.
    write(clusterYaml(port, { extraPodOn2: true }));
    await until(() => d1.routesJson('10.65.0.9/32').routes.length === 1, 'node-1 learns borrowed 10.65.0.9/32 from node-2', 10_000, 50);
    t.equal(d1.routesJson('10.65.0.9').routes[0]?.prefix, '10.65.0.9/32', 'an address finds its longest match');
    // A label change only changes what describes nothing of node-2's peering: the session stays.
    write(clusterYaml(port, { extraPodOn2: true, label: 'r1' }));
    await new Promise((r) => setTimeout(r, 300));
    t.equal((d1.speaker!.peersJson().peers[0] as { connection: number | null }).connection, conn, 'same TCP connection after unrelated edits');
    // Removal: the borrowed /32 is withdrawn.
    write(clusterYaml(port));
    await until(() => d1.routesJson('10.65.0.9/32').routes.length === 0, 'withdrawn on node-1', 10_000, 50);

    // reload (SIGHUP path): skein.yaml log level change applies, sessions stay.
    const f1 = d1.cfg.file;
    writeFileSync(f1, `${[
      'nodeName: node-1', `datastore: { type: file, path: ${res}, debounce: 20ms }`, 'fib: { enabled: false }',
      `control: { socket: ${join(dir, 'run', 'node-1.sock')} }`, 'metrics: { listen: "" }', 'log: { level: debug }',
    ].join('\n')}\n`);
    const rr = await d1.reload();
    t.equal(rr.reloaded, true);
    t.ok(rr.changes?.some((c) => c.startsWith('log.level')), 'reports the log level change');
    t.equal(d1.log.level, 'debug');
    t.equal((d1.speaker!.peersJson().peers[0] as { connection: number | null }).connection, conn, 'reload keeps the session');
    writeFileSync(f1, `${[
      'nodeName: node-1', `datastore: { type: file, path: ${res}, debounce: 40ms }`, 'fib: { enabled: false }',
      `control: { socket: ${join(dir, 'run', 'node-1.sock')} }`, 'metrics: { listen: "" }', 'log: { level: debug }',
    ].join('\n')}\n`);
    const rr2 = await d1.reload();
    t.ok(rr2.changes?.some((c) => c === 'datastore changed: needs a restart of skeind to take effect'), 'a change that needs a restart is reported as such');
    writeFileSync(f1, 'fib: { enabeld: false }\n');
    await t.rejects(d1.reload(), /enabeld/, 'a bad skein.yaml on reload is refused, the running config kept');

    // The cluster's AS changes: both speakers are replaced, sessions come back with the new AS and the route is
    // learned again. (That a learned route stays desired meanwhile is the route table's markBgpStale, tested above
    // and in daemon-routes; with fib.enabled false the table keeps no learned routes, so nothing is held here.)
    write(clusterYaml(port, { asn: 65123 }));
    await until(() => d1.status().asn === 65123 && d2.status().asn === 65123, 'both speakers on the new AS', 10_000, 50);
    await until(() => d1.peers()[0]?.state === 'Established' && d1.peers()[0]?.asn === 65123, 'session back with AS 65123', 20_000, 50);
    await until(() => d1.routesJson('10.65.0.64/26').routes[0]?.best?.from === '127.0.0.2', 'route re-learned', 10_000, 50);
    await until(() => logs[0]!.some((l) => l.includes('re-learned after the speaker restart')), 'stale sweep done', 10_000, 50);
    const swept = logs[0]!.find((l) => l.includes('re-learned after the speaker restart'))!;
    t.match(JSON.parse(swept), { stale: 0, swept: 0 }, 'FIB disabled: no learned route was held over the restart');
    t.equal(d1.fibJson().routes.find((x) => x.prefix === '10.65.0.64/26'), undefined, 'nor kept after it');

    const sentBefore = { ...d2.speaker!.peersJson().peers[0]!.notifications.out };
    await d2.stop();
    await until(() => d1.peers()[0]!.state !== 'Established', 'node-1 sees node-2 gone', 10_000, 50);
    t.match(d1.peers()[0]!.info, /closed|reset|EOF|ended/i, 'with a reason');
    t.notMatch(d1.peers()[0]!.info, /received NOTIFICATION/, 'a clean stop sends no NOTIFICATION (graceful restart)');
    // The stopping side neither counts nor logs a NOTIFICATION it never sent.
    t.same(d2.speaker!.peersJson().peers[0]!.notifications.out, sentBefore, 'no NOTIFICATION counted as sent');
    t.notOk(logs[1]!.some((l) => /sent NOTIFICATION/.test(l)), 'no "sent NOTIFICATION" in the stopping daemon\'s log');
  } catch (e) {
    for (const l of logs) t.comment(l.slice(-20).join(''));
    throw e;
  }
});

t.test('ClusterInformation gate: nothing announced until datastoreReady is true', async (t) => {
  const dir = tmp();
  const res = join(dir, 'resources.yaml');
  const yaml = (ready: boolean): string => [
    `kind: ClusterInformation\nmetadata: { name: default }\nspec: { datastoreReady: ${ready} }`,
    'kind: BGPConfiguration\nmetadata: { name: default }\nspec: { logSeverityScreen: Debug }',
    'kind: IPPool\nmetadata: { name: pods }\nspec: { cidr: 10.65.0.0/16, blockSize: 26 }',
    'kind: Node\nmetadata: { name: solo }\nspec: { bgp: { ipv4Address: 127.0.0.1/8 } }',
    'kind: BlockAffinity\nmetadata: { name: solo-10-65-0-0-26 }\nspec: { node: solo, cidr: 10.65.0.0/26, state: confirmed, deleted: "false" }',
  ].map((d) => `---\napiVersion: projectcalico.org/v3\n${d}\n`).join('');
  const write = (text: string): void => {
    writeFileSync(`${res}.tmp`, text);
    renameSync(`${res}.tmp`, res);
  };
  write(yaml(false));
  const file = join(dir, 'skein.yaml');
  const port = 33000 + (process.pid % 2000);
  writeFileSync(file, `nodeName: solo\ndatastore: { type: file, path: ${res}, debounce: 20ms }\nbgp: { listen: { address: 127.0.0.1, port: ${port} } }\nfib: { enabled: false }\ncontrol: { socket: ${join(dir, 'solo.sock')} }\nmetrics: { listen: "" }\n`);
  const d = new Daemon(loadDaemonConfig(file, {}), { logSink: () => undefined, env: {} });
  t.teardown(() => d.stop());
  await d.start();
  await until(() => d.speaker !== undefined && d.status().notReady?.some((m) => m.includes('cluster datastore not ready')), 'not ready: cluster gate', 10_000, 50);
  t.equal(d.log.level, 'debug', "Calico's logSeverityScreen raises the log level");
  t.same(d.routesJson().routes, [], 'nothing originated while the gate is closed');
  t.same(d.fibJson().counts.desired, 0, 'nothing to program while the gate is closed');
  write(yaml(true));
  await until(() => d.routesJson('10.65.0.0/26').routes.length === 1, 'block announced once the datastore is ready', 10_000, 50);
  t.equal(d.routesJson('10.65.0.0/26').routes[0]?.best?.from, 'local');
  t.equal(d.fibJson().routes.find((r) => r.prefix === '10.65.0.0/26')?.desired?.type, 'blackhole');
  await until(() => d.status().ready, 'ready with no peers once the gate is open', 10_000, 50);
  // At run time a false flag freezes instead (calicoctl datastore migrate lock; confd ignores the flag): the block
  // stays announced and blackholed, a change meanwhile waits, and the thaw applies it.
  write(yaml(false));
  await until(() => d.status().notReady?.some((m) => m.includes('datastore frozen')), 'frozen: not ready, with the reason', 10_000, 50);
  write(yaml(false).replace(/---\napiVersion: projectcalico.org\/v3\nkind: BlockAffinity[^]*$/, ''));
  await new Promise((r) => setTimeout(r, 300));
  t.equal(d.routesJson('10.65.0.0/26').routes.length, 1, 'still announced while frozen, the affinity\'s deletion held back');
  t.equal(d.fibJson().routes.find((r) => r.prefix === '10.65.0.0/26')?.desired?.type, 'blackhole', 'still blackholed while frozen');
  write(yaml(true).replace(/---\napiVersion: projectcalico.org\/v3\nkind: BlockAffinity[^]*$/, ''));
  await until(() => d.routesJson().routes.length === 0, 'the held deletion applies after the thaw', 10_000, 50);
  await until(() => d.status().ready, 'ready again after the thaw', 10_000, 50);
});

t.test('a workload change asks for no BFD reconcile; a BFDConfiguration change asks for one', async (t) => {
  const dir = tmp();
  const res = join(dir, 'resources.yaml');
  const docs = [
    'kind: ClusterInformation\nmetadata: { name: default }\nspec: { datastoreReady: true }',
    'kind: IPPool\nmetadata: { name: pods }\nspec: { cidr: 10.65.0.0/16, blockSize: 26 }',
    'kind: Node\nmetadata: { name: solo }\nspec: { bgp: { ipv4Address: 127.0.0.1/8 } }',
    'kind: BlockAffinity\nmetadata: { name: solo-10-65-0-0-26 }\nspec: { node: solo, cidr: 10.65.0.0/26, state: confirmed, deleted: "false" }',
  ];
  const write = (extra: string[]): void => {
    writeFileSync(`${res}.tmp`, [...docs, ...extra].map((d) => `---\napiVersion: projectcalico.org/v3\n${d}\n`).join(''));
    renameSync(`${res}.tmp`, res);
  };
  write([]);
  const file = join(dir, 'skein.yaml');
  const port = 35000 + (process.pid % 2000);
  writeFileSync(file, `nodeName: solo\ndatastore: { type: file, path: ${res}, debounce: 20ms }\nbgp: { listen: { address: 127.0.0.1, port: ${port} } }\nfib: { enabled: false }\ncontrol: { socket: ${join(dir, 'solo.sock')} }\nmetrics: { listen: "" }\n`);
  const d = new Daemon(loadDaemonConfig(file, {}), { logSink: () => undefined, env: {} });
  t.teardown(() => d.stop());
  await d.start();
  await until(() => d.status().ready, 'ready', 10_000, 50);
  const changes = async (kind: string): Promise<number> =>
    (await d.metrics.registry.getSingleMetric('skein_datastore_updates_total')?.get())?.values.find((v) => v.labels.kind === kind)?.value ?? 0;
  // a change is counted when it arrives and applied in the next turn (src/daemon/events.ts)
  const applied = async (kind: string, n: number, what: string): Promise<void> => {
    await until(async () => (await changes(kind)) >= n, what, 10_000, 20);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  };
  const before = d.bfd.requests;
  // (another node's endpoints never reach the daemon: both datastores drop them by key or spec.node; this node's
  // own pod with a borrowed address changes announcements and device routes, not peers)
  const wep = 'kind: WorkloadEndpoint\nmetadata: { name: solo-k8s-p1-eth0, namespace: default }\nspec: { orchestrator: k8s, node: solo, pod: p1, endpoint: eth0, interfaceName: cali1234567890a, ipNetworks: [10.65.1.70/32] }';
  write([wep]);
  await applied('WorkloadEndpoint', 1, 'the endpoint applied');
  await until(() => d.routesJson('10.65.1.70/32').routes.length === 1, 'the borrowed /32 announced', 10_000, 20);
  t.equal(d.bfd.requests, before, 'no BFD reconcile asked for a workload (the peers did not change)');
  const bfdConf = 'kind: BFDConfiguration\nmetadata: { name: all }\nspec: { nodeSelector: all(), interfaces: [{ matchPattern: "*" }] }';
  write([wep, bfdConf]);
  await applied('BFDConfiguration', 1, 'the BFDConfiguration applied');
  t.equal(d.bfd.requests, before + 1, 'one reconcile asked for the BFDConfiguration');
});

// Ports of this file's etcd: 24321-24322 (each test file has its own).
t.test('etcd datastore: a daemon follows Calico\'s etcd layout live', async (t) => {
  if (!requires(t, { commands: ['etcd'] })) return;
  const dir = tmp();
  const etcd = await startEtcd(24321, 24322);
  t.teardown(() => etcd.stop());
  const docs = [
    { kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    { kind: 'IPPool', metadata: { name: 'pods' }, spec: { cidr: '10.65.0.0/16', blockSize: 26 } },
    { kind: 'Node', metadata: { name: 'solo' }, spec: { bgp: { ipv4Address: '127.0.0.1/8' } } },
  ];
  const model = loadResourcesText(docs.map((d) => `---\n${JSON.stringify({ apiVersion: 'projectcalico.org/v3', ...d })}\n`).join(''), 'r.yaml');
  t.same(model.issues, [], 'fixture is valid');
  for (const d of docs) await etcd.client.put(etcdKey(model.model.get(d.kind as 'Node', d.metadata.name)!)).value(etcdValueOf(d));
  const affinity = (cidr: string): string => `/calico/ipam/v2/host/solo/ipv4/block/${cidr.replace('/', '-')}`;
  await etcd.client.put(affinity('10.65.0.0/26')).value('{"state":"confirmed","deleted":false}');
  const file = join(dir, 'skein.yaml');
  const port = 35000 + (process.pid % 2000);
  writeFileSync(file, `nodeName: solo\ndatastore: { type: etcd, etcd: { endpoints: [${etcd.endpoint}] } }\nbgp: { listen: { address: 127.0.0.1, port: ${port} } }\nfib: { enabled: false }\ncontrol: { socket: ${join(dir, 'solo.sock')} }\nmetrics: { listen: "" }\n`);
  const d = new Daemon(loadDaemonConfig(file, {}), { logSink: () => undefined, env: {} });
  t.teardown(() => d.stop());
  await d.start();
  await until(() => d.routesJson('10.65.0.0/26').routes.length === 1, 'affine block announced from etcd', 20_000, 50);
  await until(() => d.status().ready, 'ready', 10_000, 50);
  await etcd.client.put(affinity('10.65.0.64/26')).value('{"state":"confirmed","deleted":false}');
  await until(() => d.routesJson('10.65.0.64/26').routes.length === 1, 'a new affinity in etcd is announced', 10_000, 50);
  t.equal(d.fibJson().routes.find((r) => r.prefix === '10.65.0.64/26')?.desired?.type, 'blackhole', 'and blackholed');
  await etcd.client.delete().key(affinity('10.65.0.64/26'));
  await until(() => d.routesJson('10.65.0.64/26').routes.length === 0, 'a deleted affinity is withdrawn', 10_000, 50);
  t.equal(d.routesJson('10.65.0.0/26').routes.length, 1, 'the other block stays');
});

t.test('BGP passwords: a missing secret keeps the peer out; SIGHUP reload reads it; it is never logged', async (t) => {
  const dir = tmp();
  const res = join(dir, 'resources.yaml');
  writeFileSync(res, [
    'kind: Node\nmetadata: { name: solo }\nspec: { bgp: { ipv4Address: 127.0.0.1/8 } }',
    'kind: BGPPeer\nmetadata: { name: tor }\nspec: { peerIP: 127.0.0.9, asNumber: 65001, password: { secretKeyRef: { name: tor-secret, key: password } } }',
  ].map((d) => `---\napiVersion: projectcalico.org/v3\n${d}\n`).join(''));
  const secrets = join(dir, 'secrets');
  const file = join(dir, 'skein.yaml');
  const port = 37000 + (process.pid % 2000);
  writeFileSync(file, `nodeName: solo\ndatastore: { type: file, path: ${res} }\nbgp: { listen: { address: 127.0.0.1, port: ${port} } }\nfib: { enabled: false }\ncontrol: { socket: ${join(dir, 'solo.sock')} }\nmetrics: { listen: "" }\nsecretsDir: ${secrets}\n`);
  const lines: string[] = [];
  const d = new Daemon(loadDaemonConfig(file, {}), { logSink: (l) => lines.push(l), env: {} });
  t.teardown(() => d.stop());
  await d.start();
  await until(() => lines.some((l) => l.includes('BGP password unavailable')), 'the missing secret is reported', 10_000, 50);
  t.same(d.peers(), [], 'no session without its key');
  mkdirSync(join(secrets, 'tor-secret'), { recursive: true });
  writeFileSync(join(secrets, 'tor-secret', 'password'), 'hunter2-md5\n');
  await d.reload();
  await until(() => d.peers().length === 1, 'the peer is configured once its secret can be read', 10_000, 50);
  t.equal(d.peers()[0]?.address, '127.0.0.9');
  t.equal(d.peers()[0]?.asn, 65001);
  t.equal(d.peers()[0]?.type, 'global');
  t.notOk(lines.some((l) => l.includes('hunter2')), 'the password never appears in the log');
});

// ---------------------------------------------------------------------------------------------------------------
// Calico's route-reflector topology (its docs: mesh off, one BGPPeer that makes every node peer with the nodes
// labelled route-reflector, and a routeReflectorClusterID on those), three daemons in this process. A client's
// block reaches the other client only if the reflector reflects it (RFC 4456 §6): plain iBGP never passes an
// iBGP-learned route on. The reflected path carries ORIGINATOR_ID and the cluster ID in CLUSTER_LIST (§7).

function rrClusterYaml(port: number): string {
  const docs = [
    `kind: BGPConfiguration\nmetadata: { name: default }\nspec: { asNumber: 64512, listenPort: ${port}, bindMode: NodeIP, nodeToNodeMeshEnabled: false }`,
    'kind: BGPPeer\nmetadata: { name: peer-with-route-reflectors }\nspec: { nodeSelector: all(), peerSelector: route-reflector == \'true\' }',
    'kind: IPPool\nmetadata: { name: pods }\nspec: { cidr: 10.65.0.0/16, blockSize: 26 }',
    'kind: Node\nmetadata: { name: rr-1, labels: { route-reflector: "true" } }\nspec: { bgp: { ipv4Address: 127.0.0.1/8, routeReflectorClusterID: 224.0.0.1 } }',
    'kind: Node\nmetadata: { name: client-2 }\nspec: { bgp: { ipv4Address: 127.0.0.2/8 } }',
    'kind: Node\nmetadata: { name: client-3 }\nspec: { bgp: { ipv4Address: 127.0.0.3/8 } }',
    'kind: BlockAffinity\nmetadata: { name: client-2-10-65-0-64-26 }\nspec: { node: client-2, cidr: 10.65.0.64/26, state: confirmed, deleted: "false" }',
    'kind: BlockAffinity\nmetadata: { name: client-3-10-65-0-128-26 }\nspec: { node: client-3, cidr: 10.65.0.128/26, state: confirmed, deleted: "false" }',
  ];
  return docs.map((d) => `---\napiVersion: projectcalico.org/v3\n${d}\n`).join('');
}

t.test('route reflector topology: a route reflector node reflects one client\'s block to the other', async (t) => {
  const dir = tmp();
  mkdirSync(join(dir, 'run'));
  const port = 33000 + (process.pid % 2000);
  const res = join(dir, 'resources.yaml');
  writeFileSync(res, rrClusterYaml(port));
  const names = ['rr-1', 'client-2', 'client-3'];
  const daemons: Daemon[] = [];
  t.teardown(async () => {
    for (const d of daemons) await d.stop('test over');
  });
  for (const name of names) {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, [
      `nodeName: ${name}`,
      `datastore: { type: file, path: ${res}, debounce: 20ms }`,
      'fib: { enabled: false }',
      `control: { socket: ${join(dir, 'run', `${name}.sock`)} }`,
      'metrics: { listen: "" }',
      '',
    ].join('\n'));
    const d = new Daemon(loadDaemonConfig(file, {}), { logSink: () => {}, env: {} });
    daemons.push(d);
    await d.start();
  }
  const [rr, c2, c3] = daemons as [Daemon, Daemon, Daemon];
  // start() returns before the datastore's first snapshot is applied: wait for the peers to exist (under load the
  // snapshot of the file datastore can come later than the next daemon's start).
  for (const d of daemons) await until(() => d.peers().length > 0, `${d.cfg.nodeName}: peers configured`, 10_000, 50);
  t.same(rr.peers().map((p) => p.address).sort(), ['127.0.0.2', '127.0.0.3'], 'the reflector peers with both clients');
  t.same(c2.peers().map((p) => p.address), ['127.0.0.1'], 'a client peers with the reflector only (mesh off)');
  t.equal(c2.peers()[0]?.type, 'route reflector', 'the client shows its peer as a route reflector');
  for (const d of daemons) {
    await until(() => d.peers().length > 0 && d.peers().every((p) => p.state === 'Established'), `${d.cfg.nodeName}: sessions Established`, 20_000, 50);
  }
  await until(() => c3.routesJson('10.65.0.64/26').routes[0]?.best !== undefined, 'client-3 learns client-2\'s block through the reflector', 10_000, 50);
  const best = c3.routesJson('10.65.0.64/26').routes[0]!.best!;
  t.equal(best.from, '127.0.0.1', 'learned from the reflector');
  t.same(best.nextHops, ['127.0.0.2'], 'next hop unchanged by reflection: traffic goes straight to client-2');
  await until(() => c2.routesJson('10.65.0.128/26').routes[0]?.best !== undefined, 'and the other way round', 10_000, 50);
  t.same(c2.routesJson('10.65.0.128/26').routes[0]!.best!.nextHops, ['127.0.0.3']);
  t.ok(rr.routesJson('10.65.0.64/26').routes[0]?.best, 'the reflector has the route itself');
  // The reflector prepends its cluster ID: what client-3 holds has CLUSTER_LIST [224.0.0.1] and client-2 as originator.
  const view = c3.speaker?.rib.route(parsePrefixText('10.65.0.64/26'));
  t.same(view?.best.attrs.attrs.clusterList, [0xe0000001], 'CLUSTER_LIST carries the reflector\'s cluster ID');
  t.equal(view?.best.attrs.attrs.originatorId, 0x7f000002, 'ORIGINATOR_ID is client-2');
});
