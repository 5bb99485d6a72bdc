// The metrics sampler: every 5 s the speaker's cumulative per-peer counters become Prometheus counter increments,
// and routes the kernel keeps refusing become a soft readiness blocker. skein_fib_routes comes from the counts fib/
// keeps as its entries change (Programmer.counts()), never from a walk of the table: at 1M routes fib.stats() took
// tens of ms of the event loop every 5 s and at each scrape (issue 15). RouteTable.size is its maps' sizes, and the
// failure check below visits only the failing routes (fib/retry.ts keeps them in a set).
import type { Speaker } from '../../bgp/index.js';
import type { Programmer, RouteView } from '../../fib/index.js';
import type { ReadinessGate } from '../http.js';
import type { FibRouteCounts, Metrics } from '../metrics.js';
import type { RouteTable } from './routes.js';
import { fmtPrefix } from './status.js';

/**
 * A route that has been failing (refused by the kernel, or waiting for an interface that does not exist) for this
 * long is a persistent failure: /readyz, `skeinctl status` and skein_fib_persistent_failures show it. fib/ retries
 * with back-off meanwhile; a failure that clears within this time was a transient one (a pod's veth being created).
 */
const PERSISTENT_FIB_MS = 10_000;
const SAMPLE_MS = 5000;

export interface SamplerParts {
  metrics: Metrics;
  readiness: ReadinessGate;
  fib: Programmer | undefined;
  routes: RouteTable;
  speaker: () => Speaker | undefined;
}

export class MetricsSampler {
  readonly #p: SamplerParts;
  #counterSnapshot = new Map<string, Record<string, number>>();
  /** prefix -> when it was first seen failing */
  readonly #failingSince = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(p: SamplerParts) {
    this.#p = p;
  }

  start(): void {
    this.#timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** skein_fib_routes now (after a sweep). */
  fibMetrics(): void {
    this.#p.metrics.fibRoutes(this.fibCounts());
  }

  fibCounts(): FibRouteCounts {
    const { fib, routes } = this.#p;
    if (!fib) return { desired: routes.open ? routes.size : 0, installed: 0, failed: 0 };
    return fib.counts();
  }

  /** The speaker keeps cumulative counters; Prometheus counters get the increments since the last sample. */
  sample(): void {
    this.fibMetrics();
    this.#checkFibFailures();
    const speaker = this.#p.speaker();
    if (!speaker) return;
    const metrics = this.#p.metrics;
    for (const p of speaker.peersJson().peers) {
      // per family: a dual-stack session carries both, and its totals under each family label counted routes twice
      for (const f of p.families) metrics.prefixes(p.address, f, p.prefixesByFamily[f] ?? { received: 0, accepted: 0, advertised: 0 });
      const h = p.gracefulRestart.helper;
      metrics.gracefulRestart(p.address, h?.phase ?? null, h?.staleRoutes ?? 0);
      const last = this.#counterSnapshot.get(p.address) ?? {};
      const now: Record<string, number> = {};
      for (const [t, n] of Object.entries(p.messages.in)) {
        now[`in ${t}`] = n;
        const d = n - (last[`in ${t}`] ?? 0);
        if (d > 0) metrics.messageIn(p.address, t as 'UPDATE', d);
      }
      for (const [t, n] of Object.entries(p.messages.out)) {
        now[`out ${t}`] = n;
        const d = n - (last[`out ${t}`] ?? 0);
        if (d > 0) metrics.messageOut(p.address, t as 'UPDATE', d);
      }
      for (const [dir, map] of [['nin', p.notifications.in], ['nout', p.notifications.out]] as const) {
        for (const [k, n] of Object.entries(map)) {
          now[`${dir} ${k}`] = n;
          const d = n - (last[`${dir} ${k}`] ?? 0);
          const [code, sub] = k.split('/').map(Number) as [number, number];
          for (let i = 0; i < d; i++) {
            if (dir === 'nin') metrics.notificationIn(p.address, code, sub);
            else metrics.notificationOut(p.address, code, sub);
          }
        }
      }
      const pr = speaker.policyRejections(p.address);
      for (const dir of ['import', 'export'] as const) {
        const n = pr?.[dir] ?? 0;
        now[`policy ${dir}`] = n;
        const d = n - (last[`policy ${dir}`] ?? 0);
        if (d > 0) metrics.policyRejected(p.address, dir, d);
      }
      this.#counterSnapshot.set(p.address, now);
    }
  }

  /**
   * Routes the kernel keeps refusing: a soft readiness blocker (/readyz 503 and `skeinctl status` say which and
   * why; READY=1 at start is not held back, see ReadinessGate.setBlocker) and skein_fib_persistent_failures.
   */
  #checkFibFailures(): void {
    const { fib, readiness, metrics } = this.#p;
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
    metrics.fibPersistentFailures(failing.length);
    if (failing.length === 0) {
      readiness.setBlocker('fib-failures', undefined);
      return;
    }
    const first = failing[0]!;
    const example = `${fmtPrefix(first)}: ${first.failure!.code} ${first.failure!.message}`;
    readiness.setBlocker('fib-failures', `${failing.length} route${failing.length > 1 ? 's' : ''} refused by the kernel (${example})`, { soft: true });
  }
}
