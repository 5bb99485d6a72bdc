// The BGP speaker: the peer lifecycle around the Sans-IO session machine
// (session/fsm.ts) and the route-processing core (rib/core.ts). All protocol
// decisions live there; this file adds and removes peers, feeds FSM events and
// carries out the FSM's actions, keeps counters and answers the views.
//
// Still over ~600 lines (issue 17): the JSON views, maximum prefixes, collision
// handling and the restart deferral are the next candidates to move out.
//
// Shape (see README.md in this folder for the files):
// - One Peer per configured neighbour, one RibCore peer id for it. A Peer has
//   one or two Connections (two only while a collision is being resolved,
//   RFC 4271 §6.8); each Connection owns a socket, a Framer and its own
//   SessionFsm. The "primary" connection is the one whose state the peer
//   shows and whose FSM dials and backs off; a second, inbound connection gets
//   an FSM of its own and is either dumped (Cease 7) or promoted.
// - Sockets are connection.ts's and listener.ts's; sending is sender.ts's
//   (pull-based, one socket write per pump turn); graceful restart's helper
//   side is one machine per peer (graceful-restart.ts).
// - One timer per peer: a setTimeout re-armed to the earliest deadline of its
//   connections' FSMs (fsm.nextDeadline()); when it fires, every FSM ticks.
// - Received bytes are handled as they come; best-path changes and sending are
//   done once per turn of the event loop (setImmediate), so an UPDATE burst
//   costs one export pass per prefix, not one write per UPDATE.
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { RibCore } from '../rib/core.js';
import { NextHopTable } from '../rib/next-hop.js';
import type { Reachability } from '../rib/next-hop.js';
import type { BestChange, PeerConfig, PrefixKey } from '../rib/core.js';
import { buildCapabilities, collisionWinner } from '../session/negotiate.js';
import type { NegotiatedSession } from '../session/negotiate.js';
import { SessionFsm } from '../session/fsm.js';
import type { FsmAction, FsmEvent, State } from '../session/fsm.js';
import { CeaseSubcode, IPV4_UNICAST, IPV6_UNICAST, familyKey } from '../wire/constants.js';
import { isIpv4, parseIpv4 } from '../wire/prefix.js';
import { DEFAULT_CONTEXT } from '../wire/types.js';
import type { Capability, Message, PathAttributes } from '../wire/types.js';
import { isEndOfRib } from '../wire/update.js';
import { FAMILY_KEYS, familyNameOf, normalizeAddress, sessionKey } from './config.js';
import type { PeerOptions, SpeakerOptions } from './config.js';
import { pathJson } from './json.js';
import type { LocalRestartJson, PeerJson, RouteJson } from './json.js';
import { DEFAULT_STALE_PATH_TIME_S, GracefulRestart } from './graceful-restart.js';
import { peerGrJson, secondsLeft } from './llgr.js';
import type { GracefulRestartJson } from './llgr.js';
import { Peer, ribConn } from './peer.js';
import type { Connection } from './peer.js';
import { Sender } from './sender.js';
import { Connections } from './connection.js';
import { Listener, listenHosts } from './listener.js';
import { notificationText, parsePrefixText, prefixText } from './text.js';
import { StallWatch } from './stall.js';
import { LogRateLimit } from './rate-limit.js';
import type { StallEvent } from './stall.js';
import type { BestEvent, EndOfRibEvent, PeerInfo, PeerStateEvent, StaleEvent, StopOptions } from './types.js';

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

/** RFC 4724 §3 suggests the restart time; BIRD and FRR use 120 s, as does Calico. */
const DEFAULT_RESTART_TIME_S = 120;
/** FRR's select-defer-time: the longest a restarted speaker holds its UPDATEs back waiting for End-of-RIB. */
const DEFAULT_SELECTION_DEFERRAL_S = 360;

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
  private readonly listener = new Listener((level, msg, peer) => this.log(level, msg, peer));
  /** sockets: accept, dial, attach, close, receive */
  private readonly conns: Connections;
  private running = false;
  private flushScheduled = false;
  /** UPDATE octets received since the peers were last pumped (see PUMP_EVERY_OCTETS) */
  private receivedSincePump = 0;
  private readonly opts: SpeakerOptions;
  private readonly sender: Sender;
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
    this.rib = new RibCore({
      localAs: opts.localAsn,
      routerId: this.routerId,
      ...(opts.maxPaths !== undefined ? { maxPaths: opts.maxPaths } : {}),
      ...(opts.clusterId !== undefined ? { clusterId: typeof opts.clusterId === 'number' ? opts.clusterId >>> 0 : parseIpv4(opts.clusterId) >>> 0 } : {}),
      onPolicyError: (e) =>
        this.log('error', `${e.which} policy failed for ${prefixText(e.prefix)}: ${String(e.error)}; route rejected`, e.peer.address),
      ...(opts.routeInterface !== undefined ? { routeInterface: opts.routeInterface } : {}),
      ...(opts.keepRefused !== undefined ? { keepRefused: opts.keepRefused } : {}),
      // a whole-table walk (peer down, sweep, refresh) ran a slice on a later turn: hand out what it changed
      onWork: () => this.scheduleFlush(),
    });
    this.sender = new Sender(
      {
        rib: this.rib,
        deferring: () => this.deferring,
        log: (level, msg, peer) => this.log(level, msg, peer),
        remoteLog: this.remoteLog,
        run: (p, c, actions) => this.run(p, c, actions, false),
      },
      opts.batchPrefixes ?? 2048,
    );
    this.conns = new Connections({
      peer: (address) => this.peers.get(address),
      isRunning: () => this.running,
      newFsm: (o) => this.newFsm(o),
      feed: (p, c, e) => this.feed(p, c, e),
      onMessage: (p, c, msg) => this.handleMessage(p, c, msg),
      countReceived: (octets) => {
        this.receivedSincePump += octets;
      },
      receiveDone: () => {
        if (this.receivedSincePump >= PUMP_EVERY_OCTETS) this.pumpAll();
        this.scheduleFlush();
      },
      listenHosts: () => listenHosts(this.opts.listenAddress),
      log: (level, msg, peer) => this.log(level, msg, peer),
      remoteLog: this.remoteLog,
      sender: this.sender,
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
      await this.listener.listen(listenHosts(this.opts.listenAddress), this.opts.listenPort ?? 179, (s) => this.conns.accept(s));
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
    return this.listener.port;
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
    for (const p of this.peers.values()) p.gr.stopTimers();
    for (const p of this.peers.values()) this.shutPeer(p, o);
    await this.listener.close();
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
    const p: Peer = new Peer(o, address, coreId, this.newFsm(o), new GracefulRestart(
      {
        peerDown: (retainStale) => (retainStale ? this.rib.peerDown(p.coreId, { retainStale: true }) : this.rib.peerDown(p.coreId)),
        sweepStale: (f) => this.rib.sweepStale(p.coreId, f),
        enterLongLivedStale: (f) => this.rib.enterLongLivedStale(p.coreId, f),
        receivedPaths: () => this.rib.peerStats(p.coreId).received,
      },
      {
        stale: (e) => this.emit('stale', { peer: p.address, ...e } satisfies StaleEvent),
        log: (msg) => this.log('info', msg, p.address),
        changed: () => this.scheduleFlush(),
      },
      () => ({ enabled: this.opts.gracefulRestart ?? true, llgrOffered: this.llgrOffered(p), stalePathTime: this.opts.stalePathTime ?? DEFAULT_STALE_PATH_TIME_S }),
    ));
    this.peers.set(address, p);
    if (this.listener.listening) {
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
    const conn = ribConn(p);
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
        for (const f of s.families) this.sender.send(p, conn, { type: 'ROUTE-REFRESH', afi: f >> 8, safi: f & 0xff, subtype: 0 });
      } else if (this.rib.keepsReceived(p.coreId)) {
        this.rib.reimport(p.coreId);
        this.scheduleFlush();
      } else {
        this.feed(p, conn, { type: 'AutomaticStop', subcode: CeaseSubcode.OtherConfigurationChange, reason: 'import policy changed; the peer cannot refresh' });
      }
    }
    this.sender.schedulePump(p);
  }

  /** Remove a peer: Cease / Peer De-configured (RFC 4486 subcode 3); its routes leave the Loc-RIB. */
  removePeer(address: string): void {
    const p = this.peers.get(normalizeAddress(address));
    if (!p) throw new Error(`peer ${address} is not configured`);
    this.dropPeer(p, CeaseSubcode.PeerDeconfigured, 'peer de-configured');
  }

  private dropPeer(p: Peer, subcode: number, reason: string): void {
    p.removed = true;
    p.gr.dispose();
    for (const c of [...p.conns]) this.feed(p, c, { type: 'AutomaticStop', subcode, reason });
    for (const c of [...p.conns]) this.discard(p, c);
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
    this.rib.removePeer(p.coreId);
    if (this.listener.listening && p.opts.md5Key !== undefined) this.applyListenerMd5(p, null);
    this.peers.delete(p.address);
    this.scheduleFlush();
    this.checkDeferral();
  }

  /**
   * BFD says the forwarding path to this peer failed (RFC 5882 §4.3): end the session now with Cease / BFD Down
   * (RFC 9384) and keep none of its routes for graceful restart (a Cease we send flushes, see retainOnDown), nor
   * any still kept stale from an earlier session end. The best-path changes reach 'best' listeners before this
   * returns, so the caller can program the kernel in the same turn. False for an unknown peer.
   */
  endSessionForBfd(address: string, reason: string): boolean {
    const p = this.peers.get(normalizeAddress(address));
    if (!p) return false;
    for (const c of [...p.conns]) this.feed(p, c, { type: 'AutomaticStop', subcode: CeaseSubcode.BfdDown, reason });
    p.gr.sweepAll(reason);
    this.flush();
    return true;
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
      gracefulRestart: ribConn(p)?.session?.gracefulRestart != null,
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
    const c = ribConn(p) ?? p.primary;
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
      const conn = ribConn(p);
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
    return {
      local: { enabled, restartTime: Math.min(p.opts.restartTime ?? DEFAULT_RESTART_TIME_S, 4095), longLivedStaleTime: enabled && llst > 0 ? llst : null },
      peer: peerGrJson(s ?? p.gr.llgr.session),
      helper: p.gr.helperJson(() => this.rib.staleCount(p.coreId)),
      longLived: p.gr.llgr.json(),
      endOfRib: { received: received.map(familyNameOf), pending: pending.map(familyNameOf) },
    };
  }

  /** Our own graceful restart (RFC 4724 §4.1): the R bit, and whether our UPDATEs still wait for End-of-RIB. */
  localRestartJson(): LocalRestartJson {
    const waitingFor: string[] = [];
    if (this.deferring) {
      for (const p of this.peers.values()) {
        const gr = ribConn(p)?.session?.gracefulRestart;
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
        this.feed(p, c, { type: 'Update', message: msg });
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
          this.conns.connect(p, c);
          break;
        case 'close':
          this.conns.close(c);
          break;
        case 'send':
          if (silent && a.message.type === 'NOTIFICATION') break;
          this.sender.send(p, c, a.message);
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
          if (c.inRib) {
            const eor = isEndOfRib(a.message);
            if (eor) this.endOfRib(p, eor.afi, eor.safi);
            else {
              const timed = this.opts.onUpdateApplied;
              const t0 = timed ? performance.now() : 0;
              this.rib.applyUpdate(p.coreId, a.message);
              if (timed) timed((performance.now() - t0) / 1000);
            }
          }
          break;
        case 'routeRefresh': {
          const fam = familyKey(a.afi, a.safi);
          if (a.subtype === 0) this.rib.routeRefresh(p.coreId, a.afi, a.safi);
          else if (a.subtype === 1) this.rib.markStale(p.coreId, fam);
          else if (a.subtype === 2) this.rib.sweepStale(p.coreId, fam);
          this.sender.schedulePump(p);
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
    p.gr.up(s);
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
    this.sender.schedulePump(p);
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
      p.gr.down(c.session, { reason: a.reason, ...(a.notification ? { notification: a.notification } : {}), mayRetain: this.running && !p.removed });
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
      const gr = ribConn(p)?.session?.gracefulRestart;
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
    for (const p of this.peers.values()) this.sender.schedulePump(p);
  }

  /** We announced LLGR to this peer (and so act as its LLGR helper). */
  private llgrOffered(p: Peer): boolean {
    return (this.opts.gracefulRestart ?? true) && (p.opts.longLivedStaleTime ?? 0) > 0;
  }

  private endOfRib(p: Peer, afi: number, safi: number): void {
    const f = familyKey(afi, safi);
    p.eorPending.delete(f);
    p.gr.endOfRib(f);
    this.emit('endOfRib', { peer: p.address, afi, safi } satisfies EndOfRibEvent);
    this.checkDeferral();
  }

  /** Families of a peer whose routes are stale now (familyKey values). */
  staleFamilies(address: string): number[] {
    return [...(this.peers.get(normalizeAddress(address))?.gr.stale ?? [])];
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
    this.conns.close(c);
    c.dead = true;
    const i = p.conns.indexOf(c);
    if (i >= 0) p.conns.splice(i, 1);
    this.armTimer(p);
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
    for (const p of this.peers.values()) this.sender.pump(p);
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
    this.listener.setMd5(p.address, key);
  }

  private applyListenerTtl(o: PeerOptions): void {
    this.listener.useGtsm(o.ttlSecurity);
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, peer?: string): void {
    this.emit('log', peer !== undefined ? { level, msg, peer } : { level, msg });
  }
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

