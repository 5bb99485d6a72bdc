// The kernel policy for learned routes (src/controller/kernel.ts), checked against the kernel export filter confd
// renders (confd/tests/compiled_templates/mesh/ipip-always, cluster_routes/ipip-only: `krt_tunnel="tunl0"` for
// IPIP pools when BIRD programs them, a reject for VXLAN pools and for pools Felix programs), and its effect on
// what the daemon's route table hands to the FIB.
import t from 'tap';
import { loadResourcesText } from '../../config/index.js';
import { kernelPolicy } from '../../src/controller/index.js';
import { RouteTable } from '../../src/daemon.js';

const v3 = 'projectcalico.org/v3';
function model(programClusterRoutes?: string, wireguard = false): ReturnType<typeof loadResourcesText>['model'] {
  const docs: unknown[] = [
    { apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, serviceClusterIPs: [{ cidr: '10.96.0.0/12' }], ...(programClusterRoutes ? { programClusterRoutes } : {}) } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'plain' }, spec: { cidr: '10.65.0.0/16', ipipMode: 'Never', vxlanMode: 'Never' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'ipip' }, spec: { cidr: '10.66.0.0/16', ipipMode: 'Always' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'cross' }, spec: { cidr: '10.67.0.0/16', ipipMode: 'CrossSubnet' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'vxlan' }, spec: { cidr: '10.68.0.0/16', vxlanMode: 'Always' } },
    { apiVersion: v3, kind: 'Node', metadata: { name: 'a' }, spec: { bgp: { ipv4Address: '10.0.0.1/24' }, ...(wireguard ? { wireguard: { interfaceIPv4Address: '10.65.9.1' } } : {}) } },
    { apiVersion: v3, kind: 'Node', metadata: { name: 'b' }, spec: { bgp: { ipv4Address: '10.0.0.2/24' }, ...(wireguard ? { wireguard: { interfaceIPv4Address: '10.65.9.2' } } : {}) } },
    { apiVersion: v3, kind: 'Node', metadata: { name: 'c' }, spec: { bgp: { ipv4Address: '10.1.0.3/24' } } },
  ];
  const r = loadResourcesText(docs.map((d) => `---\n${JSON.stringify(d)}\n`).join(''), 'r.yaml');
  if (r.issues.length > 0) throw new Error(JSON.stringify(r.issues));
  return r.model;
}

t.test('programClusterRoutes default (EnabledNoEncapOnly): IPIP and VXLAN left to Felix, plain pools programmed', (t) => {
  const p = kernelPolicy(model(), 'a');
  t.equal(p.decide('10.65.1.0/26', ['10.0.0.2']), 'accept', 'unencapsulated pool');
  t.equal(p.decide('10.66.1.0/26', ['10.0.0.2']), 'reject', 'IPIP Always: Felix programs it');
  t.equal(p.decide('10.67.1.0/26', ['10.1.0.3']), 'reject', 'IPIP CrossSubnet: Felix programs it');
  t.equal(p.decide('10.68.1.0/26', ['10.0.0.2']), 'reject', 'VXLAN: always Felix');
  t.equal(p.decide('10.96.0.0/12', ['10.0.0.2']), 'reject', 'a service range is never programmed');
  t.equal(p.decide('10.96.5.0/24', ['10.0.0.2']), 'reject', 'nor anything inside it');
  t.equal(p.decide('192.0.2.0/24', ['10.0.0.2']), 'accept', 'outside every pool');
  t.end();
});

t.test('programClusterRoutes Enabled: IPIP via tunl0 (CrossSubnet only off-subnet); Disabled: no cluster route at all', (t) => {
  const p = kernelPolicy(model('Enabled'), 'a');
  t.equal(p.decide('10.66.1.0/26', ['10.0.0.2']), 'tunnel', 'Always: tunl0 even on the same subnet');
  t.equal(p.decide('10.67.1.0/26', ['10.0.0.2']), 'accept', 'CrossSubnet, same subnet: direct');
  t.equal(p.decide('10.67.1.0/26', ['10.1.0.3']), 'tunnel', 'CrossSubnet, other subnet: tunl0');
  t.equal(p.decide('10.68.1.0/26', ['10.0.0.2']), 'reject', 'VXLAN stays Felix\'s');
  const off = kernelPolicy(model('Disabled'), 'a');
  t.equal(off.decide('10.65.1.0/26', ['10.0.0.2']), 'reject');
  t.equal(off.decide('10.66.1.0/26', ['10.0.0.2']), 'reject');
  t.equal(off.decide('192.0.2.0/24', ['10.0.0.2']), 'accept', 'outside the pools: still programmed');
  const ipipOnly = kernelPolicy(model('EnabledIPIPOnly'), 'a');
  t.equal(ipipOnly.decide('10.65.1.0/26', ['10.0.0.2']), 'reject');
  t.equal(ipipOnly.decide('10.66.1.0/26', ['10.0.0.2']), 'tunnel');
  t.equal(kernelPolicy(model('SomethingNew'), 'a').key, kernelPolicy(model(), 'a').key, 'an unknown value is the default');
  t.end();
});

t.test('WireGuard: routes via another WireGuard node are Felix\'s, only when this node runs WireGuard', (t) => {
  const p = kernelPolicy(model(undefined, true), 'a');
  t.equal(p.decide('10.65.1.0/26', ['10.0.0.2']), 'reject', 'b runs WireGuard');
  t.equal(p.decide('10.65.2.0/26', ['10.1.0.3']), 'accept', 'c does not');
  t.equal(kernelPolicy(model(undefined, false), 'a').decide('10.65.1.0/26', ['10.0.0.2']), 'accept');
  t.end();
});

t.test('RouteTable: tunnelled routes go via tunl0 onlink, rejected ones are kept out, a policy change re-decides', (t) => {
  const rt = new RouteTable(undefined);
  rt.setOpen(true);
  rt.setPolicy(kernelPolicy(model('Enabled'), 'a'));
  rt.setBgp('10.66.1.0/26', ['10.0.0.2']);
  rt.setBgp('10.68.1.0/26', ['10.0.0.2']);
  rt.setBgp('10.65.1.0/26', ['10.0.0.2']);
  const tun = rt.desired('10.66.1.0/26');
  t.same(tun?.target, { hops: [{ gateway: Uint8Array.of(10, 0, 0, 2), dev: 'tunl0', onlink: true }] }, 'IPIP: via 10.0.0.2 dev tunl0 onlink');
  t.equal(rt.desired('10.68.1.0/26'), undefined, 'VXLAN: nothing in the kernel');
  t.same(rt.desired('10.65.1.0/26')?.target, { hops: [{ gateway: Uint8Array.of(10, 0, 0, 2) }] }, 'plain: via the next hop');
  rt.setPolicy(kernelPolicy(model(), 'a'));
  t.equal(rt.desired('10.66.1.0/26'), undefined, 'programClusterRoutes back to the default: the IPIP route goes to Felix');
  rt.setPolicy(kernelPolicy(model('Enabled'), 'a'));
  t.equal(rt.desired('10.66.1.0/26')?.dev ?? rt.desired('10.66.1.0/26')?.kind, 'bgp', 'and comes back when it is Enabled again');
  rt.setBgp('10.66.1.0/26', null);
  t.equal(rt.desired('10.66.1.0/26'), undefined, 'withdrawn');
  t.end();
});

t.test('floating IPs (ipNATs of an OpenStack endpoint): routed to the VM and announced when inside a pool', async (t) => {
  const { deriveOriginations } = await import('../../src/controller/index.js');
  const docs: unknown[] = [
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'vms' }, spec: { cidr: '10.70.0.0/16' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'fips' }, spec: { cidr: '172.24.4.0/24' } },
    {
      apiVersion: v3, kind: 'WorkloadEndpoint', metadata: { name: 'n1-openstack-vm1-port1', namespace: 'openstack' },
      spec: { orchestrator: 'openstack', node: 'n1', workload: 'vm1', endpoint: 'port1', interfaceName: 'tapport1', ipNetworks: ['10.70.0.5/32'], ipNATs: [{ internalIP: '10.70.0.5', externalIP: '172.24.4.10' }, { internalIP: '10.70.0.5', externalIP: '198.51.100.7' }] },
    },
    {
      apiVersion: v3, kind: 'WorkloadEndpoint', metadata: { name: 'n1-k8s-pod-eth0', namespace: 'default' },
      spec: { orchestrator: 'k8s', node: 'n1', pod: 'pod', endpoint: 'eth0', interfaceName: 'cali1', ipNetworks: ['10.70.0.6/32'], ipNATs: [{ internalIP: '10.70.0.6', externalIP: '172.24.4.11' }] },
    },
  ];
  const r = loadResourcesText(docs.map((d) => `---\n${JSON.stringify(d)}\n`).join(''), 'r.yaml');
  t.same(r.issues, []);
  const o = deriveOriginations(r.model, 'n1');
  t.same(o.announce.map((a) => a.prefix), ['10.70.0.5/32', '10.70.0.6/32', '172.24.4.10/32'], 'the floating IP in a pool is announced; one outside every pool is not; a pod\'s ipNATs are not floating IPs');
  t.same(o.deviceRoutes.map((d) => [d.prefix, d.interface]), [['10.70.0.5/32', 'tapport1'], ['10.70.0.6/32', 'cali1'], ['172.24.4.10/32', 'tapport1'], ['198.51.100.7/32', 'tapport1']], 'every floating IP is routed to the VM');
  t.end();
});

t.test('LOCAL_PREF of originations: 2^31-1 minus the normal route priority, per family (confd buildExportFilter)', async (t) => {
  const { deriveOriginations } = await import('../../src/controller/index.js');
  const docs: unknown[] = [
    { apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { ipv6NormalRoutePriority: 2048, serviceClusterIPs: [{ cidr: '10.96.0.0/12' }, { cidr: 'fd00:96::/112' }] } },
  ];
  const r = loadResourcesText(docs.map((d) => `---\n${JSON.stringify(d)}\n`).join(''), 'r.yaml');
  t.same(r.issues, []);
  const o = deriveOriginations(r.model, 'n1');
  t.same(o.announce.map((a) => [a.prefix, a.localPref]), [['10.96.0.0/12', 2147483647 - 1024], ['fd00:96::/112', 2147483647 - 2048]]);
  t.end();
});

t.test('mesh peer without its own AS: taken to be in this node\'s AS (confd bgp_processor.go), not the global one', async (t) => {
  const { derivePeers } = await import('../../src/controller/index.js');
  const docs: unknown[] = [
    { apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512 } },
    { apiVersion: v3, kind: 'Node', metadata: { name: 'a' }, spec: { bgp: { ipv4Address: '10.0.0.1/24', asNumber: 65001 } } },
    { apiVersion: v3, kind: 'Node', metadata: { name: 'b' }, spec: { bgp: { ipv4Address: '10.0.0.2/24' } } },
    { apiVersion: v3, kind: 'Node', metadata: { name: 'c' }, spec: { bgp: { ipv4Address: '10.0.0.3/24', asNumber: 65003 } } },
  ];
  const r = loadResourcesText(docs.map((d) => `---\n${JSON.stringify(d)}\n`).join(''), 'r.yaml');
  t.same(r.issues, []);
  const onA = Object.fromEntries(derivePeers(r.model, 'a').map((p) => [p.address, [p.peerAS, p.localAS]]));
  t.same(onA['10.0.0.2'], [65001, 65001], 'b has no AS: a uses its own');
  t.same(onA['10.0.0.3'], [65003, 65001], 'c has one: used as it is');
  const onB = Object.fromEntries(derivePeers(r.model, 'b').map((p) => [p.address, [p.peerAS, p.localAS]]));
  t.same(onB['10.0.0.1'], [65001, 64512], 'b itself runs the global AS');
  t.end();
});
