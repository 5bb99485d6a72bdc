// Pure translations between the node controller's vocabulary (src/controller) and what the BGP speaker and the
// FIB programmer take. No I/O here, so each rule is tested with a table (test/daemon/skeind-unit.test.ts).
import { createHash } from 'node:crypto';
import type { PathAttributes, PeerOptions, ViaHop } from '../../bgp/index.js';
import type { CalicoNode, DaemonConfig, Model } from '../../config/index.js';
import type { NextHop, Target } from '../../fib/index.js';
import { DEFAULT_AS, type DesiredPeer, type Origination } from '../controller/index.js';
import { addressBytes } from '../ip.js';

/** RFC 4724 §3: the Restart Time field is 12 bits of seconds. */
export const MAX_RESTART_TIME_S = 4095;

export interface PeerMapContext {
  /** the speaker's own AS: a peering with another local AS gets an override */
  readonly localAsn: number;
  /** the TCP-MD5 key, already read from the secret (never logged) */
  readonly md5Key?: Buffer;
  /** RFC 9494 long-lived stale time for this peer (skein.yaml bgp.longLivedGracefulRestart); absent: no LLGR */
  readonly longLivedStaleTime?: number;
  /** skein.yaml bgp.addPaths; absent: off */
  readonly addPaths?: DaemonConfig['bgp']['addPaths'];
  /** skein.yaml bgp.maxPrefixes; absent: no limit */
  readonly maxPrefixes?: DaemonConfig['bgp']['maxPrefixes'];
  /** the peer's routing policy (src/daemon/policy.ts); absent: none */
  readonly rules?: PeerOptions['rules'];
}

/**
 * DesiredPeer -> the speaker's PeerOptions. A session carries the family of its addresses, as Calico's BIRD
 * and BIRD6 sessions do: the mesh has one IPv4 session between IPv4 addresses and one IPv6 session between IPv6
 * addresses, and each family's next hop is then the session's own local address.
 */
export function peerOptionsFor(p: DesiredPeer, ctx: PeerMapContext): PeerOptions {
  const o: { -readonly [K in keyof PeerOptions]: PeerOptions[K] } = {
    address: p.address,
    asn: p.peerAS,
    passive: p.passive,
    families: [p.family === 4 ? 'ipv4-unicast' : 'ipv6-unicast'],
    type: p.reflection === 'reflector' ? 'route reflector' : p.type,
  };
  if (p.port !== undefined && p.port !== 179) o.port = p.port;
  if (ctx.rules !== undefined) o.rules = ctx.rules;
  if (p.localAS !== ctx.localAsn) o.localAsn = p.localAS;
  // sourceAddress UseNodeIP: the controller already resolved it to this node's address of the family.
  if (p.sourceAddress !== undefined) o.sourceAddress = p.sourceAddress;
  if (ctx.md5Key !== undefined) o.md5Key = ctx.md5Key;
  if (p.ttlSecurity !== undefined) o.ttlSecurity = p.ttlSecurity;
  if (p.restartTimeMs !== undefined) o.restartTime = Math.min(MAX_RESTART_TIME_S, Math.max(0, Math.ceil(p.restartTimeMs / 1000)));
  if (ctx.longLivedStaleTime !== undefined && ctx.longLivedStaleTime > 0) o.longLivedStaleTime = ctx.longLivedStaleTime;
  if (p.keepaliveTimeMs !== undefined) o.keepaliveTime = Math.max(1, Math.round(p.keepaliveTimeMs / 1000));
  // 'keep': on iBGP the next hop is passed on unchanged anyway; toward eBGP it asks for a third-party next hop.
  if (p.nextHop === 'self') o.nextHopSelf = true;
  else if (p.nextHop === 'keep' && p.peerAS !== p.localAS) o.nextHopKeep = true;
  if (p.numAllowedLocalASNumbers !== undefined) o.allowOwnAs = p.numAllowedLocalASNumbers;
  if (p.rrClient) o.routeReflectorClient = true;
  // RFC 7911: several paths per prefix to our reflector clients (ECMP through the reflector), when configured
  const send = ctx.addPaths?.toClients;
  if (p.rrClient && send !== undefined && send.mode !== 'off') o.addPathSend = send.mode === 'all' ? { mode: 'all' } : { mode: 'best', count: send.count };
  if (ctx.addPaths?.receive === true) o.addPathReceive = true;
  // RFC 4486: a per-peer limit replaces the per-family ones; either way each family is counted on its own.
  const mp = ctx.maxPrefixes;
  if (mp !== undefined) {
    const own = mp.peers[p.address];
    const perFamily = own !== undefined ? {} : {
      ...(mp.ipv4 !== undefined ? { 'ipv4-unicast': mp.ipv4 } : {}),
      ...(mp.ipv6 !== undefined ? { 'ipv6-unicast': mp.ipv6 } : {}),
    };
    o.maxPrefixes = {
      limit: own ?? mp.limit,
      warningThreshold: mp.warningThreshold,
      ...(Object.keys(perFamily).length > 0 ? { perFamily } : {}),
      ...(mp.restartAfter !== undefined ? { restartAfterSec: mp.restartAfter } : {}),
    };
  }
  return o;
}

/** The path attributes of a local origination: ORIGIN IGP, an empty AS_PATH (the core's default) and communities. */
export function originationAttributes(o: Origination): PathAttributes {
  // LOCAL_PREF as Calico nodes export it (Origination.localPref); the speaker drops it towards eBGP peers.
  const a: { -readonly [K in keyof PathAttributes]: PathAttributes[K] } = { origin: 0, localPref: o.localPref };
  // RFC 1997: a community is one 32-bit value, the AS in the high 16 bits.
  if (o.communities.length > 0) a.communities = o.communities.map(([asn, v]) => ((asn << 16) | v) >>> 0);
  if (o.largeCommunities.length > 0) a.largeCommunities = o.largeCommunities.map(([g, l1, l2]) => [g, l1, l2] as const);
  return a;
}

const stripLen = (a: string | undefined): string | undefined => (a === undefined ? undefined : a.split('/')[0]);

/** The node's BGP addresses, without their prefix lengths. */
export function nodeAddresses(node: CalicoNode | undefined): { v4?: string; v6?: string } {
  const out: { v4?: string; v6?: string } = {};
  const v4 = stripLen(node?.spec.bgp?.ipv4Address);
  const v6 = stripLen(node?.spec.bgp?.ipv6Address);
  if (v4 !== undefined) out.v4 = v4;
  if (v6 !== undefined) out.v6 = v6;
  return out;
}

/**
 * The BGP Identifier (RFC 4271 §4.2, RFC 6286): skein.yaml's bgp.routerId, else the node's IPv4 BGP address,
 * else — an IPv6-only node, as Calico does — a value derived from a hash of the node name, so that it is stable
 * across restarts and different between nodes. Never 0.0.0.0 (RFC 6286 §2.1).
 */
export function routerIdFor(configured: string | undefined, nodeV4: string | undefined, nodeName: string): string {
  if (configured !== undefined) return configured;
  if (nodeV4 !== undefined) return nodeV4;
  const h = createHash('sha256').update(nodeName).digest();
  const b: number[] = [h[0]!, h[1]!, h[2]!, h[3]!];
  const zero = b[0] === 0 && b[1] === 0 && b[2] === 0 && b[3] === 0;
  if (zero) b[3] = 1;
  return b.join('.');
}

export interface SpeakerIdentity {
  asn: number;
  routerId: string;
  listenAddress: string;
  /** bindMode NodeIP on a dual-stack node: the IPv6 node address, listened on as well */
  alsoListen?: string;
  listenPort: number;
  /** the setting the port comes from, for a bind error (skein.yaml bgp.listen.port when absent) */
  listenPortFrom?: string;
  v4?: string;
  v6?: string;
  /** RFC 4456 CLUSTER_ID: the Node's routeReflectorClusterID; set only on route reflector nodes */
  clusterId?: string;
}

/**
 * AS, router ID and listen socket of this node's speaker. AS: the Node's own asNumber, else the default
 * BGPConfiguration's, else Calico's default 64512. Port: BGPConfiguration `node.<name>` listenPort, else
 * `default`'s, else skein.yaml. bindMode NodeIP binds the node's addresses: confd gives bird the IPv4 one and bird6
 * the IPv6 one (bgp_processor.go: ListenAddress per IP version; bird.cfg.template and bird6.cfg.template `listen bgp
 * address`), so a dual-stack node listens on both.
 */
export function speakerIdentity(cfg: DaemonConfig, model: Model): SpeakerIdentity {
  const node = model.node(cfg.nodeName);
  const { v4, v6 } = nodeAddresses(node);
  const def = model.bgpConfiguration('default')?.spec;
  const mine = model.bgpConfiguration(`node.${cfg.nodeName}`)?.spec;
  const asn = node?.spec.bgp?.asNumber ?? def?.asNumber ?? DEFAULT_AS;
  const listenPort = mine?.listenPort ?? def?.listenPort ?? cfg.bgp.listen.port;
  let listenAddress = cfg.bgp.listen.address;
  const nodeIP = def?.bindMode === 'NodeIP';
  if (nodeIP) listenAddress = v4 ?? v6 ?? listenAddress;
  const out: SpeakerIdentity = { asn, routerId: routerIdFor(cfg.bgp.routerId, v4, cfg.nodeName), listenAddress, listenPort };
  if (mine?.listenPort !== undefined) out.listenPortFrom = `BGPConfiguration node.${cfg.nodeName} spec.listenPort`;
  else if (def?.listenPort !== undefined) out.listenPortFrom = 'BGPConfiguration default spec.listenPort';
  if (nodeIP && v4 !== undefined && v6 !== undefined) out.alsoListen = v6;
  if (v4 !== undefined) out.v4 = v4;
  if (v6 !== undefined) out.v6 = v6;
  // Calico marks a route reflector by giving its Node a cluster ID; the speaker uses it in CLUSTER_LIST and in
  // loop detection (RFC 4456 §7, §8). The controller marks which peers are its clients.
  const clusterId = node?.spec.bgp?.routeReflectorClusterID;
  if (clusterId !== undefined && clusterId !== '') out.clusterId = clusterId;
  return out;
}

/**
 * The fields of the speaker's identity that differ: AS, router ID, listen socket and cluster ID are the speaker's
 * own (they are in every OPEN, RFC 4271 §4.2), so any of them changing replaces the speaker.
 */
export function identityChanges(was: SpeakerIdentity, now: SpeakerIdentity): ('asn' | 'routerId' | 'listenAddress' | 'alsoListen' | 'listenPort' | 'clusterId')[] {
  return (['asn', 'routerId', 'listenAddress', 'alsoListen', 'listenPort', 'clusterId'] as const).filter((k) => now[k] !== was[k]);
}

/**
 * The kernel route for a BGP best path: one next hop per BGP next hop (several make an ECMP route), skipping
 * next hops of the wrong family, link-local IPv6 ones (they need an interface the speaker does not report) and
 * our own addresses (a route via ourselves would loop). With `resolve`, a next hop not on a link goes via the
 * gateway(s) of the route that covers it (recursive next hops, RFC 4271 §9.1.2.1).
 */
export function bgpTarget(family: 4 | 6, nextHops: readonly string[], own: ReadonlySet<string>, resolve?: (nh: string) => readonly ViaHop[] | null): Target | undefined {
  const hops: NextHop[] = [];
  const seen = new Set<string>();
  for (const nh of nextHops) {
    if (own.has(nh)) continue;
    if (family === 6 && /^fe[89ab]/i.test(nh)) continue;
    const b = addressBytes(nh);
    if (b === undefined || (b.length === 4) !== (family === 4)) continue;
    // Recursive next hops (bgp/rib/nexthop-resolve.ts): null, nothing covers it: no kernel route through it (the
    // RIB has made such a path unusable already; this is the FIB's own guard); [] a link route: it is its own
    // gateway; else through the covering route's gateways. Two BGP next hops behind one gateway make one hop.
    const via = resolve?.(nh);
    if (via === null) continue;
    if (via === undefined || via.length === 0) {
      if (!seen.has(`${nh}%`)) hops.push({ gateway: b });
      seen.add(`${nh}%`);
      continue;
    }
    for (const v of via) {
      const g = v.gateway !== undefined ? addressBytes(v.gateway) : undefined;
      if (g === undefined || g.length !== b.length) continue;
      const key = `${v.gateway}%${v.dev ?? ''}`;
      if (seen.has(key)) continue;
      seen.add(key);
      hops.push({ gateway: g, ...(v.dev !== undefined ? { dev: v.dev } : {}), ...(v.onlink === true ? { onlink: true } : {}) });
    }
  }
  return hops.length > 0 ? { hops } : undefined;
}
