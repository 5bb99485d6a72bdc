// The control methods' answers (`skeinctl status`, `peers`, `routes <prefix>`, `fib`): read-only views of the
// speaker, the controller's desired peers, BFD and the kernel table, in the shapes src/control/types.ts defines
// (docs/contract.md, "The `--json` shapes"). Nothing here changes state; the daemon passes in what it holds.
import type { Speaker, PeerJson as SpeakerPeerJson } from '../../bgp/index.js';
import type { DaemonConfig, DatastoreStatus } from '../../config/index.js';
import { formatAddress, type Programmer, type RouteView } from '../../fib/index.js';
import { ControlError } from '../control/index.js';
import type { DesiredPeer } from '../controller/index.js';
import type {
  FibEntryJson, FibJson, FibRouteJson, FibWriterJson, PeerJson, PeerStateName, PeerType, PolicyVerdictJson, RouteJson, StatusJson,
} from '../control/types.js';
import type { ReadinessGate } from '../http.js';
import type { BfdWiring } from './bfd.js';
import { prefixBytes, sortByPrefix } from '../ip.js';
import type { SpeakerIdentity } from './mapping.js';
import type { PrefixKey } from './prefix-walk.js';
import { contractPath } from './route-query.js';
import { keyOf } from './route-targets.js';
import type { DesiredRoute, RouteTable } from './routes.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
export type FibSyncJson = NonNullable<NonNullable<StatusJson['gracefulRestart']>['fibSync']>;

export interface StatusSource {
  cfg: DaemonConfig;
  version: string;
  identity: SpeakerIdentity | undefined;
  readiness: ReadinessGate;
  speaker: Speaker | undefined;
  datastore: DatastoreStatus | undefined;
  /** the start-up FIB sweep (src/daemon/sweep.ts) */
  fibSync: () => FibSyncJson;
  peers: () => PeerJson[];
}

/** `skeinctl status`. */
export function statusJson(s: StatusSource): StatusJson {
  const r = s.readiness.check();
  const out: StatusJson = {
    node: s.cfg.nodeName,
    routerId: s.identity?.routerId ?? '',
    asn: s.identity?.asn ?? 0,
    ready: r.ready,
    peers: s.peers(),
    version: s.version,
  };
  const ds = s.datastore;
  if (ds !== undefined) {
    out.datastore = { type: s.cfg.datastore.type, state: ds.state, since: ds.since.toISOString() };
    if (ds.revision !== undefined) out.datastore.revision = ds.revision;
    if (ds.lastError !== undefined) out.datastore.lastError = ds.lastError;
    if (ds.held !== undefined) out.datastore.held = ds.held;
  }
  if (s.speaker) out.gracefulRestart = { ...s.speaker.localRestartJson(), fibSync: s.fibSync() };
  if (!r.ready) out.notReady = r.missing;
  return out;
}

/** `skeinctl peers`: the speaker's view of each session, with what the datastore asked for and BFD's state. */
export function peersJson(speaker: Speaker | undefined, desiredPeers: readonly DesiredPeer[], bfd: BfdWiring): PeerJson[] {
  if (!speaker) return [];
  const desired = new Map(desiredPeers.map((p) => [p.address, p]));
  return speaker.peersJson().peers.map((p) => {
    const out = { ...peerJson(p, desired.get(p.address)), ...speaker.sessionDetails(p.address) } as PeerJson & Record<string, unknown>;
    const info = bfd.infoFor(p.address);
    if (info !== undefined) out.info = out.info ? `${out.info}; ${info}` : info;
    const b = bfd.sessionOf(p.address);
    if (b) out.bfd = { state: b.state, lastDownReason: b.lastDownReason, downCount: b.downCount };
    const rejected = speaker.policyRejections(p.address);
    if (rejected !== null) out.policyRejected = rejected;
    // refused routes kept for `skeinctl routes --peer X --refused`, and those past bgp.keepRefused (only counted)
    const id = speaker.coreIdOf(p.address);
    if (id !== undefined) out.refusedRoutes = speaker.rib.refusedStats(id);
    return out;
  });
}

/** `routes <prefix | address>` as one answer (the streamed form is src/daemon/route-query.ts). `installed` is the
 * route table's answer, by the RIB's key as for every row of a dump (RouteTable.installed), for local routes too
 * (an affine block's blackhole is its kernel route): the speaker's rows carry no FIB state. */
export function routesJson(speaker: Speaker | undefined, installed: (k: PrefixKey) => boolean, prefix?: string): { routes: RouteJson[]; policy?: { imported: PolicyVerdictJson[]; exported: PolicyVerdictJson[] } } {
  if (!speaker) return { routes: [] };
  const out = locRibJson(speaker, installed, prefix);
  // One prefix: which rule let it in from each peer (or refused it) and which let it out to each peer.
  if (prefix !== undefined && prefix.includes('/')) return { ...out, policy: speaker.policyTrace(prefix) };
  return out;
}

function locRibJson(speaker: Speaker, installed: (k: PrefixKey) => boolean, prefix?: string): { routes: RouteJson[] } {
  let routes: ReturnType<Speaker['routesJson']>['routes'];
  if (prefix === undefined) routes = speaker.routesJson().routes;
  else if (prefix.includes('/')) {
    if (prefixBytes(prefix) === undefined) throw new ControlError(`"${prefix}" is not an IP prefix`, 'bad-request');
    try {
      routes = speaker.routesJson(prefix).routes;
    } catch (e) {
      throw new ControlError(`"${prefix}": ${(e as Error).message}`, 'bad-request');
    }
  } else {
    // An address: the longest prefix of the Loc-RIB that holds it.
    const a = prefixBytes(prefix);
    if (a === undefined) throw new ControlError(`"${prefix}" is not an IP address or prefix`, 'bad-request');
    const holding = speaker.routesJson().routes.filter((r) => {
      const p = prefixBytes(r.prefix);
      return p !== undefined && p.family === a.family && within(a.addr, p.addr, p.len);
    });
    holding.sort((x, y) => (prefixBytes(y.prefix)?.len ?? 0) - (prefixBytes(x.prefix)?.len ?? 0));
    routes = holding.slice(0, 1);
  }
  return { routes: sortByPrefix(routes.map((r) => ({ prefix: r.prefix, installed: isInstalled(installed, r.prefix), best: contractPath(r.best), paths: r.paths.map(contractPath) }))) };
}

function isInstalled(installed: (k: PrefixKey) => boolean, prefix: string): boolean {
  const k = keyOf(prefix);
  return k !== undefined && installed(k);
}

/** `skeinctl fib`: what the route table wants beside what the kernel holds, per prefix (in one document; the
 * control socket streams the same rows, src/daemon/fib-query.ts). */
export function fibJson(fib: Programmer | undefined, routes: RouteTable, cfg: DaemonConfig['fib']): FibJson {
  const rows: FibRouteJson[] = [];
  const seen = new Set<string>();
  const counts = { desired: 0, installed: 0, pending: 0, failed: 0 };
  for (const d of routes.all()) {
    seen.add(d.prefix);
    rows.push(countFibRow(counts, desiredFibRow(fib, routes, d)));
  }
  // Routes of ours in the kernel that nothing wants (adopted at start, before the sweep).
  if (fib) {
    for (const v of fib.routes()) {
      const prefix = fmtPrefix(v);
      if (seen.has(prefix) || !v.kernel) continue;
      rows.push(countFibRow(counts, kernelOnlyFibRow(v)));
    }
  }
  return { enabled: fib !== undefined, table: cfg.table, protocol: cfg.protocol, ...writerField(fib), counts, routes: sortByPrefix(rows) };
}

/** `skeinctl fib`'s writer counters (none with the FIB disabled). */
export function writerField(fib: Programmer | undefined): { writer?: FibWriterJson } {
  if (fib === undefined) return {};
  const w = fib.writer();
  return {
    writer: {
      requestThreadRunning: w.requestThreadRunning, requestThreadStarts: w.requestThreadStarts, directBatches: w.directBatches,
      nexthops: w.nexthops, resyncs: w.resyncs, overruns: w.overruns, repairs: w.repairs, errors: w.errors,
    },
  };
}

/** Adds a row to the counts of `skeinctl fib` (desired only while the route table is open: see desiredFibRow). */
export function countFibRow(c: FibJson['counts'], r: FibRouteJson): FibRouteJson {
  if (r.desired !== null) c.desired++;
  if (r.kernel !== null) c.installed++;
  if (r.state === 'failed') c.failed++;
  else if (r.state === 'pending') c.pending++;
  return r;
}

/** The `skeinctl fib` row of a prefix the route table wants. Before the table opens (start-up), nothing is desired yet. */
export function desiredFibRow(fib: Programmer | undefined, routes: RouteTable, d: DesiredRoute): FibRouteJson {
  const desired: FibEntryJson = d.kind === 'device'
    ? { type: 'device', nextHops: [], ...(d.dev !== undefined ? { dev: d.dev } : {}) }
    : d.kind === 'blackhole' ? { type: 'blackhole', nextHops: [] } : { type: 'unicast', nextHops: d.nextHops };
  const p = prefixBytes(d.prefix)!;
  const m = routes.metricOf(d.prefix);
  const v = fib?.lookup(p.family, p.addr, p.len, m !== undefined ? { metric: m } : undefined);
  const kernel = v?.kernel ? kernelEntry(v, d.dev) : null;
  const state: FibRouteJson['state'] = v?.failure ? 'failed' : v?.inSync ? 'in-sync' : 'pending';
  const row: FibRouteJson = { prefix: d.prefix, desired: routes.open ? desired : null, kernel, state };
  if (v?.failure) row.error = `${v.failure.code}: ${v.failure.message}`;
  return row;
}

/** The row of a route of ours in the kernel that nothing wants (adopted at start, removed by the sweep). */
export function kernelOnlyFibRow(v: RouteView): FibRouteJson {
  return { prefix: fmtPrefix(v), desired: null, kernel: kernelEntry(v, undefined), state: 'pending' };
}

function peerJson(p: SpeakerPeerJson, d: DesiredPeer | undefined): PeerJson {
  const type: PeerType = (['node-to-node mesh', 'global', 'node specific', 'route reflector'] as const).includes(p.type as PeerType)
    ? (p.type as PeerType)
    : 'global';
  const out: Mutable<PeerJson> & Record<string, unknown> = {
    address: p.address,
    port: p.port,
    asn: p.asn,
    localAsn: p.localAsn,
    type,
    state: p.state as PeerStateName,
    since: p.since,
    info: p.info,
    families: p.families,
    prefixes: p.prefixes,
  };
  // RFC 7911 state of the current session (it was dropped here before)
  out.addPath = p.addPath;
  if (d) {
    out.filters = [...d.filters];
    out.name = d.name;
    if (d.peerNode !== undefined) out.peerNode = d.peerNode;
    out.passive = d.passive;
    if (d.reflection !== 'none') out.reflection = d.reflection;
  }
  // serial number of the TCP connection: a new number means the session was replaced
  out.connection = p.connection;
  out.messages = p.messages;
  out.notifications = p.notifications;
  out.gracefulRestart = p.gracefulRestart;
  return out;
}

function kernelEntry(v: RouteView, dev: string | undefined): FibEntryJson | null {
  const k = v.kernel;
  if (!k) return null;
  if (k.type === 6) return { type: 'blackhole', nextHops: [] };
  const gws = k.hops.filter((h) => h.gateway !== undefined).map((h) => formatAddress(h.gateway!));
  if (gws.length === 0) return { type: 'device', nextHops: [], ...(dev !== undefined ? { dev } : {}) };
  return { type: 'unicast', nextHops: gws };
}

/** A kernel route's prefix as text. */
export function fmtPrefix(v: RouteView): string {
  const p = v.prefix;
  return `${formatAddress(p.addr.subarray(0, p.family === 4 ? 4 : 16))}/${p.len}`;
}

function within(addr: Uint8Array, net: Uint8Array, len: number): boolean {
  for (let i = 0; i < len; i++) {
    const byte = i >> 3;
    const bit = 0x80 >> (i & 7);
    if ((addr[byte]! & bit) !== (net[byte]! & bit)) return false;
  }
  return true;
}
