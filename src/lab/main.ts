#!/usr/bin/env node
// The lab (`npm start`, `npm run lab:down`): a small data centre out of network namespaces on this machine —
// two Kubernetes hosts with pods, two OpenStack compute hosts with VMs, one L2 fabric, a top-of-rack router (FRR,
// BIRD 2, or skeind as a route reflector) or the node-to-node mesh, or racks each with its own segment, AS and ToR
// — with the real skeind on every host (or BIRD 2 configured as Calico's confd would, on the hosts of a mixed
// cluster), then pings from every VM to every pod and back. Live commands (add-pod, del-pod, migrate-vm, drain)
// change a running lab.
//
// Everything lives in namespaces named `<prefix>…` (default "skl_"; the tests' fixture sweeps names like
// "sk<tag>-", so the lab's prefix deliberately does not have that shape). Nothing in the root namespace is
// touched: links are created inside a namespace and moved between namespaces, never into the root one.
// State (resources.yaml, skein.yaml per host, sockets, logs, pid files) goes to /run/skein-lab/<prefix>/.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectedDropped, expectedRemote, learns, skeinYaml, RACK_LETTERS, TOR_CLUSTER_ID, TOR_NODE, type Host, type Workload } from './topology.js';
import { addPod, deletePod, drainHost, etcdPair, migrateVm, parseResources, renderResources, resourcesYaml, type Doc } from './resources.js';
import { birdHostConf, birdTorConf } from './router-conf.js';
import { DEFAULT_PREFIX, FRR_DIR, frrInstalled, LabError, LIVE, parseOptions, planFor, USAGE, which, type Options } from './options.js';
import { alive, FABRIC_MAC, hostNeighbours, ipn, listNamespaces, macOf, makeNs, nsx, plug, readState, say, sh, shAsync, stateDir, staticNeighbours, until, veth, type State } from './system.js';
import { birdBgpStates, birdc, ETCD_IP, ETCD_URL, felixRoutes, startBird, startEtcd, startFrr } from './daemons.js';

const HERE = import.meta.dirname;
const SKEIND = join(HERE, '..', 'skeind.js');
const SKEINCTL = join(HERE, '..', 'skeinctl.js');

async function down(o: Options, quiet = false): Promise<{ namespaces: number; processes: number }> {
  const state = readState(o);
  const namespaces = new Set([...(state?.namespaces ?? []).filter((n) => n.startsWith(o.prefix)), ...listNamespaces(o.prefix)]);
  const pids = new Set<number>();
  for (const p of state?.pids ?? []) {
    // Only a process that is still one of ours (a pid may have been reused since).
    try {
      const cmdline = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
      if (/skeind|bgpd|zebra|etcd|bird/.test(cmdline)) pids.add(p.pid);
    } catch {
      /* gone */
    }
  }
  for (const ns of namespaces) {
    try {
      for (const l of sh('ip', ['netns', 'pids', ns]).split('\n')) if (/^\d+$/.test(l.trim())) pids.add(Number(l.trim()));
    } catch {
      /* namespace gone meanwhile */
    }
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  await until('processes to stop after SIGTERM', 5_000, () => ([...pids].every((p) => !alive(p)) ? true : undefined));
  for (const pid of pids) {
    if (!alive(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await until('processes to go after SIGKILL', 3_000, () => ([...pids].every((p) => !alive(p)) ? true : undefined));
  // Deleting a namespace deletes its links, and with them the other end of every veth.
  for (const ns of namespaces) {
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch (e) {
      if (listNamespaces(o.prefix).includes(ns)) throw e;
    }
  }
  rmSync(stateDir(o), { recursive: true, force: true });
  // FRR's path spaces for the ToRs (their names are ours: the ToR namespaces').
  for (const label of ['tor', ...RACK_LETTERS.map((r) => `tor-${r}`)]) rmSync(join('/run/frr', `${o.prefix}${label}`), { recursive: true, force: true });
  if (!quiet) say(`lab down: removed ${namespaces.size} namespaces (prefix ${o.prefix}), stopped ${pids.size} processes`);
  return { namespaces: namespaces.size, processes: pids.size };
}

// ---------------------------------------------------------------------------------------------------------------
// Namespaces and links, shared by up and the live commands.

function preflight(o: Options): void {
  if (process.getuid?.() !== 0) throw new LabError('the lab needs root (network namespaces): run it as root, e.g. sudo npm start');
  for (const cmd of ['ip', 'ping', 'sysctl']) if (which(cmd) === undefined) throw new LabError(`required tool "${cmd}" not found in PATH (Debian: iproute2, iputils-ping, procps)`);
  if (!existsSync(SKEIND)) throw new LabError(`${SKEIND} not found: run npm run build first`);
  if (o.datastore === 'etcd' && (which('etcd') === undefined || which('etcdctl') === undefined)) {
    throw new LabError('--datastore etcd: etcd and etcdctl not found in PATH (Debian: etcd-server, etcd-client); the default file datastore needs neither');
  }
  if ((o.tor === 'bird' || o.birdHosts.length > 0) && (which('bird') === undefined || which('birdc') === undefined)) {
    throw new LabError(`${o.tor === 'bird' ? '--tor bird' : '--bird-hosts'}: bird and birdc (BIRD 2) not found in PATH (Debian package bird2)`);
  }
  if (o.tor === 'frr' && !frrInstalled()) throw new LabError(`--tor frr: FRR not installed (${FRR_DIR}/zebra, bgpd and vtysh; Debian package frr); use --topology mesh`);
}

async function up(o: Options): Promise<number> {
  preflight(o);
  const plan = planFor(o);
  const dir = stateDir(o);
  if (listNamespaces(o.prefix).length > 0 || existsSync(dir)) {
    say(`a lab with prefix ${o.prefix} exists: removing it first`);
    await down(o, true);
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const state: State = {
    prefix: o.prefix, topology: o.topology, tor: o.tor, ipv6: o.ipv6, datastore: o.datastore,
    racks: o.racks, rackAs: o.rackAs, ...(o.allowOwnAs !== undefined ? { allowOwnAs: o.allowOwnAs } : {}), birdHosts: o.birdHosts, pids: [], namespaces: [],
  };
  const saveState = (): void => writeFileSync(join(dir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
  const ns = (label: string): string => {
    const name = `${o.prefix}${label}`;
    // Recorded before it exists, so a lab killed right here is still cleaned up by name.
    state.namespaces.push(name);
    saveState();
    makeNs(name, plan.ipv6);
    return name;
  };
  const torName = o.tor === 'skein' ? 'skeind route reflector' : o.tor === 'bird' ? 'BIRD 2' : 'FRR';
  const shape = plan.racks > 0
    ? `${plan.racks} racks (ToRs: ${torName}, AS ${plan.torAsn}; racks ${plan.rackAs === 'shared' ? 'share AS 65001' : 'in AS 65001, 65002, ...'}${plan.allowOwnAs > 0 ? `, numAllowedLocalASNumbers ${plan.allowOwnAs}` : ''})`
    : `topology ${o.topology}${o.topology === 'tor' ? ` (ToR: ${torName})` : ''}${o.birdHosts.length > 0 ? `, BIRD 2 on ${o.birdHosts.join(', ')} (mixed cluster)` : ''}`;
  say(`building the lab: ${shape}, ${plan.ipv6 ? 'dual stack' : 'IPv4 only'}, datastore ${o.datastore}, prefix ${o.prefix}, state in ${dir}`);
  // The fabric: one bridge (br0), or one per rack (br-a, br-b, ...) plus the spine segment joining the ToRs (brs).
  const fabric = ns('fabric');
  const bridge = (name: string): void => {
    ipn(fabric, 'link', 'add', name, 'type', 'bridge');
    ipn(fabric, 'link', 'set', name, 'up');
  };
  const segments = plan.racks > 0 ? RACK_LETTERS.slice(0, plan.racks).map((r) => `br-${r}`) : ['br0'];
  for (const b of segments) bridge(b);
  if (plan.racks > 0) bridge('brs');
  const segmentOf = (rack: string | undefined): string => (rack === undefined ? 'br0' : `br-${rack}`);
  const hostNs = new Map<string, string>();
  // Who is on which segment, for the permanent neighbour entries (see staticNeighbours).
  const members: { br: string; ns: string; dev: string; ip: string; ip6: string; mac: string }[] = [];
  const fixNeighbours = (): void => {
    for (const m of members) {
      const others = members.filter((x) => x.br === m.br && x !== m);
      staticNeighbours(m.ns, others.flatMap((x) => [{ ip: x.ip, mac: x.mac, dev: m.dev }, ...(plan.ipv6 && x.ip6 !== '' ? [{ ip: x.ip6, mac: x.mac, dev: m.dev }] : [])]));
    }
  };
  const attach = (label: string, ip: string, ip6: string, br: string, nsName = ns(label), dev = 'eth0'): string => {
    const n = nsName;
    const port = `${dev === 'eth0' ? 'p' : 's'}-${label}`.slice(0, 15);
    const mac = macOf(FABRIC_MAC, ip);
    veth(fabric, port, n, dev, mac);
    members.push({ br, ns: n, dev, ip, ip6, mac });
    ipn(fabric, 'link', 'set', port, 'master', br);
    ipn(n, 'addr', 'add', `${ip}/${plan.fabricCidrLen}`, 'dev', dev);
    nsx(n, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    if (plan.ipv6) {
      ipn(n, '-6', 'addr', 'add', `${ip6}/64`, 'dev', dev, 'nodad');
      nsx(n, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
    }
    return n;
  };
  for (const h of plan.hosts) {
    const n = attach(h.label, h.ip, h.ip6, segmentOf(h.rack));
    hostNs.set(h.name, n);
    // Workloads use 169.254.1.1 as their gateway, answered by proxy ARP on the host's cali/tap interface (as
    // Calico does); proxy ARP answers only for an address the host has a route to.
    ipn(n, 'addr', 'add', '169.254.1.1/32', 'dev', 'lo');
  }
  say(`fabric: ${segments.join(', ')}${plan.racks > 0 ? ' (one per rack) and brs (spine)' : ''} in ${fabric}; hosts ${plan.hosts.map((h) => `${h.name} ${h.ip}${plan.ipv6 ? ` ${h.ip6}` : ''}${h.rack !== undefined ? ` (rack ${h.rack}, AS ${h.asn})` : ''}`).join(', ')}`);
  const wlNs = new Map<string, string>();
  for (const w of plan.workloads) {
    const n = ns(w.name);
    wlNs.set(w.name, n);
    plug(hostNs.get(w.host)!, n, w, plan.ipv6);
    // On a BIRD host Felix writes the workload's device route (BIRD learns it from the kernel); skeind writes
    // its own.
    if (plan.hosts.find((h) => h.name === w.host)!.bird) felixRoutes(hostNs.get(w.host)!, w, plan.ipv6);
  }
  say(`workloads: ${plan.workloads.map((w) => `${w.name} ${w.ip}${plan.ipv6 ? ` ${w.ip6}` : ''} (${w.host}, ${w.ifname})`).join(', ')}`);

  // The datastore: one resources.yaml for all hosts, or one etcd, as Calico would have written it. (The file
  // is written for etcd too: it is the readable copy of what was loaded.)
  const resources = join(dir, 'resources.yaml');
  writeFileSync(resources, resourcesYaml(plan));
  const counts = `${plan.hosts.length} Nodes, ${plan.hosts.filter((h) => h.block).length * (plan.ipv6 ? 2 : 1)} IPAM blocks, ${plan.workloads.length} WorkloadEndpoints`;
  let datastore: { file: string } | { etcd: string } = { file: resources };
  if (o.datastore === 'etcd') {
    // etcd listens on the bridge itself: a member of the segment like the hosts.
    const mac = macOf(FABRIC_MAC, ETCD_IP);
    ipn(fabric, 'link', 'set', 'br0', 'address', mac);
    members.push({ br: 'br0', ns: fabric, dev: 'br0', ip: ETCD_IP, ip6: '', mac });
    datastore = { etcd: await startEtcd(plan, fabric, dir, state) };
    saveState();
    say(`datastore: etcd at ${datastore.etcd} in ${fabric} (${counts}); data in ${dir}/etcd`);
  } else {
    say(`datastore: ${resources} (${counts})`);
  }

  // The ToR(s): FRR or BIRD 2, or skeind as a route reflector (started with the hosts' below).
  const skeinNodes: { name: string; ns: string }[] = plan.hosts.filter((h) => !h.bird).map((h) => ({ name: h.name, ns: hostNs.get(h.name)! }));
  const torNs = new Map<string, string>();
  const birdSockets = new Map<string, string>();
  for (const tor of plan.tors) {
    const n = attach(tor.name, tor.ip, tor.ip6, segmentOf(tor.rack));
    torNs.set(tor.name, n);
    if (tor.spineIp !== undefined) attach(tor.name, tor.spineIp, tor.spineIp6!, 'brs', n, 'spine');
  }
  fixNeighbours();
  for (const tor of plan.tors) {
    const n = torNs.get(tor.name)!;
    if (o.tor === 'frr') {
      startFrr(plan, tor, n, state);
    } else if (o.tor === 'bird') {
      birdSockets.set(tor.name, await startBird(birdTorConf(plan, tor), tor.name, n, dir, state));
      say(`ToR: BIRD 2 in ${n} (${tor.ip}, AS ${tor.asn}), config ${join(dir, `${tor.name}.bird.conf`)}`);
    } else {
      skeinNodes.push({ name: TOR_NODE, ns: n });
    }
    saveState();
  }
  // A mixed cluster: BIRD on the hosts that have not moved to skein yet.
  for (const h of plan.hosts.filter((x) => x.bird)) {
    birdSockets.set(h.name, await startBird(birdHostConf(plan, h), h.name, hostNs.get(h.name)!, dir, state));
    saveState();
    say(`${h.name}: BIRD 2 configured as Calico's confd would (mesh, block aggregates, kernel learn), config ${join(dir, `${h.name}.bird.conf`)}`);
  }

  // skeind on every host (and on the ToR with --tor skein: its FIB on, so the ToR routes too).
  const sockets = new Map<string, string>();
  for (const h of skeinNodes) {
    const cfg = join(dir, `${h.name}.yaml`);
    const sock = join(dir, `${h.name}.sock`);
    sockets.set(h.name, sock);
    writeFileSync(cfg, skeinYaml(h, datastore, sock));
    const log = openSync(join(dir, `${h.name}.log`), 'a');
    // `ip netns exec` execs the command: the pid is skeind's. Detached, so the lab outlives this process.
    const child = spawn('ip', ['netns', 'exec', h.ns, process.execPath, SKEIND, '--config', cfg], { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    state.pids.push({ name: h.name === TOR_NODE ? 'skeind (ToR)' : `skeind ${h.name}`, pid: child.pid! });
    saveState();
  }
  say(`skeind started on ${skeinNodes.map((h) => h.name).join(', ')} (logs: ${dir}/<host>.log)`);

  // Sessions up. One session per family (as Calico's BIRD and BIRD6): each mesh peer, the ToR, or under racks
  // the rack's other hosts and its ToR.
  const perFamily = (h: Host): number => {
    if (plan.racks > 0) return plan.hosts.filter((x) => x.rack === h.rack).length;
    return o.topology === 'mesh' ? plan.hosts.length - 1 : 1;
  };
  const ctlJson = async (host: string, ...args: string[]): Promise<Record<string, unknown> | undefined> => {
    const r = await shAsync(process.execPath, [SKEINCTL, '--socket', sockets.get(host)!, ...args, '--json'], 10_000);
    if (!r.ok) return undefined;
    try {
      return JSON.parse(r.out) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  };
  // The route reflector peers with every host.
  const fam = plan.ipv6 ? 2 : 1;
  const peersOf = (name: string): number => (name === TOR_NODE ? plan.hosts.length * fam : perFamily(plan.hosts.find((h) => h.name === name)!) * fam);
  const established = await Promise.all(skeinNodes.map((h) => until(`${h.name}: ${peersOf(h.name)} BGP sessions Established`, 40_000, async () => {
    const s = await ctlJson(h.name, 'status');
    const peers = (s?.peers ?? []) as { state: string }[];
    return peers.length === peersOf(h.name) && peers.every((p) => p.state === 'Established') ? true : undefined;
  })));
  say(`BGP: ${established.filter(Boolean).length}/${skeinNodes.length} skeinds have all their session(s) Established`);
  if (birdSockets.size > 0) {
    const birdUp = await Promise.all([...birdSockets].map(([name, sock]) => until(`${name}: BIRD's BGP sessions Established`, 40_000, async () => {
      const rows = birdBgpStates(await birdc(sock, 'show', 'protocols'));
      return rows.length > 0 && rows.every((r) => r.state === 'Established') ? true : undefined;
    })));
    say(`BGP: ${birdUp.filter(Boolean).length}/${birdSockets.size} BIRDs have all their sessions Established`);
  }

  // Routes in every host's kernel: the other hosts' blocks and VM /32s (skein's proto 171, BIRD's proto bird).
  const families: (4 | 6)[] = plan.ipv6 ? [4, 6] : [4];
  const proto = (h: Host): string => (h.bird ? 'bird' : '171');
  const routesOf = (h: Host, f: 4 | 6): Set<string> => new Set((JSON.parse(ipn(hostNs.get(h.name)!, '-j', `-${f}`, 'route', 'show', 'proto', proto(h))) as { dst: string }[]).map((r) => r.dst));
  const routed = await Promise.all(plan.hosts.map((h) => until(`${h.name}: routes to the other hosts' blocks and VMs`, 20_000, () => {
    return families.every((f) => {
      const have = routesOf(h, f);
      return expectedRemote(plan, h.name, f).every((d) => have.has(d.dst));
    }) ? true : undefined;
  })));
  say(`routes: ${routed.filter(Boolean).length}/${plan.hosts.length} hosts have every remote block and VM ${plan.ipv6 ? '/32 and /128' : '/32'}`);
  const dropped = plan.hosts.some((h) => expectedDropped(plan, h.name).length > 0);
  if (dropped) {
    // The other racks' routes reached every ToR; the hosts dropped them: their own AS is in the path.
    const leaked = plan.hosts.flatMap((h) => families.flatMap((f) => {
      const have = routesOf(h, f);
      return expectedDropped(plan, h.name, f).filter((d) => have.has(d)).map((d) => `${h.name}: ${d}`);
    }));
    say(leaked.length === 0
      ? 'routes: as expected, no host has the other racks\' blocks and VMs (same AS in the path, numAllowedLocalASNumbers unset)'
      : `routes: UNEXPECTED, routes through another rack despite the AS loop: ${leaked.join(', ')}`);
  }
  // Ready: every start-up peer has sent its table (End-of-RIB) and the FIB is reconciled.
  const hostNodes = skeinNodes.filter((h) => h.name !== TOR_NODE);
  const ready = await Promise.all(hostNodes.map((h) => until(`${h.name}: skeind ready`, 15_000, async () => ((await ctlJson(h.name, 'status'))?.ready === true ? true : undefined))));
  say(`ready: ${ready.filter(Boolean).length}/${hostNodes.length} skeinds report ready`);

  // Host by host: skeinctl status (or birdc show protocols) and the kernel's routes.
  for (const h of plan.hosts) {
    const n = hostNs.get(h.name)!;
    const where = `${h.name} (${n}, ${h.ip}, AS ${h.asn}${h.rack !== undefined ? `, rack ${h.rack}` : ''}${h.bird ? ', BIRD 2' : ''})`;
    if (h.bird) {
      const sock = birdSockets.get(h.name)!;
      process.stdout.write(`\n=== ${where} ===\n$ birdc -s ${sock} show protocols\n${await birdc(sock, 'show', 'protocols')}`);
    } else {
      const st = await shAsync(process.execPath, [SKEINCTL, '--socket', sockets.get(h.name)!, 'status'], 10_000);
      process.stdout.write(`\n=== ${where} ===\n$ skeinctl --socket ${sockets.get(h.name)} status\n${st.ok ? st.out : `(failed: ${st.err.trim()})\n`}`);
    }
    process.stdout.write(`$ ip netns exec ${n} ip route show\n${ipn(n, 'route', 'show')}`);
    if (plan.ipv6) process.stdout.write(`$ ip netns exec ${n} ip -6 route show proto ${proto(h)}\n${ipn(n, '-6', 'route', 'show', 'proto', proto(h))}`);
  }
  for (const tor of plan.tors) {
    const n = torNs.get(tor.name)!;
    if (o.tor === 'skein') {
      const st = await shAsync(process.execPath, [SKEINCTL, '--socket', sockets.get(TOR_NODE)!, 'status'], 10_000);
      process.stdout.write(`\n=== ToR (skeind route reflector, ${n}, ${tor.ip}, AS ${tor.asn}, cluster ID ${TOR_CLUSTER_ID}) ===\n$ skeinctl --socket ${sockets.get(TOR_NODE)} status\n${st.ok ? st.out : `(failed: ${st.err.trim()})\n`}`);
      process.stdout.write(`$ ip netns exec ${n} ip route show proto 171\n${ipn(n, 'route', 'show', 'proto', '171')}`);
      continue;
    }
    const head = `\n=== ToR ${tor.name} (${torName}, ${n}, ${tor.ip}, AS ${tor.asn}${tor.rack !== undefined ? `, rack ${tor.rack}, spine ${tor.spineIp!}` : ''}) ===\n`;
    if (o.tor === 'bird') {
      const sock = birdSockets.get(tor.name)!;
      process.stdout.write(`${head}$ birdc -s ${sock} show protocols\n${await birdc(sock, 'show', 'protocols')}`);
    } else {
      const s = await shAsync('vtysh', ['-N', n, '-c', 'show bgp summary'], 10_000);
      process.stdout.write(`${head}$ vtysh -N ${n} -c 'show bgp summary'\n${s.ok ? s.out : `(failed: ${s.err.trim()})\n`}`);
    }
    const torProto = o.tor === 'bird' ? 'bird' : 'bgp';
    process.stdout.write(`$ ip netns exec ${n} ip route show proto ${torProto}\n${ipn(n, 'route', 'show', 'proto', torProto)}`);
    if (plan.ipv6) process.stdout.write(`$ ip netns exec ${n} ip -6 route show proto ${torProto}\n${ipn(n, '-6', 'route', 'show', 'proto', torProto)}`);
  }

  // Pings: every VM to every pod and back, in parallel, each retried a little while routes settle. Where a host
  // must drop the other racks' routes (see learns()), the ping must fail instead.
  process.stdout.write('\n');
  say('pinging every pod from every VM and back');
  const vms = plan.workloads.filter((w) => w.kind === 'vm');
  const pods = plan.workloads.filter((w) => w.kind === 'pod');
  const hostOf = (w: Workload): Host => plan.hosts.find((h) => h.name === w.host)!;
  const reachable = (a: Workload, b: Workload): boolean => learns(plan, hostOf(a), hostOf(b)) && learns(plan, hostOf(b), hostOf(a));
  const ping = async (from: string, to: string, expected: boolean): Promise<boolean> => {
    // A ping that must fail is tried once: a success is the surprise worth reporting.
    for (let i = 0; i < (expected ? 3 : 1); i++) {
      const r = await shAsync('ip', ['netns', 'exec', wlNs.get(from)!, 'ping', '-c1', '-W1', to], 5_000);
      if (r.ok) return true;
    }
    return false;
  };
  const results = new Map<string, boolean>();
  const addr = (w: (typeof vms)[number], f: 4 | 6): string => (f === 4 ? w.ip : w.ip6);
  await Promise.all(families.flatMap((f) => vms.flatMap((vm) => pods.flatMap((pod) => [
    ping(vm.name, addr(pod, f), reachable(vm, pod)).then((ok) => results.set(`${f}:${vm.name}>${pod.name}`, ok)),
    ping(pod.name, addr(vm, f), reachable(vm, pod)).then((ok) => results.set(`${f}:${pod.name}>${vm.name}`, ok)),
  ]))));
  let blocked = 0;
  let blockedOk = 0;
  for (const f of families) {
    const col = 24;
    const lines = [`${'VM \\ pod'.padEnd(col)}${pods.map((p) => `${p.name} ${addr(p, f)}`.padEnd(col)).join('')}`];
    for (const vm of vms) {
      const row = pods.map((p) => {
        const mark = (ok: boolean | undefined): string => {
          if (reachable(vm, p)) return ok ? 'ok' : 'FAIL';
          blocked++;
          if (!ok) blockedOk++;
          return ok ? 'REACHED' : 'no';
        };
        return `${mark(results.get(`${f}:${vm.name}>${p.name}`))} / ${mark(results.get(`${f}:${p.name}>${vm.name}`))}`.padEnd(col);
      });
      lines.push(`${`${vm.name} ${addr(vm, f)}`.padEnd(col)}${row.join('')}`);
    }
    const legend = blocked > 0 ? '; "no": unreachable as it must be, the AS loop check dropped the route' : '';
    process.stdout.write(`IPv${f} ping matrix (VM -> pod / pod -> VM${legend}):\n${lines.join('\n')}\n\n`);
  }
  const wanted = [...results].filter(([k]) => {
    const [, pair] = k.split(':') as [string, string];
    const [a, b] = pair.split('>') as [string, string];
    return reachable(plan.workloads.find((w) => w.name === a)!, plan.workloads.find((w) => w.name === b)!);
  });
  const ok = wanted.filter(([, v]) => v).length;
  const h0 = plan.hosts.find((h) => !h.bird) ?? plan.hosts[0]!;
  const downCmd = `npm run lab:down${o.prefix === DEFAULT_PREFIX ? '' : ` -- --prefix ${o.prefix}`}`;
  const tor0 = plan.tors[0];
  const hints: [string, string][] = [
    [`ip netns list | grep ^${o.prefix}`, 'the namespaces: hosts, workloads, fabric'],
    [`ip netns exec ${wlNs.get(vms[0]!.name)} ping ${pods[2]!.ip}`, `from ${vms[0]!.name} to ${pods[2]!.name} on ${pods[2]!.host}`],
    [`ip netns exec ${hostNs.get(h0.name)} ip route show proto 171`, `what skein programmed on ${h0.name}`],
    [`node ${SKEINCTL} --socket ${sockets.get(h0.name)} peers`, 'or status, routes, fib'],
    [`ip netns exec ${hostNs.get(h0.name)} curl -s 127.0.0.1:9180/metrics`, `${h0.name}'s metrics`],
    ...(tor0 !== undefined && o.tor === 'frr' ? [[`vtysh -N ${torNs.get(tor0.name)} -c 'show bgp ipv4 unicast'`, `the ToR${plan.racks > 0 ? ` of rack ${tor0.rack!}` : ''}`] as [string, string]] : []),
    ...(tor0 !== undefined && o.tor === 'bird' ? [[`birdc -s ${birdSockets.get(tor0.name)} show route`, `the ToR${plan.racks > 0 ? ` of rack ${tor0.rack!}` : ''}`] as [string, string]] : []),
    ...(o.tor === 'skein' ? [[`node ${SKEINCTL} --socket ${sockets.get(TOR_NODE)} routes`, 'the ToR (route reflector)'] as [string, string]] : []),
    ...plan.hosts.filter((h) => h.bird).map((h) => [`birdc -s ${birdSockets.get(h.name)} show route`, `${h.name}'s BIRD (Calico's configuration)`] as [string, string]),
    'file' in datastore
      ? [`$EDITOR ${resources}`, 'the datastore: every skeind follows it']
      : [`ip netns exec ${fabric} etcdctl --endpoints ${datastore.etcd} get --prefix /calico/ --keys-only`, 'the datastore'],
    [`less ${dir}/${h0.name}.log`, 'a skeind log'],
  ];
  const width = Math.max(...hints.map(([c]) => c.length)) + 2;
  process.stdout.write(['The lab keeps running. To explore it:', ...hints.map(([c, what]) => `  ${c.padEnd(width)}# ${what}`), `To remove it: ${downCmd}`, ''].join('\n'));
  if (blocked > 0) say(`lab: ${blockedOk}/${blocked} pings across racks fail, as the AS loop check demands`);
  say(`lab: ${ok}/${wanted.length} pings ok`);
  return ok === wanted.length && wanted.length > 0 && blockedOk === blocked ? 0 : 1;
}

async function liveChange(o: Options): Promise<number> {
  if (process.getuid?.() !== 0) throw new LabError(`${o.command} needs root (network namespaces)`);
  const dir = stateDir(o);
  const state = readState(o);
  if (state === undefined) throw new LabError(`no lab with prefix ${o.prefix} in ${o.stateRoot} (start one with npm start)`);
  const ipv6 = state.ipv6 ?? true;
  const tor = state.tor === 'skein' || state.tor === 'bird' || state.tor === 'frr' ? state.tor : 'none';
  const plan = planFor({ topology: state.topology, tor, ipv6, racks: state.racks ?? 0, rackAs: state.rackAs ?? 'distinct', birdHosts: state.birdHosts ?? [], ...(state.allowOwnAs !== undefined ? { allowOwnAs: state.allowOwnAs } : {}) });
  const isBird = (name: string): boolean => plan.hosts.find((h) => h.name === name)?.bird === true;
  const resources = join(dir, 'resources.yaml');
  let docs: Doc[];
  try {
    docs = parseResources(readFileSync(resources, 'utf8'));
  } catch (e) {
    throw new LabError(`${resources}: ${(e as Error).message}`);
  }
  const before = docs.map((d) => etcdPair(d));
  const hostNs = (name: string): string => {
    const h = plan.hosts.find((x) => x.name === name);
    if (h === undefined) throw new LabError(`no host ${name} (hosts: ${plan.hosts.map((x) => x.name).join(', ')})`);
    return `${o.prefix}${h.label}`;
  };
  const edit = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new LabError((e as Error).message);
    }
  };
  let done: string;
  let afterWrite: () => void = () => {};
  switch (o.command) {
    case 'add-pod': {
      const hns = hostNs(o.host!);
      if (plan.hosts.find((h) => h.name === o.host)!.kind !== 'k8s') throw new LabError(`${o.host} is not a Kubernetes host`);
      const { workload: w, borrowed } = edit(() => addPod(docs, { host: o.host!, name: o.name!, ip: o.ip, ip6: o.ip6, ipv6 }));
      const n = `${o.prefix}${w.name}`;
      if (listNamespaces(o.prefix).includes(n)) throw new LabError(`namespace ${n} exists already`);
      state.namespaces.push(n);
      writeFileSync(join(dir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
      // As Calico's CNI: the interface first, then the WorkloadEndpoint.
      makeNs(n, ipv6);
      plug(hns, n, w, ipv6);
      // A BIRD host has no skeind to write the device route: the lab does it, as Felix would.
      if (isBird(w.host)) felixRoutes(hns, w, ipv6);
      done = `pod ${w.name} ${w.ip}${w.ip6 ? ` ${w.ip6}` : ''} on ${w.host} (${w.ifname}, namespace ${n})${borrowed ? `: a borrowed address, announced by ${w.host} as a /32` : ''}`;
      break;
    }
    case 'del-pod': {
      const { host } = edit(() => deletePod(docs, o.name!));
      const n = `${o.prefix}${o.name!}`;
      afterWrite = () => {
        if (listNamespaces(o.prefix).includes(n)) sh('ip', ['netns', 'del', n]);
      };
      done = `pod ${o.name!} deleted from ${host}`;
      break;
    }
    case 'migrate-vm': {
      const vm = plan.workloads.find((w) => w.kind === 'vm' && w.name === o.name);
      if (vm === undefined) throw new LabError(`no VM ${o.name!} (VMs: ${plan.workloads.filter((w) => w.kind === 'vm').map((w) => w.name).join(', ')})`);
      const to = hostNs(o.to!);
      if (plan.hosts.find((h) => h.name === o.to)!.kind !== 'openstack') throw new LabError(`${o.to!} is not an OpenStack host`);
      const { from } = edit(() => migrateVm(docs, vm, o.to!));
      // The tap moves with the VM; its peer (the VM's eth0) stays connected, its MAC (the gateway's) unchanged.
      ipn(hostNs(from), 'link', 'set', vm.ifname, 'netns', to);
      ipn(to, 'link', 'set', vm.ifname, 'up');
      nsx(to, 'sysctl', '-qw', `net.ipv4.conf.${vm.ifname}.proxy_arp=1`);
      hostNeighbours(to, vm, ipv6);
      if (isBird(o.to!)) felixRoutes(to, vm, ipv6);
      done = `VM ${vm.name} ${vm.ip} migrated from ${from} to ${o.to!} (${vm.ifname})`;
      break;
    }
    case 'drain': {
      hostNs(o.host!);
      const { pods, blocks } = edit(() => drainHost(docs, o.host!));
      afterWrite = () => {
        for (const p of pods) if (listNamespaces(o.prefix).includes(`${o.prefix}${p}`)) sh('ip', ['netns', 'del', `${o.prefix}${p}`]);
      };
      done = `${o.host!} drained: pods ${pods.join(', ') || '(none)'} deleted, blocks ${blocks.join(', ') || '(none)'} released`;
      break;
    }
    default:
      throw new LabError(`not a live command: ${o.command}`);
  }
  // The readable copy (and the file datastore): written whole, then renamed, so a skeind never reads half a file.
  const tmp = `${resources}.tmp`;
  writeFileSync(tmp, renderResources(docs));
  renameSync(tmp, resources);
  if (state.datastore === 'etcd') {
    const after = docs.map((d) => etcdPair(d));
    const was = new Map(before.map((p) => [p.key, p.value]));
    const now = new Set(after.map((p) => p.key));
    const ctl = (...args: string[]): string => nsx(`${o.prefix}fabric`, 'etcdctl', '--endpoints', ETCD_URL, '--dial-timeout', '2s', ...args);
    for (const p of after) if (was.get(p.key) !== p.value) ctl('put', p.key, p.value);
    for (const k of was.keys()) if (!now.has(k)) ctl('del', k);
  }
  afterWrite();
  say(done);
  return 0;
}

async function main(): Promise<number> {
  let o: Options | { help: true };
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (e) {
    if (e instanceof LabError) {
      process.stderr.write(`lab: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if ('help' in o) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    if (LIVE.includes(o.command)) return await liveChange(o);
    if (o.command === 'down') {
      if (process.getuid?.() !== 0) throw new LabError('lab:down needs root (network namespaces): sudo npm run lab:down');
      await down(o);
      return 0;
    }
    return await up(o);
  } catch (e) {
    if (e instanceof LabError) {
      process.stderr.write(`lab: ${e.message}\n`);
      if (o.command === 'up' && listNamespaces(o.prefix).length > 0) {
        process.stderr.write(`lab: what was built is left for inspection; remove it with npm run lab:down${o.prefix === DEFAULT_PREFIX ? '' : ` -- --prefix ${o.prefix}`}\n`);
      }
      return 1;
    }
    throw e;
  }
}

process.exitCode = await main();
