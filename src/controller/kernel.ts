// Which learned BGP routes go into the kernel, and how: the rules of BIRD's kernel export filter as confd renders it
// (node/filesystem/etc/calico/confd/templates/bird_ipam.cfg.template `calico_kernel_programming`, its pool lines from
// confd/pkg/backends/calico/bgp_processor.go processIPPool and clusterRoutePolicyFromBGPConfig):
//   1. routes inside the service ranges (confd's /rejectcidrs) are never programmed;
//   2. when this node runs WireGuard, routes whose BGP next hop is another WireGuard node's BGP address are left to
//      Felix (it routes them through the WireGuard device);
//   3. inside an IP pool with vxlanMode Always/CrossSubnet: never (Felix programs VXLAN routes);
//      inside a pool with ipipMode Always/CrossSubnet: only when BGPConfiguration programClusterRoutes is Enabled or
//      EnabledIPIPOnly, then via tunl0 onlink (CrossSubnet: directly when the next hop is in this node's subnet);
//      inside a pool without encapsulation: unless programClusterRoutes is Disabled or EnabledIPIPOnly;
//   4. anything outside every pool: programmed.
// programClusterRoutes defaults to EnabledNoEncapOnly (Felix programs IPIP routes, BIRD the unencapsulated ones);
// an unknown value is treated as the default, as confd does.
import type { Model } from '../../config/index.js';
import { netWithin, parseNet, type Net } from '../ip.js';

export type KernelDecision = 'accept' | 'reject' | 'tunnel';

export interface KernelPolicy {
  /** a string that changes whenever a decision could change (to know when to re-evaluate every route) */
  readonly key: string;
  decide(prefix: string, nextHops: readonly string[]): KernelDecision;
  /**
   * decide() for an IPv4 prefix given as numbers (the address as a uint32 and the length), the same rules without
   * text: the daemon's route table calls this once per learned IPv4 route.
   */
  decide4(addr: number, len: number, nextHops: readonly string[]): KernelDecision;
}

/** An IPv4 net as numbers: the address (uint32) and the length. */
interface Net4 { addr: number; len: number }

const net4 = (n: Net): Net4 => ({ addr: Number(n.bits), len: n.length });
/** Is addr/len inside net? */
const within4 = (addr: number, len: number, net: Net4): boolean =>
  len >= net.len && (net.len === 0 || (addr ^ net.addr) >>> (32 - net.len) === 0);

interface PoolRule { cidr: string; net: Net; rule: 'reject' | 'accept' | 'tunnel' | 'cross-subnet' }

const safeNet = (cidr: string): Net | undefined => {
  try {
    return parseNet(cidr);
  } catch {
    return undefined;
  }
};

export function kernelPolicy(model: Model, nodeName: string): KernelPolicy {
  const cfg = model.bgpConfiguration('default')?.spec;
  const pcr = cfg?.programClusterRoutes;
  const policy = pcr === 'Enabled' ? { ipip: true, noEncap: true }
    : pcr === 'Disabled' ? { ipip: false, noEncap: false }
      : pcr === 'EnabledIPIPOnly' ? { ipip: true, noEncap: false }
        : { ipip: false, noEncap: true };
  const encap = (m: string): boolean => m === 'Always' || m === 'CrossSubnet';

  const services: Net[] = [];
  const serviceCidrs: string[] = [];
  for (const l of [cfg?.serviceClusterIPs, cfg?.serviceExternalIPs, cfg?.serviceLoadBalancerIPs]) {
    for (const { cidr } of l ?? []) {
      const n = safeNet(cidr);
      if (n) {
        services.push(n);
        serviceCidrs.push(cidr);
      }
    }
  }

  const pools: PoolRule[] = [];
  for (const p of model.ipPools()) {
    const n = safeNet(p.spec.cidr);
    if (!n) continue;
    let rule: PoolRule['rule'];
    if (encap(p.spec.vxlanMode)) rule = 'reject';
    else if (encap(p.spec.ipipMode)) rule = !policy.ipip ? 'reject' : n.family === 6 ? 'accept' : p.spec.ipipMode === 'Always' ? 'tunnel' : 'cross-subnet';
    else rule = policy.noEncap ? 'accept' : 'reject';
    pools.push({ cidr: p.spec.cidr, net: n, rule });
  }

  // This node's IPv4 subnet, for CrossSubnet (confd's localSubnet: the node's BGP IPv4 address with its length).
  const me = model.node(nodeName);
  const subnetCidr = me?.spec.bgp?.ipv4Address;
  const subnet = subnetCidr !== undefined ? safeNet(subnetCidr) : undefined;

  // WireGuard (confd processWireguardPeers): only when this node itself has a WireGuard address of the family.
  const wgPeers = new Set<string>();
  for (const fam of [4, 6] as const) {
    const wgOf = (n: typeof me): string | undefined => (fam === 4 ? n?.spec.wireguard?.interfaceIPv4Address : n?.spec.wireguard?.interfaceIPv6Address);
    if (!wgOf(me)) continue;
    for (const n of model.list('Node')) {
      if (n.metadata.name === nodeName || !wgOf(n)) continue;
      const a = fam === 4 ? n.spec.bgp?.ipv4Address : n.spec.bgp?.ipv6Address;
      if (a !== undefined) wgPeers.add(a.split('/')[0]!);
    }
  }

  const key = JSON.stringify([policy, serviceCidrs, pools.map((p) => [p.cidr, p.rule]), subnetCidr, [...wgPeers].sort()]);
  // The IPv4 parts as numbers, for decide4.
  const services4 = services.filter((n) => n.family === 4).map(net4);
  const pools4 = pools.filter((p) => p.net.family === 4).map((p) => ({ ...net4(p.net), rule: p.rule }));
  const subnet4 = subnet?.family === 4 ? net4(subnet) : undefined;
  return {
    key,
    decide4(addr, len, nextHops) {
      for (const s of services4) if (within4(addr, len, s)) return 'reject';
      if (wgPeers.size > 0 && nextHops.some((h) => wgPeers.has(h))) return 'reject';
      const pool = pools4.find((p) => within4(addr, len, p));
      if (!pool) return 'accept';
      if (pool.rule !== 'cross-subnet') return pool.rule;
      const hop = nextHops[0] !== undefined ? safeNet(`${nextHops[0]}/32`) : undefined;
      return subnet4 && hop?.family === 4 && within4(Number(hop.bits), 32, subnet4) ? 'accept' : 'tunnel';
    },
    decide(prefix, nextHops) {
      const n = safeNet(prefix);
      if (!n) return 'accept';
      if (services.some((s) => netWithin(n, s))) return 'reject';
      if (wgPeers.size > 0 && nextHops.some((h) => wgPeers.has(h))) return 'reject';
      const pool = pools.find((p) => netWithin(n, p.net));
      if (!pool) return 'accept';
      if (pool.rule !== 'cross-subnet') return pool.rule;
      // CrossSubnet: `bgp_next_hop ~ localSubnet` keeps the route direct, anything else goes through tunl0.
      const hop = nextHops[0] !== undefined ? safeNet(`${nextHops[0]}/32`) : undefined;
      return subnet && hop && netWithin(hop, subnet) ? 'accept' : 'tunnel';
    },
  };
}
