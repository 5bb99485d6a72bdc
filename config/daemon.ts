// skein.yaml: the daemon's node-local bootstrap configuration (docs/contract.md,
// "skein.yaml: what this node needs to start"). Typed, validated, defaults filled in, unknown keys
// rejected with a "did you mean"; every problem names the file, line and field.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Checker, bool, int, oneOf, str, type Path } from './check.js';
import { ConfigError, issuesFrom, type Issue } from './errors.js';
import { parseYaml } from './yamlsource.js';
import { ValueError, parseDuration, parseIP, describe } from './values.js';

/** Environment variables read by loadDaemonConfig (the first one set wins). */
export const ENV = {
  /** node name; NODENAME is what calico-node reads */
  nodeName: ['SKEIN_NODENAME', 'NODENAME'],
  /** comma-separated etcd endpoints; ETCD_ENDPOINTS is Calico's name */
  etcdEndpoints: ['SKEIN_ETCD_ENDPOINTS', 'ETCD_ENDPOINTS'],
  /** etcd TLS files, as Calico names them */
  etcdCaFile: ['SKEIN_ETCD_CA_CERT_FILE', 'ETCD_CA_CERT_FILE'],
  etcdCertFile: ['SKEIN_ETCD_CERT_FILE', 'ETCD_CERT_FILE'],
  etcdKeyFile: ['SKEIN_ETCD_KEY_FILE', 'ETCD_KEY_FILE'],
  /** etcd credentials; the password never goes in skein.yaml itself */
  etcdUsername: ['SKEIN_ETCD_USERNAME', 'ETCD_USERNAME'],
  etcdPassword: ['SKEIN_ETCD_PASSWORD', 'ETCD_PASSWORD'],
  /** fallback for --config (read by skeind, listed here for the docs) */
  config: ['SKEIN_CONFIG'],
} as const;

/** skeind's own routing protocol number in the kernel (`ip route show proto skein`); see config/README.md. */
export const DEFAULT_FIB_PROTOCOL = 171; // fib/constants.ts RTPROT_SKEIN says why this number

/** Well-known rtnetlink protocol names (iproute2's rt_protos) plus skein's own. */
const PROTOCOL_NAMES: Record<string, number> = {
  kernel: 2, boot: 3, static: 4, gated: 8, ra: 9, mrt: 10, zebra: 11, bird: 12, dnrouted: 13, xorp: 14,
  ntk: 15, dhcp: 16, mrouted: 17, keepalived: 18, babel: 42, openr: 99, bgp: 186, isis: 187, ospf: 188, rip: 189, eigrp: 192,
  skein: DEFAULT_FIB_PROTOCOL,
};

/** Routing table names that always exist (iproute2's rt_tables). */
const TABLE_NAMES: Record<string, number> = { default: 253, main: 254, local: 255 };

/**
 * RFC 7911 ADD-PATH send mode: only the best path per prefix (off), every path (all), or the N best
 * (written "best N"). The same shape as the BGP engine's, which config/ cannot import.
 */
export type AddPathsSend = { mode: 'off' } | { mode: 'all' } | { mode: 'best'; count: number };

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export interface EtcdConfig {
  endpoints: string[];
  tls?: { ca?: string; cert?: string; key?: string };
  username?: string;
  /** a file holding the password (keeps it out of skein.yaml); ETCD_PASSWORD overrides */
  passwordFile?: string;
  /** from the environment only */
  password?: string;
  /** how long one connection attempt may take (ms) */
  dialTimeoutMs: number;
  /** reconnect / resync back-off: first delay and cap (ms) */
  backoffMinMs: number;
  backoffMaxMs: number;
}

export interface DaemonConfig {
  /** the file it was read from */
  file: string;
  nodeName: string;
  datastore: {
    type: 'file' | 'etcd';
    /** type file: the resources file (watched) */
    path: string;
    /** type file: quiet time after a change before the file is re-read (ms) */
    debounceMs: number;
    /** present when type is etcd */
    etcd?: EtcdConfig;
  };
  bgp: {
    listen: { address: string; port: number };
    /** BGP identifier (RFC 4271 §4.2); default: the node's IPv4 BGP address */
    routerId?: string;
    /**
     * RFC 9494 long-lived graceful restart, seconds of long-lived stale time we announce (and honour as helper):
     * staleTime for every peer, peers[address] for one peer (0 turns it off there). Absent (the default): off.
     */
    longLivedGracefulRestart?: { staleTime: number; peers: Record<string, number> };
    /**
     * RFC 4486 maximum prefixes accepted from each peer, counted per address family (Calico has no field for
     * it): `limit` per family unless ipv4/ipv6 say otherwise, peers[address] for one peer. Absent: no limit.
     */
    maxPrefixes?: MaxPrefixesConfig;
    /**
     * Most routes refused by import rules kept per peer to be listed (`skeinctl routes --peer X --refused`), as
     * BIRD's `import keep filtered`; 0 keeps none. Default 10,000 (about 90 bytes each beside their attributes).
     */
    keepRefused: number;
    /**
     * RFC 8326 graceful shutdown when skeind is stopped (SIGTERM/SIGINT): announce every route with GRACEFUL_SHUTDOWN
     * (and LOCAL_PREF 0 to iBGP), wait this many seconds for peers to move traffic, then end the sessions with Cease
     * / Administrative Shutdown. 0 (the default): a stop is a restart, sessions close silently and peers keep our
     * routes under graceful restart. Also how long `skeinctl drain` waits before it reports "drained". Live on reload.
     */
    shutdownDrainSeconds: number;
    /** RFC 7911 ADD-PATH, for ECMP through route reflectors (docs/contract.md: no Calico resource has a field for it) */
    addPaths: {
      /** what this node, as a route reflector, sends its clients; default off (the best path only) */
      toClients: AddPathsSend;
      /** offer to receive several paths per prefix on every session; default false */
      receive: boolean;
    };
  };
  fib: {
    enabled: boolean;
    /** kernel routing table id (number, or main/local/default) */
    table: number;
    /** rtnetlink protocol number tagged on every route skein installs */
    protocol: number;
    /** device routes to local workloads (like Felix); false when something else programs them */
    workloadRoutes: boolean;
    /**
     * Learn the routes other programs write in the main table and announce those Calico's export filter lets out,
     * as Calico's BIRD does beside Felix (`protocol kernel { learn; }`), instead of reading WorkloadEndpoints: skein
     * then reads none at all. Needs `enabled` and `workloadRoutes: false` (Felix writes the workload routes).
     */
    learn: boolean;
    /**
     * seconds between reads of the kernel's non-BGP routes for next-hop resolution (BIRD's `scan time`): how
     * late a next hop that stopped resolving is noticed at most; default 10
     */
    nextHopScan: number;
  };
  control: {
    socket: string;
    /** group (name or numeric gid) given access to the socket; default: root only */
    group?: string | number;
  };
  metrics: {
    /** null: no HTTP listener (no /metrics, /livez, /readyz) */
    listen: { host: string; port: number } | null;
    /** per-peer series: full (about 25 per peer) or summary (3 per peer; the rest summed over peers) */
    peerDetail: 'full' | 'summary';
  };
  log: { level: LogLevel };
  /**
   * Where BFD sessions run (src/daemon/bfd-companion.ts): in skein-bfdd, the companion that keeps them up while
   * skeind restarts (`auto`: when its socket answers; `required`: only there), or in skeind (`off`).
   */
  bfd: { companion: 'auto' | 'required' | 'off'; socket: string };
  /** where password secretKeyRefs are read from: <secretsDir>/<name>/<key> */
  secretsDir: string;
  /**
   * where skeind keeps what must outlive a restart (drain.json: a drain started by `skeinctl drain`). skeind does
   * not create it (systemd's StateDirectory=skein does): without it nothing is kept. Default /var/lib/skein.
   */
  stateDirectory: string;
}

/** skein.yaml bgp.maxPrefixes (see DaemonConfig). */
export interface MaxPrefixesConfig {
  limit: number;
  ipv4?: number;
  ipv6?: number;
  /** percent of the limit at which a warning is logged */
  warningThreshold: number;
  /** seconds after which a peer shut for too many prefixes may come back; absent: it stays down */
  restartAfter?: number;
  /** per peer address: the limit for each family of that peer */
  peers: Record<string, number>;
}

/** RFC 9494 §3: the long-lived stale time is 24 bits of seconds. A duration ("1h", "3600s") or a number of seconds. */
function staleTime(v: unknown): number {
  const s = typeof v === 'number' ? v : parseDuration(v) / 1000;
  if (!Number.isInteger(s) || s < 0) throw new ValueError(`a long-lived stale time is a whole number of seconds, got ${describe(v)}`);
  if (s > 0xffffff) throw new ValueError(`a long-lived stale time is at most 16777215 s (24 bits, RFC 9494 §3), got ${s} s`);
  return s;
}

/** A map keyed by peer address (normalised, so "fd00::0:1" and "fd00::1" are one key) to a value of each peer. */
function perPeer(c: Checker, v: unknown, path: Path, parse: (v: unknown) => number): Record<string, number> {
  const out: Record<string, number> = {};
  const m = c.object(v, path, Object.keys(isRecord(v) ? v : {}));
  for (const k of Object.keys(m)) {
    const address = c.value(k, [...path, k], (a) => parseIP(a).address);
    const n = c.opt(m, k, path, parse);
    if (address !== undefined && n !== undefined) out[address] = n;
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const TOP = ['nodeName', 'datastore', 'bgp', 'fib', 'control', 'metrics', 'log', 'bfd', 'secretsDir', 'stateDirectory'] as const;

function port(v: unknown): number {
  return int(1, 65535)(v);
}

/** "host:port", "[v6]:port" */
function hostPort(v: unknown): { host: string; port: number } {
  const s = str(v).trim();
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]*):(\d+)$/.exec(s);
  if (!m) throw new ValueError(`expected "host:port" (IPv6 as "[addr]:port"), got "${s}"`);
  const host = m[1] as string;
  if (host !== '' && host !== 'localhost') parseIP(host);
  const p = Number(m[2]);
  if (p < 1 || p > 65535) throw new ValueError(`port ${p} out of range 1-65535`);
  return { host: host === '' ? '0.0.0.0' : host, port: p };
}

/** "off" | "all" | "best N" (N from 1 to 65535). */
function addPathsSend(v: unknown): AddPathsSend {
  const s = str(v).trim();
  if (s === 'off') return { mode: 'off' };
  if (s === 'all') return { mode: 'all' };
  const m = /^best\s+(\d+)$/.exec(s);
  if (m) {
    const count = Number(m[1]);
    if (count >= 1 && count <= 65535) return { mode: 'best', count };
  }
  throw new ValueError(`expected "off", "all" or "best N" (N from 1 to 65535), got "${s}"`);
}

/**
 * bgp.shutdownDrainSeconds: whole seconds (or a duration such as "30s"), at most an hour. A stop waits this long, so
 * systemd's TimeoutStopSec must be longer (systemd/README.md); an hour is far past any peer's need (RFC 8326 §5).
 */
function drainSeconds(v: unknown): number {
  let s = NaN;
  if (typeof v === 'number') s = v;
  else if (typeof v === 'string') s = /^\s*\d+\s*$/.test(v) ? Number(v) : parseDuration(v) / 1000;
  if (!Number.isInteger(s) || s < 0 || s > 3600) {
    throw new ValueError(`expected a whole number of seconds from 0 to 3600 (or a duration such as "30s"), got ${describe(v)}`);
  }
  return s;
}

function endpoint(v: unknown): string {
  const s = str(v).trim();
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new ValueError(`expected an etcd endpoint URL such as https://192.0.2.5:2379, got "${s}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ValueError(`etcd endpoint "${s}" must use http:// or https://`);
  return s.replace(/\/+$/, '');
}

function absPath(v: unknown): string {
  const s = str(v);
  if (!s.startsWith('/')) throw new ValueError(`expected an absolute path, got "${s}"`);
  return s;
}

function named(kind: string, names: Record<string, number>, max: number): (v: unknown) => number {
  return (v) => {
    if (typeof v === 'number') return int(1, max)(v);
    if (typeof v === 'string') {
      if (/^\d+$/.test(v)) return int(1, max)(Number(v));
      const n = names[v];
      if (n !== undefined) return n;
      throw new ValueError(`unknown ${kind} name "${v}": use a number or one of ${Object.keys(names).join(', ')}`);
    }
    throw new ValueError(`expected a ${kind} number or name, got ${describe(v)}`);
  };
}

function group(v: unknown): string | number {
  if (typeof v === 'number') return int(0, 4294967294)(v);
  const s = str(v);
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(s)) throw new ValueError(`"${s}" is not a group name or gid`);
  return s;
}

function firstEnv(env: NodeJS.ProcessEnv, names: readonly string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value !== '') return { name, value };
  }
  return undefined;
}

/**
 * Validate skein.yaml text. `env` supplies the overrides listed in ENV.
 * Throws ConfigError (all problems in `.issues`, the first in `.message`).
 */
export function parseDaemonConfig(text: string, file: string, env: NodeJS.ProcessEnv = {}): DaemonConfig {
  const { docs, issues } = parseYaml(text, file);
  if (issues.length > 0) throw new ConfigError(issues);
  if (docs.length > 1) {
    throw new ConfigError([{ source: file, line: docs[1]?.line ?? 1, field: '(document)', reason: 'skein.yaml must hold one YAML document', severity: 'error' }]);
  }
  const doc = docs[0];
  const c = new Checker('error');
  const root = c.object(doc?.value ?? {}, [], TOP);
  const envIssues: Issue[] = [];
  const envValue = (names: readonly string[], parse: (v: unknown) => unknown): { name: string; value: string } | undefined => {
    const e = firstEnv(env, names);
    if (e === undefined) return undefined;
    try {
      parse(e.value);
    } catch (err) {
      envIssues.push({ source: `environment variable ${e.name}`, field: e.name, reason: (err as Error).message, severity: 'error' });
      return undefined;
    }
    return e;
  };

  // nodeName: environment, then file, then the host name (as calico-node does).
  const nodeNameParse = (v: unknown): string => {
    const s = str(v).trim();
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(s) || s.length > 253) {
      throw new ValueError(`"${s}" is not a valid node name (lower-case letters, digits, "-", "."), as Calico's Node names are`);
    }
    return s;
  };
  const envNode = envValue(ENV.nodeName, nodeNameParse);
  const fileNode = c.opt(root, 'nodeName', [], nodeNameParse);
  let nodeName = envNode?.value.trim() ?? fileNode;
  if (nodeName === undefined) {
    try {
      nodeName = nodeNameParse(hostname().toLowerCase());
    } catch (e) {
      c.error(['nodeName'], `not set, and the host name cannot be used: ${(e as Error).message}`);
      nodeName = '';
    }
  }

  const dsPath: Path = ['datastore'];
  const ds = c.object(root.datastore, dsPath, ['type', 'path', 'debounce', 'etcd']);
  const type = c.opt(ds, 'type', dsPath, oneOf(['file', 'etcd'] as const)) ?? 'file';
  const path = c.opt(ds, 'path', dsPath, absPath) ?? '/etc/skein/resources.yaml';
  const debounceMs = c.opt(ds, 'debounce', dsPath, parseDuration) ?? 100;
  let etcd: EtcdConfig | undefined;
  const etcdPath: Path = [...dsPath, 'etcd'];
  const e = c.object(ds.etcd, etcdPath, ['endpoints', 'tls', 'username', 'passwordFile', 'dialTimeout', 'backoff']);
  const envEndpoints = envValue(ENV.etcdEndpoints, (v) => String(v).split(',').map((x) => endpoint(x)));
  // a single endpoint written without brackets is a common slip: accept it
  const eps = typeof e.endpoints === 'string' ? { endpoints: [e.endpoints] } : e;
  const endpoints: string[] = envEndpoints?.value.split(',').map(endpoint)
    ?? c.list(eps, 'endpoints', etcdPath, (v, p) => c.value(v, p, endpoint));
  if (type === 'etcd') {
    if (endpoints.length === 0) c.error([...etcdPath, 'endpoints'], `is required when datastore.type is etcd (or set ${ENV.etcdEndpoints.join(' / ')})`);
    const tlsPath: Path = [...etcdPath, 'tls'];
    const tlsObj = c.object(e.tls, tlsPath, ['ca', 'cert', 'key']);
    const tls: NonNullable<EtcdConfig['tls']> = {};
    const ca = envValue(ENV.etcdCaFile, absPath)?.value ?? c.opt(tlsObj, 'ca', tlsPath, absPath);
    const cert = envValue(ENV.etcdCertFile, absPath)?.value ?? c.opt(tlsObj, 'cert', tlsPath, absPath);
    const key = envValue(ENV.etcdKeyFile, absPath)?.value ?? c.opt(tlsObj, 'key', tlsPath, absPath);
    if (ca !== undefined) tls.ca = ca;
    if (cert !== undefined) tls.cert = cert;
    if (key !== undefined) tls.key = key;
    if ((cert === undefined) !== (key === undefined)) c.error(tlsPath, 'cert and key must be given together');
    const backoffPath: Path = [...etcdPath, 'backoff'];
    const bo = c.object(e.backoff, backoffPath, ['min', 'max']);
    etcd = {
      endpoints,
      dialTimeoutMs: c.opt(e, 'dialTimeout', etcdPath, parseDuration) ?? 5000,
      backoffMinMs: c.opt(bo, 'min', backoffPath, parseDuration) ?? 200,
      backoffMaxMs: c.opt(bo, 'max', backoffPath, parseDuration) ?? 30_000,
    };
    if (etcd.backoffMaxMs < etcd.backoffMinMs) c.error([...backoffPath, 'max'], 'must not be smaller than backoff.min');
    if (Object.keys(tls).length > 0) etcd.tls = tls;
    const username = envValue(ENV.etcdUsername, str)?.value ?? c.opt(e, 'username', etcdPath, str);
    if (username !== undefined) etcd.username = username;
    const passwordFile = c.opt(e, 'passwordFile', etcdPath, absPath);
    if (passwordFile !== undefined) etcd.passwordFile = passwordFile;
    const password = firstEnv(env, ENV.etcdPassword)?.value;
    if (password !== undefined) etcd.password = password;
    if (username !== undefined && passwordFile === undefined && password === undefined) {
      c.error([...etcdPath, 'username'], `needs a password: set etcd.passwordFile or ${ENV.etcdPassword.join(' / ')}`);
    }
  }

  const bgpPath: Path = ['bgp'];
  const bgp = c.object(root.bgp, bgpPath, ['listen', 'routerId', 'longLivedGracefulRestart', 'addPaths', 'maxPrefixes', 'keepRefused', 'shutdownDrainSeconds']);
  const listenPath: Path = [...bgpPath, 'listen'];
  const listen = c.object(bgp.listen, listenPath, ['address', 'port']);
  const addPathsPath: Path = [...bgpPath, 'addPaths'];
  const addPaths = c.object(bgp.addPaths, addPathsPath, ['toClients', 'receive']);
  const bgpOut: DaemonConfig['bgp'] = {
    keepRefused: c.opt(bgp, 'keepRefused', bgpPath, int(0, 10_000_000)) ?? 10_000,
    shutdownDrainSeconds: c.opt(bgp, 'shutdownDrainSeconds', bgpPath, drainSeconds) ?? 0,
    listen: {
      address: c.opt(listen, 'address', listenPath, (v) => parseIP(v).address) ?? '::',
      port: c.opt(listen, 'port', listenPath, port) ?? 179,
    },
    addPaths: {
      toClients: c.opt(addPaths, 'toClients', addPathsPath, addPathsSend) ?? { mode: 'off' },
      receive: c.opt(addPaths, 'receive', addPathsPath, bool) ?? false,
    },
  };
  if (bgp.longLivedGracefulRestart !== undefined && bgp.longLivedGracefulRestart !== null) {
    const llgrPath: Path = [...bgpPath, 'longLivedGracefulRestart'];
    const llgr = c.object(bgp.longLivedGracefulRestart, llgrPath, ['staleTime', 'peers']);
    bgpOut.longLivedGracefulRestart = {
      staleTime: c.opt(llgr, 'staleTime', llgrPath, staleTime) ?? 0,
      peers: perPeer(c, llgr.peers, [...llgrPath, 'peers'], staleTime),
    };
  }
  if (bgp.maxPrefixes !== undefined && bgp.maxPrefixes !== null) {
    const mpPath: Path = [...bgpPath, 'maxPrefixes'];
    const mp = c.object(bgp.maxPrefixes, mpPath, ['limit', 'ipv4', 'ipv6', 'warningThreshold', 'restartAfter', 'peers']);
    const count = int(1, 0xffffffff);
    const limit = c.opt(mp, 'limit', mpPath, count);
    const ipv4 = c.opt(mp, 'ipv4', mpPath, count);
    const ipv6 = c.opt(mp, 'ipv6', mpPath, count);
    const restartAfter = c.opt(mp, 'restartAfter', mpPath, (v) => {
      const s = typeof v === 'number' ? v : parseDuration(v) / 1000;
      if (!Number.isInteger(s) || s < 1) throw new ValueError(`expected a whole number of seconds of at least 1 (or a duration such as "5m"), got ${describe(v)}`);
      return s;
    });
    const out: MaxPrefixesConfig = {
      limit: limit ?? 0,
      warningThreshold: c.opt(mp, 'warningThreshold', mpPath, int(1, 100)) ?? 75,
      peers: perPeer(c, mp.peers, [...mpPath, 'peers'], count),
      ...(ipv4 !== undefined ? { ipv4 } : {}),
      ...(ipv6 !== undefined ? { ipv6 } : {}),
      ...(restartAfter !== undefined ? { restartAfter } : {}),
    };
    if (limit === undefined && isRecord(mp) && !('limit' in mp)) c.error([...mpPath, 'limit'], 'is required: the number of prefixes accepted per address family from each peer');
    bgpOut.maxPrefixes = out;
  }
  const routerId = c.opt(bgp, 'routerId', bgpPath, (v) => {
    const ip = parseIP(v);
    // RFC 4271 §4.2 / RFC 6286: the BGP Identifier is a 4-octet value, written as an IPv4 address.
    if (ip.family !== 4) throw new ValueError(`a router ID is a 32-bit value written as an IPv4 address (RFC 6286), got "${String(v)}"`);
    if (ip.address === '0.0.0.0') throw new ValueError('a router ID must not be 0.0.0.0 (RFC 6286 §2.1)');
    return ip.address;
  });
  if (routerId !== undefined) bgpOut.routerId = routerId;

  const fibPath: Path = ['fib'];
  const fib = c.object(root.fib, fibPath, ['enabled', 'table', 'protocol', 'workloadRoutes', 'learn', 'nextHopScan']);
  const fibOut: DaemonConfig['fib'] = {
    enabled: c.opt(fib, 'enabled', fibPath, bool) ?? true,
    table: c.opt(fib, 'table', fibPath, named('routing table', TABLE_NAMES, 4294967295)) ?? 254,
    protocol: c.opt(fib, 'protocol', fibPath, named('routing protocol', PROTOCOL_NAMES, 255)) ?? DEFAULT_FIB_PROTOCOL,
    workloadRoutes: c.opt(fib, 'workloadRoutes', fibPath, bool) ?? true,
    learn: c.opt(fib, 'learn', fibPath, bool) ?? false,
    nextHopScan: c.opt(fib, 'nextHopScan', fibPath, (v) => {
      const s = typeof v === 'number' ? v : parseDuration(v) / 1000;
      if (!Number.isInteger(s) || s < 1 || s > 3600) throw new ValueError(`expected a whole number of seconds from 1 to 3600 (or a duration such as "30s"), got ${describe(v)}`);
      return s;
    }) ?? 10,
  };
  if (fibOut.learn && !fibOut.enabled) {
    c.error([...fibPath, 'learn'], 'learning routes from the kernel needs the kernel: fib.enabled is false');
  } else if (fibOut.learn && fibOut.workloadRoutes) {
    // both would make skein the source of the workload routes and their reader at once: announcements would follow
    // skein's own writes, not what Felix programmed
    c.error([...fibPath, 'learn'], 'learning routes from the kernel is for running beside Felix, which writes the workload routes: set fib.workloadRoutes: false too');
  }
  if (fibOut.protocol <= 4) {
    // 0-4 are the kernel's own (unspec, redirect, kernel, boot, static): routes tagged so would not be skein's.
    c.error([...fibPath, 'protocol'], `protocol ${fibOut.protocol} is reserved for the kernel and other tools; use one of your own (default ${DEFAULT_FIB_PROTOCOL})`);
  }

  const controlPath: Path = ['control'];
  const control = c.object(root.control, controlPath, ['socket', 'group']);
  const controlOut: DaemonConfig['control'] = { socket: c.opt(control, 'socket', controlPath, absPath) ?? '/run/skein/skein.sock' };
  const grp = c.opt(control, 'group', controlPath, group);
  if (grp !== undefined) controlOut.group = grp;

  const metricsPath: Path = ['metrics'];
  const metrics = c.object(root.metrics, metricsPath, ['listen', 'peerDetail']);
  const peerDetail = c.opt(metrics, 'peerDetail', metricsPath, oneOf(['full', 'summary'] as const)) ?? 'full';
  let metricsListen: DaemonConfig['metrics']['listen'] = { host: '127.0.0.1', port: 9180 };
  if (metrics.listen === false || metrics.listen === '') metricsListen = null;
  else metricsListen = c.opt(metrics, 'listen', metricsPath, hostPort) ?? metricsListen;

  const logPath: Path = ['log'];
  const log = c.object(root.log, logPath, ['level']);
  const level = c.opt(log, 'level', logPath, oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const)) ?? 'info';

  const bfdPath: Path = ['bfd'];
  const bfd = c.object(root.bfd, bfdPath, ['companion', 'socket']);
  const bfdOut: DaemonConfig['bfd'] = {
    companion: c.opt(bfd, 'companion', bfdPath, oneOf(['auto', 'required', 'off'] as const)) ?? 'auto',
    socket: c.opt(bfd, 'socket', bfdPath, absPath) ?? '/run/skein-bfd/bfd.sock', // skein-bfdd's default
  };

  const secretsDir = c.opt(root, 'secretsDir', [], absPath) ?? '/etc/skein/secrets';
  const stateDirectory = c.opt(root, 'stateDirectory', [], absPath) ?? '/var/lib/skein';

  const all = [...envIssues, ...issuesFrom(c, file, doc?.locate)];
  if (all.some((i) => i.severity === 'error')) throw new ConfigError(all);
  const out: DaemonConfig = {
    file,
    nodeName,
    datastore: { type, path, debounceMs },
    bgp: bgpOut,
    fib: fibOut,
    control: controlOut,
    metrics: { listen: metricsListen, peerDetail },
    log: { level },
    bfd: bfdOut,
    secretsDir,
    stateDirectory,
  };
  if (etcd !== undefined) out.datastore.etcd = etcd;
  return out;
}

/** Read and validate skein.yaml; a file that cannot be read is a ConfigError too. */
export function loadDaemonConfig(file: string, env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError([{ source: file, field: '(file)', reason: `cannot read: ${code ?? (e as Error).message}`, severity: 'error' }], { cause: e });
  }
  return parseDaemonConfig(text, file, env);
}

