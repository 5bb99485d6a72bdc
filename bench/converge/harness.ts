// The convergence benchmark's machinery (issue #8): N hosts, each a network namespace on one L2 fabric (a
// bridge in a fabric namespace), each running the real skeind (or BIRD 2 configured as Calico's confd would,
// for the reference), in a full iBGP mesh or with two route reflectors; then workloads appear one after another
// and every host's kernel is watched for their routes.
//
// What is measured, per workload: from the trigger to the moment its /32 is in the kernel of the LAST other
// host (and of the first, and, for skein, its own host's device route).
// - skein: the trigger is the WorkloadEndpoint written to the datastore (the file datastore: the moment before
//   the new file is renamed into place; etcd: the moment before the put is sent). So the time includes the
//   datastore's watch (the file datastore's debounce), skein's derivation, BGP to the peers (through the RRs),
//   and each peer's FIB write.
// - BIRD: BIRD cannot read Calico's datastore (confd and Felix do, in Calico); the trigger is the workload's
//   route appearing in its own host's kernel (as Felix writes it: `ip route add <ip>/32 dev <cali>`, proto
//   boot), timed by that host's own route monitor. So it covers BIRD's kernel learn, BGP, and the peers'
//   kernel writes — not confd or Felix.
// - skein-learn: skeind beside Felix with `fib.learn` (src/daemon/kernel-learn.ts), reading no WorkloadEndpoints,
//   triggered as BIRD is (the route written into its own host's kernel): the figure comparable with BIRD's. Its
//   datastore (etcd or file) holds everything but the WorkloadEndpoints, which skeind in this mode never reads (in
//   etcd they lie outside its watch, so writing them would cost etcd, not skeind).
// Workload addresses are borrowed (outside every block affine to their host: they lie in the NEXT host's
// block), so each needs its own /32 announcement: a pod in a block its host already announces causes no BGP
// change at all. All workloads of a host share one interface (cali0, a veth whose peer stays on the host): the
// kernel offers no dummy links here, and the interface only carries the device route.
//
// Detection: one `ip -4 -ts -n <host> monitor route` per host; its timestamps are CLOCK_REALTIME with
// microseconds, the clock of Date.now() here and in the etcd writer. Every namespace, process and file made
// here is removed at the end, on failure, on SIGINT/SIGTERM and on exit.
// Why it is over 600 lines: one scenario's steps in the order they run (fabric, configuration, daemons, workloads,
// detection, teardown), each section marked below; the pieces other benchmarks share are in bench/harness/.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { etcdPair, workloadDoc, type Doc } from '../../src/lab/resources.js';
import { calicoBirdConf, type CalicoBirdNode, type CalicoBirdPeer } from '../../src/lab/calico-bird.js';

export type Daemon = 'skein' | 'skein-learn' | 'bird';
/** skeind runs (either mode) */
const isSkein = (d: Daemon): boolean => d === 'skein' || d === 'skein-learn';
/** the workload's route is written into its own host's kernel, as Felix does; the clock starts when it is there */
const kernelTrigger = (d: Daemon): boolean => d === 'bird' || d === 'skein-learn';
export type BenchTopology = 'mesh' | 'rr';
export type Datastore = 'file' | 'etcd';

export interface ScenarioOptions {
  daemon: Daemon;
  topology: BenchTopology;
  hosts: number;
  workloads: number;
  /** workloads per second (evenly spaced) */
  rate: number;
  /** skein only: where the WorkloadEndpoints are written */
  datastore?: Datastore;
  /** skein with the file datastore: skeind's debounce (its default is 100 ms) */
  debounceMs?: number;
  /** skeind's log level (default info, as shipped) */
  logLevel?: string;
  /** how long to wait for the initial sessions and block routes (default 30 s + 5 s per host: a 50-host mesh of BIRDs
   *  takes minutes here, its listen backlog of 8 drops most of the 49 simultaneous SYNs) */
  setupTimeoutMs?: number;
  /** workloads made before the measured ones and not counted (their addresses follow the measured ones'), default 0 */
  warmup?: number;
  /** how long to wait after the last trigger for every route (default 20 s) */
  drainTimeoutMs?: number;
  log?: (msg: string) => void;
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export interface ResourceFigures {
  count: number;
  /** resident set after the run, MiB: mean and max over the processes */
  rssMeanMiB: number;
  rssMaxMiB: number;
  /** peak resident set (VmHWM), MiB, max */
  hwmMaxMiB: number;
  /** CPU seconds (user + system) during the workload phase: mean and max per process */
  cpuRunMeanS: number;
  cpuRunMaxS: number;
  /** the same less each process's idle use (measured for 3 s before the phase) over the phase's length */
  cpuWorkMeanS: number;
  cpuWorkMaxS: number;
  /** CPU seconds from start to the end of the run (start-up and session set-up included), mean */
  cpuTotalMeanS: number;
}

export interface WorkloadSample {
  ip: string;
  host: number;
  /** trigger time (ms, CLOCK_REALTIME) */
  t0: number;
  /** ms from the trigger until the route was in the kernel of the first / last other host; NaN if never */
  first: number;
  last: number;
  /** skein: ms until the origin host's own device route; BIRD: ms from the `ip route add` being sent to it */
  local: number;
  /** how many of the other hosts saw the route */
  seenBy: number;
}

export interface ScenarioResult {
  options: Required<Pick<ScenarioOptions, 'daemon' | 'topology' | 'hosts' | 'workloads' | 'rate'>> & { datastore: Datastore | 'kernel' | `kernel+${Datastore}` };
  /** route reflectors (extra namespaces, not counted in hosts) */
  rrs: number;
  /** ms from starting the daemons until every host had every other host's block route */
  setupMs: number;
  /** CPU seconds per second used by all the daemons together just before the workload phase (idle cost) */
  idleCpu: number;
  /** each host daemon's (not the reflectors') resident memory and CPU ms per second once settled, before the workload phase */
  idleHosts: { rssMeanMiB: number; rssMaxMiB: number; cpuMsPerSMean: number; cpuMsPerSMax: number };
  /** per workload: until the last other host has it (the issue's figure) */
  last: Summary;
  first: Summary;
  local: Summary;
  /** every (workload, other host) pair: the spread across hosts */
  pairs: Summary;
  /** workloads whose route never reached every other host within the drain timeout */
  incomplete: number;
  /** (workload, other host) pairs never seen */
  missingPairs: number;
  samples: WorkloadSample[];
  hostsRes: ResourceFigures;
  rrRes?: ResourceFigures;
  /** etcd's own figures, when it ran */
  etcdRes?: ResourceFigures;
  /** 1-minute load average before set-up and after the run */
  loadBefore: number;
  loadAfter: number;
  /** wall time of the workload phase, ms */
  runMs: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Paths: the repository root (so this works from bench/ via tsx and from dist/bench/).

function repoRoot(): string {
  let d = import.meta.dirname;
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'src'))) return d;
    d = dirname(d);
  }
  throw new Error(`cannot find the repository root above ${import.meta.dirname}`);
}
const ROOT = repoRoot();
export const SKEIND = join(ROOT, 'dist', 'src', 'skeind.js');
export const ETCD_WRITER = join(ROOT, 'dist', 'bench', 'converge', 'etcd-writer.js');

// ---------------------------------------------------------------------------------------------------------------
// Clean-up: everything this process made, removed however it ends.

const liveNamespaces = new Set<string>();
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let hooked = false;

function cleanupSync(): void {
  for (const c of liveChildren) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  liveChildren.clear();
  for (const ns of liveNamespaces) {
    try {
      // Processes we did not start ourselves (none expected) still die with SIGKILL before the namespace goes.
      for (const l of execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5000 }).split('\n')) {
        if (/^\d+$/.test(l.trim())) {
          try {
            process.kill(Number(l.trim()), 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
    } catch {
      /* namespace gone */
    }
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
    } catch {
      /* gone */
    }
  }
  liveNamespaces.clear();
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  liveDirs.clear();
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      cleanupSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

function track(child: ChildProcess): ChildProcess {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  return child;
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers.

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

function ip(args: readonly string[], input?: string): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', input, timeout: 30_000, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${err.stderr?.trim() || err.message}`, { cause: e });
  }
}

/** Poll until `probe` is true, every `everyMs`, at most `timeoutMs`; false on timeout. */
async function until(probe: () => boolean, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < 1_000_000; i++) {
    if (probe()) return true;
    if (Date.now() > end) return false;
    await sleep(everyMs);
  }
  return false;
}

export function summarize(values: readonly number[]): Summary {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const n = v.length;
  // Nearest-rank percentiles: the value below which q of the samples lie.
  const pct = (q: number): number => (n === 0 ? NaN : v[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!);
  return { n, p50: pct(0.5), p99: pct(0.99), max: n === 0 ? NaN : v[n - 1]!, mean: n === 0 ? NaN : v.reduce((a, b) => a + b, 0) / n };
}

/** Whether this process may build namespaces; a reason when not. */
export function cannotRun(daemon: Daemon, datastore: Datastore = 'file'): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  const has = (cmd: string): boolean => {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (!has('ip')) return 'needs iproute2 (ip)';
  if (daemon === 'bird' && !has('bird')) return 'needs BIRD 2 (bird)';
  if (isSkein(daemon) && !existsSync(SKEIND)) return `needs ${SKEIND}: run npm run build`;
  if (isSkein(daemon) && datastore === 'etcd' && (!has('etcd') || !existsSync(ETCD_WRITER))) return 'needs etcd (Debian etcd-server) and a built dist/';
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Per-process figures from /proc.

interface ProcSample { cpuS: number; rssKiB: number; hwmKiB: number }

const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function procSample(pid: number | undefined): ProcSample | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuS = (Number(f[11]) + Number(f[12])) / CLK_TCK;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
    return { cpuS, rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
  } catch {
    return undefined;
  }
}

function resourceFigures(before: (ProcSample | undefined)[], after: (ProcSample | undefined)[], idle: number[], runS: number): ResourceFigures {
  const rows = after.map((a, i) => ({ a, b: before[i], idle: idle[i] ?? 0 })).filter((r): r is { a: ProcSample; b: ProcSample | undefined; idle: number } => r.a !== undefined);
  const mean = (xs: number[]): number => (xs.length === 0 ? NaN : xs.reduce((s, x) => s + x, 0) / xs.length);
  const rss = rows.map((r) => r.a.rssKiB / 1024);
  const run = rows.map((r) => r.a.cpuS - (r.b?.cpuS ?? 0));
  const work = rows.map((r, i) => Math.max(0, run[i]! - r.idle * runS));
  return {
    count: rows.length,
    rssMeanMiB: mean(rss),
    rssMaxMiB: Math.max(...rss),
    hwmMaxMiB: Math.max(...rows.map((r) => r.a.hwmKiB / 1024)),
    cpuRunMeanS: mean(run),
    cpuRunMaxS: Math.max(...run),
    cpuWorkMeanS: mean(work),
    cpuWorkMaxS: Math.max(...work),
    cpuTotalMeanS: mean(rows.map((r) => r.a.cpuS)),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Route monitors: one `ip monitor` per namespace, remembering when each destination first appeared.

const MONITOR_LINE = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})\] (Deleted )?(?:(?:blackhole|unreachable|prohibit|local|broadcast|unicast) )?(\S+)/;

class RouteMonitor {
  /** destination (as ip prints it: "10.64.3.7", "10.64.3.0/24") -> first time it was added, ms */
  readonly seen = new Map<string, number>();
  readonly child: ChildProcess;
  lines = 0;

  constructor(readonly ns: string) {
    this.child = track(spawn('ip', ['-4', '-ts', '-n', ns, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.lines++;
      const m = MONITOR_LINE.exec(line);
      if (m === null || m[3] !== undefined) return;
      // ip prints local time; Date.parse reads an ISO date-time without an offset as local time too.
      const t = Date.parse(m[1]!) + Number(m[2]) / 1000;
      if (!this.seen.has(m[4]!)) this.seen.set(m[4]!, t);
    });
  }

  stop(): void {
    this.child.kill('SIGTERM');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The fabric: addresses and names.

const AS = 64512;
const CLUSTER_ID = '224.0.0.1';
const POOL = '10.64.0.0/16';
const FABRIC_LEN = 16;
const ETCD_IP = '10.10.0.2';
const ETCD_URL = `http://${ETCD_IP}:2379`;
const hostIp = (i: number): string => `10.10.1.${i + 1}`;
const rrIp = (j: number): string => `10.10.2.${j + 1}`;
const hostName = (i: number): string => `host-${i}`;
const rrName = (j: number): string => `rr-${j}`;
/** Host i's affine block. */
const block = (i: number): string => `10.64.${i}.0/24`;
/** Workload k: on host k mod N, its address borrowed from the next host's block. */
function workloadAddr(k: number, n: number): { host: number; ip: string } {
  const host = k % n;
  return { host, ip: `10.64.${(host + 1) % n}.${2 + Math.floor(k / n)}` };
}
export const MAX_HOSTS = 200;
export function maxWorkloads(hosts: number): number {
  return hosts * 250;
}

/** Fixed MAC addresses, so every neighbour entry can be written up front. */
const ETCD_MAC = '02:5c:00:00:ff:02';
const mac = (n: { role: 'host' | 'rr'; index: number }): string => `02:5c:00:${n.role === 'host' ? '01' : '02'}:${(n.index >> 8).toString(16).padStart(2, '0')}:${(n.index & 0xff).toString(16).padStart(2, '0')}`;

let scenarioCounter = 0;

interface Node {
  role: 'host' | 'rr';
  index: number;
  name: string;
  ns: string;
  ip: string;
  child?: ChildProcess;
}

interface Built {
  prefix: string;
  fabric: string;
  nodes: Node[];
  hosts: Node[];
  rrs: Node[];
  dir: string;
}

function buildFabric(o: ScenarioOptions, rrCount: number, withEtcd: boolean): Built {
  hookExit();
  const prefix = `skc${process.pid}${String.fromCharCode(97 + (scenarioCounter++ % 26))}_`;
  const dir = mkdtempSync(join(tmpdir(), 'skein-converge-'));
  liveDirs.add(dir);
  const fabric = `${prefix}f`;
  const nodes: Node[] = [];
  for (let i = 0; i < o.hosts; i++) nodes.push({ role: 'host', index: i, name: hostName(i), ns: `${prefix}h${i}`, ip: hostIp(i) });
  for (let j = 0; j < rrCount; j++) nodes.push({ role: 'rr', index: j, name: rrName(j), ns: `${prefix}r${j}`, ip: rrIp(j) });
  for (const ns of [fabric, ...nodes.map((n) => n.ns)]) {
    // Recorded before it exists: a run killed right here still removes it.
    liveNamespaces.add(ns);
    ip(['netns', 'add', ns]);
  }
  // Every link is made inside the fabric namespace, its host end created directly in the host's namespace.
  const fab = ['link set lo up', `link add br0 address ${ETCD_MAC} type bridge`, 'link set br0 up'];
  if (withEtcd) fab.push(`addr add ${ETCD_IP}/${FABRIC_LEN} dev br0`);
  for (const n of nodes) {
    const port = `${n.role === 'host' ? 'h' : 'r'}${n.index}`;
    fab.push(`link add ${port} type veth peer name eth0 address ${mac(n)} netns ${n.ns}`, `link set ${port} master br0`, `link set ${port} up`);
    if (withEtcd) fab.push(`neigh replace ${n.ip} lladdr ${mac(n)} dev br0 nud permanent`);
  }
  ip(['-n', fabric, '-batch', '-'], `${fab.join('\n')}\n`);
  for (const n of nodes) {
    const cmds = ['link set lo up', 'link set eth0 up', `addr add ${n.ip}/${FABRIC_LEN} dev eth0`];
    // The kernel's neighbour table is one for the whole machine, its limit (gc_thresh3, 1024 here) counts
    // every namespace's dynamic entries: a 50-host mesh needs 2450 of them and overflows it (lost ARP, sessions
    // dropping on hold timers; other users of the machine suffer too). Permanent entries are outside that count.
    for (const m of nodes) if (m !== n) cmds.push(`neigh replace ${m.ip} lladdr ${mac(m)} dev eth0 nud permanent`);
    if (withEtcd) cmds.push(`neigh replace ${ETCD_IP} lladdr ${ETCD_MAC} dev eth0 nud permanent`);
    // The workloads' side: one veth pair, both ends on the host (see the header).
    if (n.role === 'host') cmds.push('link add cali0 type veth peer name cali0p', 'link set cali0 up', 'link set cali0p up');
    ip(['-n', n.ns, '-batch', '-'], `${cmds.join('\n')}\n`);
  }
  return { prefix, fabric, nodes, hosts: nodes.filter((n) => n.role === 'host'), rrs: nodes.filter((n) => n.role === 'rr'), dir };
}

async function teardown(b: Built, extra: ChildProcess[]): Promise<void> {
  const procs = [...b.nodes.map((n) => n.child), ...extra].filter((c): c is ChildProcess => c !== undefined && c.exitCode === null && c.signalCode === null);
  for (const c of procs) c.kill('SIGTERM');
  await until(() => procs.every((c) => c.exitCode !== null || c.signalCode !== null), 5000, 50);
  for (const c of procs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const ns of [b.fabric, ...b.nodes.map((n) => n.ns)]) {
    try {
      ip(['netns', 'del', ns]);
    } catch {
      /* cleanupSync sweeps what is left */
    }
    liveNamespaces.delete(ns);
  }
  rmSync(b.dir, { recursive: true, force: true });
  liveDirs.delete(b.dir);
}

// ---------------------------------------------------------------------------------------------------------------
// skein: Calico's resources, as Calico's CNI / IPAM / calicoctl would have written them.

function baseDocs(o: ScenarioOptions, b: Built): Doc[] {
  const v3 = 'projectcalico.org/v3';
  const docs: Doc[] = [
    { apiVersion: v3, kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    { apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: AS, nodeToNodeMeshEnabled: o.topology === 'mesh', logSeverityScreen: 'Info' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'bench-pool' }, spec: { cidr: POOL, blockSize: 24, ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: false } },
  ];
  if (o.topology === 'rr') {
    // Calico's route-reflector design: the mesh off, every node peers with the nodes labelled as reflectors.
    docs.push({ apiVersion: v3, kind: 'BGPPeer', metadata: { name: 'peer-with-route-reflectors' }, spec: { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" } });
  }
  for (const n of b.nodes) {
    const bgp: Record<string, unknown> = { ipv4Address: `${n.ip}/${FABRIC_LEN}` };
    const labels: Record<string, string> = { 'kubernetes.io/hostname': n.name };
    if (n.role === 'rr') {
      bgp.routeReflectorClusterID = CLUSTER_ID;
      labels['route-reflector'] = 'true';
    }
    docs.push({ apiVersion: v3, kind: 'Node', metadata: { name: n.name, labels }, spec: { bgp } });
  }
  for (const h of b.hosts) {
    const cidr = block(h.index);
    docs.push({ apiVersion: v3, kind: 'BlockAffinity', metadata: { name: `${h.name}-${cidr.replace(/[./]/g, '-')}` }, spec: { node: h.name, cidr, state: 'confirmed', deleted: 'false' } });
  }
  return docs;
}

const render = (d: Doc): string => `---\n${JSON.stringify(d)}\n`;

function skeinYaml(n: Node, o: ScenarioOptions, b: Built, resources: string): string {
  const ds = o.datastore === 'etcd'
    ? `datastore: { type: etcd, etcd: { endpoints: [${JSON.stringify(ETCD_URL)}] } }`
    : `datastore: { type: file, path: ${JSON.stringify(resources)}, debounce: ${o.debounceMs ?? 100}ms }`;
  return [
    `nodeName: ${n.name}`,
    ds,
    `control: { socket: ${JSON.stringify(join(b.dir, `${n.name}.sock`))} }`,
    'metrics: { listen: false }',
    ...(o.daemon === 'skein-learn' ? ['fib: { workloadRoutes: false, learn: true }'] : []),
    `log: { level: ${o.logLevel ?? 'info'} }`,
    '',
  ].join('\n');
}

/** The etcd writer: puts keys on request and answers with the time each put was sent. */
class EtcdWriter {
  readonly child: ChildProcess;
  #next = 0;
  #waiting = new Map<number, (r: { t0: number; t1: number } | { error: string }) => void>();

  constructor(fabric: string) {
    this.child = track(spawn('ip', ['netns', 'exec', fabric, process.execPath, ETCD_WRITER, ETCD_URL], { stdio: ['pipe', 'pipe', 'inherit'] }));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let m: { id: number; t0?: number; t1?: number; error?: string };
      try {
        m = JSON.parse(line) as typeof m;
      } catch {
        return;
      }
      const w = this.#waiting.get(m.id);
      if (w === undefined) return;
      this.#waiting.delete(m.id);
      w(m.error !== undefined ? { error: m.error } : { t0: m.t0!, t1: m.t1! });
    });
  }

  put(key: string, value: string): Promise<{ t0: number; t1: number } | { error: string }> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      this.child.stdin!.write(`${JSON.stringify({ id, key, value })}\n`);
    });
  }

  close(): void {
    this.child.stdin?.end();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// BIRD 2, configured as Calico's confd renders bird.cfg / bird_aggr.cfg / bird_ipam.cfg (IPv4 part): src/lab/calico-bird.ts.

/**
 * Node `n` of a fabric for the Calico renderer: a host has its block; peers are the mesh without reflectors, else a
 * host peers with every reflector and a reflector with every host (its clients) and the other reflectors.
 */
export function birdNode(n: Pick<Node, 'role' | 'index' | 'name' | 'ip'>, b: { dir: string; hosts: readonly Pick<Node, 'ip'>[]; rrs: readonly Pick<Node, 'ip'>[] }): CalicoBirdNode {
  const peers: CalicoBirdPeer[] = [];
  if (b.rrs.length === 0) {
    for (const h of b.hosts) if (h.ip !== n.ip) peers.push({ kind: 'Mesh', ip: h.ip, asn: AS });
  } else if (n.role === 'host') {
    for (const r of b.rrs) peers.push({ kind: 'Node', ip: r.ip, asn: AS });
  } else {
    for (const h of b.hosts) peers.push({ kind: 'Node', ip: h.ip, asn: AS, rrClusterId: CLUSTER_ID });
    for (const r of b.rrs) if (r.ip !== n.ip) peers.push({ kind: 'Node', ip: r.ip, asn: AS });
  }
  const blocks = n.role === 'host' ? [block(n.index)] : [];
  return {
    log: `"${join(b.dir, `${n.name}.bird.log`)}" { warning, error, fatal }`,
    routerId: n.ip,
    asn: AS,
    families: [{ family: 4, address: n.ip, blocks, pools: [POOL], peers }],
  };
}

/** A diagnostic for a failed set-up: how many of a node's BGP sessions are established. */
function sessions(daemon: Daemon, b: Built, n: Node): string {
  try {
    if (daemon === 'bird') {
      const out = execFileSync('ip', ['netns', 'exec', n.ns, 'birdc', '-s', join(b.dir, `${n.name}.bird.ctl`), 'show', 'protocols'], { encoding: 'utf8', timeout: 10_000 });
      const bgp = out.split('\n').filter((l) => /\bBGP\b/.test(l));
      return `${n.name}: ${bgp.filter((l) => /Established/.test(l)).length}/${bgp.length} BGP sessions established`;
    }
    const out = execFileSync(process.execPath, [join(dirname(SKEIND), 'skeinctl.js'), '--socket', join(b.dir, `${n.name}.sock`), 'status', '--json'], { encoding: 'utf8', timeout: 10_000 });
    const peers = ((JSON.parse(out) as { peers?: { state: string }[] }).peers ?? []);
    return `${n.name}: ${peers.filter((p) => p.state === 'Established').length}/${peers.length} BGP sessions established`;
  } catch (e) {
    return `${n.name}: no session status (${(e as Error).message.split('\n')[0]})`;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// One scenario.

export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const say = o.log ?? ((): void => {});
  if (o.hosts < 2 || o.hosts > MAX_HOSTS) throw new Error(`hosts must be 2..${MAX_HOSTS}`);
  if (o.workloads < 1 || o.workloads > maxWorkloads(o.hosts)) throw new Error(`workloads must be 1..${maxWorkloads(o.hosts)} for ${o.hosts} hosts`);
  if (!(o.rate > 0)) throw new Error('rate must be > 0');
  const datastore: Datastore = o.datastore ?? 'file';
  const why = cannotRun(o.daemon, datastore);
  if (why !== undefined) throw new Error(why);
  const rrCount = o.topology === 'rr' ? 2 : 0;
  const loadBefore = loadavg()[0]!;
  const b = buildFabric(o, rrCount, isSkein(o.daemon) && datastore === 'etcd');
  const extra: ChildProcess[] = [];
  try {
    say(`fabric: ${o.hosts} hosts${rrCount ? ` + ${rrCount} route reflectors` : ''} in ${b.prefix}*`);
    const monitors = new Map<Node, RouteMonitor>();
    for (const n of b.nodes) {
      const m = new RouteMonitor(n.ns);
      monitors.set(n, m);
      extra.push(m.child);
    }
    await sleep(200); // let every monitor subscribe before anything changes

    // Start the daemons.
    let etcd: ChildProcess | undefined;
    let writer: EtcdWriter | undefined;
    const resources = join(b.dir, 'ds', 'resources.yaml');
    const staging = join(b.dir, 'staging', 'resources.yaml');
    let fileText = '';
    if (isSkein(o.daemon)) {
      const docs = baseDocs(o, b);
      if (datastore === 'etcd') {
        etcd = track(spawn('ip', ['netns', 'exec', b.fabric, 'etcd', '--name', 'bench', '--data-dir', join(b.dir, 'etcd'),
          '--listen-client-urls', ETCD_URL, '--advertise-client-urls', ETCD_URL,
          '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
          '--initial-cluster', 'bench=http://127.0.0.1:2380', '--logger', 'zap', '--log-level', 'error'], { stdio: 'ignore' }));
        extra.push(etcd);
        writer = new EtcdWriter(b.fabric);
        extra.push(writer.child);
        const w = writer;
        let up = false;
        for (let i = 0; i < 60 && !up; i++) {
          const r = await Promise.race([w.put('/bench/probe', String(i)), sleep(2000).then(() => ({ error: 'timeout' }))]);
          up = !('error' in r);
          if (!up) await sleep(250);
        }
        if (!up) throw new Error('etcd did not come up in the fabric namespace');
        const results = await Promise.all(docs.map((d) => etcdPair(d)).map(({ key, value }) => w.put(key, value)));
        const bad = results.find((r) => 'error' in r);
        if (bad !== undefined && 'error' in bad) throw new Error(`etcd put: ${bad.error}`);
      } else {
        mkdirSync(dirname(resources), { recursive: true });
        mkdirSync(dirname(staging), { recursive: true });
        fileText = docs.map(render).join('');
        writeFileSync(resources, fileText);
      }
      for (const n of b.nodes) {
        const cfg = join(b.dir, `${n.name}.yaml`);
        writeFileSync(cfg, skeinYaml(n, { ...o, datastore }, b, resources));
        const log = join(b.dir, `${n.name}.log`);
        writeFileSync(log, '');
        // `ip netns exec` execs the command: the child's pid is skeind's.
        // CONVERGE_PROFILE=host-3 CONVERGE_PROFILE_DIR=/tmp/p: a V8 CPU profile of that node's skeind (written when it stops).
        // CONVERGE_PROFILE_INTERVAL=3000: the sampling interval in µs (V8's default 1000 makes every native call it
        // interrupts, a postMessage or a socket write, look several times as costly as it is).
        const prof = process.env.CONVERGE_PROFILE === n.name && process.env.CONVERGE_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CONVERGE_PROFILE_DIR}`, ...(process.env.CONVERGE_PROFILE_INTERVAL ? [`--cpu-prof-interval=${process.env.CONVERGE_PROFILE_INTERVAL}`] : [])] : [];
        // CONVERGE_NODE_FLAGS='--max-semi-space-size=8': Node flags for every skeind, e.g. as the packaged launcher
        // runs it (scripts/build-deb.mjs); none by default, so figures stay comparable with the earlier runs.
        const nodeFlags = (process.env.CONVERGE_NODE_FLAGS ?? '').split(/\s+/).filter((x) => x !== '');
        // CONVERGE_STDOUT_DIR=/tmp/o: each skeind's stdout and stderr in <dir>/<node>.out (V8's --trace-* flags write there)
        const outDir = process.env.CONVERGE_STDOUT_DIR;
        const out = outDir ? openSync(join(outDir, `${n.name}.out`), 'w') : 'ignore';
        n.child = track(spawn('ip', ['netns', 'exec', n.ns, process.execPath, ...nodeFlags, ...prof, SKEIND, '--config', cfg], { stdio: ['ignore', out, out] }));
        if (typeof out === 'number') closeSync(out);
      }
    } else {
      for (const n of b.nodes) {
        const conf = join(b.dir, `${n.name}.bird.conf`);
        writeFileSync(conf, calicoBirdConf(birdNode(n, b)));
        n.child = track(spawn('ip', ['netns', 'exec', n.ns, 'bird', '-f', '-c', conf, '-s', join(b.dir, `${n.name}.bird.ctl`)], { stdio: ['ignore', 'ignore', 'pipe'] }));
        let err = '';
        n.child.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-2000); });
        n.child.once('exit', (code) => { if (code !== 0 && code !== null) say(`bird on ${n.name} exited ${code}: ${err.trim()}`); });
      }
    }
    const t0Setup = Date.now();

    // Set-up done: every node has every other host's block route.
    const setupOk = await until(() => b.nodes.every((n) => b.hosts.every((h) => h === n || monitors.get(n)!.seen.has(block(h.index)))), o.setupTimeoutMs ?? 30_000 + 5000 * o.hosts, 100);
    const dead = b.nodes.filter((n) => n.child?.exitCode !== null && n.child?.exitCode !== undefined);
    if (!setupOk || dead.length > 0) {
      const short = b.nodes.filter((n) => !b.hosts.every((h) => h === n || monitors.get(n)!.seen.has(block(h.index)))).map((n) => n.name);
      const counts = b.nodes.map((n) => b.hosts.filter((h) => h !== n && monitors.get(n)!.seen.has(block(h.index))).length);
      throw new Error(`set-up: ${short.length} nodes lack block routes (${short.slice(0, 5).join(', ')}; block routes per node min ${Math.min(...counts)} max ${Math.max(...counts)}), ${dead.length} daemons exited; ${sessions(o.daemon, b, b.nodes[0]!)}`);
    }
    const setupMs = Date.now() - t0Setup;
    say(`set-up: every node has every block route after ${(setupMs / 1000).toFixed(1)} s`);
    // Let start-up work (the daemons' own and the kernel's) die down: until the daemons together use under a
    // fifth of a CPU over half a second, at most 20 s.
    const pids = (): (number | undefined)[] => [...b.nodes.map((n) => n.child?.pid), etcd?.pid];
    let idleCpu = NaN;
    const settleStart = Date.now();
    for (let i = 0; i < 30; i++) {
      const a = pids().map(procSample);
      await sleep(1000);
      const z = pids().map(procSample);
      idleCpu = z.reduce((s, x, k) => s + (x && a[k] ? x.cpuS - a[k].cpuS : 0), 0);
      if (idleCpu < 0.1) break;
    }
    // How a workload appears: its route in its host's kernel (kernel triggers: Felix's part, one `ip -batch` per host,
    // fed a route per workload; the route is in the kernel when the host's own monitor sees it, which is what BIRD's and
    // skein-learn's times are measured from), or its WorkloadEndpoint in the datastore.
    const writes: Promise<void>[] = [];
    const batchers = new Map<Node, ChildProcess>();
    if (kernelTrigger(o.daemon)) {
      for (const h of b.hosts) {
        const c = track(spawn('ip', ['-n', h.ns, '-batch', '-'], { stdio: ['pipe', 'ignore', 'ignore'] }));
        batchers.set(h, c);
        extra.push(c);
      }
    }
    const trigger = (k: number, s: WorkloadSample): void => {
      const { host, ip: addr } = workloadAddr(k, o.hosts);
      const h = b.hosts[host]!;
      if (kernelTrigger(o.daemon)) {
        s.t0 = Date.now();
        // at the normal route priority, as Felix writes a workload's route (felix/dataplane/linux/endpoint_mgr.go)
        batchers.get(h)!.stdin!.write(`route add ${addr}/32 dev cali0 metric 1024\n`);
      } else {
        const doc = workloadDoc({ name: `wl-${k}`, kind: 'pod', host: h.name, ip: addr, ip6: '', ifname: 'cali0' }, false);
        if (writer !== undefined) {
          const { key, value } = etcdPair(doc);
          writes.push(writer.put(key, value).then((r) => {
            if ('error' in r) say(`etcd put ${key}: ${r.error}`);
            else s.t0 = r.t0;
          }));
        } else {
          // Written whole in a directory skeind does not watch, then renamed over the watched file.
          fileText += render(doc);
          writeFileSync(staging, fileText);
          s.t0 = Date.now();
          renameSync(staging, resources);
        }
      }
    };
    const interval = 1000 / o.rate;
    // Warm-up (CONVERGE_WARMUP / warmup): workloads made the same way and at the same rate before the idle measurement
    // and the measured phase, not counted. A host's daemon runs for days; a fresh skeind spends part of its first
    // hundreds of events compiling its hot paths (V8 tiers code up as it runs), which the cold figure includes and a
    // long-running host does not pay again. BIRD has nothing to warm up.
    const warm = Math.min(o.warmup ?? 0, maxWorkloads(o.hosts) - o.workloads);
    if (warm > 0) {
      const ws: WorkloadSample[] = [];
      const w0 = Date.now() + 50;
      for (let j = 0; j < warm; j++) {
        await sleep(w0 + j * interval - Date.now());
        const { host, ip } = workloadAddr(o.workloads + j, o.hosts);
        const s: WorkloadSample = { ip, host, t0: NaN, first: NaN, last: NaN, local: NaN, seenBy: 0 };
        ws.push(s);
        trigger(o.workloads + j, s);
      }
      await Promise.all(writes.splice(0));
      const done = await until(() => ws.every((s) => b.hosts.every((h) => monitors.get(h)!.seen.has(s.ip))), o.drainTimeoutMs ?? 20_000, 50);
      say(`warm-up: ${warm} workloads${done ? '' : ' (not all arrived)'}; load ${loadavg()[0]!.toFixed(2)}`);
      await sleep(2000);
    }
    // Each daemon's idle use (keepalives, timers, GC), taken off its CPU in the workload phase.
    const i0 = pids().map(procSample);
    await sleep(3000);
    const idle = pids().map(procSample).map((z, k) => (z && i0[k] ? (z.cpuS - i0[k].cpuS) / 3 : 0));
    idleCpu = idle.reduce((a, x) => a + x, 0);
    const hostIdx = b.hosts.map((h) => b.nodes.indexOf(h));
    const idleRss = hostIdx.map((i) => i0[i]).filter((z): z is ProcSample => z !== undefined).map((z) => z.rssKiB / 1024);
    const idleCpuMs = hostIdx.map((i) => (idle[i] ?? 0) * 1000);
    const idleHosts = {
      rssMeanMiB: idleRss.reduce((a, x) => a + x, 0) / Math.max(1, idleRss.length), rssMaxMiB: Math.max(...idleRss),
      cpuMsPerSMean: idleCpuMs.reduce((a, x) => a + x, 0) / Math.max(1, idleCpuMs.length), cpuMsPerSMax: Math.max(...idleCpuMs),
    };
    say(`idle hosts: RSS mean ${idleHosts.rssMeanMiB.toFixed(1)} max ${idleHosts.rssMaxMiB.toFixed(1)} MiB, CPU mean ${idleHosts.cpuMsPerSMean.toFixed(1)} max ${idleHosts.cpuMsPerSMax.toFixed(1)} ms/s`);
    say(`settled ${((Date.now() - settleStart) / 1000).toFixed(0)} s after set-up: the daemons use ${(idleCpu * 100).toFixed(0)}% of a CPU together; load ${loadavg()[0]!.toFixed(2)}`);

    // The workload phase.
    const before = pids().map(procSample);
    const samples: WorkloadSample[] = [];
    const start = Date.now() + 50;
    for (let k = 0; k < o.workloads; k++) {
      await sleep(start + k * interval - Date.now());
      const { host, ip: addr } = workloadAddr(k, o.hosts);
      const s: WorkloadSample = { ip: addr, host, t0: NaN, first: NaN, last: NaN, local: NaN, seenBy: 0 };
      samples.push(s);
      trigger(k, s);
    }
    await Promise.all(writes);
    const others = (s: WorkloadSample): Node[] => b.hosts.filter((h) => h.index !== s.host);
    // The own host too: skeind sends the UPDATE before its own FIB write goes out (both wait for the next turn of its
    // loop), so the other hosts can have a workload's route before its own host does.
    const complete = (): boolean => samples.every((s) => b.hosts.every((h) => monitors.get(h)!.seen.has(s.ip)));
    const drained = await until(complete, o.drainTimeoutMs ?? 20_000, 50);
    const runMs = Date.now() - start;
    const after = pids().map(procSample);
    if (!drained) {
      const short = b.hosts.map((h) => ({ h, n: samples.filter((s) => s.host !== h.index && !monitors.get(h)!.seen.has(s.ip)).length })).filter((x) => x.n > 0);
      const noOwn = samples.filter((s) => !monitors.get(b.hosts[s.host]!)!.seen.has(s.ip)).length;
      say(`some routes never arrived within the drain timeout (counted as missing): ${short.length} hosts lack some (${short.slice(0, 5).map((x) => `${x.h.name}: ${x.n}`).join(', ')}); ${noOwn} workloads lack their own host's route; ${sessions(o.daemon, b, short[0]?.h ?? b.hosts[0]!)}`);
    }

    // Figures.
    const pairs: number[] = [];
    let missingPairs = 0;
    for (const s of samples) {
      const own = monitors.get(b.hosts[s.host]!)!.seen.get(s.ip);
      if (kernelTrigger(o.daemon)) {
        // BIRD's clock starts when the route is in its own host's kernel; `local` is how long `ip` took.
        if (own !== undefined) {
          s.local = own - s.t0;
          s.t0 = own;
        } else s.t0 = NaN;
      } else if (own !== undefined) s.local = own - s.t0;
      const times = others(s).map((h) => monitors.get(h)!.seen.get(s.ip)).filter((t): t is number => t !== undefined).map((t) => t - s.t0);
      s.seenBy = times.length;
      missingPairs += o.hosts - 1 - times.length;
      pairs.push(...times);
      if (times.length > 0) s.first = Math.min(...times);
      if (times.length === o.hosts - 1) s.last = Math.max(...times);
    }
    const figs = (nodes: Node[]): ResourceFigures => {
      const idx = nodes.map((n) => b.nodes.indexOf(n));
      return resourceFigures(idx.map((i) => before[i]), idx.map((i) => after[i]), idx.map((i) => idle[i] ?? 0), runMs / 1000);
    };
    const result: ScenarioResult = {
      options: { daemon: o.daemon, topology: o.topology, hosts: o.hosts, workloads: o.workloads, rate: o.rate, datastore: o.daemon === 'bird' ? 'kernel' : o.daemon === 'skein-learn' ? `kernel+${datastore}` : datastore },
      rrs: rrCount,
      setupMs,
      idleCpu,
      idleHosts,
      last: summarize(samples.map((s) => s.last)),
      first: summarize(samples.map((s) => s.first)),
      local: summarize(samples.map((s) => s.local)),
      pairs: summarize(pairs),
      incomplete: samples.filter((s) => !Number.isFinite(s.last)).length,
      missingPairs,
      samples,
      hostsRes: figs(b.hosts),
      loadBefore,
      loadAfter: loadavg()[0]!,
      runMs,
    };
    if (rrCount > 0) result.rrRes = figs(b.rrs);
    if (etcd !== undefined) result.etcdRes = resourceFigures([before.at(-1)], [after.at(-1)], [idle.at(-1) ?? 0], runMs / 1000);
    writer?.close();
    for (const c of batchers.values()) c.stdin?.end();
    for (const m of monitors.values()) m.stop();
    return result;
  } finally {
    await teardown(b, extra);
  }
}
