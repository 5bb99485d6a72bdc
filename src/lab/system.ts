// What the lab does to the machine, in small steps: run a command (in a namespace), wait for a condition, the lab's
// namespaces and state directory, and the links: veths between namespaces, their MAC addresses and the static
// neighbour entries of the fabric. Links are made inside a namespace and moved between namespaces, never into the
// root one.
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Topology, Workload } from './topology.js';
import { LabError, type Options } from './options.js';

const t0 = Date.now();

export function say(msg: string): void {
  process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`);
}

export function sh(cmd: string, args: readonly string[], timeoutMs = 15_000): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new LabError(`${cmd} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

export function shAsync(cmd: string, args: readonly string[], timeoutMs: number): Promise<{ ok: boolean; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs }, (error, out, err) => resolve({ ok: error === null, out, err }));
  });
}

export const ipn = (ns: string, ...args: string[]): string => sh('ip', ['-n', ns, ...args]);

export const nsx = (ns: string, cmd: string, ...args: string[]): string => sh('ip', ['netns', 'exec', ns, cmd, ...args]);

export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T | undefined> {
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

export function listNamespaces(prefix: string): string[] {
  return sh('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n !== '' && n.startsWith(prefix));
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie answers signal 0 too, but it has exited: only its parent's wait() is missing. A lab's processes are
  // reparented to init once `lab up` returns, and how soon init reaps them is not ours to decide.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// down: by the state file's pids and by namespace prefix, so a lab killed half-way is cleaned up too.

export interface State {
  prefix: string; topology: Topology; tor: string; ipv6?: boolean; datastore?: 'file' | 'etcd';
  racks?: number; rackAs?: 'distinct' | 'shared'; allowOwnAs?: number; birdHosts?: string[];
  pids: { name: string; pid: number }[]; namespaces: string[];
}

export function stateDir(o: Options): string {
  return join(o.stateRoot, o.prefix);
}

export function readState(o: Options): State | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir(o), 'state.json'), 'utf8')) as State;
  } catch {
    return undefined;
  }
}

export function makeNs(name: string, ipv6: boolean): void {
  sh('ip', ['netns', 'add', name]);
  ipn(name, 'link', 'set', 'lo', 'up');
  // No duplicate address detection: on a lab's private links it only delays IPv6 by a second or two.
  if (ipv6) nsx(name, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
}

/** A veth pair made inside `a`, one end moved to `b`: nothing is ever created in the root namespace. */
export function veth(a: string, nameA: string, b: string, nameB: string, macB?: string, macA?: string): void {
  ipn(a, 'link', 'add', nameA, ...(macA ? ['address', macA] : []), 'type', 'veth', 'peer', 'name', nameB, ...(macB ? ['address', macB] : []));
  ipn(a, 'link', 'set', nameB, 'netns', b);
  ipn(a, 'link', 'set', nameA, 'up');
  ipn(b, 'link', 'set', nameB, 'up');
}

/**
 * A MAC address derived from an interface's IPv4 address (locally administered, `02:<kind>:` + the four octets),
 * so every lab interface's MAC is known without asking the kernel.
 */
export function macOf(kind: number, ip: string): string {
  return ['02', kind.toString(16).padStart(2, '0'), ...ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}

export const FABRIC_MAC = 0x5c;

const WORKLOAD_MAC = 0x77;

/**
 * Permanent neighbour entries, written in one `ip -batch`. The kernel's neighbour tables are shared by every
 * namespace on the machine and capped (net.ipv4.neigh.default.gc_thresh3, 1024 by default): when other work fills
 * them (e.g. a 50-host benchmark's mesh), resolving a new neighbour fails with ENOBUFS and the lab's IPv4 would
 * silently break. Permanent entries do not count against that cap, and the lab knows every address and MAC.
 */
export function staticNeighbours(ns: string, entries: readonly { ip: string; mac: string; dev: string }[]): void {
  if (entries.length === 0) return;
  const batch = entries.map((e) => `neigh replace ${e.ip} lladdr ${e.mac} dev ${e.dev} nud permanent`).join('\n');
  try {
    execFileSync('ip', ['-n', ns, '-batch', '-'], { input: `${batch}\n`, encoding: 'utf8', timeout: 15_000, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new LabError(`ip -n ${ns} -batch (neighbours): ${err.stderr?.trim() || err.message}`);
  }
}

/** A workload's namespace wired to its host as Calico's CNI (or Nova's tap) would: a veth, addresses, gateways. */
export function plug(host: string, n: string, w: Workload, ipv6: boolean): void {
  // The host end has Calico's MAC ee:ee:ee:ee:ee:ee, so its IPv6 link-local address is the workloads' IPv6
  // gateway fe80::ecee:eeff:feee:eeee (as Calico's CNI sets up).
  veth(n, 'eth0', host, w.ifname, 'ee:ee:ee:ee:ee:ee', macOf(WORKLOAD_MAC, w.ip));
  nsx(host, 'sysctl', '-qw', `net.ipv4.conf.${w.ifname}.proxy_arp=1`);
  ipn(n, 'addr', 'add', `${w.ip}/32`, 'dev', 'eth0');
  ipn(n, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0', 'onlink');
  if (ipv6 && w.ip6 !== '') {
    ipn(n, '-6', 'addr', 'add', `${w.ip6}/128`, 'dev', 'eth0', 'nodad');
    ipn(n, '-6', 'route', 'add', 'default', 'via', 'fe80::ecee:eeff:feee:eeee', 'dev', 'eth0');
  }
  // Both ends' neighbours fixed (see staticNeighbours): the gateways in the workload, the workload on the host.
  const gw = [{ ip: '169.254.1.1', mac: 'ee:ee:ee:ee:ee:ee', dev: 'eth0' }];
  if (ipv6 && w.ip6 !== '') gw.push({ ip: 'fe80::ecee:eeff:feee:eeee', mac: 'ee:ee:ee:ee:ee:ee', dev: 'eth0' });
  staticNeighbours(n, gw);
  hostNeighbours(host, w, ipv6);
}

/** The host's permanent neighbour entries for a workload behind its cali/tap interface. */
export function hostNeighbours(host: string, w: Workload, ipv6: boolean): void {
  const mac = macOf(WORKLOAD_MAC, w.ip);
  staticNeighbours(host, [{ ip: w.ip, mac, dev: w.ifname }, ...(ipv6 && w.ip6 !== '' ? [{ ip: w.ip6, mac, dev: w.ifname }] : [])]);
}

// ---------------------------------------------------------------------------------------------------------------
// up
