// The daemon's Prometheus metrics: one registry, every name prefixed `skein_`, Node's process metrics included.
// Other code calls the typed methods here and never touches prom-client, so names and labels stay in one place
// (docs/contract.md, "Watching it run"). Series labelled with a peer are tracked per peer and deleted when the
// peer goes away, so a mesh whose nodes come and go does not accumulate dead series.
//
// Conventions follow the exporters operators already alert on: a `skein_build_info` gauge, a per-peer up gauge
// with the peer's name, AS and type as labels (as MetalLB's metallb_bgp_session_up and GoBGP's exporter do), a flap
// counter and the session's uptime. `promtool check metrics` passes (test/ops/ops-metrics.test.ts).
//
// Cardinality (metrics.peerDetail in skein.yaml): with `full`, about 28 series per peer (two families, a busy
// session; test/ops/ops-metrics.test.ts counts them); in a node-to-node mesh every node has N-1 peers, so a 500-node mesh
// exposes ~14,000 series per node and ~7M in the cluster. With
// `summary`, only skein_bgp_peer_up, skein_bgp_peer_flaps_total and skein_bgp_peer_uptime_seconds stay per peer (3
// series); every other per-peer metric loses its `peer` label and is summed over the peers (skein_bgp_peer_state
// and skein_bgp_peer_graceful_restart_phase then count the peers in each state or phase), and
// skein_bgp_peer_established_since_seconds is left out.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from './prom.js';

const DATASTORE_STATES = ['connecting', 'synced', 'resyncing', 'disconnected'] as const;

export const PEER_STATES = ['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established'] as const;
export type PeerState = (typeof PEER_STATES)[number];
export type BgpMessageType = 'OPEN' | 'UPDATE' | 'NOTIFICATION' | 'KEEPALIVE' | 'ROUTE-REFRESH';
/** An address family as docs/contract.md spells it: "ipv4-unicast", "ipv6-unicast". */
export type FamilyName = string;
export type OriginationKind = 'block' | 'borrowed' | 'kernel' | 'service';

/** One BFD session as /metrics shows it. */
export interface BfdMetricSample {
  readonly peer: string;
  readonly state: string;
  readonly downCount: number;
  /** the latest a BFD timer of this session fired, ms (bgp/bfd/manager.ts) */
  readonly timerLateMaxMs?: number;
  readonly lateTimers?: number;
}

export interface FibRouteCounts {
  desired?: number;
  installed?: number;
  failed?: number;
}

/** The kernel writer's counters (fib/ Programmer.writer()), read at each scrape. */
export interface FibWriterSample {
  readonly sent: { readonly add: number; readonly replace: number; readonly delete: number };
  readonly resyncs: number;
  readonly overruns: number;
  readonly repairs: number;
  readonly nexthops: number;
  readonly directBatches: number;
  readonly requestThreadRunning: boolean;
  readonly requestThreadStarts: number;
}

export interface PrefixCounts {
  received?: number;
  accepted?: number;
  advertised?: number;
}

export type PeerDetail = 'full' | 'summary';

export interface MetricsOptions {
  /** Node's process and event-loop metrics (`skein_process_*`, `skein_nodejs_*`); default true. */
  defaultMetrics?: boolean;
  /** per-peer series: `full` (default) or `summary` (see the header) */
  peerDetail?: PeerDetail;
  /** skein's version for skein_build_info */
  version?: string;
}

/** What the up gauge says about a peer besides its address. */
export interface PeerLabels {
  /** the BGPPeer's name, or Calico's mesh name (Mesh_10_0_0_2) */
  name: string;
  asn: number;
  /** "node-to-node mesh", "global", "node specific", "route reflector" */
  type: string;
}

/**
 * The default collectors' gauges whose names end in _total (a counter's suffix; `promtool check metrics` rejects
 * them). They only sum the by-type gauges of the same name without the suffix, which stay.
 */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

type Labels = Record<string, string>;

/**
 * Observations of a histogram that every received UPDATE and every kernel acknowledgement records, kept as plain
 * numbers and handed to prom-client when /metrics is read (the histogram's collect()) or 1,024 at a time. prom-client's
 * observe() (its label hashing and bucket search, run cold once per event) was ~2% of a host's main thread per workload
 * event in the 10-host convergence bench (perf); what /metrics shows is the same.
 */
class Observations {
  #pending: number[] = [];

  constructor(readonly histogram: Histogram) {}

  add(v: number): void {
    if (this.#pending.push(v) >= 1024) this.flush();
  }

  flush(): void {
    const p = this.#pending;
    if (p.length === 0) return;
    this.#pending = [];
    for (const v of p) this.histogram.observe(v);
  }
}

/** Seconds-scale buckets for work that is usually milliseconds and sometimes seconds (netlink batches, UPDATEs). */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Metrics {
  readonly registry = new Registry();

  readonly peerDetail: PeerDetail;
  // Per peer. The state gauge has one series per (peer, state), 1 for the current state and 0 for the others,
  // so `skein_bgp_peer_state{state="Established"} == 0` finds every peer that is down.
  readonly #peerState: Gauge<string>;
  readonly #peerSince: Gauge<'peer'> | undefined;
  readonly #staleRoutes: Gauge<string>;
  readonly #grPhase: Gauge<string>;
  readonly #prefixes: Record<keyof PrefixCounts, Gauge<string>>;
  readonly #msgIn: Counter<string>;
  readonly #msgOut: Counter<string>;
  readonly #notifIn: Counter<string>;
  readonly #notifOut: Counter<string>;
  readonly #updateSeconds: Histogram;
  readonly #updateObs: Observations;
  readonly #policyRejected: Counter<'peer' | 'direction'>;
  // Per peer in both detail levels.
  readonly #peerUp: Gauge<'peer' | 'name' | 'asn' | 'type'>;
  readonly #flaps: Counter<'peer'>;
  readonly #prefixLimit: Gauge<string>;
  readonly #peerLabels = new Map<string, Labels>();
  readonly #peerStateNow = new Map<string, { state: PeerState; sinceMs: number }>();
  /** summary: metric name -> peer -> label key (without peer) -> labels and value; summed at scrape */
  readonly #summed = new Map<string, Map<string, Map<string, { labels: Labels; value: number }>>>();
  // FIB.
  readonly #fibRoutes: Gauge<'state'>;
  #fibSource: (() => FibRouteCounts | undefined) | undefined;
  #fibWriterSource: (() => FibWriterSample | undefined) | undefined;
  #bfdSource: (() => readonly BfdMetricSample[]) | undefined;
  readonly #fibFailures: Counter<'reason'>;
  readonly #fibSeconds: Histogram;
  readonly #fibObs: Observations;
  readonly #fibPersistent: Gauge;
  // Datastore, origination, readiness.
  readonly #dsSynced: Gauge;
  readonly #dsState: Gauge;
  readonly #dsRevision: Gauge;
  readonly #dsHeld: Gauge;
  readonly #dsFrozen: Gauge;
  readonly #dsLastChange: Gauge;
  readonly #dsUpdates: Counter<'kind'>;
  readonly #dsUpdateChildren = new Map<string, { inc(v?: number): void }>();
  readonly #dsRejected: Counter<'kind'>;
  readonly #originated: Gauge<'kind'>;
  readonly #ready: Gauge;
  readonly #reloads: Counter<'result'>;
  // Log lines a remote party caused that the rate limit held back, and stalls of the process (issue 15).
  readonly #logSuppressed: Counter<'kind'>;
  readonly #stalls: Histogram;

  // peer -> (metric, labels) of every series created for it, and bound children for the hot counters.
  readonly #peerSeries = new Map<string, Map<string, { metric: Gauge<string> | Counter<string>; labels: Labels }>>();
  readonly #children = new Map<string, { inc(v?: number): void }>();

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics(this.registry, 'skein_');
      for (const n of MISNAMED_DEFAULTS) this.registry.removeSingleMetric(`skein_${n}`);
    }
    const full = (this.peerDetail = options.peerDetail ?? 'full') === 'full';
    const metrics = this; // eslint-disable-line @typescript-eslint/no-this-alias -- collect() has its own `this`
    // In summary mode a per-peer metric has no peer label; its value is the sum over peers, filled in at scrape.
    const perPeer = (labels: string[]): string[] => (full ? ['peer', ...labels] : labels);
    const summed = (name: string): { collect?: (this: Gauge<string>) => void } => (full ? {} : {
      collect(this: Gauge<string>) {
        this.reset();
        const sums = new Map<string, { labels: Labels; value: number }>();
        for (const series of metrics.#summed.get(name)?.values() ?? []) {
          for (const [k, v] of series) {
            const s = sums.get(k);
            if (s) s.value += v.value;
            else sums.set(k, { labels: v.labels, value: v.value });
          }
        }
        for (const s of sums.values()) this.set(s.labels, s.value);
      },
    });
    const g = (name: string, help: string, labels: string[]): Gauge<string> =>
      new Gauge({ name, help, labelNames: perPeer(labels), registers, ...summed(name) });

    this.#peerState = g('skein_bgp_peer_state', 'BGP session state per peer: 1 for the current state, 0 for the others (peerDetail summary: peers in each state)', ['state']);
    this.#peerSince = full
      ? new Gauge({ name: 'skein_bgp_peer_established_since_seconds', help: 'Unix time the session with the peer became Established (absent while it is not)', labelNames: ['peer'], registers })
      : undefined;
    this.#staleRoutes = g('skein_bgp_peer_stale_routes', 'Routes from the peer kept as stale by graceful restart (RFC 4724) or long-lived graceful restart (RFC 9494)', []);
    this.#grPhase = g('skein_bgp_peer_graceful_restart_phase', 'Graceful restart helper phase for the peer: 1 for the current phase (none, restart, stale-path, long-lived), 0 for the others (peerDetail summary: peers in each phase)', ['phase']);
    this.#prefixes = {
      // received is the speaker's per-peer counter of announced NLRI (bgp/speaker/stats.ts countReceived), accepted
      // the peer's paths in the RIB (RibCore.peerStats), advertised its Adj-RIB-Out; each per family (PeerJson
      // prefixesByFamily): a session carrying both families reports each under its own label.
      received: g('skein_bgp_prefixes_received', 'Prefixes the peer announced in UPDATE messages, counted as they arrive, before import policy and any other check; cumulative since the peer was configured (a re-announcement counts again, a withdrawal does not subtract), in this family', ['family']),
      accepted: g('skein_bgp_prefixes_accepted', 'Routes from the peer held now: accepted by import policy, in its Adj-RIB-In, in this family', ['family']),
      advertised: g('skein_bgp_prefixes_advertised', 'Prefixes advertised to the peer (Adj-RIB-Out), in this family', ['family']),
    };
    this.#policyRejected = new Counter({ name: 'skein_policy_rejected_routes_total', help: 'Routes refused by the routing policy (BGPFilter rules, the export allow-list), per peer and direction (import; export counts each decision)', labelNames: ['peer', 'direction'], registers });
    this.#msgIn = new Counter({ name: 'skein_bgp_messages_received_total', help: 'BGP messages received, by type', labelNames: perPeer(['type']), registers });
    this.#msgOut = new Counter({ name: 'skein_bgp_messages_sent_total', help: 'BGP messages sent, by type', labelNames: perPeer(['type']), registers });
    this.#notifIn = new Counter({ name: 'skein_bgp_notifications_received_total', help: 'NOTIFICATION messages received, by error code and subcode (RFC 4271 §4.5)', labelNames: perPeer(['code', 'subcode']), registers });
    this.#notifOut = new Counter({ name: 'skein_bgp_notifications_sent_total', help: 'NOTIFICATION messages sent, by error code and subcode (RFC 4271 §4.5)', labelNames: perPeer(['code', 'subcode']), registers });
    this.#updateSeconds = new Histogram({
      name: 'skein_bgp_update_processing_seconds', help: 'Time to apply one received UPDATE to the RIB: import policy, the Adj-RIB-In and the decision process', buckets: LATENCY_BUCKETS, registers,
      collect() {
        metrics.#updateObs.flush();
      },
    });
    this.#updateObs = new Observations(this.#updateSeconds);
    this.#peerUp = new Gauge({ name: 'skein_bgp_peer_up', help: 'Whether the BGP session with the peer is Established (1) or not (0), labelled with the peer\'s name, AS and type', labelNames: ['peer', 'name', 'asn', 'type'], registers });
    this.#prefixLimit = g('skein_bgp_prefix_limit', 'Maximum prefixes accepted from the peer per family (skein.yaml bgp.maxPrefixes, RFC 4486); absent: no limit', ['family']);
    this.#flaps = new Counter({ name: 'skein_bgp_peer_flaps_total', help: 'Times the BGP session with the peer left the Established state', labelNames: ['peer'], registers });
    // Computed at scrape from the state map: no timer per peer.
    new Gauge({
      name: 'skein_bgp_peer_uptime_seconds', help: 'Seconds the BGP session with the peer has been Established (absent while it is not)', labelNames: ['peer'], registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const [peer, s] of metrics.#peerStateNow) if (s.state === 'Established') this.set({ peer }, Math.max(0, (now - s.sinceMs) / 1000));
      },
    });
    new Gauge({ name: 'skein_build_info', help: 'Always 1; the labels say which skein and which Node.js run', labelNames: ['version', 'nodejs_version'], registers })
      .set({ version: options.version ?? 'unknown', nodejs_version: process.versions.node }, 1);

    // Counted when /metrics is read (fibRoutesSource): counting walks every route, too much for every change.
    this.#fibRoutes = new Gauge({
      name: 'skein_fib_routes', help: 'Routes skein wants in the kernel (desired), has installed, or failed to install', labelNames: ['state'], registers,
      collect() {
        const counts = metrics.#fibSource?.();
        if (counts !== undefined) metrics.fibRoutes(counts);
      },
    });
    this.#fibFailures = new Counter({ name: 'skein_fib_failures_total', help: 'Failed kernel route operations, by reason', labelNames: ['reason'], registers });
    this.#fibSeconds = new Histogram({
      name: 'skein_fib_programming_seconds', help: 'Time from a route change to the kernel acknowledging it', buckets: LATENCY_BUCKETS, registers,
      collect() {
        metrics.#fibObs.flush();
      },
    });
    this.#fibObs = new Observations(this.#fibSeconds);
    this.#fibPersistent = new Gauge({ name: 'skein_fib_persistent_failures', help: 'Routes that have failed to go into the kernel for 10 s or more (also shown by /readyz and skeinctl status)', registers });
    this.#fibPersistent.set(0);

    this.#dsSynced = new Gauge({ name: 'skein_datastore_synced', help: '1 once the datastore has been read completely and is being watched, else 0', registers });
    this.#dsLastChange = new Gauge({ name: 'skein_datastore_last_change_timestamp_seconds', help: 'Unix time of the last change seen from the datastore', registers });
    this.#dsUpdates = new Counter({ name: 'skein_datastore_updates_total', help: 'Resource changes received from the datastore, by kind', labelNames: ['kind'], registers });
    this.#dsRejected = new Counter({ name: 'skein_datastore_rejected_total', help: 'Datastore records rejected as invalid, by kind', labelNames: ['kind'], registers });
    this.#originated = new Gauge({ name: 'skein_originated_prefixes', help: 'Prefixes this node originates, by kind (affine IPAM block, borrowed address, route learned from the kernel, service range)', labelNames: ['kind'], registers });
    this.#ready = new Gauge({ name: 'skein_ready', help: '1 when /readyz answers 200, else 0', registers });
    this.#logSuppressed = new Counter({ name: 'skein_log_suppressed_total', help: 'Log lines a remote party caused (refused connections, UPDATE errors, NOTIFICATIONs, sessions going down) that the per-source rate limit held back, by kind', labelNames: ['kind'], registers });
    this.#stalls = new Histogram({ name: 'skein_event_loop_stall_seconds', help: 'Stalls of the process (timers at least 1 s late), by length; _count is the number of stalls. No peer is blamed for them', buckets: [1, 2, 5, 10, 30, 60, 120], registers });
    this.#reloads = new Counter({ name: 'skein_reloads_total', help: 'Configuration reloads (SIGHUP, skeinctl reload), by result', labelNames: ['result'], registers });

    this.#dsSynced.set(0);
    this.#dsState = new Gauge({ name: 'skein_datastore_state', help: 'The datastore connection state: 1 for the current one (connecting, synced, resyncing, disconnected), 0 for the others', labelNames: ['state'], registers });
    for (const state of DATASTORE_STATES) this.#dsState.set({ state }, state === 'connecting' ? 1 : 0);
    this.#dsRevision = new Gauge({ name: 'skein_datastore_revision', help: 'etcd: the revision of the last change applied (or of the last full list)', registers });
    this.#dsHeld = new Gauge({ name: 'skein_datastore_held', help: 'file: 1 while a new version of the file is held back because it looks partial (drops this node, or shrinks below half)', registers });
    this.#dsHeld.set(0);
    this.#dsFrozen = new Gauge({ name: 'skein_datastore_frozen', help: '1 while ClusterInformation datastoreReady is false at run time: announcements and kernel routes are kept, datastore changes held', registers });
    this.#dsFrozen.set(0);
    this.#ready.set(0);
    for (const state of ['desired', 'installed', 'failed']) this.#fibRoutes.set({ state }, 0);
  }

  /** The text exposition, and the Content-Type to serve it with. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  // ----- peers -----

  /** The name, AS and type the up gauge carries for a peer; a change replaces its series. */
  peerLabels(peer: string, l: PeerLabels): void {
    const labels = { peer, name: l.name, asn: String(l.asn), type: l.type };
    const was = this.#peerLabels.get(peer);
    if (was && was.name === labels.name && was.asn === labels.asn && was.type === labels.type) return;
    if (was) this.#peerUp.remove(was);
    this.#peerLabels.set(peer, labels);
    this.#peerUp.set(labels, this.#peerStateNow.get(peer)?.state === 'Established' ? 1 : 0);
  }

  /** The peer's maximum-prefix limit for a family (bgp.maxPrefixes); alerts compare it with prefixes received. */
  prefixLimit(peer: string, family: FamilyName, limit: number): void {
    this.#set(peer, this.#prefixLimit, { peer, family }, limit);
  }

  /** Records the session state of a peer; called on every FSM transition. */
  peerState(peer: string, state: PeerState, nowMs = Date.now()): void {
    const was = this.#peerStateNow.get(peer);
    if (was?.state === 'Established' && state !== 'Established') this.#flaps.inc({ peer });
    else if (was === undefined) this.#flaps.inc({ peer }, 0); // the series exists from the start: rate() sees the first flap
    this.#peerStateNow.set(peer, { state, sinceMs: was?.state === state ? was.sinceMs : nowMs });
    const labels = this.#peerLabels.get(peer) ?? { peer, name: '', asn: '', type: '' };
    this.#peerLabels.set(peer, labels);
    this.#peerUp.set(labels, state === 'Established' ? 1 : 0);
    for (const s of PEER_STATES) this.#set(peer, this.#peerState, { peer, state: s }, s === state ? 1 : 0);
    if (!this.#peerSince) return;
    if (state === 'Established') this.#set(peer, this.#peerSince, { peer }, Math.floor(nowMs / 1000));
    else this.#peerSince.remove({ peer });
  }

  /** The peer's graceful restart helper state: its phase (null: none) and how many of its routes are stale. */
  gracefulRestart(peer: string, phase: 'restart' | 'stale-path' | 'long-lived' | null, staleRoutes: number): void {
    for (const p of ['none', 'restart', 'stale-path', 'long-lived'] as const) this.#set(peer, this.#grPhase, { peer, phase: p }, p === (phase ?? 'none') ? 1 : 0);
    this.#set(peer, this.#staleRoutes, { peer }, staleRoutes);
  }

  /** Sets the prefix counts of a peer for one family; counts left out keep their value. */
  prefixes(peer: string, family: FamilyName, counts: PrefixCounts): void {
    for (const kind of ['received', 'accepted', 'advertised'] as const) {
      const v = counts[kind];
      if (v !== undefined) this.#set(peer, this.#prefixes[kind], { peer, family }, v);
    }
  }

  messageIn(peer: string, type: BgpMessageType, n = 1): void {
    this.#inc(peer, this.#msgIn, { peer, type }, n);
  }
  messageOut(peer: string, type: BgpMessageType, n = 1): void {
    this.#inc(peer, this.#msgOut, { peer, type }, n);
  }
  notificationIn(peer: string, code: number, subcode: number): void {
    this.#inc(peer, this.#notifIn, { peer, code: String(code), subcode: String(subcode) }, 1);
  }
  notificationOut(peer: string, code: number, subcode: number): void {
    this.#inc(peer, this.#notifOut, { peer, code: String(code), subcode: String(subcode) }, 1);
  }

  /** Routes the peer's routing policy refused since the last call, in one direction. */
  policyRejected(peer: string, direction: 'import' | 'export', n: number): void {
    this.#inc(peer, this.#policyRejected, { peer, direction }, n);
  }

  /** Time spent on one UPDATE, in seconds. */
  updateProcessed(seconds: number): void {
    this.#updateObs.add(seconds);
  }

  /** Deletes every series of a peer that is no longer configured. */
  removePeer(peer: string): void {
    const up = this.#peerLabels.get(peer);
    if (up) this.#peerUp.remove(up);
    this.#peerLabels.delete(peer);
    this.#peerStateNow.delete(peer);
    this.#flaps.remove({ peer });
    for (const m of this.#summed.values()) m.delete(peer);
    const series = this.#peerSeries.get(peer);
    if (!series) return;
    for (const [key, { metric, labels }] of series) {
      if (this.peerDetail === 'full') metric.remove(labels);
      this.#children.delete(key);
    }
    this.#peerSince?.remove({ peer });
    this.#peerSeries.delete(peer);
  }

  /** Peers with at least one series (for tests and for the wiring to diff against the configured peers). */
  peersWithSeries(): string[] {
    return [...new Set([...this.#peerSeries.keys(), ...this.#peerLabels.keys()])];
  }

  // ----- FIB -----

  /** Where skein_fib_routes is read from at each scrape (the daemon's FIB); fibRoutes() still sets it directly. */
  /**
   * BFD sessions (RFC 5880), read when /metrics is read: skein_bfd_session_up{peer} (1 Up, 0 otherwise),
   * skein_bfd_sessions{state} (sessions per state) and skein_bfd_session_flaps_total{peer} (Up to Down transitions
   * since the session was added), skein_bfd_timer_lateness_max_seconds{peer} and skein_bfd_late_timers_total{peer}. Registered on the first call, so a daemon without BFD shows none of them.
   */
  bfdSource(source: () => readonly BfdMetricSample[]): void {
    if (this.#bfdSource === undefined) {
      const registers = [this.registry];
      const read = (): readonly BfdMetricSample[] => this.#bfdSource?.() ?? [];
      new Gauge({
        name: 'skein_bfd_session_up', help: 'BFD session state per peer: 1 when Up, else 0', labelNames: ['peer'], registers,
        collect() {
          this.reset();
          for (const s of read()) this.set({ peer: s.peer }, s.state === 'Up' ? 1 : 0);
        },
      });
      new Gauge({
        name: 'skein_bfd_sessions', help: 'BFD sessions in each state (AdminDown, Down, Init, Up)', labelNames: ['state'], registers,
        collect() {
          const n: Record<string, number> = { AdminDown: 0, Down: 0, Init: 0, Up: 0 };
          for (const s of read()) n[s.state] = (n[s.state] ?? 0) + 1;
          for (const [state, v] of Object.entries(n)) this.set({ state }, v);
        },
      });
      new Counter({
        name: 'skein_bfd_session_flaps_total', help: 'BFD sessions going from Up to Down, per peer', labelNames: ['peer'], registers,
        collect() {
          this.reset();
          for (const s of read()) this.inc({ peer: s.peer }, s.downCount);
        },
      });
      // Our own lateness: a timer that fires late is this process starved of CPU; enough of it and the peer
      // declares us dead although the path is fine. A flap with these near zero was the path or the peer.
      new Gauge({
        name: 'skein_bfd_timer_lateness_max_seconds', help: 'Latest a BFD transmit or detection timer of this session fired after its deadline, per peer', labelNames: ['peer'], registers,
        collect() {
          this.reset();
          for (const s of read()) this.set({ peer: s.peer }, (s.timerLateMaxMs ?? 0) / 1000);
        },
      });
      new Counter({
        name: 'skein_bfd_late_timers_total', help: 'BFD timers that fired later than half a detection time, per peer', labelNames: ['peer'], registers,
        collect() {
          this.reset();
          for (const s of read()) this.inc({ peer: s.peer }, s.lateTimers ?? 0);
        },
      });
    }
    this.#bfdSource = source;
  }

  /**
   * The kernel writer's counters, read when /metrics is read: route messages sent by operation, full table dumps
   * (resyncs), netlink overruns, re-assertions of routes someone else changed, nexthop objects held, small batches
   * written on the main thread, and whether the request thread (fib/request-thread.ts) runs and how often it
   * started. The thread costs ~9 MiB while it runs, so an operator reading a host's RSS wants to see it. Registered on
   * the first call: a daemon without a FIB shows none of them.
   */
  fibWriterSource(source: () => FibWriterSample | undefined): void {
    if (this.#fibWriterSource === undefined) {
      const registers = [this.registry];
      const read = (): FibWriterSample | undefined => this.#fibWriterSource?.();
      const counter = (name: string, help: string, value: (w: FibWriterSample) => number): void => {
        new Counter({
          name, help, registers,
          collect() {
            const w = read();
            if (w === undefined) return;
            this.reset();
            this.inc(value(w));
          },
        });
      };
      const gauge = (name: string, help: string, value: (w: FibWriterSample) => number): void => {
        new Gauge({
          name, help, registers,
          collect() {
            const w = read();
            if (w !== undefined) this.set(value(w));
          },
        });
      };
      new Counter({
        name: 'skein_fib_kernel_messages_total', help: 'Route messages sent to the kernel, by operation (add, replace, delete)', labelNames: ['op'], registers,
        collect() {
          const w = read();
          if (w === undefined) return;
          this.reset();
          for (const op of ['add', 'replace', 'delete'] as const) this.inc({ op }, w.sent[op]);
        },
      });
      counter('skein_fib_resyncs_total', 'Full dumps of skein\'s kernel routes (start-up, netlink overruns, link changes, lost acknowledgements)', (w) => w.resyncs);
      counter('skein_fib_netlink_overruns_total', 'Netlink socket overruns (ENOBUFS): events the kernel dropped, each followed by a resync', (w) => w.overruns);
      counter('skein_fib_repairs_total', 'Routes of skein\'s put back after something else changed or deleted them', (w) => w.repairs);
      counter('skein_fib_direct_batches_total', 'Small route batches written on the main thread instead of through the request thread', (w) => w.directBatches);
      counter('skein_fib_request_thread_starts_total', 'Times the kernel request thread was started (it stops when idle)', (w) => w.requestThreadStarts);
      gauge('skein_fib_request_thread_running', '1 while the kernel request thread runs (it holds ~9 MiB), else 0', (w) => (w.requestThreadRunning ? 1 : 0));
      gauge('skein_fib_nexthop_objects', 'Nexthop objects of skein\'s in the kernel', (w) => w.nexthops);
    }
    this.#fibWriterSource = source;
  }

  fibRoutesSource(source: () => FibRouteCounts | undefined): void {
    this.#fibSource = source;
  }
  fibRoutes(counts: FibRouteCounts): void {
    for (const state of ['desired', 'installed', 'failed'] as const) {
      const v = counts[state];
      if (v !== undefined) this.#fibRoutes.set({ state }, v);
    }
  }
  /** One failed kernel operation; `reason` is a short stable code (an errno name such as ENETUNREACH, "timeout"). */
  fibFailure(reason: string, n = 1): void {
    this.#fibFailures.inc({ reason }, n);
  }
  /** Routes whose kernel writes keep failing (see Daemon #checkFibFailures). */
  fibPersistentFailures(n: number): void {
    this.#fibPersistent.set(n);
  }
  fibProgrammed(seconds: number): void {
    this.#fibObs.add(seconds);
  }
  /** Starts timing one FIB operation; call the result when the kernel has answered. */
  fibTimer(): () => void {
    const end = this.#fibSeconds.startTimer();
    return () => {
      end();
    };
  }

  // ----- datastore, origination, readiness -----

  datastoreSynced(synced: boolean): void {
    this.#dsSynced.set(synced ? 1 : 0);
  }
  /** The datastore's status, as `skeinctl status` shows it (one source for both). */
  datastoreState(state: string, revision: string | undefined, held: boolean): void {
    for (const s of DATASTORE_STATES) this.#dsState.set({ state: s }, s === state ? 1 : 0);
    if (revision !== undefined) this.#dsRevision.set(Number(revision));
    this.#dsHeld.set(held ? 1 : 0);
  }
  /** A log line of this kind was suppressed by the rate limit (bgp/speaker/rate-limit.ts). */
  logSuppressed(kind: string): void {
    this.#logSuppressed.inc({ kind });
  }
  /** The process stalled for this long (bgp/speaker/stall.ts). */
  stall(seconds: number): void {
    this.#stalls.observe(seconds);
  }
  datastoreFrozen(frozen: boolean): void {
    this.#dsFrozen.set(frozen ? 1 : 0);
  }
  /** A change arrived from the datastore (kind: the Calico resource kind, e.g. "BGPPeer"). */
  datastoreChange(kind: string, nowMs = Date.now()): void {
    // Every skeind sees every WorkloadEndpoint of the cluster: a bound child per kind, not a label lookup per change.
    let child = this.#dsUpdateChildren.get(kind);
    if (child === undefined) this.#dsUpdateChildren.set(kind, (child = this.#dsUpdates.labels({ kind })));
    child.inc();
    this.#dsLastChange.set(nowMs / 1000);
  }
  datastoreRejected(kind: string): void {
    this.#dsRejected.inc({ kind });
  }
  originations(kind: OriginationKind, count: number): void {
    this.#originated.set({ kind }, count);
  }
  ready(isReady: boolean): void {
    this.#ready.set(isReady ? 1 : 0);
  }
  reload(ok: boolean): void {
    this.#reloads.inc({ result: ok ? 'ok' : 'error' });
  }

  // ----- helpers -----

  #track(peer: string, key: string, metric: Gauge<string> | Counter<string>, labels: Labels): void {
    let series = this.#peerSeries.get(peer);
    if (!series) this.#peerSeries.set(peer, (series = new Map()));
    if (!series.has(key)) series.set(key, { metric, labels });
  }

  #set(peer: string, metric: Gauge<string>, labels: Labels, value: number): void {
    if (this.peerDetail === 'summary') {
      // Kept per peer here, summed into the peer-less series at scrape (the gauge's collect()).
      const { peer: _, ...rest } = labels;
      const name = (metric as unknown as { name: string }).name;
      let byPeer = this.#summed.get(name);
      if (!byPeer) this.#summed.set(name, (byPeer = new Map()));
      let series = byPeer.get(peer);
      if (!series) byPeer.set(peer, (series = new Map()));
      series.set(keyOf(metric, rest), { labels: rest, value });
      this.#track(peer, keyOf(metric, labels), metric, labels);
      return;
    }
    metric.set(labels, value);
    this.#track(peer, keyOf(metric, labels), metric, labels);
  }

  // Counters are on the per-message path: keep a bound child per series so an increment is one Map lookup.
  // In summary mode the peers share one peer-less series, which a removed peer does not take away (a counter).
  #inc(peer: string, metric: Counter<string>, labels: Labels, n: number): void {
    const key = keyOf(metric, labels);
    let child = this.#children.get(key);
    if (!child) {
      const { peer: _, ...rest } = labels;
      child = metric.labels(this.peerDetail === 'full' ? labels : rest);
      this.#children.set(key, child);
      this.#track(peer, key, metric, labels);
    }
    child.inc(n);
  }
}

function keyOf(metric: { name?: string } | object, labels: Labels): string {
  let key = (metric as { name: string }).name;
  for (const v of Object.values(labels)) key += `\u0000${v}`;
  return key;
}
