// The BGP speaker as skeind runs it: its options from the node's identity and skein.yaml, and what its events
// become — metrics, `skeinctl watch` rows, log lines (rate limited where a peer can cause them) and best-path
// changes for the route table. Starting, replacing and stopping the speaker is the daemon's (src/daemon.ts).
import { prefixText, type BestBatch, type LogRateLimit, type PeerStateEvent, type SpeakerOptions } from '../../bgp/index.js';
import type { DaemonConfig } from '../../config/index.js';
import type { ReadinessGate } from '../http.js';
import type { Logger } from '../log.js';
import { PEER_STATES, type Metrics, type PeerState } from '../metrics.js';
import type { SpeakerIdentity } from './mapping.js';
import type { RouteTable } from './routes.js';
import type { WatchHub } from './watch.js';

export interface SpeakerHooks {
  routeInterface: NonNullable<SpeakerOptions['routeInterface']>;
  onUpdateApplied: NonNullable<SpeakerOptions['onUpdateApplied']>;
  remoteLog: LogRateLimit;
  /** the FIB is on: our routes stay in the kernel while we are away */
  forwardingState: boolean;
  /** this start is a restart (skein routes were adopted from the kernel) */
  restarting: boolean;
}

export function speakerOptions(id: SpeakerIdentity, cfg: DaemonConfig, h: SpeakerHooks): SpeakerOptions {
  return {
    remoteLog: h.remoteLog,
    localAsn: id.asn,
    routerId: id.routerId,
    listenAddress: id.alsoListen !== undefined ? [id.listenAddress, id.alsoListen] : id.listenAddress,
    listenPort: id.listenPort,
    maxPaths: 16,
    keepRefused: cfg.bgp.keepRefused,
    // A data-centre fabric: retry a failed connection within seconds, not RFC 4271's suggested 120 s, so a
    // mesh whose nodes start in any order comes up quickly (BIRD, as Calico configures it, retries in 5 s).
    connectRetryTime: 5,
    idleHold: { initial: 2, max: 60 },
    ...(id.v4 !== undefined ? { nextHop4: id.v4 } : {}),
    ...(id.v6 !== undefined ? { nextHop6: id.v6 } : {}),
    ...(id.clusterId !== undefined ? { clusterId: id.clusterId } : {}),
    routeInterface: h.routeInterface,
    onUpdateApplied: h.onUpdateApplied,
    // RFC 4724 §3: F when our routes stay in the kernel while we are away; R while this start is a restart.
    forwardingState: h.forwardingState,
    restarting: h.restarting,
    // A route reflector takes whole tables from its clients at once: its route path is warmed up before the first
    // one (bgp/speaker/warm.ts; 100k routes in ~18% less time). A mesh host, whose tables are its peers' blocks,
    // keeps the ~2 MiB of idle memory instead (the per-host footprint, issue 16).
    warmUp: id.clusterId !== undefined,
  };
}

export interface SpeakerEventParts {
  log: Logger;
  metrics: Metrics;
  watch: WatchHub;
  readiness: ReadinessGate;
  routes: RouteTable;
  remoteLog: LogRateLimit;
  stopping: () => boolean;
  /** a peer's session came up (the start-up sweep counts from here) */
  up: (address: string, now: number) => void;
}

export class SpeakerEvents {
  readonly #p: SpeakerEventParts;
  /** when the last best-path change arrived (a peer without End-of-RIB is done after 1 s without one) */
  lastBestAt = 0;

  constructor(p: SpeakerEventParts) {
    this.#p = p;
  }

  peerState(ev: PeerStateEvent): void {
    const { log, metrics, watch, readiness } = this.#p;
    const st = PEER_STATES.includes(ev.state as PeerState) ? (ev.state as PeerState) : 'Idle';
    metrics.peerState(ev.address, st, ev.since.getTime());
    const up = ev.state === 'Established';
    watch.publish('peer', { peer: ev.address, from: ev.from, state: ev.state, info: ev.info });
    readiness.setPeerEstablished(ev.address, up);
    // The speaker's Established event still carries the error of the attempt before: leave it out there.
    const fields = { peer: ev.address, from: ev.from, state: ev.state, ...(ev.info && !up ? { info: ev.info } : {}) };
    if (up || ev.from === 'Established') {
      // A peer can make its session flap as often as it likes (a NOTIFICATION, a bad OPEN, a reset each time):
      // these lines go through the same per-source limiter as the speaker's own (bgp/speaker/rate-limit.ts).
      const suppressed = this.#p.remoteLog.take(ev.address, up ? 'session-up' : sessionDownKind(ev.info));
      if (suppressed !== null) log.info(up ? 'session established' : 'session down', suppressed > 0 ? { ...fields, suppressed } : fields);
    } else log.debug('peer state', fields);
    if (up) this.#p.up(ev.address, Date.now());
  }

  /** A drained batch of best-path changes (the speaker's 'bestBatch': no object per change, bgp/rib/change-queue.ts). */
  best(evs: BestBatch): void {
    if (this.#p.stopping()) return;
    const { log, watch } = this.#p;
    this.lastBestAt = Date.now();
    const watching = watch.active;
    const debug = log.isEnabled('debug');
    if (watching || debug) {
      for (let i = 0; i < evs.length; i++) {
        const row = { prefix: prefixText(evs.key(i)), from: evs.from(i), nextHops: evs.nextHops(i), local: evs.local(i), gone: evs.attributes(i) === null };
        if (watching) watch.publish('best', row);
        if (debug) log.debug('best path', { prefix: row.prefix, nextHops: row.nextHops, from: row.from, local: row.local, gone: row.gone });
      }
    }
    // Queued and applied in ~5 ms slices (src/daemon/routes.ts), keyed by the RIB's prefix key, not text; an
    // elevated path's metric comes from the route table's elevation hook.
    this.#p.routes.bestChanges(evs);
    // skein_fib_routes is computed when /metrics is read (fib.stats() walks every route: not per best path).
  }
}

/** The rate limiter's kind of a "session down" line, from the speaker's reason for it. */
export function sessionDownKind(info: string): string {
  if (/received NOTIFICATION/.test(info)) return 'notification-received';
  if (/sent NOTIFICATION .*OPEN/i.test(info) || /\bOPEN\b/.test(info)) return 'open-error';
  if (/sent NOTIFICATION/.test(info)) return 'notification-sent';
  if (/reset|ECONNRESET|EPIPE|closed|TCP/i.test(info)) return 'connection-reset';
  return 'session-down';
}
