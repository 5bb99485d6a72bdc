// What the FIB programmer's events become: the kernel's refusals and write batches as metrics, `skeinctl watch`
// rows and log lines. (Routes refused for long are the sampler's: src/daemon/sampler.ts.)
import type { Programmer, RouteView } from '../../fib/index.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { fmtPrefix } from './status.js';
import type { WatchHub } from './watch.js';

export function fibEvents(fib: Programmer, p: { log: Logger; metrics: Metrics; watch: WatchHub }): void {
  fib.on('failure', (v: RouteView) => {
    if (v.failure) p.metrics.fibFailure(v.failure.code);
    p.watch.publish('fib-failure', { prefix: fmtPrefix(v), code: v.failure?.code, reason: v.failure?.message, attempts: v.failure?.attempts });
    p.log.warn('kernel refused a route', { prefix: fmtPrefix(v), code: v.failure?.code, reason: v.failure?.message, attempts: v.failure?.attempts });
  });
  fib.on('batch', (b) => {
    p.metrics.fibProgrammed(b.latencySeconds);
    p.watch.publish('fib-batch', { ...b });
  });
  fib.on('warning', (e: Error) => p.log.warn('fib', { err: e }));
  fib.on('resync', (reason: string) => p.log.debug('fib resync', { reason }));
  fib.on('overrun', (which: string) => p.log.warn('netlink socket overrun; resyncing', { socket: which }));
}
