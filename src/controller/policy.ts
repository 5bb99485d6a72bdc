// Calico's routing policy, compiled into the speaker's rule lists (bgp/rib/policy.ts). The order below is the
// order in which confd renders BIRD's filters, so the first rule that matches here is the statement BIRD would
// have acted on (projectcalico/calico, read for this file):
//
// Export to a peer — bgp_processor.go buildExportFilter(): the peer's BGPFilters, in the order BGPPeer.filters
// lists them (each filter's exportV4/exportV6 rules in order: BGPFilterBIRDFuncs in
// confd/pkg/resource/template/template_funcs.go), then calico_export_to_bgp_peers() from bird_ipam.cfg.template,
// then reject:
//   [1] every IP pool with disableBGPExport: reject what lies inside (processIPPool, sorted by statement text);
//   [2] toward an internal (same AS) peer: reject routes out of Felix's tunnel devices `*.cali`, `*.calico`, and
//       `tunl0` unless BIRD programs IPIP routes (processIPPools, IBGPExportFilterForTunnelRoutes);
//   [3] reject_local_routes(): reject routes out of `bpf*.cali` (eBPF dataplane's local routes);
//   [4] apply_communities() (bird.cfg.template): add the prefixAdvertisements' communities, go on;
//   [5] calico_aggr() (bird_aggr.cfg.template), per block affine to this node (confirmed or without a state):
//       accept the block itself; accept beneath it a route at elevated priority (`krt_metric < normal`: buildExportFilter
//       sets krt_metric to 2^31-1 minus LOCAL_PREF for a learned route and LOCAL_PREF from the kernel metric for a
//       local one, so this is LOCAL_PREF above 2^31-1 minus the BGPConfiguration's normal route priority, default
//       1024: a live migration's target announcing a VM inside its own block); reject everything else beneath it;
//   [6] static routes (/staticroutes: the service ranges this node advertises): accept what lies inside;
//   [7] on a route reflector (the Node has a routeReflectorClusterID): accept inside the LoadBalancer and
//       external service ranges;
//   [8] every other IP pool (disabled ones included: the template never reads `disabled`): accept what lies
//       inside (sorted by statement text);
//   then reject: nothing else leaves this host, whoever it was learned from.
// Import from a peer — bgp_processor.go buildImportFilter(): the peer's BGPFilters' importV4/importV6 rules, in
// order, then accept ("import all" before BGPFilter existed).
//
// BGPFilter fields (api/pkg/apis/projectcalico/v3/bgpfilter.go, rendered by template_funcs.go filterStatement):
//   cidr + matchOperator: Equal `net = cidr`, NotEqual `net != cidr`, In `net ~ cidr`, NotIn `net !~ cidr`;
//   prefixLength {min,max}: the CIDR becomes the set `[cidr{max(len,min), min(32|128,max)}]`, meaningful with In /
//     NotIn (BIRD has no `=` against a prefix set; skein ignores prefixLength with Equal / NotEqual);
//   source RemotePeers: only routes learned over BGP; interface: `ifname ~ "pattern"`;
//   peerType iBGP / eBGP: only for peers with the same / another AS than this node;
//   communities.values[0]: a standard (a:b) or large (a:b:c) community the route carries;
//   asPathPrefix: the AS_PATH begins with these ASNs; priority: bgp_local_pref = 2^31-1 - priority;
//   operations (Accept only): addCommunity, prependASPath (listed order ends up first), setPriority
//     (bgp_local_pref = 2^31-1 - value).
// A filter named by a peer but absent from the datastore is skipped, as confd skips a key it cannot read.
import type { Rule, RuleOperation, RuleSet, PeerRules } from '../../bgp/index.js';
import type { BGPFilter, BGPFilterRule, Model } from '../../config/index.js';
import type { Family } from '../ip.js';

/** confd's template.BirdIntMaxValue: priorities and bgp_local_pref convert with x = 2^31-1 - y. */
export const BIRD_INT_MAX = 2147483647;

export const EXPORT_FALLBACK = 'calico_export_to_bgp_peers: outside every exportable IP pool (reject)';
export const IMPORT_FALLBACK = 'import: accept (Calico imports every route no BGPFilter rejects)';

const cidrFamily = (cidr: string): Family => (cidr.includes(':') ? 6 : 4);

function community(value: string): { addCommunity: readonly [number, number] } | { addLargeCommunity: readonly [number, number, number] } {
  const parts = value.split(':').map(Number);
  if (parts.length === 2) return { addCommunity: [parts[0] as number, parts[1] as number] };
  if (parts.length === 3) return { addLargeCommunity: [parts[0] as number, parts[1] as number, parts[2] as number] };
  throw new Error(`community "${value}" is neither a:b nor a:b:c`);
}

/** One BGPFilter rule as an engine rule. */
export function filterRule(r: BGPFilterRule, name: string): Rule {
  const out: { -readonly [K in keyof Rule]: Rule[K] } = { name, action: r.action === 'Accept' ? 'accept' : 'reject' };
  if (r.cidr !== undefined) {
    out.cidr = r.cidr;
    out.operator = r.matchOperator ?? 'In';
    if (r.prefixLength !== undefined && (out.operator === 'In' || out.operator === 'NotIn')) {
      if (r.prefixLength.min !== undefined) out.minLength = r.prefixLength.min;
      if (r.prefixLength.max !== undefined) out.maxLength = r.prefixLength.max;
    }
  }
  if (r.source === 'RemotePeers') out.remoteOnly = true;
  if (r.interface !== undefined && r.interface !== '') out.interface = r.interface;
  if (r.peerType !== undefined) out.peerType = r.peerType;
  const c = r.communities?.values[0];
  if (c !== undefined) {
    const m = community(c);
    if ('addCommunity' in m) out.community = m.addCommunity;
    else out.largeCommunity = m.addLargeCommunity;
  }
  if (r.asPathPrefix !== undefined && r.asPathPrefix.length > 0) out.asPathPrefix = [...r.asPathPrefix];
  if (r.priority !== undefined) out.localPref = BIRD_INT_MAX - r.priority;
  if (r.action === 'Accept' && r.operations.length > 0) {
    out.operations = r.operations.map((op): RuleOperation => {
      if ('addCommunity' in op) return community(op.addCommunity.value);
      if ('prependASPath' in op) return { prependAsPath: [...op.prependASPath.prefix] };
      return { setLocalPref: BIRD_INT_MAX - op.setPriority.value };
    });
  }
  return out;
}

/** A filter's rules of one direction and family, as engine rules named after where they come from. */
export function filterRules(f: BGPFilter, dir: 'import' | 'export', family: Family): Rule[] {
  const field = `${dir}V${family}` as 'importV4' | 'importV6' | 'exportV4' | 'exportV6';
  return f.spec[field].map((r, i) => filterRule(r, `BGPFilter/${f.metadata.name} ${field}[${i}]`));
}

/** What a node's policy is made of, apart from each peer's filters. */
export interface NodePolicy {
  /** calico_export_to_bgp_peers and the fallback, per family: the tail of every peer's export list */
  readonly exportTail: Readonly<Record<Family, readonly Rule[]>>;
  /** the BGPFilters by name */
  readonly filters: ReadonlyMap<string, BGPFilter>;
}

/** The node-wide part of the export filter (see the header: [1]–[8]). */
export function compileNodePolicy(model: Model, nodeName: string): NodePolicy {
  const def = model.bgpConfiguration('default')?.spec;
  const pools = model.ipPools().map((p) => ({ name: p.metadata.name, cidr: p.spec.cidr, noExport: p.spec.disableBGPExport === true }));
  const pcr = def?.programClusterRoutes;
  // processIPPools: BIRD programs IPIP routes only when programClusterRoutes is Enabled or EnabledIPIPOnly.
  const birdIpip = pcr === 'Enabled' || pcr === 'EnabledIPIPOnly';
  const node = model.node(nodeName);
  const isReflector = (node?.spec.bgp?.routeReflectorClusterID ?? '') !== '';
  const blocks = model.blockAffinities(nodeName)
    // bird_aggr.cfg.template writes rules for a confirmed block (an empty state reads as confirmed in config/) only
    .filter((a) => !a.spec.deleted && a.spec.state === 'confirmed')
    .map((a) => a.spec.cidr)
    // confd lists the block keys ("10.65.0.0-26") in key order
    .sort((a, b) => (a.replace('/', '-') < b.replace('/', '-') ? -1 : a.replace('/', '-') > b.replace('/', '-') ? 1 : 0));
  const nodeAdv = model.bgpConfiguration(`node.${nodeName}`)?.spec.prefixAdvertisements ?? [];
  const adv = nodeAdv.length > 0 ? nodeAdv : def?.prefixAdvertisements ?? [];
  const statics = [
    ...(def?.serviceClusterIPs ?? []),
    ...(def?.serviceExternalIPs ?? []),
    ...(def?.serviceLoadBalancerAggregation === 'Disabled' ? [] : def?.serviceLoadBalancerIPs ?? []),
  ].map((x) => x.cidr);
  // confd's NormalRoutePriority (bgp_processor.go getNormalRoutePriority): from the BGPConfiguration, per family.
  const normal = (f: Family): number => (f === 4 ? def?.ipv4NormalRoutePriority : def?.ipv6NormalRoutePriority) ?? 1024;
  const rrRanges = isReflector ? [...(def?.serviceLoadBalancerIPs ?? []), ...(def?.serviceExternalIPs ?? [])].map((x) => x.cidr) : [];

  const tail = (family: Family): Rule[] => {
    const mine = <T extends { cidr: string }>(xs: readonly T[]): T[] => xs.filter((x) => cidrFamily(x.cidr) === family);
    const byCidrText = <T extends { cidr: string }>(xs: T[]): T[] => xs.sort((a, b) => (a.cidr < b.cidr ? -1 : a.cidr > b.cidr ? 1 : 0));
    const rules: Rule[] = [];
    for (const p of byCidrText(mine(pools).filter((p) => p.noExport))) {
      rules.push({ name: `IPPool/${p.name} ${p.cidr}: disableBGPExport (reject)`, action: 'reject', cidr: p.cidr, operator: 'In' });
    }
    for (const pattern of ['*.cali', '*.calico', ...(birdIpip ? [] : ['tunl0'])]) {
      rules.push({ name: `iBGP: Felix tunnel route via ${pattern} (reject)`, action: 'reject', peerType: 'iBGP', interface: pattern });
    }
    rules.push({ name: 'reject_local_routes: via bpf*.cali (reject)', action: 'reject', interface: 'bpf*.cali' });
    for (const a of mine(adv.map((x) => ({ cidr: x.cidr, communities: x.communities })))) {
      if (a.communities.length === 0) continue;
      rules.push({ name: `prefixAdvertisements ${a.cidr}: add communities`, action: 'modify', cidr: a.cidr, operator: 'In', operations: a.communities.map(community) });
    }
    for (const b of blocks.filter((c) => cidrFamily(c) === family)) {
      rules.push({ name: `calico_aggr: own block ${b} (accept)`, action: 'accept', cidr: b, operator: 'Equal' });
      rules.push({ name: `calico_aggr: inside own block ${b} at elevated priority, krt_metric < ${normal(family)} (accept)`, action: 'accept', cidr: b, operator: 'In', localPrefAbove: BIRD_INT_MAX - normal(family) });
      rules.push({ name: `calico_aggr: inside own block ${b} (reject)`, action: 'reject', cidr: b, operator: 'In' });
    }
    for (const s of statics.filter((c) => cidrFamily(c) === family)) {
      rules.push({ name: `service range ${s} (accept)`, action: 'accept', cidr: s, operator: 'In' });
    }
    for (const s of rrRanges.filter((c) => cidrFamily(c) === family)) {
      rules.push({ name: `route reflector: service range ${s} (accept)`, action: 'accept', cidr: s, operator: 'In' });
    }
    for (const p of byCidrText(mine(pools).filter((p) => !p.noExport))) {
      rules.push({ name: `IPPool/${p.name} ${p.cidr} (accept)`, action: 'accept', cidr: p.cidr, operator: 'In' });
    }
    return rules;
  };
  const filters = new Map<string, BGPFilter>();
  for (const id of model.ids('BGPFilter')) {
    const f = model.bgpFilter(id);
    if (f !== undefined) filters.set(f.metadata.name, f);
  }
  return { exportTail: { 4: tail(4), 6: tail(6) }, filters };
}

/** The rule lists of a peer naming these filters (BGPPeer.filters, in its order). */
export function peerRules(np: NodePolicy, filterNames: readonly string[]): PeerRules {
  const present = filterNames.map((n) => np.filters.get(n)).filter((f): f is BGPFilter => f !== undefined);
  const imp = (family: Family): RuleSet => ({
    rules: present.flatMap((f) => filterRules(f, 'import', family)),
    fallback: { action: 'accept', name: IMPORT_FALLBACK },
  });
  const exp = (family: Family): RuleSet => ({
    rules: [...present.flatMap((f) => filterRules(f, 'export', family)), ...np.exportTail[family]],
    fallback: { action: 'reject', name: EXPORT_FALLBACK },
  });
  return { import4: imp(4), import6: imp(6), export4: exp(4), export6: exp(6) };
}

/** Filters a peer names that the datastore does not have (confd skips them silently; skein says so). */
export function missingFilters(np: NodePolicy, filterNames: readonly string[]): string[] {
  return filterNames.filter((n) => !np.filters.has(n));
}
