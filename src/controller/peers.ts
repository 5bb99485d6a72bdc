// Which BGP sessions this node should run, derived from Calico's resources the
// way Calico derives them, so a cluster moved from BIRD+confd to skein keeps
// the same peerings. References are to projectcalico/calico:
//   [client]    confd/pkg/backends/calico/client.go, updatePeersV1 / nodeAsBGPPeers /
//               nodesWithIPPortAndAS (BGPPeer resources expanded per node)
//   [processor] confd/pkg/backends/calico/bgp_processor.go, processMeshPeers /
//               buildPeerFromData (what each expanded peering becomes)
//   [template]  confd/etc/calico/confd/templates/bird.cfg.template (v3.2x; same rules
//               before the processor existed)
//
// Rules, in order:
// 1. A family is peered only when this node has a BGP address of that family
//    ([template] "IPv4 disabled on this node"; bird6 likewise).
// 2. Explicit peerings first ([client] updatePeersV1): a pass over the global
//    BGPPeers (neither node nor nodeSelector), then one over the node-specific
//    ones, then the automatic reverse peerings. The first peering emitted for a
//    peer address wins; a node-specific one to an address a global one already
//    has is dropped; so global > node-specific > reverse. Calico walks its
//    BGPPeers in map order; we walk them sorted by name, so among peerings of the
//    same pass the BGPPeer whose name sorts first wins (deterministic).
// 3. The node-to-node mesh ([processor] processMeshPeers): when enabled and this
//    node is not a route reflector, one iBGP peering per other node with an
//    address of the family, skipping route reflectors. Calico renders a mesh
//    peering even when an explicit one goes to the same address (two BIRD
//    protocols to one neighbour); skein runs one session per address, and the
//    explicit peering wins because it is the one the operator configured.
// 4. A peering to one of this node's own addresses is skipped ([template]
//    "Skipping ourselves").
//
// 5. Every setting of a BGPPeer (password, sourceAddress, maxRestartTime,
//    keepalive, ttlSecurity, next-hop mode, filters) applies to every peering it
//    produces, selector and reverse ones included; localASNumber and allowas-in
//    (numAllowedLocalASNumbers) only to peerIP ones, as confd (client.go
//    nodeAsBGPPeers and setPeerConfigFieldsFromV3Resource set neither).
//
// Not derived here: localWorkloadSelector peerings (Calico reads the workload
// addresses from Felix's endpoint status files, which skein does not have).
import {
  matches, type BGPConfiguration, type BGPPassword, type BGPPeer, type CalicoNode, type Model, type Selector,
} from '../../config/index.js';
import { stripLength, type Family } from '../ip.js';

/** How `calicoctl node status` labels a peering (its BIRD protocol name prefix Mesh_/Global_/Node_). */
export type PeerType = 'node-to-node mesh' | 'global' | 'node specific';

/**
 * Route reflection on this session (RFC 4456): 'client' = we reflect to the
 * peer (we are an RR, it is an iBGP peer without our cluster ID); 'reflector' =
 * the peer is a Calico RR that treats us as its client. calicoctl shows neither,
 * but it is the first thing an operator asks of an RR topology, so status shows it.
 */
export type Reflection = 'none' | 'client' | 'reflector';

/** What produced a peering, for `skeinctl status`. */
export type PeerSource =
  | { kind: 'mesh' }
  | { kind: 'BGPPeer'; name: string; via: 'peerIP' | 'peerSelector' | 'reverse' };

export interface DesiredPeer {
  /** stable identity: the peer's address (one session per address) */
  key: string;
  address: string;
  family: Family;
  /** TCP port to dial; absent = 179 */
  port?: number;
  /** Calico's BIRD protocol name (Mesh_10_0_0_2, Global_..., Node_..._port_N) */
  name: string;
  type: PeerType;
  /** the Calico node at that address, when it is one */
  peerNode?: string;
  peerAS: number;
  localAS: number;
  /** wait for the peer to connect (Calico's one-directional peerings) */
  passive: boolean;
  /** bind the TCP connection to this node's address of the family (sourceAddress UseNodeIP) */
  sourceAddress?: string;
  /** a reference to the TCP-MD5 key, resolved by the daemon */
  password?: BGPPassword;
  /** graceful-restart time to advertise, ms (RFC 4724 §3); absent = the engine's default */
  restartTimeMs?: number;
  keepaliveTimeMs?: number;
  /** GTSM (RFC 5082): the peer is at most this many hops away; absent = off */
  ttlSecurity?: number;
  nextHop: 'auto' | 'self' | 'keep';
  /** accept this many occurrences of our own AS in AS_PATH (allowas-in) */
  numAllowedLocalASNumbers?: number;
  /** BGPFilter names, in order */
  filters: string[];
  /** we reflect to this peer (RFC 4456 client) with this cluster ID */
  rrClient: boolean;
  rrClusterId?: string;
  reflection: Reflection;
  /** a static route to the peer via this gateway (BGPPeer reachableBy) */
  reachableBy?: string;
  /** every resource that asked for this peering; sources[0] is the one whose settings are used */
  sources: PeerSource[];
}

export const DEFAULT_AS = 64512;

interface NodeInfo {
  name: string;
  v4?: string;
  v6?: string;
  as: number;
  /** the Node's own spec.bgp.asNumber, when it has one */
  explicitAs?: number;
  clusterId?: string;
  labels: Record<string, string>;
  port?: number;
}

/** A per-family target produced by expanding one BGPPeer. */
interface Target {
  address: string;
  family: Family;
  port?: number;
  peerAS: number;
  /** cluster ID of the target node (only for selector/reverse peerings: [client] nodeAsBGPPeers) */
  rrClusterId?: string;
  /** the peer is a Calico node (drives Global_ passivity, [processor] buildPeerFromData) */
  calicoNode: boolean;
  peerNode?: string;
  via: 'peerIP' | 'peerSelector' | 'reverse';
}

/** The model's view the derivation needs, built once per Model. */
export class PeerContext {
  readonly globalAS: number;
  readonly meshEnabled: boolean;
  readonly config: BGPConfiguration | undefined;
  readonly nodes: NodeInfo[];
  readonly byName = new Map<string, NodeInfo>();
  /** address -> nodes with that BGP address (normally one) */
  readonly byAddress = new Map<string, NodeInfo[]>();
  readonly peers: BGPPeer[];

  constructor(model: Model) {
    this.config = model.bgpConfiguration('default');
    this.globalAS = this.config?.spec.asNumber ?? DEFAULT_AS;
    this.meshEnabled = this.config?.spec.nodeToNodeMeshEnabled !== false;
    const globalPort = this.config?.spec.listenPort;
    this.nodes = model.nodes().map((n) => this.info(n, model.bgpConfiguration(`node.${n.metadata.name}`)?.spec.listenPort ?? globalPort));
    for (const n of this.nodes) {
      this.byName.set(n.name, n);
      for (const a of [n.v4, n.v6]) {
        if (a === undefined) continue;
        const l = this.byAddress.get(a);
        if (l === undefined) this.byAddress.set(a, [n]);
        else l.push(n);
      }
    }
    this.peers = model.bgpPeers();
  }

  private info(n: CalicoNode, port: number | undefined): NodeInfo {
    const b = n.spec.bgp;
    const out: NodeInfo = { name: n.metadata.name, as: b?.asNumber ?? this.globalAS, labels: n.metadata.labels };
    if (b?.asNumber !== undefined) out.explicitAs = b.asNumber;
    if (b?.ipv4Address !== undefined) out.v4 = stripLength(b.ipv4Address);
    if (b?.ipv6Address !== undefined) out.v6 = stripLength(b.ipv6Address);
    if (b?.routeReflectorClusterID !== undefined) out.clusterId = b.routeReflectorClusterID;
    if (port !== undefined) out.port = port;
    return out;
  }

  nodesMatching(sel: Selector): NodeInfo[] {
    return this.nodes.filter((n) => matches(sel, n.labels));
  }
}

/** Calico's protocol name: prefix, the address with "." or ":" as "_", and "_port_N" for a port. */
export function protocolName(prefix: 'Mesh' | 'Global' | 'Node', address: string, port?: number): string {
  const id = address.replace(/[.:]/g, '_');
  return port === undefined ? `${prefix}_${id}` : `${prefix}_${id}_port_${port}`;
}

const addressOf = (n: NodeInfo, f: Family): string | undefined => (f === 4 ? n.v4 : n.v6);

/** A node's addresses as peering targets, for the given families ([client] nodeAsBGPPeers). */
function nodeTargets(n: NodeInfo, families: Family[], via: Target['via']): Target[] {
  const out: Target[] = [];
  for (const f of families) {
    const a = addressOf(n, f);
    if (a === undefined) continue;
    const t: Target = { address: a, family: f, peerAS: n.as, calicoNode: false, peerNode: n.name, via };
    if (n.port !== undefined) t.port = n.port;
    if (n.clusterId !== undefined) t.rrClusterId = n.clusterId;
    out.push(t);
  }
  return out;
}

/** The target of a peerIP BGPPeer ([client] updatePeersV1, first pass). */
function peerIPTarget(ctx: PeerContext, p: BGPPeer): Target | undefined {
  const ip = p.spec.peerIP;
  if (ip === undefined) return undefined;
  const peerAS = p.spec.asNumber ?? ctx.globalAS;
  const atAddress = ctx.byAddress.get(ip.address) ?? [];
  const t: Target = { address: ip.address, family: ip.family, peerAS, calicoNode: atAddress.length > 0, via: 'peerIP' };
  // Without a port, a peer that is a Calico node of that AS is dialled on its listen port.
  const sameAS = atAddress.filter((n) => n.as === peerAS);
  const port = ip.port ?? sameAS[0]?.port;
  if (port !== undefined) t.port = port;
  const node = sameAS[0] ?? atAddress[0];
  if (node !== undefined) t.peerNode = node.name;
  return t;
}

/** Does this BGPPeer's local side (node / nodeSelector) select `me`? Global peers select every node. */
function selectsLocal(p: BGPPeer, me: NodeInfo): boolean {
  if (p.spec.node !== undefined) return p.spec.node === me.name;
  if (p.spec.nodeSelector !== undefined) return matches(p.spec.nodeSelector, me.labels);
  return true;
}

const isGlobal = (p: BGPPeer): boolean => p.spec.node === undefined && p.spec.nodeSelector === undefined;

/**
 * Does `me` sit on the remote side of this BGPPeer, so that Calico adds the
 * mirror peering on `me` ([client] updatePeersV1, reverse pass; nodesWithIPPortAndAS)?
 * Returns the families to mirror.
 */
function reverseFamilies(ctx: PeerContext, p: BGPPeer, me: NodeInfo): Family[] {
  // reversePeering: Manual (Calico v3.29+) asks for no automatic mirror.
  if (p.spec.reversePeering === 'Manual') return [];
  if (p.spec.peerSelector !== undefined) return matches(p.spec.peerSelector, me.labels) ? [4, 6] : [];
  const ip = p.spec.peerIP;
  if (ip === undefined) return [];
  if (ip.address !== me.v4 && ip.address !== me.v6) return [];
  if ((p.spec.asNumber ?? ctx.globalAS) !== me.as) return [];
  if (ip.port !== undefined && me.port !== undefined && ip.port !== me.port) return [];
  return [ip.family];
}

interface Emitted {
  target: Target;
  resource: BGPPeer;
  type: PeerType;
}

/**
 * The peerings `nodeName` should run, sorted by address (IPv4 first). Empty
 * when the node is unknown or has no BGP address.
 */
export function derivePeers(model: Model, nodeName: string): DesiredPeer[] {
  return derivePeersIn(new PeerContext(model), nodeName);
}

/** derivePeers over a prepared context (the NodeController reuses one per Model). */
export function derivePeersIn(ctx: PeerContext, nodeName: string): DesiredPeer[] {
  const me = ctx.byName.get(nodeName);
  if (me === undefined) return [];
  const families = ([4, 6] as Family[]).filter((f) => addressOf(me, f) !== undefined);
  if (families.length === 0) return [];
  const mine = new Set([me.v4, me.v6].filter((a): a is string => a !== undefined));

  // Explicit peerings: first emission per address wins; later ones only add to sources.
  const chosen = new Map<string, Emitted>();
  const extra = new Map<string, PeerSource[]>();
  const emit = (target: Target, resource: BGPPeer, type: PeerType): void => {
    if (!families.includes(target.family) || mine.has(target.address)) return;
    const src: PeerSource = { kind: 'BGPPeer', name: resource.metadata.name, via: target.via };
    if (chosen.has(target.address)) {
      const l = extra.get(target.address) ?? [];
      if (!l.some((s) => s.kind === 'BGPPeer' && s.name === src.name && s.via === src.via)) l.push(src);
      extra.set(target.address, l);
      return;
    }
    chosen.set(target.address, { target, resource, type });
  };
  const forward = (p: BGPPeer): Target[] => {
    if (p.spec.peerSelector !== undefined) {
      return ctx.nodesMatching(p.spec.peerSelector).flatMap((n) => nodeTargets(n, [4, 6], 'peerSelector'));
    }
    const t = peerIPTarget(ctx, p);
    return t === undefined ? [] : [t];
  };
  for (const p of ctx.peers) if (isGlobal(p)) for (const t of forward(p)) emit(t, p, 'global');
  for (const p of ctx.peers) {
    if (!isGlobal(p) && selectsLocal(p, me)) for (const t of forward(p)) emit(t, p, 'node specific');
  }
  for (const p of ctx.peers) {
    const fams = reverseFamilies(ctx, p, me);
    if (fams.length === 0) continue;
    const remote = p.spec.node !== undefined
      ? [ctx.byName.get(p.spec.node)].filter((n): n is NodeInfo => n !== undefined)
      : p.spec.nodeSelector !== undefined ? ctx.nodesMatching(p.spec.nodeSelector) : ctx.nodes;
    for (const n of remote) for (const t of nodeTargets(n, fams, 'reverse')) emit(t, p, 'node specific');
  }

  const out: DesiredPeer[] = [];
  for (const [address, e] of chosen) {
    const sources: PeerSource[] = [{ kind: 'BGPPeer', name: e.resource.metadata.name, via: e.target.via }, ...(extra.get(address) ?? [])];
    out.push(explicitPeer(ctx, me, e, sources));
  }

  // The node-to-node mesh ([processor] processMeshPeers; [template] "Node-to-node mesh").
  if (ctx.meshEnabled && me.clusterId === undefined) {
    const byKey = new Map(out.map((x) => [x.key, x]));
    for (const n of ctx.nodes) {
      if (n.name === me.name || n.clusterId !== undefined) continue;
      for (const f of families) {
        const a = addressOf(n, f);
        if (a === undefined || mine.has(a)) continue;
        const existing = byKey.get(a);
        if (existing !== undefined) {
          existing.sources.push({ kind: 'mesh' });
          continue;
        }
        const mp = meshPeer(ctx, me, n, f, a);
        byKey.set(a, mp);
        out.push(mp);
      }
    }
  }
  // Sort on precomputed keys: building them inside the comparator dominated on a 5k-node mesh.
  return out.map((p) => [p.family, addressKey(p.address), p] as const)
    .sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map((x) => x[2]);
}

function meshPeer(ctx: PeerContext, me: NodeInfo, n: NodeInfo, f: Family, address: string): DesiredPeer {
  const ours = addressOf(me, f) as string;
  const spec = ctx.config?.spec;
  const p: DesiredPeer = {
    key: address,
    address,
    family: f,
    name: protocolName('Mesh', address),
    type: 'node-to-node mesh',
    peerNode: n.name,
    // A mesh peer without its own AS is taken to be in this node's AS (node-specific or global), not the global
    // one: confd/pkg/backends/calico/bgp_processor.go falls back to config.ASNumber, this node's AS.
    peerAS: n.explicitAs ?? me.as,
    localAS: me.as,
    // One-directional mesh ([template] `{{if gt $onode_ip $node_ip}} passive on`,
    // [processor] `if peerIP > currentNodeIP`): a Go string comparison of the
    // address texts, so the node whose address sorts higher as a string dials
    // ("10.0.0.10" < "10.0.0.9"). Both ends compute the same answer, so exactly
    // one side dials; this avoids a second connection aborting a graceful restart.
    passive: address > ours,
    sourceAddress: ours,
    nextHop: 'auto',
    filters: [],
    rrClient: false,
    reflection: 'none',
    sources: [{ kind: 'mesh' }],
  };
  if (n.port !== undefined) p.port = n.port;
  if (spec?.nodeMeshPassword !== undefined) p.password = spec.nodeMeshPassword;
  if (spec?.nodeMeshMaxRestartTime !== undefined) p.restartTimeMs = spec.nodeMeshMaxRestartTime;
  return p;
}

function explicitPeer(ctx: PeerContext, me: NodeInfo, e: Emitted, sources: PeerSource[]): DesiredPeer {
  const { target: t, resource: r, type } = e;
  const s = r.spec;
  const ours = addressOf(me, t.family) as string;
  // localASNumber and numAllowedLocalASNumbers reach only peerIP peerings: confd's selector and reverse peerings
  // (client.go nodeAsBGPPeers, setPeerConfigFieldsFromV3Resource) carry neither.
  const viaPeerIP = t.via === 'peerIP';
  const localAS = (viaPeerIP ? s.localASNumber : undefined) ?? me.as;
  const ibgp = t.peerAS === localAS;
  // [processor] buildPeerFromData: an RR (this node has a cluster ID) makes an
  // iBGP peer its client unless the peer carries the same cluster ID. A peerIP
  // peering carries no cluster ID, so it becomes a client even if it is an RR of
  // our cluster — Calico's rule, kept.
  const rrClient = ibgp && me.clusterId !== undefined && t.rrClusterId !== me.clusterId;
  const peerNode = t.peerNode !== undefined ? ctx.byName.get(t.peerNode) : undefined;
  const reflection: Reflection = rrClient
    ? 'client'
    : ibgp && peerNode?.clusterId !== undefined && peerNode.clusterId !== me.clusterId ? 'reflector' : 'none';
  const p: DesiredPeer = {
    key: t.address,
    address: t.address,
    family: t.family,
    name: protocolName(type === 'global' ? 'Global' : 'Node', t.address, t.port),
    type,
    peerAS: t.peerAS,
    localAS,
    // Global_ peerings to a Calico node are one-directional like the mesh; Node_
    // peerings always dial ([processor] buildPeerFromData, passive handling).
    passive: type === 'global' && t.calicoNode && t.address > ours,
    nextHop: s.nextHopMode === 'Self' ? 'self' : s.nextHopMode === 'Keep' || (s.keepOriginalNextHop === true && !ibgp) ? 'keep' : 'auto',
    filters: [...s.filters],
    rrClient,
    reflection,
    sources,
  };
  if (t.port !== undefined) p.port = t.port;
  if (t.peerNode !== undefined) p.peerNode = t.peerNode;
  // sourceAddress defaults to UseNodeIP in Calico's API (BGPPeerSpec default).
  if (s.sourceAddress !== 'None') p.sourceAddress = ours;
  if (s.password !== undefined) p.password = s.password;
  if (s.maxRestartTime !== undefined) p.restartTimeMs = s.maxRestartTime;
  if (s.keepaliveTime !== undefined) p.keepaliveTimeMs = s.keepaliveTime;
  if (s.ttlSecurity !== undefined && s.ttlSecurity > 0) p.ttlSecurity = s.ttlSecurity;
  if (viaPeerIP && s.numAllowedLocalASNumbers !== undefined && s.numAllowedLocalASNumbers > 0) p.numAllowedLocalASNumbers = s.numAllowedLocalASNumbers;
  if (rrClient) p.rrClusterId = me.clusterId as string;
  // reachableBy only makes sense for the peerIP it was written for.
  if (s.reachableBy !== undefined && t.via === 'peerIP') p.reachableBy = s.reachableBy;
  return p;
}

/** IPv4 before IPv6, then by address numerically. */
export function comparePeers(a: DesiredPeer, b: DesiredPeer): number {
  if (a.family !== b.family) return a.family - b.family;
  const x = addressKey(a.address);
  const y = addressKey(b.address);
  return x < y ? -1 : x > y ? 1 : 0;
}

function addressKey(a: string): string {
  if (!a.includes(':')) return a.split('.').map((o) => o.padStart(3, '0')).join('.');
  // Expand "::" so the groups line up, then pad each group.
  const [head = '', tail = ''] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = a.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = a.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.map((g) => g.padStart(4, '0')).join(':');
}
