// The lab's routers as configuration text: the ToRs' FRR or BIRD 2 configuration, and the BIRD configuration of a
// host that still runs Calico's BGP stack (a mixed cluster), rendered as Calico's confd would. Pure, like
// topology.ts, whose plan it reads.
import type { Host, Plan, Tor } from './topology.js';

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
