// Read-only views of the speaker's peers, in the JSON shapes of json.ts and types.ts (skeinctl peers / status /
// routes): what `birdc show protocols all` and `show route all` show. Nothing here changes state.
import type { PrefixKey, RibCore } from '../rib/core.js';
import { IPV4_UNICAST, IPV6_UNICAST } from '../wire/constants.js';
import { familyNameOf, normalizeAddress, type PeerOptions, type SpeakerOptions } from './config.js';
import { pathJson, type PeerJson, type RouteJson } from './json.js';
import { peerGrJson, type GracefulRestartJson } from './llgr.js';
import { ribConn, type Connection, type Peer } from './peer.js';
import { DEFAULT_RESTART_TIME_S, peerFamilies } from './session.js';
import { parsePrefixText, prefixText } from './text.js';
import type { PeerInfo } from './types.js';

/** A peer's shown state and the serial number of its primary connection (changes when the session is replaced). */
export function peerInfoOf(p: Peer): PeerInfo {
  let writeBuffered = 0;
  let writeBlocked = false;
  for (const c of p.conns) {
    writeBuffered += c.socket?.writableLength ?? 0;
    writeBlocked ||= c.blocked;
  }
  return {
    state: p.state,
    since: p.since,
    info: p.info,
    connection: p.primary.socket ? p.primary.serial : null,
    counters: p.counters,
    writeBuffered,
    writeBlocked,
    endOfRibPending: p.state === 'Established' ? [...p.eorPending] : [],
    gracefulRestart: ribConn(p)?.session?.gracefulRestart != null,
  };
}

/**
 * What `birdc show protocols all` shows of a session beyond its state: the local end of the connection, the
 * timers (configured and negotiated, RFC 4271 §4.2), the peer's BGP identifier and the negotiated capabilities.
 * Session fields are absent while there is no session.
 */
export function sessionDetailsOf(p: Peer, opts: SpeakerOptions): Record<string, unknown> {
  const c = ribConn(p) ?? p.primary;
  const out: Record<string, unknown> = {
    configuredHoldTime: p.opts.holdTime ?? opts.holdTime ?? 90,
    configuredKeepaliveTime: p.opts.keepaliveTime ?? opts.keepaliveTime ?? null,
    connectRetryTime: p.opts.connectRetryTime ?? opts.connectRetryTime ?? 120,
  };
  const sock = c.socket;
  if (sock?.localAddress !== undefined) {
    out.localAddress = normalizeAddress(sock.localAddress);
    out.localPort = sock.localPort;
    out.remotePort = sock.remotePort;
  }
  const s = c.session;
  if (s) {
    out.holdTime = s.holdTime;
    out.keepaliveTime = s.keepaliveTime;
    out.routerId = `${s.peerId >>> 24}.${(s.peerId >>> 16) & 255}.${(s.peerId >>> 8) & 255}.${s.peerId & 255}`;
    const fams = (set: Iterable<number>): string[] => [...set].sort((a, b) => a - b).map(familyNameOf);
    out.capabilities = {
      families: fams(s.families),
      fourOctetAs: s.as4,
      routeRefresh: s.routeRefresh,
      enhancedRouteRefresh: s.enhancedRouteRefresh,
      extendedMessage: s.extendedMessage,
      addPath: { receive: fams(s.addPathRx), send: fams(s.addPathTx) },
      gracefulRestart: s.gracefulRestart !== null,
      longLivedGracefulRestart: s.longLivedGracefulRestart !== null,
    };
  }
  return out;
}

export function peerJsonOf(p: Peer, rib: RibCore, opts: SpeakerOptions, localAsn: number): PeerJson {
  const stats = rib.peerStats(p.coreId);
  const conn = ribConn(p);
  const fams = conn?.session ? conn.session.families.filter((f) => f === IPV4_UNICAST || f === IPV6_UNICAST).map(familyNameOf) : peerFamilies(p.opts).map(familyNameOf);
  return {
    address: p.address,
    port: p.opts.port ?? 179,
    asn: p.opts.asn,
    localAsn: p.opts.localAsn ?? localAsn,
    type: p.opts.type ?? 'global',
    state: p.state,
    since: p.since.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    info: p.info,
    families: fams,
    prefixes: { received: p.counters.prefixesReceived, accepted: stats.received, advertised: stats.advertised },
    prefixesByFamily: Object.fromEntries(fams.map((f) => [f, f === 'ipv6-unicast'
      ? { received: p.counters.prefixesReceived6, accepted: stats.received6, advertised: stats.advertised6 }
      : { received: p.counters.prefixesReceived - p.counters.prefixesReceived6, accepted: stats.received4, advertised: stats.advertised4 }])),
    routeReflectorClient: p.opts.routeReflectorClient ?? false,
    connection: p.primary.socket ? p.primary.serial : null,
    messages: { in: { ...p.counters.messagesIn }, out: { ...p.counters.messagesOut } },
    notifications: { in: { ...p.counters.notificationsIn }, out: { ...p.counters.notificationsOut } },
    gracefulRestart: grJson(p, conn, rib, opts),
    addPath: {
      send: conn?.session ? [...conn.session.addPathTx].sort((a, b) => a - b).map(familyNameOf) : [],
      receive: conn?.session ? [...conn.session.addPathRx].sort((a, b) => a - b).map(familyNameOf) : [],
      sendMode: addPathMode(p.opts),
    },
  };
}

function addPathMode(o: PeerOptions): string {
  return o.addPathSend === undefined ? 'off' : o.addPathSend.mode === 'all' ? 'all' : `best ${o.addPathSend.count}`;
}

function grJson(p: Peer, conn: Connection | null, rib: RibCore, opts: SpeakerOptions): GracefulRestartJson {
  const enabled = opts.gracefulRestart ?? true;
  const llst = p.opts.longLivedStaleTime ?? 0;
  const s = conn?.session ?? null;
  const received = s && p.state === 'Established' ? s.families.filter((f) => !p.eorPending.has(f)) : [];
  const pending = s && p.state === 'Established' ? s.families.filter((f) => p.eorPending.has(f)) : [];
  return {
    local: { enabled, restartTime: Math.min(p.opts.restartTime ?? DEFAULT_RESTART_TIME_S, 4095), longLivedStaleTime: enabled && llst > 0 ? llst : null },
    peer: peerGrJson(s ?? p.gr.llgr.session),
    helper: p.gr.helperJson(() => rib.staleCount(p.coreId)),
    longLived: p.gr.llgr.json(),
    endOfRib: { received: received.map(familyNameOf), pending: pending.map(familyNameOf) },
  };
}

/** The Loc-RIB (or one prefix of it) as plain data, with the reason each path won or lost. Whether a route is in the
 * kernel is not the engine's to say: the daemon adds that from its route table (src/daemon/status.ts). */
export function routesJsonOf(rib: RibCore, prefix?: string): { routes: RouteJson[] } {
  const keys: PrefixKey[] = prefix !== undefined ? [parsePrefixText(prefix)] : [...rib.prefixes()];
  const routes: RouteJson[] = [];
  for (const k of keys) {
    const ex = rib.explain(k);
    const first = ex[0];
    if (!first) continue;
    const text = prefixText(k);
    routes.push({
      prefix: text,
      best: pathJson(first.path, first.reason),
      paths: ex.map((e) => pathJson(e.path, e.reason)),
    });
  }
  return { routes };
}
