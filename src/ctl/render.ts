// skeinctl's text output, rendered from the same JSON the daemon returns for `--json`, so the two never disagree.
// Renderers check the parts of the shape they use and throw ShapeError on anything else: an old or a foreign
// daemon produces a clear message, not a TypeError.
import { drainLine } from './drain.js';
import { fields, humaneDuration, humaneSince, table } from './format.js';
import type {
  BfdJson, DatastoreJson, FibEntryJson, FibJson, FibWriterJson, GracefulRestartJson, PathJson, PeerJson, ReloadJson, RouteJson, StatusJson,
} from '../control/types.js';

export class ShapeError extends Error {
  constructor(what: string) {
    super(`unexpected answer from the daemon: ${what}`);
    this.name = 'ShapeError';
  }
}

/** A shape as it arrives from a daemon of any version: each field may be missing or null (one level deep). */
type Wire<T> = { [K in keyof T]?: T[K] | null };
type WireGr = Wire<GracefulRestartJson>;
type WireHelper = Wire<NonNullable<GracefulRestartJson['helper']>>;

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ShapeError(`${what} is not an object`);
  return v as Record<string, unknown>;
}
function arr(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new ShapeError(`${what} is not a list`);
  return v;
}
const text = (v: unknown): string => (v === undefined || v === null || v === '' ? '-' : String(v));
const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

function peerAddress(p: Wire<PeerJson>): string {
  if (p.port === undefined || p.port === 179) return String(p.address);
  return String(p.address).includes(':') ? `[${p.address}]:${p.port}` : `${p.address}:${p.port}`;
}

const isV6 = (p: Wire<PeerJson>): boolean => String(p.address).includes(':');

/** `skeinctl status`: the node, then one table per address family (as `calicoctl node status` prints them). */
export function renderStatus(result: unknown, now: Date): string {
  const s = obj(result, 'status') as unknown as Wire<StatusJson>;
  const peers = arr(s.peers, 'status.peers').map((p, i) => obj(p, `status.peers[${i}]`) as unknown as Wire<PeerJson>);
  const ready = s.ready ? 'yes' : Array.isArray(s.notReady) && s.notReady.length > 0 ? `no (${s.notReady.join('; ')})` : 'no';
  let out = fields([
    ['Node', text(s.node)],
    ['AS number', text(s.asn)],
    ['Router ID', text(s.routerId)],
    ['Ready', ready],
    ...datastoreRow(s, now),
    ...restartRow(s),
    // only while a drain runs or is done: an ordinary status stays as calicoctl's
    ...(s.drain && typeof s.drain === 'object' && s.drain.state !== 'off' ? [['Graceful shutdown', drainLine(s.drain, now)] as [string, string]] : []),
  ]);
  for (const [family, mine] of [['IPv4', peers.filter((p) => !isV6(p))], ['IPv6', peers.filter(isV6)]] as const) {
    out += `\n${family} BGP status\n`;
    if (mine.length === 0) {
      out += `No ${family} peers found.\n`;
      continue;
    }
    out += table(
      ['PEER ADDRESS', 'PEER TYPE', 'STATE', 'SINCE', 'INFO'],
      mine.map((p) => [peerAddress(p), text(p.type), text(p.state), humaneSince(String(p.since ?? ''), now), infoWithHelper(p)]),
      true,
    );
  }
  return out;
}

/** The datastore line: state, since when, revision; the last error while not synced, or why a file is held. */
function datastoreRow(s: Wire<StatusJson>, now: Date): [string, string][] {
  const d = s.datastore as Wire<DatastoreJson> | null | undefined;
  if (!d || typeof d !== 'object') return [];
  let v = `${text(d.type)} ${text(d.state)}`;
  if (d.state === 'disconnected') v += ` (stale since ${humaneSince(String(d.since ?? ''), now)})`;
  else if (d.state !== 'synced') v += ` since ${humaneSince(String(d.since ?? ''), now)}`;
  if (d.revision !== undefined) v += `, revision ${text(d.revision)}`;
  if (d.held !== undefined) v += `; newest file held: ${text(d.held)}`;
  else if (d.state !== 'synced' && d.lastError !== undefined) v += `: ${text(d.lastError)}`;
  return [['Datastore', v]];
}

/** Our own graceful restart, when the daemon reports one: only worth a line while updates are held back. */
function restartRow(s: Wire<StatusJson>): [string, string][] {
  const g = s.gracefulRestart;
  if (!g || typeof g !== 'object') return [];
  const rows: [string, string][] = [];
  const wait = (who: unknown, secondsLeft: number | null | undefined): string =>
    `${list(who).length > 0 ? ` from ${list(who).join(', ')}` : ''}${secondsLeft !== null && secondsLeft !== undefined ? `, at most ${secondsLeft}s more` : ''}`;
  if (g.deferring) rows.push(['Restart', `deferring updates until End-of-RIB${wait(g.waitingFor, g.secondsLeft)}`]);
  const f = g.fibSync;
  if (f && typeof f === 'object' && !f.done) rows.push(['FIB sync', `stale kernel routes kept until End-of-RIB${wait(f.waitingFor, f.secondsLeft)}`]);
  return rows;
}

/** The status INFO column, with a note while we keep the peer's routes after its session went down. */
function infoWithHelper(p: Wire<PeerJson>): string {
  const h = (p.gracefulRestart as WireGr | null | undefined)?.helper as WireHelper | null | undefined;
  if (!h || typeof h !== 'object') return text(p.info);
  const note = `keeping routes: ${h.phase}${h.secondsLeft !== null && h.secondsLeft !== undefined ? ` ${h.secondsLeft}s left` : ''}`;
  return p.info ? `${p.info} (${note})` : note;
}

/** The graceful restart lines of a peer block (RFC 4724 / RFC 9494), when the daemon reports them. */
function grRows(p: Wire<PeerJson>): [string, string][] {
  const g = p.gracefulRestart as WireGr | null | undefined;
  if (!g || typeof g !== 'object') return [];
  const rows: [string, string][] = [];
  const l = g.local;
  if (l) rows.push(['Graceful restart', !l.enabled ? 'off' : `restart ${l.restartTime}s${l.longLivedStaleTime !== null ? `, long-lived stale ${l.longLivedStaleTime}s` : ''} (ours)`]);
  const peer = g.peer;
  if (peer) {
    const fams = arr(peer.families, 'gracefulRestart.peer.families').map((f) => {
      const x = obj(f, 'gracefulRestart.peer.families[]');
      return `${String(x.family)}${x.forwardingState ? ' F' : ''}`;
    });
    const bits = [peer.restarting ? 'R' : '', peer.notification ? 'N' : ''].filter(Boolean).join(' ');
    let v = `restart ${peer.restartTime}s${bits ? ` ${bits}` : ''}; ${fams.join(', ') || 'no families'}`;
    const ll = Array.isArray(peer.longLived) ? peer.longLived : [];
    if (ll.length > 0) v += `; long-lived ${ll.map((f) => `${f.family} ${f.staleTime}s${f.forwardingState ? ' F' : ''}`).join(', ')}`;
    rows.push(['  peer', v]);
  }
  const h = g.helper;
  if (h) {
    const left = h.secondsLeft !== null ? `, ${h.secondsLeft}s left` : '';
    rows.push(['  helper', `${h.phase} phase: ${list(h.families).join(', ')} stale (${text(h.staleRoutes)} routes)${left}`]);
  }
  const ll = Array.isArray(g.longLived) ? g.longLived : [];
  if (ll.length > 0) rows.push(['  long-lived', ll.map((f) => `${f.family} ${f.secondsLeft}s left`).join(', ')]);
  const e = g.endOfRib;
  if (e && (list(e.received).length > 0 || list(e.pending).length > 0)) {
    rows.push(['  End-of-RIB', [list(e.received).length > 0 ? `received ${list(e.received).join(', ')}` : '', list(e.pending).length > 0 ? `waiting for ${list(e.pending).join(', ')}` : ''].filter(Boolean).join('; ')]);
  }
  return rows;
}

/** `skeinctl peers`: a block of details per peer. */
export function renderPeers(result: unknown, now: Date): string {
  const r = obj(result, 'peers');
  const peers = arr(r.peers, 'peers.peers').map((p, i) => obj(p, `peers[${i}]`) as unknown as Wire<PeerJson>);
  if (peers.length === 0) return 'No peers.\n';
  const blocks = peers.map((p) => {
    const px = p.prefixes ?? { received: 0, accepted: 0, advertised: 0 };
    const ibgp = p.asn === p.localAsn ? 'iBGP' : 'eBGP';
    const pairs: [string, string][] = [
      ['State', `${text(p.state)} since ${humaneSince(String(p.since ?? ''), now)}`],
      ['AS', `remote ${text(p.asn)}, local ${text(p.localAsn)} (${ibgp})`],
    ];
    if (p.localAddress) pairs.push(['Local address', `${p.localAddress}${(p as { localPort?: number }).localPort !== undefined ? ` port ${(p as { localPort?: number }).localPort}` : ''}`]);
    if (p.routerId) pairs.push(['Router ID', p.routerId]);
    pairs.push(['Families', list(p.families).join(', ') || '-']);
    pairs.push(['Prefixes', `received ${text(px.received)}, accepted ${text(px.accepted)}, advertised ${text(px.advertised)}`]);
    const ap = p.addPath;
    if (ap && (list(ap.send).length > 0 || list(ap.receive).length > 0)) {
      const parts = [list(ap.send).length > 0 ? `send ${list(ap.send).join(', ')} (${text(ap.sendMode === 'off' ? 'best path only' : ap.sendMode)})` : '', list(ap.receive).length > 0 ? `receive ${list(ap.receive).join(', ')}` : ''];
      pairs.push(['ADD-PATH', parts.filter(Boolean).join('; ')]);
    }
    for (const [fam, c] of Object.entries(p.prefixesByFamily ?? {})) {
      pairs.push([`  ${fam}`, `received ${text(c.received)}, accepted ${text(c.accepted)}, advertised ${text(c.advertised)}`]);
    }
    const x = p as Wire<PeerJson> & { configuredHoldTime?: number; localPort?: number; capabilities?: Record<string, unknown> };
    if (p.holdTime !== undefined) {
      pairs.push(['Hold time', `${p.holdTime}s${p.keepaliveTime !== undefined ? `, keepalive ${p.keepaliveTime}s` : ''}${x.configuredHoldTime !== undefined ? ` (configured ${x.configuredHoldTime}s)` : ''}`]);
    } else if (x.configuredHoldTime !== undefined) pairs.push(['Hold time', `configured ${x.configuredHoldTime}s (no session)`]);
    const caps = x.capabilities;
    if (caps && typeof caps === 'object') {
      const on = (['fourOctetAs', 'routeRefresh', 'enhancedRouteRefresh', 'extendedMessage', 'gracefulRestart', 'longLivedGracefulRestart'] as const)
        .filter((k) => caps[k] === true)
        .map((k) => ({ fourOctetAs: '4-octet AS', routeRefresh: 'route refresh', enhancedRouteRefresh: 'enhanced route refresh', extendedMessage: 'extended message', gracefulRestart: 'graceful restart', longLivedGracefulRestart: 'long-lived GR' })[k]);
      const ap = caps.addPath as { receive?: unknown; send?: unknown } | undefined;
      if (ap && (list(ap.receive).length > 0 || list(ap.send).length > 0)) on.push(`ADD-PATH rx ${list(ap.receive).join(',') || '-'} tx ${list(ap.send).join(',') || '-'}`);
      pairs.push(['Capabilities', on.join(', ') || 'none beyond multiprotocol']);
    }
    if (p.filters !== undefined) pairs.push(['Filters', list(p.filters).join(', ') || '- (Calico\'s defaults only)']);
    if (p.policyRejected) pairs.push(['Policy refused', `import ${text(p.policyRejected.import)}, export ${text(p.policyRejected.export)}`]);
    if (p.refusedRoutes) {
      const r = p.refusedRoutes;
      pairs.push(['Refused kept', `${text(r.kept)} (routes --peer ${text(p.address)} --refused)${r.notKept > 0 ? `; ${text(r.notKept)} more not kept (bgp.keepRefused)` : ''}`]);
    }
    if (p.lastError) pairs.push(['Last error', p.lastError]);
    pairs.push(...grRows(p));
    pairs.push(['Info', text(p.info)]);
    return { head: `Peer ${peerAddress(p)} (${text(p.type)})\n`, pairs };
  });
  // One value column for all peers, so the blocks line up with each other.
  const width = Math.max(...blocks.flatMap((b) => b.pairs.map(([k]) => k.length + 1)));
  return blocks.map((b) => b.head + fields(b.pairs, '  ', width)).join('\n');
}

function pathRow(p: PathJson & { accepted?: boolean }, best: boolean): string[] {
  const comms = [...list(p.communities), ...list(p.largeCommunities)];
  return [
    // '!': kept but unusable (bad or unresolvable next hop); it is shown as best only when nothing usable is left;
    // 'x': refused by import rules (Adj-RIB-In views)
    p.accepted === false ? 'x' : p.usable === false ? '!' : best ? '*' : '',
    text(p.from),
    list(p.nextHops).join(',') || '-',
    list(p.asPath).join(' ') || '(empty)',
    text(p.origin),
    text(p.localPref),
    text(p.med),
    comms.join(',') || '-',
    p.usable === false ? `unusable: ${text(p.unusableReason ?? p.unusableCode ?? 'next hop')}` : text(p.reason),
  ];
}

/** `skeinctl routes [PREFIX]`: per prefix, whether it is in the kernel, then its paths with the best first. */
export function renderRoutes(result: unknown, prefix?: string): string {
  const r = obj(result, 'routes');
  const routes = arr(r.routes, 'routes.routes').map((x, i) => obj(x, `routes[${i}]`));
  const policy = renderPolicy(r.policy);
  if (routes.length === 0) return (prefix === undefined ? 'No routes.\n' : `No route for ${prefix}.\n`) + policy;
  return routes.map((x) => renderRouteBlock(x)).join('\n') + `\n${routes.length} route${routes.length === 1 ? '' : 's'}\n` + policy;
}

/**
 * One route's block of `skeinctl routes` (rows stream in one at a time). Loc-RIB rows name the best path in
 * `best`; Adj-RIB-In rows (`--received`) flag it per path; Adj-RIB-Out rows (`--advertised`) have no kernel state.
 */
export function renderRouteBlock(row: unknown, now: number = Date.now()): string {
  const route = obj(row, 'route') as unknown as Wire<RouteJson> & { peer?: string };
  const paths = arr(route.paths ?? [], `paths of ${route.prefix}`).map((p) => obj(p, 'path') as unknown as PathJson & { best?: boolean; accepted?: boolean });
  const bestKey = route.best ? JSON.stringify(route.best) : undefined;
  let bestIdx = bestKey !== undefined ? paths.findIndex((p) => JSON.stringify(p) === bestKey) : paths.findIndex((p) => p.best === true);
  if (route.best && bestIdx < 0) {
    paths.unshift(route.best);
    bestIdx = 0;
  }
  const ordered = bestIdx > 0 ? [paths[bestIdx]!, ...paths.filter((_, i) => i !== bestIdx)] : paths;
  const where = route.installed === undefined && route.peer !== undefined
    ? `advertised to ${route.peer}`
    : route.installed ? 'in kernel' : 'not in kernel';
  const head = `${text(route.prefix)}  ${where}, ${ordered.length} path${ordered.length === 1 ? '' : 's'}\n`;
  if (ordered.length === 0) return `${head}  (no paths)\n`;
  const rows = ordered.map((p, i) => pathRow(p, i === 0 && bestIdx >= 0));
  const headers = ['', 'FROM', 'NEXT HOPS', 'AS PATH', 'ORIGIN', 'LOCAL PREF', 'MED', 'COMMUNITIES', 'REASON'];
  // Adj-RIB-In rows name the import rule that accepted or refused each path
  if (ordered.some((p) => typeof (p as { rule?: unknown }).rule === 'string')) {
    headers.push('IMPORT RULE');
    ordered.forEach((p, i) => rows[i]!.push(text((p as { rule?: unknown }).rule ?? '-')));
  }
  // per-path age, when the daemon reports when each path was announced (`since`)
  if (ordered.some((p) => typeof (p as { since?: unknown }).since === 'string')) {
    headers.push('AGE');
    ordered.forEach((p, i) => {
      const t = Date.parse(String((p as { since?: unknown }).since));
      rows[i]!.push(Number.isNaN(t) ? '-' : humaneDuration(Math.max(0, (now - t) / 1000)));
    });
  }
  const body = table(headers, rows);
  return head + body.split('\n').map((l) => (l === '' ? l : `  ${l}`)).join('\n');
}

/** `routes PREFIX`: the routing-policy rule that let the prefix in from, or out to, each peer (or refused it). */
export function renderPolicy(v: unknown): string {
  if (v === undefined || v === null || typeof v !== 'object') return '';
  const p = v as { imported?: unknown; exported?: unknown };
  const rows = (dir: string, xs: unknown): string[][] => arr(xs ?? [], `policy.${dir}`).map((x) => {
    const e = obj(x, 'verdict');
    return [dir, text(e.peer), e.accept === true ? 'accepted' : 'refused', text(e.rule)];
  });
  const all = [...rows('from', p.imported), ...rows('to', p.exported)];
  if (all.length === 0) return '';
  return '\nRouting policy:\n' + table(['', 'PEER', 'DECISION', 'RULE'], all).split('\n').map((l) => (l === '' ? l : `  ${l}`)).join('\n');
}

export function fibEntry(e: FibEntryJson | null | undefined): string {
  if (!e) return '-';
  const hops = list(e.nextHops);
  if (e.type === 'blackhole') return 'blackhole';
  if (e.type === 'device') return `dev ${text(e.dev)}`;
  return `via ${hops.join(',') || '-'}${e.dev ? ` dev ${e.dev}` : ''}`;
}

/**
 * `skeinctl fib`'s line on the kernel writer: whether the request thread runs (it holds ~9 MiB while it does, so a
 * host's RSS reads differently), how often it started, and the counters that say the kernel and skein disagreed
 * (resyncs, overruns, repairs, refused messages). Empty for a daemon that sends no such counters.
 */
export function fibWriterLine(w: unknown): string {
  if (w === undefined || w === null || typeof w !== 'object') return '';
  const x = w as Partial<Record<keyof FibWriterJson, unknown>>;
  const n = (v: unknown, one: string, many = `${one}s`): string => `${text(v)} ${v === 1 ? one : many}`;
  const thread = x.requestThreadRunning === true ? 'running' : 'stopped';
  return `writer: request thread ${thread} (started ${n(x.requestThreadStarts, 'time')}), ${n(x.directBatches, 'direct batch', 'direct batches')}, `
    + `${n(x.nexthops, 'nexthop object')}, ${n(x.resyncs, 'resync')}, ${n(x.overruns, 'overrun')}, ${n(x.repairs, 'repair')}, `
    + `${n(x.errors, 'refused message')}\n`;
}

/** `skeinctl fib`: counts, then desired vs kernel per prefix, then the failures with their reasons. */
export function renderFib(result: unknown): string {
  const f = obj(result, 'fib') as unknown as FibJson;
  if (f.enabled === false) return 'FIB programming is disabled (fib.enabled: false): skein touches no kernel table.\n';
  const c = obj(f.counts, 'fib.counts') as unknown as FibJson['counts'];
  const routes = arr(f.routes, 'fib.routes').map((r, i) => obj(r, `fib.routes[${i}]`) as unknown as FibJson['routes'][number]);
  let out = `FIB: table ${text(f.table)}, protocol ${text(f.protocol)}\n${fibWriterLine(f.writer)}`;
  out += `desired ${text(c.desired)}, installed ${text(c.installed)}, pending ${text(c.pending)}, failed ${text(c.failed)}\n`;
  if (routes.length === 0) return out + '\nNo routes.\n';
  out += '\n' + table(['PREFIX', 'DESIRED', 'KERNEL', 'STATE'], routes.map((r) => [text(r.prefix), fibEntry(r.desired), fibEntry(r.kernel), text(r.state)]));
  const failed = routes.filter((r) => r.state === 'failed' || r.error);
  if (failed.length > 0) {
    out += '\nFailures:\n' + table(['PREFIX', 'REASON'], failed.map((r) => [text(r.prefix), text(r.error)])).split('\n').map((l) => (l ? `  ${l}` : l)).join('\n');
  }
  return out;
}

/** `skeinctl bfd`: one row per BFD session, its negotiated timers and why it last went down. */
export function renderBfd(result: unknown, now: Date): string {
  const b = obj(result, 'bfd') as unknown as BfdJson;
  const sessions = arr(b.sessions, 'bfd.sessions').map((s, i) => obj(s, `bfd.sessions[${i}]`) as unknown as Wire<BfdJson['sessions'][number]>);
  const pending = arr(b.pending, 'bfd.pending').map((s, i) => obj(s, `bfd.pending[${i}]`) as unknown as BfdJson['pending'][number]);
  let out = '';
  if (sessions.length === 0) out += 'No BFD sessions (no BFDConfiguration selects this node and a peer\'s interface).\n';
  else {
    out += table(['PEER', 'LOCAL', 'INTERFACE', 'STATE', 'SINCE', 'TX/RX ms', 'DETECT ms', 'DOWNS', 'RUNS IN', 'LAST DOWN'], sessions.map((s) => {
      const t = obj(s.timers, 'bfd.sessions[].timers') as unknown as BfdJson['sessions'][number]['timers'];
      return [
        text(s.peer), text(s.local), s.multihop ? 'multihop' : text(s.interface), text(s.state), humaneSince(String(s.since), now),
        `${text(t.txInterval)}/${text(t.remoteMinTx === 0 ? t.requiredMinRx : Math.max(t.requiredMinRx, t.remoteMinTx))}`,
        text(t.detectTime), text(s.downCount), text(s.runsIn ?? '-'), text(s.lastDownReason),
      ];
    }));
  }
  if (pending.length > 0) out += '\nNot running:\n' + pending.map((p) => `  ${text(p.peer)}: ${text(p.reason)}\n`).join('');
  return out;
}

/** `skeinctl reload`: the daemon's message and what changed. */
export function renderReload(result: unknown): string {
  const r = obj(result, 'reload') as unknown as ReloadJson;
  let out = `${text(r.message)}\n`;
  for (const c of list(r.changes)) out += `  ${c}\n`;
  return out;
}
