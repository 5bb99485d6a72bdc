// What this node announces, blackholes and routes to its workloads, derived
// from Calico's resources the way BIRD ends up exporting under Calico's confd
// templates (projectcalico/calico confd/etc/calico/confd/templates):
//   [aggr] bird_aggr.cfg.template: a static blackhole per affine block ("route
//          <cidr> blackhole", skipped when the block is a /32 — bird6: /128); and
//          calico_aggr(): a confirmed block is exported, everything beneath it rejected.
//   [ipam] bird_ipam.cfg.template, calico_export_to_bgp_peers(): reject anything
//          inside a pool with disableBGPExport; apply_communities(); calico_aggr();
//          accept static (service) routes; accept anything inside any other pool
//          (disabled pools included: the template never looks at `disabled`, which
//          only stops new allocations); reject the rest.
//   [cfg]  bird.cfg.template, apply_communities(): for every prefixAdvertisement
//          whose cidr contains the route (`net ~ cidr`, so the cidr itself and
//          every more-specific), add its communities; the node's own
//          (BGPConfiguration node.<name>) list replaces the global one.
//
// Differences from Calico, on purpose:
// - Calico learns workload routes from the kernel (Felix writes them); skein
//   reads WorkloadEndpoints directly (docs/contract.md), so the device routes and the
//   /32s of borrowed addresses come from ipNetworks.
// - Affinity states as confd treats them (confd/pkg/backends/calico/client.go
//   updateCache): a `pending` affinity is as good as absent (not yet ours: its
//   workloads' addresses go out one by one, as borrowed), a `pendingDeletion` one
//   is still this node's block (IPAM turns it back to confirmed if the block is
//   not empty), so it is announced and blackholed like a confirmed one. An
//   affinity marked `deleted` is skipped.
// - A confirmed block outside every IP pool passes Calico's calico_aggr; skein
//   does not announce it (docs/contract.md: nothing outside the pools is announced),
//   but still blackholes it.
// - Service ranges: the configured CIDRs are announced as Calico's static routes
//   are; per-service /32 (/128) routes (externalTrafficPolicy: Local, single
//   addresses in serviceExternalIPs / serviceLoadBalancerIPs, LB aggregation
//   Disabled) need Kubernetes Service and EndpointSlice objects and are left out.
//   Service routes are never blackholed in the kernel (Calico rejects them in
//   calico_kernel_programming).
import type { Model, WorkloadEndpoint } from '../../config/index.js';
import { compareNets, netWithin, parseNet, type Family, type Net } from '../ip.js';
import { BIRD_INT_MAX, DEFAULT_ELEVATED_ROUTE_PRIORITY, endpointId, type MigrationState } from './migration.js';

export type OriginKind = 'block' | 'borrowed' | 'kernel' | 'service';

/**
 * A route another program wrote in the kernel's main table (fib.learn; src/daemon/kernel-learn.ts), as the
 * controller needs it.
 */
export interface KernelOrigin {
  prefix: string;
  /** the kernel metric, BIRD's krt_metric (0 where the kernel gave none, as in BIRD) */
  metric: number;
  protocol: number;
  ifname?: string;
}

export interface Origination {
  /** the prefix text: the stable key */
  key: string;
  prefix: string;
  family: Family;
  kind: OriginKind;
  /** RFC 1997 communities [asn, value], sorted */
  communities: [number, number][];
  /** RFC 8092 large communities [global admin, local 1, local 2], sorted */
  largeCommunities: [number, number, number][];
  /**
   * LOCAL_PREF sent to iBGP peers: since Calico v3.32 a node exports its own routes with 2^31-1 minus the route's
   * kernel metric, the normal route priority (ipv4NormalRoutePriority / ipv6NormalRoutePriority, default 1024) —
   * confd/pkg/backends/calico/bgp_processor.go buildExportFilter. A mixed cluster of BIRD and skein hosts then
   * compares like with like, and each node still prefers its own service ranges (local beats learned on a tie).
   */
  localPref: number;
  /** what produced it ("BlockAffinity/node/cidr", "WorkloadEndpoint/ns/name", "BGPConfiguration/default serviceClusterIPs") */
  sources: string[];
}

export interface Blackhole {
  key: string;
  prefix: string;
  family: Family;
}

export interface DeviceRoute {
  /** the destination prefix: the key */
  key: string;
  prefix: string;
  family: Family;
  interface: string;
  scope: 'link';
  /** the WorkloadEndpoint ("namespace/name") it routes to */
  workload: string;
  /**
   * Set while a live migration settles on this host (Felix's Live and TimeWait states): Felix gives the route the
   * elevated priority (kernel metric, default 512) instead of the normal one.
   */
  elevated?: true;
}

export interface Originations {
  announce: Origination[];
  blackholes: Blackhole[];
  deviceRoutes: DeviceRoute[];
}

interface Pool {
  net: Net;
  exportable: boolean;
}

interface CommunityRule {
  net: Net;
  communities: string[];
}

const netCache = new Map<string, Net>();
/** Parsing is the hot part on big models; the same texts recur across derivations. */
function net(cidr: string): Net {
  let n = netCache.get(cidr);
  if (n === undefined) {
    n = parseNet(cidr);
    if (netCache.size > 200_000) netCache.clear();
    netCache.set(cidr, n);
  }
  return n;
}

const KIND_RANK: Record<OriginKind, number> = { block: 0, borrowed: 1, kernel: 2, service: 3 };

/**
 * Interfaces whose learned routes never go out. Felix's tunnel routes to other nodes' blocks (VXLAN `vxlan.calico`,
 * WireGuard `wireguard.cali`, IPIP `tunl0` when Felix programs IPIP): confd rejects them towards iBGP peers
 * (bgp_processor.go, IBGPExportFilterForTunnelRoutes: `*.cali`, `*.calico`, and `tunl0` unless BIRD programs
 * IPIP); and eBPF's local routes (`bpf*.cali`, bird_ipam.cfg.template reject_local_routes) towards every peer.
 * skein rejects the tunnel routes towards eBGP peers too (Calico lets them out there, announcing other nodes'
 * blocks as its own): less than Calico exports, never more. A tunl0 route skein programs itself is its own protocol's
 * and is never learned, so any tunl0 route learned here is someone else's.
 */
function tunnelOrLocal(ifname: string): boolean {
  return ifname.endsWith('.cali') || ifname.endsWith('.calico') || ifname === 'tunl0';
}

/**
 * `migration`: the live-migration state of this node's endpoints (MigrationTracker.states, by endpoint id); an
 * endpoint in Target gets no route and no announcement, one in Live or TimeWait gets its routes at the elevated
 * priority and announces them at the matching LOCAL_PREF, outside the block aggregation (src/controller/migration.ts).
 */
export function deriveOriginations(model: Model, nodeName: string, migration?: ReadonlyMap<string, MigrationState>,
  learned?: Iterable<KernelOrigin>): Originations {
  return new OriginDerivation(model, nodeName, migration).originations(learned ?? []);
}

interface ServiceRange {
  cidr: string;
  n: Net;
  source: string;
}

/**
 * One derivation's view of the Model (and of the live-migration states): the blocks, workloads, pools, service ranges
 * and community rules, read once. The routes learned from the kernel are laid over it, all of them at once
 * (originations) or one prefix at a time (originationOf: a workload's route Felix wrote changes one announcement, and
 * re-deriving every other one per route was ~9% of a host's CPU in `npm run bench -- convergence` with a few hundred
 * of them); a workload of this node that changes re-derives the prefixes it claims (workloadChanged). Every rule below
 * concerns one prefix at a time, so both ways give the same announcements and device routes
 * (test/config/controller-learned and controller-state check it on generated sequences).
 */
export class OriginDerivation {
  readonly blackholes: Blackhole[] = [];
  /** the announcements made by the Model alone (blocks, workloads), before the learned routes and the services; only
   *  copies of them are handed out */
  readonly #base = new Map<string, Origination>();
  /** the blocks' part of #base */
  readonly #blockBase = new Map<string, Origination>();
  /** this node's workloads by the prefixes they claim (addresses, floating IPs): prefix → endpoint id → endpoint */
  readonly #claims = new Map<string, Map<string, WorkloadEndpoint>>();
  readonly #devices = new Map<string, DeviceRoute>();
  #deviceList: DeviceRoute[] | undefined;
  readonly #migration: ReadonlyMap<string, MigrationState> | undefined;
  readonly #pools: Pool[];
  readonly #blocks: Net[] = [];
  readonly #services: ServiceRange[] = [];
  readonly #rules: CommunityRule[];
  readonly #localPref: { 4: number; 6: number };
  readonly #elevatedPref: { 4: number; 6: number };

  constructor(model: Model, nodeName: string, migration?: ReadonlyMap<string, MigrationState>) {
    this.#migration = migration;
    this.#pools = model.ipPools().map((p) => ({ net: net(p.spec.cidr), exportable: !p.spec.disableBGPExport }));
    const cfg = model.bgpConfiguration('default')?.spec;
    const felix = model.felixConfiguration(nodeName);
    this.#localPref = {
      4: BIRD_INT_MAX - (cfg?.ipv4NormalRoutePriority ?? 1024),
      6: BIRD_INT_MAX - (cfg?.ipv6NormalRoutePriority ?? 1024),
    };
    this.#elevatedPref = {
      4: BIRD_INT_MAX - (felix.ipv4ElevatedRoutePriority ?? DEFAULT_ELEVATED_ROUTE_PRIORITY),
      6: BIRD_INT_MAX - (felix.ipv6ElevatedRoutePriority ?? DEFAULT_ELEVATED_ROUTE_PRIORITY),
    };

    // Blocks affine to this node.
    for (const a of model.blockAffinities(nodeName)) {
      if (a.spec.state === 'pending' || a.spec.deleted) continue;
      const n = net(a.spec.cidr);
      this.#blocks.push(n);
      // [aggr] no blackhole for a single-address block: it would swallow that one workload's traffic.
      if (n.length !== (n.family === 4 ? 32 : 128)) this.blackholes.push({ key: a.spec.cidr, prefix: a.spec.cidr, family: n.family });
      if (this.#inPool(n) && !this.#blocked(n)) this.#add(this.#blockBase, a.spec.cidr, n, 'block', `BlockAffinity/${nodeName}/${a.spec.cidr}`);
    }
    this.blackholes.sort(byPrefix);
    for (const [k, o] of this.#blockBase) this.#base.set(k, o);

    // Local workloads: device routes, and borrowed addresses, one prefix at a time.
    for (const w of model.workloadEndpoints(nodeName)) this.#claim(w);
    for (const prefix of this.#claims.keys()) this.#derivePrefix(prefix);

    // The service ranges this node advertises from the default BGPConfiguration (the node.* object does not carry
    // them): Calico's global static routes (confd/pkg/backends/calico/client.go updateGlobalRoutes): every cluster IP
    // range, the external and load-balancer ranges but their single addresses (those name one service each, advertised
    // per service: needs Kubernetes), the load-balancer ones only while serviceLoadBalancerAggregation is Enabled.
    if (cfg !== undefined) {
      const ranges: [string, { cidr: string }[]][] = [
        ['serviceClusterIPs', cfg.serviceClusterIPs],
        ['serviceExternalIPs', cfg.serviceExternalIPs],
        ['serviceLoadBalancerIPs', cfg.serviceLoadBalancerAggregation === 'Disabled' ? [] : cfg.serviceLoadBalancerIPs],
      ];
      for (const [field, list] of ranges) {
        for (const { cidr } of list) {
          const n = net(cidr);
          if (field !== 'serviceClusterIPs' && n.length === (n.family === 4 ? 32 : 128)) continue;
          this.#services.push({ cidr, n, source: `BGPConfiguration/default ${field}` });
        }
      }
    }
    this.#rules = communityRules(model, nodeName);
  }

  /** The workload device routes, sorted by prefix. */
  get deviceRoutes(): DeviceRoute[] {
    this.#deviceList ??= [...this.#devices.values()].sort(byPrefix);
    return this.#deviceList;
  }

  /** One prefix's workload device route, if any. */
  deviceRoute(prefix: string): DeviceRoute | undefined {
    return this.#devices.get(prefix);
  }

  /**
   * One WorkloadEndpoint changed (before/after: undefined where it was or is not this node's, or absent): its
   * prefixes' device routes and Model-made announcements are derived again; returns those prefixes (for
   * originationOf and deviceRoute). The caller makes sure the migration states have not changed with it: they are
   * the ones this derivation was made with.
   */
  workloadChanged(before: WorkloadEndpoint | undefined, after: WorkloadEndpoint | undefined): Set<string> {
    const touched = new Set<string>();
    if (before !== undefined) {
      const id = workloadId(before);
      for (const prefix of claimedPrefixes(before)) {
        const m = this.#claims.get(prefix);
        if (m?.delete(id) === true && m.size === 0) this.#claims.delete(prefix);
        touched.add(prefix);
      }
    }
    if (after !== undefined) for (const prefix of this.#claim(after)) touched.add(prefix);
    for (const prefix of touched) this.#derivePrefix(prefix);
    return touched;
  }

  #claim(w: WorkloadEndpoint): string[] {
    const id = workloadId(w);
    const prefixes = claimedPrefixes(w);
    for (const prefix of prefixes) {
      let m = this.#claims.get(prefix);
      if (m === undefined) this.#claims.set(prefix, (m = new Map()));
      m.set(id, w);
    }
    return prefixes;
  }

  /** A prefix's device route and Model-made announcement from its block (if it is one) and the workloads claiming it. */
  #derivePrefix(prefix: string): void {
    const announce = new Map<string, Origination>();
    const block = this.#blockBase.get(prefix);
    if (block !== undefined) announce.set(prefix, copy(block));
    let device: DeviceRoute | undefined;
    const claims = this.#claims.get(prefix);
    if (claims !== undefined) {
      const n = net(prefix);
      // Two endpoints claiming one address (a VM mid-migration, stale data): the first by id keeps the device
      // route, so the answer does not depend on arrival order.
      const ids = [...claims.keys()];
      if (ids.length > 1) ids.sort();
      for (const id of ids) {
        const w = claims.get(id)!;
        const lm = this.#migration?.get(id);
        // Felix's Target state: the VM still runs on the source; no route here, so nothing to announce either.
        if (lm === 'target') continue;
        const elevated = lm === 'live' || lm === 'timeWait';
        if (device === undefined && w.spec.interfaceName !== '') {
          device = { key: prefix, prefix, family: n.family, interface: w.spec.interfaceName, scope: 'link', workload: id };
          if (elevated) device.elevated = true;
        }
        if (elevated) {
          // calico_aggr lets a route below the normal priority out of the block's aggregation; its LOCAL_PREF is
          // 2^31-1 minus the elevated metric, above every normal path (bgp_processor.go buildExportFilter).
          if (!this.#inPool(n) || this.#blocked(n)) continue;
          this.#add(announce, prefix, n, 'borrowed', `WorkloadEndpoint/${id} (live migration)`);
          const o = announce.get(prefix)!;
          o.localPref = Math.max(o.localPref, this.#elevatedPref[n.family]);
          continue;
        }
        // [aggr] calico_aggr rejects what lies under a confirmed block; [ipam] the
        // pool rule accepts the rest (borrowed addresses, OpenStack VMs without IPAM).
        if (this.#inOwnBlock(n) || !this.#inPool(n) || this.#blocked(n)) continue;
        this.#add(announce, prefix, n, 'borrowed', `WorkloadEndpoint/${id}`);
      }
    }
    const o = announce.get(prefix);
    if (o !== undefined) this.#base.set(prefix, o);
    else this.#base.delete(prefix);
    if (device !== undefined) this.#devices.set(prefix, device);
    else if (!this.#devices.delete(prefix)) return;
    this.#deviceList = undefined;
  }

  /** Every announcement, the learned routes (one per prefix) laid over the Model's, sorted by prefix. */
  originations(learned: Iterable<KernelOrigin>): Originations {
    const announce = new Map<string, Origination>();
    for (const [k, o] of this.#base) announce.set(k, copy(o));
    for (const r of learned) this.#learn(announce, r);
    for (const s of this.#services) if (!this.#blocked(s.n)) this.#add(announce, s.cidr, s.n, 'service', s.source);
    for (const o of announce.values()) this.#finish(o);
    return { announce: [...announce.values()].sort(byPrefix), blackholes: this.blackholes, deviceRoutes: this.deviceRoutes };
  }

  /** The announcement of one prefix (its text, as the announcements are keyed) given the route learned for it, if any. */
  originationOf(prefix: string, learned: KernelOrigin | undefined): Origination | undefined {
    const announce = new Map<string, Origination>();
    const b = this.#base.get(prefix);
    if (b !== undefined) announce.set(prefix, copy(b));
    if (learned !== undefined) this.#learn(announce, learned);
    for (const s of this.#services) if (s.cidr === prefix && !this.#blocked(s.n)) this.#add(announce, s.cidr, s.n, 'service', s.source);
    const o = announce.get(prefix);
    if (o !== undefined) this.#finish(o);
    return o;
  }

  #inPool(n: Net): boolean {
    return this.#pools.some((p) => netWithin(n, p.net));
  }

  /** [ipam] reject_disabled_pools() runs before anything may accept. */
  #blocked(n: Net): boolean {
    return this.#pools.some((p) => !p.exportable && netWithin(n, p.net));
  }

  #inOwnBlock(n: Net): boolean {
    return this.#blocks.some((b) => netWithin(n, b));
  }

  #add(announce: Map<string, Origination>, prefix: string, n: Net, kind: OriginKind, source: string): void {
    const have = announce.get(prefix);
    if (have !== undefined) {
      // One announcement per prefix; the more specific reason names it.
      if (KIND_RANK[kind] < KIND_RANK[have.kind]) have.kind = kind;
      if (!have.sources.includes(source)) have.sources.push(source);
      return;
    }
    announce.set(prefix, { key: prefix, prefix, family: n.family, kind, communities: [], largeCommunities: [], localPref: this.#localPref[n.family], sources: [source] });
  }

  /**
   * A route learned from the kernel (fib.learn: Felix's routes to this node's workloads, an operator's static
   * routes), through calico_export_to_bgp_peers in its order (bird_ipam.cfg.template): disabled pools; the tunnel and
   * local interfaces; calico_aggr (bird_aggr.cfg.template); the static routes (the service ranges); the pools.
   * krt_metric is the kernel metric, 0 where the kernel gave none: Calico's BIRD always defines it for a kernel route
   * (projectcalico/bird sysdep/linux/netlink.c nl_parse_route keeps RTA_PRIORITY or 0, sysdep/unix/krt.c
   * krt_make_tmp_attrs hands it to the filters), so the export filter's default for an undefined krt_metric never
   * applies here; LOCAL_PREF is 2^31-1 minus it (bgp_processor.go buildExportFilter). Felix writes its workload routes
   * at the normal priority (felix/dataplane/linux/endpoint_mgr.go routePriority), so only a route written without a
   * metric (IPv4's 0) leaves its block's aggregation at the highest LOCAL_PREF, as it does under Calico's BIRD.
   */
  #learn(announce: Map<string, Origination>, r: KernelOrigin): void {
    const n = net(r.prefix);
    if (this.#blocked(n) || (r.ifname !== undefined && tunnelOrLocal(r.ifname))) return;
    const normal = BIRD_INT_MAX - this.#localPref[n.family];
    const metric = r.metric;
    const source = `kernel route proto ${r.protocol}${r.ifname !== undefined ? ` dev ${r.ifname}` : ''}${r.metric !== 0 ? ` metric ${r.metric}` : ''}`;
    const own = this.#blocks.find((b) => netWithin(n, b));
    // calico_aggr: the block itself goes out (it already does, as an affinity); beneath it only a route above the
    // normal priority (a live migration's target, Felix's elevated metric)
    if (own !== undefined && (own.length === n.length || metric >= normal)) {
      if (own.length === n.length) announce.get(r.prefix)?.sources.push(source);
      return;
    }
    if (own === undefined && !this.#inPool(n) && !this.#services.some((s) => netWithin(n, s.n))) return;
    this.#add(announce, r.prefix, n, 'kernel', source);
    const o = announce.get(r.prefix)!;
    if (o.kind === 'kernel') o.localPref = BIRD_INT_MAX - metric;
  }

  /** Communities ([cfg] apply_communities), and the sources in order. */
  #finish(o: Origination): void {
    const n = net(o.prefix);
    const std = new Set<string>();
    const large = new Set<string>();
    for (const r of this.#rules) {
      if (!netWithin(n, r.net)) continue;
      for (const c of r.communities) (c.split(':').length === 2 ? std : large).add(c);
    }
    o.communities = [...std].map((c) => c.split(':').map(Number) as [number, number]).sort(compareTuples);
    o.largeCommunities = [...large].map((c) => c.split(':').map(Number) as [number, number, number]).sort(compareTuples);
    o.sources.sort();
  }
}

/**
 * The prefixes a workload claims on its host: its addresses, and for an OpenStack endpoint its floating IPs.
 * Floating IPs: networking-calico writes them as ipNATs; Felix routes each external IP to the workload's interface
 * like its own addresses (always for OpenStack endpoints; felix/dataplane/linux/endpoint_mgr.go calculateRoutes) and
 * DNATs it there, and BIRD exports that route when it lies in a pool. Same here.
 */
function claimedPrefixes(w: WorkloadEndpoint): string[] {
  if (w.spec.orchestrator !== 'openstack' || w.spec.ipNATs.length === 0) return w.spec.ipNetworks;
  return [...w.spec.ipNetworks, ...w.spec.ipNATs.map((x) => `${x.externalIP}/${x.externalIP.includes(':') ? 128 : 32}`)];
}

/** A Model-made announcement to lay learned routes and services over: its own list of sources (the rest is replaced). */
const copy = (o: Origination): Origination => ({ ...o, sources: [...o.sources] });

/**
 * prefixAdvertisements in effect for this node: BGPConfiguration node.<name>'s
 * list when it has one, else the default's — for both families at once. confd
 * writes a node's IPv4 and IPv6 keys together whenever the node's list is set
 * (confd/pkg/backends/calico/client.go getPrefixAdvertisementsKVPair), and the
 * processor takes the node key of a family whenever it exists, even empty
 * (bgp_processor.go), so a node list with only IPv4 entries leaves IPv6 routes
 * without communities. (An explicitly empty node list reads here as absent:
 * config/ does not keep that difference.) Community names were resolved to
 * values by config/.
 */
function communityRules(model: Model, nodeName: string): CommunityRule[] {
  const nodeList = model.bgpConfiguration(`node.${nodeName}`)?.spec.prefixAdvertisements ?? [];
  const globalList = model.bgpConfiguration('default')?.spec.prefixAdvertisements ?? [];
  return (nodeList.length > 0 ? nodeList : globalList).map((x) => ({ net: net(x.cidr), communities: x.communities }));
}

const workloadId = (w: WorkloadEndpoint): string => endpointId(w);

function compareTuples(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return 0;
}

/** The derivation's order: by network (family, address, length), then by text (two texts of one network, rare). */
export function byPrefix(a: { prefix: string }, b: { prefix: string }): number {
  return compareNets(net(a.prefix), net(b.prefix)) || (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0);
}
