// skeind's core: wires the datastore, the node controller, the BGP speaker and the FIB programmer, and serves
// the control socket and /metrics. src/skeind.ts is only the command line and the signals around a Daemon, so a
// Daemon can run in-process in a test (everything but the kernel parts, which need a namespace).
//
// Start-up order, so that a restart never empties the kernel table (docs/contract.md, "What skein writes into the kernel"):
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
// The pieces, each in src/daemon/ with one job, are listed in src/daemon/README.md ("Files"); this file is the start
// and the wiring. "Wait for peers, then sweep" is one loop (sweep.ts PeerWait) used twice: at start-up and after a
// speaker restart.
// Why it is still over 600 lines: what is left here is the order things happen in (start, snapshot, sweep, stop) and
// the callbacks that join the pieces; each callback is a few lines that read better beside the step they serve than
// in a file of their own. A piece with state of its own goes to src/daemon/ (issue 17).
import { join } from 'node:path';
import { BindError, bindAs } from './daemon/bind.js';
import { ListMemory } from './daemon/memory.js';
import { LogRateLimit, Speaker, type BestBatch, type PeerStateEvent } from '../bgp/index.js';
import {
  openDatastore, type ChangeEvent, type DaemonConfig, type Datastore, type DatastoreStatus, type Issue, type Model,
} from '../config/index.js';
import { Programmer } from '../fib/index.js';
import type { ControlServer } from './control/index.js';
import type { FibJson, PeerJson, PolicyVerdictJson, ReloadJson, RouteJson, StatusJson } from './control/types.js';
import {
  NodeController, kernelPolicy, type ControllerDiff,
} from './controller/index.js';
import { DiffApplier, diffIsEmpty } from './daemon/apply.js';
import { checkCapabilities } from './daemon/capabilities.js';
import { controlGroup, listenControl } from './daemon/control.js';
import { ChangeBatcher } from './daemon/events.js';
import { addressBytes } from './ip.js';
import { identityChanges, speakerIdentity, type SpeakerIdentity } from './daemon/mapping.js';
import { StartNotifier } from './daemon/notify.js';
import { RouteTable } from './daemon/routes.js';
import { RoutePriority } from './daemon/route-priority.js';
import { BfdWiring } from './daemon/bfd.js';
import { Drain } from './daemon/drain.js';
import { chooseBfdTransport } from './daemon/bfd-companion.js';
import { stopKind, type StopKind } from './daemon/systemd-job.js';
import { PolicyWiring, RULE_KINDS } from './daemon/policy.js';
import { MigrationWatcher } from './daemon/migration.js';
import { KernelReachability } from './daemon/reachability.js';
import { KernelLearner } from './daemon/kernel-learn.js';
import { FibResolver } from './daemon/fib-resolver.js';
import { logLevelFor, reload } from './daemon/reload.js';
import { parseRouteQuery, routesStream } from './daemon/route-query.js';
import { RuntimeStats } from './daemon/runtime.js';
import { MetricsSampler } from './daemon/sampler.js';
import { shutdown } from './daemon/shutdown.js';
import { SpeakerEvents, speakerOptions } from './daemon/speaker.js';
import { fibEvents } from './daemon/fib-events.js';
import { fibJson, peersJson, routesJson, statusJson } from './daemon/status.js';
import { DEFAULT_SYNC_DEADLINE_MS, PeerWait, peerSent, startupDeadline } from './daemon/sweep.js';
import { WatchHub } from './daemon/watch.js';
import type { ControlStream } from './control/stream.js';
import { LoopMonitor, ReadinessGate, startHttpServer, type HttpEndpoint } from './http.js';
import { createLogger, parseLogLevel, type Logger, type LogLevel } from './log.js';
import { Metrics } from './metrics.js';
import { VERSION } from './version.js';

export { peerOptionsFor, originationAttributes, routerIdFor, speakerIdentity, bgpTarget } from './daemon/mapping.js';
export { addressBytes, prefixBytes, sortByPrefix } from './ip.js';
export { RouteTable } from './daemon/routes.js';
export { sessionDownKind } from './daemon/speaker.js';

export { VERSION };

/** Kinds that can change the speaker's identity or the log level (speakerIdentity, #applyLogSeverity). */
const IDENTITY_KINDS: ReadonlySet<string> = new Set(['Node', 'BGPConfiguration']);
/** Kinds the kernel policy reads (src/controller/kernel.ts). */
const POLICY_KINDS: ReadonlySet<string> = new Set(['Node', 'BGPConfiguration', 'IPPool']);
// What BFD's reconcile reads besides the peers (src/daemon/bfd.ts): the BFDConfigurations and this node's labels.
const BFD_KINDS: ReadonlySet<string> = new Set(['BFDConfiguration', 'Node']);
/**
 * RSS growth since the datastore list's release past which the release after start-up collects whatever the heap's
 * growth: the sessions' first exchange grows V8's young generation (its garbage never reaches the old heap the
 * collector's own policy watches), and without a collection V8 shrinks it only when its memory reducer gets to it.
 */
const STARTUP_CHURN_BYTES = 8 * 1024 * 1024;

/** A WorkloadEndpoint change of another node, before and after: nothing of this node's can depend on it. */
function otherNodesEndpoint(ev: ChangeEvent, node: string): boolean {
  if (ev.kind !== 'WorkloadEndpoint') return false;
  const now = ev.resource as { spec: { node: string } } | undefined;
  const before = ev.previous as { spec: { node: string } } | undefined;
  return now?.spec.node !== node && before?.spec.node !== node;
}

export interface DaemonOptions {
  /** log sink (tests collect lines); default stdout */
  logSink?: (line: string) => void;
  /** the environment for sd_notify and skein.yaml overrides; default process.env */
  env?: NodeJS.ProcessEnv;
}

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
  /** RFC 8326 graceful shutdown (src/daemon/drain.ts) */
  readonly drain: Drain;
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
  readonly #apply: DiffApplier;
  readonly #events: ChangeBatcher;
  readonly #sampler: MetricsSampler;
  readonly #notifier: StartNotifier;
  readonly #speakerEvents: SpeakerEvents;
  /** datastoreReady has been true once: from then on a false means freeze, not withdraw */
  #everReady = false;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #resolveFinished!: () => void;
  /** resolves when the daemon has stopped, whoever stopped it (a signal, a fatal error) */
  readonly finished: Promise<void> = new Promise((r) => { this.#resolveFinished = r; });
  /** next-hop reachability from the kernel (only with a FIB) */
  #reach: KernelReachability | undefined;
  /** fib.learn: the routes other programs (Felix) write in the main table, announced as Calico's BIRD does */
  #learner: KernelLearner | undefined;
  /** how the FIB reaches next hops not on a link: the kernel's routes, then the Loc-RIB (fib-resolver.ts) */
  readonly #fibResolver: FibResolver;
  /** the start-up FIB sweep waits for these peers (src/daemon/sweep.ts) */
  readonly #startupWait: PeerWait;
  /** skein routes were found in the kernel at start: a restart (RFC 4724 §4.1 R bit until the FIB is reconciled) */
  #restarting = false;
  #configuredLevel: LogLevel;
  /** live migration: watches target interfaces for the VM's announcement, wakes TimeWait ends */
  readonly #migration: MigrationWatcher;
  /** which learned path beats a local workload route, and each one's kernel metric (src/daemon/route-priority.ts) */
  readonly #priority = new RoutePriority();

  /**
   * Log lines a remote party can cause, rate limited per (source, kind): one limiter for the daemon's life, shared
   * by every speaker it starts, with what it holds back counted in /metrics (skein_log_suppressed_total).
   */
  readonly #remoteLog = new LogRateLimit({ onSuppressed: (kind) => this.metrics.logSuppressed(kind) });

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
    // with fib.enabled false the route table keeps no learned routes (routes.ts #keepLearned; see #listenBest)
    this.routes = new RouteTable(this.fib, { keepLearned: this.fib !== undefined });
    this.#fibResolver = new FibResolver(this.routes, () => this.speaker);
    this.#migration = new MigrationWatcher(this.log,
      (id) => this.#applyMigration(this.controller.migrationAnnounced(id)),
      () => this.#applyMigration(this.controller.migrationTick()));
    this.#sampler = new MetricsSampler({ metrics: this.metrics, readiness: this.readiness, fib: this.fib, routes: this.routes, speaker: () => this.speaker });
    this.metrics.fibRoutesSource(() => this.#sampler.fibCounts());
    if (this.fib) {
      const fib = this.fib;
      this.metrics.fibWriterSource(() => fib.writer());
    }
    this.#notifier = new StartNotifier({
      log: this.log, metrics: this.metrics, readiness: this.readiness, env: this.#env,
      stopping: () => this.#stopping,
      fibSync: () => (this.speaker ? this.#startupWait.json() : undefined),
    });
    this.#apply = new DiffApplier({
      cfg: () => this.cfg, log: this.log, metrics: this.metrics, readiness: this.readiness, controller: this.controller,
      policy: this.policy, routes: this.routes,
      speaker: () => this.speaker,
      identityAsn: () => this.identity?.asn,
      stopping: () => this.#stopping,
      restartSpeaker: (id) => this.#restartSpeaker(id),
      peerRemoved: (a) => this.#startupWait.delete(a),
      opened: () => {
        this.#everReady = true;
        this.#startupWait.check();
      },
      migrationSync: () => this.#migration.sync(this.controller.migrationWatches(), this.controller.migration.nextDeadline()),
    });
    this.#events = new ChangeBatcher({
      log: this.log, metrics: this.metrics, readiness: this.readiness,
      model: () => this.#ds?.model,
      stopping: () => this.#stopping,
      everReady: () => this.#everReady,
      apply: (model, events) => this.#applyEvents(model, events),
    });
    this.#speakerEvents = new SpeakerEvents({
      log: this.log, metrics: this.metrics, watch: this.watch, readiness: this.readiness, routes: this.routes,
      remoteLog: this.#remoteLog,
      stopping: () => this.#stopping,
      up: (a, now) => {
        // the session's table follows: fib/'s request thread starts now rather than under the first batch
        this.fib?.prepare();
        this.#startupWait.up(a, now);
      },
    });
    // Sweep the FIB once every start-up peer has sent its routes (or at the deadline), and the gate is open.
    this.#startupWait = new PeerWait({
      sent: (a, at, now) => this.#peerSent(a, at, now),
      cancelled: () => this.#stopping,
      mayFinish: () => this.controller.state.ready,
      settled: () => this.#bestSettled(),
      done: (waiting) => this.#fibSweep(waiting),
    });
    this.#priority.attach(this.routes);
    this.bfd = new BfdWiring({
      log: this.log.child({ component: 'bfd' }),
      nodeName: cfg.nodeName,
      model: () => this.#ds?.model,
      peers: () => this.controller.state.peers.map((p) => p.address),
      // RFC 5882 §4.3: the path is gone. The session ends without graceful-restart retention, its withdrawals are
      // handed over synchronously, and the kernel is written in this same turn (docs/contract.md, "BFD").
      onDown: (peer, reason) => {
        if (this.#stopping) return;
        // first the peer's nexthop object: one message takes it out of every route (fib/nexthops.ts)
        const hop = addressBytes(peer);
        if (hop) this.fib?.nextHopDown(hop.length === 4 ? 4 : 6, hop);
        this.speaker?.endSessionForBfd(peer, `BFD down: ${reason}`);
        // the route table queues best-path changes in 10 ms slices: apply what is queued before writing
        this.routes.drain();
        this.fib?.writeNow();
      },
      // a host back from a power loss: its session is started now, not after the damped wait (speaker/path-up.ts)
      onUp: (peer) => {
        if (!this.#stopping) this.speaker?.pathUp(peer);
      },
      transport: chooseBfdTransport(cfg.bfd, this.log.child({ component: 'bfd' })),
    });
    this.drain = new Drain({
      log: this.log, metrics: this.metrics, seconds: () => this.cfg.bgp.shutdownDrainSeconds, speaker: () => this.speaker,
      notify: (s) => this.#notifier.notify(s),
      ...(cfg.stateDirectory ? { stateFile: join(cfg.stateDirectory, 'drain.json') } : {}),
    });
    this.metrics.bfdSource(() => this.bfd.sessions().map((s) => ({ peer: s.key.peer, state: s.state, downCount: s.downCount, timerLateMaxMs: s.timerLateMaxMs, lateTimers: s.lateTimers })));
    this.routes.onWriteWanted = () => this.watch.active; // a written route is made into text only for a watcher
    this.watch.onActiveChange = () => {
      if (this.speaker) this.#listenBest(this.speaker);
    };
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
    const gid = await controlGroup(this.cfg);
    this.#monitor.start();
    this.#runtime = new RuntimeStats(this.metrics.registry);
    // READY=1 and STATUS= for systemd; while starting, what the start waits for.
    this.#notifier.start();
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
    this.#control = await listenControl(this, { gid, log, runtime: () => this.#runtime });

    if (this.fib) {
      const fib = this.fib;
      fibEvents(fib, { log, metrics: this.metrics, watch: this.watch });
      await fib.start();
      const st = fib.stats();
      this.#restarting = st.stale > 0;
      log.info('fib started: routes already in the kernel were adopted', { adopted: st.stale, table: this.cfg.fib.table, protocol: this.cfg.fib.protocol });
      if (this.cfg.fib.learn) {
        const learner = new KernelLearner({
          ownProtocol: this.cfg.fib.protocol,
          linkName: (i) => fib.linkName(i),
          onChange: () => this.#applyLearned(),
        });
        this.#learner = learner;
        fib.on('foreignRouteChange', (added, k) => learner.change(added, k));
      }
      // Next-hop resolution (RFC 4271 §9.1.2) against the kernel's non-BGP routes, read before the speaker starts.
      // Its dumps of those routes are also what fib.learn takes as the kernel's state.
      const learner = this.#learner;
      this.#reach = new KernelReachability({
        ...(learner !== undefined ? { onRoutes: (dumped, settled) => learner.settle(dumped, settled) } : {}),
        intervalMs: this.cfg.fib.nextHopScan * 1000,
        ownProtocol: this.cfg.fib.protocol,
        // route changes of other protocols, from the FIB's own event socket (no socket or process of its own)
        follow: fib,
        onChange: (r) => {
          const n = this.speaker?.setReachability(r) ?? 0;
          // recursive next hops: routes through a next hop that is not on a link go via the covering route's gateway
          const moved = this.#fibResolver.kernel(r.resolving ?? []);
          // every workload's route Felix writes changes the view: a line at info only when it changed a decision
          log[n > 0 || moved > 0 ? 'info' : 'debug']('next-hop reachability read from the kernel', { routes: r.routes.length, addresses: r.addresses.length, prefixesRedecided: n, prefixesMoved: moved });
        },
        // a pod's route (beside Felix) and other single route events: what changed, not a whole view to rebuild from
        onRoutesChanged: (d) => {
          const n = this.speaker?.changeReachability(d.added, d.removed) ?? 0;
          const moved = this.#fibResolver.kernelChanged(d.addedResolving, d.removedResolving);
          if (n > 0 || moved > 0) log.info('next-hop reachability changed by route events', { added: d.added, removed: d.removed, prefixesRedecided: n, prefixesMoved: moved });
        },
        onError: (e) => log.warn('cannot read next-hop reachability from the kernel; keeping the last view', { err: e }),
      });
      await this.#reach.start();
    }
    this.#sampler.start();

    // fib.learn: the workloads' routes come from the kernel, as for Calico's BIRD; the endpoints are Felix's to read
    const ds = openDatastore(this.cfg.datastore, this.cfg.nodeName, { workloadEndpoints: !this.cfg.fib.learn });
    this.#ds = ds;
    ds.on('status', (s) => this.#onStatus(s));
    ds.on('invalid', (i: Issue) => {
      this.metrics.datastoreRejected(i.kind ?? 'unknown');
      log[i.severity === 'error' ? 'warn' : 'info']('datastore record', { source: i.source, line: i.line, field: i.field, reason: i.reason, kind: i.kind, name: i.name, severity: i.severity });
    });
    ds.on('snapshot', (m) => {
      this.#onSnapshot(m).then(() => this.#listMemory.listed(), (e: unknown) => this.#fatal('cannot start the BGP speaker', e));
    });
    ds.on('change', (ev: ChangeEvent) => this.#events.push(ev));
  }

  /** Resolves once stop() has finished. */
  get stopped(): Promise<void> | undefined {
    return this.#stopped;
  }

  /**
   * Clean stop (src/daemon/shutdown.ts): sessions end without a NOTIFICATION, every route stays in the kernel. With
   * `drain` (a signal) and bgp.shutdownDrainSeconds set, the node drains first (src/daemon/drain.ts), running fully
   * meanwhile, and the sessions end with Cease / Administrative Shutdown.
   */
  stop(reason = 'skeind stopping', o: { drain?: boolean } = {}): Promise<void> {
    if (this.#stopped) return this.#stopped;
    // without a drain the stop begins in this turn, as it always did
    this.#stopped = o.drain === true && this.drain.drainsOnStop
      ? this.stopKind().then((kind) => {
        // `systemctl restart` is a restart, not a node leaving: no drain, no Cease, peers keep our routes under
        // graceful restart (src/daemon/systemd-job.ts); a drain from skeinctl is kept for the next skeind (drain.json)
        if (kind === 'restart') {
          this.log.info('stop: systemd is restarting skeind, so it does not drain (bgp.shutdownDrainSeconds is for a stop)', { drain: this.drain.state });
          return this.#shutdown(reason, undefined);
        }
        return this.drain.beforeStop().then((leaving) => this.#shutdown(reason, leaving));
      })
      : this.#shutdown(reason, undefined);
    return this.#stopped;
  }

  /** What systemd does to our unit at a stop signal (replaceable by tests). */
  stopKind: () => Promise<StopKind> = () => stopKind();

  #shutdown(reason: string, leaving: string | undefined): Promise<void> {
    this.#stopping = true;
    this.#listMemory.stop();
    this.drain.close();
    return shutdown({
      log: this.log,
      notify: (s) => this.#notifier.notify(s),
      clearTimers: () => {
        this.#startupWait.close();
        this.#sampler.stop();
        this.#migration.close();
        this.#notifier.stop();
      },
      speaker: this.speaker,
      leaving,
      control: this.#control,
      bfd: this.bfd,
      datastore: this.#ds,
      reach: this.#reach,
      fib: this.fib,
      http: this.#http,
      readiness: this.readiness,
      monitor: this.#monitor,
      runtime: this.#runtime,
    }, reason).then(() => this.#resolveFinished());
  }

  #fatal(what: string, e: unknown): void {
    this.log.error(what, { err: e });
    // a socket that cannot be bound is a setting to fix: exit 2 naming it (src/daemon/bind.ts)
    if (e instanceof BindError) process.stderr.write(`skeind: ${e.message}\n`);
    process.exitCode = e instanceof BindError ? 2 : 1;
    void this.stop(what);
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
    // Before that, "synced" alone is not ready: the snapshot is applied and the BGP port bound only in #onSnapshot
    // (the port comes from the datastore's Node), and a node that said "ready" and then failed to bind (port 179 in
    // use) told systemd and /readyz something false before exiting.
    this.readiness.setDatastoreSynced(this.#snapshotApplied && (synced || s.state !== 'connecting'));
    const fields = { state: s.state, lastError: s.lastError, revision: s.revision };
    if (s.state === 'disconnected' || s.lastError !== undefined) this.log.warn('datastore status', fields);
    else this.log.info('datastore status', fields);
  }

  /** memory back to the system after each full datastore list (daemon/memory.ts) */
  readonly #listMemory = new ListMemory({ onRelease: (before, after) => this.log.debug('memory released after the datastore list', { rssBefore: before, rssAfter: after }) });
  #dsState: DatastoreStatus['state'] | undefined;
  /** the first snapshot is in force and the BGP speaker listens (end of #onSnapshot) */
  #snapshotApplied = false;

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
    this.#priority.update(model);
    const diff = this.controller.update(model);
    this.#setLocalInterfaces();
    const state = this.controller.state;
    for (const p of state.peers) this.#startupWait.add(p.address);
    this.readiness.setPeers(state.peers.map((p) => p.address));
    await this.#apply.apply(diff, true);
    this.#events.goLive();
    this.#snapshotApplied = true;
    this.readiness.setDatastoreSynced(this.#ds?.status.state === 'synced');
    this.#startupWait.start(startupDeadline(state.peers));
    this.bfd.schedule();
  }

  /** One batch of datastore changes (src/daemon/events.ts) through the controller and into the running parts. */
  #applyEvents(model: Model | undefined, events: ChangeEvent[]): void {
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
      this.#priority.update(model);
    }
    const rulesChanged = model !== undefined && events.some((ev) => RULE_KINDS.has(ev.kind));
    if (rulesChanged) this.policy.update(model, this.cfg.nodeName);
    const diff = this.controller.applyChanges(events);
    // Per workload event elsewhere in the cluster (the bulk of the churn every host sees) nothing below has work:
    // BFD's reconcile (an async pass over the peers; its RECHECK_MS timer still follows the routes to them) only
    // when peers, BFDConfigurations or this node's labels may have changed, the interface map only when the device
    // routes it is made of changed.
    if (diff.peers.added.length + diff.peers.changed.length + diff.peers.removed.length > 0 || events.some((ev) => BFD_KINDS.has(ev.kind))) this.bfd.schedule();
    if (this.#learner !== undefined) {
      if (diff.deviceRoutes.added.length + diff.deviceRoutes.changed.length + diff.deviceRoutes.removed.length > 0) this.#setLocalInterfaces();
    } else {
      // the device routes that changed, not the whole map again (a pod of this node)
      for (const r of diff.deviceRoutes.removed) this.policy.setLocalInterface(r.prefix, undefined);
      for (const r of [...diff.deviceRoutes.changed.map((c) => c.after), ...diff.deviceRoutes.added]) this.policy.setLocalInterface(r.prefix, r.interface);
    }
    // BGPFilter, pools, blocks: peers whose rule lists changed get them now, without a session reset.
    if (rulesChanged && restart === undefined) this.#apply.reapplyRules();
    // Another node's workload changes nothing here: skip the pass over peers, announcements and routes. (A live
    // migration's target endpoint changes nothing either until its VM announces itself, but must be watched.)
    if (restart === undefined && diffIsEmpty(diff)) {
      const node = this.cfg.nodeName;
      if (!events.every((ev) => otherNodesEndpoint(ev, node))) this.#migration.sync(this.controller.migrationWatches(), this.controller.migration.nextDeadline());
      return;
    }
    this.#apply.apply(diff, false, restart).catch((e: unknown) => this.log.error('applying datastore changes failed', { err: e }));
  }

  /**
   * The routes learned from the kernel changed (fib.learn): announcements follow. Before the datastore's snapshot
   * the controller only keeps them; the snapshot's derivation includes them.
   */
  #applyLearned(): void {
    const learner = this.#learner;
    if (learner === undefined || this.#stopping) return;
    // what changed, not the whole set: a workload's route is one prefix among the host's hundreds
    const changes = learner.takeChanges();
    const diff = this.controller.changeLearned(changes);
    for (const [prefix, r] of changes) this.policy.setLocalInterface(prefix, r?.ifname);
    if (!this.#events.live || diffIsEmpty(diff)) return;
    this.#apply.apply(diff, false).catch((e: unknown) => this.log.error('applying routes learned from the kernel failed', { err: e }));
  }

  /**
   * The interface of each local route, for BGPFilter rules' `interface` (Calico matches it against a kernel-learned
   * route's ifname): the workload device routes skein derives, or with fib.learn the routes it learned.
   */
  #setLocalInterfaces(learned = this.#learner?.routes()): void {
    if (learned === undefined) this.policy.setLocalInterfaces(this.controller.state.deviceRoutes);
    else this.policy.setLocalInterfaces(learned.flatMap((r) => (r.ifname !== undefined ? [{ prefix: r.prefix, interface: r.ifname }] : [])));
  }

  /** A live-migration step (the VM announced itself, a TimeWait ended) changes announcements and routes like a datastore change. */
  #applyMigration(diff: ControllerDiff): void {
    if (this.#stopping || !this.#events.live) return;
    if (diffIsEmpty(diff)) {
      this.#migration.sync(this.controller.migrationWatches(), this.controller.migration.nextDeadline());
      return;
    }
    this.#apply.apply(diff, false).catch((e: unknown) => this.log.error('applying a live-migration step failed', { err: e }));
  }

  /** The more verbose of skein.yaml's log.level and Calico's logSeverityScreen (src/daemon/reload.ts logLevelFor). */
  #applyLogSeverity(model: Model): void {
    const { level, from } = logLevelFor(model, this.cfg.nodeName, this.#configuredLevel);
    if (level !== this.log.level) {
      this.log.info('log level', { level, from });
      this.log.setLevel(level);
    }
  }

  // ------------------------------------------------------------------ the speaker

  async #startSpeaker(id: SpeakerIdentity): Promise<Speaker> {
    const log = this.log;
    const speaker = new Speaker(speakerOptions(id, this.cfg, {
      remoteLog: this.#remoteLog,
      routeInterface: (prefix, nextHops, local) => this.policy.routeInterface(prefix, nextHops, local),
      onUpdateApplied: (seconds) => {
        this.metrics.updateProcessed(seconds);
        // without best-path changes to time it by (fib.enabled false, see #listenBest), a peer's table is done after
        // 1 s without an UPDATE (src/daemon/sweep.ts peerSent)
        if (this.fib === undefined) this.#speakerEvents.lastBestAt = Date.now();
      },
      forwardingState: this.fib !== undefined,
      restarting: this.#restarting,
    }));
    if (this.#reach?.current) speaker.setReachability(this.#reach.current);
    this.drain.attach(speaker);
    speaker.on('peer', (ev: PeerStateEvent) => this.#speakerEvents.peerState(ev));
    this.#listenBest(speaker);
    speaker.on('stall', (ev: { ms: number }) => this.metrics.stall(ev.ms / 1000));
    speaker.on('nexthops', () => this.#fibResolver.moved());
    speaker.on('log', (l: { level: 'info' | 'warn' | 'error'; msg: string; peer?: string }) => {
      log[l.level](l.msg, l.peer !== undefined ? { peer: l.peer, component: 'bgp' } : { component: 'bgp' });
    });
    this.speaker = speaker;
    const field = id.listenPortFrom ?? 'bgp.listen.port';
    await bindAs(field, id.listenAddress.includes(':') ? `[${id.listenAddress}]:${id.listenPort}` : `${id.listenAddress}:${id.listenPort}`, () => speaker.start());
    log.info('BGP speaker listening', { asn: id.asn, routerId: id.routerId, address: id.alsoListen !== undefined ? `${id.listenAddress}, ${id.alsoListen}` : id.listenAddress, port: speaker.port });
    return speaker;
  }

  readonly #onBest = (evs: BestBatch): void => this.#speakerEvents.best(evs);

  /**
   * Listen to the speaker's best-path changes as far as someone uses them. With a FIB, always, the whole table
   * ('bestBatch'). With fib.enabled false nothing is written anywhere, and the stream only feeds `skeinctl watch`
   * ('best' rows, and 'fib' rows for the writes the routes would be): the speaker records changes only while a watcher
   * is there, from then on ('bestLive'), so a full table costs no change queue, drain and route-table copy (a quarter
   * of skeind's CPU at 1M routes, issue 16). Called at the speaker's start and when watchers come or go.
   */
  #listenBest(speaker: Speaker): void {
    if (this.fib !== undefined) {
      if (speaker.listenerCount('bestBatch') === 0) speaker.on('bestBatch', this.#onBest);
      return;
    }
    const on = speaker.listeners('bestLive').includes(this.#onBest);
    if (this.watch.active && !on) speaker.on('bestLive', this.#onBest);
    else if (!this.watch.active && on) speaker.off('bestLive', this.#onBest);
  }

  /**
   * AS, router ID and listen socket belong to the speaker itself (they are in every OPEN, RFC 4271 §4.2): a change
   * replaces the speaker, so every session restarts, as BIRD's do when confd rewrites its configuration.
   */
  #identityChange(model: Model): SpeakerIdentity | undefined {
    if (!this.identity) return undefined;
    const now = speakerIdentity(this.cfg, model);
    const was = this.identity;
    const changed = identityChanges(was, now);
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
      old.removeAllListeners('bestBatch');
      old.removeAllListeners('bestLive');
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
      this.#apply.peerLabels(p);
      const opts = await this.#apply.peerOptions(p);
      if (!opts) continue;
      try {
        speaker.addPeer(opts);
      } catch (e) {
        this.log.warn('adding peer failed', { peer: p.address, err: e });
      }
    }
    if (state.ready) for (const o of state.announce) this.#apply.originate(o, true);
    // Sweep once every peer is back and quiet, or after the start-up deadline.
    const started = Date.now();
    const wait = new PeerWait({
      sent: (a, at, now) => this.#peerSent(a, at, now),
      cancelled: () => this.#stopping || this.speaker !== speaker,
      settled: () => this.#bestSettled(),
      done: () => {
        const swept = this.routes.sweepBgpStale();
        this.log.info('BGP routes re-learned after the speaker restart', { stale, swept });
        this.#sampler.fibMetrics();
      },
    });
    for (const p of state.peers) wait.add(p.address, started);
    wait.start(DEFAULT_SYNC_DEADLINE_MS);
  }

  /** Every best-path change the speaker has made is in the route table (so in fib/'s wanted state): a sweep may run. */
  #bestSettled(): boolean {
    return (this.speaker?.pendingBestChanges ?? 0) === 0 && this.routes.pending === 0;
  }

  /** Has this peer sent its routes since `at` (src/daemon/sweep.ts peerSent)? For both waits: start-up and speaker restart. */
  #peerSent(address: string, at: number, now: number): boolean {
    return peerSent(this.speaker?.peerInfo(address), at, this.#speakerEvents.lastBestAt, now);
  }

  /** The start-up wait is over (src/daemon/sweep.ts): end the restart and remove adopted routes nobody wants. */
  #fibSweep(waiting: string[]): void {
    this.#restarting = false;
    this.speaker?.restartComplete();
    if (waiting.length > 0) this.log.warn('start-up peers not all heard from; reconciling the FIB anyway', { waiting });
    const fib = this.fib;
    if (!fib) {
      this.readiness.setFibReconciled(true);
      this.#releaseAfterStartup();
      return;
    }
    // (the swept count comes from the sweep's own walk: stats() would walk a million entries once more, in one piece)
    fib.markSynced().then(
      (swept) => {
        this.log.info('fib reconciled: routes nobody asked for again were removed', { swept });
        this.readiness.setFibReconciled(true);
        this.#sampler.fibMetrics();
        this.#releaseAfterStartup();
      },
      (e: unknown) => this.log.error('fib sweep failed', { err: e }),
    );
  }

  /**
   * Start-up is over (every start-up peer has sent its table and the FIB is swept): give its garbage back (issue #16,
   * the per-host footprint). The sessions' first exchange (49 mesh peers' OPENs and tables, the sweep's dump) comes
   * after the datastore list's own release, so an idle host kept it resident: 100-104 MiB with the etcd datastore and
   * 49 peers, 81-83 MiB with this release (`npm run bench -- convergence`). The same collection and trim as after a
   * datastore list (src/daemon/memory.ts); a list arriving meanwhile restarts it.
   */
  #releaseAfterStartup(): void {
    if (!this.#stopping) this.#listMemory.listed(STARTUP_CHURN_BYTES);
  }

  // ------------------------------------------------------------------ control methods (src/daemon/status.ts)

  status(): StatusJson {
    return { ...statusJson({
      cfg: this.cfg, version: VERSION, identity: this.identity, readiness: this.readiness, speaker: this.speaker,
      datastore: this.#ds?.status, fibSync: () => this.#startupWait.json(), peers: () => this.peers(),
    }), drain: this.drain.json() };
  }

  peers(): PeerJson[] {
    return peersJson(this.speaker, this.controller.state.peers, this.bfd);
  }

  routesJson(prefix?: string): { routes: RouteJson[]; policy?: { imported: PolicyVerdictJson[]; exported: PolicyVerdictJson[] } } {
    return routesJson(this.speaker, (k) => this.routes.installed(k), prefix);
  }

  /** `skeinctl routes` over the control socket: a stream of rows, made a slice at a time (src/daemon/route-query.ts). */
  routesStream(params: Record<string, unknown>): ControlStream | { routes: RouteJson[] } {
    const q = parseRouteQuery(params);
    const speaker = this.speaker;
    if (!speaker) return { routes: [] };
    return routesStream(q, {
      rib: speaker.rib,
      installed: (k) => this.routes.installed(k),
      peerId: (a) => speaker.coreIdOf(a),
      advertisedPrefixes: (id) => speaker.rib.advertisedPrefixes(id),
      policyTrace: (prefix) => speaker.policyTrace(prefix),
    });
  }

  fibJson(): FibJson {
    return fibJson(this.fib, this.routes, this.cfg.fib);
  }

  /** SIGHUP / `skeinctl reload` (src/daemon/reload.ts). Sessions stay up. */
  reload(): Promise<ReloadJson> {
    return reload({
      cfg: this.cfg, env: this.#env, log: this.log, metrics: this.metrics, datastore: this.#ds,
      setConfig: (cfg) => { this.cfg = cfg; },
      setConfiguredLevel: (level) => {
        this.#configuredLevel = level;
        if (this.#ds?.model) this.#applyLogSeverity(this.#ds.model);
        else this.log.setLevel(level);
      },
      applyLogSeverity: (model) => this.#applyLogSeverity(model),
      refreshPasswords: () => this.#apply.refreshPasswords(),
    });
  }
}
