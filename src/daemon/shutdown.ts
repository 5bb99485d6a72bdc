// The clean stop, in order: the control socket closes, sessions end without a NOTIFICATION (so graceful-restart
// peers keep our routes for the restart time, RFC 4724 §4.2), BFD says AdminDown, and every route stays in the
// kernel (Programmer.close() leaves them), so forwarding goes on while skeind is down. A step that fails is logged
// and the next one still runs.
import type { Speaker } from '../../bgp/index.js';
import type { Datastore } from '../../config/index.js';
import type { Programmer } from '../../fib/index.js';
import type { ControlServer } from '../control/index.js';
import type { HttpEndpoint, LoopMonitor, ReadinessGate } from '../http.js';
import type { Logger } from '../log.js';
import type { BfdWiring } from './bfd.js';
import type { KernelReachability } from './reachability.js';
import type { RuntimeStats } from './runtime.js';

export interface ShutdownParts {
  log: Logger;
  notify: (state: string) => void;
  /** timers and watchers that must not fire during or after the stop */
  clearTimers: () => void;
  speaker: Speaker | undefined;
  /** the node drained and leaves (src/daemon/drain.ts): end sessions with Cease / Administrative Shutdown and this text */
  leaving?: string | undefined;
  control: ControlServer | undefined;
  bfd: BfdWiring;
  datastore: Datastore | undefined;
  reach: KernelReachability | undefined;
  fib: Programmer | undefined;
  http: HttpEndpoint | undefined;
  readiness: ReadinessGate;
  monitor: LoopMonitor;
  runtime: RuntimeStats | undefined;
}

export async function shutdown(p: ShutdownParts, reason: string): Promise<void> {
  const log = p.log;
  log.info('stopping', { reason });
  p.notify('STOPPING=1');
  // Sessions closing below make the speaker withdraw what they carried: those withdrawals must not reach the
  // kernel, whose routes keep forwarding while skeind is down (the next start adopts and re-checks them).
  p.speaker?.removeAllListeners('bestBatch');
  p.speaker?.removeAllListeners('bestLive');
  p.clearTimers();
  const step = async (what: string, f: () => Promise<void> | void): Promise<void> => {
    try {
      await f();
    } catch (e) {
      log.warn(`stop: ${what} failed`, { err: e });
    }
  };
  await step('control socket', () => p.control?.close());
  // No NOTIFICATION: peers that support graceful restart keep our routes, marked stale, for our restart time
  // (RFC 4724 §4.2), as they would after kill -9; a Cease would make them withdraw our workloads everywhere.
  // After a drain (RFC 8326) the node leaves for good: Cease / Administrative Shutdown with an RFC 8203 message makes
  // peers withdraw our routes now, which they no longer use.
  await step('speaker', () => p.speaker?.stop(p.leaving !== undefined ? { message: p.leaving } : { notify: false }));
  // AdminDown to every BFD peer: a planned stop is not a path failure (RFC 5882 §3.2), so peers keep our routes
  // under graceful restart as they would without BFD.
  await step('bfd', () => p.bfd.close({ graceful: true }));
  await step('datastore', () => p.datastore?.close());
  p.reach?.stop();
  await step('fib', () => p.fib?.close());
  await step('http', () => p.http?.close());
  p.readiness.close();
  p.monitor.stop();
  p.runtime?.stop();
  log.info('stopped; routes left in the kernel');
}
