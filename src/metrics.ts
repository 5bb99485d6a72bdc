// The daemon's Prometheus metrics: one registry, every name prefixed `skein_`, Node's process metrics included.
// Other code calls the typed methods here and never touches prom-client, so names and labels stay in one place
// (the CONTRACT's Observability section). Series labelled with a peer are tracked per peer and deleted when the
// peer goes away, so a mesh whose nodes come and go does not accumulate dead series.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LoopDelaySummary } from './loop-delay.js';

export const PEER_STATES = ['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established'] as const;
export type PeerState = (typeof PEER_STATES)[number];
export type BgpMessageType = 'OPEN' | 'UPDATE' | 'NOTIFICATION' | 'KEEPALIVE' | 'ROUTE-REFRESH';
/** An address family as the CONTRACT spells it: "ipv4-unicast", "ipv6-unicast". */
export type FamilyName = string;
export type OriginationKind = 'block' | 'borrowed' | 'service';

export interface FibRouteCounts {
  desired?: number;
  installed?: number;
  failed?: number;
}

export interface PrefixCounts {
  received?: number;
  accepted?: number;
  advertised?: number;
}

export interface MetricsOptions {
  /** Node's process and event-loop metrics (`skein_process_*`, `skein_nodejs_*`); default true. */
  defaultMetrics?: boolean;
}

type Labels = Record<string, string>;

/** Seconds-scale buckets for work that is usually milliseconds and sometimes seconds (netlink batches, UPDATEs). */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Metrics {
  readonly registry = new Registry();

  // Per peer. The state gauge has one series per (peer, state), 1 for the current state and 0 for the others,
  // so `skein_bgp_peer_state{state="Established"} == 0` finds every peer that is down.
  readonly #peerState: Gauge<'peer' | 'state'>;
  readonly #peerUptime: Gauge<'peer'>;
  readonly #staleRoutes: Gauge<'peer'>;
  readonly #grPhase: Gauge<'peer' | 'phase'>;
  readonly #prefixes: Record<keyof PrefixCounts, Gauge<'peer' | 'family'>>;
  readonly #msgIn: Counter<'peer' | 'type'>;
  readonly #msgOut: Counter<'peer' | 'type'>;
  readonly #notifIn: Counter<'peer' | 'code' | 'subcode'>;
  readonly #notifOut: Counter<'peer' | 'code' | 'subcode'>;
  readonly #updateSeconds: Histogram;
  // FIB.
  readonly #fibRoutes: Gauge<'state'>;
  #fibSource: (() => FibRouteCounts | undefined) | undefined;
  readonly #fibFailures: Counter<'reason'>;
  readonly #fibSeconds: Histogram;
  // Datastore, origination, readiness.
  readonly #dsSynced: Gauge;
  readonly #dsFrozen: Gauge;
  readonly #dsLastChange: Gauge;
  readonly #dsUpdates: Counter<'kind'>;
  readonly #dsUpdateChildren = new Map<string, { inc(v?: number): void }>();
  readonly #dsRejected: Counter<'kind'>;
  readonly #originated: Gauge<'kind'>;
  readonly #ready: Gauge;
  readonly #reloads: Counter<'result'>;
  #loopDelaySource: (() => LoopDelaySummary) | undefined;

  // peer -> (metric, labels) of every series created for it, and bound children for the hot counters.
  readonly #peerSeries = new Map<string, Map<string, { metric: Gauge<string> | Counter<string>; labels: Labels }>>();
  readonly #children = new Map<string, { inc(v?: number): void }>();

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'skein_' });

    this.#peerState = new Gauge({ name: 'skein_bgp_peer_state', help: 'BGP session state per peer: 1 for the current state, 0 for the others', labelNames: ['peer', 'state'], registers });
    this.#peerUptime = new Gauge({ name: 'skein_bgp_peer_established_since_seconds', help: 'Unix time the session with the peer became Established (absent while it is not)', labelNames: ['peer'], registers });
    this.#staleRoutes = new Gauge({ name: 'skein_bgp_peer_stale_routes', help: 'Routes from the peer kept as stale by graceful restart (RFC 4724) or long-lived graceful restart (RFC 9494)', labelNames: ['peer'], registers });
    this.#grPhase = new Gauge({ name: 'skein_bgp_peer_graceful_restart_phase', help: 'Graceful restart helper phase for the peer: 1 for the current phase (none, restart, stale-path, long-lived), 0 for the others', labelNames: ['peer', 'phase'], registers });
    this.#prefixes = {
      received: new Gauge({ name: 'skein_bgp_prefixes_received', help: 'Prefixes received from the peer (Adj-RIB-In, before import policy)', labelNames: ['peer', 'family'], registers }),
      accepted: new Gauge({ name: 'skein_bgp_prefixes_accepted', help: 'Prefixes from the peer accepted by import policy', labelNames: ['peer', 'family'], registers }),
      advertised: new Gauge({ name: 'skein_bgp_prefixes_advertised', help: 'Prefixes advertised to the peer (Adj-RIB-Out)', labelNames: ['peer', 'family'], registers }),
    };
    this.#msgIn = new Counter({ name: 'skein_bgp_messages_received_total', help: 'BGP messages received, by type', labelNames: ['peer', 'type'], registers });
    this.#msgOut = new Counter({ name: 'skein_bgp_messages_sent_total', help: 'BGP messages sent, by type', labelNames: ['peer', 'type'], registers });
    this.#notifIn = new Counter({ name: 'skein_bgp_notifications_received_total', help: 'NOTIFICATION messages received, by error code and subcode (RFC 4271 §4.5)', labelNames: ['peer', 'code', 'subcode'], registers });
    this.#notifOut = new Counter({ name: 'skein_bgp_notifications_sent_total', help: 'NOTIFICATION messages sent, by error code and subcode (RFC 4271 §4.5)', labelNames: ['peer', 'code', 'subcode'], registers });
    this.#updateSeconds = new Histogram({ name: 'skein_bgp_update_processing_seconds', help: 'Time to process one received UPDATE through import policy and the decision process', buckets: LATENCY_BUCKETS, registers });

    // Counted when /metrics is read (fibRoutesSource): counting walks every route, too much for every change.
    const metrics = this; // eslint-disable-line @typescript-eslint/no-this-alias -- the gauge's collect() has its own `this`
    this.#fibRoutes = new Gauge({
      name: 'skein_fib_routes', help: 'Routes skein wants in the kernel (desired), has installed, or failed to install', labelNames: ['state'], registers,
      collect() {
        const counts = metrics.#fibSource?.();
        if (counts !== undefined) metrics.fibRoutes(counts);
      },
    });
    this.#fibFailures = new Counter({ name: 'skein_fib_failures_total', help: 'Failed kernel route operations, by reason', labelNames: ['reason'], registers });
    this.#fibSeconds = new Histogram({ name: 'skein_fib_programming_seconds', help: 'Time from a route change to the kernel acknowledging it', buckets: LATENCY_BUCKETS, registers });

    this.#dsSynced = new Gauge({ name: 'skein_datastore_synced', help: '1 once the datastore has been read completely and is being watched, else 0', registers });
    this.#dsLastChange = new Gauge({ name: 'skein_datastore_last_change_timestamp_seconds', help: 'Unix time of the last change seen from the datastore', registers });
    this.#dsUpdates = new Counter({ name: 'skein_datastore_updates_total', help: 'Resource changes received from the datastore, by kind', labelNames: ['kind'], registers });
    this.#dsRejected = new Counter({ name: 'skein_datastore_rejected_total', help: 'Datastore records rejected as invalid, by kind', labelNames: ['kind'], registers });
    this.#originated = new Gauge({ name: 'skein_originated_prefixes', help: 'Prefixes this node originates, by kind (affine IPAM block, borrowed address, service range)', labelNames: ['kind'], registers });
    this.#ready = new Gauge({ name: 'skein_ready', help: '1 when /readyz answers 200, else 0', registers });
    this.#reloads = new Counter({ name: 'skein_reloads_total', help: 'Configuration reloads (SIGHUP, skeinctl reload), by result', labelNames: ['result'], registers });

    this.#dsSynced.set(0);
    this.#dsFrozen = new Gauge({ name: 'skein_datastore_frozen', help: '1 while ClusterInformation datastoreReady is false at run time: announcements and kernel routes are kept, datastore changes held', registers });
    this.#dsFrozen.set(0);
    this.#ready.set(0);
    // The delay each ready callback waited for the loop since the previous scrape (src/loop-delay.ts): p50, p99
    // and the maximum, as quantile 0.5 / 0.99 / 1. Read at scrape time; absent until a source is set.
    const source = (): LoopDelaySummary | undefined => this.#loopDelaySource?.();
    new Gauge({
      name: 'skein_event_loop_delay_seconds', help: 'Event-loop delay since the previous scrape: quantile 0.5, 0.99 and 1 (the maximum)', labelNames: ['quantile'], registers,
      collect() {
        const s = source();
        if (s === undefined) return;
        this.set({ quantile: '0.5' }, s.p50);
        this.set({ quantile: '0.99' }, s.p99);
        this.set({ quantile: '1' }, s.max);
      },
    });
    for (const state of ['desired', 'installed', 'failed']) this.#fibRoutes.set({ state }, 0);
  }

  /** The text exposition, and the Content-Type to serve it with. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  // ----- peers -----

  /** Records the session state of a peer; called on every FSM transition. */
  peerState(peer: string, state: PeerState, nowMs = Date.now()): void {
    for (const s of PEER_STATES) this.#set(peer, this.#peerState, { peer, state: s }, s === state ? 1 : 0);
    if (state === 'Established') this.#set(peer, this.#peerUptime, { peer }, Math.floor(nowMs / 1000));
    else this.#peerUptime.remove({ peer });
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

  /** Time spent on one UPDATE, in seconds. */
  updateProcessed(seconds: number): void {
    this.#updateSeconds.observe(seconds);
  }

  /** Deletes every series of a peer that is no longer configured. */
  removePeer(peer: string): void {
    const series = this.#peerSeries.get(peer);
    if (!series) return;
    for (const [key, { metric, labels }] of series) {
      metric.remove(labels);
      this.#children.delete(key);
    }
    this.#peerUptime.remove({ peer });
    this.#peerSeries.delete(peer);
  }

  /** Peers with at least one series (for tests and for the wiring to diff against the configured peers). */
  peersWithSeries(): string[] {
    return [...this.#peerSeries.keys()];
  }

  /** Where skein_event_loop_delay_seconds is read from at each scrape (the daemon's LoopDelay.take). */
  loopDelaySource(source: () => LoopDelaySummary): void {
    this.#loopDelaySource = source;
  }

  // ----- FIB -----

  /** Where skein_fib_routes is read from at each scrape (the daemon's FIB); fibRoutes() still sets it directly. */
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
  fibProgrammed(seconds: number): void {
    this.#fibSeconds.observe(seconds);
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
    metric.set(labels, value);
    this.#track(peer, keyOf(metric, labels), metric, labels);
  }

  // Counters are on the per-message path: keep a bound child per series so an increment is one Map lookup.
  #inc(peer: string, metric: Counter<string>, labels: Labels, n: number): void {
    const key = keyOf(metric, labels);
    let child = this.#children.get(key);
    if (!child) {
      child = metric.labels(labels);
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
