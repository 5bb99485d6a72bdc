// Node controller derivation on a big cluster: 5,000 nodes (IPv4 + IPv6, full
// mesh), 50,000 workloads (10 per node, one in ten borrowed), one confirmed
// block per node, two pools, service ranges and communities; and the same
// cluster as a route-reflector topology. Reference in the same run: Model.clone()
// of that model (a copy of the resource maps, no logic).
// Run: npm run build && node dist/bench/controller.js
import { Model, validateResource, type Resource } from '../config/index.js';
import { isDeepStrictEqual } from 'node:util';
import { NodeController, derivePeers, deriveOriginations, deriveState, diffStates } from '../src/controller/index.js';

const NODES = 5000;
const PER_NODE = 10;

function res(kind: string, name: string, spec: object, meta: object = {}): Resource {
  const v = validateResource({ apiVersion: 'projectcalico.org/v3', kind, metadata: { name, ...meta }, spec });
  if (v.resource === undefined) throw new Error(`${kind}/${name}: ${JSON.stringify(v.checker.problems)}`);
  return v.resource;
}

function build(rr: boolean): Model {
  const m = new Model();
  m.set(res('BGPConfiguration', 'default', {
    asNumber: 64512, nodeToNodeMeshEnabled: !rr, serviceClusterIPs: [{ cidr: '10.96.0.0/12' }],
    communities: [{ name: 'pods', value: '65000:100' }], prefixAdvertisements: [{ cidr: '10.64.0.0/10', communities: ['pods'] }],
  }));
  m.set(res('IPPool', 'pods-v4', { cidr: '10.64.0.0/10', blockSize: 26 }));
  m.set(res('IPPool', 'pods-v6', { cidr: 'fd00:65::/48', blockSize: 122 }));
  if (rr) m.set(res('BGPPeer', 'to-rrs', { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" }));
  for (let i = 0; i < NODES; i++) {
    const name = `node-${i}`;
    const hi = i >> 8;
    const lo = i & 255;
    const isRR = rr && i < 2;
    m.set(res('Node', name, {
      bgp: { ipv4Address: `172.16.${hi}.${lo}/16`, ipv6Address: `fd00:1::${i.toString(16)}/64`, ...(isRR ? { routeReflectorClusterID: '224.0.0.1' } : {}) },
    }, { labels: isRR ? { 'route-reflector': 'true' } : {} }));
    // Node i owns block 10.64+.../26 number i.
    const base = i * 64;
    const block = `10.${64 + (base >> 16)}.${(base >> 8) & 255}.${base & 255}/26`;
    m.set(res('BlockAffinity', 'x', { node: name, cidr: block, state: 'confirmed' }));
    for (let w = 0; w < PER_NODE; w++) {
      // Workload 0 of each node borrows an address from the next node's block.
      const b = w === 0 ? ((i + 1) % NODES) * 64 + 63 : base + w + 1;
      const addr = `10.${64 + (b >> 16)}.${(b >> 8) & 255}.${b & 255}/32`;
      m.set(res('WorkloadEndpoint', `${name.replace(/-/g, "--")}-k8s-p${w}-eth0`, {
        orchestrator: 'k8s', node: name, pod: `p${w}`, endpoint: 'eth0', interfaceName: `cali${i}x${w}`, ipNetworks: [addr],
      }, { namespace: 'default' }));
    }
  }
  return m;
}

function time(label: string, runs: number, f: () => unknown): number {
  f();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) f();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6 / runs;
  console.log(`${label.padEnd(64)} ${ms.toFixed(2).padStart(9)} ms`);
  return ms;
}

const t0 = Date.now();
const mesh = build(false);
console.log(`built ${mesh.size} resources (${NODES} nodes, ${NODES * PER_NODE} workloads) in ${Date.now() - t0} ms`);
time('reference: Model.clone() of the whole model', 5, () => mesh.clone());
const peers = derivePeers(mesh, 'node-42');
time(`derivePeers, full mesh (${peers.length} peers)`, 5, () => derivePeers(mesh, 'node-42'));
const o = deriveOriginations(mesh, 'node-42');
time(`deriveOriginations (${o.announce.length} announced, ${o.deviceRoutes.length} device routes)`, 5, () => deriveOriginations(mesh, 'node-42'));
time('deriveState (peers + originations)', 5, () => deriveState(mesh, 'node-42'));

// The diff compares every entry of the old state with the new one on each recompute: the controller's own equality
// (src/controller/equal.ts) against the generic deep one it replaced, on two equal derivations (5,000-node mesh).
const s1 = deriveState(mesh, 'node-42');
const s2 = deriveState(mesh, 'node-42');
const entries = s1.peers.length + s1.announce.length + s1.blackholes.length + s1.deviceRoutes.length;
time(`diffStates of two equal states (${entries} entries; the controller's equality)`, 20, () => diffStates(s1, s2));
time('reference: util.isDeepStrictEqual over the same entries', 20, () => {
  for (const k of ['peers', 'announce', 'blackholes', 'deviceRoutes'] as const) {
    const a = s1[k] as object[];
    const b = s2[k] as object[];
    for (let i = 0; i < a.length; i++) isDeepStrictEqual(a[i], b[i]);
  }
});

const c = new NodeController('node-42');
time('NodeController.update(model): clone + derive + diff (no change)', 3, () => c.update(mesh));
const other = mesh.set(res('WorkloadEndpoint', 'node--7-k8s-new-eth0', {
  orchestrator: 'k8s', node: 'node-7', pod: 'new', endpoint: 'eth0', interfaceName: 'calinew', ipNetworks: ['10.64.1.200/32'],
}, { namespace: 'default' }));
if (other === undefined) throw new Error('no event');
time('NodeController.applyChanges: another node\'s workload (skipped)', 20, () => c.applyChanges([other]));
const own = mesh.set(res('WorkloadEndpoint', 'node--42-k8s-new-eth0', {
  orchestrator: 'k8s', node: 'node-42', pod: 'new', endpoint: 'eth0', interfaceName: 'calinew', ipNetworks: ['10.64.10.190/32'],
}, { namespace: 'default' }));
if (own === undefined) throw new Error('no event');
time('NodeController.applyChanges: own workload (recompute + diff)', 5, () => c.applyChanges([own]));

const rr = build(true);
time(`derivePeers on a route reflector (${derivePeers(rr, 'node-0').length} clients)`, 5, () => derivePeers(rr, 'node-0'));
time(`derivePeers on a client (${derivePeers(rr, 'node-42').length} RRs)`, 5, () => derivePeers(rr, 'node-42'));
