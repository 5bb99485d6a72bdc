// Calico's BGP resources, typed and validated: BGPConfiguration, Node (its BGP part) and BGPPeer (api/pkg/apis/
// projectcalico/v3 bgpconfig.go, node.go, bgppeer.go; docs/contract.md, "The datastore: Calico's own resources").
// config/resources.ts holds the kinds, their metadata and the dispatch to these readers.
import { bool, int, ip, oneOf, resourceName, selector, set, str, type Checker, type Obj, type Path } from './check.js';
import type { Selector } from './selector.js';
import type { BGPPassword } from './secrets.js';
import { isSafeSecretComponent } from './secrets.js';
import {
  ValueError, cidrFamily, parseASNumber as asn, parseCIDR, parseCommunity, parseDuration, parseIP, parseIPWithPrefix,
} from './values.js';

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

export function bgpConfigurationSpec(c: Checker, s: Obj, path: Path, name: string): BGPConfigurationSpec {
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

export function nodeSpec(c: Checker, s: Obj, path: Path): NodeSpec {
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

export function bgpPeerSpec(c: Checker, s: Obj, path: Path): BGPPeerSpec {
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
