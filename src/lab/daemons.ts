// The lab's other daemons, each started in its namespace: BIRD 2 (a ToR, or a host of a mixed cluster, with the
// routes Felix would write), FRR as a ToR, and etcd for the etcd datastore; and reading BIRD's session states.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { Plan, Tor, Workload } from './topology.js';
import { etcdPairs } from './resources.js';
import { frrConf } from './router-conf.js';
import { FRR_DIR, LabError } from './options.js';
import { ipn, nsx, say, sh, shAsync, until, type State } from './system.js';

/** The BGP protocols of `birdc show protocols` with their state (the info column: Established, Active, ...). */
export function birdBgpStates(text: string): { name: string; state: string }[] {
  const out: { name: string; state: string }[] = [];
  for (const line of text.split('\n')) {
    // name proto table state since info; BIRD 2 prints "since" as a time or a date and a time.
    const m = /^(\S+)\s+BGP\s+\S+\s+\S+\s+(?:\d{4}-\d\d-\d\d\s+)?\S+\s+(\S+)/.exec(line);
    if (m) out.push({ name: m[1]!, state: m[2]! });
  }
  return out;
}

export async function birdc(sock: string, ...args: string[]): Promise<string> {
  const r = await shAsync('birdc', ['-s', sock, ...args], 10_000);
  return r.ok ? r.out : `(birdc failed: ${r.err.trim() || r.out.trim()})\n`;
}

/**
 * BIRD 2 in a namespace, in the foreground of its own process (so its pid is known and `down` finds it), its
 * control socket and log in the state directory. Returns the control socket once BIRD answers on it.
 */
export async function startBird(config: string, name: string, n: string, dir: string, state: State): Promise<string> {
  const conf = join(dir, `${name}.bird.conf`);
  const sock = join(dir, `${name}.bird.ctl`);
  writeFileSync(conf, config);
  // Checked first, as Calico's confd does with bird -p, so a bad rendering is a clear error, not a dead daemon.
  const check = await shAsync('bird', ['-p', '-c', conf], 10_000);
  if (!check.ok) throw new LabError(`${conf} does not parse: ${(check.err || check.out).trim()}`);
  const log = openSync(join(dir, `${name}.bird.log`), 'a');
  const child = spawn('ip', ['netns', 'exec', n, 'bird', '-f', '-c', conf, '-s', sock, '-P', join(dir, `${name}.bird.pid`)], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  state.pids.push({ name: `bird ${name}`, pid: child.pid! });
  const up = await until(`BIRD ${name} to answer`, 10_000, async () => ((await shAsync('birdc', ['-s', sock, 'show', 'status'], 5_000)).out.includes('Daemon is up') ? true : undefined));
  if (!up) throw new LabError(`BIRD ${name} did not come up in ${n}: see ${join(dir, `${name}.bird.log`)}`);
  return sock;
}

/** What Felix does for a local workload on a Calico host: a device route to its interface (proto boot). */
export function felixRoutes(hostNamespace: string, w: Workload, ipv6: boolean): void {
  ipn(hostNamespace, 'route', 'replace', `${w.ip}/32`, 'dev', w.ifname, 'scope', 'link', 'proto', 'boot');
  if (ipv6 && w.ip6 !== '') ipn(hostNamespace, '-6', 'route', 'replace', `${w.ip6}/128`, 'dev', w.ifname, 'proto', 'boot');
}

/**
 * etcd in the fabric namespace, on an address of the fabric bridge, so every host reaches it over the fabric
 * (and nothing listens in the root namespace); then Calico's keys are loaded with etcdctl. Returns the URL.
 */
export async function startEtcd(plan: Plan, fabric: string, dir: string, state: State): Promise<string> {
  const ip = ETCD_IP;
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

/** FRR's zebra and bgpd in a ToR namespace, with their own path space (/run/frr/<ns>/, `vtysh -N <ns>`). */
export function startFrr(plan: Plan, tor: Tor, n: string, state: State): void {
  // FRR drops to the frr user: its configuration goes in its own path space (the state directory may be
  // private, e.g. a mkdtemp directory in a test).
  const pathspace = n;
  const run = join('/run/frr', pathspace);
  mkdirSync(run, { recursive: true, mode: 0o755 });
  const conf = join(run, 'frr.conf');
  writeFileSync(conf, frrConf(plan, tor));
  chmodSync(conf, 0o644);
  try {
    sh('chown', ['frr:frr', run]);
  } catch {
    /* FRR may run as root on this system */
  }
  for (const daemon of ['zebra', 'bgpd']) {
    // -d: FRR daemonizes itself; its pid file and log are in its path space (writable by the frr user).
    nsx(n, join(FRR_DIR, daemon), '-d', '-N', pathspace, '-f', conf, '--log', `file:${join(run, `${daemon}.log`)}`);
    const pidFile = join(run, `${daemon}.pid`);
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0) state.pids.push({ name: `${daemon} (${tor.name})`, pid });
  }
  say(`ToR: FRR zebra + bgpd in ${n} (${tor.ip}, AS ${tor.asn}), config ${conf}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Live changes to a running lab: the system side (namespaces, links) here, the resource edits in topology.ts.

export const ETCD_IP = '10.10.0.2';

export const ETCD_URL = `http://${ETCD_IP}:2379`;
