// How the daemon's own event loop is doing, as the control socket and /metrics report it: the delay of the event
// loop (src/loop-delay.ts: how late a timer fires, sampled every 1 ms by Node's native monitor while the loop is busy and
// backing off to every 100 ms while it is quiet) and the control server's
// stream counters. A KEEPALIVE or a FIB write waits at most this long behind other work, so this is the figure
// the "no request delays the daemon by more than 50 ms" rule is checked against (bench/control.ts).
import type { RecordableHistogram } from 'node:perf_hooks';
import { loopDelay } from '../loop-delay.js';
import { Gauge, type Registry } from '../prom.js';
import type { ControlServerStats } from '../control/server.js';

export interface RuntimeJson {
  /** seconds; over the window since the last reset (or start) */
  eventLoopDelay: { p50: number; p90: number; p99: number; max: number; mean: number; samples: number; windowSeconds: number };
  control?: ControlServerStats;
  memory: { rssBytes: number; heapUsedBytes: number };
}

export class RuntimeStats {
  readonly #h: RecordableHistogram;
  /** a second histogram that is never reset by clients, for /metrics */
  readonly #all: RecordableHistogram;
  #since = Date.now();

  constructor(registry?: Registry) {
    this.#h = loopDelay.open();
    this.#all = loopDelay.open();
    if (registry) {
      const all = this.#all;
      new Gauge({
        name: 'skein_event_loop_delay_seconds',
        help: 'Event-loop delay of skeind (how late a timer fires beyond its due time): p50, p90, p99 and max since the previous scrape. '
          + 'Sampled every 1 ms while the loop is busy, every 100 ms while it is quiet, so in a quiet window these are over few samples and a stall shorter than 100 ms may be missed',
        // not `quantile`: Prometheus reserves that label for summaries (promtool check metrics)
        labelNames: ['stat'],
        registers: [registry],
        collect() {
          loopDelay.sync();
          for (const q of [50, 90, 99]) this.set({ stat: `p${q}` }, (all.count > 0 ? all.percentile(q) : 0) / 1e9);
          this.set({ stat: 'max' }, (all.count > 0 ? all.max : 0) / 1e9);
          all.reset();
        },
      });
    }
  }

  json(o: { reset?: boolean; control?: ControlServerStats } = {}): RuntimeJson {
    const h = this.#h;
    loopDelay.sync();
    const s = (ns: number): number => (Number.isFinite(ns) ? ns / 1e9 : 0);
    const mem = process.memoryUsage();
    const out: RuntimeJson = {
      eventLoopDelay: {
        p50: s(h.count > 0 ? h.percentile(50) : 0),
        p90: s(h.count > 0 ? h.percentile(90) : 0),
        p99: s(h.count > 0 ? h.percentile(99) : 0),
        max: s(h.count > 0 ? h.max : 0),
        mean: s(h.count > 0 ? h.mean : 0),
        samples: h.count,
        windowSeconds: (Date.now() - this.#since) / 1000,
      },
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed },
    };
    if (o.control) out.control = o.control;
    if (o.reset) {
      h.reset();
      this.#since = Date.now();
    }
    return out;
  }

  stop(): void {
    loopDelay.close(this.#h);
    loopDelay.close(this.#all);
  }
}
