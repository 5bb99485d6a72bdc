// Records exactly as Calico's own clients write them (issue 13): calicoctl / the CRDs, the CNI plugin and Calico
// IPAM (libcalico-go/lib/backend/model/block.go, api/pkg/apis/projectcalico/v3/), networking-calico. Each must load
// with no issue at all — not an error, not a warning — so a busy cluster never floods the log.
import t from 'tap';
import { decodeEtcd, loadResourcesText, validateResource } from '../../config/index.js';

const v3 = 'projectcalico.org/v3';

t.test('file datastore: CRD-shaped records Calico writes load with no issue', (t) => {
  const docs: unknown[] = [
    // IPAM block as Calico IPAM writes it (CRD): affinityClaimTime, an allocation in its cool-down (releasedAt), a
    // live-migration allocation with alternateOwnerAttrs.
    {
      apiVersion: v3, kind: 'IPAMBlock', metadata: { name: '10-65-0-0-26' },
      spec: {
        cidr: '10.65.0.0/26', affinity: 'host:host-a', affinityClaimTime: '2026-12-04T10:00:00Z',
        allocations: [0, 1, null, 2, ...new Array<null>(60).fill(null)], unallocated: [2, ...Array.from({ length: 60 }, (_, i) => i + 4)],
        attributes: [
          { handle_id: 'k8s-pod-network.abc', secondary: { namespace: 'default', node: 'host-a', pod: 'web', timestamp: '2026-12-04 10:00:00 +0000 UTC' } },
          { handle_id: 'k8s-pod-network.def', secondary: { namespace: 'default', node: 'host-a', pod: 'gone' }, releasedAt: '2026-12-04T10:05:00Z' },
          { handle_id: 'k8s-pod-network.vm', secondary: { namespace: 'vms', node: 'host-b', pod: 'virt-launcher-a' }, alternateOwnerAttrs: { namespace: 'vms', node: 'host-a', pod: 'virt-launcher-b' } },
        ],
        sequenceNumber: 7, sequenceNumberForAllocation: { 0: 1, 1: 5, 3: 6 }, deleted: false, strictAffinity: false,
      },
    },
    { apiVersion: v3, kind: 'BlockAffinity', metadata: { name: 'host-a-10-65-0-0-26' }, spec: { state: 'pendingDeletion', node: 'host-a', cidr: '10.65.0.0/26', deleted: 'false', type: 'host' } },
    { apiVersion: v3, kind: 'BlockAffinity', metadata: { name: 'host-a-10-65-0-64-26' }, spec: { state: 'pending', node: 'host-a', cidr: '10.65.0.64/26', deleted: 'false' } },
    // calicoctl: a peer without asNumber (the cluster's AS), a large numAllowedLocalASNumbers, an empty service cidr.
    { apiVersion: v3, kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: '192.0.2.1', node: 'host-a' } },
    { apiVersion: v3, kind: 'BGPPeer', metadata: { name: 'rack' }, spec: { peerIP: '192.0.2.2', asNumber: 65001, numAllowedLocalASNumbers: 20 } },
    { apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, serviceClusterIPs: [{ cidr: '10.96.0.0/12' }, {}, { cidr: '' }], serviceExternalIPs: [{ cidr: '' }] } },
    // A WorkloadEndpoint whose name is not <node>-k8s-<pod>-<endpoint> with doubled dashes.
    { apiVersion: v3, kind: 'WorkloadEndpoint', metadata: { name: 'host-a-k8s-my-pod-eth0', namespace: 'default' }, spec: { orchestrator: 'k8s', node: 'host-a', pod: 'my-pod', endpoint: 'eth0', interfaceName: 'cali1234567890a', ipNetworks: ['10.65.0.1/32'] } },
    // networking-calico: a VM port with a floating IP (ipNATs).
    {
      apiVersion: v3, kind: 'WorkloadEndpoint', metadata: { name: 'host-b-openstack-vm1-port1', namespace: 'openstack', labels: { 'projectcalico.org/namespace': 'openstack', 'projectcalico.org/orchestrator': 'openstack' } },
      spec: { orchestrator: 'openstack', node: 'host-b', workload: 'vm1', endpoint: 'port1', interfaceName: 'tapport1', mac: 'fa:16:3e:00:00:01', ipNetworks: ['10.70.0.5/32'], ipNATs: [{ internalIP: '10.70.0.5', externalIP: '172.24.4.10' }], profiles: ['openstack-sg-default'] },
    },
    { apiVersion: v3, kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { clusterGUID: 'abc', clusterType: 'k8s,bgp,kdd', calicoVersion: 'v3.31.0', datastoreReady: true } },
  ];
  const { model, issues } = loadResourcesText(docs.map((d) => `---\n${JSON.stringify(d)}\n`).join(''), 'resources.yaml');
  t.same(issues, [], 'no error, no warning');
  t.equal(model.list('IPAMBlock').length, 1);
  t.equal(model.list('BlockAffinity').length, 2);
  t.equal(model.list('BGPPeer').length, 2);
  t.equal(model.list('WorkloadEndpoint').length, 2);
  t.same(model.bgpConfiguration('default')?.spec.serviceClusterIPs, [{ cidr: '10.96.0.0/12' }], 'empty service cidr entries are skipped, the rest kept');
  t.same(model.bgpConfiguration('default')?.spec.serviceExternalIPs, []);
  const tor = model.list('BGPPeer').find((p) => p.metadata.name === 'tor');
  t.equal(tor?.spec.asNumber, undefined, 'a peer without asNumber is kept');
  t.equal(model.list('BGPPeer').find((p) => p.metadata.name === 'rack')?.spec.numAllowedLocalASNumbers, 20);
  t.end();
});

t.test('etcd: an IPAM block as libcalico-go stores it (affinity_claim_time, releasedAt) decodes with no issue', (t) => {
  const block = {
    cidr: '10.65.0.0/26', affinity: 'host:host-a', affinity_claim_time: '2026-12-04T10:00:00Z',
    allocations: [0, 1, ...new Array<null>(62).fill(null)], unallocated: Array.from({ length: 62 }, (_, i) => i + 2),
    attributes: [
      { handle_id: 'k8s-pod-network.abc', secondary: { namespace: 'default', node: 'host-a', pod: 'web' } },
      { handle_id: 'k8s-pod-network.def', secondary: { namespace: 'default', node: 'host-a', pod: 'gone' }, releasedAt: '2026-12-04T10:05:00Z' },
    ],
    sequenceNumber: 3, sequenceNumberForAllocation: { 0: 1, 1: 2 }, deleted: false,
  };
  const d = decodeEtcd('/calico/ipam/v2/assignment/ipv4/block/10.65.0.0-26', JSON.stringify(block));
  t.same(d?.issues, [], 'no issue');
  t.ok(d?.resource, 'decoded');
  // and a field Calico has never written is still reported, so the check above could fail
  const odd = validateResource({ apiVersion: v3, kind: 'IPAMBlock', metadata: { name: 'x' }, spec: { ...block, affinity_claim_time: undefined, claimedBy: 'x' } });
  t.match(JSON.stringify(odd.checker.problems), /claimedBy/, 'an unknown field is still a warning');
  t.end();
});
