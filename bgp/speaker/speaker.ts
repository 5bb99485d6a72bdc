// The BGP speaker: the peer lifecycle around the Sans-IO session machine
// (session/fsm.ts) and the route-processing core (rib/core.ts). All protocol
// decisions live there; this file adds and removes peers, turns messages and
// operator calls into FSM events and answers the views; actions.ts carries out what the FSM says.
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
//   side is one machine per peer (graceful-restart.ts), the restarting side's
//   deferral deferral.ts's. The FSM's actions, with Established's entry (peer into the RIB) and exit (graceful
//   restart decides what stays) are actions.ts's. What we offer in OPEN is session.ts's, what a
//   configuration change means reconfigure.ts's, maximum prefixes
//   max-prefixes.ts's, and the JSON views views.ts's.
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
import type { PeerConfig } from '../rib/core.js';
import type { SessionFsm } from '../session/fsm.js';
import { liftDamping } from './path-up.js';
import type { FsmAction, FsmEvent } from '../session/fsm.js';
import { CeaseSubcode } from '../wire/constants.js';
import { parseIpv4 } from '../wire/prefix.js';
import type { Message, PathAttributes, UpdateMessage } from '../wire/types.js';
import { familyNameOf, normalizeAddress } from './config.js';
import type { PeerOptions, SpeakerOptions } from './config.js';
import type { LocalRestartJson, PeerJson, RouteJson } from './json.js';
import { emitBest, trackBestListeners } from './best.js';
import { warmUp } from './warm.js';
import { ReadSlices } from './read-slices.js';
import { DEFAULT_SELECTION_DEFERRAL_S, SelectionDeferral } from './deferral.js';
import { DEFAULT_STALE_PATH_TIME_S, GracefulRestart } from './graceful-restart.js';
import { checkPrefixLimits, prefixLimitsOf } from './max-prefixes.js';
import { Peer, ribConn } from './peer.js';
import type { Connection } from './peer.js';
import { corePeerConfig, peerChange } from './reconfigure.js';
import { Sender } from './sender.js';
import { collision, newSessionFsm } from './session.js';
import { Connections } from './connection.js';
import { Actions } from './actions.js';
import { Listener, listenHosts } from './listener.js';
import { parsePrefixText, prefixText } from './text.js';
import { countReceived } from './stats.js';
import { PeerTimers } from './peer-timer.js';
import { refreshImports } from './route-refresh.js';
import { StallWatch } from './stall.js';
import { LogRateLimit } from './rate-limit.js';
import type { StallEvent } from './stall.js';
import type { PeerInfo, StaleEvent, StopOptions } from './types.js';
import { peerInfoOf, peerJsonOf, routesJsonOf, sessionDetailsOf } from './views.js';

/** How long one turn may spend handing out best-path changes (RibCore.drainBest). */
const BEST_DRAIN_MS = 10;
/**
 * How long a slice of a whole-table walk (bgp/rib/walker.ts: a peer going down, a sweep, a refresh) may run. It runs
 * in the same turn as the best-path drain and the daemon's own slices (its best-path queue, the FIB writer's pump
 * and replies), and a turn is what the event loop's delay measures: with 10 ms walker slices the turns while a peer
 * holding 1M routes went down were 30-80 ms (issue 16). Shorter slices also keep the walk's output near what the
 * next stages take per turn: at 10 ms the daemon's queue of best-path changes grew to ~700k, which the young
 * generation's scavenges then copied.
 */
const WALK_SLICE_MS = 4;
/** ...and the keys a walk's slice visits before it reads the clock at all (the walker's default, 4096, is ~12 ms of a
 *  peer going down on this kind of machine) */
const WALK_MIN_KEYS = 1024;
/**
 * Received UPDATE octets after which the peers are pumped without waiting for
 * the end of the event-loop turn. One turn can read megabytes from a fast
 * peer (libuv reads a ready socket many times per poll), and without this the
 * outbound queues would hold a whole table before the first byte goes out:
 * memory for the queue index, and a reflected table sent only after it was
 * all received. ~50k IPv4 prefixes.
 */
const PUMP_EVERY_OCTETS = 256 * 1024;

const clock = { now: (): number => performance.now() };

/** whether this process ran the route path's warm-up yet (warm.ts; once, at the first start()) */
let warmedUp = false;

/**
 * Events:
 * - 'peer' (PeerStateEvent): a peer's shown state changed;
 * - 'best' (BestEvent[]): best paths changed, coalesced per event-loop turn, for the FIB;
 * - 'bestBatch' (BestBatch): the same without an object per change (rib/change-queue.ts), for the daemon;
 * - 'bestLive' (BestBatch): as 'bestBatch', but a listener gets the changes from when it joined, not the whole table;
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
  /** the same peers by core id (the members of an update group are core ids: sender.ts) */
  private readonly byCore = new Map<number, Peer>();
  /** one listener per listen address (bindMode NodeIP on a dual-stack node: both node addresses) */
  private readonly listener = new Listener((level, msg, peer) => this.log(level, msg, peer));
  /** sockets: accept, dial, attach, close, receive */
  private readonly conns: Connections;
  /** the FSM's actions carried out, Established's entry and exit among them (actions.ts) */
  private readonly actions: Actions;
  private running = false;
  private flushScheduled = false;
  /** UPDATE octets received since the peers were last pumped (see PUMP_EVERY_OCTETS) */
  private receivedSincePump = 0;
  private readonly opts: SpeakerOptions;
  private readonly sender: Sender;
  /** RFC 4724 §4.1: the R bit goes into our OPENs until restartComplete() */
  private restarting: boolean;
  /** RFC 4724 §4.1: our UPDATEs wait for every peer's End-of-RIB after a restart (deferral.ts) */
  private readonly deferral: SelectionDeferral;
  /** log lines a remote party can cause, limited per (source, kind); suppressedByKind feeds /metrics */
  readonly remoteLog: LogRateLimit;
  /** one timer per peer (peer-timer.ts); process stalls seen through late timers (stall.ts) */
  private readonly timers = new PeerTimers({
    clock,
    stalls: new StallWatch((ms) => {
      this.log('warn', `this process stalled for ${Math.round(ms)} ms (timers ran late): no peer is blamed for it; hold timers that fell due meanwhile were extended`);
      this.emit('stall', { ms } satisfies StallEvent);
    }),
    run: (p, c, actions) => this.actions.run(p, c, actions, false),
    log: (level, msg, peer) => this.log(level, msg, peer),
    ticked: () => this.scheduleFlush(),
  });

  constructor(opts: SpeakerOptions) {
    super();
    this.opts = opts;
    this.remoteLog = opts.remoteLog ?? new LogRateLimit();
    this.restarting = opts.restarting ?? false;
    this.deferral = new SelectionDeferral(this.restarting && (opts.gracefulRestart ?? true), {
      peers: () => this.peers.values(),
      log: (msg) => this.log('info', msg),
      ended: () => {
        for (const p of this.peers.values()) this.sender.schedulePump(p);
      },
    });
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
      walk: { sliceMs: WALK_SLICE_MS, minPerSlice: WALK_MIN_KEYS },
      // peers with the same export share one Adj-RIB-Out, queue and encoding (bgp/rib/update-group.ts)
      updateGroups: opts.updateGroups ?? true,
      // a next hop resolved through another BGP route (bgp/rib/recursive.ts) may have moved: the FIB looks again
      onRecursiveMoved: () => this.emit('nexthops'),
    });
    this.sender = new Sender(
      {
        rib: this.rib,
        deferring: () => this.deferral.active,
        log: (level, msg, peer) => this.log(level, msg, peer),
        remoteLog: this.remoteLog,
        run: (p, c, actions) => this.actions.run(p, c, actions, false),
        peerByCore: (id) => this.byCore.get(id),
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
    }, new ReadSlices(opts.readSliceMs));
    this.actions = new Actions({
      rib: this.rib,
      opts,
      conns: this.conns,
      sender: this.sender,
      timers: this.timers,
      deferral: this.deferral,
      running: () => this.running,
      coreConfig: (p, c) => this.coreConfig(p.opts, p.address, c),
      scheduleFlush: () => this.scheduleFlush(),
      emit: (event, payload) => this.emit(event, payload),
    });
    this.rib.setNextHopCheck((nh) => this.nextHops.check(nh));
    trackBestListeners(this, this.rib); // best-path changes are recorded only while someone listens (best.ts)
    for (const p of opts.peers ?? []) this.addPeer(p);
  }

  // ------------------------------------------------------------------ life cycle

  /** Listen (unless listenAddress is null) and start every peer. */
  async start(): Promise<void> {
    if (this.running) return;
    if (this.opts.warmUp === true && !warmedUp) {
      // once per process, before the first session: the route path compiled before the first table (warm.ts)
      warmedUp = true;
      try {
        warmUp();
      } catch (e) {
        this.log('warn', `warm-up failed (the first table is then handled by unoptimised code): ${String(e)}`);
      }
    }
    if (this.opts.listenAddress !== null) {
      await this.listener.listen(listenHosts(this.opts.listenAddress), this.opts.listenPort ?? 179, (s) => this.conns.accept(s));
      for (const p of this.peers.values()) {
        this.applyListenerMd5(p, p.opts.md5Key ?? null);
        this.applyListenerTtl(p.opts);
      }
    }
    this.running = true;
    this.deferral.start(this.opts.selectionDeferralTime ?? DEFAULT_SELECTION_DEFERRAL_S);
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
    this.deferral.stop();
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
    this.byCore.set(coreId, p);
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
    const change = peerChange(p.opts, o);
    if (change.session) {
      this.dropPeer(p, CeaseSubcode.OtherConfigurationChange, 'configuration changed');
      this.addPeer(o);
      return;
    }
    p.opts = o;
    if (p.heldUntil > Date.now() && change.limitChanged) {
      // held down for maximum prefixes: a new limit is a new chance (RFC 4486 §4 leaves the restart to configuration)
      p.heldUntil = 0;
      if (this.running) this.feed(p, p.primary, { type: 'ManualStart' });
    }
    const conn = ribConn(p);
    this.rib.updatePeer(p.coreId, this.coreConfig(o, address, conn));
    if (!conn) return;
    if (change.exportChanged) this.rib.refreshExports(p.coreId);
    if (change.importChanged) {
      refreshImports(p, conn, {
        rib: this.rib,
        sender: this.sender,
        changed: () => this.scheduleFlush(),
        reset: (subcode, reason) => this.feed(p, conn, { type: 'AutomaticStop', subcode, reason }),
      });
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
    for (const c of [...p.conns]) this.actions.discard(p, c);
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
    this.rib.removePeer(p.coreId);
    this.byCore.delete(p.coreId);
    if (this.listener.listening && p.opts.md5Key !== undefined) this.applyListenerMd5(p, null);
    this.peers.delete(p.address);
    this.scheduleFlush();
    this.deferral.check();
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
    // An Idle connection has no session to end, and AutomaticStop in Idle cancels its pending IdleHoldTimer
    // (bgp/session/fsm.ts, so that a stopped peer stays stopped): a BFD flap while the session was damped left it
    // Idle with no timer, the BFD Up then found no damped restart to lift (path-up.ts), and the session never came
    // back (the failover bench under load, issue 18). Its damped restart stays; the BFD Up lifts it.
    for (const c of [...p.conns]) if (c.fsm.state !== 'Idle') this.feed(p, c, { type: 'AutomaticStop', subcode: CeaseSubcode.BfdDown, reason });
    p.gr.sweepAll(reason);
    this.flush();
    return true;
  }

  /** BFD says the path to this peer is up (path-up.ts): damped restarts happen now. False for an unknown peer. */
  pathUp(address: string): boolean {
    const p = this.peers.get(normalizeAddress(address));
    if (!p) return false;
    liftDamping(p, (c, e) => this.feed(p, c, e));
    return true;
  }

  /**
   * RFC 8326 graceful shutdown on (off): every route we advertise gets (loses) GRACEFUL_SHUTDOWN, and LOCAL_PREF 0 to
   * iBGP (RibCore.setDraining). The re-made exports are queued for every Established peer at once, so all of them
   * are pumped now, not only the next peer that happens to have other work.
   */
  setDraining(on: boolean): void {
    this.rib.setDraining(on);
    this.scheduleFlush();
  }

  peerAddresses(): string[] {
    return [...this.peers.keys()];
  }

  /** A peer's shown state and the serial number of its primary connection (changes when the session is replaced). */
  peerInfo(address: string): PeerInfo | null {
    const p = this.peers.get(normalizeAddress(address));
    return p ? peerInfoOf(p) : null;
  }

  /**
   * What `birdc show protocols all` shows of a session beyond its state: the local end of the connection, the
   * timers (configured and negotiated, RFC 4271 §4.2), the peer's BGP identifier and the negotiated capabilities.
   * Session fields are absent while there is no session.
   */
  sessionDetails(address: string): Record<string, unknown> | null {
    const p = this.peers.get(normalizeAddress(address));
    return p ? sessionDetailsOf(p, this.opts) : null;
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
    return { peers: [...this.peers.values()].map((p) => peerJsonOf(p, this.rib, this.opts, this.localAsn)) };
  }

  /** Our own graceful restart (RFC 4724 §4.1): the R bit, and whether our UPDATEs still wait for End-of-RIB. */
  localRestartJson(): LocalRestartJson {
    return this.deferral.json(this.restarting);
  }

  /** The Loc-RIB (or one prefix of it) as plain data, with the reason each path won or lost (no FIB state). */
  routesJson(prefix?: string): { routes: RouteJson[] } {
    return routesJsonOf(this.rib, prefix);
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

  /** A message from the peer becomes an FSM event, counted first (stats.ts). */
  private handleMessage(p: Peer, c: Connection, msg: Message): void {
    countReceived(p, msg, this.remoteLog, (line) => this.log('warn', line, p.address));
    switch (msg.type) {
      case 'OPEN':
        if (this.collision(p, c, msg.bgpId)) return;
        this.feed(p, c, { type: 'Open', open: msg });
        return;
      case 'UPDATE':
        // decided before the UPDATE is applied: one that would cross the limit is not taken at all
        if (p.opts.maxPrefixes && c.inRib && this.overPrefixLimit(p, c, msg)) return;
        this.feed(p, c, { type: 'Update', message: msg });
        return;
      case 'NOTIFICATION':
        this.feed(p, c, { type: 'Notification', message: msg });
        return;
      case 'KEEPALIVE':
        this.feed(p, c, { type: 'Keepalive' });
        return;
      case 'ROUTE-REFRESH':
        this.feed(p, c, { type: 'RouteRefresh', afi: msg.afi, safi: msg.safi, subtype: msg.subtype });
        return;
    }
  }

  /** Maximum prefixes (RFC 4486 §4, max-prefixes.ts): an UPDATE that would cross a family's limit closes every connection. */
  private overPrefixLimit(p: Peer, c: Connection, u: UpdateMessage): boolean {
    // no limit configured: skip the count, which looks up every announced prefix in the Loc-RIB
    if (!p.opts.maxPrefixes) return false;
    const hit = checkPrefixLimits(p, this.rib.countsAfterUpdate(p.coreId, u, prefixLimitsOf(p)), (level, msg) => this.log(level, msg, p.address));
    if (!hit) return false;
    const { family, count, limit, data, restart } = hit;
    for (const x of [...p.conns]) {
      this.feed(p, x, {
        type: 'AutomaticStop',
        subcode: CeaseSubcode.MaximumPrefixesReached,
        reason: `maximum ${familyNameOf(family)} prefixes exceeded (${count} > ${limit})`,
        ...(x === c ? { data } : {}),
        idleHold: x === p.primary ? (restart ?? null) : null,
      });
    }
    return true;
  }

  /** RFC 4271 §6.8 (session.ts collision): true when this connection lost (its OPEN goes no further). */
  private collision(p: Peer, c: Connection, remoteId: number): boolean {
    const r = collision(p, c, remoteId, this.routerId, this.localAsn);
    if (!r) return false;
    const { loser, winner } = r;
    if (loser === p.primary) this.actions.promote(p, winner);
    this.feed(p, loser, { type: 'OpenCollisionDump' });
    this.actions.discard(p, loser);
    return loser === c;
  }

  // ------------------------------------------------------------------ the FSM

  private newFsm(o: PeerOptions): SessionFsm {
    return newSessionFsm(o, { opts: this.opts, localAsn: this.localAsn, routerId: this.routerId, restarting: () => this.restarting, clock });
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
    this.actions.run(p, c, actions, o.silent ?? false);
  }

  // ------------------------------------------------------------------ graceful restart, helper side (RFC 4724 §4.2)

  /** Say that our own restart is over: OPENs from now on carry R=0 (RFC 4724 §4.1). */
  restartComplete(): void {
    this.restarting = false;
    this.deferral.end('restart complete');
  }

  /** Best-path changes made and not yet handed to the 'best' listeners (they go out a slice per turn). */
  get pendingBestChanges(): number {
    return this.rib.pendingBestChanges;
  }

  /** Still holding our UPDATEs back after a restart (RFC 4724 §4.1)? */
  get deferringUpdates(): boolean {
    return this.deferral.active;
  }

  /** We announced LLGR to this peer (and so act as its LLGR helper). */
  private llgrOffered(p: Peer): boolean {
    return (this.opts.gracefulRestart ?? true) && (p.opts.longLivedStaleTime ?? 0) > 0;
  }

  /** Families of a peer whose routes are stale now (familyKey values). */
  staleFamilies(address: string): number[] {
    return [...(this.peers.get(normalizeAddress(address))?.gr.stale ?? [])];
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
    const changes = this.rib.drainBest(BEST_DRAIN_MS);
    if (changes.length > 0) emitBest(this, changes);
    if (this.rib.pendingBestChanges > 0) this.scheduleFlush();
    this.pumpAll();
  }

  /** Let every Established peer send what is queued (the socket pushes back through pump's own checks). */
  private pumpAll(): void {
    this.receivedSincePump = 0;
    this.sender.pumpAll();
  }

  // ------------------------------------------------------------------ core glue

  /**
   * What this host reaches without BGP, and its own addresses (the daemon reads them from the kernel); null: stop
   * checking resolution. Paths whose next hop became unresolvable lose their place in the decision (RFC 4271
   * §9.1.2), and ones that became resolvable regain it; returns the number of prefixes re-decided.
   */
  setReachability(r: Reachability | null): number {
    const n = this.rib.recheckNextHops(this.nextHops.setReachability(r));
    if (n > 0) this.scheduleFlush();
    return n;
  }

  /**
   * A few of the host's routes came or went since the last view (texts as in Reachability.routes; the addresses
   * unchanged): NextHopTable.applyRoutes, then the same re-check. Nothing happens before a first view was given.
   */
  changeReachability(added: readonly string[], removed: readonly string[]): number {
    if (!this.nextHops.resolving) return 0;
    const n = this.rib.recheckNextHops(this.nextHops.applyRoutes(added, removed));
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

  /** The core's view of a peer (reconfigure.ts); our end of a session's connection is one of our addresses. */
  private coreConfig(o: PeerOptions, address: string, c: Connection | null): PeerConfig {
    const local = c?.socket?.localAddress !== undefined ? normalizeAddress(c.socket.localAddress) : undefined;
    this.noteOwnAddress(local);
    return corePeerConfig(o, address, local, this.opts);
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
