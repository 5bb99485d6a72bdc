// prom-client, loaded by the parts skein uses (issue #16, "the per-host footprint").
//
// Why not `import … from 'prom-client'`: its index module also loads the Pushgateway client (Node's http and https
// clients) and, through the CPU default metric, @opentelemetry/api for exemplars. skein pushes nothing and keeps no
// exemplars, yet those two cost about 9 MiB of resident memory on every host (`npm run bench -- footprint`: prom-client
// +11.5 MiB over a bare node, the parts below +1 to +3 MiB). The classes are prom-client's own, taken from its
// lib/ files (the package declares no "exports" map, so these paths are public to Node; the version is pinned by
// the lock file and test/ops/ops-metrics checks the exposition with promtool). The one default metric replaced is the
// CPU counter, written here with the same names and help text.
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';
import { loopDelay } from './loop-delay.js';

const load = createRequire(import.meta.url);

export const Registry = load('prom-client/lib/registry') as typeof Prom.Registry;
export const Counter = load('prom-client/lib/counter') as typeof Prom.Counter;
export const Gauge = load('prom-client/lib/gauge') as typeof Prom.Gauge;
export const Histogram = load('prom-client/lib/histogram') as typeof Prom.Histogram;
export type Registry = Prom.Registry;
export type Counter<T extends string = string> = Prom.Counter<T>;
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export type Histogram<T extends string = string> = Prom.Histogram<T>;

/** One of prom-client's default-metric modules: registers its series on `registry`. */
type DefaultMetric = (registry: Prom.Registry, config: { prefix: string }) => void;

// prom-client's default metrics (lib/defaultMetrics.js lists them) but its processCpuTotal, which is cpuSeconds below,
// and its eventLoopLag, which is eventLoopLag below.
const DEFAULT_METRICS = [
  'processStartTime', 'osMemoryHeap', 'processOpenFileDescriptors', 'processMaxFileDescriptors',
  'processResources', 'processHandles', 'processRequests', 'heapSizeAndUsed', 'heapSpacesSizeAndUsed', 'version', 'gc',
] as const;

/** process_cpu_{user,system}_seconds_total and process_cpu_seconds_total, as prom-client names them. */
function cpuSeconds(registry: Prom.Registry, prefix: string): void {
  let last = process.cpuUsage();
  const registers = [registry];
  const system = new Counter({ name: `${prefix}process_cpu_system_seconds_total`, help: 'Total system CPU time spent in seconds.', registers });
  const total = new Counter({ name: `${prefix}process_cpu_seconds_total`, help: 'Total user and system CPU time spent in seconds.', registers });
  new Counter({
    name: `${prefix}process_cpu_user_seconds_total`, help: 'Total user CPU time spent in seconds.', registers,
    // One scrape reads the three from one cpuUsage() sample, so user + system = total exactly.
    collect() {
      const now = process.cpuUsage();
      const user = (now.user - last.user) / 1e6;
      const sys = (now.system - last.system) / 1e6;
      last = now;
      this.inc(user);
      system.inc(sys);
      total.inc(user + sys);
    },
  });
}

/**
 * nodejs_eventloop_lag_*_seconds under prom-client's names, but read from src/loop-delay.ts's adaptive sampler: prom-client's
 * own module runs a monitorEventLoopDelay timer every 10 ms for as long as the process lives (100 wake-ups a second on an
 * idle host). Like prom-client's, the statistics cover the time since the previous scrape, and nodejs_eventloop_lag_seconds
 * is how long a setImmediate queued at the scrape waited (the value seen by the next scrape).
 */
function eventLoopLag(registry: Prom.Registry, prefix: string): void {
  const h = loopDelay.open();
  const registers = [registry];
  const ago = ' since the previous scrape, in seconds; sampled every 1 ms while the loop is busy and every 100 ms while it is quiet '
    + '(so in a quiet window over few samples, and a stall shorter than 100 ms may be missed); a sample is how late a timer fired beyond its due time';
  const g = (name: string, help: string): Prom.Gauge => new Gauge({ name: `${prefix}nodejs_eventloop_lag_${name}_seconds`, help: help + ago, registers });
  const min = g('min', 'Smallest event-loop delay sampled');
  const max = g('max', 'Largest event-loop delay sampled');
  const mean = g('mean', 'Mean event-loop delay sampled');
  const stddev = g('stddev', 'Standard deviation of the event-loop delays sampled');
  const p50 = g('p50', 'Median event-loop delay sampled');
  const p90 = g('p90', '90th percentile of the event-loop delays sampled');
  const p99 = g('p99', '99th percentile of the event-loop delays sampled');
  new Gauge({
    name: `${prefix}nodejs_eventloop_lag_seconds`,
    help: 'How long a setImmediate queued at the previous scrape waited to run, in seconds',
    registers,
    collect() {
      const start = process.hrtime.bigint();
      setImmediate(() => this.set(Number(process.hrtime.bigint() - start) / 1e9));
      loopDelay.sync();
      const any = h.count > 0;
      const s = (ns: number): number => (any && Number.isFinite(ns) ? ns / 1e9 : 0);
      min.set(s(h.min));
      max.set(s(h.max));
      mean.set(s(h.mean));
      stddev.set(s(h.stddev));
      p50.set(s(h.percentile(50)));
      p90.set(s(h.percentile(90)));
      p99.set(s(h.percentile(99)));
      h.reset();
    },
  });
}

/** prom-client's collectDefaultMetrics({ register, prefix }), loading only what it registers. */
export function collectDefaultMetrics(registry: Prom.Registry, prefix: string): void {
  cpuSeconds(registry, prefix);
  eventLoopLag(registry, prefix);
  for (const name of DEFAULT_METRICS) {
    // processResources needs process.getActiveResourcesInfo (Node ≥ 17), as prom-client itself checks.
    if (name === 'processResources' && typeof process.getActiveResourcesInfo !== 'function') continue;
    (load(`prom-client/lib/metrics/${name}`) as DefaultMetric)(registry, { prefix });
  }
}
