// Peerings derived for a node, checked against what Calico's confd would
// render for the same resources. Expected values are written from Calico's
// rules (projectcalico/calico confd/pkg/backends/calico/client.go updatePeersV1,
// bgp_processor.go processMeshPeers/buildPeerFromData, templates/bird.cfg.template),
// not from this implementation's output.
import t from 'tap';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatIssue, loadResourcesText, type Model } from '../../config/index.js';
import { derivePeers, type DesiredPeer } from '../../src/controller/index.js';

function load(text: string, source = 'test.yaml'): Model {
  const r = loadResourcesText(text, source);
  const errors = r.issues.filter((i) => i.severity === 'error');
  if (errors.length > 0) throw new Error(errors.map(formatIssue).join('\n'));
  return r.model;
}

const doc = (kind: string, name: string, spec: string, labels = ''): string =>
  `apiVersion: projectcalico.org/v3\nkind: ${kind}\nmetadata: { name: ${name}${labels === '' ? '' : `, labels: { ${labels} }`} }\nspec: ${spec}\n---\n`;

/** address -> [dial|passive, peer AS, type] */
const brief = (peers: DesiredPeer[]): Record<string, [string, number, string]> =>
  Object.fromEntries(peers.map((p) => [p.address, [p.passive ? 'passive' : 'dial', p.peerAS, p.type]]));

// Four nodes: n3's 10.0.0.10 sorts *before* 10.0.0.2 and 10.0.0.9 as a string
// (Calico compares the texts), n4 has no IPv6 address, n2 has its own AS and a
// per-node listen port.
const MESH = doc('BGPConfiguration', 'default', `{ asNumber: 64512, nodeMeshMaxRestartTime: 90s, nodeMeshPassword: { secretKeyRef: { name: bgp, key: mesh } } }`)
  + doc('BGPConfiguration', 'node.n2', '{ listenPort: 1790 }')
  + doc('Node', 'n1', `{ bgp: { ipv4Address: 10.0.0.1/24, ipv6Address: "fd00::1/64" } }`)
  + doc('Node', 'n2', `{ bgp: { ipv4Address: 10.0.0.2/24, ipv6Address: "fd00::2/64", asNumber: 64600 } }`)
  + doc('Node', 'n3', `{ bgp: { ipv4Address: 10.0.0.10/24, ipv6Address: "fd00::a/64" } }`)
  + doc('Node', 'n4', `{ bgp: { ipv4Address: 10.0.0.9/24 } }`);

t.test('node-to-node mesh: peers, AS, one-directional dialling by string order', (t) => {
  const m = load(MESH);
  // bird.cfg.template: `{{if gt $onode_ip $node_ip}} passive on` — passive towards a peer whose address text is greater.
  t.same(brief(derivePeers(m, 'n1')), {
    '10.0.0.2': ['passive', 64600, 'node-to-node mesh'],
    '10.0.0.9': ['passive', 64512, 'node-to-node mesh'],
    '10.0.0.10': ['passive', 64512, 'node-to-node mesh'],
    'fd00::2': ['passive', 64600, 'node-to-node mesh'],
    'fd00::a': ['passive', 64512, 'node-to-node mesh'],
  });
  t.same(brief(derivePeers(m, 'n3')), {
    '10.0.0.1': ['dial', 64512, 'node-to-node mesh'],
    '10.0.0.2': ['passive', 64600, 'node-to-node mesh'],
    '10.0.0.9': ['passive', 64512, 'node-to-node mesh'],
    'fd00::1': ['dial', 64512, 'node-to-node mesh'],
    'fd00::2': ['dial', 64600, 'node-to-node mesh'],
  });
  // n4 has no IPv6 address: no IPv6 sessions at all; "10.0.0.9" > "10.0.0.10" so n4 dials n3.
  t.same(brief(derivePeers(m, 'n4')), {
    '10.0.0.1': ['dial', 64512, 'node-to-node mesh'],
    '10.0.0.2': ['dial', 64600, 'node-to-node mesh'],
    '10.0.0.10': ['dial', 64512, 'node-to-node mesh'],
  });
  const n2 = derivePeers(m, 'n2');
  t.same(n2.map((p) => p.address), ['10.0.0.1', '10.0.0.9', '10.0.0.10', 'fd00::1', 'fd00::a'], 'sorted: IPv4 numerically, then IPv6');
  t.ok(n2.every((p) => p.localAS === 64600), 'local AS is the node\'s own');
  const toN2 = derivePeers(m, 'n1').find((p) => p.address === '10.0.0.2') as DesiredPeer;
  t.same(toN2, {
    key: '10.0.0.2', address: '10.0.0.2', family: 4, port: 1790, name: 'Mesh_10_0_0_2', type: 'node-to-node mesh',
    peerNode: 'n2', peerAS: 64600, localAS: 64512, passive: true, sourceAddress: '10.0.0.1',
    password: { secretKeyRef: { name: 'bgp', key: 'mesh' } }, restartTimeMs: 90_000, nextHop: 'auto', filters: [],
    rrClient: false, reflection: 'none', sources: [{ kind: 'mesh' }],
  }, 'mesh peer: the other node\'s listen port, mesh password and restart time, source = our address');
  const v6 = derivePeers(m, 'n1').find((p) => p.address === 'fd00::a') as DesiredPeer;
  t.equal(v6.name, 'Mesh_fd00__a');
  t.equal(v6.sourceAddress, 'fd00::1');
  // Exactly one side of every pair dials.
  const all = ['n1', 'n2', 'n3', 'n4'].map((n) => [n, derivePeers(m, n)] as const);
  for (const [a, pa] of all) {
    for (const p of pa) {
      const back = all.find(([n]) => n === p.peerNode)?.[1].find((q) => q.peerNode === a && q.family === p.family);
      t.ok(back !== undefined && back.passive !== p.passive, `${a} <-> ${p.peerNode} over IPv${p.family}: one dials, one listens`);
    }
  }
  t.end();
});

t.test('one-directional mesh holds for any addresses (fast-check)', (t) => {
  const octet = fc.integer({ min: 1, max: 254 });
  fc.assert(fc.property(fc.uniqueArray(fc.tuple(octet, octet), { minLength: 2, maxLength: 6, selector: ([a, b]) => `${a}.${b}` }), (addrs) => {
    const text = doc('BGPConfiguration', 'default', '{}') + addrs.map(([a, b], i) => doc('Node', `h${i}`, `{ bgp: { ipv4Address: 10.${a}.${b}.1/8 } }`)).join('');
    const m = load(text);
    const byNode = addrs.map((_, i) => derivePeers(m, `h${i}`));
    return byNode.every((peers, i) => peers.length === addrs.length - 1 && peers.every((p) => {
      const j = Number((p.peerNode as string).slice(1));
      const back = (byNode[j] as DesiredPeer[]).find((q) => q.peerNode === `h${i}`);
      return back !== undefined && back.passive !== p.passive;
    }));
  }), { numRuns: 50 });
  t.end();
});

t.test('mesh disabled, unknown node, node without addresses', (t) => {
  const m = load(MESH.replace('asNumber: 64512,', 'asNumber: 64512, nodeToNodeMeshEnabled: false,'));
  t.same(derivePeers(m, 'n1'), []);
  t.same(derivePeers(load(MESH), 'nope'), []);
  const m2 = load(MESH + doc('Node', 'bare', '{}'));
  t.same(derivePeers(m2, 'bare'), [], 'a node without a BGP address peers with nobody');
  t.notOk(derivePeers(m2, 'n1').some((p) => p.peerNode === 'bare'), 'and nobody meshes with it');
  t.end();
});

t.test('route reflectors (Calico RR docs topology, config/examples/route-reflectors)', (t) => {
  const m = load(readFileSync(join(`${import.meta.dirname}/..`, '..', 'config', 'examples', 'route-reflectors', 'resources.yaml'), 'utf8'));
  const pw = { secretKeyRef: { name: 'bgp-secrets', key: 'rr' } };
  // A client: nodeSelector all() selects it, peerSelector picks both RRs. Node_ peers always dial.
  const c1 = derivePeers(m, 'compute-1');
  t.same(c1.map((p) => [p.address, p.name, p.type, p.passive, p.rrClient, p.reflection]), [
    ['192.0.2.2', 'Node_192_0_2_2', 'node specific', false, false, 'reflector'],
    ['192.0.2.3', 'Node_192_0_2_3', 'node specific', false, false, 'reflector'],
  ]);
  t.ok(c1.every((p) => p.restartTimeMs === 120_000 && p.peerAS === 64512 && p.localAS === 64512), 'maxRestartTime 2m, iBGP');
  t.ok(c1.every((p) => JSON.stringify(p.password) === JSON.stringify(pw)), 'password ref from the BGPPeer');
  t.ok(c1.every((p) => p.sources[0]?.kind === 'BGPPeer' && p.sources[0].via === 'peerSelector'));
  // An RR: leaves the mesh; the other RR (same cluster ID) is a plain iBGP peer;
  // the clients come from Calico's automatic reverse peerings and are RR clients.
  const rr1 = derivePeers(m, 'rr-1');
  t.same(rr1.map((p) => [p.address, p.type, p.rrClient, p.rrClusterId ?? '-', p.sources[0]?.kind === 'BGPPeer' ? p.sources[0].via : 'mesh']), [
    ['192.0.2.3', 'node specific', false, '-', 'peerSelector'],
    ['192.0.2.21', 'node specific', true, '224.0.0.1', 'reverse'],
    ['192.0.2.22', 'node specific', true, '224.0.0.1', 'reverse'],
  ]);
  t.same(rr1.map((p) => p.reflection), ['none', 'client', 'client']);
  // Mesh switched back on: clients still do not mesh with RRs, RRs never mesh; clients mesh among themselves.
  const text = readFileSync(join(`${import.meta.dirname}/..`, '..', 'config', 'examples', 'route-reflectors', 'resources.yaml'), 'utf8')
    .replace('nodeToNodeMeshEnabled: false', 'nodeToNodeMeshEnabled: true');
  const m2 = load(text);
  t.same(brief(derivePeers(m2, 'compute-1')), {
    '192.0.2.2': ['dial', 64512, 'node specific'],
    '192.0.2.3': ['dial', 64512, 'node specific'],
    '192.0.2.22': ['passive', 64512, 'node-to-node mesh'],
  });
  t.same(derivePeers(m2, 'rr-2').map((p) => p.type), ['node specific', 'node specific', 'node specific']);
  t.end();
});

t.test('ToR per rack (config/examples/as-per-rack): node-specific peers by nodeSelector, AS per node', (t) => {
  const m = load(readFileSync(join(`${import.meta.dirname}/..`, '..', 'config', 'examples', 'as-per-rack', 'resources.yaml'), 'utf8'));
  t.same(derivePeers(m, 'r1-host-1'), [{
    key: '192.0.2.126', address: '192.0.2.126', family: 4, name: 'Node_192_0_2_126', type: 'node specific',
    peerAS: 65001, localAS: 65101, passive: false, sourceAddress: '192.0.2.65', ttlSecurity: 1, nextHop: 'auto',
    filters: ['no-default'], rrClient: false, reflection: 'none',
    sources: [{ kind: 'BGPPeer', name: 'tor-r1', via: 'peerIP' }],
  }]);
  t.same(brief(derivePeers(m, 'r2-host-1')), { '192.0.2.190': ['dial', 65002, 'node specific'] });
  t.end();
});

t.test('config/examples/k8s-openstack-mesh: full mesh over both families', (t) => {
  const m = load(readFileSync(join(`${import.meta.dirname}/..`, '..', 'config', 'examples', 'k8s-openstack-mesh', 'resources.yaml'), 'utf8'));
  t.same(brief(derivePeers(m, 'compute-2')), {
    '192.0.2.21': ['dial', 64512, 'node-to-node mesh'],
    '192.0.2.23': ['passive', 64512, 'node-to-node mesh'],
    'fd00:2::21': ['dial', 64512, 'node-to-node mesh'],
    'fd00:2::23': ['passive', 64512, 'node-to-node mesh'],
  });
  t.ok(derivePeers(m, 'compute-2').every((p) => p.restartTimeMs === 120_000 && p.password?.secretKeyRef.key === 'mesh'));
  t.end();
});

t.test('global peers, precedence between sources, own address, reverse peerings', (t) => {
  const base = doc('BGPConfiguration', 'default', '{ asNumber: 64512 }')
    + doc('Node', 'n1', `{ bgp: { ipv4Address: 10.0.0.1/24 } }`)
    + doc('Node', 'n2', `{ bgp: { ipv4Address: 10.0.0.2/24, asNumber: 64600 } }`)
    + doc('Node', 'n3', `{ bgp: { ipv4Address: 10.0.0.3/24 } }`, 'rack: r1');
  const m = load(base
    // two global peers to one address: Calico emits the first; we take the first by name
    + doc('BGPPeer', 'a-upstream', '{ peerIP: 192.0.2.200, asNumber: 65000, password: { secretKeyRef: { name: up, key: a } }, maxRestartTime: 30s, keepaliveTime: 20s }')
    + doc('BGPPeer', 'z-upstream', '{ peerIP: 192.0.2.200, asNumber: 65009 }')
    // a node-specific peering to the same address as a global one is dropped (client.go emit)
    + doc('BGPPeer', 'b-node', '{ node: n1, peerIP: 192.0.2.200, asNumber: 65001 }')
    // explicit peering to a mesh neighbour: the explicit one is kept (one session per address)
    + doc('BGPPeer', 'c-to-n2', '{ peerIP: 10.0.0.2, asNumber: 64600, keepOriginalNextHop: true, numAllowedLocalASNumbers: 2 }')
    // a global peering to a Calico node's address: skipped on that node itself
    + doc('BGPPeer', 'd-to-n1', '{ peerIP: "10.0.0.1:1790", asNumber: 65111, sourceAddress: None, nextHopMode: Self }')
    // node-specific, by selector, eBGP with a port
    + doc('BGPPeer', 'e-rack', `{ nodeSelector: "rack == 'r1'", peerIP: "[fd00::99]:1179", asNumber: 65099 }`));
  const n1 = derivePeers(m, 'n1');
  t.same(n1.map((p) => [p.address, p.type, p.peerAS]), [
    ['10.0.0.2', 'global', 64600],
    ['10.0.0.3', 'node-to-node mesh', 64512],
    ['192.0.2.200', 'global', 65000],
  ], 'own address (d-to-n1) skipped; node-specific b-node dropped for the global; mesh to n2 replaced by c-to-n2');
  const up = n1.find((p) => p.address === '192.0.2.200') as DesiredPeer;
  t.same(up.sources, [
    { kind: 'BGPPeer', name: 'a-upstream', via: 'peerIP' },
    { kind: 'BGPPeer', name: 'z-upstream', via: 'peerIP' },
    { kind: 'BGPPeer', name: 'b-node', via: 'peerIP' },
  ]);
  t.same([up.password, up.restartTimeMs, up.keepaliveTimeMs, up.passive, up.name], [{ secretKeyRef: { name: 'up', key: 'a' } }, 30_000, 20_000, false, 'Global_192_0_2_200']);
  const toN2 = n1.find((p) => p.address === '10.0.0.2') as DesiredPeer;
  // Global_ to a Calico node: passive when its address sorts higher (bgp_processor buildPeerFromData).
  t.same([toN2.passive, toN2.nextHop, toN2.numAllowedLocalASNumbers, toN2.peerNode], [true, 'keep', 2, 'n2'],
    'keepOriginalNextHop applies to eBGP (64512 vs 64600)');
  t.same(toN2.sources.map((s) => s.kind), ['BGPPeer', 'mesh']);
  // n2 sees d-to-n1 (a peering to n1's address on its listen port 1790 as written), no source address, next hop self.
  const n2 = derivePeers(m, 'n2');
  const toN1 = n2.find((p) => p.address === '10.0.0.1') as DesiredPeer;
  t.same([toN1.type, toN1.port, toN1.name, 'sourceAddress' in toN1, toN1.nextHop, toN1.passive], ['global', 1790, 'Global_10_0_0_1_port_1790', false, 'self', false]);
  // c-to-n2 is a peerIP peering to n2 with n2's AS: Calico mirrors it on n2 as node-specific peerings to every node (global => all()).
  t.same(n2.filter((p) => p.sources[0]?.kind === 'BGPPeer' && p.sources[0].via === 'reverse').map((p) => p.address), ['10.0.0.3'],
    'the reverse of c-to-n2 on n2: 10.0.0.1 already has the global d-to-n1, so only n3 remains');
  // e-rack only on n3, which has no IPv6 address: the IPv6 peering cannot run there.
  t.notOk(derivePeers(m, 'n3').some((p) => p.address === 'fd00::99'));
  const withV6 = load(base.replace('ipv4Address: 10.0.0.3/24', 'ipv4Address: 10.0.0.3/24, ipv6Address: "fd00::3/64"')
    + doc('BGPPeer', 'e-rack', `{ nodeSelector: "rack == 'r1'", peerIP: "[fd00::99]:1179", asNumber: 65099 }`));
  t.same(derivePeers(withV6, 'n3').filter((p) => p.family === 6).map((p) => [p.name, p.port, p.type, p.sourceAddress]), [
    ['Node_fd00__99_port_1179', 1179, 'node specific', 'fd00::3'],
  ]);
  t.notOk(derivePeers(withV6, 'n1').some((p) => p.address === 'fd00::99'), 'not selected on n1');
  t.end();
});

t.test('reverse peerings and reversePeering: Manual; RR with peerIP peers', (t) => {
  const base = doc('BGPConfiguration', 'default', '{ nodeToNodeMeshEnabled: false }')
    + doc('Node', 'a', `{ bgp: { ipv4Address: 10.0.0.1/24 } }`)
    + doc('Node', 'b', `{ bgp: { ipv4Address: 10.0.0.10/24, routeReflectorClusterID: 1.1.1.1 } }`);
  const m = load(base + doc('BGPPeer', 'a-to-b', '{ node: a, peerIP: 10.0.0.10, asNumber: 64512 }'));
  t.same(derivePeers(m, 'a').map((p) => [p.address, p.type, p.rrClient, p.reflection]), [['10.0.0.10', 'node specific', false, 'reflector']]);
  // b gets the mirror (a peerIP + AS matching b): a is iBGP without b's cluster ID -> RR client.
  t.same(derivePeers(m, 'b').map((p) => [p.address, p.type, p.rrClient, p.rrClusterId]), [['10.0.0.1', 'node specific', true, '1.1.1.1']]);
  const manual = load(base + doc('BGPPeer', 'a-to-b', '{ node: a, peerIP: 10.0.0.10, asNumber: 64512, reversePeering: Manual }'));
  t.same(derivePeers(manual, 'b'), [], 'no automatic mirror with reversePeering: Manual');
  // A different AS in the BGPPeer than b's: Calico's nodesWithIPPortAndAS does not match, no mirror.
  t.same(derivePeers(load(base + doc('BGPPeer', 'a-to-b', '{ node: a, peerIP: 10.0.0.10, asNumber: 65000 }')), 'b'), []);
  // localASNumber decides iBGP for the RR-client rule.
  const local = load(base + doc('BGPPeer', 'b-out', '{ node: b, peerIP: 192.0.2.9, asNumber: 65000, localASNumber: 65000 }'));
  t.same(derivePeers(local, 'b').map((p) => [p.localAS, p.rrClient]), [[65000, true]]);
  t.end();
});
