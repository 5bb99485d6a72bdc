// What systemd and the log hear about the start (sd_notify, `systemctl status skein`): READY=1 once the start is
// done, STATUS= whenever readiness changes, and, until READY=1, what the start still waits for (the datastore, the
// FIB sweep, which peers), re-stated each time that changes.
import { sdNotify } from '../../bgp/index.js';
import type { ReadinessGate } from '../http.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { FibSyncJson } from './status.js';

export interface StartNotifierParts {
  log: Logger;
  metrics: Metrics;
  readiness: ReadinessGate;
  env: NodeJS.ProcessEnv;
  stopping: () => boolean;
  /** the start-up FIB sweep, once a speaker runs */
  fibSync: () => FibSyncJson | undefined;
}

export class StartNotifier {
  readonly #p: StartNotifierParts;
  #notifiedReady = false;
  #waitTimer: NodeJS.Timeout | undefined;
  #lastWait = '';

  constructor(p: StartNotifierParts) {
    this.#p = p;
  }

  start(): void {
    const { log, readiness, metrics } = this.#p;
    readiness.onChange((r) => {
      metrics.ready(r.ready);
      log.info(r.ready ? 'ready' : 'not ready', r.ready ? {} : { missing: r.missing });
      if (r.started && !this.#notifiedReady) {
        this.#notifiedReady = true;
        clearInterval(this.#waitTimer);
        this.notify(`READY=1\nSTATUS=${r.ready ? 'ready' : `running; not ready: ${r.missing.join('; ')}`}`);
      } else if (this.#notifiedReady) {
        this.notify(`STATUS=${r.ready ? 'ready' : `not ready: ${r.missing.join('; ')}`}`);
      }
    });
    this.notify('STATUS=starting');
    this.#waitTimer = setInterval(() => this.#reportWait(), 1000);
    this.#waitTimer.unref();
  }

  stop(): void {
    clearInterval(this.#waitTimer);
  }

  notify(state: string): void {
    try {
      sdNotify(state, this.#p.env);
    } catch (e) {
      this.#p.log.warn('sd_notify failed', { err: e, state });
    }
  }

  #reportWait(): void {
    if (this.#notifiedReady || this.#p.stopping()) return;
    const r = this.#p.readiness.check();
    if (r.started) return;
    const sync = this.#p.fibSync();
    const parts = [...r.missing];
    if (sync && !sync.done && sync.waitingFor.length > 0) parts.push(`fib sweep waits for End-of-RIB from ${sync.waitingFor.join(', ')}`);
    const text = parts.join('; ');
    if (text === this.#lastWait) return;
    this.#lastWait = text;
    this.notify(`STATUS=starting: ${text}`);
    this.#p.log.info('starting: waiting', { for: parts, ...(sync?.secondsLeft != null ? { fibSweepDeadlineSeconds: sync.secondsLeft } : {}) });
  }
}
