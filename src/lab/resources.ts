// The Calico resources that describe the lab (written as Calico's CNI plugin / IPAM and networking-calico would),
// as YAML for the file datastore or key/value pairs for etcd, and the datastore edits of the live commands (add and
// delete a pod, migrate a VM, drain a host). Pure, like topology.ts, whose plan it reads.
import { hex, lastPart, podIfname, TOR_CLUSTER_ID, TOR_NODE, wepName, type Plan, type Workload } from './topology.js';

export interface Doc { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: unknown }; spec: Record<string, unknown> }

/** The cluster's resources as one multi-document YAML file (each document is JSON, which is YAML). */
export function resourcesYaml(plan: Plan): string {
  return resourceDocs(plan).map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

/** Calico's lower-case plural for each v3 kind the lab writes (the etcd key segment). */
const PLURAL: Record<string, string> = {
  ClusterInformation: 'clusterinformations', BGPConfiguration: 'bgpconfigurations', IPPool: 'ippools', BGPPeer: 'bgppeers',
  Node: 'nodes', WorkloadEndpoint: 'workloadendpoints',
};

/**
 * The same resources as etcd keys and values, as Calico writes them: v3 resources under
 * /calico/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>, IPAM in libcalico-go's own shapes
 * (an affinity is {"state","deleted"} under the host's key; a block is the AllocationBlock).
 */
export function etcdPairs(plan: Plan): { key: string; value: string }[] {
  return resourceDocs(plan).map(etcdPair);
}

/** One document as its etcd key and value. */
export function etcdPair(d: Doc): { key: string; value: string } {
  const cidr = String(d.spec.cidr ?? '');
  const fam = cidr.includes(':') ? 6 : 4;
  const part = cidr.replace('/', '-');
  if (d.kind === 'BlockAffinity') return { key: `/calico/ipam/v2/host/${String(d.spec.node)}/ipv${fam}/block/${part}`, value: JSON.stringify({ state: d.spec.state, deleted: false }) };
  if (d.kind === 'IPAMBlock') return { key: `/calico/ipam/v2/assignment/ipv${fam}/block/${part}`, value: JSON.stringify({ ...d.spec, strictAffinity: false }) };
  const ns = d.metadata.namespace !== undefined ? `${d.metadata.namespace}/` : '';
  return { key: `/calico/resources/v3/projectcalico.org/${PLURAL[d.kind]!}/${ns}${d.metadata.name}`, value: JSON.stringify(d) };
}

export function resourceDocs(plan: Plan): Doc[] {
  const v3 = 'projectcalico.org/v3';
  const docs: Doc[] = [
    { apiVersion: v3, kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    {
      apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' },
      spec: { asNumber: plan.clusterAsn, nodeToNodeMeshEnabled: plan.topology === 'mesh', logSeverityScreen: 'Info' },
    },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'default-ipv4-ippool' }, spec: { cidr: plan.podPool, blockSize: 26, ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: false } },
    // networking-calico writes one pool per Neutron subnet; VMs get addresses from it without IPAM blocks.
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'neutron-net-lab' }, spec: { cidr: plan.vmPool, blockSize: 26, ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: false } },
  ];
  if (plan.ipv6) {
    docs.push({ apiVersion: v3, kind: 'IPPool', metadata: { name: 'default-ipv6-ippool' }, spec: { cidr: plan.podPool6, blockSize: 122, ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: false } });
    docs.push({ apiVersion: v3, kind: 'IPPool', metadata: { name: 'neutron-net-lab-v6' }, spec: { cidr: plan.vmPool6, blockSize: 122, ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: false } });
  }
  if (plan.topology === 'tor' && plan.tor === 'skein') {
    // Calico's route-reflector design: the mesh off, every node peers with the nodes labelled route-reflector
    // (the ToR's Node, below); iBGP in the cluster AS, the reflector keeps each route's next hop (RFC 4456 10).
    docs.push({ apiVersion: v3, kind: 'BGPPeer', metadata: { name: 'peer-with-route-reflectors' }, spec: { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" } });
    const bgp: Record<string, unknown> = { ipv4Address: `${plan.torIp}/${plan.fabricCidrLen}`, routeReflectorClusterID: TOR_CLUSTER_ID };
    if (plan.ipv6) bgp.ipv6Address = `${plan.torIp6}/64`;
    docs.push({ apiVersion: v3, kind: 'Node', metadata: { name: TOR_NODE, labels: { 'route-reflector': 'true', 'lab/kind': 'tor' } }, spec: { bgp } });
  } else if (plan.racks > 0) {
    for (const tor of plan.tors) {
      const sel = `rack == '${tor.rack!}'`;
      // The rack's hosts: an iBGP mesh among themselves (same AS), so a rack's routes never need the ToR.
      docs.push({ apiVersion: v3, kind: 'BGPPeer', metadata: { name: `rack-${tor.rack!}-mesh` }, spec: { nodeSelector: sel, peerSelector: sel } });
      // And eBGP to their ToR. Calico's numAllowedLocalASNumbers: how often the host's own AS may appear in a
      // route's AS_PATH before it is dropped as a loop (needed when another rack uses the same AS).
      const spec = (peerIP: string): Record<string, unknown> => ({ nodeSelector: sel, peerIP, asNumber: tor.asn, ...(plan.allowOwnAs > 0 ? { numAllowedLocalASNumbers: plan.allowOwnAs } : {}) });
      docs.push({ apiVersion: v3, kind: 'BGPPeer', metadata: { name: `rack-${tor.rack!}-tor` }, spec: spec(tor.ip) });
      if (plan.ipv6) docs.push({ apiVersion: v3, kind: 'BGPPeer', metadata: { name: `rack-${tor.rack!}-tor-v6` }, spec: spec(tor.ip6) });
    }
  } else if (plan.topology === 'tor') {
    // Every host peers with the ToR over eBGP; the ToR gives each host everything the others announce.
    docs.push({ apiVersion: v3, kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: plan.torIp, asNumber: plan.torAsn } });
    if (plan.ipv6) docs.push({ apiVersion: v3, kind: 'BGPPeer', metadata: { name: 'tor-v6' }, spec: { peerIP: plan.torIp6, asNumber: plan.torAsn } });
  }
  for (const h of plan.hosts) {
    const bgp: Record<string, unknown> = { ipv4Address: `${h.ip}/${plan.fabricCidrLen}` };
    if (plan.ipv6) bgp.ipv6Address = `${h.ip6}/64`;
    if (plan.topology === 'tor' && plan.tor !== 'skein') bgp.asNumber = h.asn;
    const labels: Record<string, string> = { 'kubernetes.io/hostname': h.name, 'lab/kind': h.kind };
    if (h.rack !== undefined) labels.rack = h.rack;
    if (h.bird) labels['lab/bgp'] = 'bird';
    docs.push({
      apiVersion: v3, kind: 'Node',
      metadata: { name: h.name, labels },
      spec: { bgp, orchRefs: [{ orchestrator: h.kind === 'k8s' ? 'k8s' : 'openstack', nodeName: h.name }] },
    });
    const mine = plan.workloads.filter((w) => w.kind === 'pod' && w.host === h.name);
    const blocks: [string | undefined, (w: Workload) => string][] = [[h.block, (w) => w.ip]];
    if (plan.ipv6) blocks.push([h.block6, (w) => w.ip6]);
    for (const [block, addr] of blocks) {
      if (block === undefined) continue;
      const [first, len] = block.split('/') as [string, string];
      const base = lastPart(first);
      const size = 2 ** ((first.includes(':') ? 128 : 32) - Number(len));
      const allocations: (number | null)[] = new Array<number | null>(size).fill(null);
      const attributes = mine.map((p, i) => {
        allocations[lastPart(addr(p)) - base] = i;
        return { handle_id: `k8s-pod-network.${hex(p.name, 64)}`, secondary: { namespace: 'default', node: h.name, pod: p.name, timestamp: '2026-01-01 00:00:00 +0000 UTC' } };
      });
      // Calico names both after the CIDR with "." ":" "/" as "-".
      const blockName = block.replace(/[.:/]/g, '-');
      docs.push({
        apiVersion: v3, kind: 'BlockAffinity', metadata: { name: `${h.name}-${blockName}` },
        spec: { node: h.name, cidr: block, state: 'confirmed', deleted: 'false' },
      });
      docs.push({
        apiVersion: v3, kind: 'IPAMBlock', metadata: { name: blockName },
        spec: {
          cidr: block, affinity: `host:${h.name}`, allocations,
          unallocated: allocations.map((a, i) => (a === null ? i : -1)).filter((i) => i >= 0),
          attributes, sequenceNumber: 1, deleted: false,
        },
      });
    }
  }
  for (const w of plan.workloads) docs.push(workloadDoc(w, plan.ipv6));
  return docs;
}

/** A workload's WorkloadEndpoint, as Calico's CNI plugin (pods) or networking-calico (VMs) writes it. */
export function workloadDoc(w: Workload, ipv6: boolean): Doc {
  const v3 = 'projectcalico.org/v3';
  const ipNetworks = ipv6 && w.ip6 !== '' ? [`${w.ip}/32`, `${w.ip6}/128`] : [`${w.ip}/32`];
  if (w.kind === 'pod') {
    return {
      apiVersion: v3, kind: 'WorkloadEndpoint',
      metadata: {
        name: wepName(w.host, 'k8s', w.name, 'eth0'), namespace: 'default',
        labels: { 'projectcalico.org/namespace': 'default', 'projectcalico.org/orchestrator': 'k8s', 'projectcalico.org/serviceaccount': 'default', app: w.name },
      },
      spec: {
        orchestrator: 'k8s', node: w.host, pod: w.name, endpoint: 'eth0', serviceAccountName: 'default',
        interfaceName: w.ifname, ipNetworks, profiles: ['kns.default', 'ksa.default.default'],
      },
    };
  }
  return {
    apiVersion: v3, kind: 'WorkloadEndpoint',
    metadata: {
      name: wepName(w.host, 'openstack', w.instanceId!, w.portId!), namespace: 'openstack',
      labels: { 'projectcalico.org/namespace': 'openstack', 'projectcalico.org/orchestrator': 'openstack', 'projectcalico.org/openstack-project-name': 'lab' },
    },
    spec: {
      orchestrator: 'openstack', node: w.host, workload: w.instanceId, endpoint: w.portId,
      interfaceName: w.ifname, ipNetworks, profiles: ['openstack-sg-default'],
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Live changes to a running lab's resources (the lab CLI's add-pod, del-pod, migrate-vm, drain): pure edits of
// the document list, made as Calico's CNI/IPAM, networking-calico and a node drain would make them.

/** The documents of a resources.yaml the lab wrote (each document one JSON line after "---"). */
export function parseResources(text: string): Doc[] {
  return text.split(/^---$/m).map((p) => p.trim()).filter((p) => p !== '').map((p) => JSON.parse(p) as Doc);
}

export function renderResources(docs: readonly Doc[]): string {
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

/** The pod's WorkloadEndpoint, if there is one. */
function podWep(docs: readonly Doc[], name: string): Doc | undefined {
  return docs.find((d) => d.kind === 'WorkloadEndpoint' && d.spec.orchestrator === 'k8s' && d.spec.pod === name);
}

interface BlockSpec { cidr: string; affinity?: string; allocations: (number | null)[]; unallocated: number[]; attributes: { handle_id: string; secondary: Record<string, string> }[]; sequenceNumber: number }

/** The IPAM block containing an address (the lab's blocks never cross an octet or group), with its ordinal. */
function blockOf(docs: readonly Doc[], ip: string): { spec: BlockSpec; ordinal: number } | undefined {
  const v6 = ip.includes(':');
  for (const d of docs) {
    if (d.kind !== 'IPAMBlock') continue;
    const spec = d.spec as unknown as BlockSpec;
    const [first, len] = spec.cidr.split('/') as [string, string];
    if (first.includes(':') !== v6) continue;
    const head = (a: string): string => (v6 ? a.split(':').slice(0, -1).join(':') : a.split('.').slice(0, 3).join('.'));
    if (head(first) !== head(ip)) continue;
    const ordinal = lastPart(ip) - lastPart(first);
    if (ordinal >= 0 && ordinal < 2 ** ((v6 ? 128 : 32) - Number(len))) return { spec, ordinal };
  }
  return undefined;
}

function addrAt(cidr: string, ordinal: number): string {
  const [first] = cidr.split('/') as [string];
  if (first.includes(':')) {
    const groups = first.split(':');
    return [...groups.slice(0, -1), (lastPart(first) + ordinal).toString(16)].join(':');
  }
  const o = first.split('.');
  return [...o.slice(0, 3), String(lastPart(first) + ordinal)].join('.');
}

/** Record an allocation in the block holding `ip`, if any (a borrowed address is recorded in its block too). */
function claim(docs: readonly Doc[], ip: string, node: string, pod: string): void {
  const b = blockOf(docs, ip);
  if (b === undefined) return;
  if (b.spec.allocations[b.ordinal] !== null && b.spec.allocations[b.ordinal] !== undefined) throw new Error(`${ip} is already allocated in block ${b.spec.cidr}`);
  b.spec.attributes.push({ handle_id: `k8s-pod-network.${hex(`${node}.${pod}`, 64)}`, secondary: { namespace: 'default', node, pod, timestamp: '2026-01-01 00:00:00 +0000 UTC' } });
  b.spec.allocations[b.ordinal] = b.spec.attributes.length - 1;
  b.spec.unallocated = b.spec.unallocated.filter((i) => i !== b.ordinal);
  b.spec.sequenceNumber++;
}

function release(docs: readonly Doc[], ip: string): void {
  const b = blockOf(docs, ip);
  if (b === undefined || b.spec.allocations[b.ordinal] === null) return;
  b.spec.allocations[b.ordinal] = null;
  b.spec.unallocated.push(b.ordinal);
  b.spec.sequenceNumber++;
}

export interface NewPod { workload: Workload; borrowed: boolean }

/**
 * A pod on `host`: its addresses from the host's affine blocks (the first free ordinal from 2), or the ones given
 * (an address outside the host's blocks is a borrowed one, announced as a /32 by the host it runs on).
 */
export function addPod(docs: Doc[], o: { host: string; name: string; ip?: string | undefined; ip6?: string | undefined; ipv6: boolean }): NewPod {
  if (podWep(docs, o.name) !== undefined) throw new Error(`pod ${o.name} exists already`);
  const node = docs.find((d) => d.kind === 'Node' && d.metadata.name === o.host);
  if (node === undefined) throw new Error(`no Node ${o.host}`);
  const affine = docs.filter((d) => d.kind === 'IPAMBlock' && (d.spec as unknown as BlockSpec).affinity === `host:${o.host}`).map((d) => d.spec as unknown as BlockSpec);
  const pick = (v6: boolean, given: string | undefined): string => {
    if (given !== undefined) return given;
    const b = affine.find((x) => x.cidr.includes(':') === v6);
    if (b === undefined) throw new Error(`${o.host} has no IPv${v6 ? 6 : 4} block: give the address (--ip${v6 ? '6' : ''})`);
    const free = b.unallocated.filter((i) => i >= 2).sort((x, y) => x - y)[0];
    if (free === undefined) throw new Error(`block ${b.cidr} is full`);
    return addrAt(b.cidr, free);
  };
  const ip = pick(false, o.ip);
  const ip6 = o.ipv6 ? pick(true, o.ip6) : '';
  const inMine = (a: string): boolean => { const b = blockOf(docs, a); return b !== undefined && b.spec.affinity === `host:${o.host}`; };
  const workload: Workload = { name: o.name, kind: 'pod', host: o.host, ip, ip6, ifname: podIfname(o.name) };
  claim(docs, ip, o.host, o.name);
  if (ip6 !== '') claim(docs, ip6, o.host, o.name);
  docs.push(workloadDoc(workload, o.ipv6));
  return { workload, borrowed: !inMine(ip) };
}

/** The pod's WorkloadEndpoint removed and its addresses released; returns what it was. */
export function deletePod(docs: Doc[], name: string): { host: string; ips: string[] } {
  const wep = podWep(docs, name);
  if (wep === undefined) throw new Error(`no pod ${name}`);
  docs.splice(docs.indexOf(wep), 1);
  const ips = (wep.spec.ipNetworks as string[]).map((n) => n.split('/')[0]!);
  for (const ip of ips) release(docs, ip);
  return { host: String(wep.spec.node), ips };
}

/** A VM's port bound to another host: its WorkloadEndpoint's node (and with it its name) changes. */
export function migrateVm(docs: Doc[], vm: Workload, to: string): { from: string } {
  const wep = docs.find((d) => d.kind === 'WorkloadEndpoint' && d.spec.orchestrator === 'openstack' && d.spec.workload === vm.instanceId && d.spec.endpoint === vm.portId);
  if (wep === undefined) throw new Error(`no WorkloadEndpoint for VM ${vm.name}`);
  if (!docs.some((d) => d.kind === 'Node' && d.metadata.name === to)) throw new Error(`no Node ${to}`);
  const from = String(wep.spec.node);
  if (from === to) throw new Error(`VM ${vm.name} is on ${to} already`);
  wep.spec.node = to;
  wep.metadata.name = wepName(to, 'openstack', vm.instanceId!, vm.portId!);
  return { from };
}

/** A drained host: its pods' WorkloadEndpoints and its block affinities (and blocks) gone. Returns its pods. */
export function drainHost(docs: Doc[], host: string): { pods: string[]; blocks: string[] } {
  const pods = docs.filter((d) => d.kind === 'WorkloadEndpoint' && d.spec.orchestrator === 'k8s' && d.spec.node === host).map((d) => String(d.spec.pod));
  for (const p of pods) deletePod(docs, p);
  const blocks = docs.filter((d) => d.kind === 'BlockAffinity' && d.spec.node === host).map((d) => String(d.spec.cidr));
  for (let i = docs.length - 1; i >= 0; i--) {
    const d = docs[i]!;
    if ((d.kind === 'BlockAffinity' && d.spec.node === host) || (d.kind === 'IPAMBlock' && d.spec.affinity === `host:${host}`)) docs.splice(i, 1);
  }
  return { pods, blocks };
}
