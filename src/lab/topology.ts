// The lab's data centre as data: hosts, pods, VMs, racks (makePlan), each host's skein.yaml, and the routes each
// host must end up with. The Calico resources that describe the plan and the live commands' edits of them are in
// resources.ts; the ToRs' FRR or BIRD configuration and a mixed-cluster host's BIRD configuration in
// router-conf.ts. Pure: nothing here touches the system, so the shapes can be checked without root.
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
export function hex(s: string, n: number): string {
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
export function wepName(...parts: string[]): string {
  return parts.map((p) => p.replace(/-/g, '--')).join('-');
}

/** The last octet (IPv4) or group (IPv6) of an address: the lab's blocks never cross one. */
export function lastPart(ip: string): number {
  return ip.includes(':') ? parseInt(ip.split(':').at(-1) || '0', 16) : Number(ip.split('.')[3]);
}

/** The ToR's Node name and RFC 4456 cluster ID when skeind is the ToR (a route reflector). */
export const TOR_NODE = 'tor';

export const TOR_CLUSTER_ID = '224.0.0.1';

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
