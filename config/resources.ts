// Calico's resources, typed: what skein reads from each kind (docs/contract.md, "The
// datastore: Calico's own resources"), with the field names Calico uses (api/pkg/apis/projectcalico/v3,
// libcalico-go/lib/apis/internalapi, libcalico-go/lib/backend/model), values
// normalised (AS numbers as numbers, durations in ms, CIDRs canonical,
// selectors parsed) so both backends produce equal objects for equal data.
import {
  Checker, bool, int, isObj, oneOf, resourceName, str, stringMap, type Obj, type Path,
} from './check.js';
import { compileSelector, type Selector } from './selector.js';
import { closest } from './suggest.js';
import { bfdConfigurationSpec, type BFDConfigurationSpec } from './bfd.js';
import type { BGPPassword } from './secrets.js';
import { isSafeSecretComponent } from './secrets.js';
import {
  ValueError, cidrFamily, cidrToKeyPart, parseASNumber, parseCIDR, parseCommunity, parseDuration, parseIP,
  parseIPWithPrefix, describe,
} from './values.js';

export const KINDS = [
  'BGPConfiguration', 'Node', 'BGPPeer', 'IPPool', 'BGPFilter', 'WorkloadEndpoint', 'ClusterInformation',
  'BlockAffinity', 'IPAMBlock', 'BFDConfiguration', 'LiveMigration', 'FelixConfiguration',
] as const;
export type Kind = (typeof KINDS)[number];

export interface Metadata {
  name: string;
  namespace?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

interface Res<K extends Kind, S> {
  kind: K;
  metadata: Metadata;
  spec: S;
}

export type LogSeverity = 'Trace' | 'Debug' | 'Info' | 'Warning' | 'Error' | 'Fatal';

export interface BGPConfigurationSpec {
  logSeverityScreen?: LogSeverity;
  nodeToNodeMeshEnabled?: boolean;
  asNumber?: number;
  listenPort?: number;
  bindMode?: 'None' | 'NodeIP';
  serviceClusterIPs: { cidr: string }[];
  serviceExternalIPs: { cidr: string }[];
  serviceLoadBalancerIPs: { cidr: string }[];
  serviceLoadBalancerAggregation?: 'Enabled' | 'Disabled';
  communities: { name: string; value: string }[];
  /** communities are literal values or names from `communities` (resolved here to values) */
  prefixAdvertisements: { cidr: string; communities: string[] }[];
  nodeMeshPassword?: BGPPassword;
  /** milliseconds */
  nodeMeshMaxRestartTime?: number;
  ignoredInterfaces: string[];
  localWorkloadPeeringIPV4?: string;
  localWorkloadPeeringIPV6?: string;
  ipv4NormalRoutePriority?: number;
  ipv6NormalRoutePriority?: number;
  /** who programs cluster routes: Enabled | Disabled | EnabledIPIPOnly | EnabledNoEncapOnly (kept as written: confd
   * treats an unknown value as the default) */
  programClusterRoutes?: string;
}
export type BGPConfiguration = Res<'BGPConfiguration', BGPConfigurationSpec>;

export interface NodeBGPSpec {
  /** "address/prefixlen": the node's IPv4 BGP address and its subnet */
  ipv4Address?: string;
  ipv6Address?: string;
  asNumber?: number;
  /** a dotted-quad cluster ID (RFC 4456 §8): the node is a route reflector */
  routeReflectorClusterID?: string;
  ipv4IPIPTunnelAddr?: string;
}
export interface NodeSpec {
  bgp?: NodeBGPSpec;
  orchRefs: { orchestrator: string; nodeName?: string }[];
  addresses: { address: string; type?: string }[];
  wireguard?: { interfaceIPv4Address?: string; interfaceIPv6Address?: string };
}
export type CalicoNode = Res<'Node', NodeSpec>;

export interface PeerAddress {
  address: string;
  family: 4 | 6;
  port?: number;
}

export interface BGPPeerSpec {
  node?: string;
  nodeSelector?: Selector;
  peerIP?: PeerAddress;
  peerSelector?: Selector;
  asNumber?: number;
  localASNumber?: number;
  keepOriginalNextHop?: boolean;
  nextHopMode?: 'Auto' | 'Self' | 'Keep';
  password?: BGPPassword;
  sourceAddress?: 'UseNodeIP' | 'None';
  /** milliseconds */
  maxRestartTime?: number;
  /** milliseconds */
  keepaliveTime?: number;
  numAllowedLocalASNumbers?: number;
  ttlSecurity?: number;
  filters: string[];
  localWorkloadSelector?: Selector;
  reachableBy?: string;
  reversePeering?: 'Auto' | 'Manual';
}
export type BGPPeer = Res<'BGPPeer', BGPPeerSpec>;

export type EncapMode = 'Never' | 'Always' | 'CrossSubnet';
export interface IPPoolSpec {
  cidr: string;
  blockSize: number;
  ipipMode: EncapMode;
  vxlanMode: EncapMode;
  natOutgoing: boolean;
  disabled: boolean;
  disableBGPExport: boolean;
  nodeSelector: Selector;
  allowedUses: ('Workload' | 'Tunnel' | 'LoadBalancer')[];
  assignmentMode?: 'Automatic' | 'Manual';
}
export type IPPool = Res<'IPPool', IPPoolSpec>;

export type FilterOperation =
  | { addCommunity: { value: string } }
  | { prependASPath: { prefix: number[] } }
  | { setPriority: { value: number } };

export interface BGPFilterRule {
  action: 'Accept' | 'Reject';
  cidr?: string;
  matchOperator?: 'Equal' | 'NotEqual' | 'In' | 'NotIn';
  prefixLength?: { min?: number; max?: number };
  source?: 'RemotePeers';
  interface?: string;
  peerType?: 'eBGP' | 'iBGP';
  communities?: { values: string[] };
  asPathPrefix?: number[];
  priority?: number;
  operations: FilterOperation[];
}
export interface BGPFilterSpec {
  exportV4: BGPFilterRule[];
  importV4: BGPFilterRule[];
  exportV6: BGPFilterRule[];
  importV6: BGPFilterRule[];
}
export type BGPFilter = Res<'BGPFilter', BGPFilterSpec>;

export interface WorkloadEndpointSpec {
  orchestrator?: string;
  workload?: string;
  node: string;
  containerID?: string;
  pod?: string;
  endpoint?: string;
  interfaceName: string;
  mac?: string;
  /** canonical "address/len", one per address of the workload */
  ipNetworks: string[];
  ipNATs: { internalIP: string; externalIP: string }[];
  ipv4Gateway?: string;
  ipv6Gateway?: string;
  /** OpenStack allowed-address pairs */
  allowedIps: string[];
  profiles: string[];
}
export type WorkloadEndpoint = Res<'WorkloadEndpoint', WorkloadEndpointSpec>;

export interface ClusterInformationSpec {
  clusterGUID?: string;
  clusterType?: string;
  calicoVersion?: string;
  datastoreReady?: boolean;
}
export type ClusterInformation = Res<'ClusterInformation', ClusterInformationSpec>;

export type AffinityState = 'confirmed' | 'pending' | 'pendingDeletion';
export interface BlockAffinitySpec {
  node: string;
  cidr: string;
  /** an empty etcd value (very old data) reads as confirmed */
  state: AffinityState;
  deleted: boolean;
}
export type BlockAffinity = Res<'BlockAffinity', BlockAffinitySpec>;

export interface AllocationAttribute {
  handleId?: string;
  secondary: Record<string, string>;
}
export interface IPAMBlockSpec {
  cidr: string;
  /** "host:<node>" or null */
  affinity: string | null;
  /** one slot per address of the block: null = free, else an index into attributes */
  allocations: (number | null)[];
  unallocated: number[];
  attributes: AllocationAttribute[];
  sequenceNumber: number;
  deleted: boolean;
}
export type IPAMBlock = Res<'IPAMBlock', IPAMBlockSpec>;

/**
 * Names one workload (endpointID absent) or one of its endpoints, as Felix matches them against its
 * WorkloadEndpoint keys (felix/calc/live_migration_calculator.go): hostname is the node (ignored for orchestrator
 * "k8s", where namespace/pod is unique already), workloadID is "<namespace>/<workload or pod>".
 */
export interface LiveMigrationRef {
  hostname: string;
  orchestratorID: string;
  workloadID: string;
  endpointID: string;
}

/**
 * A live migration in progress (libcalico-go/lib/apis/internalapi/livemigration.go; etcd key
 * /calico/resources/v3/projectcalico.org/livemigrations/<namespace>/<name>). networking-calico writes one per
 * migrating Neutron port, named after the destination WorkloadEndpoint, with both sides given as workloadEndpoint
 * (networking-calico endpoints.py live_migration_spec); KubeVirt clusters give a workload source and a selector
 * target instead. Exactly one field is set on each side; a side may be absent early in a migration.
 */
export interface LiveMigrationSpec {
  source?: { workload?: LiveMigrationRef; workloadEndpoint?: LiveMigrationRef };
  target?: { selector?: Selector; workloadEndpoint?: LiveMigrationRef };
}
export type LiveMigration = Res<'LiveMigration', LiveMigrationSpec>;

/**
 * The few FelixConfiguration fields that decide how a live migration is routed (felix/config/config_params.go):
 * the kernel metric of a migrated workload's routes while the move settles, and how long it stays elevated after
 * the migration completes. Every other field is Felix's and not read.
 */
export interface FelixConfigurationSpec {
  ipv4ElevatedRoutePriority?: number;
  ipv6ElevatedRoutePriority?: number;
  /** milliseconds */
  liveMigrationRouteConvergenceTime?: number;
}
export type FelixConfiguration = Res<'FelixConfiguration', FelixConfigurationSpec>;

export type Resource =
  | BGPConfiguration | CalicoNode | BGPPeer | IPPool | BGPFilter | WorkloadEndpoint | ClusterInformation
  | BlockAffinity | IPAMBlock | BFDConfiguration | LiveMigration | FelixConfiguration;
/** Calico Enterprise's BFD settings (config/bfd.ts) */
export type BFDConfiguration = Res<'BFDConfiguration', BFDConfigurationSpec>;

export type ResourceOf<K extends Kind> = Extract<Resource, { kind: K }>;

/** Kinds whose metadata.namespace is part of their identity. */
export const NAMESPACED: ReadonlySet<Kind> = new Set<Kind>(['WorkloadEndpoint', 'LiveMigration']);

/**
 * The identity of a resource inside its kind: the name; "namespace/name" for
 * WorkloadEndpoints; "node/cidr" for block affinities and the CIDR for IPAM
 * blocks (their etcd keys carry those, not a name).
 */
export function resourceId(r: Resource): string {
  switch (r.kind) {
    case 'WorkloadEndpoint':
    case 'LiveMigration': return `${r.metadata.namespace ?? ''}/${r.metadata.name}`;
    case 'BlockAffinity': return `${r.spec.node}/${r.spec.cidr}`;
    case 'IPAMBlock': return r.spec.cidr;
    default: return r.metadata.name;
  }
}

/** Calico's name for an IPAM object: the CIDR with "." ":" "/" as "-" (and the node in front for affinities). */
export function ipamName(cidr: string, node?: string): string {
  const c = cidr.replace(/[.:/]/g, '-');
  return node === undefined ? c : `${node}-${c}`;
}

// ---------------------------------------------------------------------------
// Validation

/** ObjectMeta fields Kubernetes and Calico may write; accepted and not used. */
const META_FIELDS = [
  'name', 'namespace', 'labels', 'annotations', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'generateName', 'selfLink', 'ownerReferences', 'finalizers',
  'managedFields',
];

export interface Validated {
  resource?: Resource;
  checker: Checker;
  /** kind and name as far as they could be read, for the report */
  kind?: string;
  name?: string;
}

export const API_VERSION = 'projectcalico.org/v3';

const selector = (v: unknown): Selector => compileSelector(str(v));
const ip = (v: unknown): string => parseIP(v).address;
const asn = parseASNumber;

function password(c: Checker, v: unknown, path: Path): BGPPassword | undefined {
  const o = c.object(v, path, ['secretKeyRef']);
  const refPath = [...path, 'secretKeyRef'];
  const ref = c.object(o.secretKeyRef, refPath, ['name', 'key', 'optional'], { required: true });
  const name = c.req(ref, 'name', refPath, str);
  const key = c.req(ref, 'key', refPath, str);
  if (name !== undefined && !isSafeSecretComponent(name)) c.error([...refPath, 'name'], `"${name}" must be a plain name (letters, digits, "-", "_", ".")`);
  if (key !== undefined && !isSafeSecretComponent(key)) c.error([...refPath, 'key'], `"${key}" must be a plain name (letters, digits, "-", "_", ".")`);
  if (name === undefined || key === undefined) return undefined;
  return { secretKeyRef: { name, key } };
}

function cidrList(c: Checker, o: Obj, key: string, path: Path): { cidr: string }[] {
  return c.list(o, key, path, (v, p) => {
    const x = c.object(v, p, ['cidr']);
    // The CRD leaves cidr optional and confd skips an entry without one (confd/pkg/backends/calico/client.go
    // getServiceClusterIPs and its siblings): skip it too, and keep the rest of the resource.
    if (x.cidr === undefined || x.cidr === null || x.cidr === '') return undefined;
    const cidr = c.req(x, 'cidr', p, parseCIDR);
    return cidr === undefined ? undefined : { cidr };
  });
}

function set<T extends object, K extends keyof T>(o: T, k: K, v: T[K] | undefined): void {
  if (v !== undefined) o[k] = v;
}

function bgpConfigurationSpec(c: Checker, s: Obj, path: Path, name: string): BGPConfigurationSpec {
  c.object(s, path, [
    'logSeverityScreen', 'nodeToNodeMeshEnabled', 'asNumber', 'listenPort', 'bindMode', 'serviceClusterIPs',
    'serviceExternalIPs', 'serviceLoadBalancerIPs', 'serviceLoadBalancerAggregation', 'communities',
    'prefixAdvertisements', 'nodeMeshPassword', 'nodeMeshMaxRestartTime', 'ignoredInterfaces',
    'localWorkloadPeeringIPV4', 'localWorkloadPeeringIPV6', 'programClusterRoutes', 'ipv4NormalRoutePriority',
    'ipv6NormalRoutePriority', 'extensions',
  ]);
  const communities = c.list(s, 'communities', path, (v, p) => {
    const x = c.object(v, p, ['name', 'value']);
    const n = c.req(x, 'name', p, str);
    const value = c.req(x, 'value', p, parseCommunity);
    return n === undefined || value === undefined ? undefined : { name: n, value };
  });
  if (communities.length > 500) c.error([...path, 'communities'], `at most 500 communities, got ${communities.length}`);
  const byName = new Map(communities.map((x) => [x.name, x.value]));
  const out: BGPConfigurationSpec = {
    serviceClusterIPs: cidrList(c, s, 'serviceClusterIPs', path),
    serviceExternalIPs: cidrList(c, s, 'serviceExternalIPs', path),
    serviceLoadBalancerIPs: cidrList(c, s, 'serviceLoadBalancerIPs', path),
    communities,
    prefixAdvertisements: c.list(s, 'prefixAdvertisements', path, (v, p) => {
      const x = c.object(v, p, ['cidr', 'communities']);
      const cidr = c.req(x, 'cidr', p, parseCIDR);
      const comms = c.list(x, 'communities', p, (cv, cp) => c.value(cv, cp, (y) => {
        const text = str(y);
        const named = byName.get(text);
        if (named !== undefined) return named;
        try {
          return parseCommunity(text);
        } catch {
          throw new ValueError(`"${text}" is neither a community value ("aa:nn" or "aa:nn:mm") nor a name defined in spec.communities`);
        }
      }));
      return cidr === undefined ? undefined : { cidr, communities: comms };
    }),
    ignoredInterfaces: c.list(s, 'ignoredInterfaces', path, (v, p) => c.value(v, p, str)),
  };
  set(out, 'logSeverityScreen', c.opt(s, 'logSeverityScreen', path, (v) => {
    const text = str(v);
    const levels: LogSeverity[] = ['Trace', 'Debug', 'Info', 'Warning', 'Error', 'Fatal'];
    const hit = levels.find((l) => l.toLowerCase() === text.toLowerCase());
    if (hit === undefined) return oneOf(levels)(text);
    return hit;
  }));
  set(out, 'nodeToNodeMeshEnabled', c.opt(s, 'nodeToNodeMeshEnabled', path, bool));
  if (s.programClusterRoutes !== '') set(out, 'programClusterRoutes', c.opt(s, 'programClusterRoutes', path, str));
  set(out, 'asNumber', c.opt(s, 'asNumber', path, asn));
  set(out, 'listenPort', c.opt(s, 'listenPort', path, int(1, 65535)));
  set(out, 'bindMode', c.opt(s, 'bindMode', path, oneOf(['None', 'NodeIP'] as const)));
  set(out, 'serviceLoadBalancerAggregation', c.opt(s, 'serviceLoadBalancerAggregation', path, oneOf(['Enabled', 'Disabled'] as const)));
  if (s.nodeMeshPassword !== undefined && s.nodeMeshPassword !== null) {
    set(out, 'nodeMeshPassword', password(c, s.nodeMeshPassword, [...path, 'nodeMeshPassword']));
  }
  set(out, 'nodeMeshMaxRestartTime', c.opt(s, 'nodeMeshMaxRestartTime', path, parseDuration));
  set(out, 'localWorkloadPeeringIPV4', c.opt(s, 'localWorkloadPeeringIPV4', path, (v) => {
    const a = parseIP(v);
    if (a.family !== 4) throw new ValueError(`expected an IPv4 address, got "${String(v)}"`);
    return a.address;
  }));
  set(out, 'localWorkloadPeeringIPV6', c.opt(s, 'localWorkloadPeeringIPV6', path, (v) => {
    const a = parseIP(v);
    if (a.family !== 6) throw new ValueError(`expected an IPv6 address, got "${String(v)}"`);
    return a.address;
  }));
  set(out, 'ipv4NormalRoutePriority', c.opt(s, 'ipv4NormalRoutePriority', path, int(1, 2147483646)));
  set(out, 'ipv6NormalRoutePriority', c.opt(s, 'ipv6NormalRoutePriority', path, int(1, 2147483646)));
  if (name.startsWith('node.')) {
    // Calico honours only these on a per-node object (calico-and-anchors §2.2); the rest is a likely mistake.
    const honoured = new Set(['logSeverityScreen', 'listenPort', 'prefixAdvertisements']);
    for (const k of Object.keys(s)) {
      if (!honoured.has(k)) c.warn([...path, k], `is ignored on a per-node BGPConfiguration (only logSeverityScreen, listenPort and prefixAdvertisements apply); set it on "default"`);
    }
  }
  if (out.nodeMeshPassword !== undefined && name !== 'default') {
    c.warn([...path, 'nodeMeshPassword'], 'is only honoured on the "default" BGPConfiguration');
  }
  return out;
}

function nodeSpec(c: Checker, s: Obj, path: Path): NodeSpec {
  c.object(s, path, [
    'bgp', 'orchRefs', 'addresses', 'interfaces', 'wireguard', 'ipv4VXLANTunnelAddr', 'ipv6VXLANTunnelAddr',
    'vxlanTunnelMACAddr', 'vxlanTunnelMACAddrV6', 'bgpPeers',
  ]);
  const out: NodeSpec = {
    orchRefs: c.list(s, 'orchRefs', path, (v, p) => {
      const x = c.object(v, p, ['orchestrator', 'nodeName']);
      const orchestrator = c.req(x, 'orchestrator', p, str);
      if (orchestrator === undefined) return undefined;
      const r: NodeSpec['orchRefs'][number] = { orchestrator };
      set(r, 'nodeName', c.opt(x, 'nodeName', p, str));
      return r;
    }),
    addresses: c.list(s, 'addresses', path, (v, p) => {
      const x = c.object(v, p, ['address', 'type']);
      const address = c.req(x, 'address', p, str);
      if (address === undefined) return undefined;
      const r: NodeSpec['addresses'][number] = { address };
      set(r, 'type', c.opt(x, 'type', p, str));
      return r;
    }),
  };
  if (s.bgp !== undefined && s.bgp !== null) {
    const bp = [...path, 'bgp'];
    const b = c.object(s.bgp, bp, ['ipv4Address', 'ipv6Address', 'asNumber', 'routeReflectorClusterID', 'ipv4IPIPTunnelAddr']);
    const bgp: NodeBGPSpec = {};
    const family = (want: 4 | 6) => (v: unknown): string => {
      if (v === '') throw new ValueError('is empty');
      // calico-node writes "address/len"; a bare address (hand-written) is read as a host prefix.
      const bare = typeof v === 'string' && !v.includes('/');
      const p = parseIPWithPrefix(bare ? `${v}/${want === 4 ? 32 : 128}` : v);
      if (p.family !== want) throw new ValueError(`expected an IPv${want} address with prefix length, got "${String(v)}"`);
      return `${p.address}/${p.length}`;
    };
    // An empty string means "no address of this family" in Calico's data.
    if (b.ipv4Address !== '') set(bgp, 'ipv4Address', c.opt(b, 'ipv4Address', bp, family(4)));
    if (b.ipv6Address !== '') set(bgp, 'ipv6Address', c.opt(b, 'ipv6Address', bp, family(6)));
    set(bgp, 'asNumber', c.opt(b, 'asNumber', bp, asn));
    if (b.routeReflectorClusterID !== '') {
      set(bgp, 'routeReflectorClusterID', c.opt(b, 'routeReflectorClusterID', bp, (v) => {
        const a = parseIP(v);
        if (a.family !== 4) throw new ValueError(`a cluster ID is a 4-octet value written as an IPv4 address (RFC 4456 §8), got "${String(v)}"`);
        return a.address;
      }));
    }
    if (b.ipv4IPIPTunnelAddr !== '') set(bgp, 'ipv4IPIPTunnelAddr', c.opt(b, 'ipv4IPIPTunnelAddr', bp, ip));
    out.bgp = bgp;
  }
  if (s.wireguard !== undefined && s.wireguard !== null) {
    const wp = [...path, 'wireguard'];
    const w = c.object(s.wireguard, wp, ['interfaceIPv4Address', 'interfaceIPv6Address']);
    const wg: NonNullable<NodeSpec['wireguard']> = {};
    if (w.interfaceIPv4Address !== '') set(wg, 'interfaceIPv4Address', c.opt(w, 'interfaceIPv4Address', wp, ip));
    if (w.interfaceIPv6Address !== '') set(wg, 'interfaceIPv6Address', c.opt(w, 'interfaceIPv6Address', wp, ip));
    out.wireguard = wg;
  }
  return out;
}

/** "IP", "IPv4:port" or "[IPv6]:port" (BGPPeer.peerIP). */
export function parsePeerIP(v: unknown): PeerAddress {
  const s = str(v).trim();
  const bracket = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  const v4port = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(s);
  const m = bracket ?? v4port;
  const addr = m ? (m[1] as string) : s;
  const a = parseIP(addr);
  if (bracket && a.family !== 6) throw new ValueError(`"[addr]:port" is for IPv6; write IPv4 as "addr:port", got "${s}"`);
  const out: PeerAddress = { address: a.address, family: a.family };
  if (m) out.port = int(1, 65535)(Number(m[2]));
  return out;
}

function bgpPeerSpec(c: Checker, s: Obj, path: Path): BGPPeerSpec {
  c.object(s, path, [
    'node', 'nodeSelector', 'peerIP', 'peerSelector', 'asNumber', 'localASNumber', 'keepOriginalNextHop',
    'nextHopMode', 'password', 'sourceAddress', 'maxRestartTime', 'keepaliveTime', 'numAllowedLocalASNumbers',
    'ttlSecurity', 'filters', 'localWorkloadSelector', 'reachableBy', 'reversePeering', 'failureDetectionMode',
    'restartMode', 'birdGatewayMode',
  ]);
  const out: BGPPeerSpec = { filters: c.list(s, 'filters', path, (v, p) => c.value(v, p, resourceName)) };
  const nonEmpty = (k: string): boolean => s[k] !== undefined && s[k] !== null && s[k] !== '';
  if (nonEmpty('node')) set(out, 'node', c.opt(s, 'node', path, str));
  if (nonEmpty('nodeSelector')) set(out, 'nodeSelector', c.opt(s, 'nodeSelector', path, selector));
  if (nonEmpty('peerIP')) set(out, 'peerIP', c.opt(s, 'peerIP', path, parsePeerIP));
  if (nonEmpty('peerSelector')) set(out, 'peerSelector', c.opt(s, 'peerSelector', path, selector));
  if (nonEmpty('localWorkloadSelector')) set(out, 'localWorkloadSelector', c.opt(s, 'localWorkloadSelector', path, selector));
  set(out, 'asNumber', c.opt(s, 'asNumber', path, asn));
  set(out, 'localASNumber', c.opt(s, 'localASNumber', path, asn));
  set(out, 'keepOriginalNextHop', c.opt(s, 'keepOriginalNextHop', path, bool));
  set(out, 'nextHopMode', c.opt(s, 'nextHopMode', path, oneOf(['Auto', 'Self', 'Keep'] as const)));
  if (s.password !== undefined && s.password !== null) set(out, 'password', password(c, s.password, [...path, 'password']));
  set(out, 'sourceAddress', c.opt(s, 'sourceAddress', path, oneOf(['UseNodeIP', 'None'] as const)));
  set(out, 'maxRestartTime', c.opt(s, 'maxRestartTime', path, parseDuration));
  set(out, 'keepaliveTime', c.opt(s, 'keepaliveTime', path, parseDuration));
  // An int32 in Calico's API (api/pkg/apis/projectcalico/v3/bgppeer.go) with no upper bound; confd hands it to BIRD's
  // `allow local as N` as it is.
  set(out, 'numAllowedLocalASNumbers', c.opt(s, 'numAllowedLocalASNumbers', path, int(0, 2 ** 31 - 1)));
  // GTSM (RFC 5082): the number of hops the peer may be away, 1-255.
  set(out, 'ttlSecurity', c.opt(s, 'ttlSecurity', path, int(0, 255)));
  set(out, 'reachableBy', c.opt(s, 'reachableBy', path, ip));
  set(out, 'reversePeering', c.opt(s, 'reversePeering', path, oneOf(['Auto', 'Manual'] as const)));
  // Calico's cross-field rules (CEL validations on the CRD).
  const exclusive = (a: string, b: string): void => {
    if (nonEmpty(a) && nonEmpty(b)) c.error([...path, b], `cannot be set together with ${a}`);
  };
  exclusive('node', 'nodeSelector');
  exclusive('peerIP', 'peerSelector');
  exclusive('peerSelector', 'asNumber');
  exclusive('peerIP', 'localWorkloadSelector');
  exclusive('peerSelector', 'localWorkloadSelector');
  exclusive('keepOriginalNextHop', 'nextHopMode');
  if (nonEmpty('localWorkloadSelector') && !nonEmpty('asNumber')) c.error([...path, 'asNumber'], 'is required with localWorkloadSelector');
  if (nonEmpty('reachableBy') && !nonEmpty('peerIP')) c.error([...path, 'reachableBy'], 'requires peerIP');
  // peerIP without asNumber is valid in Calico's API (asNumber is optional, api/pkg/apis/projectcalico/v3/bgppeer.go):
  // the peering uses the cluster's AS (src/controller/peers.ts), as for a mesh peer without one.
  if (!nonEmpty('peerIP') && !nonEmpty('peerSelector') && !nonEmpty('localWorkloadSelector')) {
    c.error([...path, 'peerIP'], 'one of peerIP, peerSelector or localWorkloadSelector is required');
  }
  if (out.reachableBy !== undefined && out.peerIP !== undefined && cidrFamily(out.reachableBy) !== out.peerIP.family) {
    c.error([...path, 'reachableBy'], 'must be of the same address family as peerIP');
  }
  return out;
}

function ipPoolSpec(c: Checker, s: Obj, path: Path): IPPoolSpec {
  c.object(s, path, [
    'cidr', 'blockSize', 'ipipMode', 'vxlanMode', 'natOutgoing', 'disabled', 'disableBGPExport', 'nodeSelector',
    'namespaceSelector', 'allowedUses', 'assignmentMode', 'ipip', 'nat-outgoing', 'awsSubnetID',
  ]);
  const cidr = c.req(s, 'cidr', path, parseCIDR) ?? '0.0.0.0/0';
  const fam = cidrFamily(cidr);
  const mode = oneOf(['Never', 'Always', 'CrossSubnet'] as const);
  const out: IPPoolSpec = {
    cidr,
    blockSize: c.opt(s, 'blockSize', path, fam === 4 ? int(20, 32) : int(116, 128)) ?? (fam === 4 ? 26 : 122),
    ipipMode: c.opt(s, 'ipipMode', path, mode) ?? 'Never',
    vxlanMode: c.opt(s, 'vxlanMode', path, mode) ?? 'Never',
    natOutgoing: c.opt(s, 'natOutgoing', path, bool) ?? false,
    disabled: c.opt(s, 'disabled', path, bool) ?? false,
    disableBGPExport: c.opt(s, 'disableBGPExport', path, bool) ?? false,
    nodeSelector: (s.nodeSelector === '' ? undefined : c.opt(s, 'nodeSelector', path, selector)) ?? compileSelector('all()'),
    allowedUses: c.list(s, 'allowedUses', path, (v, p) => c.value(v, p, oneOf(['Workload', 'Tunnel', 'LoadBalancer'] as const))),
  };
  if (out.allowedUses.length === 0) out.allowedUses = ['Workload', 'Tunnel'];
  set(out, 'assignmentMode', c.opt(s, 'assignmentMode', path, oneOf(['Automatic', 'Manual'] as const)));
  const prefixLen = Number(cidr.split('/')[1]);
  if (prefixLen > out.blockSize) c.error([...path, 'blockSize'], `must not be smaller than the pool (pool is /${prefixLen}, blockSize ${out.blockSize})`);
  if (fam === 6 && out.ipipMode !== 'Never') c.error([...path, 'ipipMode'], 'IPIP is IPv4 only; an IPv6 pool must use Never');
  if (out.ipipMode !== 'Never' && out.vxlanMode !== 'Never') c.error([...path, 'vxlanMode'], 'cannot be enabled together with ipipMode');
  return out;
}

function filterRule(c: Checker, v: unknown, path: Path, family: 4 | 6, exportRule: boolean): BGPFilterRule | undefined {
  const x = c.object(v, path, [
    'action', 'cidr', 'matchOperator', 'prefixLength', 'source', 'interface', 'peerType', 'communities',
    'asPathPrefix', 'priority', 'operations',
  ]);
  const action = c.req(x, 'action', path, oneOf(['Accept', 'Reject'] as const));
  const rule: BGPFilterRule = { action: action ?? 'Reject', operations: [] };
  set(rule, 'cidr', c.opt(x, 'cidr', path, (y) => {
    const cidr = parseCIDR(y);
    if (cidrFamily(cidr) !== family) throw new ValueError(`"${cidr}" is not an IPv${family} CIDR (this is a V${family} rule list)`);
    return cidr;
  }));
  set(rule, 'matchOperator', c.opt(x, 'matchOperator', path, oneOf(['Equal', 'NotEqual', 'In', 'NotIn'] as const)));
  if ((x.cidr === undefined) !== (x.matchOperator === undefined)) c.error([...path, x.cidr === undefined ? 'cidr' : 'matchOperator'], 'cidr and matchOperator must be set together');
  if (x.prefixLength !== undefined && x.prefixLength !== null) {
    const pp = [...path, 'prefixLength'];
    const pl = c.object(x.prefixLength, pp, ['min', 'max']);
    const max = family === 4 ? 32 : 128;
    const r: NonNullable<BGPFilterRule['prefixLength']> = {};
    set(r, 'min', c.opt(pl, 'min', pp, int(0, max)));
    set(r, 'max', c.opt(pl, 'max', pp, int(0, max)));
    if (r.min !== undefined && r.max !== undefined && r.min > r.max) c.error([...pp, 'min'], `min ${r.min} is larger than max ${r.max}`);
    if (rule.cidr === undefined) c.error(pp, 'requires cidr');
    rule.prefixLength = r;
  }
  set(rule, 'source', c.opt(x, 'source', path, oneOf(['RemotePeers'] as const)));
  if (rule.source !== undefined && !exportRule) c.error([...path, 'source'], 'is only valid in export rules');
  set(rule, 'interface', c.opt(x, 'interface', path, (y) => {
    const t = str(y);
    if (t.length > 15) throw new ValueError(`interface pattern "${t}" is longer than 15 characters (IFNAMSIZ)`);
    return t;
  }));
  set(rule, 'peerType', c.opt(x, 'peerType', path, oneOf(['eBGP', 'iBGP'] as const)));
  if (x.communities !== undefined && x.communities !== null) {
    const cp = [...path, 'communities'];
    const co = c.object(x.communities, cp, ['values']);
    const values = c.list(co, 'values', cp, (y, p) => c.value(y, p, parseCommunity));
    if (values.length !== 1) c.error([...cp, 'values'], `must hold exactly one community, got ${values.length}`);
    rule.communities = { values };
  }
  if (x.asPathPrefix !== undefined && x.asPathPrefix !== null) {
    rule.asPathPrefix = c.list(x, 'asPathPrefix', path, (y, p) => c.value(y, p, asn));
  }
  set(rule, 'priority', c.opt(x, 'priority', path, int(0, 2147483646)));
  rule.operations = c.list(x, 'operations', path, (y, p): FilterOperation | undefined => {
    const o = c.object(y, p, ['addCommunity', 'prependASPath', 'setPriority']);
    const keys = Object.keys(o).filter((k) => ['addCommunity', 'prependASPath', 'setPriority'].includes(k));
    if (keys.length !== 1) { c.error(p, 'each operation sets exactly one of addCommunity, prependASPath, setPriority'); return undefined; }
    if (o.addCommunity !== undefined) {
      const ap = [...p, 'addCommunity'];
      const value = c.req(c.object(o.addCommunity, ap, ['value']), 'value', ap, parseCommunity);
      return value === undefined ? undefined : { addCommunity: { value } };
    }
    if (o.prependASPath !== undefined) {
      const pp = [...p, 'prependASPath'];
      const prefix = c.list(c.object(o.prependASPath, pp, ['prefix']), 'prefix', pp, (z, zp) => c.value(z, zp, asn));
      if (prefix.length === 0) c.error([...pp, 'prefix'], 'must list at least one AS number');
      return { prependASPath: { prefix } };
    }
    const sp = [...p, 'setPriority'];
    const value = c.req(c.object(o.setPriority, sp, ['value']), 'value', sp, int(1, 2147483646));
    return value === undefined ? undefined : { setPriority: { value } };
  });
  if (rule.operations.length > 10) c.error([...path, 'operations'], `at most 10 operations, got ${rule.operations.length}`);
  if (rule.operations.length > 0 && rule.action !== 'Accept') c.error([...path, 'operations'], 'operations are only allowed with action Accept');
  return action === undefined ? undefined : rule;
}

function bgpFilterSpec(c: Checker, s: Obj, path: Path): BGPFilterSpec {
  c.object(s, path, ['exportV4', 'importV4', 'exportV6', 'importV6']);
  return {
    exportV4: c.list(s, 'exportV4', path, (v, p) => filterRule(c, v, p, 4, true)),
    importV4: c.list(s, 'importV4', path, (v, p) => filterRule(c, v, p, 4, false)),
    exportV6: c.list(s, 'exportV6', path, (v, p) => filterRule(c, v, p, 6, true)),
    importV6: c.list(s, 'importV6', path, (v, p) => filterRule(c, v, p, 6, false)),
  };
}

/** networking-calico / libcalico-go escape "-" inside each name component by doubling it. */
export const escapeNamePart = (s: string): string => s.replace(/-/g, '--');

/** The WorkloadEndpoint name Calico derives from its identifiers. */
export function workloadEndpointName(node: string, orchestrator: string, workload: string, endpoint: string): string {
  return [node, orchestrator, workload, endpoint].map(escapeNamePart).join('-');
}

function workloadEndpointSpec(c: Checker, s: Obj, path: Path, meta: Metadata): WorkloadEndpointSpec {
  c.object(s, path, [
    'orchestrator', 'workload', 'node', 'containerID', 'pod', 'endpoint', 'serviceAccountName', 'ipNetworks',
    'ipNATs', 'ipv4Gateway', 'ipv6Gateway', 'profiles', 'interfaceName', 'mac', 'ports', 'allowedIps',
    'allowSpoofedSourcePrefixes', 'qosControls', 'qosPolicyExemptions', 'awsElasticIPs', 'hostNetwork',
    'attachmentID', 'externalNetworkNames', 'egressGateway',
  ]);
  const out: WorkloadEndpointSpec = {
    node: c.req(s, 'node', path, str) ?? '',
    interfaceName: c.req(s, 'interfaceName', path, (v) => {
      const t = str(v);
      // Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
      if (t.length > 15 || /[\s/]/.test(t)) throw new ValueError(`"${t}" is not a Linux interface name (at most 15 characters, no "/" or spaces)`);
      return t;
    }) ?? '',
    ipNetworks: c.list(s, 'ipNetworks', path, (v, p) => c.value(v, p, (y) => {
      const pr = parseIPWithPrefix(typeof y === 'string' && !y.includes('/') ? `${y}/${y.includes(':') ? 128 : 32}` : y);
      return `${pr.network}/${pr.length}`;
    })),
    ipNATs: c.list(s, 'ipNATs', path, (v, p) => {
      const x = c.object(v, p, ['internalIP', 'externalIP']);
      const internalIP = c.req(x, 'internalIP', p, ip);
      const externalIP = c.req(x, 'externalIP', p, ip);
      return internalIP === undefined || externalIP === undefined ? undefined : { internalIP, externalIP };
    }),
    allowedIps: c.list(s, 'allowedIps', path, (v, p) => c.value(v, p, (y) => {
      const t = str(y);
      return t.includes('/') ? parseCIDR(t) : parseCIDR(`${t}/${t.includes(':') ? 128 : 32}`);
    })),
    profiles: c.list(s, 'profiles', path, (v, p) => c.value(v, p, str)),
  };
  for (const k of ['orchestrator', 'workload', 'containerID', 'pod', 'endpoint', 'mac'] as const) {
    set(out, k, c.opt(s, k, path, str));
  }
  set(out, 'ipv4Gateway', c.opt(s, 'ipv4Gateway', path, ip));
  set(out, 'ipv6Gateway', c.opt(s, 'ipv6Gateway', path, ip));
  // Names and namespaces as the orchestrators write them.
  if (out.orchestrator === 'openstack') {
    const ns = meta.namespace ?? '';
    if (ns !== 'openstack' && !/^openstack-region-[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) {
      c.error(['metadata', 'namespace'], `an OpenStack WorkloadEndpoint lives in namespace "openstack" or "openstack-region-<region>", not "${ns}"`);
    }
    if (out.workload === undefined || out.endpoint === undefined) {
      c.error([...path, out.workload === undefined ? 'workload' : 'endpoint'], 'is required for an OpenStack endpoint (the VM and the Neutron port)');
    }
  }
  // The name is not checked against <node>-<orchestrator>-<workload>-<endpoint>: Calico's own clients do not insist
  // on the canonical form (libcalico-go's names package only builds it; the CNI plugin and networking-calico store
  // what they were given), and skein keys endpoints by namespace and name whatever their form.
  return out;
}

function liveMigrationRef(c: Checker, v: unknown, path: Path, workloadOnly: boolean): LiveMigrationRef {
  const x = c.object(v, path, workloadOnly ? ['hostname', 'orchestratorID', 'workloadID'] : ['hostname', 'orchestratorID', 'workloadID', 'endpointID']);
  const ref: LiveMigrationRef = {
    hostname: c.opt(x, 'hostname', path, str) ?? '',
    orchestratorID: c.opt(x, 'orchestratorID', path, str) ?? '',
    workloadID: c.opt(x, 'workloadID', path, str) ?? '',
    endpointID: workloadOnly ? '' : c.opt(x, 'endpointID', path, str) ?? '',
  };
  if (ref.workloadID === '') c.error([...path, 'workloadID'], 'is required to name the migrating workload');
  return ref;
}

/** LiveMigrationSource/Target: the CRD marks each ExactlyOneOf; two set is an error, none is a side not yet known. */
function liveMigrationSpec(c: Checker, s: Obj, path: Path): LiveMigrationSpec {
  c.object(s, path, ['source', 'target']);
  const out: LiveMigrationSpec = {};
  const one = (side: Obj, p: Path, keys: string[]): void => {
    const set = keys.filter((k) => side[k] !== undefined && side[k] !== null);
    if (set.length > 1) c.error(p, `exactly one of ${keys.join(', ')} may be set, not ${set.join(' and ')}`);
  };
  if (s.source !== undefined && s.source !== null) {
    const p = [...path, 'source'];
    const src = c.object(s.source, p, ['workload', 'workloadEndpoint']);
    one(src, p, ['workload', 'workloadEndpoint']);
    out.source = {};
    if (src.workload != null) out.source.workload = liveMigrationRef(c, src.workload, [...p, 'workload'], true);
    if (src.workloadEndpoint != null) out.source.workloadEndpoint = liveMigrationRef(c, src.workloadEndpoint, [...p, 'workloadEndpoint'], false);
  }
  if (s.target !== undefined && s.target !== null) {
    const p = [...path, 'target'];
    const tgt = c.object(s.target, p, ['selector', 'workloadEndpoint']);
    one(tgt, p, ['selector', 'workloadEndpoint']);
    out.target = {};
    set(out.target, 'selector', c.opt(tgt, 'selector', p, selector));
    if (tgt.workloadEndpoint != null) out.target.workloadEndpoint = liveMigrationRef(c, tgt.workloadEndpoint, [...p, 'workloadEndpoint'], false);
  }
  return out;
}

const routePriority = int(1, 2147483646);

/** Only the live-migration fields are read; the rest of FelixConfiguration is Felix's own and passes unchecked. */
function felixConfigurationSpec(c: Checker, s: Obj, path: Path): FelixConfigurationSpec {
  c.object(s, path, Object.keys(s));
  const out: FelixConfigurationSpec = {};
  set(out, 'ipv4ElevatedRoutePriority', c.opt(s, 'ipv4ElevatedRoutePriority', path, routePriority));
  set(out, 'ipv6ElevatedRoutePriority', c.opt(s, 'ipv6ElevatedRoutePriority', path, routePriority));
  set(out, 'liveMigrationRouteConvergenceTime', c.opt(s, 'liveMigrationRouteConvergenceTime', path, parseDuration));
  return out;
}

function clusterInformationSpec(c: Checker, s: Obj, path: Path): ClusterInformationSpec {
  c.object(s, path, ['clusterGUID', 'clusterType', 'calicoVersion', 'datastoreReady', 'variant', 'calicoEnterpriseVersion', 'cnxVersion']);
  const out: ClusterInformationSpec = {};
  set(out, 'clusterGUID', c.opt(s, 'clusterGUID', path, str));
  set(out, 'clusterType', c.opt(s, 'clusterType', path, str));
  set(out, 'calicoVersion', c.opt(s, 'calicoVersion', path, str));
  set(out, 'datastoreReady', c.opt(s, 'datastoreReady', path, bool));
  return out;
}

const affinityState = (v: unknown): AffinityState => oneOf(['confirmed', 'pending', 'pendingDeletion'] as const)(v);

/** BlockAffinity.spec.deleted is a string ("true"/"false") in the CRD, a bool in the etcd model. */
const deletedFlag = (v: unknown): boolean => {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  if (v === '') return false;
  throw new ValueError(`expected true or false, got ${describe(v)}`);
};

function blockAffinitySpec(c: Checker, s: Obj, path: Path): BlockAffinitySpec {
  c.object(s, path, ['state', 'node', 'cidr', 'deleted', 'type']);
  const type = c.opt(s, 'type', path, str);
  if (type !== undefined && type !== '' && type !== 'host') c.warn([...path, 'type'], `affinity type "${type}" is not a host affinity; skein only uses host affinities`);
  return {
    node: c.req(s, 'node', path, str) ?? '',
    cidr: c.req(s, 'cidr', path, parseCIDR) ?? '',
    state: (s.state === '' ? undefined : c.opt(s, 'state', path, affinityState)) ?? 'confirmed',
    deleted: c.opt(s, 'deleted', path, deletedFlag) ?? false,
  };
}

/** The block value as libcalico-go's AllocationBlock (etcd) or IPAMBlock.spec (CRD/file) holds it. */
export function ipamBlockSpec(c: Checker, s: Obj, path: Path): IPAMBlockSpec {
  c.object(s, path, [
    // affinityClaimTime in the CRD, affinity_claim_time in etcd (libcalico-go/lib/backend/model/block.go): when the
    // affinity was claimed, which skein does not need.
    'cidr', 'affinity', 'affinityClaimTime', 'affinity_claim_time', 'allocations', 'unallocated', 'attributes', 'sequenceNumber',
    'sequenceNumberForAllocation', 'deleted', 'strictAffinity', 'hostAffinity',
  ]);
  const cidr = c.req(s, 'cidr', path, parseCIDR) ?? '0.0.0.0/32';
  const hostBits = (cidrFamily(cidr) === 4 ? 32 : 128) - Number(cidr.split('/')[1]);
  const size = hostBits > 16 ? Infinity : 2 ** hostBits;
  let affinity: string | null = c.opt(s, 'affinity', path, (v) => {
    const t = str(v);
    if (!t.startsWith('host:') && !t.startsWith('virtual:')) throw new ValueError(`expected "host:<node>", got "${t}"`);
    return t;
  }) ?? null;
  if (affinity === null && typeof s.hostAffinity === 'string' && s.hostAffinity !== '') affinity = `host:${s.hostAffinity}`;
  const attributes = c.list(s, 'attributes', path, (v, p) => {
    // releasedAt: the allocation is in its cool-down after release (libcalico-go/lib/backend/model/block.go
    // AllocationAttribute); alternateOwnerAttrs: the other pod of a live migration.
    const x = c.object(v, p, ['handle_id', 'secondary', 'alternateOwnerAttrs', 'releasedAt']);
    const a: AllocationAttribute = { secondary: c.opt(x, 'secondary', p, stringMap) ?? {} };
    set(a, 'handleId', c.opt(x, 'handle_id', p, str));
    return a;
  });
  const allocations = c.list(s, 'allocations', path, (v, p): (number | null)[] | undefined => {
    if (v === null) return [null];
    const n = c.value(v, p, int(0, 2 ** 31));
    if (n !== undefined && n >= attributes.length) c.error(p, `refers to attribute ${n}, but the block has ${attributes.length}`);
    return n === undefined ? undefined : [n];
  }).flat();
  if (allocations.length > size) c.error([...path, 'allocations'], `has ${allocations.length} slots, more than the ${size} addresses of ${cidr}`);
  const unallocated = c.list(s, 'unallocated', path, (v, p) => c.value(v, p, int(0, Number.isFinite(size) ? size - 1 : 2 ** 31)));
  return {
    cidr,
    affinity,
    allocations,
    unallocated,
    attributes,
    sequenceNumber: c.opt(s, 'sequenceNumber', path, int(0, Number.MAX_SAFE_INTEGER)) ?? 0,
    deleted: c.opt(s, 'deleted', path, bool) ?? false,
  };
}

function metadata(c: Checker, v: unknown, kind: Kind): Metadata {
  const m = c.object(v, ['metadata'], META_FIELDS, { required: true });
  const nameParse = kind === 'WorkloadEndpoint' || kind === 'LiveMigration' || kind === 'FelixConfiguration' || kind === 'BlockAffinity' || kind === 'IPAMBlock' || kind === 'BGPConfiguration' || kind === 'Node'
    ? (x: unknown): string => {
      const s = str(x);
      if (s === '' || s.length > 253 || /[/\s]/.test(s)) throw new ValueError(`"${s}" is not a valid name (no "/" or spaces, at most 253 characters)`);
      return s;
    }
    : resourceName;
  const meta: Metadata = {
    name: c.req(m, 'name', ['metadata'], nameParse) ?? '',
    labels: c.opt(m, 'labels', ['metadata'], stringMap) ?? {},
    annotations: c.opt(m, 'annotations', ['metadata'], stringMap) ?? {},
  };
  if (NAMESPACED.has(kind)) {
    meta.namespace = c.req(m, 'namespace', ['metadata'], resourceName) ?? '';
  } else if (m.namespace !== undefined && m.namespace !== '') {
    c.warn(['metadata', 'namespace'], `${kind} is not namespaced; the namespace is ignored`);
  }
  return meta;
}

/**
 * Validate one resource document ({apiVersion, kind, metadata, spec}). Unknown
 * fields are warnings (Calico adds fields between releases); wrong values are
 * errors and the resource is not returned.
 */
export function validateResource(raw: unknown, opts: { unknownKeys?: 'error' | 'warning' } = {}): Validated {
  const c = new Checker(opts.unknownKeys ?? 'warning');
  if (!isObj(raw)) {
    c.error([], `expected a resource (apiVersion, kind, metadata, spec), got ${describe(raw)}`);
    return { checker: c };
  }
  const top = c.object(raw, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const kindText = typeof top.kind === 'string' ? top.kind : undefined;
  const name = isObj(top.metadata) && typeof top.metadata.name === 'string' ? top.metadata.name : undefined;
  const result: Validated = { checker: c };
  if (kindText !== undefined) result.kind = kindText;
  if (name !== undefined) result.name = name;
  if (kindText !== undefined && !(KINDS as readonly string[]).includes(kindText) && closest(kindText, KINDS) === undefined) {
    // Another Calico kind (policy, profile...): the same file may feed calicoctl; not skein's business.
    c.warn(['kind'], `${kindText} is not used by skein; ignored`);
    return result;
  }
  const kind = c.req(top, 'kind', [], oneOf(KINDS));
  const apiVersion = c.req(top, 'apiVersion', [], str);
  if (apiVersion !== undefined && apiVersion !== API_VERSION && !(apiVersion === 'crd.projectcalico.org/v1')) {
    c.error(['apiVersion'], `expected "${API_VERSION}", got "${apiVersion}"`);
  }
  if (kind === undefined) return result;
  const meta = metadata(c, top.metadata, kind);
  const sp: Path = ['spec'];
  const spec = c.object(top.spec, sp, [], { required: kind !== 'ClusterInformation' && kind !== 'BGPConfiguration' && kind !== 'FelixConfiguration' });
  // c.object above reported every key as unknown; drop those, the kind's own reader checks keys.
  for (let i = c.problems.length - 1; i >= 0; i--) {
    const p = c.problems[i];
    if (p?.atKey && p.path.length === 2 && p.path[0] === 'spec') c.problems.splice(i, 1);
  }
  let res: Resource;
  switch (kind) {
    case 'BGPConfiguration': {
      if (meta.name !== 'default' && !meta.name.startsWith('node.')) {
        c.warn(['metadata', 'name'], `only "default" and "node.<nodename>" BGPConfigurations are used; "${meta.name}" is ignored by Calico and skein`);
      }
      res = { kind, metadata: meta, spec: bgpConfigurationSpec(c, spec, sp, meta.name) };
      break;
    }
    case 'Node': res = { kind, metadata: meta, spec: nodeSpec(c, spec, sp) }; break;
    case 'BFDConfiguration': res = { kind, metadata: meta, spec: bfdConfigurationSpec(c, spec, sp) }; break;
    case 'BGPPeer': res = { kind, metadata: meta, spec: bgpPeerSpec(c, spec, sp) }; break;
    case 'IPPool': res = { kind, metadata: meta, spec: ipPoolSpec(c, spec, sp) }; break;
    case 'BGPFilter': res = { kind, metadata: meta, spec: bgpFilterSpec(c, spec, sp) }; break;
    case 'WorkloadEndpoint': res = { kind, metadata: meta, spec: workloadEndpointSpec(c, spec, sp, meta) }; break;
    case 'LiveMigration': res = { kind, metadata: meta, spec: liveMigrationSpec(c, spec, sp) }; break;
    case 'FelixConfiguration': res = { kind, metadata: meta, spec: felixConfigurationSpec(c, spec, sp) }; break;
    case 'ClusterInformation': {
      if (meta.name !== 'default') c.warn(['metadata', 'name'], `only the "default" ClusterInformation is used, not "${meta.name}"`);
      res = { kind, metadata: meta, spec: clusterInformationSpec(c, spec, sp) };
      break;
    }
    case 'BlockAffinity': {
      const s = blockAffinitySpec(c, spec, sp);
      res = { kind, metadata: ipamMeta(ipamName(s.cidr, s.node)), spec: s };
      break;
    }
    case 'IPAMBlock': {
      const s = ipamBlockSpec(c, spec, sp);
      res = { kind, metadata: ipamMeta(ipamName(s.cidr)), spec: s };
      break;
    }
  }
  if (c.ok) result.resource = res;
  return result;
}

/**
 * IPAM objects are identified by node and CIDR, not by the names people give
 * them in a file; their metadata is rebuilt from those so that a file and etcd
 * (whose keys carry no names) give equal objects.
 */
export function ipamMeta(name: string): Metadata {
  return { name, labels: {}, annotations: {} };
}

/** Block affinity from Calico's etcd model: key /calico/ipam/v2/host/<node>/ipvN/block/<cidr>, value {state, deleted}. */
export function validateBlockAffinityValue(node: string, cidr: string, raw: unknown): Validated {
  const c = new Checker('warning');
  const v = raw === null || raw === '' ? {} : raw;
  const o = c.object(v, [], ['state', 'deleted']);
  const spec: BlockAffinitySpec = {
    node,
    cidr,
    state: (o.state === '' ? undefined : c.opt(o, 'state', [], affinityState)) ?? 'confirmed',
    deleted: c.opt(o, 'deleted', [], deletedFlag) ?? false,
  };
  const out: Validated = { checker: c, kind: 'BlockAffinity', name: ipamName(cidr, node) };
  if (c.ok) out.resource = { kind: 'BlockAffinity', metadata: ipamMeta(ipamName(cidr, node)), spec };
  return out;
}

/** IPAM block from Calico's etcd model: key /calico/ipam/v2/assignment/ipvN/block/<cidr>, value an AllocationBlock. */
export function validateIPAMBlockValue(cidr: string, raw: unknown): Validated {
  const c = new Checker('warning');
  const spec = ipamBlockSpec(c, isObj(raw) ? raw : (c.error([], `expected an allocation block object, got ${describe(raw)}`), {}), []);
  if (c.ok && spec.cidr !== cidr) c.error(['cidr'], `"${spec.cidr}" does not match the key's block ${cidr} (${cidrToKeyPart(cidr)})`);
  const out: Validated = { checker: c, kind: 'IPAMBlock', name: ipamName(cidr) };
  if (c.ok) out.resource = { kind: 'IPAMBlock', metadata: ipamMeta(ipamName(cidr)), spec };
  return out;
}

/** The addresses in use in a block, with their attributes (handle, pod/namespace/node...). */
export function blockAllocations(block: IPAMBlockSpec): { ordinal: number; attribute?: AllocationAttribute }[] {
  const out: { ordinal: number; attribute?: AllocationAttribute }[] = [];
  block.allocations.forEach((a, ordinal) => {
    if (a === null) return;
    const attribute = block.attributes[a];
    out.push(attribute === undefined ? { ordinal } : { ordinal, attribute });
  });
  return out;
}
