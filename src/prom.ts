// prom-client, loaded by the parts skein uses (issue #16, "the per-host footprint").
//
// Why not `import … from 'prom-client'`: its index module also loads the Pushgateway client (Node's http and https
// clients) and, through the CPU default metric, @opentelemetry/api for exemplars. skein pushes nothing and keeps no
// exemplars, yet those two cost about 9 MiB of resident memory on every host (`npm run bench -- footprint`: prom-client
// +11.5 MiB over a bare node, the parts below +1 to +3 MiB). The classes are prom-client's own, taken from its
// lib/ files (the package declares no "exports" map, so these paths are public to Node; the version is pinned by
// the lock file and test/ops-metrics checks the exposition with promtool). The one default metric replaced is the
// CPU counter, written here with the same names and help text.
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

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
type DefaultMetric = (registry: Prom.Registry, config: { prefix: string; eventLoopMonitoringPrecision?: number }) => void;

// prom-client's default metrics (lib/defaultMetrics.js lists them) but its processCpuTotal, which is cpuSeconds below.
const DEFAULT_METRICS = [
  'processStartTime', 'osMemoryHeap', 'processOpenFileDescriptors', 'processMaxFileDescriptors', 'eventLoopLag',
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

/** prom-client's collectDefaultMetrics({ register, prefix }), loading only what it registers. */
export function collectDefaultMetrics(registry: Prom.Registry, prefix: string): void {
  cpuSeconds(registry, prefix);
  for (const name of DEFAULT_METRICS) {
    // processResources needs process.getActiveResourcesInfo (Node ≥ 17), as prom-client itself checks.
    if (name === 'processResources' && typeof process.getActiveResourcesInfo !== 'function') continue;
    (load(`prom-client/lib/metrics/${name}`) as DefaultMetric)(registry, { prefix, eventLoopMonitoringPrecision: 10 });
  }
}
