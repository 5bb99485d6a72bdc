// Originations (announcements, blackholes, device routes) and the incremental
// NodeController. Expectations follow Calico's export rules
// (projectcalico/calico confd/etc/calico/confd/templates: bird_aggr.cfg.template
// for blocks and blackholes, bird_ipam.cfg.template calico_export_to_bgp_peers for
// pools and disableBGPExport, bird.cfg.template apply_communities for
// prefixAdvertisements) and the deviations documented in src/controller/originate.ts.
import t from 'tap';
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { validateResource, type ChangeEvent, type Model, type Resource } from '../../config/index.js';
import {
  NodeController, applyDiff, deriveOriginations, deriveState, diffStates, isEmptyDiff, type ControllerDiff,
} from '../../src/controller/index.js';
import { loadModel as load, resourceYaml as y } from '../helpers/model.js';


/** One validated resource from a plain object (as a datastore would hand it over). */
function res(kind: string, name: string, spec: object, meta: object = {}): Resource {
  const v = validateResource({ apiVersion: 'projectcalico.org/v3', kind, metadata: { name, ...meta }, spec });
  if (v.resource === undefined) throw new Error(`${kind}/${name}: ${JSON.stringify(v.checker.problems)}`);
  return v.resource;
}


const wep = (node: string, pod: string, ifname: string, nets: string[], ns = 'default'): string =>
  y('WorkloadEndpoint', `${node}-k8s-${pod}-eth0`, `{ orchestrator: k8s, node: ${node}, pod: ${pod}, endpoint: eth0, interfaceName: ${ifname}, ipNetworks: [${nets.map((n) => `"${n}"`).join(', ')}] }`, `, namespace: ${ns}`);
const aff = (node: string, cidr: string, state: string, deleted = 'false'): string =>
  y('BlockAffinity', `${node}-${cidr.replace(/[./:]/g, '-')}`, `{ node: ${node}, cidr: "${cidr}", state: ${state}, deleted: "${deleted}" }`);

const CLUSTER = y('BGPConfiguration', 'default', `{
    serviceClusterIPs: [{ cidr: 10.96.0.0/12 }],
    serviceExternalIPs: [{ cidr: 198.51.100.0/24 }, { cidr: 198.51.100.77/32 }],
    serviceLoadBalancerIPs: [{ cidr: 203.0.113.0/24 }],
    communities: [{ name: pods, value: "65000:100" }],
    prefixAdvertisements: [
      { cidr: 10.65.0.0/16, communities: [pods, "65000:1:2"] },
      { cidr: 10.65.1.0/26, communities: ["65000:200"] },
      { cidr: "fd00:65::/48", communities: ["65000:600"] } ] }`)
  + y('IPPool', 'pods-v4', '{ cidr: 10.65.0.0/16, blockSize: 26 }')
  + y('IPPool', 'singles', '{ cidr: 10.66.0.0/16, blockSize: 32 }')
  + y('IPPool', 'vms', '{ cidr: 10.70.0.0/16 }')
  + y('IPPool', 'private', '{ cidr: 10.80.0.0/16, disableBGPExport: true }')
  + y('IPPool', 'old', '{ cidr: 10.90.0.0/16, disabled: true }')
  + y('IPPool', 'pods-v6', '{ cidr: "fd00:65::/48", blockSize: 122 }')
  + y('Node', 'n1', '{ bgp: { ipv4Address: 10.0.0.1/24, ipv6Address: "fd00::1/64" } }')
  + y('Node', 'n2', '{ bgp: { ipv4Address: 10.0.0.2/24 } }')
  + aff('n1', '10.65.1.0/26', 'confirmed')
  + aff('n1', '10.65.2.0/26', 'pending')
  + aff('n1', '10.65.3.0/26', 'pendingDeletion')
  + aff('n1', '10.65.4.0/26', 'confirmed', 'true')
  + aff('n1', 'fd00:65::/122', 'confirmed')
  + aff('n1', '10.80.1.0/26', 'confirmed')
  + aff('n1', '10.90.1.0/26', 'confirmed')
  + aff('n1', '10.66.0.7/32', 'confirmed')
  + aff('n2', '10.65.9.0/26', 'confirmed')
  + wep('n1', 'web', 'cali1', ['10.65.1.5/32', 'fd00:65::5/128'])
  + wep('n1', 'borrow', 'cali2', ['10.65.9.7/32'])
  + wep('n1', 'pend', 'cali3', ['10.65.2.9/32'])
  + wep('n1', 'six', 'cali4', ['fd00:65::1:9/128'])
  + wep('n1', 'outside', 'cali5', ['192.168.50.5/32'])
  + wep('n1', 'hidden', 'cali6', ['10.80.2.3/32'])
  + wep('n2', 'other', 'cali7', ['10.65.9.8/32'])
  // An OpenStack VM: Neutron assigned the address, no Calico IPAM block exists.
  + y('WorkloadEndpoint', 'n1-openstack-vm1-port1', '{ orchestrator: openstack, node: n1, workload: vm1, endpoint: port1, interfaceName: tapport1, ipNetworks: [10.70.3.9/32] }', ', namespace: openstack');

t.test('originations: blocks, borrowed addresses, OpenStack VMs, pools, services, communities', (t) => {
  const o = deriveOriginations(load(CLUSTER), 'n1');
  t.same(o.announce.map((a) => [a.prefix, a.kind]), [
    ['10.65.1.0/26', 'block'], // confirmed: the aggregate (calico_aggr), its /32 10.65.1.5 hidden beneath it
    ['10.65.2.9/32', 'borrowed'], // pending block: not ours yet, its workload goes out alone
    ['10.65.3.0/26', 'block'], // pendingDeletion: still ours until IPAM deletes it (confd keeps it)
    ['10.65.9.7/32', 'borrowed'], // inside n2's block
    ['10.66.0.7/32', 'block'], // a /32 block is still announced
    ['10.70.3.9/32', 'borrowed'], // OpenStack VM, no IPAM at all
    ['10.90.1.0/26', 'block'], // a disabled pool still exports (the template ignores `disabled`)
    ['10.96.0.0/12', 'service'],
    ['198.51.100.0/24', 'service'], // the /32 external IP is per-service: left out
    ['203.0.113.0/24', 'service'],
    ['fd00:65::/122', 'block'],
    ['fd00:65::1:9/128', 'borrowed'],
  ], 'no 10.80/16 (disableBGPExport), no 192.168.50.5 (outside every pool), no pending or deleted blocks, nothing of n2');
  const by = Object.fromEntries(o.announce.map((a) => [a.prefix, a]));
  // apply_communities: every prefixAdvertisement whose cidr contains the route adds its communities.
  t.same([by['10.65.1.0/26']?.communities, by['10.65.1.0/26']?.largeCommunities], [[[65000, 100], [65000, 200]], [[65000, 1, 2]]]);
  t.same([by['10.65.9.7/32']?.communities, by['10.65.9.7/32']?.largeCommunities], [[[65000, 100]], [[65000, 1, 2]]]);
  t.same(by['fd00:65::1:9/128']?.communities, [[65000, 600]]);
  t.same([by['10.96.0.0/12']?.communities, by['10.70.3.9/32']?.communities], [[], []]);
  t.same(by['10.70.3.9/32']?.sources, ['WorkloadEndpoint/openstack/n1-openstack-vm1-port1']);
  t.same(by['10.65.1.0/26']?.sources, ['BlockAffinity/n1/10.65.1.0/26']);
  t.same(by['198.51.100.0/24']?.sources, ['BGPConfiguration/default serviceExternalIPs']);
  // bird_aggr: a blackhole per block, but none for a /32 block; the export-disabled block is still blackholed.
  t.same(o.blackholes.map((b) => b.prefix), ['10.65.1.0/26', '10.65.3.0/26', '10.80.1.0/26', '10.90.1.0/26', 'fd00:65::/122']);
  t.same(o.deviceRoutes.map((d) => [d.prefix, d.interface, d.workload]), [
    ['10.65.1.5/32', 'cali1', 'default/n1-k8s-web-eth0'],
    ['10.65.2.9/32', 'cali3', 'default/n1-k8s-pend-eth0'],
    ['10.65.9.7/32', 'cali2', 'default/n1-k8s-borrow-eth0'],
    ['10.70.3.9/32', 'tapport1', 'openstack/n1-openstack-vm1-port1'],
    ['10.80.2.3/32', 'cali6', 'default/n1-k8s-hidden-eth0'],
    ['192.168.50.5/32', 'cali5', 'default/n1-k8s-outside-eth0'],
    ['fd00:65::5/128', 'cali1', 'default/n1-k8s-web-eth0'],
    ['fd00:65::1:9/128', 'cali4', 'default/n1-k8s-six-eth0'],
  ], 'every local workload address gets a link-scope route, exported or not');
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- asserted at run time: the type alone proves nothing
  t.ok(o.deviceRoutes.every((d) => d.scope === 'link' && d.family === (d.prefix.includes(':') ? 6 : 4)));
  t.same(deriveOriginations(load(CLUSTER), 'n2').announce.map((a) => a.prefix),
    ['10.65.9.0/26', '10.96.0.0/12', '198.51.100.0/24', '203.0.113.0/24'], 'n2: its block (with its /32 beneath) and the service ranges');
  t.end();
});

t.test('originations: per-node prefixAdvertisements, LB aggregation off, no configuration at all', (t) => {
  const m = load(CLUSTER.replace('serviceLoadBalancerIPs:', 'serviceLoadBalancerAggregation: Disabled, serviceLoadBalancerIPs:')
    + y('BGPConfiguration', 'node.n1', '{ prefixAdvertisements: [{ cidr: 10.0.0.0/8, communities: ["65000:999"] }] }'));
  const by = Object.fromEntries(deriveOriginations(m, 'n1').announce.map((a) => [a.prefix, a]));
  t.notOk('203.0.113.0/24' in by, 'aggregation Disabled: only per-service LB routes, which need Kubernetes');
  t.same([by['10.65.1.0/26']?.communities, by['10.65.1.0/26']?.largeCommunities], [[[65000, 999]], []], 'the node\'s IPv4 list replaces the global one');
  t.same(by['10.96.0.0/12']?.communities, [[65000, 999]]);
  // confd writes the node's IPv4 and IPv6 keys together, so the node list replaces the global one for both families.
  t.same(by['fd00:65::/122']?.communities, [], 'no IPv6 entries on the node: no IPv6 communities (the global list is replaced)');
  const bare = load(y('Node', 'n1', '{ bgp: { ipv4Address: 10.0.0.1/24 } }') + wep('n1', 'web', 'cali1', ['10.65.1.5/32']));
  const o = deriveOriginations(bare, 'n1');
  t.same([o.announce, o.blackholes, o.deviceRoutes.map((d) => d.prefix)], [[], [], ['10.65.1.5/32']], 'no pools: nothing announced, the device route stays');
  // bird6_aggr.cfg.template skips the blackhole for a /128 block as bird_aggr does for /32; blocks outside pools are still blackholed.
  const six = deriveOriginations(load(y('Node', 'n1', '{ bgp: { ipv6Address: "fd00::1/64" } }') + aff('n1', 'fd00:7::5/128', 'confirmed') + aff('n1', 'fd00:7::/122', 'confirmed')), 'n1');
  t.same([six.blackholes.map((b) => b.prefix), six.announce], [['fd00:7::/122'], []]);
  t.end();
});

const MESH = y('BGPConfiguration', 'default', '{ asNumber: 64512 }')
  + y('IPPool', 'pods', '{ cidr: 10.65.0.0/16 }')
  + y('Node', 'n1', '{ bgp: { ipv4Address: 10.0.0.1/24 } }')
  + y('Node', 'n2', '{ bgp: { ipv4Address: 10.0.0.2/24 } }')
  + y('Node', 'n3', '{ bgp: { ipv4Address: 10.0.0.3/24 } }')
  + y('BGPPeer', 'tor-a', '{ peerIP: 192.0.2.1, asNumber: 65001, password: { secretKeyRef: { name: tor, key: a } } }')
  + y('BGPPeer', 'tor-b', '{ peerIP: 192.0.2.2, asNumber: 65001, password: { secretKeyRef: { name: tor, key: b } } }')
  + aff('n1', '10.65.1.0/26', 'confirmed')
  + aff('n1', '10.65.7.0/26', 'confirmed')
  + wep('n1', 'web', 'cali1', ['10.65.1.5/32']);

const counts = (d: ControllerDiff): Record<string, number[]> => Object.fromEntries(
  (['peers', 'announce', 'blackholes', 'deviceRoutes'] as const).map((k) => [k, [d[k].added.length, d[k].changed.length, d[k].removed.length]]));

t.test('NodeController: minimal diffs', (t) => {
  const m = load(MESH);
  const c = new NodeController('n1');
  const first = c.update(m);
  t.same(counts(first), { peers: [4, 0, 0], announce: [2, 0, 0], blackholes: [2, 0, 0], deviceRoutes: [1, 0, 0] }, 'from nothing: everything added');
  t.ok(isEmptyDiff(c.update(m)), 'the same model again: nothing');

  // A new node: one mesh peer added, nothing else touched.
  const m1 = m.clone();
  m1.set(res('Node', 'n4', { bgp: { ipv4Address: '10.0.0.4/24' } }));
  const d1 = c.update(m1);
  t.same(counts(d1), { peers: [1, 0, 0], announce: [0, 0, 0], blackholes: [0, 0, 0], deviceRoutes: [0, 0, 0] });
  t.same(d1.peers.added.map((p) => [p.address, p.type, p.passive]), [['10.0.0.4', 'node-to-node mesh', true]]);

  // One BGPPeer's password: that peer changes, in that field only.
  const ev = m1.set(res('BGPPeer', 'tor-b', { peerIP: '192.0.2.2', asNumber: 65001, password: { secretKeyRef: { name: 'tor', key: 'b2' } } })) as ChangeEvent;
  const d2 = c.applyChanges([ev]);
  t.same(counts(d2), { peers: [0, 1, 0], announce: [0, 0, 0], blackholes: [0, 0, 0], deviceRoutes: [0, 0, 0] });
  t.same([d2.peers.changed[0]?.key, d2.peers.changed[0]?.fields], ['192.0.2.2', ['password']]);

  // A new workload inside our block: one device route, no announcement (the block covers it).
  const d3 = c.applyChanges([m1.set(res('WorkloadEndpoint', 'n1-k8s-api-eth0', { orchestrator: 'k8s', node: 'n1', pod: 'api', endpoint: 'eth0', interfaceName: 'cali9', ipNetworks: ['10.65.1.9/32'] }, { namespace: 'default' })) as ChangeEvent]);
  t.same(counts(d3), { peers: [0, 0, 0], announce: [0, 0, 0], blackholes: [0, 0, 0], deviceRoutes: [1, 0, 0] });
  // A borrowed one: the device route and its /32.
  const d4 = c.applyChanges([m1.set(res('WorkloadEndpoint', 'n1-k8s-db-eth0', { orchestrator: 'k8s', node: 'n1', pod: 'db', endpoint: 'eth0', interfaceName: 'cali8', ipNetworks: ['10.65.200.3/32'] }, { namespace: 'default' })) as ChangeEvent]);
  t.same(counts(d4), { peers: [0, 0, 0], announce: [1, 0, 0], blackholes: [0, 0, 0], deviceRoutes: [1, 0, 0] });
  t.same(d4.announce.added.map((a) => [a.prefix, a.kind]), [['10.65.200.3/32', 'borrowed']]);
  // Another node's workload: not our business; no recomputation either.
  const d5 = c.applyChanges([m1.set(res('WorkloadEndpoint', 'n2-k8s-x-eth0', { orchestrator: 'k8s', node: 'n2', pod: 'x', endpoint: 'eth0', interfaceName: 'cali7', ipNetworks: ['10.65.50.3/32'] }, { namespace: 'default' })) as ChangeEvent]);
  t.ok(isEmptyDiff(d5));

  // Deleting an (empty) affinity withdraws its aggregate and its blackhole.
  const d6 = c.applyChanges([m1.delete('BlockAffinity', 'n1/10.65.7.0/26') as ChangeEvent]);
  t.same(counts(d6), { peers: [0, 0, 0], announce: [0, 0, 1], blackholes: [0, 0, 1], deviceRoutes: [0, 0, 0] });
  t.same([d6.announce.removed[0]?.prefix, d6.blackholes.removed[0]?.prefix], ['10.65.7.0/26', '10.65.7.0/26']);
  // Deleting the affinity under a workload: aggregate and blackhole go, the workload's /32 appears.
  const d7 = c.applyChanges([m1.delete('BlockAffinity', 'n1/10.65.1.0/26') as ChangeEvent]);
  t.same(d7.announce.removed.map((a) => a.prefix), ['10.65.1.0/26']);
  t.same(d7.announce.added.map((a) => a.prefix), ['10.65.1.5/32', '10.65.1.9/32']);
  t.same(counts(d7).deviceRoutes, [0, 0, 0]);

  // Mesh off: the three mesh peers go, the ToR sessions stay untouched.
  const d8 = c.applyChanges([m1.set(res('BGPConfiguration', 'default', { asNumber: 64512, nodeToNodeMeshEnabled: false })) as ChangeEvent]);
  t.same([d8.peers.removed.map((p) => p.address), d8.peers.changed.length, d8.peers.added.length], [['10.0.0.2', '10.0.0.3', '10.0.0.4'], 0, 0]);
  t.same(c.state, deriveState(m1, 'n1'), 'the held state is what a fresh derivation gives');
  t.end();
});

t.test('NodeController: readiness gate flips are reported', (t) => {
  const m = load(MESH + y('ClusterInformation', 'default', '{ datastoreReady: false }'));
  const c = new NodeController('n1');
  t.equal(c.update(m).ready, false);
  t.equal(c.state.ready, false);
  const d = c.applyChanges([m.set(res('ClusterInformation', 'default', { datastoreReady: true })) as ChangeEvent]);
  t.same([d.ready, isEmptyDiff(d)], [true, false]);
  t.end();
});

// Random edits through the controller give the state a fresh derivation gives,
// and each diff, applied to the previous state, gives the next one.
t.test('NodeController: random change sequences (fast-check)', (t) => {
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  const ip = fc.integer({ min: 1, max: 6 });
  const op = fc.oneof(
    fc.record({ t: fc.constant('node'), n: fc.constantFrom(...nodes), a: ip, v6: fc.boolean(), rr: fc.boolean(), as: fc.constantFrom(undefined, 64512, 65000) }),
    fc.record({ t: fc.constant('delnode'), n: fc.constantFrom('n2', 'n3', 'n4') }),
    fc.record({ t: fc.constant('mesh'), on: fc.boolean(), pw: fc.boolean() }),
    fc.record({ t: fc.constant('peer'), name: fc.constantFrom('p1', 'p2', 'p3'), a: ip, node: fc.constantFrom(undefined, 'n1', 'n2'), key: fc.constantFrom('a', 'b') }),
    fc.record({ t: fc.constant('rrpeer'), name: fc.constantFrom('p1', 'p2', 'p3') }),
    fc.record({ t: fc.constant('delpeer'), name: fc.constantFrom('p1', 'p2', 'p3') }),
    fc.record({ t: fc.constant('wep'), w: fc.constantFrom('w1', 'w2', 'w3'), node: fc.constantFrom('n1', 'n2'), a: fc.integer({ min: 0, max: 3 }), b: fc.integer({ min: 1, max: 9 }) }),
    fc.record({ t: fc.constant('delwep'), w: fc.constantFrom('w1', 'w2', 'w3'), node: fc.constantFrom('n1', 'n2') }),
    fc.record({ t: fc.constant('aff'), node: fc.constantFrom('n1', 'n2'), a: fc.integer({ min: 0, max: 3 }), state: fc.constantFrom('confirmed', 'pending') }),
    fc.record({ t: fc.constant('delaff'), node: fc.constantFrom('n1', 'n2'), a: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ t: fc.constant('pool'), export: fc.boolean() }),
  );
  const step = (m: Model, o: Record<string, unknown>): ChangeEvent | undefined => {
    switch (o.t) {
      case 'node': {
        const bgp: Record<string, unknown> = { ipv4Address: `10.0.0.${o.a as number}/24` };
        if (o.v6 === true) bgp.ipv6Address = `fd00::${o.a as number}/64`;
        if (o.rr === true) bgp.routeReflectorClusterID = '1.1.1.1';
        if (o.as !== undefined) bgp.asNumber = o.as;
        return m.set(res('Node', o.n as string, { bgp }, { labels: o.rr === true ? { rr: 'true' } : {} }));
      }
      case 'delnode': return m.delete('Node', o.n as string);
      case 'mesh': return m.set(res('BGPConfiguration', 'default', { nodeToNodeMeshEnabled: o.on, ...(o.pw === true ? { nodeMeshPassword: { secretKeyRef: { name: 'm', key: 'k' } } } : {}) }));
      case 'peer': return m.set(res('BGPPeer', o.name as string, { peerIP: `10.0.0.${o.a as number}`, asNumber: 64512, ...(o.node === undefined ? {} : { node: o.node }), password: { secretKeyRef: { name: 's', key: o.key } } }));
      case 'rrpeer': return m.set(res('BGPPeer', o.name as string, { nodeSelector: 'all()', peerSelector: "rr == 'true'" }));
      case 'delpeer': return m.delete('BGPPeer', o.name as string);
      case 'wep': return m.set(res('WorkloadEndpoint', `${o.node as string}-k8s-${o.w as string}-eth0`, { orchestrator: 'k8s', node: o.node, pod: o.w, endpoint: 'eth0', interfaceName: `cali${o.w as string}`, ipNetworks: [`10.65.${o.a as number}.${o.b as number}/32`] }, { namespace: 'default' }));
      case 'delwep': return m.delete('WorkloadEndpoint', `default/${o.node as string}-k8s-${o.w as string}-eth0`);
      case 'aff': return m.set(res('BlockAffinity', 'x', { node: o.node, cidr: `10.65.${o.a as number}.0/26`, state: o.state }));
      case 'delaff': return m.delete('BlockAffinity', `${o.node as string}/10.65.${o.a as number}.0/26`);
      case 'pool': return m.set(res('IPPool', 'pods', { cidr: '10.65.0.0/16', disableBGPExport: !(o.export as boolean) }));
      default: return undefined;
    }
  };
  fc.assert(fc.property(fc.array(fc.array(op, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 25 }), (batches) => {
    const m = load(MESH);
    const c = new NodeController('n1');
    c.update(m);
    for (const batch of batches) {
      const before = c.state;
      const events = batch.map((o) => step(m, o)).filter((e): e is ChangeEvent => e !== undefined);
      const d = c.applyChanges(events);
      const fresh = deriveState(m, 'n1');
      if (!isDeepStrictEqual(c.state, fresh)) return false;
      if (!isDeepStrictEqual(applyDiff(before, d), fresh)) return false;
      if (!isDeepStrictEqual(d, diffStates(before, fresh))) return false;
      // Minimal: nothing reported as changed is actually equal.
      for (const ch of [...d.peers.changed, ...d.announce.changed]) if (ch.fields.length === 0) return false;
    }
    return true;
  }), { numRuns: 150 });
  t.end();
});

t.test('NodeController: this node\'s workloads one prefix at a time give the whole derivation (fast-check)', (t) => {
  // Workloads that move between nodes, share addresses (the first by id keeps the device route), have two addresses,
  // floating IPs (OpenStack ipNATs), addresses under this node's block and borrowed ones; with
  // kernel-learned routes for some of the same prefixes, and now and then a change that is not a workload's.
  const names = ['w1', 'w2', 'w3', 'w4'];
  const addr = fc.constantFrom('10.65.1.5', '10.65.1.6', '10.65.3.7', '10.65.3.8', '10.70.3.9');
  const op = fc.oneof(
    fc.record({ t: fc.constant('wep' as const), w: fc.constantFrom(...names), node: fc.constantFrom('n1', 'n1', 'n2'), a: addr, b: fc.option(addr, { nil: undefined }),
      fip: fc.option(addr, { nil: undefined }), ifname: fc.constantFrom('caliA', 'caliB') }),
    fc.record({ t: fc.constant('delwep' as const), w: fc.constantFrom(...names) }),
    fc.record({ t: fc.constant('aff' as const), a: fc.constantFrom(1, 3) }),
    fc.record({ t: fc.constant('learn' as const), a: addr, metric: fc.constantFrom(0, 512, 1024), gone: fc.boolean() }),
  );
  fc.assert(fc.property(fc.array(fc.array(op, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 20 }), (batches) => {
    const m = load(MESH);
    const c = new NodeController('n1');
    c.update(m);
    const learned = new Map<string, { prefix: string; metric: number; protocol: number; ifname: string }>();
    for (const batch of batches) {
      const before = c.state;
      const events: ChangeEvent[] = [];
      const learnedChanges = new Map<string, { prefix: string; metric: number; protocol: number; ifname: string } | undefined>();
      for (const o of batch) {
        if (o.t === 'wep') {
          const nets = [`${o.a}/32`, ...(o.b !== undefined ? [`${o.b}/32`] : [])];
          const spec = { orchestrator: 'openstack', node: o.node, workload: o.w, endpoint: 'port', interfaceName: o.ifname, ipNetworks: nets,
            ...(o.fip !== undefined ? { ipNATs: [{ internalIP: o.a, externalIP: o.fip }] } : {}) };
          const ev = m.set(res('WorkloadEndpoint', o.w, spec, { namespace: 'openstack' }));
          if (ev !== undefined) events.push(ev as ChangeEvent);
        } else if (o.t === 'delwep') {
          const ev = m.delete('WorkloadEndpoint', `openstack/${o.w}`);
          if (ev !== undefined) events.push(ev as ChangeEvent);
        } else if (o.t === 'aff') {
          const ev = m.set(res('BlockAffinity', 'x', { node: 'n1', cidr: `10.65.${o.a}.0/26`, state: 'confirmed' }));
          if (ev !== undefined) events.push(ev as ChangeEvent);
        } else {
          const prefix = `${o.a}/32`;
          const r = o.gone ? undefined : { prefix, metric: o.metric, protocol: 80, ifname: 'caliK' };
          if (r === undefined) learned.delete(prefix);
          else learned.set(prefix, r);
          learnedChanges.set(prefix, r);
        }
      }
      const d = c.applyChanges(events);
      const dl = c.changeLearned(learnedChanges);
      const fresh = deriveState(m, 'n1', undefined, [...learned.values()]);
      if (!isDeepStrictEqual(c.state, fresh)) return false;
      // the two diffs, applied in turn, take the old state to the new one, and report nothing that did not change
      if (!isDeepStrictEqual(applyDiff(applyDiff(before, d), dl), fresh)) return false;
      for (const ch of [...d.announce.changed, ...d.deviceRoutes.changed, ...dl.announce.changed]) if (ch.fields.length === 0) return false;
    }
    return true;
  }), { numRuns: 300 });
  t.end();
});
