// The failover benchmark's machinery (issue 18): "a dead host is routed around in under a second", end to end.
// One L2 fabric (a bridge in a fabric namespace) joins N host namespaces and a top-of-rack namespace.
// - skein: every host runs the real skeind with skein-bfdd beside it (bfd.companion: required), announces its block
//   (10.64.i.0/24) over a full iBGP mesh and eBGP to the ToR, a BIRD 2 with `bfd on` on every session; a
//   BFDConfiguration runs BFD at the chosen timers (default 100 ms × 3) on every session.
// - reference: the same fabric with BIRD 2 on every host configured as Calico's confd renders it
//   (calico/node/filesystem/etc/calico/confd/templates/bird.cfg.template, bird_aggr, bird_ipam: no BFD — Calico
//   open source has none —, no hold time, so BIRD's 240 s, `graceful restart` with BIRD's 120 s) and a BIRD ToR
//   without BFD.
// A power-off: the host's eth0 set down inside its namespace (so nothing it sends afterwards, no FIN or RST, reaches
// anyone; the bridge port's carrier loss is seen by no other host), then its daemons killed with SIGKILL.
// Measured for every other host and the ToR: from just before the link went down to the monitor timestamp of the
// kernel message after which that kernel no longer routed to the dead host (bench/failover/judge.ts says what
// that means). Every namespace and process is removed at the end, also on failure or signal (test/helpers/netns).
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Lab, nsExec, nsSpawn } from '../../test/helpers/netns.js';
import { SKEIND } from '../converge/harness.js';
import { KernelFollower } from './judge.js';
import { calicoBirdConf, type CalicoBirdNode, type CalicoBirdPeer } from '../../src/lab/calico-bird.js';

export const SKEIND_BFDD = join(dirname(SKEIND), 'skein-bfdd.js');
export const SKEINCTL = join(dirname(SKEIND), 'skeinctl.js');

const HOST_AS = 64512;
const TOR_AS = 65000;
const TOR_IP = '10.10.1.254';
const POOL = '10.64.0.0/16';
export const hostIp = (i: number): string => `10.10.1.${i + 1}`;
export const block = (i: number): string => `10.64.${i}.0/24`;

export interface BfdTimers { txMs: number; rxMs: number; multiplier: number }

/** One observer's answer for one power-off. */
export interface Observation {
  observer: string;
  tor: boolean;
  /** ms from the power-off to the kernel no longer routing to the dead host; undefined: not within the cap */
  ms: number | undefined;
  /** route and nexthop messages that observer's kernel sent until then */
  messages: number;
  /** it was not routing to the host when the power-off came (the sample is void) */
  wasNotRouting: boolean;
}

export interface PowerOff {
  victim: string;
  at: number;
  load: number;
  observations: Observation[];
  /** BFD sessions between live hosts that went down around the power-off ("host->peer +downs") */
  unexpectedBfdDowns: number;
  flapped: string[];
  restoreMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function until(probe: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    if (await probe()) return true;
    if (Date.now() > end) return false;
    await sleep(everyMs);
  }
  return false;
}

/** Whether the machine can run it; a reason when not. */
export function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const cmd of ['ip', 'bird', 'birdc']) {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    } catch {
      return `needs ${cmd}`;
    }
  }
  if (!existsSync(SKEIND) || !existsSync(SKEIND_BFDD)) return 'needs a built dist/ (npm run build)';
  return undefined;
}

interface Node {
  name: string;
  ns: string;
  ip: string;
  index: number;
  follower: KernelFollower;
  monitor?: ChildProcess;
  procs: ChildProcess[];
  /** the last lines of its daemons' output, for failure messages */
  tail: string[];
}

/** A fabric: hosts + ToR on a bridge, a route/nexthop monitor in each, a scratch directory. */
export class Fabric {
  readonly lab = new Lab();
  readonly dir = mkdtempSync(join(tmpdir(), 'skein-failover-'));
  readonly hosts: Node[] = [];
  readonly tor: Node;

  constructor(n: number) {
    const map = this.lab.bridgedHosts([...Array.from({ length: n }, (_, i) => ({ name: `host-${i}`, ip: hostIp(i) })), { name: 'tor-t', ip: TOR_IP }]);
    const node = (name: string, ip: string, index: number, key = name): Node => ({ name, ns: map.get(key)!, ip, index, follower: new KernelFollower(), procs: [], tail: [] });
    for (let i = 0; i < n; i++) this.hosts.push(node(`host-${i}`, hostIp(i), i));
    this.tor = node('tor', TOR_IP, -1, 'tor-t');
    // The monitors start before any daemon, so each model is built from the kernel's own messages from the start.
    for (const x of this.nodes()) {
      x.monitor = nsSpawn(x.ns, 'ip', ['-ts', 'monitor', 'route', 'nexthop']);
      // ip says so on stderr when the kernel dropped messages for it (ENOBUFS): the model may be wrong from then on
      x.monitor.stderr?.on('data', (d: Buffer) => x.tail.push(`monitor: ${d.toString().trim()}`));
      createInterface({ input: x.monitor.stdout! }).on('line', (l) => {
        x.follower.line(l);
      });
    }
  }

  nodes(): Node[] {
    return [...this.hosts, this.tor];
  }

  spawn(x: Node, cmd: string, args: string[]): ChildProcess {
    const p = nsSpawn(x.ns, cmd, args);
    x.procs.push(p);
    const keep = (d: Buffer): void => {
      x.tail.push(...d.toString().split('\n').filter(Boolean));
      if (x.tail.length > 60) x.tail.splice(0, x.tail.length - 60);
    };
    p.stdout?.on('data', keep);
    p.stderr?.on('data', keep);
    p.once('exit', () => x.procs.splice(x.procs.indexOf(p), 1));
    return p;
  }

  /** Power off: the link down first (nothing leaves any more), then SIGKILL. Returns the time taken as t0. */
  async powerOff(x: Node): Promise<number> {
    const t0 = Date.now();
    nsExec(x.ns, 'ip', ['link', 'set', 'eth0', 'down']);
    const gone = x.procs.map((p) => new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r()))));
    for (const p of x.procs) p.kill('SIGKILL');
    await Promise.all(gone);
    return t0;
  }

  /**
   * Link up again. The link going down flushed the host's routes and nexthop objects through eth0 without a
   * message (the kernel notifies neither for a device flush), so its model starts afresh: what its daemons
   * write from now on is what counts.
   */
  powerOn(x: Node): void {
    x.follower = new KernelFollower();
    nsExec(x.ns, 'ip', ['link', 'set', 'eth0', 'up']);
  }

  /** Whether every node routes to every host but itself. */
  converged(): boolean {
    return this.missing().length === 0;
  }

  /** "observer->host" for every node that does not route to a host (itself aside). */
  missing(): string[] {
    const out: string[] = [];
    for (const o of this.nodes()) for (const h of this.hosts) if (h !== o && !o.follower.routesTo({ ip: h.ip, block: block(h.index) })) out.push(`${o.name}->${h.name}`);
    return out;
  }

  async watchPowerOff(victim: Node, t0: number, capMs: number, only?: readonly Node[]): Promise<Observation[]> {
    const observers = only ?? this.nodes().filter((o) => o !== victim);
    const host = { ip: victim.ip, block: block(victim.index) };
    for (const o of observers) o.follower.watch(host, t0);
    await until(() => observers.every((o) => o.follower.result()?.stoppedAfterMs !== undefined), capMs, 20);
    await sleep(200); // messages of the same burst still in the pipe are counted too
    return observers.map((o) => {
      const r = o.follower.result()!;
      return { observer: o.name, tor: o === this.tor, ms: r.stoppedAfterMs, messages: r.messages, wasNotRouting: r.wasNotRouting };
    });
  }

  destroy(): void {
    for (const x of this.nodes()) for (const p of [...x.procs, ...(x.monitor ? [x.monitor] : [])]) if (p.exitCode === null) p.kill('SIGKILL');
    this.lab.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// skein hosts

const res = (kind: string, name: string, spec: unknown, labels?: Record<string, string>): string =>
  `---\n${JSON.stringify({ apiVersion: 'projectcalico.org/v3', kind, metadata: { name, ...(labels ? { labels } : {}) }, spec })}\n`;

function resources(n: number, bfd: BfdTimers): string {
  const out = [
    res('ClusterInformation', 'default', { datastoreReady: true }),
    res('BGPConfiguration', 'default', { asNumber: HOST_AS, nodeToNodeMeshEnabled: true, logSeverityScreen: 'Info' }),
    res('IPPool', 'pool', { cidr: POOL, blockSize: 24, ipipMode: 'Never', vxlanMode: 'Never' }),
    res('BGPPeer', 'tor', { peerIP: TOR_IP, asNumber: TOR_AS }),
    res('BFDConfiguration', 'failover', {
      interfaces: [{ matchPattern: 'eth0', minimumRecvInterval: `${bfd.rxMs}ms`, minimumSendInterval: `${bfd.txMs}ms`, idleSendInterval: '1s', multiplier: bfd.multiplier }],
    }),
  ];
  for (let i = 0; i < n; i++) {
    out.push(res('Node', `host-${i}`, { bgp: { ipv4Address: `${hostIp(i)}/24` } }));
    out.push(res('BlockAffinity', `host-${i}-10-64-${i}-0-24`, { node: `host-${i}`, cidr: block(i), state: 'confirmed', deleted: 'false' }));
  }
  return out.join('');
}

function torConf(f: Fabric, bfd: BfdTimers | undefined): string {
  const lines = [
    `router id ${TOR_IP};`,
    'protocol device { scan time 2; }',
    'protocol kernel { ipv4 { import none; export all; }; }',
  ];
  if (bfd) lines.push(`protocol bfd { interface "*" { min rx interval ${bfd.rxMs} ms; min tx interval ${bfd.txMs} ms; multiplier ${bfd.multiplier}; }; }`);
  for (const h of f.hosts) {
    lines.push(`protocol bgp ${h.name.replace('-', '_')} { local ${TOR_IP} as ${TOR_AS}; neighbor ${h.ip} as ${HOST_AS}; graceful restart; ` +
      `connect retry time 1; error wait time 1, 2; ${bfd ? 'bfd on; ' : ''}ipv4 { import all; export none; }; }`);
  }
  return `${lines.join('\n')}\n`;
}

function startBird(f: Fabric, x: Node, conf: string): void {
  const file = join(f.dir, `${x.name}.bird.conf`);
  writeFileSync(file, conf);
  f.spawn(x, 'bird', ['-f', '-c', file, '-s', join(f.dir, `${x.name}.bird.ctl`), '-P', join(f.dir, `${x.name}.bird.pid`)]);
}

function birdc(f: Fabric, x: Node, ...args: string[]): string {
  return nsExec(x.ns, 'birdc', ['-s', join(f.dir, `${x.name}.bird.ctl`), ...args], { timeoutMs: 10_000 });
}

interface BfdRow { peer: string; state: string; downCount: number; where?: string }

export class SkeinFabric extends Fabric {
  readonly resFile: string;

  constructor(n: number, readonly bfd: BfdTimers) {
    super(n);
    this.resFile = join(this.dir, 'resources.yaml');
    writeFileSync(this.resFile, resources(n, bfd));
    startBird(this, this.tor, torConf(this, bfd));
    for (const h of this.hosts) this.startHost(h);
  }

  sock(h: Node): string {
    return join(this.dir, `${h.name}.sock`);
  }

  startHost(h: Node): void {
    const bfdSock = join(this.dir, `${h.name}.bfd.sock`);
    const cfg = join(this.dir, `${h.name}.yaml`);
    writeFileSync(cfg, [
      `nodeName: ${h.name}`,
      `datastore: { type: file, path: ${this.resFile} }`,
      `control: { socket: ${this.sock(h)} }`,
      'metrics: { listen: false }',
      'log: { level: info }',
      `bfd: { companion: required, socket: ${bfdSock} }`,
      '',
    ].join('\n'));
    this.spawn(h, process.execPath, [SKEIND_BFDD, '--socket', bfdSock]);
    this.spawn(h, process.execPath, [SKEIND, '--config', cfg]);
  }

  /**
   * `kill -9` of the host's skeind alone (skein-bfdd keeps running, as on a daemon crash or a restart), and the same
   * skeind started again after `pauseMs`: what graceful restart and the companion are there for.
   */
  async crashAndRestartSkeind(h: Node, pauseMs: number): Promise<void> {
    const skeind = h.procs.find((p) => p.spawnargs.includes(SKEIND));
    if (skeind === undefined) throw new Error(`${h.name}: no skeind running`);
    const gone = new Promise<void>((r) => (skeind.exitCode !== null || skeind.signalCode !== null ? r() : skeind.once('exit', () => r())));
    skeind.kill('SIGKILL');
    await gone;
    await sleep(pauseMs);
    this.spawn(h, process.execPath, [SKEIND, '--config', join(this.dir, `${h.name}.yaml`)]);
  }

  bfdSessions(h: Node): BfdRow[] {
    try {
      return (JSON.parse(nsExec(h.ns, process.execPath, [SKEINCTL, '--socket', this.sock(h), 'bfd', '--json'], { timeoutMs: 10_000 })) as { sessions: BfdRow[] }).sessions;
    } catch {
      return [];
    }
  }

  /** Every session of the host Up (one per other host and the ToR), and the ToR's BFD session to it Up. */
  bfdUp(h: Node): boolean {
    const s = this.bfdSessions(h);
    if (s.length !== this.hosts.length || !s.every((x) => x.state === 'Up')) return false;
    return new RegExp(`^${h.ip.replace(/\./g, '\\.')}\\s+\\S+\\s+Up`, 'm').test(birdc(this, this.tor, 'show', 'bfd', 'sessions'));
  }

  /** BFD downs counted by the live hosts on sessions to anyone but `victim`, per "host->peer". */
  downsExcept(victim: Node): Map<string, number> {
    const out = new Map<string, number>();
    for (const h of this.hosts) if (h !== victim) for (const s of this.bfdSessions(h)) if (s.peer !== victim.ip) out.set(`${h.name}->${s.peer}`, s.downCount);
    return out;
  }

  /** Waits for every route and every BFD session; throws with diagnostics if they do not come within `ms`. */
  async ready(ms: number, only?: Node): Promise<void> {
    const ok = await until(() => this.converged(), ms, 100) && await until(() => (only ? [only] : this.hosts).every((h) => this.bfdUp(h)), ms, 200);
    if (!ok) {
      const bad = this.hosts.map((h) => `${h.name}: ${this.bfdSessions(h).map((s) => `${s.peer} ${s.state}`).join(', ')} | ${h.tail.slice(-3).join(' / ')}`);
      let tor: string;
      try {
        tor = birdc(this, this.tor, 'show', 'protocols', 'all');
      } catch (e) {
        tor = (e as Error).message;
      }
      // every host's kernel (skein's routes and nexthop objects) beside the model the judge keeps of it: a route the
      // model lacks but the kernel has is the follower's mistake, not skein's
      const sh = (x: Node, args: string[]): string => {
        try {
          return nsExec(x.ns, 'ip', args).trim().split('\n').join(' | ');
        } catch (e) {
          return (e as Error).message;
        }
      };
      const kernels = this.hosts.map((x) => `${x.name}'s kernel: ${sh(x, ['route', 'show', 'proto', '171'])}\n${x.name}'s nexthops: ${sh(x, ['nexthop', 'show'])}\n${x.name}'s model: ${[...x.follower.model.routes.keys()].join(' | ')}\n${x.name}'s log: ${x.tail.slice(-8).join(' / ')}`);
      throw new Error(`not ready after ${ms} ms: not routing: ${this.missing().join(' ') || 'none'}\n${kernels.join('\n')}\n${bad.join('\n')}\nToR: ${this.tor.tail.slice(-5).join(' / ')}\n${tor.slice(0, 3000)}`);
    }
  }

  /** One power-off of `victim` and its return; the answer for every observer. */
  async cycle(victim: Node, capMs: number, log: (m: string) => void): Promise<PowerOff> {
    const downs0 = this.downsExcept(victim);
    const load = loadavg()[0]!;
    const t0 = await this.powerOff(victim);
    const observations = await this.watchPowerOff(victim, t0, capMs);
    const downs1 = this.downsExcept(victim);
    const flapped = [...downs1].filter(([k, v]) => v > (downs0.get(k) ?? 0)).map(([k, v]) => `${k} +${v - (downs0.get(k) ?? 0)}`);
    // printed before the return, so a host that does not come back still leaves its figures
    log(`${victim.name} off: ${observations.map((o) => `${o.observer} ${o.ms === undefined ? '-' : o.ms.toFixed(0)} ms (${o.messages} msgs)`).join(', ')}; load ${load.toFixed(2)}${flapped.length ? `; BFD downs between live hosts: ${flapped.join(', ')}` : ''}`);
    const t1 = Date.now();
    this.powerOn(victim);
    this.startHost(victim);
    // up to minutes: the peers damp the session that just failed (IdleHold doubling 2 s → 60 s, src/daemon/speaker.ts)
    // and refuse it meanwhile (RFC 4271 §8.1.1 DampPeerOscillations); not part of the failover figure
    await this.ready(180_000, victim);
    await sleep(1000); // let the returned host's start-up work settle before the next power-off
    const p: PowerOff = { victim: victim.name, at: t0, load, observations, unexpectedBfdDowns: flapped.length, flapped, restoreMs: Date.now() - t1 };
    log(`${victim.name} back in ${(p.restoreMs / 1000).toFixed(1)} s`);
    return p;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The reference: BIRD 2 hosts as Calico's confd renders them.

/** Host `x` of a fabric as Calico's confd configures it (IPv4): its block, the pool, the mesh and the ToR. */
export function calicoBirdNode(hosts: readonly { ip: string }[], x: { ip: string; index: number }): CalicoBirdNode {
  const peers: CalicoBirdPeer[] = hosts.filter((h) => h.ip !== x.ip).map((h) => ({ kind: 'Mesh', ip: h.ip, asn: HOST_AS }));
  peers.push({ kind: 'Global', ip: TOR_IP, asn: TOR_AS });
  return { routerId: x.ip, asn: HOST_AS, families: [{ family: 4, address: x.ip, blocks: [block(x.index)], pools: [POOL], peers }] };
}

export class BirdFabric extends Fabric {
  constructor(n: number) {
    super(n);
    startBird(this, this.tor, torConf(this, undefined));
    for (const h of this.hosts) startBird(this, h, calicoBirdConf(calicoBirdNode(this.hosts, h)));
  }

  async ready(ms: number): Promise<void> {
    if (!(await until(() => this.converged(), ms, 200))) throw new Error(`reference not converged after ${ms} ms: ${birdc(this, this.hosts[0]!, 'show', 'protocols')}`);
  }

  /** One power-off, watched up to `capMs`. */
  async once(victim: Node, capMs: number): Promise<{ load: number; observations: Observation[] }> {
    const load = loadavg()[0]!;
    const t0 = await this.powerOff(victim);
    return { load, observations: await this.watchPowerOff(victim, t0, capMs) };
  }
}
