// `skeinctl watch`: a live stream of what the daemon does — peer state changes, best-path changes, kernel route
// writes and their batches and failures — as `birdc` shows with `debug` and gobgp with `monitor`.
//
// The daemon publishes events here; with no watcher, publishing costs one comparison. Each watcher has a bounded
// queue (a watcher that cannot keep up loses the oldest events and is told how many, instead of holding the
// daemon's memory), and its rows are sent in batches within the control server's time slices
// (src/control/stream.ts), with backpressure like every stream.
import { ControlError } from '../control/protocol.js';
import { ControlStream, scheduler as sharedScheduler, type TurnScheduler } from '../control/stream.js';

export type WatchKind = 'peer' | 'best' | 'fib' | 'fib-batch' | 'fib-failure';
export const WATCH_KINDS: readonly WatchKind[] = ['peer', 'best', 'fib', 'fib-batch', 'fib-failure'];

export interface WatchEvent {
  /** ISO 8601 with milliseconds */
  time: string;
  type: WatchKind;
  [field: string]: unknown;
}

/** events a watcher may have waiting before the oldest are dropped */
const QUEUE_LIMIT = 10_000;
/** events per batch on the socket */
const BATCH = 500;

class Watcher {
  queue: WatchEvent[] = [];
  lost = 0;
  wake: (() => void) | undefined;
  constructor(readonly kinds: ReadonlySet<WatchKind>, readonly prefix: string | undefined) {}

  push(ev: WatchEvent): void {
    if (!this.kinds.has(ev.type)) return;
    if (this.prefix !== undefined && ev.prefix !== undefined && ev.prefix !== this.prefix) return;
    if (this.queue.length >= QUEUE_LIMIT) {
      this.queue.shift();
      this.lost++;
    }
    this.queue.push(ev);
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

export class WatchHub {
  readonly #watchers = new Set<Watcher>();
  /** told when the first watcher comes and when the last one goes (skeind listens to best-path changes only then) */
  onActiveChange: ((active: boolean) => void) | undefined;

  /** true while someone watches: callers skip building events otherwise */
  get active(): boolean {
    return this.#watchers.size > 0;
  }

  publish(type: WatchKind, fields: Record<string, unknown>): void {
    if (this.#watchers.size === 0) return;
    const ev: WatchEvent = { time: new Date().toISOString(), type, ...fields };
    for (const w of this.#watchers) w.push(ev);
  }

  /**
   * The stream of one watcher. Params: kinds (a list of event types; default all), prefix (only events of that
   * prefix, plus those without one, such as peer changes).
   */
  stream(params: Record<string, unknown>, sched: TurnScheduler = sharedScheduler): ControlStream {
    const kinds = parseKinds(params.kinds);
    const prefix = typeof params.prefix === 'string' ? params.prefix : undefined;
    const w = new Watcher(kinds, prefix);
    const hub = this.#watchers;
    const onActive = (active: boolean): void => this.onActiveChange?.(active);
    return new ControlStream({
      live: true,
      header: { watching: [...kinds] },
      async *rows(signal) {
        hub.add(w);
        if (hub.size === 1) onActive(true);
        const onAbort = (): void => w.wake?.();
        signal.addEventListener('abort', onAbort, { once: true });
        try {
          while (!signal.aborted) {
            if (w.queue.length === 0) await new Promise<void>((r) => { w.wake = r; });
            // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the client may have gone during the wait
            if (signal.aborted) return;
            await sched.slice();
            const batch: unknown[] = [];
            if (w.lost > 0) {
              batch.push({ time: new Date().toISOString(), type: 'lost', events: w.lost });
              w.lost = 0;
            }
            batch.push(...w.queue.splice(0, BATCH));
            yield batch;
          }
        } finally {
          signal.removeEventListener('abort', onAbort);
          hub.delete(w);
          if (hub.size === 0) onActive(false);
        }
      },
    });
  }
}

function parseKinds(v: unknown): ReadonlySet<WatchKind> {
  if (v === undefined || v === null) return new Set(WATCH_KINDS);
  const list = Array.isArray(v) ? v : typeof v === 'string' ? v.split(',') : null;
  if (list === null) throw new ControlError('"kinds" must be a list of event types', 'bad-request');
  const out = new Set<WatchKind>();
  for (const k of list) {
    if (typeof k !== 'string' || !(WATCH_KINDS as readonly string[]).includes(k)) {
      throw new ControlError(`unknown event type "${String(k)}" (known: ${WATCH_KINDS.join(', ')})`, 'bad-request');
    }
    out.add(k as WatchKind);
  }
  return out;
}
