// The lab's data centre as data: hosts, pods, VMs, the Calico resources that describe them (written as Calico's
// CNI plugin / IPAM and networking-calico would), each host's skein.yaml and the ToR's FRR configuration.
// Pure: nothing here touches the system, so the shapes can be checked without root.
import { createHash } from 'node:crypto';

export type Topology = 'mesh' | 'tor';

export interface Host {
  name: string;
  kind: 'k8s' | 'openstack';
  /** namespace label (the namespace is `<prefix><label>`) */
  label: string;
  ip: string;
  /** the host's AS: the cluster AS in the mesh, one private AS per host under the ToR */
  asn: number;
  /** IPAM block affine to a Kubernetes host */
  block?: string;
}

export interface Workload {
  name: string;
  kind: 'pod' | 'vm';
  host: string;
  ip: string;
  /** interface on the host side (Calico's naming) */
  ifname: string;
  /** OpenStack: instance and port IDs */
  instanceId?: string;
  portId?: string;
}

export interface Plan {
  topology: Topology;
  clusterAsn: number;
  torAsn: number;
  torIp: string;
  fabricCidrLen: number;
  hosts: Host[];
  workloads: Workload[];
  podPool: string;
  vmPool: string;
}

/** Deterministic hex from a string (so names are stable from run to run). */
function hex(s: string, n: number): string {
  return createHash('sha1').update(s).digest('hex').slice(0, n);
}

/** A UUID-shaped ID derived from a string, as Nova and Neutron IDs look. */
function uuid(s: string): string {
  const h = createHash('sha1').update(s).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function makePlan(topology: Topology): Plan {
  const clusterAsn = 64512;
  const hosts: Host[] = [
    { name: 'k8s-1', kind: 'k8s', label: 'k8s-1', ip: '10.10.0.11', asn: topology === 'tor' ? 65011 : clusterAsn, block: '10.65.0.0/26' },
    { name: 'k8s-2', kind: 'k8s', label: 'k8s-2', ip: '10.10.0.12', asn: topology === 'tor' ? 65012 : clusterAsn, block: '10.65.0.64/26' },
    { name: 'os-1', kind: 'openstack', label: 'os-1', ip: '10.10.0.21', asn: topology === 'tor' ? 65021 : clusterAsn },
    { name: 'os-2', kind: 'openstack', label: 'os-2', ip: '10.10.0.22', asn: topology === 'tor' ? 65022 : clusterAsn },
  ];
  const workloads: Workload[] = [];
  const pod = (name: string, host: string, ip: string): void => {
    // Calico's CNI names the host end "cali" + the first 11 hex digits of sha1("<namespace>.<pod>").
    workloads.push({ name, kind: 'pod', host, ip, ifname: `cali${hex(`default.${name}`, 11)}` });
  };
  const vm = (name: string, host: string, ip: string): void => {
    // networking-calico names the tap "tap" + the start of the Neutron port ID (hex only here, for clarity).
    const portId = uuid(`port.${name}`);
    workloads.push({ name, kind: 'vm', host, ip, ifname: `tap${portId.replace(/-/g, '').slice(0, 11)}`, instanceId: uuid(`instance.${name}`), portId });
  };
  pod('pod-1a', 'k8s-1', '10.65.0.2');
  pod('pod-1b', 'k8s-1', '10.65.0.3');
  pod('pod-2a', 'k8s-2', '10.65.0.66');
  pod('pod-2b', 'k8s-2', '10.65.0.67');
  vm('vm-1a', 'os-1', '10.70.0.11');
  vm('vm-1b', 'os-1', '10.70.0.12');
  vm('vm-2a', 'os-2', '10.70.0.21');
  vm('vm-2b', 'os-2', '10.70.0.22');
  return {
    topology, clusterAsn, torAsn: 65000, torIp: '10.10.0.1', fabricCidrLen: 24, hosts, workloads,
    podPool: '10.65.0.0/16', vmPool: '10.70.0.0/24',
  };
}

/** Calico's WorkloadEndpoint name: the parts joined by "-", each part's own "-" doubled. */
function wepName(...parts: string[]): string {
  return parts.map((p) => p.replace(/-/g, '--')).join('-');
}

function lastOctet(ip: string): number {
  return Number(ip.split('.')[3]);
}

/** The cluster's resources as one multi-document YAML file (each document is JSON, which is YAML). */
export function resourcesYaml(plan: Plan): string {
  const v3 = 'projectcalico.org/v3';
  const docs: unknown[] = [
    { apiVersion: v3, kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    {
      apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' },
      spec: { asNumber: plan.clusterAsn, nodeToNodeMeshEnabled: plan.topology === 'mesh', logSeverityScreen: 'Info' },
    },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'default-ipv4-ippool' }, spec: { cidr: plan.podPool, blockSize: 26, ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: false } },
    // networking-calico writes one pool per Neutron subnet; VMs get addresses from it without IPAM blocks.
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'neutron-net-lab' }, spec: { cidr: plan.vmPool, blockSize: 26, ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: false } },
  ];
  if (plan.topology === 'tor') {
    // Every host peers with the ToR over eBGP; the ToR gives each host everything the others announce.
    docs.push({ apiVersion: v3, kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: plan.torIp, asNumber: plan.torAsn } });
  }
  for (const h of plan.hosts) {
    const bgp: Record<string, unknown> = { ipv4Address: `${h.ip}/${plan.fabricCidrLen}` };
    if (plan.topology === 'tor') bgp.asNumber = h.asn;
    docs.push({
      apiVersion: v3, kind: 'Node',
      metadata: { name: h.name, labels: { 'kubernetes.io/hostname': h.name, 'lab/kind': h.kind } },
      spec: { bgp, orchRefs: [{ orchestrator: h.kind === 'k8s' ? 'k8s' : 'openstack', nodeName: h.name }] },
    });
    if (h.block === undefined) continue;
    const base = lastOctet(h.block.split('/')[0]!);
    const size = 2 ** (32 - Number(h.block.split('/')[1]));
    const mine = plan.workloads.filter((w) => w.kind === 'pod' && w.host === h.name);
    const allocations: (number | null)[] = new Array<number | null>(size).fill(null);
    const attributes = mine.map((p, i) => {
      allocations[lastOctet(p.ip) - base] = i;
      return { handle_id: `k8s-pod-network.${hex(p.name, 64)}`, secondary: { namespace: 'default', node: h.name, pod: p.name, timestamp: '2026-01-01 00:00:00 +0000 UTC' } };
    });
    const blockName = h.block.replace(/[./]/g, '-');
    docs.push({
      apiVersion: v3, kind: 'BlockAffinity', metadata: { name: `${h.name}-${blockName}` },
      spec: { node: h.name, cidr: h.block, state: 'confirmed', deleted: 'false' },
    });
    docs.push({
      apiVersion: v3, kind: 'IPAMBlock', metadata: { name: blockName },
      spec: {
        cidr: h.block, affinity: `host:${h.name}`, allocations,
        unallocated: allocations.map((a, i) => (a === null ? i : -1)).filter((i) => i >= 0),
        attributes, sequenceNumber: 1, deleted: false,
      },
    });
  }
  for (const w of plan.workloads) {
    if (w.kind === 'pod') {
      docs.push({
        apiVersion: v3, kind: 'WorkloadEndpoint',
        metadata: {
          name: wepName(w.host, 'k8s', w.name, 'eth0'), namespace: 'default',
          labels: { 'projectcalico.org/namespace': 'default', 'projectcalico.org/orchestrator': 'k8s', 'projectcalico.org/serviceaccount': 'default', app: w.name },
        },
        spec: {
          orchestrator: 'k8s', node: w.host, pod: w.name, endpoint: 'eth0', serviceAccountName: 'default',
          interfaceName: w.ifname, ipNetworks: [`${w.ip}/32`], profiles: ['kns.default', 'ksa.default.default'],
        },
      });
    } else {
      docs.push({
        apiVersion: v3, kind: 'WorkloadEndpoint',
        metadata: {
          name: wepName(w.host, 'openstack', w.instanceId!, w.portId!), namespace: 'openstack',
          labels: { 'projectcalico.org/namespace': 'openstack', 'projectcalico.org/orchestrator': 'openstack', 'projectcalico.org/openstack-project-name': 'lab' },
        },
        spec: {
          orchestrator: 'openstack', node: w.host, workload: w.instanceId, endpoint: w.portId,
          interfaceName: w.ifname, ipNetworks: [`${w.ip}/32`], profiles: ['openstack-sg-default'],
        },
      });
    }
  }
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

/** One host's skein.yaml. */
export function skeinYaml(host: Host, resources: string, socket: string): string {
  return [
    `nodeName: ${host.name}`,
    `datastore: { type: file, path: ${JSON.stringify(resources)}, debounce: 50ms }`,
    `control: { socket: ${JSON.stringify(socket)} }`,
    // every host namespace has its own loopback, so one port serves all
    'metrics: { listen: "127.0.0.1:9180" }',
    'log: { level: info }',
    '',
  ].join('\n');
}

/** FRR's configuration for the ToR: one eBGP neighbour per host, no policy needed to pass routes on. */
export function frrConf(plan: Plan): string {
  const lines = [
    'frr defaults datacenter',
    'hostname tor',
    'log stdout informational',
    'ip forwarding',
    '!',
    `router bgp ${plan.torAsn}`,
    ` bgp router-id ${plan.torIp}`,
    // RFC 8212 (eBGP needs a policy) is on by default in FRR; the lab passes every route on.
    ' no bgp ebgp-requires-policy',
    ' no bgp network import-check',
  ];
  for (const h of plan.hosts) lines.push(` neighbor ${h.ip} remote-as ${h.asn}`, ` neighbor ${h.ip} description ${h.name}`);
  lines.push(' address-family ipv4 unicast');
  for (const h of plan.hosts) lines.push(`  neighbor ${h.ip} activate`);
  lines.push(' exit-address-family', '!', '');
  return lines.join('\n');
}

/** What every host should have learned: the other hosts' blocks and VM /32s (destinations as `ip -j` prints them). */
export function expectedRemote(plan: Plan, host: string): string[] {
  const out: string[] = [];
  for (const h of plan.hosts) if (h.name !== host && h.block) out.push(h.block);
  for (const w of plan.workloads) if (w.kind === 'vm' && w.host !== host) out.push(w.ip);
  return out;
}
