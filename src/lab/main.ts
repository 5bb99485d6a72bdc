#!/usr/bin/env node
// The lab (`npm start`, `npm run lab:down`): a small data centre out of network namespaces on this machine —
// two Kubernetes hosts with pods, two OpenStack compute hosts with VMs, one L2 fabric, a top-of-rack router (FRR,
// or skeind as a route reflector) or the node-to-node mesh — with the real skeind on every host, then pings from
// every VM to every pod and back. Live commands (add-pod, del-pod, migrate-vm, drain) change a running lab.
//
// Everything lives in namespaces named `<prefix>…` (default "skl_"; the tests' fixture sweeps names like
// "sk<tag>-", so the lab's prefix deliberately does not have that shape). Nothing in the root namespace is
// touched: links are created inside a namespace and moved between namespaces, never into the root one.
// State (resources.yaml, skein.yaml per host, sockets, logs, pid files) goes to /run/skein-lab/<prefix>/.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, chmodSync, accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import {
  addPod, deletePod, drainHost, etcdPair, etcdPairs, expectedRemote, frrConf, makePlan, migrateVm, parseResources, renderResources, resourcesYaml, skeinYaml,
  TOR_CLUSTER_ID, TOR_NODE, type Doc, type Plan, type Topology, type Workload,
} from './topology.js';

const HERE = import.meta.dirname;
const SKEIND = join(HERE, '..', 'skeind.js');
const SKEINCTL = join(HERE, '..', 'skeinctl.js');
const FRR_DIR = '/usr/lib/frr';
const DEFAULT_PREFIX = 'skl_';
const DEFAULT_STATE = '/run/skein-lab';

const USAGE = `usage: npm start [-- OPTIONS]          build the lab, check it, leave it running
       npm run lab:down [-- --prefix P]   remove it (also after a lab that was killed)

  node dist/src/lab/main.js [up|down] [OPTIONS]

  --topology mesh|tor   mesh: node-to-node iBGP mesh (AS 64512);
                        tor (default): every host peers with a top-of-rack router
  --tor frr|skein|none  the ToR router for --topology tor (default: frr when FRR is installed, else skein):
                        frr: eBGP, the ToR AS 65000 and one AS per host;
                        skein: skeind as an iBGP route reflector (AS 64512, Calico's route-reflector
                        resources: the mesh off, every node peers with the Node labelled route-reflector)
                        none: same as --topology mesh
  --datastore file|etcd the datastore: file (default): one resources.yaml shared by every host;
                        etcd: one etcd (Debian etcd-server) in the fabric namespace on 10.10.0.2:2379
  --prefix P            namespace name prefix (default ${DEFAULT_PREFIX}); a lab per prefix
  --ipv4-only           no IPv6 (default: dual stack, fd00:: beside 10.x)
  --state-dir DIR       where the lab keeps its files (default ${DEFAULT_STATE})
  --help                this text

Live changes to a running lab (with its --prefix / --state-dir), made as Calico's CNI and IPAM, networking-calico
or a drain would make them: the datastore (resources.yaml or etcd) changes and every skeind follows.
  add-pod --host H --name N [--ip A] [--ip6 A6]
                        a pod on a Kubernetes host: namespace and cali veth, addresses from H's IPAM blocks (or
                        the ones given: outside H's blocks they are borrowed, announced by H as a /32), WorkloadEndpoint
  del-pod --name N      the pod's WorkloadEndpoint and namespace removed, its addresses released
  migrate-vm --name N --to H
                        a VM live-migrated: its tap moves to host H, its WorkloadEndpoint's node becomes H
  drain --host H        a host drained: its pods deleted, its block affinities and IPAM blocks released
`;

class LabError extends Error {}

type Command = 'up' | 'down' | 'add-pod' | 'del-pod' | 'migrate-vm' | 'drain';
const LIVE: readonly Command[] = ['add-pod', 'del-pod', 'migrate-vm', 'drain'];

interface Options {
  command: Command;
  /** the live commands' arguments */
  host?: string;
  name?: string;
  ip?: string;
  ip6?: string;
  to?: string;
  topology: Topology;
  tor: 'frr' | 'skein' | 'none';
  prefix: string;
  stateRoot: string;
  ipv6: boolean;
  datastore: 'file' | 'etcd';
}

function frrInstalled(): boolean {
  return ['zebra', 'bgpd'].every((b) => existsSync(join(FRR_DIR, b))) && which('vtysh') !== undefined;
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export function parseOptions(argv: readonly string[]): Options | { help: true } {
  let command: Command = 'up';
  const live: Pick<Options, 'host' | 'name' | 'ip' | 'ip6' | 'to'> = {};
  let topology: Topology | undefined;
  let tor: Options['tor'] | undefined;
  let prefix = DEFAULT_PREFIX;
  let stateRoot = DEFAULT_STATE;
  let ipv6 = true;
  let datastore: Options['datastore'] = 'file';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      const v = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || v === '') throw new LabError(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case 'up':
      case 'down':
      case 'add-pod':
      case 'del-pod':
      case 'migrate-vm':
      case 'drain':
        command = name;
        break;
      case '--host':
      case '--name':
      case '--ip':
      case '--ip6':
      case '--to': {
        const v = value();
        if (!/^[a-z0-9][a-z0-9.:-]{0,39}$/i.test(v)) throw new LabError(`${name}: "${v}" is not a plain name or address`);
        live[name.slice(2) as keyof typeof live] = v;
        break;
      }
      case '--help':
      case '-h':
        return { help: true };
      case '--topology': {
        const v = value();
        if (v !== 'mesh' && v !== 'tor') throw new LabError(`--topology: "${v}" is not mesh or tor`);
        topology = v;
        break;
      }
      case '--tor': {
        const v = value();
        if (v !== 'frr' && v !== 'skein' && v !== 'none') throw new LabError(`--tor: "${v}" is not frr, skein or none`);
        tor = v;
        break;
      }
      case '--datastore': {
        const v = value();
        if (v !== 'file' && v !== 'etcd') throw new LabError(`--datastore: "${v}" is not file or etcd`);
        datastore = v;
        break;
      }
      case '--prefix': {
        prefix = value();
        // Names become namespace names and file names; keep them plain and short.
        if (!/^[a-z][a-z0-9_.-]{0,11}$/.test(prefix)) throw new LabError(`--prefix: "${prefix}" must be 1-12 characters a-z 0-9 _ . - starting with a letter`);
        break;
      }
      case '--ipv4-only':
        ipv6 = false;
        break;
      case '--state-dir':
        stateRoot = value();
        break;
      default:
        throw new LabError(`unknown argument "${a}" (--help lists the options)`);
    }
  }
  if (tor === 'none' && topology === 'tor') throw new LabError('--topology tor needs a ToR router (--tor frr)');
  // The issue's default: a ToR that peers with every host, FRR when installed, else skein as a route reflector.
  if (topology === undefined) topology = tor === 'none' ? 'mesh' : 'tor';
  if (topology === 'tor' && tor === undefined) tor = frrInstalled() ? 'frr' : 'skein';
  if (topology === 'mesh') tor = 'none';
  const needs: Partial<Record<Command, (keyof typeof live)[]>> = { 'add-pod': ['host', 'name'], 'del-pod': ['name'], 'migrate-vm': ['name', 'to'], drain: ['host'] };
  for (const k of needs[command] ?? []) if (live[k] === undefined) throw new LabError(`${command} needs --${k}`);
  return { command, topology, tor: tor!, prefix, stateRoot, ipv6, datastore, ...live };
}

// ---------------------------------------------------------------------------------------------------------------
// Small process helpers. Every wait is bounded.

const t0 = Date.now();
function say(msg: string): void {
  process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`);
}

function sh(cmd: string, args: readonly string[], timeoutMs = 15_000): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new LabError(`${cmd} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

function shAsync(cmd: string, args: readonly string[], timeoutMs: number): Promise<{ ok: boolean; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs }, (error, out, err) => resolve({ ok: error === null, out, err }));
  });
}

const ipn = (ns: string, ...args: string[]): string => sh('ip', ['-n', ns, ...args]);
const nsx = (ns: string, cmd: string, ...args: string[]): string => sh('ip', ['netns', 'exec', ns, cmd, ...args]);

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000; i++) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) {
      say(`timed out after ${timeoutMs / 1000}s: ${what}`);
      return undefined;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return undefined;
}

function listNamespaces(prefix: string): string[] {
  return sh('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n !== '' && n.startsWith(prefix));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// down: by the state file's pids and by namespace prefix, so a lab killed half-way is cleaned up too.

interface State {
  prefix: string; topology: Topology; tor: string; ipv6?: boolean; datastore?: 'file' | 'etcd';
  pids: { name: string; pid: number }[]; namespaces: string[];
}

function stateDir(o: Options): string {
  return join(o.stateRoot, o.prefix);
}

function readState(o: Options): State | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir(o), 'state.json'), 'utf8')) as State;
  } catch {
    return undefined;
  }
}

async function down(o: Options, quiet = false): Promise<{ namespaces: number; processes: number }> {
  const state = readState(o);
  const namespaces = new Set([...(state?.namespaces ?? []).filter((n) => n.startsWith(o.prefix)), ...listNamespaces(o.prefix)]);
  const pids = new Set<number>();
  for (const p of state?.pids ?? []) {
    // Only a process that is still one of ours (a pid may have been reused since).
    try {
      const cmdline = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
      if (/skeind|bgpd|zebra|etcd/.test(cmdline)) pids.add(p.pid);
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
  // FRR's path space for the ToR (its name is ours: the ToR namespace's).
  rmSync(join('/run/frr', `${o.prefix}tor`), { recursive: true, force: true });
  if (!quiet) say(`lab down: removed ${namespaces.size} namespaces (prefix ${o.prefix}), stopped ${pids.size} processes`);
  return { namespaces: namespaces.size, processes: pids.size };
}

// ---------------------------------------------------------------------------------------------------------------
// Namespaces and links, shared by up and the live commands.

function makeNs(name: string, ipv6: boolean): void {
  sh('ip', ['netns', 'add', name]);
  ipn(name, 'link', 'set', 'lo', 'up');
  // No duplicate address detection: on a lab's private links it only delays IPv6 by a second or two.
  if (ipv6) nsx(name, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
}

/** A veth pair made inside `a`, one end moved to `b`: nothing is ever created in the root namespace. */
function veth(a: string, nameA: string, b: string, nameB: string, macB?: string): void {
  ipn(a, 'link', 'add', nameA, 'type', 'veth', 'peer', 'name', nameB, ...(macB ? ['address', macB] : []));
  ipn(a, 'link', 'set', nameB, 'netns', b);
  ipn(a, 'link', 'set', nameA, 'up');
  ipn(b, 'link', 'set', nameB, 'up');
}

/** A workload's namespace wired to its host as Calico's CNI (or Nova's tap) would: a veth, addresses, gateways. */
function plug(host: string, n: string, w: Workload, ipv6: boolean): void {
  // The host end has Calico's MAC ee:ee:ee:ee:ee:ee, so its IPv6 link-local address is the workloads' IPv6
  // gateway fe80::ecee:eeff:feee:eeee (as Calico's CNI sets up).
  veth(n, 'eth0', host, w.ifname, 'ee:ee:ee:ee:ee:ee');
  nsx(host, 'sysctl', '-qw', `net.ipv4.conf.${w.ifname}.proxy_arp=1`);
  ipn(n, 'addr', 'add', `${w.ip}/32`, 'dev', 'eth0');
  ipn(n, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0', 'onlink');
  if (ipv6 && w.ip6 !== '') {
    ipn(n, '-6', 'addr', 'add', `${w.ip6}/128`, 'dev', 'eth0', 'nodad');
    ipn(n, '-6', 'route', 'add', 'default', 'via', 'fe80::ecee:eeff:feee:eeee', 'dev', 'eth0');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// up

function preflight(o: Options): void {
  if (process.getuid?.() !== 0) throw new LabError('the lab needs root (network namespaces): run it as root, e.g. sudo npm start');
  for (const cmd of ['ip', 'ping', 'sysctl']) if (which(cmd) === undefined) throw new LabError(`required tool "${cmd}" not found in PATH (Debian: iproute2, iputils-ping, procps)`);
  if (!existsSync(SKEIND)) throw new LabError(`${SKEIND} not found: run npm run build first`);
  if (o.datastore === 'etcd' && (which('etcd') === undefined || which('etcdctl') === undefined)) {
    throw new LabError('--datastore etcd: etcd and etcdctl not found in PATH (Debian: etcd-server, etcd-client); the default file datastore needs neither');
  }
  if (o.tor === 'frr' && !frrInstalled()) throw new LabError(`--tor frr: FRR not installed (${FRR_DIR}/zebra, bgpd and vtysh; Debian package frr); use --topology mesh`);
}

async function up(o: Options): Promise<number> {
  preflight(o);
  const plan = makePlan(o.topology, o.ipv6, o.tor === 'skein' ? 'skein' : 'frr');
  const dir = stateDir(o);
  if (listNamespaces(o.prefix).length > 0 || existsSync(dir)) {
    say(`a lab with prefix ${o.prefix} exists: removing it first`);
    await down(o, true);
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const state: State = { prefix: o.prefix, topology: o.topology, tor: o.tor, ipv6: o.ipv6, datastore: o.datastore, pids: [], namespaces: [] };
  const saveState = (): void => writeFileSync(join(dir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
  const ns = (label: string): string => {
    const name = `${o.prefix}${label}`;
    // Recorded before it exists, so a lab killed right here is still cleaned up by name.
    state.namespaces.push(name);
    saveState();
    makeNs(name, plan.ipv6);
    return name;
  };

  say(`building the lab: topology ${o.topology}${o.topology === 'tor' ? ` (ToR: ${o.tor === 'skein' ? 'skeind route reflector' : 'FRR'})` : ''}, ${plan.ipv6 ? 'dual stack' : 'IPv4 only'}, datastore ${o.datastore}, prefix ${o.prefix}, state in ${dir}`);
  const fabric = ns('fabric');
  ipn(fabric, 'link', 'add', 'br0', 'type', 'bridge');
  ipn(fabric, 'link', 'set', 'br0', 'up');
  const hostNs = new Map<string, string>();
  const attach = (label: string, ip: string, ip6: string): string => {
    const n = ns(label);
    const port = `p-${label}`.slice(0, 15);
    veth(fabric, port, n, 'eth0');
    ipn(fabric, 'link', 'set', port, 'master', 'br0');
    ipn(n, 'addr', 'add', `${ip}/${plan.fabricCidrLen}`, 'dev', 'eth0');
    nsx(n, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    if (plan.ipv6) {
      ipn(n, '-6', 'addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad');
      nsx(n, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
    }
    return n;
  };
  for (const h of plan.hosts) {
    const n = attach(h.label, h.ip, h.ip6);
    hostNs.set(h.name, n);
    // Workloads use 169.254.1.1 as their gateway, answered by proxy ARP on the host's cali/tap interface (as
    // Calico does); proxy ARP answers only for an address the host has a route to.
    ipn(n, 'addr', 'add', '169.254.1.1/32', 'dev', 'lo');
  }
  say(`fabric: bridge br0 in ${fabric}; hosts ${plan.hosts.map((h) => `${h.name} ${h.ip}${plan.ipv6 ? ` ${h.ip6}` : ''}`).join(', ')}`);
  const wlNs = new Map<string, string>();
  for (const w of plan.workloads) {
    const n = ns(w.name);
    wlNs.set(w.name, n);
    plug(hostNs.get(w.host)!, n, w, plan.ipv6);
  }
  say(`workloads: ${plan.workloads.map((w) => `${w.name} ${w.ip}${plan.ipv6 ? ` ${w.ip6}` : ''} (${w.host}, ${w.ifname})`).join(', ')}`);

  // The datastore: one resources.yaml for all hosts, or one etcd, as Calico would have written it. (The file
  // is written for etcd too: it is the readable copy of what was loaded.)
  const resources = join(dir, 'resources.yaml');
  writeFileSync(resources, resourcesYaml(plan));
  const counts = `${plan.hosts.length} Nodes, ${plan.hosts.filter((h) => h.block).length * (plan.ipv6 ? 2 : 1)} IPAM blocks, ${plan.workloads.length} WorkloadEndpoints`;
  let datastore: { file: string } | { etcd: string } = { file: resources };
  if (o.datastore === 'etcd') {
    datastore = { etcd: await startEtcd(plan, fabric, dir, state) };
    saveState();
    say(`datastore: etcd at ${datastore.etcd} in ${fabric} (${counts}); data in ${dir}/etcd`);
  } else {
    say(`datastore: ${resources} (${counts})`);
  }

  // The ToR: FRR, or skeind as a route reflector (started with the hosts' below).
  const skeinNodes: { name: string; ns: string }[] = plan.hosts.map((h) => ({ name: h.name, ns: hostNs.get(h.name)! }));
  if (o.topology === 'tor') {
    const tor = attach('tor', plan.torIp, plan.torIp6);
    if (o.tor === 'frr') {
      startFrr(plan, tor, state);
      saveState();
    } else {
      skeinNodes.push({ name: TOR_NODE, ns: tor });
    }
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

  // Sessions up.
  // One session per family (as Calico's BIRD and BIRD6): a mesh peer or the ToR, per family.
  const expectPeers = (o.topology === 'mesh' ? plan.hosts.length - 1 : 1) * (plan.ipv6 ? 2 : 1);
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
  const peersOf = (name: string): number => (name === TOR_NODE ? plan.hosts.length * (plan.ipv6 ? 2 : 1) : expectPeers);
  const established = await Promise.all(skeinNodes.map((h) => until(`${h.name}: ${peersOf(h.name)} BGP sessions Established`, 40_000, async () => {
    const s = await ctlJson(h.name, 'status');
    const peers = (s?.peers ?? []) as { state: string }[];
    return peers.length === peersOf(h.name) && peers.every((p) => p.state === 'Established') ? true : undefined;
  })));
  say(`BGP: ${established.filter(Boolean).length}/${skeinNodes.length} skeinds have all their session(s) Established`);

  // Routes in every host's kernel: the other hosts' blocks and VM /32s.
  const families: (4 | 6)[] = plan.ipv6 ? [4, 6] : [4];
  const routed = await Promise.all(plan.hosts.map((h) => until(`${h.name}: routes to the other hosts' blocks and VMs`, 20_000, () => {
    return families.every((f) => {
      const have = new Set((JSON.parse(ipn(hostNs.get(h.name)!, '-j', `-${f}`, 'route', 'show', 'proto', '80')) as { dst: string }[]).map((r) => r.dst));
      return expectedRemote(plan, h.name, f).every((d) => have.has(d.dst));
    }) ? true : undefined;
  })));
  say(`routes: ${routed.filter(Boolean).length}/${plan.hosts.length} hosts have every remote block and VM ${plan.ipv6 ? '/32 and /128' : '/32'}`);
  // Ready: every start-up peer has sent its table (End-of-RIB) and the FIB is reconciled.
  const ready = await Promise.all(plan.hosts.map((h) => until(`${h.name}: skeind ready`, 15_000, async () => ((await ctlJson(h.name, 'status'))?.ready === true ? true : undefined))));
  say(`ready: ${ready.filter(Boolean).length}/${plan.hosts.length} skeinds report ready`);

  // Host by host: skeinctl status and the kernel's routes.
  for (const h of plan.hosts) {
    const st = await shAsync(process.execPath, [SKEINCTL, '--socket', sockets.get(h.name)!, 'status'], 10_000);
    process.stdout.write(`\n=== ${h.name} (${hostNs.get(h.name)}, ${h.ip}, AS ${h.asn}) ===\n$ skeinctl --socket ${sockets.get(h.name)} status\n${st.ok ? st.out : `(failed: ${st.err.trim()})\n`}`);
    process.stdout.write(`$ ip netns exec ${hostNs.get(h.name)} ip route show\n${ipn(hostNs.get(h.name)!, 'route', 'show')}`);
    if (plan.ipv6) process.stdout.write(`$ ip netns exec ${hostNs.get(h.name)} ip -6 route show proto 80\n${ipn(hostNs.get(h.name)!, '-6', 'route', 'show', 'proto', '80')}`);
  }
  if (o.topology === 'tor' && o.tor === 'skein') {
    const tor = `${o.prefix}tor`;
    const st = await shAsync(process.execPath, [SKEINCTL, '--socket', sockets.get(TOR_NODE)!, 'status'], 10_000);
    process.stdout.write(`\n=== ToR (skeind route reflector, ${tor}, ${plan.torIp}, AS ${plan.torAsn}, cluster ID ${TOR_CLUSTER_ID}) ===\n$ skeinctl --socket ${sockets.get(TOR_NODE)} status\n${st.ok ? st.out : `(failed: ${st.err.trim()})\n`}`);
    process.stdout.write(`$ ip netns exec ${tor} ip route show proto 80\n${ipn(tor, 'route', 'show', 'proto', '80')}`);
  } else if (o.topology === 'tor') {
    const tor = `${o.prefix}tor`;
    const s = await shAsync('vtysh', ['-N', tor, '-c', 'show bgp summary'], 10_000);
    process.stdout.write(`\n=== ToR (FRR, ${tor}, ${plan.torIp}, AS ${plan.torAsn}) ===\n$ vtysh -N ${tor} -c 'show bgp summary'\n${s.ok ? s.out : `(failed: ${s.err.trim()})\n`}`);
    process.stdout.write(`$ ip netns exec ${tor} ip route show\n${ipn(tor, 'route', 'show')}`);
    if (plan.ipv6) process.stdout.write(`$ ip netns exec ${tor} ip -6 route show proto bgp\n${ipn(tor, '-6', 'route', 'show', 'proto', 'bgp')}`);
  }

  // Pings: every VM to every pod and back, in parallel, each retried a little while routes settle.
  process.stdout.write('\n');
  say('pinging every pod from every VM and back');
  const vms = plan.workloads.filter((w) => w.kind === 'vm');
  const pods = plan.workloads.filter((w) => w.kind === 'pod');
  const ping = async (from: string, to: string): Promise<boolean> => {
    for (let i = 0; i < 3; i++) {
      const r = await shAsync('ip', ['netns', 'exec', wlNs.get(from)!, 'ping', '-c1', '-W1', to], 5_000);
      if (r.ok) return true;
    }
    return false;
  };
  const results = new Map<string, boolean>();
  const addr = (w: (typeof vms)[number], f: 4 | 6): string => (f === 4 ? w.ip : w.ip6);
  await Promise.all(families.flatMap((f) => vms.flatMap((vm) => pods.flatMap((pod) => [
    ping(vm.name, addr(pod, f)).then((ok) => results.set(`${f}:${vm.name}>${pod.name}`, ok)),
    ping(pod.name, addr(vm, f)).then((ok) => results.set(`${f}:${pod.name}>${vm.name}`, ok)),
  ]))));
  for (const f of families) {
    const col = 24;
    const lines = [`${'VM \\ pod'.padEnd(col)}${pods.map((p) => `${p.name} ${addr(p, f)}`.padEnd(col)).join('')}`];
    for (const vm of vms) {
      const row = pods.map((p) => {
        const there = results.get(`${f}:${vm.name}>${p.name}`) ? 'ok' : 'FAIL';
        const back = results.get(`${f}:${p.name}>${vm.name}`) ? 'ok' : 'FAIL';
        return `${there} / ${back}`.padEnd(col);
      });
      lines.push(`${`${vm.name} ${addr(vm, f)}`.padEnd(col)}${row.join('')}`);
    }
    process.stdout.write(`IPv${f} ping matrix (VM -> pod / pod -> VM):\n${lines.join('\n')}\n\n`);
  }
  const ok = [...results.values()].filter(Boolean).length;
  const h0 = plan.hosts[0]!;
  const downCmd = `npm run lab:down${o.prefix === DEFAULT_PREFIX ? '' : ` -- --prefix ${o.prefix}`}`;
  const hints: [string, string][] = [
    [`ip netns list | grep ^${o.prefix}`, 'the namespaces: hosts, workloads, fabric'],
    [`ip netns exec ${wlNs.get(vms[0]!.name)} ping ${pods[2]!.ip}`, `from ${vms[0]!.name} to ${pods[2]!.name} on ${pods[2]!.host}`],
    [`ip netns exec ${hostNs.get(h0.name)} ip route show proto 80`, `what skein programmed on ${h0.name}`],
    [`node ${SKEINCTL} --socket ${sockets.get(h0.name)} peers`, 'or status, routes, fib'],
    [`ip netns exec ${hostNs.get(h0.name)} curl -s 127.0.0.1:9180/metrics`, `${h0.name}'s metrics`],
    ...(o.topology === 'tor' && o.tor === 'frr' ? [[`vtysh -N ${o.prefix}tor -c 'show bgp ipv4 unicast'`, 'the ToR'] as [string, string]] : []),
    ...(o.topology === 'tor' && o.tor === 'skein' ? [[`node ${SKEINCTL} --socket ${sockets.get(TOR_NODE)} routes`, 'the ToR (route reflector)'] as [string, string]] : []),
    'file' in datastore
      ? [`$EDITOR ${resources}`, 'the datastore: every skeind follows it']
      : [`ip netns exec ${fabric} etcdctl --endpoints ${datastore.etcd} get --prefix /calico/ --keys-only`, 'the datastore'],
    [`less ${dir}/${h0.name}.log`, 'a skeind log'],
  ];
  const width = Math.max(...hints.map(([c]) => c.length)) + 2;
  process.stdout.write(['The lab keeps running. To explore it:', ...hints.map(([c, what]) => `  ${c.padEnd(width)}# ${what}`), `To remove it: ${downCmd}`, ''].join('\n'));
  say(`lab: ${ok}/${results.size} pings ok`);
  return ok === results.size && results.size > 0 ? 0 : 1;
}

/**
 * etcd in the fabric namespace, on an address of the fabric bridge, so every host reaches it over the fabric
 * (and nothing listens in the root namespace); then Calico's keys are loaded with etcdctl. Returns the URL.
 */
async function startEtcd(plan: Plan, fabric: string, dir: string, state: State): Promise<string> {
  const ip = '10.10.0.2';
  const url = ETCD_URL;
  ipn(fabric, 'addr', 'add', `${ip}/${plan.fabricCidrLen}`, 'dev', 'br0');
  const log = openSync(join(dir, 'etcd.log'), 'a');
  const child = spawn('ip', ['netns', 'exec', fabric, 'etcd', '--name', 'lab', '--data-dir', join(dir, 'etcd'),
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
    '--initial-cluster', 'lab=http://127.0.0.1:2380', '--log-level', 'warn'], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  state.pids.push({ name: 'etcd', pid: child.pid! });
  const ctl = (...args: string[]): Promise<{ ok: boolean; out: string; err: string }> => shAsync('ip', ['netns', 'exec', fabric, 'etcdctl', '--endpoints', url, '--dial-timeout', '2s', ...args], 10_000);
  const up = await until('etcd to answer', 15_000, async () => ((await ctl('endpoint', 'health')).ok ? true : undefined));
  if (!up) throw new LabError(`etcd did not come up in ${fabric}: see ${join(dir, 'etcd.log')}`);
  const pairs = etcdPairs(plan);
  const results = await Promise.all(pairs.map(({ key, value }) => ctl('put', key, value)));
  const bad = results.findIndex((r) => !r.ok);
  if (bad >= 0) throw new LabError(`etcdctl put ${pairs[bad]!.key}: ${results[bad]!.err.trim()}`);
  return url;
}

/** FRR's zebra and bgpd in the ToR namespace, with their own path space (/run/frr/<ns>/, `vtysh -N <ns>`). */
function startFrr(plan: Plan, tor: string, state: State): void {
  // FRR drops to the frr user: its configuration goes in its own path space (the state directory may be
  // private, e.g. a mkdtemp directory in a test).
  const pathspace = tor;
  const run = join('/run/frr', pathspace);
  mkdirSync(run, { recursive: true, mode: 0o755 });
  const conf = join(run, 'frr.conf');
  writeFileSync(conf, frrConf(plan));
  chmodSync(conf, 0o644);
  try {
    sh('chown', ['frr:frr', run]);
  } catch {
    /* FRR may run as root on this system */
  }
  for (const daemon of ['zebra', 'bgpd']) {
    // -d: FRR daemonizes itself; its pid file and log are in its path space (writable by the frr user).
    nsx(tor, join(FRR_DIR, daemon), '-d', '-N', pathspace, '-f', conf, '--log', `file:${join(run, `${daemon}.log`)}`);
    const pidFile = join(run, `${daemon}.pid`);
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0) state.pids.push({ name: `${daemon} (ToR)`, pid });
  }
  say(`ToR: FRR zebra + bgpd in ${tor} (${plan.torIp}, AS ${plan.torAsn}), config ${conf}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Live changes to a running lab: the system side (namespaces, links) here, the resource edits in topology.ts.

const ETCD_URL = 'http://10.10.0.2:2379';

async function liveChange(o: Options): Promise<number> {
  if (process.getuid?.() !== 0) throw new LabError(`${o.command} needs root (network namespaces)`);
  const dir = stateDir(o);
  const state = readState(o);
  if (state === undefined) throw new LabError(`no lab with prefix ${o.prefix} in ${o.stateRoot} (start one with npm start)`);
  const ipv6 = state.ipv6 ?? true;
  const plan = makePlan(state.topology, ipv6, state.tor === 'skein' ? 'skein' : 'frr');
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
