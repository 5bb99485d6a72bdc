// skeind's core: wires the datastore, the node controller, the BGP speaker and the FIB programmer, and serves
// the control socket and /metrics. src/skeind.ts is only the command line and the signals around a Daemon, so a
// Daemon can run in-process in a test (everything but the kernel parts, which need a namespace).
//
// Start-up order, so that a restart never empties the kernel table (CONTRACT: "What lands in the kernel"):
//   1. fib.start(): dump the kernel and adopt skein's routes already there; nothing is removed.
//   2. the datastore's first snapshot: the controller derives peers and originations; the speaker starts
//      listening and dialling; blackholes and device routes are written (once the ClusterInformation gate is
//      open), and every best-path change from the speaker follows.
//   3. when every start-up peer is Established and has sent its routes — its End-of-RIB for every family (RFC 4724
//      §4.1), or, for a peer without graceful restart, 1 s of quiet — or a deadline passes, fib.markSynced()
//      sweeps the adopted routes nobody asked for again. Only then is the FIB "reconciled".
// Graceful restart (RFC 4724): when skein routes were adopted at start, this is a restart: the speaker's OPENs
// carry the R bit until the FIB is reconciled, and the F bit whenever the FIB is on (our routes outlive us), so
// peers keep our routes while we are away. A clean stop therefore ends sessions without a NOTIFICATION.
// Later datastore changes are applied as the controller's diffs: only what changed is touched.
import { BindError, bindAs } from './daemon/bind.js';
import { ListMemory } from './daemon/memory.js';
import { readFileSync } from 'node:fs';
import {
  LogRateLimit, Speaker, sdNotify, type BestEvent, type PeerOptions, type PeerStateEvent,
  type PeerJson as SpeakerPeerJson,
} from '../bgp/index.js';
import {
  loadDaemonConfig, openDatastore, resolvePassword, type ChangeEvent, type DaemonConfig, type Datastore,
  type DatastoreStatus, type Issue, type Model,
} from '../config/index.js';
import { Programmer, formatAddress, type RouteView } from '../fib/index.js';
import { ControlError, ControlServer } from './control/index.js';
import { resolveGroup } from './control/group.js';
import type { FibEntryJson, FibJson, FibRouteJson, PeerJson, PeerStateName, PeerType, PolicyVerdictJson, ReloadJson, RouteJson, StatusJson } from './ctl/types.js';
import {
  BIRD_INT_MAX, DEFAULT_NORMAL_ROUTE_PRIORITY, DESCRIPTIVE_PEER_FIELDS, NodeController, kernelMetricOf, kernelPolicy, type ControllerDiff,
  type DesiredPeer, type Origination,
} from './controller/index.js';
import { StartConfigError, checkCapabilities } from './daemon/capabilities.js';
import { originationAttributes, peerOptionsFor, prefixBytes, sortByPrefix, speakerIdentity, type SpeakerIdentity } from './daemon/mapping.js';
import { RouteTable } from './daemon/routes.js';
import { BfdWiring } from './daemon/bfd.js';
import { PolicyWiring, RULE_KINDS } from './daemon/policy.js';
import { MigrationWatcher } from './daemon/migration.js';
import { KernelReachability } from './daemon/reachability.js';
import { contractPath, parseRouteQuery, routesStream } from './daemon/route-query.js';
import { RuntimeStats } from './daemon/runtime.js';
import { WatchHub } from './daemon/watch.js';
import type { ControlStream } from './control/stream.js';
import { LoopMonitor, ReadinessGate, startHttpServer, type HttpEndpoint } from './http.js';
import { createLogger, parseLogLevel, type Logger, type LogLevel } from './log.js';
import { Metrics, PEER_STATES, type FibRouteCounts, type PeerState } from './metrics.js';

export { peerOptionsFor, originationAttributes, routerIdFor, speakerIdentity, addressBytes, prefixBytes, sortByPrefix, bgpTarget } from './daemon/mapping.js';
export { RouteTable } from './daemon/routes.js';

export const VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
})();

/** How long start-up waits for peers before sweeping the FIB anyway (unless a peer's restart time is longer). */
const DEFAULT_SYNC_DEADLINE_MS = 30_000;
const MAX_SYNC_DEADLINE_MS = 300_000;
/**
 * The speaker reports no End-of-RIB yet, so a peer counts as having sent its table once it is Established and no
 * best-path change arrived for this long (a mesh peer's table comes in the first few UPDATEs after OPEN).
 */
const PEER_QUIET_MS = 1000;
/**
 * A route that has been failing (refused by the kernel, or waiting for an interface that does not exist) for this
 * long is a persistent failure: /readyz, `skeinctl status` and skein_fib_persistent_failures show it. fib/ retries
 * with back-off meanwhile; a failure that clears within this time was a transient one (a pod's veth being created).
 */
const PERSISTENT_FIB_MS = 10_000;

/** Kinds that can change the speaker's identity or the log level (speakerIdentity, #applyLogSeverity). */
const IDENTITY_KINDS: ReadonlySet<string> = new Set(['Node', 'BGPConfiguration']);
/** Kinds the kernel policy reads (src/controller/kernel.ts). */
const POLICY_KINDS: ReadonlySet<string> = new Set(['Node', 'BGPConfiguration', 'IPPool']);

function diffIsEmpty(d: ControllerDiff): boolean {
  const empty = (x: { added: unknown[]; changed: unknown[]; removed: unknown[] }): boolean => x.added.length === 0 && x.changed.length === 0 && x.removed.length === 0;
  return d.ready === undefined && empty(d.peers) && empty(d.announce) && empty(d.blackholes) && empty(d.deviceRoutes);
}

export interface DaemonOptions {
  /** log sink (tests collect lines); default stdout */
  logSink?: (line: string) => void;
  /** the environment for sd_notify and skein.yaml overrides; default process.env */
  env?: NodeJS.ProcessEnv;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class Daemon {
  cfg: DaemonConfig;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly readiness: ReadinessGate;
  readonly controller: NodeController;
  /** routing policy (BGPFilter, the export allow-list): src/daemon/policy.ts */
  readonly policy: PolicyWiring;
  readonly routes: RouteTable;
  /** BFD for BGP sessions (src/daemon/bfd.ts) */
  readonly bfd: BfdWiring;
  readonly fib: Programmer | undefined;
  speaker: Speaker | undefined;
  identity: SpeakerIdentity | undefined;
  #ds: Datastore | undefined;
  #http: HttpEndpoint | undefined;
  #control: ControlServer | undefined;
  readonly #monitor = new LoopMonitor();
  #runtime: RuntimeStats | undefined;
  /** `skeinctl watch` subscribers (src/daemon/watch.ts) */
  readonly watch = new WatchHub();
  readonly #env: NodeJS.ProcessEnv;
  /** peer operations (password reads are async) run one after another, in the order the diffs came */
  #queue: Promise<void> = Promise.resolve();
  #pendingEvents: ChangeEvent[] = [];
  #eventsScheduled = false;
  /** the first snapshot is applied: change events can be diffed */
  #live = false;
  /** datastoreReady has been true once: from then on a false means freeze, not withdraw */
  #everReady = false;
  /** changes held back while the datastore is frozen (datastoreReady false at run time), in arrival order */
  #frozenEvents: ChangeEvent[] | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #resolveFinished!: () => void;
  /** resolves when the daemon has stopped, whoever stopped it (a signal, a fatal error) */
  readonly finished: Promise<void> = new Promise((r) => { this.#resolveFinished = r; });
  #notifiedReady = false;
  #fibSynced = false;
  /** next-hop reachability from the kernel (only with a FIB) */
  #reach: KernelReachability | undefined;
  #syncTimer: NodeJS.Timeout | undefined;
  #syncPoll: NodeJS.Timeout | undefined;
  #syncDeadline = 0;
  #lastBestAt = 0;
  /** skein routes were found in the kernel at start: a restart (RFC 4724 §4.1 R bit until the FIB is reconciled) */
  #restarting = false;
  /** start-up peers still to be heard from, with the time each became Established (0: not yet) */
  readonly #startupPeers = new Map<string, number>();
  #configuredLevel: LogLevel;
  #counterSnapshot = new Map<string, Record<string, number>>();
  #metricsTimer: NodeJS.Timeout | undefined;
  /** live migration: watches target interfaces for the VM's announcement, wakes TimeWait ends */
  readonly #migration: MigrationWatcher;
  /** a learned path with LOCAL_PREF above this (per family) overrides a local workload route: an elevated one */
  #overrideAbove = { 4: BIRD_INT_MAX - DEFAULT_NORMAL_ROUTE_PRIORITY, 6: BIRD_INT_MAX - DEFAULT_NORMAL_ROUTE_PRIORITY };
  /** until READY=1: re-states what the start waits for in systemd's STATUS= and the log whenever it changes */
  #waitTimer: NodeJS.Timeout | undefined;
  #lastWait = '';
  /** prefix -> when it was first seen failing (sampled with the metrics) */
  readonly #failingSince = new Map<string, number>();

  constructor(cfg: DaemonConfig, o: DaemonOptions = {}) {
    this.cfg = cfg;
    this.#env = o.env ?? process.env;
    this.#configuredLevel = parseLogLevel(cfg.log.level) ?? 'info';
    this.log = createLogger({ level: this.#configuredLevel, fields: { node: cfg.nodeName }, ...(o.logSink ? { sink: o.logSink } : {}) });
    this.metrics = new Metrics({ peerDetail: cfg.metrics.peerDetail, version: VERSION });
    this.readiness = new ReadinessGate({ fibEnabled: cfg.fib.enabled });
    this.controller = new NodeController(cfg.nodeName);
    this.policy = new PolicyWiring((msg, fields) => this.log.warn(msg, fields));
    this.fib = cfg.fib.enabled ? new Programmer({ table: cfg.fib.table, protocol: cfg.fib.protocol }) : undefined;
    this.routes = new RouteTable(this.fib);
    this.#migration = new MigrationWatcher(this.log,
      (id) => this.#applyMigration(this.controller.migrationAnnounced(id)),
      () => this.#applyMigration(this.controller.migrationTick()));
    this.metrics.fibRoutesSource(() => this.#fibCounts());
    // A live migration's target announces the VM's route above the normal priority: it beats the local route and is
    // written at 2^31-1 minus its LOCAL_PREF (confd's SetMetricForBGPRoutes).
    this.routes.elevation = (ev) => {
      const lp = ev.attributes?.localPref;
      return lp !== undefined && lp > this.#overrideAbove[ev.afi === 2 ? 6 : 4] ? BIRD_INT_MAX - lp : undefined;
    };
    // Every learned route goes into the kernel at the metric Calico's BIRD gives it: 2^31-1 minus LOCAL_PREF (1024
    // for an ordinary mesh route; confd's SetMetricForBGPRoutes, with Calico's BIRD leaving the kernel protocol's
    // own metric at 0).
    this.routes.learnedMetric = (ev) => kernelMetricOf(ev.attributes?.localPref);
    this.bfd = new BfdWiring({
      log: this.log.child({ component: 'bfd' }),
      nodeName: cfg.nodeName,
      model: () => this.#ds?.model,
      peers: () => this.controller.state.peers.map((p) => p.address),
      // RFC 5882 §4.3: the path is gone. The session ends without graceful-restart retention, its withdrawals are
      // handed over synchronously, and the kernel is written in this same turn (docs/contract.md, "BFD").
      onDown: (peer, reason) => {
        if (this.#stopping) return;
        this.speaker?.endSessionForBfd(peer, `BFD down: ${reason}`);
        // the route table queues best-path changes in 10 ms slices: apply what is queued before writing
        this.routes.drain();
        this.fib?.writeNow();
      },
    });
    this.metrics.bfdSource(() => this.bfd.sessions().map((s) => ({ peer: s.key.peer, state: s.state, downCount: s.downCount })));
    this.routes.onWrite = (prefix, r) => {
      if (this.watch.active) this.watch.publish('fib', r ? { prefix, action: 'set', kind: r.kind, nextHops: r.nextHops, ...(r.dev !== undefined ? { dev: r.dev } : {}) } : { prefix, action: 'remove' });
    };
  }

  // ------------------------------------------------------------------ life cycle

  /** Starts everything that does not wait for the datastore. Rejects on a local failure (socket in use, netlink). */
  async start(): Promise<void> {
    const log = this.log;
    log.info('skeind starting', { version: VERSION, config: this.cfg.file, datastore: this.cfg.datastore.type, fib: this.cfg.fib.enabled });
    // Deployment checks before anything is opened: no restart fixes these, so skeind exits 2 (StartConfigError).
    checkCapabilities(this.cfg);
    let gid: number | undefined;
    if (this.cfg.control.group !== undefined) {
      try {
        gid = await resolveGroup(this.cfg.control.group);
      } catch (e) {
        throw new StartConfigError(`${this.cfg.file}: control.group: ${(e as Error).message} (create it, e.g. \`groupadd --system ${String(this.cfg.control.group)}\`, or remove control.group)`, { cause: e });
      }
    }
    this.#monitor.start();
    this.#runtime = new RuntimeStats(this.metrics.registry);
    this.readiness.onChange((r) => {
      this.metrics.ready(r.ready);
      log.info(r.ready ? 'ready' : 'not ready', r.ready ? {} : { missing: r.missing });
      if (r.started && !this.#notifiedReady) {
        this.#notifiedReady = true;
        clearInterval(this.#waitTimer);
        this.#notify(`READY=1\nSTATUS=${r.ready ? 'ready' : `running; not ready: ${r.missing.join('; ')}`}`);
      } else if (this.#notifiedReady) {
        this.#notify(`STATUS=${r.ready ? 'ready' : `not ready: ${r.missing.join('; ')}`}`);
      }
    });
    // While starting, say what the start waits for (the datastore, the FIB sweep, which peers), in systemd's
    // STATUS= (`systemctl status skein`) and in the log, each time that changes.
    this.#notify('STATUS=starting');
    this.#waitTimer = setInterval(() => this.#reportWait(), 1000);
    this.#waitTimer.unref();
    if (this.cfg.metrics.listen) {
      const { host, port } = this.cfg.metrics.listen;
      const listen = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
      this.#http = await bindAs('metrics.listen', listen, () => startHttpServer({
        listen,
        metrics: this.metrics,
        readiness: () => this.readiness.check(),
        liveness: () => this.#monitor.check(),
        log,
      }));
    }
    const control = new ControlServer({ path: this.cfg.control.socket, log, ...(gid !== undefined ? { group: gid } : {}) });
    control
      .handle('status', () => this.status())
      .handle('peers', () => ({ peers: this.peers() }))
      .handle('routes', (p) => this.routesStream(p))
      .handle('fib', () => this.fibJson())
      .handle('bfd', () => this.bfd.json())
      .handle('reload', () => this.reload())
      .handle('watch', (p) => this.watch.stream(p))
      .handle('runtime', (p) => this.#runtime?.json({ reset: p.reset === true, control: control.stats }));
    await bindAs('control.socket', this.cfg.control.socket, () => control.listen());
    this.#control = control;

    if (this.fib) {
      const fib = this.fib;
      fib.on('failure', (v: RouteView) => {
        if (v.failure) this.metrics.fibFailure(v.failure.code);
        this.watch.publish('fib-failure', { prefix: fmtPrefix(v), code: v.failure?.code, reason: v.failure?.message, attempts: v.failure?.attempts });
        log.warn('kernel refused a route', { prefix: fmtPrefix(v), code: v.failure?.code, reason: v.failure?.message, attempts: v.failure?.attempts });
      });
      fib.on('batch', (b) => {
        this.metrics.fibProgrammed(b.latencySeconds);
        this.watch.publish('fib-batch', { ...b });
      });
      fib.on('warning', (e: Error) => log.warn('fib', { err: e }));
      fib.on('resync', (reason: string) => log.debug('fib resync', { reason }));
      fib.on('overrun', (which: string) => log.warn('netlink socket overrun; resyncing', { socket: which }));
      await fib.start();
      const st = fib.stats();
      this.#restarting = st.stale > 0;
      log.info('fib started: routes already in the kernel were adopted', { adopted: st.stale, table: this.cfg.fib.table, protocol: this.cfg.fib.protocol });
      // Next-hop resolution (RFC 4271 §9.1.2) against the kernel's non-BGP routes, read before the speaker starts.
      this.#reach = new KernelReachability({
        onChange: (r) => {
          const n = this.speaker?.setReachability(r) ?? 0;
          log.info('next-hop reachability read from the kernel', { routes: r.routes.length, addresses: r.addresses.length, prefixesRedecided: n });
        },
        onError: (e) => log.warn('cannot read next-hop reachability from the kernel; keeping the last view', { err: e }),
      });
      await this.#reach.start();
    }
    this.#metricsTimer = setInterval(() => this.#sampleMetrics(), 5000);
    this.#metricsTimer.unref();

    const ds = openDatastore(this.cfg.datastore, this.cfg.nodeName);
    this.#ds = ds;
    ds.on('status', (s) => this.#onStatus(s));
    ds.on('invalid', (i: Issue) => {
      this.metrics.datastoreRejected(i.kind ?? 'unknown');
      log[i.severity === 'error' ? 'warn' : 'info']('datastore record', { source: i.source, line: i.line, field: i.field, reason: i.reason, kind: i.kind, name: i.name, severity: i.severity });
    });
    ds.on('snapshot', (m) => {
      this.#onSnapshot(m).then(() => this.#listMemory.listed(), (e: unknown) => this.#fatal('cannot start the BGP speaker', e));
    });
    ds.on('change', (ev) => this.#onChange(ev));
  }

  /** Resolves once stop() has finished. */
  get stopped(): Promise<void> | undefined {
    return this.#stopped;
  }

  /**
   * Clean stop: the control socket closes, sessions end without a NOTIFICATION (so graceful-restart peers keep our
   * routes for the restart time, RFC 4724 §4.2), and every route stays in the kernel (Programmer.close() leaves them), so forwarding goes on while skeind is down.
   */
  stop(reason = 'skeind stopping'): Promise<void> {
    if (this.#stopped) return this.#stopped;
    this.#stopping = true;
    this.#listMemory.stop();
    this.#stopped = (async () => {
      this.log.info('stopping', { reason });
      this.#notify('STOPPING=1');
      // Sessions closing below make the speaker withdraw what they carried: those withdrawals must not reach the
      // kernel, whose routes keep forwarding while skeind is down (the next start adopts and re-checks them).
      this.speaker?.removeAllListeners('best');
      clearTimeout(this.#syncTimer);
      clearInterval(this.#syncPoll);
      clearInterval(this.#metricsTimer);
      this.#migration.close();
      clearInterval(this.#waitTimer);
      const step = async (what: string, f: () => Promise<void> | void): Promise<void> => {
        try {
          await f();
        } catch (e) {
          this.log.warn(`stop: ${what} failed`, { err: e });
        }
      };
      await step('control socket', () => this.#control?.close());
      // No NOTIFICATION: peers that support graceful restart keep our routes, marked stale, for our restart time
      // (RFC 4724 §4.2), as they would after kill -9; a Cease would make them withdraw our workloads everywhere.
      await step('speaker', () => this.speaker?.stop({ notify: false }));
      // AdminDown to every BFD peer: a planned stop is not a path failure (RFC 5882 §3.2), so peers keep our routes
      // under graceful restart as they would without BFD.
      await step('bfd', () => this.bfd.close({ graceful: true }));
      await step('datastore', () => this.#ds?.close());
      this.#reach?.stop();
      await step('fib', () => this.fib?.close());
      await step('http', () => this.#http?.close());
      this.readiness.close();
      this.#monitor.stop();
      this.#runtime?.stop();
      this.log.info('stopped; routes left in the kernel');
      this.#resolveFinished();
    })();
    return this.#stopped;
  }

  #fatal(what: string, e: unknown): void {
    this.log.error(what, { err: e });
    // a socket that cannot be bound is a setting to fix: exit 2 naming it (src/daemon/bind.ts)
    if (e instanceof BindError) process.stderr.write(`skeind: ${e.message}\n`);
    process.exitCode = e instanceof BindError ? 2 : 1;
    void this.stop(what);
  }

  #reportWait(): void {
    if (this.#notifiedReady || this.#stopping) return;
    const r = this.readiness.check();
    if (r.started) return;
    const sync = this.speaker ? this.#fibSyncJson() : undefined;
    const parts = [...r.missing];
    if (sync && !sync.done && sync.waitingFor.length > 0) parts.push(`fib sweep waits for End-of-RIB from ${sync.waitingFor.join(', ')}`);
    const text = parts.join('; ');
    if (text === this.#lastWait) return;
    this.#lastWait = text;
    this.#notify(`STATUS=starting: ${text}`);
    this.log.info('starting: waiting', { for: parts, ...(sync?.secondsLeft != null ? { fibSweepDeadlineSeconds: sync.secondsLeft } : {}) });
  }

  #notify(state: string): void {
    try {
      sdNotify(state, this.#env);
    } catch (e) {
      this.log.warn('sd_notify failed', { err: e, state });
    }
  }

  // ------------------------------------------------------------------ datastore

  #onStatus(s: DatastoreStatus): void {
    const synced = s.state === 'synced';
    // a resync (a compacted watch, SIGHUP) listed everything again: its garbage goes back too (daemon/memory.ts)
    if (synced && this.#dsState === 'resyncing') this.#listMemory.listed();
    this.#dsState = s.state;
    this.metrics.datastoreSynced(synced);
    this.metrics.datastoreState(s.state, s.revision, s.held !== undefined);
    // Once the first snapshot is in force, an outage or a resync does not make the node unready: it keeps routing on
    // the last known state (Calico's confd keeps BIRD's config likewise). The state shows in `skeinctl status` and
    // skein_datastore_state instead; a flapping /readyz (503 for each failed re-list) helped no one.
    this.readiness.setDatastoreSynced(synced || (s.state !== 'connecting' && this.speaker !== undefined));
    const fields = { state: s.state, lastError: s.lastError, revision: s.revision };
    if (s.state === 'disconnected' || s.lastError !== undefined) this.log.warn('datastore status', fields);
    else this.log.info('datastore status', fields);
  }

  /** memory back to the system after each full datastore list (daemon/memory.ts) */
  readonly #listMemory = new ListMemory({ onRelease: (before, after) => this.log.debug('memory released after the datastore list', { rssBefore: before, rssAfter: after }) });
  #dsState: DatastoreStatus['state'] | undefined;

  async #onSnapshot(model: Model): Promise<void> {
    if (this.#stopping) return;
    const log = this.log;
    this.#applyLogSeverity(model);
    const id = speakerIdentity(this.cfg, model);
    this.identity = id;
    this.routes.own = new Set([id.v4, id.v6].filter((a): a is string => a !== undefined));
    if (model.node(this.cfg.nodeName) === undefined) {
      log.warn('this node has no Node resource in the datastore: no BGP address, so no peerings', { nodeName: this.cfg.nodeName });
    }
    await this.#startSpeaker(id);

    this.routes.setPolicy(kernelPolicy(model, this.cfg.nodeName));
    this.policy.update(model, this.cfg.nodeName);
    this.#setOverride(model);
    const diff = this.controller.update(model);
    this.policy.setLocalInterfaces(this.controller.state.deviceRoutes);
    const state = this.controller.state;
    for (const p of state.peers) this.#startupPeers.set(p.address, 0);
    this.readiness.setPeers(state.peers.map((p) => p.address));
    await this.#applyDiff(diff, true);
    this.#live = true;
    this.#processEvents();
    this.readiness.setDatastoreSynced(this.#ds?.status.state === 'synced');
    this.#startSyncWatch(state.peers);
    this.bfd.schedule();
  }

  /**
   * Log lines a remote party can cause, rate limited per (source, kind): one limiter for the daemon's life, shared
   * by every speaker it starts, with what it holds back counted in /metrics (skein_log_suppressed_total).
   */
  readonly #remoteLog = new LogRateLimit({ onSuppressed: (kind) => this.metrics.logSuppressed(kind) });

  async #startSpeaker(id: SpeakerIdentity): Promise<Speaker> {
    const log = this.log;
    const speaker = new Speaker({
      remoteLog: this.#remoteLog,
      localAsn: id.asn,
      routerId: id.routerId,
      listenAddress: id.alsoListen !== undefined ? [id.listenAddress, id.alsoListen] : id.listenAddress,
      listenPort: id.listenPort,
      maxPaths: 16,
      keepRefused: this.cfg.bgp.keepRefused,
      // A data-centre fabric: retry a failed connection within seconds, not RFC 4271's suggested 120 s, so a
      // mesh whose nodes start in any order comes up quickly (BIRD, as Calico configures it, retries in 5 s).
      connectRetryTime: 5,
      idleHold: { initial: 2, max: 60 },
      ...(id.v4 !== undefined ? { nextHop4: id.v4 } : {}),
      ...(id.v6 !== undefined ? { nextHop6: id.v6 } : {}),
      ...(id.clusterId !== undefined ? { clusterId: id.clusterId } : {}),
      isInstalled: (prefix) => this.#installed(prefix),
      routeInterface: (prefix, nextHops, local) => this.policy.routeInterface(prefix, nextHops, local),
      onUpdateApplied: (seconds) => this.metrics.updateProcessed(seconds),
      // RFC 4724 §3: F when our routes stay in the kernel while we are away; R while this start is a restart.
      forwardingState: this.fib !== undefined,
      restarting: this.#restarting,
    });
    if (this.#reach?.current) speaker.setReachability(this.#reach.current);
    speaker.on('peer', (ev: PeerStateEvent) => this.#onPeerState(ev));
    speaker.on('best', (evs: BestEvent[]) => this.#onBest(evs));
    speaker.on('stall', (ev: { ms: number }) => this.metrics.stall(ev.ms / 1000));
    speaker.on('log', (l: { level: 'info' | 'warn' | 'error'; msg: string; peer?: string }) => {
      log[l.level](l.msg, l.peer !== undefined ? { peer: l.peer, component: 'bgp' } : { component: 'bgp' });
    });
    this.speaker = speaker;
    const field = id.listenPortFrom ?? 'bgp.listen.port';
    await bindAs(field, id.listenAddress.includes(':') ? `[${id.listenAddress}]:${id.listenPort}` : `${id.listenAddress}:${id.listenPort}`, () => speaker.start());
    log.info('BGP speaker listening', { asn: id.asn, routerId: id.routerId, address: id.alsoListen !== undefined ? `${id.listenAddress}, ${id.alsoListen}` : id.listenAddress, port: speaker.port });
    return speaker;
  }

  #onChange(ev: ChangeEvent): void {
    this.metrics.datastoreChange(ev.kind);
    this.#pendingEvents.push(ev);
    if (this.#eventsScheduled) return;
    this.#eventsScheduled = true;
    // One diff per burst: the file datastore and an etcd watch deliver related changes together.
    setImmediate(() => this.#processEvents());
  }

  #processEvents(): void {
    this.#eventsScheduled = false;
    // Until the snapshot is applied the controller has nothing to diff against: the events wait (they are
    // newer than the snapshot, so they are applied after it).
    if (!this.#live || this.#stopping) return;
    let events = this.#pendingEvents;
    this.#pendingEvents = [];
    if (events.length === 0) return;
    const model = this.#ds?.model;
    // The freeze (CONTRACT, ClusterInformation): `calicoctl datastore migrate lock` sets datastoreReady false around
    // IPAM maintenance and migrations, when the datastore may be half-written. Calico's confd does not watch the
    // flag at all (confd/pkg/backends/calico/ reads no ClusterInformation), so BIRD keeps every route; skein keeps
    // what it announces and programs too, and applies nothing until the flag is true again, then everything at once.
    if (model && this.#everReady && !model.datastoreReady()) {
      if (this.#frozenEvents === undefined) {
        this.#frozenEvents = [];
        this.log.warn('ClusterInformation datastoreReady is false: datastore frozen, keeping every announcement and kernel route and applying no datastore change until it is true again');
        this.readiness.setBlocker('cluster', 'datastore frozen (ClusterInformation datastoreReady false): announcements and kernel routes kept, datastore changes held');
        this.metrics.datastoreFrozen(true);
      }
      this.#frozenEvents.push(...events);
      return;
    }
    if (this.#frozenEvents !== undefined) {
      this.log.info('ClusterInformation datastoreReady is true again: applying the changes held during the freeze', { held: this.#frozenEvents.length });
      events = [...this.#frozenEvents, ...events];
      this.#frozenEvents = undefined;
      this.readiness.setBlocker('cluster', undefined);
      this.metrics.datastoreFrozen(false);
    }
    let restart: SpeakerIdentity | undefined;
    // The log level and the speaker's identity come from Node and BGPConfiguration resources only (mapping.ts
    // speakerIdentity): a burst of WorkloadEndpoints (the bulk of a cluster's churn) need not re-derive them.
    if (model && events.some((ev) => IDENTITY_KINDS.has(ev.kind))) {
      this.#applyLogSeverity(model);
      restart = this.#identityChange(model);
    }
    // Pools, the service ranges, programClusterRoutes and WireGuard addresses decide which learned routes go into the
    // kernel and how (src/controller/kernel.ts).
    if (model && events.some((ev) => POLICY_KINDS.has(ev.kind))) {
      this.routes.setPolicy(kernelPolicy(model, this.cfg.nodeName));
      this.#setOverride(model);
    }
    const rulesChanged = model !== undefined && events.some((ev) => RULE_KINDS.has(ev.kind));
    if (rulesChanged) this.policy.update(model, this.cfg.nodeName);
    const diff = this.controller.applyChanges(events);
    // Peers and BFDConfiguration resources may have changed; the reconcile is cheap when nothing did.
    this.bfd.schedule();
    this.policy.setLocalInterfaces(this.controller.state.deviceRoutes);
    // BGPFilter, pools, blocks: peers whose rule lists changed get them now, without a session reset.
    if (rulesChanged && restart === undefined) this.#reapplyRules();
    // Another node's workload changes nothing here: skip the pass over peers, announcements and routes. (A live
    // migration's target endpoint changes nothing either until its VM announces itself, but must be watched.)
    if (restart === undefined && diffIsEmpty(diff)) {
      this.#migration.sync(this.controller.migrationWatches(), this.controller.migration.nextDeadline());
      return;
    }
    this.#applyDiff(diff, false, restart).catch((e: unknown) => this.log.error('applying datastore changes failed', { err: e }));
  }

  /**
   * AS, router ID and listen socket belong to the speaker itself (they are in every OPEN, RFC 4271 §4.2): a change
   * replaces the speaker, so every session restarts, as BIRD's do when confd rewrites its configuration.
   */
  #identityChange(model: Model): SpeakerIdentity | undefined {
    if (!this.identity) return undefined;
    const now = speakerIdentity(this.cfg, model);
    const was = this.identity;
    const changed = (['asn', 'routerId', 'listenAddress', 'alsoListen', 'listenPort', 'clusterId'] as const).filter((k) => now[k] !== was[k]);
    if (changed.length === 0) return undefined;
    this.identity = now; // a burst that follows does not restart the speaker a second time
    this.log.warn('the speaker\'s identity changed: restarting every BGP session', {
      fields: changed, was: Object.fromEntries(changed.map((k) => [k, was[k]])), now: Object.fromEntries(changed.map((k) => [k, now[k]])),
    });
    return now;
  }

  /**
   * Replace the speaker. Its learned routes stay in the kernel, marked stale, until the new sessions have
   * announced theirs again (or a deadline passes); then the ones nobody announced again are removed.
   */
  async #restartSpeaker(id: SpeakerIdentity): Promise<void> {
    const old = this.speaker;
    if (old) {
      old.removeAllListeners('best');
      old.removeAllListeners('peer');
      await old.stop({ message: 'configuration changed' });
      for (const a of old.peerAddresses()) this.metrics.removePeer(a);
    }
    const stale = this.routes.markBgpStale();
    this.identity = id;
    this.routes.own = new Set([id.v4, id.v6].filter((a): a is string => a !== undefined));
    const speaker = await this.#startSpeaker(id);
    const state = this.controller.state;
    for (const p of state.peers) {
      this.#peerLabels(p);
      const opts = await this.#peerOptions(p);
      if (!opts) continue;
      try {
        speaker.addPeer(opts);
      } catch (e) {
        this.log.warn('adding peer failed', { peer: p.address, err: e });
      }
    }
    if (state.ready) for (const o of state.announce) this.#originate(o, true);
    // Sweep once every peer is back and quiet, or after the start-up deadline.
    const started = Date.now();
    const addresses = state.peers.map((p) => p.address);
    const timer = setInterval(() => {
      if (this.#stopping || this.speaker !== speaker) return clearInterval(timer);
      const now = Date.now();
      const synced = addresses.every((a) => this.#peerSynced(a, started, now));
      if (synced || now - started >= DEFAULT_SYNC_DEADLINE_MS) {
        clearInterval(timer);
        const swept = this.routes.sweepBgpStale();
        this.log.info('BGP routes re-learned after the speaker restart', { stale, swept });
        this.#fibMetrics();
      }
    }, 250);
    timer.unref();
  }

  /** The more verbose of skein.yaml's log.level and Calico's logSeverityScreen (node.<name>, else default). */
  #applyLogSeverity(model: Model): void {
    const sev = model.bgpConfiguration(`node.${this.cfg.nodeName}`)?.spec.logSeverityScreen ?? model.bgpConfiguration('default')?.spec.logSeverityScreen;
    const calico = sev !== undefined ? parseLogLevel(sev) : undefined;
    const rank = (l: LogLevel): number => ['debug', 'info', 'warn', 'error'].indexOf(l);
    const level = calico !== undefined && rank(calico) < rank(this.#configuredLevel) ? calico : this.#configuredLevel;
    if (level !== this.log.level) {
      this.log.info('log level', { level, from: calico !== undefined ? 'logSeverityScreen' : 'skein.yaml' });
      this.log.setLevel(level);
    }
  }

  // ------------------------------------------------------------------ applying the controller's diffs

  #applyDiff(diff: ControllerDiff, initial: boolean, restart?: SpeakerIdentity): Promise<void> {
    const run = async (): Promise<void> => {
      if (!this.speaker || this.#stopping) return;
      let d = diff;
      if (restart) {
        // The new speaker gets every peer and announcement of the current state; the rest of the diff still applies.
        await this.#restartSpeaker(restart);
        const none = { added: [], changed: [], removed: [] };
        d = { ...diff, peers: none, announce: none };
      }
      const speaker = this.speaker;
      const log = this.log;
      const ready = this.controller.state.ready;
      if (d.ready !== undefined || initial) {
        if (!ready) log.warn('ClusterInformation datastoreReady is false: nothing is announced or programmed until it is true');
        else if (d.ready === true) log.info('ClusterInformation datastoreReady is true: announcing and programming');
        this.readiness.setBlocker('cluster', ready ? undefined : 'cluster datastore not ready (ClusterInformation datastoreReady false)');
      }

      // Peers: removals, then changes, then additions (the controller's order).
      for (const p of d.peers.removed) {
        log.info('peer removed', { peer: p.address, type: p.type, name: p.name });
        try {
          speaker.removePeer(p.address);
        } catch (e) {
          log.warn('removing peer failed', { peer: p.address, err: e });
        }
        this.metrics.removePeer(p.address);
        this.#startupPeers.delete(p.address);
        this.policy.forget(p.address);
      }
      for (const c of d.peers.changed) {
        const descriptive = c.fields.every((f) => DESCRIPTIVE_PEER_FIELDS.includes(f));
        const opts = await this.#peerOptions(c.after);
        if (!opts) continue;
        log.info(descriptive ? 'peer description changed' : 'peer changed', { peer: c.key, fields: c.fields });
        try {
          // The speaker resets the session only when a session parameter changed (bgp/speaker sessionKey). A
          // peer skipped before (its password could not be read) is added now.
          if (speaker.peerInfo(opts.address) === null) speaker.addPeer(opts);
          else speaker.updatePeer(opts);
        } catch (e) {
          log.warn('changing peer failed', { peer: c.key, err: e });
        }
      }
      for (const p of [...d.peers.changed.map((c) => c.after), ...d.peers.added]) this.#peerLabels(p);
      for (const p of d.peers.added) {
        const opts = await this.#peerOptions(p);
        if (!opts) continue;
        log.info('peer added', { peer: p.address, asn: p.peerAS, type: p.type, name: p.name, passive: p.passive });
        try {
          speaker.addPeer(opts);
        } catch (e) {
          log.warn('adding peer failed', { peer: p.address, err: e });
        }
      }
      if (!initial) this.readiness.setPeers(this.controller.state.peers.map((p) => p.address));

      // Announcements: only while the gate is open.
      if (d.ready === false) for (const o of this.controller.state.announce) speaker.withdraw(o.prefix);
      if (ready) {
        const full = initial || d.ready === true;
        const announce = full ? this.controller.state.announce : [...d.announce.changed.map((c) => c.after), ...d.announce.added];
        for (const o of d.announce.removed) {
          log.info('withdrawing', { prefix: o.prefix, kind: o.kind });
          speaker.withdraw(o.prefix);
        }
        for (const o of announce) this.#originate(o, full);
      }
      this.#countOriginations();

      // Kernel routes: the table holds them whatever the gate; it writes only while open.
      const wr = this.cfg.fib.workloadRoutes;
      for (const b of d.blackholes.removed) this.routes.setBlackhole(b.prefix, false);
      for (const b of [...d.blackholes.changed.map((c) => c.after), ...d.blackholes.added]) this.routes.setBlackhole(b.prefix, true);
      for (const r of d.deviceRoutes.removed) {
        if (wr) this.routes.setDevice(r.prefix, null);
        log.info('workload route removed', { prefix: r.prefix, dev: r.interface, workload: r.workload });
      }
      for (const r of [...d.deviceRoutes.changed.map((c) => c.after), ...d.deviceRoutes.added]) {
        if (wr) this.routes.setDevice(r.prefix, r.interface);
        if (!initial) log.info('workload route', { prefix: r.prefix, dev: r.interface, workload: r.workload });
      }
      this.routes.setOpen(ready);
      if (ready) this.#everReady = true;
      if (ready) this.#maybeSync();
      this.#migration.sync(this.controller.migrationWatches(), this.controller.migration.nextDeadline());
    };
    const p = this.#queue.then(run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  /** A live-migration step (the VM announced itself, a TimeWait ended) changes announcements and routes like a datastore change. */
  #applyMigration(diff: ControllerDiff): void {
    if (this.#stopping || !this.#live) return;
    if (diffIsEmpty(diff)) {
      this.#migration.sync(this.controller.migrationWatches(), this.controller.migration.nextDeadline());
      return;
    }
    this.#applyDiff(diff, false).catch((e: unknown) => this.log.error('applying a live-migration step failed', { err: e }));
  }

  /**
   * confd's import filter (bgp_processor.go buildImportFilter): a path whose LOCAL_PREF is above 2^31-1 minus the
   * normal route priority came from a node routing a just-migrated VM at the elevated priority; it gets BIRD's
   * override preference and beats this node's own route to the same address (the migration's source host).
   */
  #setOverride(model: Model): void {
    const cfg = model.bgpConfiguration('default')?.spec;
    this.#overrideAbove = {
      4: BIRD_INT_MAX - (cfg?.ipv4NormalRoutePriority ?? DEFAULT_NORMAL_ROUTE_PRIORITY),
      6: BIRD_INT_MAX - (cfg?.ipv6NormalRoutePriority ?? DEFAULT_NORMAL_ROUTE_PRIORITY),
    };
  }

  /** The up gauge's labels: the peer's name (BGPPeer, or Calico's Mesh_<address>), AS and type. */
  #peerLabels(p: DesiredPeer): void {
    this.metrics.peerLabels(p.address, { name: p.name, asn: p.peerAS, type: p.type });
    const mp = this.cfg.bgp.maxPrefixes;
    if (mp) {
      // config/daemon.ts: peers[address] is that peer's limit for each family, else ipv4/ipv6, else limit.
      const own = mp.peers[p.address];
      this.metrics.prefixLimit(p.address, 'ipv4-unicast', own ?? mp.ipv4 ?? mp.limit);
      this.metrics.prefixLimit(p.address, 'ipv6-unicast', own ?? mp.ipv6 ?? mp.limit);
    }
  }

  #originate(o: Origination, quiet: boolean): void {
    const log = this.log;
    try {
      this.speaker?.originate(o.prefix, originationAttributes(o));
      if (!quiet) log.info('announcing', { prefix: o.prefix, kind: o.kind });
      else log.debug('announcing', { prefix: o.prefix, kind: o.kind });
    } catch (e) {
      log.warn('cannot announce', { prefix: o.prefix, err: e });
    }
  }

  #countOriginations(): void {
    const n = { block: 0, borrowed: 0, service: 0 };
    if (this.controller.state.ready) for (const o of this.controller.state.announce) n[o.kind]++;
    for (const k of ['block', 'borrowed', 'service'] as const) this.metrics.originations(k, n[k]);
  }

  /** Give every peer whose rule lists changed its new ones (the speaker re-evaluates exports and refreshes imports). */
  #reapplyRules(): void {
    const run = async (): Promise<void> => {
      const speaker = this.speaker;
      if (!speaker) return;
      for (const p of this.controller.state.peers) {
        const rules = this.policy.rulesFor(p.address, p.filters);
        if (!this.policy.changed(p.address, rules) || speaker.peerInfo(p.address) === null) continue;
        const opts = await this.#peerOptions(p);
        if (!opts) continue;
        this.log.info('routing policy changed for peer: applied without a reset', { peer: p.address, filters: p.filters });
        try {
          speaker.updatePeer(opts);
        } catch (e) {
          this.log.warn('changing peer policy failed', { peer: p.address, err: e });
        }
      }
    };
    const p = this.#queue.then(run);
    this.#queue = p.catch(() => undefined);
  }

  /** The speaker's options for a peer; the MD5 password is read from its secret (and never logged). */
  async #peerOptions(p: DesiredPeer): Promise<PeerOptions | undefined> {
    let md5Key: Buffer | undefined;
    if (p.password !== undefined) {
      try {
        const secret = await resolvePassword(p.password, this.cfg.secretsDir);
        md5Key = Buffer.from(secret.reveal(), 'utf8');
      } catch (e) {
        // Without its key the session cannot come up (the peer drops unsigned segments): say why, skip it.
        this.log.error('BGP password unavailable; peer not configured', { peer: p.address, reason: (e as Error).message });
        return undefined;
      }
    }
    const llgr = this.cfg.bgp.longLivedGracefulRestart;
    const llst = llgr ? (llgr.peers[p.address] ?? llgr.staleTime) : 0;
    const rules = this.policy.rulesFor(p.address, p.filters);
    this.policy.changed(p.address, rules);
    return peerOptionsFor(p, {
      ...(rules !== undefined ? { rules } : {}),
      localAsn: this.speaker?.localAsn ?? this.identity?.asn ?? 0,
      addPaths: this.cfg.bgp.addPaths,
      ...(this.cfg.bgp.maxPrefixes ? { maxPrefixes: this.cfg.bgp.maxPrefixes } : {}),
      ...(md5Key ? { md5Key } : {}),
      ...(llst > 0 ? { longLivedStaleTime: llst } : {}),
    });
  }

  // ------------------------------------------------------------------ speaker events

  #onPeerState(ev: PeerStateEvent): void {
    const st = PEER_STATES.includes(ev.state as PeerState) ? (ev.state as PeerState) : 'Idle';
    this.metrics.peerState(ev.address, st, ev.since.getTime());
    const up = ev.state === 'Established';
    this.watch.publish('peer', { peer: ev.address, from: ev.from, state: ev.state, info: ev.info });
    this.readiness.setPeerEstablished(ev.address, up);
    // The speaker's Established event still carries the error of the attempt before: leave it out there.
    const fields = { peer: ev.address, from: ev.from, state: ev.state, ...(ev.info && !up ? { info: ev.info } : {}) };
    if (up || ev.from === 'Established') {
      // A peer can make its session flap as often as it likes (a NOTIFICATION, a bad OPEN, a reset each time):
      // these lines go through the same per-source limiter as the speaker's own (bgp/speaker/rate-limit.ts).
      const suppressed = this.#remoteLog.take(ev.address, up ? 'session-up' : sessionDownKind(ev.info));
      if (suppressed !== null) this.log.info(up ? 'session established' : 'session down', suppressed > 0 ? { ...fields, suppressed } : fields);
    } else this.log.debug('peer state', fields);
    if (up && this.#startupPeers.get(ev.address) === 0) this.#startupPeers.set(ev.address, Date.now());
  }

  #onBest(evs: BestEvent[]): void {
    if (this.#stopping) return;
    this.#lastBestAt = Date.now();
    const watching = this.watch.active;
    const debug = this.log.isEnabled('debug');
    if (watching || debug) {
      for (const ev of evs) {
        if (watching) this.watch.publish('best', { prefix: ev.prefix, from: ev.from, nextHops: ev.nextHops, local: ev.local, gone: ev.attributes === null });
        if (debug) this.log.debug('best path', { prefix: ev.prefix, nextHops: ev.nextHops, from: ev.from, local: ev.local, gone: ev.attributes === null });
      }
    }
    // Queued and applied in ~10 ms slices (src/daemon/routes.ts), keyed by the RIB's prefix key, not text; an
    // elevated path's metric comes from this.routes.elevation.
    this.routes.bestChanges(evs);
    // skein_fib_routes is computed when /metrics is read (fib.stats() walks every route: not per best path).
  }

  // ------------------------------------------------------------------ FIB sync at start-up

  #startSyncWatch(peers: readonly DesiredPeer[]): void {
    const longest = Math.max(0, ...peers.map((p) => p.restartTimeMs ?? 0));
    const deadline = Math.min(MAX_SYNC_DEADLINE_MS, Math.max(DEFAULT_SYNC_DEADLINE_MS, longest));
    this.#syncDeadline = Date.now() + deadline;
    this.#syncTimer = setTimeout(() => this.#maybeSync(true), deadline);
    this.#syncTimer.unref();
    this.#syncPoll = setInterval(() => this.#maybeSync(), 250);
    this.#syncPoll.unref();
    this.#maybeSync();
  }

  /** The start-up FIB sweep as the operator sees it: done, or waiting for which peers and for how long at most. */
  #fibSyncJson(): NonNullable<NonNullable<StatusJson['gracefulRestart']>['fibSync']> {
    if (this.#fibSynced || this.#syncDeadline === 0) return { done: this.#fibSynced, secondsLeft: null, waitingFor: [] };
    const now = Date.now();
    const waitingFor = [...this.#startupPeers].filter(([a, at]) => !this.#peerSynced(a, at, now)).map(([a]) => a);
    return { done: false, secondsLeft: Math.max(0, Math.ceil((this.#syncDeadline - now) / 1000)), waitingFor };
  }

  /** Sweep the FIB once every start-up peer has sent its routes (or at the deadline), and the gate is open. */
  #maybeSync(deadline = false): void {
    if (this.#fibSynced || this.#syncDeadline === 0 || this.#stopping) return;
    if (!this.controller.state.ready) return;
    const now = Date.now();
    const waiting = [...this.#startupPeers].filter(([a, at]) => !this.#peerSynced(a, at, now)).map(([a]) => a);
    if (waiting.length > 0 && !deadline && now < this.#syncDeadline) return;
    this.#fibSynced = true;
    this.#restarting = false;
    this.speaker?.restartComplete();
    clearTimeout(this.#syncTimer);
    clearInterval(this.#syncPoll);
    if (waiting.length > 0) this.log.warn('start-up peers not all heard from; reconciling the FIB anyway', { waiting });
    const fib = this.fib;
    if (!fib) {
      this.readiness.setFibReconciled(true);
      return;
    }
    const stale = fib.stats().stale;
    fib.markSynced().then(
      () => {
        this.log.info('fib reconciled: routes nobody asked for again were removed', { swept: stale });
        this.readiness.setFibReconciled(true);
        this.#fibMetrics();
      },
      (e: unknown) => this.log.error('fib sweep failed', { err: e }),
    );
  }

  /**
   * Has a peer sent all its routes since it came up (at: when, 0 not yet)? A peer with graceful restart promises
   * End-of-RIB per family (RFC 4724 §2), and that is the answer; for others, 1 s without a best-path change.
   */
  #peerSynced(address: string, at: number, now: number): boolean {
    const info = this.speaker?.peerInfo(address);
    if (at === 0 || !info || info.state !== 'Established') return false;
    if (info.gracefulRestart) return info.endOfRibPending.length === 0;
    return now - Math.max(at, this.#lastBestAt) >= PEER_QUIET_MS;
  }

  #installed(prefix: string): boolean {
    const fib = this.fib;
    if (!fib) return false;
    const p = prefixBytes(prefix);
    if (!p) return false;
    const m = this.routes.metricOf(prefix);
    const v = fib.lookup(p.family, p.addr, p.len, m !== undefined ? { metric: m } : undefined);
    // Whatever kind wins the prefix here (a learned path, an affine block's blackhole, a local workload's device
    // route), "installed" means the kernel holds it as wanted: the same answer `skeinctl fib` gives.
    return v !== undefined && v.kernel !== undefined && v.inSync && this.routes.desired(prefix) !== undefined;
  }

  // ------------------------------------------------------------------ metrics

  #fibMetrics(): void {
    this.metrics.fibRoutes(this.#fibCounts());
  }

  /**
   * Routes the kernel keeps refusing: a soft readiness blocker (/readyz 503 and `skeinctl status` say which and
   * why; READY=1 at start is not held back, see ReadinessGate.setBlocker) and skein_fib_persistent_failures.
   */
  #checkFibFailures(): void {
    const fib = this.fib;
    if (!fib) return;
    const now = Date.now();
    const failing: RouteView[] = [];
    const seen = new Set<string>();
    for (const v of fib.failures()) {
      if (!v.failure) continue;
      const prefix = fmtPrefix(v);
      seen.add(prefix);
      const since = this.#failingSince.get(prefix) ?? now;
      this.#failingSince.set(prefix, since);
      if (now - since >= PERSISTENT_FIB_MS) failing.push(v);
    }
    for (const p of this.#failingSince.keys()) if (!seen.has(p)) this.#failingSince.delete(p);
    this.metrics.fibPersistentFailures(failing.length);
    if (failing.length === 0) {
      this.readiness.setBlocker('fib-failures', undefined);
      return;
    }
    const first = failing[0]!;
    const example = `${fmtPrefix(first)}: ${first.failure!.code} ${first.failure!.message}`;
    this.readiness.setBlocker('fib-failures', `${failing.length} route${failing.length > 1 ? 's' : ''} refused by the kernel (${example})`, { soft: true });
  }

  #fibCounts(): FibRouteCounts {
    if (!this.fib) return { desired: this.routes.open ? this.routes.size : 0, installed: 0, failed: 0 };
    const s = this.fib.stats();
    let failed = 0;
    for (const n of Object.values(s.failuresByReason)) failed += n;
    return { desired: s.desired, installed: s.installed, failed };
  }

  /** The speaker keeps cumulative counters; Prometheus counters get the increments since the last sample. */
  #sampleMetrics(): void {
    this.#fibMetrics();
    this.#checkFibFailures();
    const speaker = this.speaker;
    if (!speaker) return;
    for (const p of speaker.peersJson().peers) {
      for (const f of p.families) this.metrics.prefixes(p.address, f, p.prefixes);
      const h = p.gracefulRestart.helper;
      this.metrics.gracefulRestart(p.address, h?.phase ?? null, h?.staleRoutes ?? 0);
      const last = this.#counterSnapshot.get(p.address) ?? {};
      const now: Record<string, number> = {};
      for (const [t, n] of Object.entries(p.messages.in)) {
        now[`in ${t}`] = n;
        const d = n - (last[`in ${t}`] ?? 0);
        if (d > 0) this.metrics.messageIn(p.address, t as 'UPDATE', d);
      }
      for (const [t, n] of Object.entries(p.messages.out)) {
        now[`out ${t}`] = n;
        const d = n - (last[`out ${t}`] ?? 0);
        if (d > 0) this.metrics.messageOut(p.address, t as 'UPDATE', d);
      }
      for (const [dir, map] of [['nin', p.notifications.in], ['nout', p.notifications.out]] as const) {
        for (const [k, n] of Object.entries(map)) {
          now[`${dir} ${k}`] = n;
          const d = n - (last[`${dir} ${k}`] ?? 0);
          const [code, sub] = k.split('/').map(Number) as [number, number];
          for (let i = 0; i < d; i++) {
            if (dir === 'nin') this.metrics.notificationIn(p.address, code, sub);
            else this.metrics.notificationOut(p.address, code, sub);
          }
        }
      }
      const pr = speaker.policyRejections(p.address);
      for (const dir of ['import', 'export'] as const) {
        const n = pr?.[dir] ?? 0;
        now[`policy ${dir}`] = n;
        const d = n - (last[`policy ${dir}`] ?? 0);
        if (d > 0) this.metrics.policyRejected(p.address, dir, d);
      }
      this.#counterSnapshot.set(p.address, now);
    }
  }

  // ------------------------------------------------------------------ control methods (CONTRACT shapes)

  status(): StatusJson {
    const r = this.readiness.check();
    const out: StatusJson = {
      node: this.cfg.nodeName,
      routerId: this.identity?.routerId ?? '',
      asn: this.identity?.asn ?? 0,
      ready: r.ready,
      peers: this.peers(),
      version: VERSION,
    };
    const ds = this.#ds?.status;
    if (ds !== undefined) {
      out.datastore = { type: this.cfg.datastore.type, state: ds.state, since: ds.since.toISOString() };
      if (ds.revision !== undefined) out.datastore.revision = ds.revision;
      if (ds.lastError !== undefined) out.datastore.lastError = ds.lastError;
      if (ds.held !== undefined) out.datastore.held = ds.held;
    }
    if (this.speaker) out.gracefulRestart = { ...this.speaker.localRestartJson(), fibSync: this.#fibSyncJson() };
    if (!r.ready) out.notReady = r.missing;
    return out;
  }

  peers(): PeerJson[] {
    const speaker = this.speaker;
    if (!speaker) return [];
    const desired = new Map(this.controller.state.peers.map((p) => [p.address, p]));
    return speaker.peersJson().peers.map((p) => {
      const out = { ...peerJson(p, desired.get(p.address)), ...speaker.sessionDetails(p.address) } as PeerJson & Record<string, unknown>;
      const bfd = this.bfd.infoFor(p.address);
      if (bfd !== undefined) out.info = out.info ? `${out.info}; ${bfd}` : bfd;
      const b = this.bfd.sessionOf(p.address);
      if (b) out.bfd = { state: b.state, lastDownReason: b.lastDownReason, downCount: b.downCount };
      const rejected = speaker.policyRejections(p.address);
      if (rejected !== null) out.policyRejected = rejected;
      // refused routes kept for `skeinctl routes --peer X --refused`, and those past bgp.keepRefused (only counted)
      const id = speaker.coreIdOf(p.address);
      if (id !== undefined) out.refusedRoutes = speaker.rib.refusedStats(id);
      return out;
    });
  }

  routesJson(prefix?: string): { routes: RouteJson[]; policy?: { imported: PolicyVerdictJson[]; exported: PolicyVerdictJson[] } } {
    const speaker = this.speaker;
    if (!speaker) return { routes: [] };
    const out = this.#routesJson(speaker, prefix);
    // One prefix: which rule let it in from each peer (or refused it) and which let it out to each peer.
    if (prefix !== undefined && prefix.includes('/')) return { ...out, policy: speaker.policyTrace(prefix) };
    return out;
  }

  #routesJson(speaker: Speaker, prefix?: string): { routes: RouteJson[] } {
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
    return { routes: sortByPrefix(routes.map((r) => ({ prefix: r.prefix, installed: r.installed, best: pathJsonOf(r.best), paths: r.paths.map(pathJsonOf) }))) };
  }

  /** `skeinctl routes` over the control socket: a stream of rows, made a slice at a time (src/daemon/route-query.ts). */
  routesStream(params: Record<string, unknown>): ControlStream | { routes: RouteJson[] } {
    const q = parseRouteQuery(params);
    const speaker = this.speaker;
    if (!speaker) return { routes: [] };
    return routesStream(q, {
      rib: speaker.rib,
      installed: (prefix) => this.#installed(prefix),
      peerId: (a) => speaker.coreIdOf(a),
      advertisedPrefixes: (id) => speaker.rib.advertisedPrefixes(id),
      policyTrace: (prefix) => speaker.policyTrace(prefix),
    });
  }

  fibJson(): FibJson {
    const fib = this.fib;
    const routes: FibRouteJson[] = [];
    const seen = new Set<string>();
    let pending = 0;
    let failed = 0;
    let installed = 0;
    const open = this.routes.open;
    for (const d of this.routes.all()) {
      seen.add(d.prefix);
      const desired: FibEntryJson = d.kind === 'device'
        ? { type: 'device', nextHops: [], ...(d.dev !== undefined ? { dev: d.dev } : {}) }
        : d.kind === 'blackhole' ? { type: 'blackhole', nextHops: [] } : { type: 'unicast', nextHops: d.nextHops };
      const p = prefixBytes(d.prefix)!;
      const m = this.routes.metricOf(d.prefix);
      const v = fib?.lookup(p.family, p.addr, p.len, m !== undefined ? { metric: m } : undefined);
      const kernel = v?.kernel ? kernelEntry(v, d.dev) : null;
      if (kernel) installed++;
      const state: FibRouteJson['state'] = v?.failure ? 'failed' : v?.inSync ? 'in-sync' : 'pending';
      if (state === 'failed') failed++;
      else if (state === 'pending') pending++;
      const row: FibRouteJson = { prefix: d.prefix, desired: open ? desired : null, kernel, state };
      if (v?.failure) row.error = `${v.failure.code}: ${v.failure.message}`;
      routes.push(row);
    }
    // Routes of ours in the kernel that nothing wants (adopted at start, before the sweep).
    if (fib) {
      for (const v of fib.routes()) {
        const prefix = fmtPrefix(v);
        if (seen.has(prefix) || !v.kernel) continue;
        installed++;
        routes.push({ prefix, desired: null, kernel: kernelEntry(v, undefined), state: 'pending' });
      }
    }
    return {
      enabled: fib !== undefined,
      table: this.cfg.fib.table,
      protocol: this.cfg.fib.protocol,
      counts: { desired: open ? seen.size : 0, installed, pending, failed },
      routes: sortByPrefix(routes),
    };
  }

  /**
   * SIGHUP / `skeinctl reload`: re-read skein.yaml and the datastore; apply what can change on the fly (log
   * level, secrets via the datastore diff) and say which changes need a restart. Sessions stay up.
   */
  async reload(): Promise<ReloadJson> {
    const log = this.log;
    const changes: string[] = [];
    let next: DaemonConfig;
    try {
      next = loadDaemonConfig(this.cfg.file, this.#env);
    } catch (e) {
      this.metrics.reload(false);
      log.error('reload: skein.yaml is not valid; keeping the running configuration', { reason: (e as Error).message });
      throw new ControlError(`skein.yaml: ${(e as Error).message}; the running configuration is kept`, 'bad-config');
    }
    const old = this.cfg;
    const restartNeeded = (name: string, a: unknown, b: unknown): void => {
      if (JSON.stringify(a) !== JSON.stringify(b)) {
        changes.push(`${name} changed: needs a restart of skeind to take effect`);
        log.warn('reload: change needs a restart', { field: name });
      }
    };
    restartNeeded('nodeName', old.nodeName, next.nodeName);
    restartNeeded('datastore', old.datastore, next.datastore);
    restartNeeded('bgp', old.bgp, next.bgp);
    restartNeeded('fib', old.fib, next.fib);
    restartNeeded('control', old.control, next.control);
    restartNeeded('metrics', old.metrics, next.metrics);
    if (old.log.level !== next.log.level) {
      changes.push(`log.level: ${old.log.level} -> ${next.log.level}`);
      this.#configuredLevel = parseLogLevel(next.log.level) ?? 'info';
      if (this.#ds?.model) this.#applyLogSeverity(this.#ds.model);
      else this.log.setLevel(this.#configuredLevel);
    }
    const secretsChanged = old.secretsDir !== next.secretsDir;
    if (secretsChanged) changes.push(`secretsDir: ${old.secretsDir} -> ${next.secretsDir}`);
    // Keep what cannot change live; take the rest.
    this.cfg = { ...old, log: next.log, secretsDir: next.secretsDir };
    if (this.#ds) {
      try {
        await this.#ds.reload();
      } catch (e) {
        this.metrics.reload(false);
        throw new ControlError(`datastore reload failed: ${(e as Error).message}`, 'datastore');
      }
      if (this.#ds.model) this.#applyLogSeverity(this.#ds.model);
    }
    // Passwords live in files: re-read them for every peer that has one (the speaker resets a peer only when
    // its key really changed).
    const withPassword = this.controller.state.peers.filter((p) => p.password !== undefined);
    if (withPassword.length > 0) {
      await this.#applyDiff({
        peers: { added: [], removed: [], changed: withPassword.map((p) => ({ key: p.key, before: p, after: p, fields: ['password'] })) },
        announce: { added: [], changed: [], removed: [] },
        blackholes: { added: [], changed: [], removed: [] },
        deviceRoutes: { added: [], changed: [], removed: [] },
      }, false);
    }
    this.metrics.reload(true);
    const message = changes.length === 0 ? 'configuration re-read; no changes in skein.yaml' : 'configuration re-read';
    log.info('reloaded', { changes });
    return { reloaded: true, message, changes };
  }
}

// ------------------------------------------------------------------ JSON helpers

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
  if (p.addPath !== undefined) out.addPath = p.addPath;
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

/** The contract's PATH (docs/contract.md) of a speaker path: one mapping, shared with the streamed routes. */
const pathJsonOf = contractPath;

function kernelEntry(v: RouteView, dev: string | undefined): FibEntryJson | null {
  const k = v.kernel;
  if (!k) return null;
  if (k.type === 6) return { type: 'blackhole', nextHops: [] };
  const gws = k.hops.filter((h) => h.gateway !== undefined).map((h) => formatAddress(h.gateway!));
  if (gws.length === 0) return { type: 'device', nextHops: [], ...(dev !== undefined ? { dev } : {}) };
  return { type: 'unicast', nextHops: gws };
}

function fmtPrefix(v: RouteView): string {
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

/** The rate limiter's kind of a "session down" line, from the speaker's reason for it. */
export function sessionDownKind(info: string): string {
  if (/received NOTIFICATION/.test(info)) return 'notification-received';
  if (/sent NOTIFICATION .*OPEN/i.test(info) || /\bOPEN\b/.test(info)) return 'open-error';
  if (/sent NOTIFICATION/.test(info)) return 'notification-sent';
  if (/reset|ECONNRESET|EPIPE|closed|TCP/i.test(info)) return 'connection-reset';
  return 'session-down';
}
