// The BGP speaker: node:net sockets around the Sans-IO session machine
// (session/fsm.ts) and the route-processing core (rib/core.ts). All protocol
// decisions live there; this file only moves bytes, arms timers and keeps
// counters.
//
// Shape:
// - One Peer per configured neighbour, one RibCore peer id for it. A Peer has
//   one or two Connections (two only while a collision is being resolved,
//   RFC 4271 §6.8); each Connection owns a socket, a Framer and its own
//   SessionFsm. The "primary" connection is the one whose state the peer
//   shows and whose FSM dials and backs off; a second, inbound connection gets
//   an FSM of its own and is either dumped (Cease 7) or promoted.
// - One timer per peer: a setTimeout re-armed to the earliest deadline of its
//   connections' FSMs (fsm.nextDeadline()); when it fires, every FSM ticks.
// - Sending is pull-based: the core queues per-peer work; a pump takes batches
//   (nextBatch), encodes them into as few UPDATEs as fit (packUpdates /
//   packWithdrawals) and writes until socket.write() returns false, then waits
//   for 'drain'. A peer that stops reading therefore holds at most one batch
//   plus the socket's high-water mark in user space, and the rest of its work
//   stays in the core's queue, where later changes to a prefix replace earlier
//   ones instead of piling up (RFC 4271 §9.2: only the latest state matters).
// - Received bytes are handled as they come; best-path changes and sending are
//   done once per turn of the event loop (setImmediate), so an UPDATE burst
//   costs one export pass per prefix, not one write per UPDATE.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { connectWithOptions, fdOf, setListenerMd5, setTtl, setTtlSecurity } from '../net/index.js';
import { RibCore } from '../rib/core.js';
import { NextHopTable } from '../rib/next-hop.js';
import type { Reachability } from '../rib/next-hop.js';
import type { BestChange, OutBatch, PeerConfig, PrefixKey } from '../rib/core.js';
import { buildCapabilities, collisionWinner } from '../session/negotiate.js';
import type { NegotiatedSession } from '../session/negotiate.js';
import { SessionFsm } from '../session/fsm.js';
import type { FsmAction, FsmEvent, State } from '../session/fsm.js';
import { CeaseSubcode, ErrorCode, IPV4_UNICAST, IPV6_UNICAST, MessageType, familyKey } from '../wire/constants.js';
import { BgpError } from '../wire/errors.js';
import { Framer } from '../wire/framer.js';
import { decodeMessage, encodeMessage } from '../wire/message.js';
import { encodeNotification, errorCodeName, errorSubcodeName } from '../wire/notification.js';
import { isIpv4, parseIpv4, parsePrefix4, parsePrefix6, prefix4ToString } from '../wire/prefix.js';
import { encodeRouteRefresh } from '../wire/route-refresh.js';
import { DEFAULT_CONTEXT } from '../wire/types.js';
import type { Capability, CodecContext, Message, NotificationMessage, PathAttributes, PrefixList } from '../wire/types.js';
import { endOfRib, isEndOfRib, packUpdates, packWithdrawals } from '../wire/update.js';
import { FAMILY_KEYS, familyNameOf, normalizeAddress, sessionKey } from './config.js';
import type { PeerOptions, SpeakerOptions } from './config.js';
import { pathJson } from './json.js';
import type { LocalRestartJson, PeerJson, RouteJson } from './json.js';
import { longLivedTimes, peerGrJson, secondsLeft } from './llgr.js';
import type { GracefulRestartJson } from './llgr.js';
import { Connection, Peer } from './peer.js';
import { StallWatch } from './stall.js';
import { LogRateLimit } from './rate-limit.js';
import type { StallEvent } from './stall.js';
import type { BestEvent, EndOfRibEvent, PeerInfo, PeerStateEvent, StaleEvent, StopOptions } from './types.js';

/** most batches one pump takes before yielding to other peers and to received data */
const BATCHES_PER_TURN = 64;
/** How long one turn may spend handing out best-path changes (RibCore.drainBestChanges). */
const BEST_DRAIN_MS = 10;
/**
 * Received UPDATE octets after which the peers are pumped without waiting for
 * the end of the event-loop turn. One turn can read megabytes from a fast
 * peer (libuv reads a ready socket many times per poll), and without this the
 * outbound queues would hold a whole table before the first byte goes out:
 * memory for the queue index, and a reflected table sent only after it was
 * all received. ~50k IPv4 prefixes.
 */
const PUMP_EVERY_OCTETS = 256 * 1024;
/** a closing socket that does not finish flushing in this time is destroyed */
const CLOSE_GRACE_MS = 2000;
/** dial attempts give up after this long; the FSM's ConnectRetryTimer decides when to try again */
const DIAL_TIMEOUT_MS = 10_000;

/** RFC 4724 §3 suggests the restart time; BIRD and FRR use 120 s, as does Calico. */
const DEFAULT_RESTART_TIME_S = 120;
/** Cease subcodes that end graceful restart even with the N bit (RFC 8538 §3 and §5). */
const HARD_CEASE = new Set<number>([
  CeaseSubcode.MaximumPrefixesReached,
  CeaseSubcode.AdministrativeShutdown,
  CeaseSubcode.PeerDeconfigured,
  CeaseSubcode.HardReset,
]);
/** FRR's select-defer-time: the longest a restarted speaker holds its UPDATEs back waiting for End-of-RIB. */
const DEFAULT_SELECTION_DEFERRAL_S = 360;
/** BIRD's and FRR's default stale-path time. */
const DEFAULT_STALE_PATH_TIME_S = 360;

/** NOTIFICATION as text for `info` and logs (RFC 9003 text included). */
export function notificationText(n: NotificationMessage): string {
  const base = `${errorCodeName(n.code)} / ${errorSubcodeName(n.code, n.subcode)} (${n.code}/${n.subcode})`;
  return n.message !== undefined ? `${base}: "${n.message}"` : base;
}

const clock = { now: (): number => performance.now() };

/**
 * Events:
 * - 'peer' (PeerStateEvent): a peer's shown state changed;
 * - 'best' (BestEvent[]): best paths changed, coalesced per event-loop turn, for the FIB;
 * - 'log' ({ level, msg, peer? }): things worth a log line (never thrown);
 * - 'endOfRib' (EndOfRibEvent): a peer sent End-of-RIB for a family (RFC 4724 §2) — its initial routes are all in;
 * - 'stale' (StaleEvent): a graceful restart kept a peer's routes (retained) or removed what was left of them (swept).
 */
export class Speaker extends EventEmitter {
  readonly rib: RibCore;
  /** next-hop validity and reachability (next-hop.ts), fed by setReachability */
  readonly nextHops = new NextHopTable();
  readonly localAsn: number;
  readonly routerId: number;
  private readonly peers = new Map<string, Peer>();
  /** one listener per listen address (bindMode NodeIP on a dual-stack node: both node addresses) */
  private servers: net.Server[] = [];
  private running = false;
  private flushScheduled = false;
  /** UPDATE octets received since the peers were last pumped (see PUMP_EVERY_OCTETS) */
  private receivedSincePump = 0;
  private readonly opts: SpeakerOptions;
  private readonly batchPrefixes: number;
  /** RFC 4724 §4.1: the R bit goes into our OPENs until restartComplete() */
  private restarting: boolean;
  /**
   * RFC 4724 §4.1: after a restart, route selection — here, sending our UPDATEs — waits until every peer has sent
   * End-of-RIB (or restartComplete(), or the selection deferral timer), so that no peer gets a partial table
   * followed by our End-of-RIB, which would make it sweep routes we simply had not re-learned yet.
   */
  private deferring: boolean;
  private deferTimer: NodeJS.Timeout | null = null;
  /** log lines a remote party can cause, limited per (source, kind); suppressedByKind feeds /metrics */
  readonly remoteLog: LogRateLimit;
  /** process stalls seen through late timers (stall.ts) */
  private readonly stalls = new StallWatch((ms) => {
    this.log('warn', `this process stalled for ${Math.round(ms)} ms (timers ran late): no peer is blamed for it; hold timers that fell due meanwhile were extended`);
    this.emit('stall', { ms } satisfies StallEvent);
  });

  constructor(opts: SpeakerOptions) {
    super();
    this.opts = opts;
    this.remoteLog = opts.remoteLog ?? new LogRateLimit();
    this.restarting = opts.restarting ?? false;
    this.deferring = this.restarting && (opts.gracefulRestart ?? true);
    this.localAsn = opts.localAsn;
    this.routerId = parseIpv4(opts.routerId) >>> 0;
    this.batchPrefixes = opts.batchPrefixes ?? 2048;
    this.rib = new RibCore({
      localAs: opts.localAsn,
      routerId: this.routerId,
      ...(opts.maxPaths !== undefined ? { maxPaths: opts.maxPaths } : {}),
      ...(opts.clusterId !== undefined ? { clusterId: typeof opts.clusterId === 'number' ? opts.clusterId >>> 0 : parseIpv4(opts.clusterId) >>> 0 } : {}),
      onPolicyError: (e) =>
        this.log('error', `${e.which} policy failed for ${prefixText(e.prefix)}: ${String(e.error)}; route rejected`, e.peer.address),
      ...(opts.routeInterface !== undefined ? { routeInterface: opts.routeInterface } : {}),
      // a whole-table walk (peer down, sweep, refresh) ran a slice on a later turn: hand out what it changed
      onWork: () => this.scheduleFlush(),
    });
    this.rib.setNextHopCheck((nh) => this.nextHops.check(nh));
    // Best-path changes are recorded only while someone listens for them (see RibCore.setBestTracking).
    this.rib.setBestTracking(false);
    this.on('newListener', (ev: string | symbol) => {
      if (ev === 'best') this.rib.setBestTracking(true);
    });
    this.on('removeListener', (ev: string | symbol) => {
      if (ev === 'best' && this.listenerCount('best') === 0) this.rib.setBestTracking(false);
    });
    for (const p of opts.peers ?? []) this.addPeer(p);
  }

  // ------------------------------------------------------------------ life cycle

  /** Listen (unless listenAddress is null) and start every peer. */
  async start(): Promise<void> {
    if (this.running) return;
    if (this.opts.listenAddress !== null) {
      const hosts = this.listenHosts();
      for (const host of hosts) {
        const server = net.createServer({ noDelay: true, pauseOnConnect: false }, (s) => this.accept(s));
        server.on('error', (e) => this.log('error', `listener: ${e.message}`));
        try {
          await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            // With several addresses they all take the port of the first (listenPort 0: whatever it got).
            server.listen({ host, port: this.servers.length > 0 ? this.port : this.opts.listenPort ?? 179 }, () => {
              server.off('error', reject);
              resolve();
            });
          });
        } catch (e) {
          for (const x of this.servers) x.close();
          this.servers = [];
          throw e;
        }
        this.servers.push(server);
      }
      for (const p of this.peers.values()) {
        this.applyListenerMd5(p, p.opts.md5Key ?? null);
        this.applyListenerTtl(p.opts);
      }
    }
    this.running = true;
    if (this.deferring) {
      const ms = (this.opts.selectionDeferralTime ?? DEFAULT_SELECTION_DEFERRAL_S) * 1000;
      this.deferDeadline = Date.now() + ms;
      this.deferTimer = setTimeout(() => this.endDeferral('selection deferral time ran out'), ms);
      this.deferTimer.unref();
    }
    for (const p of this.peers.values()) this.feed(p, p.primary, { type: 'ManualStart' });
  }

  /** The port actually listened on (useful with listenPort 0). */
  get port(): number {
    const a = this.servers[0]?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  /**
   * Stop every session (Cease / Administrative Shutdown with the RFC 9003
   * message when given, RFC 4486 §4), close the listener, clear timers. Never
   * throws; resolves once the listener is closed.
   */
  async stop(o: StopOptions = {}): Promise<void> {
    this.running = false;
    if (this.deferTimer) clearTimeout(this.deferTimer);
    this.deferTimer = null;
    for (const p of this.peers.values()) this.clearGrTimer(p);
    for (const p of this.peers.values()) p.llgr.clear();
    for (const p of this.peers.values()) this.shutPeer(p, o);
    const servers = this.servers;
    this.servers = [];
    await Promise.all(servers.map((server) => new Promise<void>((r) => server.close(() => r()))));
  }

  private shutPeer(p: Peer, o: StopOptions): void {
    for (const c of [...p.conns]) {
      if (o.notify === false || (o.message === undefined && o.notify !== true)) {
        // close quietly: no NOTIFICATION, but the core still forgets the session
        this.feed(p, c, { type: 'ManualStop' }, { silent: true });
      } else {
        this.feed(p, c, o.message !== undefined ? { type: 'ManualStop', message: o.message } : { type: 'ManualStop' });
      }
    }
  }

  // ------------------------------------------------------------------ peers at run time

  addPeer(o: PeerOptions): void {
    const address = normalizeAddress(o.address);
    if (this.peers.has(address)) throw new Error(`peer ${address} is already configured`);
    const coreId = this.rib.addPeer(this.coreConfig(o, address, null));
    const p = new Peer(o, address, coreId, this.newFsm(o));
    this.peers.set(address, p);
    if (this.servers.length > 0) {
      this.applyListenerMd5(p, o.md5Key ?? null);
      this.applyListenerTtl(o);
    }
    if (this.running) this.feed(p, p.primary, { type: 'ManualStart' });
  }

  /**
   * Change a peer. Session parameters (see sessionKey) reset this peer only,
   * with Cease / Other Configuration Change (RFC 4486 subcode 6). Otherwise the
   * new policy applies without a reset: exports are recomputed, and when the
   * import side changed a ROUTE-REFRESH asks the peer to send its routes again
   * (RFC 2918); a peer without route refresh is reset instead.
   */
  updatePeer(o: PeerOptions): void {
    const address = normalizeAddress(o.address);
    const p = this.peers.get(address);
    if (!p) throw new Error(`peer ${address} is not configured`);
    const old = p.opts;
    if (sessionKey(old) !== sessionKey(o)) {
      this.dropPeer(p, CeaseSubcode.OtherConfigurationChange, 'configuration changed');
      this.addPeer(o);
      return;
    }
    p.opts = o;
    if (p.heldUntil > Date.now() && JSON.stringify(old.maxPrefixes) !== JSON.stringify(o.maxPrefixes)) {
      // held down for maximum prefixes: a new limit is a new chance (RFC 4486 §4 leaves the restart to configuration)
      p.heldUntil = 0;
      if (this.running) this.feed(p, p.primary, { type: 'ManualStart' });
    }
    const conn = this.ribConn(p);
    this.rib.updatePeer(p.coreId, this.coreConfig(o, address, conn));
    const rulesOf = (x: PeerOptions, dir: 'import' | 'export'): string =>
      x.rules === undefined ? '' : JSON.stringify(dir === 'import' ? [x.rules.import4, x.rules.import6] : [x.rules.export4, x.rules.export6]);
    const importChanged = old.importPolicy !== o.importPolicy || (old.allowOwnAs ?? 0) !== (o.allowOwnAs ?? 0) || rulesOf(old, 'import') !== rulesOf(o, 'import');
    const exportChanged =
      old.exportPolicy !== o.exportPolicy || rulesOf(old, 'export') !== rulesOf(o, 'export') || old.nextHopSelf !== o.nextHopSelf || old.nextHopKeep !== o.nextHopKeep || old.nextHop4 !== o.nextHop4 || old.nextHop6 !== o.nextHop6 ||
      JSON.stringify(old.addPathSend) !== JSON.stringify(o.addPathSend);
    if (!conn) return;
    if (exportChanged) this.rib.refreshExports(p.coreId);
    if (importChanged) {
      const s = conn.session;
      if (s?.routeRefresh) {
        for (const f of s.families) this.send(p, conn, { type: 'ROUTE-REFRESH', afi: f >> 8, safi: f & 0xff, subtype: 0 });
      } else if (this.rib.keepsReceived(p.coreId)) {
        this.rib.reimport(p.coreId);
        this.scheduleFlush();
      } else {
        this.feed(p, conn, { type: 'AutomaticStop', subcode: CeaseSubcode.OtherConfigurationChange, reason: 'import policy changed; the peer cannot refresh' });
      }
    }
    this.schedulePump(p);
  }

  /** Remove a peer: Cease / Peer De-configured (RFC 4486 subcode 3); its routes leave the Loc-RIB. */
  removePeer(address: string): void {
    const p = this.peers.get(normalizeAddress(address));
    if (!p) throw new Error(`peer ${address} is not configured`);
    this.dropPeer(p, CeaseSubcode.PeerDeconfigured, 'peer de-configured');
  }

  private dropPeer(p: Peer, subcode: number, reason: string): void {
    p.removed = true;
    this.clearGrTimer(p);
    p.llgr.clear();
    for (const c of [...p.conns]) this.feed(p, c, { type: 'AutomaticStop', subcode, reason });
    for (const c of [...p.conns]) this.discard(p, c);
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
    this.rib.removePeer(p.coreId);
    if (this.servers.length > 0 && p.opts.md5Key !== undefined) this.applyListenerMd5(p, null);
    this.peers.delete(p.address);
    this.scheduleFlush();
    this.checkDeferral();
  }

  peerAddresses(): string[] {
    return [...this.peers.keys()];
  }

  /** A peer's shown state and the serial number of its primary connection (changes when the session is replaced). */
  peerInfo(address: string): PeerInfo | null {
    const p = this.peers.get(normalizeAddress(address));
    if (!p) return null;
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
      gracefulRestart: this.ribConn(p)?.session?.gracefulRestart != null,
    };
  }

  /**
   * What `birdc show protocols all` shows of a session beyond its state: the local end of the connection, the
   * timers (configured and negotiated, RFC 4271 §4.2), the peer's BGP identifier and the negotiated capabilities.
   * Session fields are absent while there is no session.
   */
  sessionDetails(address: string): Record<string, unknown> | null {
    const p = this.peers.get(normalizeAddress(address));
    if (!p) return null;
    const c = this.ribConn(p) ?? p.primary;
    const out: Record<string, unknown> = {
      configuredHoldTime: p.opts.holdTime ?? this.opts.holdTime ?? 90,
      configuredKeepaliveTime: p.opts.keepaliveTime ?? this.opts.keepaliveTime ?? null,
      connectRetryTime: p.opts.connectRetryTime ?? this.opts.connectRetryTime ?? 120,
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

  /** The RIB core's id of a configured peer (for RibCore's per-peer views); undefined when not configured. */
  coreIdOf(address: string): number | undefined {
    return this.peers.get(normalizeAddress(address))?.coreId;
  }

  // ------------------------------------------------------------------ local routes

  /** Originate a prefix ("10.65.1.0/26", "fd00:1::/64") with optional attributes. */
  originate(prefix: string, attrs: PathAttributes = {}): void {
    this.rib.originate(parsePrefixText(prefix), attrs);
    this.scheduleFlush();
  }

  /** Stop originating a prefix; false when it was not originated. */
  withdraw(prefix: string): boolean {
    const ok = this.rib.withdrawOrigin(parsePrefixText(prefix));
    this.scheduleFlush();
    return ok;
  }

  // ------------------------------------------------------------------ views

  peersJson(): { peers: PeerJson[] } {
    const out: PeerJson[] = [];
    for (const p of this.peers.values()) {
      const stats = this.rib.peerStats(p.coreId);
      const conn = this.ribConn(p);
      const fams = conn?.session ? conn.session.families.filter((f) => f === IPV4_UNICAST || f === IPV6_UNICAST).map(familyNameOf) : this.families(p.opts).map(familyNameOf);
      out.push({
        address: p.address,
        port: p.opts.port ?? 179,
        asn: p.opts.asn,
        localAsn: p.opts.localAsn ?? this.localAsn,
        type: p.opts.type ?? 'global',
        state: p.state,
        since: p.since.toISOString().replace(/\.\d{3}Z$/, 'Z'),
        info: p.info,
        families: fams,
        prefixes: { received: p.counters.prefixesReceived, accepted: stats.received, advertised: stats.advertised },
        routeReflectorClient: p.opts.routeReflectorClient ?? false,
        connection: p.primary.socket ? p.primary.serial : null,
        messages: { in: { ...p.counters.messagesIn }, out: { ...p.counters.messagesOut } },
        notifications: { in: { ...p.counters.notificationsIn }, out: { ...p.counters.notificationsOut } },
        gracefulRestart: this.grJson(p, conn),
        addPath: {
          send: conn?.session ? [...conn.session.addPathTx].sort((a, b) => a - b).map(familyNameOf) : [],
          receive: conn?.session ? [...conn.session.addPathRx].sort((a, b) => a - b).map(familyNameOf) : [],
          sendMode: p.opts.addPathSend === undefined ? 'off' : p.opts.addPathSend.mode === 'all' ? 'all' : `best ${p.opts.addPathSend.count}`,
        },
      });
    }
    return { peers: out };
  }

  private grJson(p: Peer, conn: Connection | null): GracefulRestartJson {
    const enabled = this.opts.gracefulRestart ?? true;
    const llst = p.opts.longLivedStaleTime ?? 0;
    const s = conn?.session ?? null;
    const received = s && p.state === 'Established' ? s.families.filter((f) => !p.eorPending.has(f)) : [];
    const pending = s && p.state === 'Established' ? s.families.filter((f) => p.eorPending.has(f)) : [];
    const grFamilies = [...p.stale].filter((f) => !p.llgr.has(f));
    return {
      local: { enabled, restartTime: Math.min(p.opts.restartTime ?? DEFAULT_RESTART_TIME_S, 4095), longLivedStaleTime: enabled && llst > 0 ? llst : null },
      peer: peerGrJson(s ?? p.llgr.session),
      helper:
        p.stale.size === 0
          ? null
          : {
              phase: grFamilies.length === 0 ? 'long-lived' : p.grPhase,
              families: [...p.stale].sort((a, b) => a - b).map(familyNameOf),
              secondsLeft: grFamilies.length > 0 && p.grTimer ? secondsLeft(p.grDeadline) : null,
              staleRoutes: this.rib.staleCount(p.coreId),
            },
      longLived: p.llgr.json(),
      endOfRib: { received: received.map(familyNameOf), pending: pending.map(familyNameOf) },
    };
  }

  /** Our own graceful restart (RFC 4724 §4.1): the R bit, and whether our UPDATEs still wait for End-of-RIB. */
  localRestartJson(): LocalRestartJson {
    const waitingFor: string[] = [];
    if (this.deferring) {
      for (const p of this.peers.values()) {
        const gr = this.ribConn(p)?.session?.gracefulRestart;
        if (p.state !== 'Established' || (gr && !gr.restarting && p.eorPending.size > 0)) waitingFor.push(p.address);
      }
    }
    return {
      restarting: this.restarting,
      deferring: this.deferring,
      secondsLeft: this.deferring && this.deferDeadline > 0 ? secondsLeft(this.deferDeadline) : null,
      waitingFor,
    };
  }

  private deferDeadline = 0;

  /** The Loc-RIB (or one prefix of it) in the CONTRACT routes shape, with the reason each path won or lost. */
  routesJson(prefix?: string): { routes: RouteJson[] } {
    const keys: PrefixKey[] = prefix !== undefined ? [parsePrefixText(prefix)] : [...this.rib.prefixes()];
    const routes: RouteJson[] = [];
    for (const k of keys) {
      const ex = this.rib.explain(k);
      const first = ex[0];
      if (!first) continue;
      const text = prefixText(k);
      routes.push({
        prefix: text,
        // The owner of the FIB answers, for local routes too (an affine block's blackhole is its kernel route).
        installed: this.opts.isInstalled?.(text) ?? false,
        best: pathJson(first.path, first.reason),
        paths: ex.map((e) => pathJson(e.path, e.reason)),
      });
    }
    return { routes };
  }

  /** Which rule let a prefix in from each peer (or refused it), and which let it out to each Established peer. */
  policyTrace(prefix: string): ReturnType<RibCore['policyTrace']> {
    return this.rib.policyTrace(parsePrefixText(prefix));
  }

  /** Routes a peer's rules refused, per direction (null: no such peer). */
  policyRejections(address: string): { import: number; export: number } | null {
    const p = this.peers.get(normalizeAddress(address));
    return p ? this.rib.policyRejections(p.coreId) : null;
  }

  // ------------------------------------------------------------------ inbound connections

  private accept(s: net.Socket): void {
    s.on('error', () => {}); // errors on a refused socket are of no interest; accepted ones get their own handler
    const address = normalizeAddress(s.remoteAddress ?? '');
    const p = this.peers.get(address);
    if (p && p.heldUntil > Date.now()) {
      this.reject(s, `connection from ${address}, held down after exceeding its maximum prefixes`);
      return;
    }
    if (!p || !this.running || p.removed) {
      this.reject(s, `connection from unconfigured address ${address}`);
      return;
    }
    s.setNoDelay(true);
    if (p.opts.ttlSecurity !== undefined) {
      try {
        setTtlSecurity(fdOf(s), p.opts.ttlSecurity);
      } catch (e) {
        this.log('warn', `GTSM on accepted connection: ${(e as Error).message}`, p.address);
      }
    }
    const primary = p.primary;
    // The primary waits for a connection (passive, or between attempts): it is this one.
    if (!primary.socket && !primary.dial && primary.fsm.state === 'Active') {
      this.attach(p, primary, s);
      this.feed(p, primary, { type: 'TcpConnected' });
      return;
    }
    const live = p.conns.filter((c) => c.socket || c.dial).length;
    if (p.conns.length >= 2 || live >= 2) {
      this.reject(s, `third connection from ${address}`);
      return;
    }
    // A second connection: its own FSM until the OPENs decide (RFC 4271 §6.8).
    const c = new Connection(this.newFsm(p.opts), true);
    p.conns.push(c);
    this.attach(p, c, s);
    this.feed(p, c, { type: 'ManualStart' });
    this.feed(p, c, { type: 'TcpConnected' });
  }

  /** RFC 4486 §4: Cease / Connection Rejected, then close. */
  private reject(s: net.Socket, why: string): void {
    const suppressed = this.remoteLog.take(normalizeAddress(s.remoteAddress ?? ''), 'connection-refused');
    if (suppressed !== null) this.log('info', `refused: ${why}${suppressed > 0 ? ` (${suppressed} similar lines suppressed)` : ''}`);
    try {
      s.end(encodeNotification({ code: ErrorCode.Cease, subcode: CeaseSubcode.ConnectionRejected, data: Buffer.alloc(0) }));
    } catch {
      /* the socket is already broken */
    }
    setTimeout(() => s.destroy(), CLOSE_GRACE_MS).unref();
  }

  private attach(p: Peer, c: Connection, s: net.Socket): void {
    c.socket = s;
    c.framer = new Framer();
    c.ctx = DEFAULT_CONTEXT;
    s.setNoDelay(true);
    s.on('data', (chunk: Buffer) => {
      if (c.socket === s && !c.dead) this.receive(p, c, chunk);
    });
    const gone = (why: string) => (): void => {
      if (c.socket !== s || c.dead) return;
      c.socket = null;
      this.feed(p, c, { type: 'TcpFails', reason: why });
    };
    s.on('end', gone('closed by peer'));
    s.on('close', gone('connection closed'));
    s.on('error', (e: Error) => gone(e.message)());
    s.on('drain', () => {
      if (c.socket !== s || c.dead) return;
      c.blocked = false;
      this.progress(p, c);
      this.pump(p);
    });
  }

  // ------------------------------------------------------------------ receiving

  private receive(p: Peer, c: Connection, chunk: Buffer): void {
    let buf: Buffer | null;
    try {
      c.framer.push(chunk);
    } catch (e) {
      this.codecError(p, c, e, MessageType.UPDATE, true);
      return;
    }
    for (;;) {
      if (c.dead || c.socket === null) return;
      try {
        buf = c.framer.next();
      } catch (e) {
        this.codecError(p, c, e, 0, true);
        return;
      }
      if (buf === null) break;
      this.receivedSincePump += buf.length;
      let msg: Message;
      try {
        msg = decodeMessage(buf, c.ctx);
      } catch (e) {
        this.codecError(p, c, e, buf[18] ?? 0, false);
        return;
      }
      try {
        this.handleMessage(p, c, msg);
      } catch (e) {
        // A fault of ours (or of a policy hook), not of the peer: reset this session only, keep the process.
        this.log('error', `internal error handling ${msg.type}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, p.address);
        this.feed(p, c, { type: 'AutomaticStop', subcode: CeaseSubcode.OutOfResources, reason: `internal error: ${String(e)}` });
        return;
      }
    }
    if (this.receivedSincePump >= PUMP_EVERY_OCTETS) this.pumpAll();
    this.scheduleFlush();
  }

  private codecError(p: Peer, c: Connection, e: unknown, type: number, header: boolean): void {
    if (!(e instanceof BgpError)) {
      this.log('error', `decoder failure: ${String(e)}`, p.address);
      this.feed(p, c, { type: 'TcpFails', reason: `internal decoder failure: ${String(e)}` });
      return;
    }
    p.info = `received malformed message: ${e.reason}`;
    if (header || type === MessageType.KEEPALIVE || type === MessageType.ROUTE_REFRESH) this.feed(p, c, { type: 'HeaderError', error: e });
    else if (type === MessageType.OPEN) this.feed(p, c, { type: 'OpenError', error: e });
    else if (type === MessageType.UPDATE) this.feed(p, c, { type: 'UpdateError', error: e });
    else this.feed(p, c, { type: 'TcpFails', reason: `undecodable NOTIFICATION: ${e.reason}` });
  }

  private handleMessage(p: Peer, c: Connection, msg: Message): void {
    p.counters.messagesIn[msg.type]++;
    switch (msg.type) {
      case 'OPEN': {
        if (this.collision(p, c, msg.bgpId)) return;
        this.feed(p, c, { type: 'Open', open: msg });
        return;
      }
      case 'UPDATE': {
        p.counters.prefixesReceived += msg.nlri.prefixes.length + (msg.mpReach?.nlri.prefixes.length ?? 0);
        if (msg.errorAction !== undefined) {
          p.counters.updateErrors++;
          const suppressed = this.remoteLog.take(p.address, 'update-error');
          if (suppressed !== null) {
            this.log('warn', `UPDATE error handled by ${msg.errorAction}: ${(msg.errors ?? []).map((x) => x.reason).join('; ')}${suppressed > 0 ? ` (${suppressed} similar lines suppressed)` : ''}`, p.address);
          }
        }
        c.pending = msg;
        this.feed(p, c, { type: 'Update' });
        c.pending = null;
        if (p.opts.maxPrefixes && c.inRib) this.checkMaxPrefixes(p, c);
        return;
      }
      case 'NOTIFICATION': {
        const k = `${msg.code}/${msg.subcode}`;
        p.counters.notificationsIn[k] = (p.counters.notificationsIn[k] ?? 0) + 1;
        this.feed(p, c, { type: 'Notification', message: msg });
        return;
      }
      case 'KEEPALIVE':
        this.feed(p, c, { type: 'Keepalive' });
        return;
      case 'ROUTE-REFRESH':
        this.feed(p, c, { type: 'RouteRefresh', afi: msg.afi, safi: msg.safi, subtype: msg.subtype });
        return;
    }
  }

  /**
   * Maximum prefixes (RFC 4486 §4), per address family as BIRD's channel
   * limits and FRR's per-AFI maximum-prefix count them: the peer's accepted
   * prefixes of a family (Adj-RIB-In, after import policy: what costs us
   * memory) against that family's limit. Crossing the warning threshold logs
   * once per family (again only after falling back below it); exceeding the
   * limit closes the session with Cease / Maximum Number of Prefixes Reached,
   * whose data is that family's AFI/SAFI and its limit, and keeps it down:
   * until restartAfterSec passes, or for good (a configuration change or
   * restart of the speaker brings it back). Connections from the peer are
   * refused meanwhile, so it cannot come back in through the listener.
   */
  private checkMaxPrefixes(p: Peer, c: Connection): void {
    const mp = p.opts.maxPrefixes;
    if (!mp) return;
    const stats = this.rib.peerStats(p.coreId);
    const pct = mp.warningThreshold ?? 75;
    let over: { family: number; count: number; limit: number } | null = null;
    for (const family of [IPV4_UNICAST, IPV6_UNICAST]) {
      const name = familyNameOf(family);
      const limit = mp.perFamily?.[name] ?? mp.limit;
      const count = family === IPV4_UNICAST ? stats.received4 : stats.received6;
      const warnAt = Math.ceil((limit * pct) / 100);
      if (count < warnAt) p.prefixWarned.delete(family);
      else if (!p.prefixWarned.has(family) && count <= limit) {
        p.prefixWarned.add(family);
        this.log('warn', `${count} ${name} prefixes accepted, ${pct}% of the limit of ${limit}`, p.address);
      }
      if (count > limit && over === null) over = { family, count, limit };
    }
    if (over === null) return;
    const { family, count, limit } = over;
    const data = Buffer.alloc(7);
    data.writeUInt16BE(family >> 8, 0);
    data.writeUInt8(family & 0xff, 2);
    data.writeUInt32BE(limit >>> 0, 3);
    const restart = mp.restartAfterSec;
    p.heldUntil = restart === undefined ? Infinity : Date.now() + restart * 1000;
    p.prefixWarned.clear();
    this.log('error', `maximum ${familyNameOf(family)} prefixes exceeded: ${count} > ${limit}; session closed${restart === undefined ? ' and held down' : `, restart in ${restart} s`}`, p.address);
    for (const x of [...p.conns]) {
      this.feed(p, x, {
        type: 'AutomaticStop',
        subcode: CeaseSubcode.MaximumPrefixesReached,
        reason: `maximum ${familyNameOf(family)} prefixes exceeded (${count} > ${limit})`,
        ...(x === c ? { data } : {}),
        idleHold: x === p.primary ? (restart ?? null) : null,
      });
    }
  }

  /**
   * RFC 4271 §6.8: an OPEN on one connection while the other is in
   * OpenConfirm (or Established) decides which survives. Returns true when
   * this connection was the loser (the OPEN is not processed further).
   */
  private collision(p: Peer, c: Connection, remoteId: number): boolean {
    const other = p.conns.find((x) => x !== c && !x.dead && (x.fsm.state === 'OpenConfirm' || x.fsm.state === 'Established'));
    if (!other) return false;
    let loser: Connection;
    if (other.fsm.state === 'Established') {
      loser = c; // §6.8: a connection colliding with an Established one is closed
    } else {
      const localAs = p.opts.localAsn ?? this.localAsn;
      const keep = collisionWinner(this.routerId, remoteId, localAs, p.opts.asn || other.session?.peerAs || 0);
      const keepInbound = keep === 'remote';
      loser = c.inbound === keepInbound ? other : c;
    }
    const winner = loser === c ? other : c;
    if (loser === p.primary) this.promote(p, winner);
    this.feed(p, loser, { type: 'OpenCollisionDump' });
    this.discard(p, loser);
    return loser === c;
  }

  // ------------------------------------------------------------------ the FSM

  private newFsm(o: PeerOptions): SessionFsm {
    const families = this.families(o);
    const localAs = o.localAsn ?? this.localAsn;
    // Built when each OPEN goes out, so the R bit is cleared once restartComplete() was called.
    const caps = (): Capability[] => buildCapabilities({
      localAs,
      families,
      // RFC 7911 §4: Send/Receive 1 receive, 2 send, 3 both, per family
      ...(o.addPathReceive || o.addPathSend
        ? { addPath: new Map(families.map((f) => [f, ((o.addPathReceive ? 1 : 0) | (o.addPathSend ? 2 : 0)) as 1 | 2 | 3])) }
        : {}),
      extendedMessage: o.extendedMessage ?? true,
      ...(this.opts.gracefulRestart ?? true
        ? {
            gracefulRestart: {
              restartTime: o.restartTime ?? DEFAULT_RESTART_TIME_S,
              restarting: this.restarting,
              forwardingState: this.opts.forwardingState ?? false,
              notification: true, // RFC 8538 §2
            },
            ...((o.longLivedStaleTime ?? 0) > 0
              ? { longLivedGracefulRestart: { staleTime: o.longLivedStaleTime as number, forwardingState: this.opts.forwardingState ?? false } }
              : {}),
          }
        : {}),
    });
    const holdTime = o.holdTime ?? this.opts.holdTime;
    const keepaliveTime = o.keepaliveTime ?? this.opts.keepaliveTime;
    const connectRetryTime = o.connectRetryTime ?? this.opts.connectRetryTime;
    return new SessionFsm(
      {
        localAs,
        routerId: this.routerId,
        peerAs: o.asn,
        get capabilities() {
          return caps();
        },
        ...(o.passive !== undefined ? { passive: o.passive } : {}),
        ...(holdTime !== undefined ? { holdTime } : {}),
        ...(keepaliveTime !== undefined ? { keepaliveTime } : {}),
        ...(connectRetryTime !== undefined ? { connectRetryTime } : {}),
        ...(this.opts.idleHold !== undefined ? { idleHold: this.opts.idleHold } : {}),
      },
      clock,
    );
  }

  private families(o: PeerOptions): number[] {
    return (o.families ?? ['ipv4-unicast', 'ipv6-unicast']).map((f) => FAMILY_KEYS[f]).sort((a, b) => a - b);
  }

  /** Feed one event to a connection's FSM and carry out what it says. */
  private feed(p: Peer, c: Connection, e: FsmEvent, o: { silent?: boolean } = {}): void {
    if (c.dead) return;
    let actions: FsmAction[];
    try {
      actions = c.fsm.handle(e);
    } catch (err) {
      this.log('error', `FSM failed on ${e.type}: ${String(err)}`, p.address);
      return;
    }
    this.run(p, c, actions, o.silent ?? false);
  }

  private run(p: Peer, c: Connection, actions: readonly FsmAction[], silent: boolean): void {
    for (const a of actions) {
      switch (a.type) {
        case 'connect':
          this.connect(p, c);
          break;
        case 'close':
          this.close(c);
          break;
        case 'send':
          if (silent && a.message.type === 'NOTIFICATION') break;
          this.send(p, c, a.message);
          break;
        case 'setTimer':
        case 'clearTimer':
          break; // the single timer is re-armed from nextDeadline() below
        case 'stateChange':
          if (c === p.primary) this.showState(p, a.to);
          break;
        case 'established':
          this.established(p, c, a.session);
          break;
        case 'update':
          if (c.pending && c.inRib) {
            const eor = isEndOfRib(c.pending);
            if (eor) this.endOfRib(p, eor.afi, eor.safi);
            else {
              const timed = this.opts.onUpdateApplied;
              const t0 = timed ? performance.now() : 0;
              this.rib.applyUpdate(p.coreId, c.pending);
              if (timed) timed((performance.now() - t0) / 1000);
            }
          }
          break;
        case 'routeRefresh': {
          const fam = familyKey(a.afi, a.safi);
          if (a.subtype === 0) this.rib.routeRefresh(p.coreId, a.afi, a.safi);
          else if (a.subtype === 1) this.rib.markStale(p.coreId, fam);
          else if (a.subtype === 2) this.rib.sweepStale(p.coreId, fam);
          this.schedulePump(p);
          break;
        }
        case 'down':
          // A silent close sent no NOTIFICATION (see 'send' above): neither count nor report one.
          if (silent && a.notification?.sent) {
            this.down(p, c, { type: 'down', reason: `${a.reason}; closed without a NOTIFICATION`, wasEstablished: a.wasEstablished });
          } else this.down(p, c, a);
          break;
      }
    }
    this.armTimer(p);
  }

  private showState(p: Peer, to: State): void {
    if (p.state === to) return;
    const from = p.state;
    p.state = to;
    p.since = new Date();
    const ev: PeerStateEvent = { address: p.address, from, state: to, since: p.since, info: p.info };
    this.emit('peer', ev);
  }

  private established(p: Peer, c: Connection, s: NegotiatedSession): void {
    c.session = s;
    c.ctx = s.codec;
    c.framer.extendedMessage = s.extendedMessage;
    if (c !== p.primary) this.promote(p, c);
    // Other connections: one still in the core (should not happen after collision
    // handling) goes first; one that is idle, dialling or waiting would only
    // collide with this session later (§6.8 closes it then), so it goes now. One
    // in OpenSent is closed when its OPEN arrives.
    for (const x of [...p.conns]) {
      if (x !== c && (x.inRib || x.fsm.state === 'Idle' || x.fsm.state === 'Connect' || x.fsm.state === 'Active')) this.discard(p, x);
    }
    this.rib.updatePeer(p.coreId, this.coreConfig(p.opts, p.address, c));
    p.llgr.session = s;
    this.resumeStale(p, s);
    p.eorPending.clear();
    for (const f of s.families) p.eorPending.add(f);
    this.rib.peerUp(p.coreId, s);
    // A peer that cannot resend its routes on request (no RFC 2918 route refresh): keep what it sends before the
    // import rules, so a change of them applies without a reset (BIRD's `import table`, soft-reconfiguration inbound).
    this.rib.keepReceived(p.coreId, !s.routeRefresh);
    c.inRib = true;
    p.counters.established++;
    p.info = '';
    this.showState(p, 'Established');
    this.schedulePump(p);
    this.checkDeferral();
  }

  private down(p: Peer, c: Connection, a: Extract<FsmAction, { type: 'down' }>): void {
    if (a.notification) {
      const k = `${a.notification.message.code}/${a.notification.message.subcode}`;
      const n = a.notification.sent ? p.counters.notificationsOut : p.counters.notificationsIn;
      if (a.notification.sent) n[k] = (n[k] ?? 0) + 1; // received ones were counted on arrival
      p.info = `${a.notification.sent ? 'sent' : 'received'} NOTIFICATION ${notificationText(a.notification.message)}`;
    } else if (c === p.primary || c.inRib) {
      p.info = a.reason;
    }
    if (c.inRib) {
      c.inRib = false;
      p.llgr.times = longLivedTimes(c.session, this.llgrOffered(p));
      const keep = this.retainOnDown(p, c, a);
      if (keep.length > 0) this.retain(p, keep, c.session?.gracefulRestart?.restartTime ?? 0, a.reason);
      else {
        this.clearGrTimer(p);
        p.stale.clear();
        p.llgr.clear();
        this.rib.peerDown(p.coreId);
      }
      this.scheduleFlush();
    }
    c.session = null;
    c.ctx = DEFAULT_CONTEXT;
    c.blocked = false;
    c.sendPending = false;
    if (c !== p.primary) {
      this.discard(p, c);
      return;
    }
    // the primary failed while a second connection is still trying: that one carries on
    const other = p.conns.find((x) => x !== c && !x.dead);
    if (other) {
      this.promote(p, other);
      this.discard(p, c);
    }
  }

  // ------------------------------------------------------------------ graceful restart, helper side (RFC 4724 §4.2)

  /** Say that our own restart is over: OPENs from now on carry R=0 (RFC 4724 §4.1). */
  restartComplete(): void {
    this.restarting = false;
    this.endDeferral('restart complete');
  }

  /** Still holding our UPDATEs back after a restart (RFC 4724 §4.1)? */
  get deferringUpdates(): boolean {
    return this.deferring;
  }

  /**
   * End the deferral once every peer is Established and has sent End-of-RIB for all its families. A peer without
   * graceful restart promises no End-of-RIB, and one restarting itself (R bit) may be waiting for ours (RFC 4724
   * §4.1 avoids that deadlock): neither is waited for beyond being Established.
   */
  private checkDeferral(): void {
    if (!this.deferring) return;
    for (const p of this.peers.values()) {
      const gr = this.ribConn(p)?.session?.gracefulRestart;
      if (p.state !== 'Established') return;
      if (gr && !gr.restarting && p.eorPending.size > 0) return;
    }
    this.endDeferral('End-of-RIB received from every peer');
  }

  private endDeferral(reason: string): void {
    if (!this.deferring) return;
    this.deferring = false;
    if (this.deferTimer) clearTimeout(this.deferTimer);
    this.deferTimer = null;
    this.log('info', `sending our routes now (${reason})`);
    for (const p of this.peers.values()) this.schedulePump(p);
  }

  /**
   * The families whose routes outlive this session's end: those the peer listed in its graceful restart capability,
   * when we announced ours too. A NOTIFICATION ends graceful restart (RFC 4724 §4.2) unless both sides sent the N bit,
   * and even then a Hard Reset does (RFC 8538 §3), as do the Cease subcodes RFC 8538 §5 says to send as one
   * (maximum prefixes, administrative shutdown, peer de-configured) when a peer sends them bare: the operator meant
   * the routes to go. A Cease we send ourselves flushes too: it is a decision about these routes, not a failure.
   */
  private retainOnDown(p: Peer, c: Connection, a: Extract<FsmAction, { type: 'down' }>): number[] {
    const gr = c.session?.gracefulRestart;
    if (!gr || !(this.opts.gracefulRestart ?? true) || !this.running || p.removed) return [];
    const n = a.notification;
    if (n) {
      if (!gr.notification) return [];
      if (n.message.code === ErrorCode.Cease && (n.sent || HARD_CEASE.has(n.message.subcode))) return [];
    }
    // RFC 9494 §4.2: a family the peer announced a long-lived stale time for is kept even without GR for it.
    return [...new Set([...gr.families.map((f) => f.family), ...p.llgr.times.keys()])].sort((x, y) => x - y);
  }

  /** We announced LLGR to this peer (and so act as its LLGR helper). */
  private llgrOffered(p: Peer): boolean {
    return (this.opts.gracefulRestart ?? true) && (p.opts.longLivedStaleTime ?? 0) > 0;
  }

  private retain(p: Peer, families: number[], restartTime: number, reason: string): void {
    this.clearGrTimer(p);
    // Families the peer does not preserve go now (RFC 4724 §4.2); the rest stay as stale best-path candidates.
    this.rib.peerDown(p.coreId, { retainStale: true });
    for (const f of [IPV4_UNICAST, IPV6_UNICAST]) if (!families.includes(f)) this.rib.sweepStale(p.coreId, f);
    for (const f of [...p.stale]) {
      if (families.includes(f)) continue;
      p.stale.delete(f); // swept just above
      p.llgr.stop(f);
    }
    for (const f of families) p.stale.add(f);
    this.emit('stale', { peer: p.address, action: 'retained', families: [...p.stale], paths: this.rib.peerStats(p.coreId).received, reason } satisfies StaleEvent);
    // RFC 9494 §4.2: no restart time, or no GR for the family, means straight into the long-lived phase; a family
    // already there (the session came back and dropped again) keeps its clock.
    const grFams = new Set(p.llgr.session?.gracefulRestart?.families.map((f) => f.family) ?? []);
    for (const f of families) if (p.llgr.has(f)) this.rib.enterLongLivedStale(p.coreId, f); // paths re-learned meanwhile
    const now = families.filter((f) => !p.llgr.has(f) && p.llgr.times.has(f) && (restartTime === 0 || !grFams.has(f)));
    if (now.length > 0) this.enterLongLived(p, now, 'no restart time');
    if ([...p.stale].every((f) => p.llgr.has(f))) return;
    this.log('info', `session down (${reason}): keeping its routes as stale for up to ${restartTime} s (graceful restart)`, p.address);
    this.armGrTimer(p, restartTime, 'restart time ran out before the session came back', 'restart');
  }

  /**
   * RFC 9494 §4.2: families enter the long-lived phase: their stale paths get LLGR_STALE (NO_LLGR ones go) and each
   * family's clock starts at the peer's long-lived stale time.
   */
  private enterLongLived(p: Peer, families: readonly number[], reason: string): void {
    let kept = 0;
    let removed = 0;
    for (const f of families) {
      const seconds = p.llgr.times.get(f) ?? 0;
      const r = this.rib.enterLongLivedStale(p.coreId, f);
      kept += r.kept;
      removed += r.removed;
      p.llgr.start(f, seconds, () => {
        if (p.stale.has(f) && !p.removed) this.sweep(p, [f], 'long-lived stale time ran out');
      });
      this.log('info', `long-lived graceful restart (${reason}): keeping ${r.kept} route(s) with LLGR_STALE for up to ${seconds} s${r.removed > 0 ? `, ${r.removed} NO_LLGR route(s) removed` : ''}`, p.address);
    }
    this.emit('stale', { peer: p.address, action: 'long-lived', families: [...families], paths: kept, reason } satisfies StaleEvent);
    if (removed > 0) this.emit('stale', { peer: p.address, action: 'swept', families: [...families], paths: removed, reason: 'NO_LLGR at the start of the long-lived phase' } satisfies StaleEvent);
    this.scheduleFlush();
  }

  /** The restart or stale-path timer ran out: families with a long-lived stale time go on (after a restart), the rest go. */
  private graceOver(p: Peer, reason: string): void {
    const gr = [...p.stale].filter((f) => !p.llgr.has(f));
    const longLived = p.grPhase === 'restart' ? gr.filter((f) => p.llgr.times.has(f)) : [];
    const gone = gr.filter((f) => !longLived.includes(f));
    if (longLived.length > 0) this.enterLongLived(p, longLived, reason);
    if (gone.length > 0) this.sweep(p, gone, reason);
  }

  /** A new session with a peer whose stale routes we kept: what the new OPEN says decides their fate. */
  private resumeStale(p: Peer, s: NegotiatedSession): void {
    if (p.stale.size === 0) return;
    this.clearGrTimer(p);
    // RFC 4724 §4.2: no capability now, a family missing, or its F bit clear: the forwarding state is gone.
    const kept = new Set((s.gracefulRestart?.families ?? []).filter((f) => f.forwardingState).map((f) => f.family));
    // RFC 9494 §4.2: for a family in the long-lived phase, the F bit of the new LLGR capability is what counts.
    const llKept = new Set(
      this.llgrOffered(p) && s.gracefulRestart ? (s.longLivedGracefulRestart?.families ?? []).filter((f) => f.forwardingState).map((f) => f.family) : [],
    );
    const drop = [...p.stale].filter((f) => !(p.llgr.has(f) ? llKept : kept).has(f) || !s.families.includes(f));
    if (drop.length > 0) this.sweep(p, drop, 'the peer did not preserve forwarding state');
    // Long-lived families keep their own clock until End-of-RIB; the others get the stale-path time.
    if ([...p.stale].some((f) => !p.llgr.has(f))) {
      this.armGrTimer(p, this.opts.stalePathTime ?? DEFAULT_STALE_PATH_TIME_S, 'no End-of-RIB before the stale-path time', 'stale-path');
    }
  }

  private endOfRib(p: Peer, afi: number, safi: number): void {
    const f = familyKey(afi, safi);
    p.eorPending.delete(f);
    if (p.stale.has(f)) this.sweep(p, [f], 'End-of-RIB');
    if (p.stale.size === 0) this.clearGrTimer(p);
    this.emit('endOfRib', { peer: p.address, afi, safi } satisfies EndOfRibEvent);
    this.checkDeferral();
  }

  private sweep(p: Peer, families: readonly number[], reason: string): void {
    let n = 0;
    for (const f of families) {
      n += this.rib.sweepStale(p.coreId, f);
      p.stale.delete(f);
      p.llgr.stop(f);
    }
    if (p.stale.size === 0) this.clearGrTimer(p);
    this.emit('stale', { peer: p.address, action: 'swept', families: [...families], paths: n, reason } satisfies StaleEvent);
    if (n > 0) this.log('info', `graceful restart: ${n} stale route(s) removed (${reason})`, p.address);
    this.scheduleFlush();
  }

  private armGrTimer(p: Peer, seconds: number, reason: string, phase: 'restart' | 'stale-path'): void {
    this.clearGrTimer(p);
    p.grPhase = phase;
    p.grDeadline = Date.now() + seconds * 1000;
    p.grTimer = setTimeout(() => {
      p.grTimer = null;
      if (p.stale.size > 0 && !p.removed) this.graceOver(p, reason);
    }, seconds * 1000);
  }

  private clearGrTimer(p: Peer): void {
    if (p.grTimer) clearTimeout(p.grTimer);
    p.grTimer = null;
  }

  /** Families of a peer whose routes are stale now (familyKey values). */
  staleFamilies(address: string): number[] {
    return [...(this.peers.get(normalizeAddress(address))?.stale ?? [])];
  }

  private promote(p: Peer, c: Connection): void {
    p.primary = c;
    this.showState(p, c.fsm.state);
  }

  /** Take a connection out of its peer for good (after its last actions ran). */
  private discard(p: Peer, c: Connection): void {
    if (c.dead) return;
    if (c.inRib) {
      c.inRib = false;
      this.rib.peerDown(p.coreId);
      this.scheduleFlush();
    }
    this.close(c);
    c.dead = true;
    const i = p.conns.indexOf(c);
    if (i >= 0) p.conns.splice(i, 1);
    this.armTimer(p);
  }

  private connect(p: Peer, c: Connection): void {
    if (c.socket || c.dial) return; // an inbound connection's FSM asks to connect on ManualStart: it already is
    const o = p.opts;
    const ac = new AbortController();
    c.dial = ac;
    const src = o.sourceAddress ?? this.defaultSource(p.address);
    connectWithOptions({
      host: p.address,
      port: o.port ?? 179,
      ...(src !== undefined ? { localAddress: src } : {}),
      ...(o.md5Key !== undefined ? { md5Key: o.md5Key } : {}),
      ...(o.ttlSecurity !== undefined ? { ttl: 255, minTtl: 256 - o.ttlSecurity } : {}),
      noDelay: true,
      timeoutMs: DIAL_TIMEOUT_MS,
      signal: ac.signal,
    }).then(
      (s) => {
        if (c.dial !== ac || c.dead || c.socket) {
          s.destroy();
          return;
        }
        c.dial = null;
        if (c.fsm.state !== 'Connect' && c.fsm.state !== 'Active') {
          s.destroy();
          return;
        }
        this.attach(p, c, s);
        this.feed(p, c, { type: 'TcpConnected' });
      },
      (e: Error) => {
        if (c.dial !== ac || c.dead) return;
        c.dial = null;
        this.feed(p, c, { type: 'TcpFails', reason: e.message });
      },
    );
  }

  /** Dial from the listen address when it is a specific address of the peer's family (so the peer recognises us). */
  private defaultSource(peer: string): string | undefined {
    return this.listenHosts().find((l) => l !== '::' && l !== '0.0.0.0' && isIpv4(l) === isIpv4(peer));
  }

  /** The addresses to listen on ('::' when none is configured). */
  private listenHosts(): string[] {
    const l = this.opts.listenAddress;
    if (l === null) return [];
    if (l === undefined) return ['::'];
    return typeof l === 'string' ? [l] : l.length > 0 ? [...l] : ['::'];
  }

  private close(c: Connection): void {
    if (c.dial) {
      c.dial.abort();
      c.dial = null;
    }
    const s = c.socket;
    if (!s) return;
    c.socket = null;
    c.blocked = false;
    // end() lets a NOTIFICATION written just before go out; a peer that does not read gets no more than the grace time
    try {
      s.end();
    } catch {
      /* already broken */
    }
    setTimeout(() => s.destroy(), CLOSE_GRACE_MS).unref();
  }

  // ------------------------------------------------------------------ timers

  /** ONE timer per peer, at the earliest deadline of its connections' FSMs. */
  private armTimer(p: Peer): void {
    let at = Infinity;
    for (const c of p.conns) {
      const d = c.fsm.nextDeadline();
      if (d !== null && d < at) at = d;
    }
    if (at === p.timerAt && p.timer) return;
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
    p.timerAt = at;
    if (at === Infinity || p.removed) return;
    p.timer = setTimeout(() => {
      p.timer = null;
      p.timerAt = Infinity;
      const lateMs = clock.now() - at;
      // Node runs due timers before it polls sockets: after a stall this callback would come before the input that
      // arrived meanwhile (the KEEPALIVE that restarts the hold timer) is read. setImmediate runs after the poll
      // phase, so pending input is read first and the FSM judges the peer on what it really sent.
      setImmediate(() => this.onTimer(p, at, lateMs));
    }, Math.max(0, Math.ceil(at - clock.now())));
  }

  private onTimer(p: Peer, at: number, lateMs: number): void {
    if (p.removed) return;
    const stalled = this.stalls.late(at, lateMs);
    for (const c of [...p.conns]) {
      if (c.dead) continue;
      try {
        if (stalled) {
          // time in which the process could neither read nor write is not the peer's silence
          const moved = c.fsm.forgiveStall(lateMs);
          if (moved.length > 0) this.log('info', `${moved.join(' and ')} timer fell due during a stall of this process (${Math.round(lateMs)} ms); not expired, the peer gets that time again`, p.address);
        }
        this.run(p, c, c.fsm.tick(), false);
      } catch (e) {
        this.log('error', `internal error on a timer: ${String(e)}`, p.address);
      }
    }
    this.armTimer(p);
    this.scheduleFlush();
  }

  // ------------------------------------------------------------------ sending

  private send(p: Peer, c: Connection, m: Message): void {
    const s = c.socket;
    if (!s) return;
    let buf: Buffer;
    try {
      buf = encodeMessage(m, c.ctx);
    } catch (e) {
      this.log('error', `cannot encode ${m.type}: ${(e as Error).message}`, p.address);
      return;
    }
    p.counters.messagesOut[m.type]++;
    if (m.type === 'NOTIFICATION') {
      // a peer that keeps sending bad messages makes us send a NOTIFICATION each time: limited like its UPDATE errors
      const suppressed = this.remoteLog.take(p.address, 'notification-sent');
      if (suppressed !== null) this.log('info', `sending NOTIFICATION ${notificationText(m)}${suppressed > 0 ? ` (${suppressed} similar lines suppressed)` : ''}`, p.address);
    }
    this.write(p, c, buf);
  }

  /** Write one message; report = false leaves the SendProgress report to the caller (the pump reports once). */
  private write(p: Peer, c: Connection, buf: Buffer, report = true): void {
    const s = c.socket;
    if (!s || s.destroyed) return;
    let ok: boolean;
    try {
      ok = s.write(buf);
    } catch {
      return; // the 'error'/'close' handlers report it
    }
    if (!ok) c.blocked = true;
    if (report) this.progress(p, c);
  }

  /**
   * RFC 9687: tell the FSM whether bytes are waiting (SendHoldTimer runs only
   * then); updates: UPDATEs were written, which restarts the KeepaliveTimer
   * (RFC 4271 §4.4) — unless the socket is stuck, when nothing really moved.
   */
  private progress(p: Peer, c: Connection, updates = false): void {
    const s = c.socket;
    if (!s || c.dead) return;
    const pending = s.writableLength > 0;
    if (pending === c.sendPending && pending) return; // still stuck: no progress to report
    if (!updates && !pending && !c.sendPending && !c.fsm.timerRunning('SendHold')) return;
    c.sendPending = pending;
    this.run(p, c, c.fsm.handle(updates ? { type: 'SendProgress', pending, updates } : { type: 'SendProgress', pending }), false);
  }

  private schedulePump(p: Peer): void {
    if (p.pumpScheduled) return;
    p.pumpScheduled = true;
    setImmediate(() => {
      p.pumpScheduled = false;
      this.pump(p);
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Hand best-path changes to listeners and let every Established peer send. */
  private flush(): void {
    // About 10 ms of best changes a turn; the rest on the next one (a million at once would hold the loop a second).
    const changes = this.rib.drainBestChanges(BEST_DRAIN_MS);
    if (changes.length > 0 && this.listenerCount('best') > 0) this.emit('best', changes.map(bestEvent));
    if (this.rib.pendingBestChanges > 0) this.scheduleFlush();
    this.pumpAll();
  }

  /** Let every Established peer send what is queued (the socket pushes back through pump's own checks). */
  private pumpAll(): void {
    this.receivedSincePump = 0;
    for (const p of this.peers.values()) this.pump(p);
  }

  private ribConn(p: Peer): Connection | null {
    return p.conns.find((c) => c.inRib && !c.dead) ?? null;
  }

  /** Send queued work until the socket pushes back, or a turn's share is used (then continue next turn). */
  private pump(p: Peer): void {
    const c = this.ribConn(p);
    if (!c || !c.socket || c.blocked || c.fsm.state !== 'Established' || this.deferring) return;
    let wrote = false;
    let more = true;
    for (let i = 0; i < BATCHES_PER_TURN; i++) {
      const b = this.rib.nextBatch(p.coreId, this.batchPrefixes);
      if (b === null) {
        more = false;
        break;
      }
      let bufs: Buffer[];
      try {
        bufs = this.encodeBatch(b, c.ctx);
      } catch (e) {
        this.log('error', `cannot encode ${b.kind} for AFI ${b.afi}: ${(e as Error).message}`, p.address);
        // RFC 8654 §4: a route that does not fit the peer's largest message is not sent, and a previous version of
        // it the peer holds is withdrawn. Adj-RIB-Out must then say the peer does not have it, or the next identical
        // export would be suppressed as already sent.
        if (b.kind === 'announce') p.counters.unsendable += this.rib.unsendable(p.coreId, b);
        continue;
      }
      p.counters.messagesOut[b.kind === 'begin-refresh' || b.kind === 'end-refresh' ? 'ROUTE-REFRESH' : 'UPDATE'] += bufs.length;
      for (const buf of bufs) this.write(p, c, buf, false);
      wrote ||= bufs.length > 0;
      if (c.blocked || !c.socket) {
        more = false; // resumed on 'drain'
        break;
      }
    }
    if (wrote) this.progress(p, c, true);
    if (more) this.schedulePump(p);
  }

  private encodeBatch(b: OutBatch, ctx: CodecContext): Buffer[] {
    switch (b.kind) {
      case 'end-of-rib':
        return [endOfRib(b.afi, b.safi, ctx)];
      case 'begin-refresh':
      case 'end-refresh':
        return [encodeRouteRefresh({ afi: b.afi, safi: b.safi, subtype: b.kind === 'begin-refresh' ? 1 : 2 })];
      case 'withdraw':
        return packWithdrawals(prefixList(b.afi, b.safi, b.prefixes, b.pathIds), ctx);
      case 'announce': {
        const list = prefixList(b.afi, b.safi, b.prefixes, b.pathIds);
        if (b.afi === 1) return packUpdates(b.attrs.attrs, list, ctx);
        return packUpdates(b.attrs.attrs, list, ctx, undefined, b.attrs.nextHops);
      }
    }
  }

  // ------------------------------------------------------------------ core glue

  /**
   * What this host reaches without BGP, and its own addresses (the daemon reads them from the kernel); null: stop
   * checking resolution. Paths whose next hop became unresolvable lose their place in the decision (RFC 4271
   * §9.1.2), and ones that became resolvable regain it; returns the number of prefixes re-decided.
   */
  setReachability(r: Reachability | null): number {
    this.nextHops.setReachability(r);
    const n = this.rib.recheckNextHops();
    if (n > 0) this.scheduleFlush();
    return n;
  }

  /** Our end of a session is our address: a next hop equal to it is semantically incorrect (RFC 4271 §6.3). */
  private noteOwnAddress(address: string | undefined): void {
    if (address === undefined) return;
    const before = this.nextHops.check([address]);
    this.nextHops.addSessionAddress(address);
    if (before?.code !== 'own-address' && this.rib.recheckNextHops() > 0) this.scheduleFlush();
  }

  /** The core's view of a peer; next hops come from the session's own address when one is up. */
  private coreConfig(o: PeerOptions, address: string, c: Connection | null): PeerConfig {
    const local = c?.socket?.localAddress !== undefined ? normalizeAddress(c.socket.localAddress) : undefined;
    const v4 = o.nextHop4 ?? (local !== undefined && isIpv4(local) ? local : this.opts.nextHop4);
    const v6 = o.nextHop6 ?? (local !== undefined && !isIpv4(local) ? local : this.opts.nextHop6);
    this.noteOwnAddress(local);
    const importPolicy = o.importPolicy;
    const exportPolicy = o.exportPolicy;
    return {
      address,
      asn: o.asn,
      ...(o.localAsn !== undefined ? { localAs: o.localAsn } : {}),
      ...(o.routeReflectorClient ? { routeReflectorClient: true } : {}),
      ...(o.addPathSend !== undefined ? { addPathSend: o.addPathSend } : {}),
      ...(v4 !== undefined ? { localAddress: v4 } : {}),
      ...(v6 !== undefined ? { localAddress6: v6 } : {}),
      ...(o.nextHopSelf !== undefined ? { nextHopSelf: o.nextHopSelf } : {}),
      ...(o.nextHopKeep !== undefined ? { nextHopKeep: o.nextHopKeep } : {}),
      ...(o.allowOwnAs !== undefined ? { allowOwnAs: o.allowOwnAs } : {}),
      ...(importPolicy !== undefined ? { importPolicy } : {}),
      ...(exportPolicy !== undefined ? { exportPolicy } : {}),
      ...(o.rules !== undefined ? { rules: o.rules } : {}),
    };
  }

  private applyListenerMd5(p: Peer, key: Buffer | string | null): void {
    if (key === null && p.opts.md5Key === undefined) return;
    for (const server of this.servers) {
      // A listener on a specific address of the other family never sees this peer.
      const a = server.address();
      if (a && typeof a === 'object' && a.address !== '::' && a.address !== '0.0.0.0' && isIpv4(a.address) !== isIpv4(p.address)) continue;
      try {
        setListenerMd5(server, p.address, key);
      } catch (e) {
        this.log('error', `TCP MD5 key on the listener: ${(e as Error).message}`, p.address);
      }
    }
  }

  /**
   * RFC 5082 §3: a GTSM peer checks the TTL of every segment, the SYN-ACK
   * included, and that one is sent from the listener's settings before any
   * per-connection option can be set. So the listener sends with TTL 255 once
   * any peer uses GTSM (harmless for the others). The minimum TTL is per
   * connection, set on accept: a listener-wide one would shut out peers
   * without GTSM.
   */
  private applyListenerTtl(o: PeerOptions): void {
    if (this.servers.length === 0 || o.ttlSecurity === undefined || this.listenerTtlSet) return;
    try {
      for (const server of this.servers) setTtl(fdOf(server), 255);
      this.listenerTtlSet = true;
    } catch (e) {
      this.log('error', `TTL 255 on the listener: ${(e as Error).message}`);
    }
  }

  private listenerTtlSet = false;

  private log(level: 'info' | 'warn' | 'error', msg: string, peer?: string): void {
    this.emit('log', peer !== undefined ? { level, msg, peer } : { level, msg });
  }
}

function prefixList(afi: number, safi: number, prefixes: PrefixKey[], pathIds: number[] | null): PrefixList {
  return afi === 1
    ? { afi: 1, safi, prefixes: prefixes as number[], pathIds }
    : { afi: 2, safi, prefixes: prefixes as string[], pathIds };
}

export function parsePrefixText(text: string): PrefixKey {
  return text.includes(':') ? parsePrefix6(text) : parsePrefix4(text);
}

export function prefixText(p: PrefixKey): string {
  return typeof p === 'number' ? prefix4ToString(p) : p;
}

/**
 * A best-path change as listeners get it. The prefix stays the RIB's key (a number for IPv4): its text is made
 * only when someone reads `prefix`, so a million changes into the FIB build no million strings.
 */
class Best implements BestEvent {
  readonly key: PrefixKey;
  readonly afi: 1 | 2;
  readonly attributes: PathAttributes | null;
  readonly nextHops: readonly string[];
  readonly local: boolean;
  readonly from: string | null;
  constructor(b: BestChange) {
    this.key = b.prefix;
    this.afi = b.afi;
    this.attributes = b.best?.attrs ?? null;
    this.nextHops = b.nextHops;
    this.local = b.local;
    this.from = b.from;
  }
  get prefix(): string {
    return prefixText(this.key);
  }
}

function bestEvent(b: BestChange): BestEvent {
  return new Best(b);
}

