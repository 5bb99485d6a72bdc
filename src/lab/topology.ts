// The lab's data centre as data: hosts, pods, VMs, racks, the Calico resources that describe them (written as
// Calico's CNI plugin / IPAM and networking-calico would), each host's skein.yaml, the ToRs' FRR or BIRD
// configuration, and the BIRD configuration of a host that still runs Calico's BGP stack (a mixed cluster).
// Pure: nothing here touches the system, so the shapes can be checked without root.
import { createHash } from 'node:crypto';

export type Topology = 'mesh' | 'tor';

export interface Host {
  name: string;
  kind: 'k8s' | 'openstack';
  /** namespace label (the namespace is `<prefix><label>`) */
  label: string;
  ip: string;
  /** fabric IPv6 address (dual stack) */
  ip6: string;
  /** the host's AS: the cluster AS in the mesh, one private AS per host under the ToR */
  asn: number;
  /** IPAM block affine to a Kubernetes host */
  block?: string;
  block6?: string;
  /** under --racks: the rack's letter (the Node's `rack` label) */
  rack?: string;
  /** runs BIRD 2 configured as Calico's confd would (a mixed cluster), not skeind */
  bird?: boolean;
}

/** A top-of-rack router: the one ToR of --topology tor, or one per rack under --racks. */
export interface Tor {
  /** the ToR's name (its namespace label too): "tor", or "tor-a", "tor-b", ... per rack */
  name: string;
  ip: string;
  ip6: string;
  asn: number;
  rack?: string;
  /** under --racks: its address on the link that joins the ToRs (the spine segment) */
  spineIp?: string;
  spineIp6?: string;
}

export interface Workload {
  name: string;
  kind: 'pod' | 'vm';
  host: string;
  ip: string;
  ip6: string;
  /** interface on the host side (Calico's naming) */
  ifname: string;
  /** OpenStack: instance and port IDs */
  instanceId?: string;
  portId?: string;
}

/**
 * The ToR router under --topology tor: FRR or BIRD 2 (eBGP, one AS per host, or per rack), or skeind as an iBGP
 * route reflector.
 */
export type TorKind = 'frr' | 'skein' | 'bird';

/** Racks and mixed clusters (see makePlan). */
export interface PlanOptions {
  /** hosts spread over this many racks (2-4), each rack its own L2 segment, AS and ToR; 0: one fabric */
  racks?: number;
  /** distinct: rack r in AS 65001+r; shared: every rack in AS 65001 (Calico's numAllowedLocalASNumbers needed) */
  rackAs?: 'distinct' | 'shared';
  /** numAllowedLocalASNumbers on the hosts' ToR peerings (default: 1 when racks share an AS, else unset) */
  allowOwnAs?: number;
  /** hosts that run BIRD 2 configured as Calico's confd does, instead of skeind (mesh only) */
  birdHosts?: readonly string[];
}

export interface Plan {
  topology: Topology;
  /** under --topology tor: which router the ToR runs */
  tor: TorKind;
  clusterAsn: number;
  torAsn: number;
  torIp: string;
  torIp6: string;
  fabricCidrLen: number;
  /** dual stack: IPv6 addresses, pools, blocks and sessions beside the IPv4 ones */
  ipv6: boolean;
  /** the ToR router(s): one under --topology tor, one per rack under --racks, none in the mesh */
  tors: Tor[];
  /** number of racks (0: one fabric segment for every host) */
  racks: number;
  rackAs: 'distinct' | 'shared';
  /** numAllowedLocalASNumbers on the ToR peerings (0: unset) */
  allowOwnAs: number;
  hosts: Host[];
  workloads: Workload[];
  podPool: string;
  vmPool: string;
  podPool6: string;
  vmPool6: string;
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

/** Calico's CNI names a pod's host-side veth "cali" + the first 11 hex digits of sha1("<namespace>.<pod>"). */
export function podIfname(name: string): string {
  return `cali${hex(`default.${name}`, 11)}`;
}

export const RACK_LETTERS = ['a', 'b', 'c', 'd'];
/** The AS of every ToR under --racks (a ToR layer; the ToRs are iBGP peers of each other). */
export const RACK_TOR_ASN = 65000;

/**
 * The lab's data centre. Racks (opts.racks >= 2, ToR topology, FRR or BIRD ToRs): hosts are dealt round-robin to
 * racks a, b, ... (so each rack of two holds a Kubernetes and an OpenStack host), each rack its own L2 segment
 * 10.10.<r+1>.0/24 with its ToR at .1; the ToRs (AS 65000) are iBGP peers over a spine segment 10.10.255.0/24 and
 * each rack's hosts are an iBGP mesh in the rack's AS with an eBGP session to their ToR, as Calico's "AS per rack"
 * designs peer. When racks share an AS, a host sees its own AS in every route from another rack and drops it
 * (RFC 4271 9.1.2) unless numAllowedLocalASNumbers lets it through.
 */
export function makePlan(topology: Topology, ipv6 = true, tor: TorKind = 'frr', opts: PlanOptions = {}): Plan {
  const clusterAsn = 64512;
  const racks = topology === 'tor' && tor !== 'skein' ? (opts.racks ?? 0) : 0;
  if (racks !== 0 && (racks < 2 || racks > RACK_LETTERS.length)) throw new Error(`racks: ${racks} is not 2-${RACK_LETTERS.length}`);
  const rackAs = opts.rackAs ?? 'distinct';
  const allowOwnAs = opts.allowOwnAs ?? (racks > 0 && rackAs === 'shared' ? 1 : 0);
  // eBGP (one private AS per host, or per rack) under FRR and BIRD; a skein route reflector keeps every host in
  // the cluster AS.
  const ebgp = topology === 'tor' && tor !== 'skein';
  const hosts: Host[] = [
    { name: 'k8s-1', kind: 'k8s', label: 'k8s-1', ip: '10.10.0.11', ip6: 'fd00:10::11', asn: ebgp ? 65011 : clusterAsn, block: '10.65.0.0/26', block6: 'fd00:65::/122' },
    { name: 'k8s-2', kind: 'k8s', label: 'k8s-2', ip: '10.10.0.12', ip6: 'fd00:10::12', asn: ebgp ? 65012 : clusterAsn, block: '10.65.0.64/26', block6: 'fd00:65::40/122' },
    { name: 'os-1', kind: 'openstack', label: 'os-1', ip: '10.10.0.21', ip6: 'fd00:10::21', asn: ebgp ? 65021 : clusterAsn },
    { name: 'os-2', kind: 'openstack', label: 'os-2', ip: '10.10.0.22', ip6: 'fd00:10::22', asn: ebgp ? 65022 : clusterAsn },
  ];
  const tors: Tor[] = [];
  if (racks > 0) {
    hosts.forEach((h, i) => {
      const r = i % racks;
      h.rack = RACK_LETTERS[r]!;
      h.asn = rackAs === 'shared' ? 65001 : 65001 + r;
      h.ip = h.ip.replace(/^10\.10\.0\./, `10.10.${r + 1}.`);
      h.ip6 = h.ip6.replace(/^fd00:10::/, `fd00:10:${r + 1}::`);
    });
    for (let r = 0; r < racks; r++) {
      const rack = RACK_LETTERS[r]!;
      tors.push({ name: `tor-${rack}`, rack, ip: `10.10.${r + 1}.1`, ip6: `fd00:10:${r + 1}::1`, asn: RACK_TOR_ASN, spineIp: `10.10.255.${r + 1}`, spineIp6: `fd00:10:ff::${r + 1}` });
    }
  } else if (topology === 'tor') {
    tors.push({ name: 'tor', ip: '10.10.0.1', ip6: 'fd00:10::1', asn: ebgp ? 65000 : clusterAsn });
  }
  const birdHosts = topology === 'mesh' ? (opts.birdHosts ?? []) : [];
  if (topology !== 'mesh' && (opts.birdHosts ?? []).length > 0) throw new Error('BIRD hosts (a mixed cluster) need the node-to-node mesh');
  for (const b of birdHosts) {
    const h = hosts.find((x) => x.name === b);
    if (h === undefined) throw new Error(`no host ${b} (hosts: ${hosts.map((x) => x.name).join(', ')})`);
    h.bird = true;
  }
  const workloads: Workload[] = [];
  const pod = (name: string, host: string, ip: string, ip6: string): void => {
    workloads.push({ name, kind: 'pod', host, ip, ip6, ifname: podIfname(name) });
  };
  const vm = (name: string, host: string, ip: string, ip6: string): void => {
    // networking-calico names the tap "tap" + the start of the Neutron port ID (hex only here, for clarity).
    const portId = uuid(`port.${name}`);
    workloads.push({ name, kind: 'vm', host, ip, ip6, ifname: `tap${portId.replace(/-/g, '').slice(0, 11)}`, instanceId: uuid(`instance.${name}`), portId });
  };
  pod('pod-1a', 'k8s-1', '10.65.0.2', 'fd00:65::2');
  pod('pod-1b', 'k8s-1', '10.65.0.3', 'fd00:65::3');
  pod('pod-2a', 'k8s-2', '10.65.0.66', 'fd00:65::42');
  pod('pod-2b', 'k8s-2', '10.65.0.67', 'fd00:65::43');
  vm('vm-1a', 'os-1', '10.70.0.11', 'fd00:70::11');
  vm('vm-1b', 'os-1', '10.70.0.12', 'fd00:70::12');
  vm('vm-2a', 'os-2', '10.70.0.21', 'fd00:70::21');
  vm('vm-2b', 'os-2', '10.70.0.22', 'fd00:70::22');
  const torIp = tors[0]?.ip ?? '10.10.0.1';
  const torIp6 = tors[0]?.ip6 ?? 'fd00:10::1';
  return {
    topology, tor, clusterAsn, torAsn: tors[0]?.asn ?? clusterAsn, torIp, torIp6, fabricCidrLen: 24, ipv6, tors, racks, rackAs, allowOwnAs, hosts, workloads,
    podPool: '10.65.0.0/16', vmPool: '10.70.0.0/24', podPool6: 'fd00:65::/48', vmPool6: 'fd00:70::/64',
  };
}

/**
 * Whether `host` should learn routes originated by `origin`: always, except across racks that share an AS while
 * numAllowedLocalASNumbers is unset (the host finds its own AS in the path and drops the route, RFC 4271 9.1.2).
 */
export function learns(plan: Plan, host: Host, origin: Host): boolean {
  if (plan.racks === 0 || host.rack === origin.rack) return true;
  return !(plan.rackAs === 'shared' && plan.allowOwnAs < 1);
}

/** The rack's ToR (under --racks). */
export function torOf(plan: Plan, host: Host): Tor | undefined {
  return plan.tors.find((t) => t.rack !== undefined && t.rack === host.rack);
}

/** Calico's WorkloadEndpoint name: the parts joined by "-", each part's own "-" doubled. */
function wepName(...parts: string[]): string {
  return parts.map((p) => p.replace(/-/g, '--')).join('-');
}

/** The last octet (IPv4) or group (IPv6) of an address: the lab's blocks never cross one. */
function lastPart(ip: string): number {
  return ip.includes(':') ? parseInt(ip.split(':').at(-1) || '0', 16) : Number(ip.split('.')[3]);
}

/** The ToR's Node name and RFC 4456 cluster ID when skeind is the ToR (a route reflector). */
export const TOR_NODE = 'tor';
export const TOR_CLUSTER_ID = '224.0.0.1';

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

/** One host's skein.yaml: the file datastore (a path) or etcd (an endpoint URL). */
export function skeinYaml(host: { name: string }, datastore: { file: string } | { etcd: string }, socket: string): string {
  return [
    `nodeName: ${host.name}`,
    'file' in datastore
      ? `datastore: { type: file, path: ${JSON.stringify(datastore.file)}, debounce: 50ms }`
      : `datastore: { type: etcd, etcd: { endpoints: [${JSON.stringify(datastore.etcd)}] } }`,
    `control: { socket: ${JSON.stringify(socket)} }`,
    // every host namespace has its own loopback, so one port serves all
    'metrics: { listen: "127.0.0.1:9180" }',
    'log: { level: info }',
    '',
  ].join('\n');
}

/** The hosts a ToR serves: every host, or its rack's. */
function torHosts(plan: Plan, tor: Tor): Host[] {
  return plan.hosts.filter((h) => tor.rack === undefined || h.rack === tor.rack);
}

/** The other ToRs a rack ToR peers with over the spine segment (iBGP in the ToR layer's AS). */
function spinePeers(plan: Plan, tor: Tor): Tor[] {
  return plan.tors.filter((x) => x !== tor && x.spineIp !== undefined);
}

/**
 * FRR's configuration for a ToR: one eBGP neighbour per host it serves (no policy needed to pass routes on) and,
 * under --racks, the other ToRs as iBGP neighbours with next-hop-self (their hosts cannot reach this rack's
 * segment; RFC 4271 5.1.3 leaves the next hop unchanged on iBGP otherwise).
 */
export function frrConf(plan: Plan, tor: Tor = plan.tors[0]!): string {
  const lines = [
    'frr defaults datacenter',
    `hostname ${tor.name}`,
    'log stdout informational',
    'ip forwarding',
    'ipv6 forwarding',
    '!',
    `router bgp ${tor.asn}`,
    ` bgp router-id ${tor.ip}`,
    // RFC 8212 (eBGP needs a policy) is on by default in FRR; the lab passes every route on.
    ' no bgp ebgp-requires-policy',
    ' no bgp network import-check',
  ];
  const hosts = torHosts(plan, tor);
  const spine = spinePeers(plan, tor);
  for (const h of hosts) {
    lines.push(` neighbor ${h.ip} remote-as ${h.asn}`, ` neighbor ${h.ip} description ${h.name}`);
    if (plan.ipv6) lines.push(` neighbor ${h.ip6} remote-as ${h.asn}`, ` neighbor ${h.ip6} description ${h.name}`);
  }
  for (const x of spine) {
    lines.push(` neighbor ${x.spineIp!} remote-as ${x.asn}`, ` neighbor ${x.spineIp!} description ${x.name}`);
    if (plan.ipv6) lines.push(` neighbor ${x.spineIp6!} remote-as ${x.asn}`, ` neighbor ${x.spineIp6!} description ${x.name}`);
  }
  // One session per family, as the hosts (and Calico's BIRD) have them.
  lines.push(' address-family ipv4 unicast');
  for (const h of hosts) lines.push(`  neighbor ${h.ip} activate`);
  for (const x of spine) lines.push(`  neighbor ${x.spineIp!} activate`, `  neighbor ${x.spineIp!} next-hop-self`);
  lines.push(' exit-address-family');
  lines.push(' address-family ipv6 unicast');
  if (plan.ipv6) {
    for (const h of hosts) lines.push(`  neighbor ${h.ip6} activate`);
    for (const x of spine) lines.push(`  neighbor ${x.spineIp6!} activate`, `  neighbor ${x.spineIp6!} next-hop-self`);
  }
  lines.push(' exit-address-family', '!', '');
  return lines.join('\n');
}

/** A BIRD protocol name from a host or router name and family ("k8s-1" -> "k8s_1_v4"). */
function birdName(name: string, family: 4 | 6): string {
  return `${name.replace(/[^A-Za-z0-9]/g, '_')}_v${family}`;
}

/**
 * BIRD 2's configuration for a ToR, the same routing as the FRR ToR: eBGP to every host it serves (BIRD keeps a
 * host's own address as the next hop towards the other hosts on the segment, RFC 4271 5.1.3's third-party next
 * hop), iBGP with next hop self to the other rack ToRs, and a kernel protocol per family that writes the best
 * routes (several equal ones merged into one ECMP route) into the ToR's FIB, so traffic through the ToR flows.
 */
export function birdTorConf(plan: Plan, tor: Tor = plan.tors[0]!): string {
  const families: (4 | 6)[] = plan.ipv6 ? [4, 6] : [4];
  const out = [
    `# BIRD 2 as the lab's ToR ${tor.name} (AS ${tor.asn}), rendered by skein's lab.`,
    `router id ${tor.ip};`,
    'log stderr { info, remote, warning, error, auth, fatal, bug };',
    '',
    '# Interfaces (for next hops on the segments).',
    'protocol device { scan time 10; }',
    '',
  ];
  for (const f of families) {
    out.push(
      `# The FIB: every BGP route, several equal-cost ones as one multipath route.`,
      `protocol kernel kernel_v${f} {`,
      '  merge paths on;',
      `  ipv${f} { import none; export where source = RTS_BGP; };`,
      '}',
      '',
    );
  }
  for (const h of torHosts(plan, tor)) {
    for (const f of families) {
      out.push(
        `protocol bgp ${birdName(h.name, f)} {`,
        `  description "host ${h.name}";`,
        `  local ${f === 4 ? tor.ip : tor.ip6} as ${tor.asn};`,
        `  neighbor ${f === 4 ? h.ip : h.ip6} as ${h.asn};`,
        '  connect retry time 2;',
        '  error wait time 1, 10;',
        `  ipv${f} { import all; export all; };`,
        '}',
        '',
      );
    }
  }
  for (const x of spinePeers(plan, tor)) {
    for (const f of families) {
      out.push(
        `protocol bgp ${birdName(x.name, f)} {`,
        `  description "ToR ${x.name}";`,
        `  local ${f === 4 ? tor.spineIp! : tor.spineIp6!} as ${tor.asn};`,
        `  neighbor ${f === 4 ? x.spineIp! : x.spineIp6!} as ${x.asn};`,
        // The ToRs share the spine segment: resolve next hops on it directly, no IGP table needed.
        '  direct;',
        '  connect retry time 2;',
        '  error wait time 1, 10;',
        `  ipv${f} { import all; export all; next hop self; };`,
        '}',
        '',
      );
    }
  }
  return out.join('\n');
}

/**
 * A host of a mixed cluster that still runs Calico's BGP stack: the BIRD 2 configuration Calico's confd would
 * render for it (node-to-node mesh on, no encapsulation). What it does, in Calico's terms:
 * - a device protocol; a direct protocol for the host's own subnets, never the workload interfaces (cali*, tap*
 *   are Felix's routes, learned from the kernel instead) nor kube-ipvs*;
 * - a kernel protocol that learns the routes other programs (Felix) wrote, keeps its own on exit, joins graceful
 *   restart and merges equal paths; into the kernel it writes everything but the connected subnets;
 * - a blackhole static route per IPAM block affine to this host (the aggregate exists even with no pod in it,
 *   and unused addresses are dropped here);
 * - one iBGP mesh session per other node and family, passive towards a higher address (Calico's fix for a
 *   graceful-restart race), with recursive next hops, ADD-PATH, graceful restart and quick reconnects;
 * - import everything; export through calico_export_to_bgp_peers: an affine block itself but nothing inside it,
 *   then anything inside an IP pool (VM /32s, borrowed addresses), then nothing else.
 */
export function birdHostConf(plan: Plan, host: Host): string {
  const families: (4 | 6)[] = plan.ipv6 ? [4, 6] : [4];
  const blocks = (f: 4 | 6): string[] => {
    const b = f === 4 ? host.block : host.block6;
    return b === undefined ? [] : [b];
  };
  const pools = (f: 4 | 6): string[] => (f === 4 ? [plan.podPool, plan.vmPool] : [plan.podPool6, plan.vmPool6]);
  const addr = (h: Host, f: 4 | 6): string => (f === 4 ? h.ip : h.ip6);
  const out = [
    `# BIRD 2 on ${host.name} as Calico's confd configures a node (node-to-node mesh, AS ${plan.clusterAsn}), rendered by skein's lab.`,
    `router id ${host.ip};`,
    'log stderr { info, remote, warning, error, auth, fatal, bug };',
    '',
    'protocol device { scan time 2; }',
    '',
    '# Connected subnets, except the workload interfaces and kube-ipvs0 (which holds every cluster IP).',
    'protocol direct {',
    ...families.map((f) => `  ipv${f};`),
    '  interface -"cali*", -"tap*", -"kube-ipvs*", "*";',
    '}',
    '',
    '# Into the kernel: every route except the connected subnets, which the kernel has already.',
    'filter calico_kernel_programming {',
    '  if source = RTS_DEVICE then reject;',
    '  accept;',
    '}',
    '',
  ];
  for (const f of families) {
    const agg = blocks(f);
    out.push(
      `# Workload routes written by Felix are learned ("alien" routes); BIRD's own stay in place on exit.`,
      `protocol kernel kernel_v${f} {`,
      '  learn;',
      '  persist;',
      '  scan time 2;',
      '  graceful restart;',
      '  merge paths on;',
      `  ipv${f} { import all; export filter calico_kernel_programming; };`,
      '}',
      '',
      `# The affine IPAM blocks: announced as aggregates, unused addresses dropped here.`,
      `protocol static static_blocks_v${f} {`,
      `  ipv${f};`,
      ...agg.map((b) => `  route ${b} blackhole;`),
      '}',
      '',
      `function calico_aggr_v${f}() {`,
      ...agg.flatMap((b) => [`  if net = ${b} then accept;`, `  if net ~ ${b} then reject;`]),
      '}',
      '',
      `filter calico_export_to_bgp_peers_v${f} {`,
      `  calico_aggr_v${f}();`,
      ...pools(f).map((p) => `  if net ~ ${p} then accept;`),
      '  reject;',
      '}',
      '',
      `template bgp calico_mesh_v${f} {`,
      `  local as ${plan.clusterAsn};`,
      '  graceful restart;',
      '  connect delay time 2;',
      '  connect retry time 5;',
      '  error wait time 5, 30;',
      `  ipv${f} { gateway recursive; add paths on; import all; export filter calico_export_to_bgp_peers_v${f}; };`,
      '}',
      '',
    );
    for (const peer of plan.hosts) {
      if (peer.name === host.name) continue;
      const mine = addr(host, f);
      const theirs = addr(peer, f);
      out.push(
        `protocol bgp Mesh_${theirs.replace(/[.:]/g, '_')} from calico_mesh_v${f} {`,
        `  description "mesh peer ${peer.name}";`,
        `  neighbor ${theirs} as ${plan.clusterAsn};`,
        `  source address ${mine};`,
        // The node with the lower address dials; the other only listens.
        ...(compareAddr(theirs, mine) > 0 ? ['  passive on;'] : []),
        '}',
        '',
      );
    }
  }
  return out.join('\n');
}

/** Numeric order of two addresses of one family. */
function compareAddr(a: string, b: string): number {
  const words = (x: string): number[] => {
    if (!x.includes(':')) return x.split('.').map(Number);
    const [head, tail] = x.split('::') as [string, string | undefined];
    const h = head === '' ? [] : head.split(':');
    const t = tail === undefined || tail === '' ? [] : tail.split(':');
    return [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16));
  };
  const x = words(a);
  const y = words(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

/**
 * What every host should have learned: the other hosts' blocks and VM /32s (destinations as `ip -j` prints them),
 * with the next hop: the announcing host on a shared segment, the host's own ToR across racks. Routes a host
 * must drop (its own AS in the path, see learns()) are left out.
 */
export function expectedRemote(plan: Plan, host: string, family: 4 | 6 = 4): { dst: string; via: string }[] {
  const me = plan.hosts.find((x) => x.name === host)!;
  const via = (h: Host): string => {
    const hop = h.rack !== me.rack ? torOf(plan, me)! : h;
    return family === 4 ? hop.ip : hop.ip6;
  };
  const out: { dst: string; via: string }[] = [];
  for (const h of plan.hosts) {
    if (h.name === host || !learns(plan, me, h)) continue;
    const block = family === 4 ? h.block : h.block6;
    if (block !== undefined) out.push({ dst: block, via: via(h) });
  }
  for (const w of plan.workloads) {
    if (w.kind !== 'vm' || w.host === host) continue;
    const h = plan.hosts.find((x) => x.name === w.host)!;
    if (!learns(plan, me, h)) continue;
    out.push({ dst: family === 4 ? w.ip : w.ip6, via: via(h) });
  }
  return out;
}

/** Routes `host` must not have: the other racks' blocks and VMs when racks share an AS and the knob is unset. */
export function expectedDropped(plan: Plan, host: string, family: 4 | 6 = 4): string[] {
  const me = plan.hosts.find((x) => x.name === host)!;
  const out: string[] = [];
  for (const h of plan.hosts) {
    if (h.name === host || learns(plan, me, h)) continue;
    const block = family === 4 ? h.block : h.block6;
    if (block !== undefined) out.push(block);
    for (const w of plan.workloads) if (w.kind === 'vm' && w.host === h.name) out.push(family === 4 ? w.ip : w.ip6);
  }
  return out;
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
