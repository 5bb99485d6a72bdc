// BIRD 2 configured as Calico's confd renders a node's configuration — one renderer for the lab (a mixed cluster's
// BIRD hosts) and the benchmarks whose reference runs BIRD hosts (bench/failover, bench/converge). Calico's own
// templates are BIRD 1 files (projectcalico/calico confd/etc/calico/confd/templates/: bird.cfg.template with bgp_template and the peers,
// bird_aggr.cfg.template for the affine blocks, bird_ipam.cfg.template for calico_export_to_bgp_peers and
// calico_kernel_programming); this writes the same decisions in BIRD 2's syntax, where each family is a channel:
// - device and kernel scans every 2 s; the kernel protocol learns the routes Felix wrote (alien routes), keeps its
//   own on exit, merges equal paths and takes part in graceful restart; into the kernel go BGP and static routes;
// - a direct protocol for the host's subnets, never the workload interfaces (cali*: Felix's routes);
// - per affine block a blackhole static route (the aggregate exists even with no pod in it), and an export filter
//   that announces the block but nothing inside it, then anything inside an IP pool, then nothing;
// - bgp_template: no hold time (BIRD's 240 s), graceful restart (BIRD's 120 s: confd writes `graceful restart time`
//   only when nodeMeshMaxRestartTime is set), multihop, ADD-PATH, recursive next hops, and confd's connect timers;
// - peers that run Calico too (mesh, node peers, reflectors) are passive towards the address that sorts after ours
//   (bird.cfg.template's `if gt $onode_ip $node_ip`: Go's template `gt` on two strings compares them as strings), so
//   one side dials: Calico's fix for a graceful-restart race.
// Pure: the callers write the file and start BIRD. With one family the names are Calico's (bgp_template,
// calico_export_to_bgp_peers); with two, each family's protocols, filter and template carry a _v4 / _v6 suffix.

/** A BGP peer of the node, in one family. */
export interface CalicoBirdPeer {
  /** the protocol name's prefix, as confd names them: Mesh (node-to-node mesh), Node (node peer), Global */
  kind: 'Mesh' | 'Node' | 'Global';
  ip: string;
  asn: number;
  /** we reflect to it (RFC 4456): `rr client` with this cluster id */
  rrClusterId?: string;
}

/** One family of the node: its address, blocks, pools and peers. */
export interface CalicoBirdFamily {
  family: 4 | 6;
  /** our address in this family: the BGP sessions' source, and what the passive rule compares */
  address: string;
  /** IPAM blocks affine to this node (bird_aggr.cfg) */
  blocks: readonly string[];
  /** IP pools whose routes are exported (bird_ipam.cfg) */
  pools: readonly string[];
  peers: readonly CalicoBirdPeer[];
}

export interface CalicoBirdNode {
  routerId: string;
  asn: number;
  families: readonly CalicoBirdFamily[];
  /** a comment line first */
  comment?: string;
  /** the body of a `log` statement, e.g. `stderr { warning, error, fatal }` */
  log?: string;
  /** interfaces the direct protocol leaves out (default cali*, Felix's) */
  directExclude?: readonly string[];
}

/** The configuration text, newline-terminated. */
export function calicoBirdConf(node: CalicoBirdNode): string {
  const multi = node.families.length > 1;
  const sfx = (f: 4 | 6): string => (multi ? `_v${f}` : '');
  const exclude = (node.directExclude ?? ['cali*']).map((i) => `-"${i}", `).join('');
  const lines: string[] = [];
  if (node.comment !== undefined) lines.push(`# ${node.comment}`);
  if (node.log !== undefined) lines.push(`log ${node.log};`);
  lines.push(
    `router id ${node.routerId};`,
    'protocol device { scan time 2; }',
    `protocol direct { ${node.families.map((x) => `ipv${x.family}; `).join('')}interface ${exclude}"*"; }`,
  );
  for (const x of node.families) {
    const f = x.family;
    lines.push(
      `protocol kernel${multi ? ` kernel_v${f}` : ''} {`,
      `  ipv${f} { import all; export filter { if source = RTS_BGP || source = RTS_STATIC then accept; reject; }; };`,
      '  learn; persist; scan time 2; merge paths on; graceful restart;',
      '}',
    );
    if (x.blocks.length > 0) lines.push(`protocol static${multi ? ` static_v${f}` : ''} { ipv${f}; ${x.blocks.map((b) => `route ${b} blackhole; `).join('')}}`);
    lines.push(`filter calico_export_to_bgp_peers${sfx(f)} {`);
    for (const b of x.blocks) lines.push(`  if net = ${b} then accept;`, `  if net ~ [ ${b}+ ] then reject;`);
    for (const p of x.pools) lines.push(`  if net ~ [ ${p}+ ] then accept;`);
    lines.push(
      '  reject;',
      '}',
      `template bgp bgp_template${sfx(f)} {`,
      `  local ${x.address} as ${node.asn};`,
      '  multihop;',
      `  ipv${f} { import all; export filter calico_export_to_bgp_peers${sfx(f)}; add paths on; gateway recursive; };`,
      '  graceful restart;',
      '  connect delay time 2; connect retry time 5; error wait time 5,30;',
      '}',
    );
    for (const p of x.peers) {
      const opts = [`neighbor ${p.ip} as ${p.asn};`];
      // both ends run Calico's rule, so exactly one dials; an external router (Global) is always dialled
      if (p.kind !== 'Global' && p.ip > x.address) opts.push('passive on;');
      if (p.rrClusterId !== undefined) opts.push(`rr client; rr cluster id ${p.rrClusterId};`);
      lines.push(`protocol bgp ${p.kind}_${p.ip.replace(/[.:]/g, '_')} from bgp_template${sfx(f)} { ${opts.join(' ')} }`);
    }
  }
  return `${lines.join('\n')}\n`;
}
