// The lab's routers as configuration text: the ToRs' FRR or BIRD 2 configuration, and the BIRD configuration of a
// host that still runs Calico's BGP stack (a mixed cluster), rendered as Calico's confd would. Pure, like
// topology.ts, whose plan it reads.
import { calicoBirdConf } from './calico-bird.js';
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
 * render for it (node-to-node mesh on, no encapsulation), through the one renderer (calico-bird.ts): its affine
 * blocks blackholed and announced, the pod and VM pools exported, one iBGP mesh session per other node and
 * family; the direct protocol also leaves out tap* (the lab's VMs) and kube-ipvs* (every cluster IP).
 */
export function birdHostConf(plan: Plan, host: Host): string {
  const families: (4 | 6)[] = plan.ipv6 ? [4, 6] : [4];
  const addr = (h: Host, f: 4 | 6): string => (f === 4 ? h.ip : h.ip6);
  return calicoBirdConf({
    comment: `BIRD 2 on ${host.name} as Calico's confd configures a node (node-to-node mesh, AS ${plan.clusterAsn}), rendered by skein's lab.`,
    log: 'stderr { info, remote, warning, error, auth, fatal, bug }',
    routerId: host.ip,
    asn: plan.clusterAsn,
    directExclude: ['cali*', 'tap*', 'kube-ipvs*'],
    families: families.map((f) => {
      const block = f === 4 ? host.block : host.block6;
      return {
        family: f,
        address: addr(host, f),
        blocks: block === undefined ? [] : [block],
        pools: f === 4 ? [plan.podPool, plan.vmPool] : [plan.podPool6, plan.vmPool6],
        peers: plan.hosts.filter((p) => p.name !== host.name).map((p) => ({ kind: 'Mesh' as const, ip: addr(p, f), asn: plan.clusterAsn })),
      };
    }),
  });
}
