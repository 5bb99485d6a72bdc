// The daemon's side of a live migration (the rules are in src/controller/migration.ts): watch the interface of every
// endpoint in Felix's Target state for the VM's RARP / gratuitous ARP, and wake the controller when a TimeWait is
// due. Felix opens its capture once, on entering Target, and gives up when the interface is not there yet
// (felix/dataplane/linux/live_migration.go startGARPDetection); the tap of an incoming VM often appears after its
// endpoint, so this retries until it exists — the move then happens at the announcement instead of at completion.
import { native } from '../../bgp/index.js';
import type { Logger } from '../log.js';

// No timer drains the socket: the poll that once missed frames under load was stopped by libuv on the ENETDOWN a
// packet socket reports when its interface is down at bind or goes down (announce_watch.c restarts it), which the
// tap of an incoming VM often is for a moment; test/daemon/migration-watch checks every announcement arrives without one.
// The one timer left runs only while a watched tap is down: deleted then, it would never be heard of again.
const RETRY_MS = 200;

interface Watch {
  dev: string;
  handle?: object;
  retry?: NodeJS.Timeout;
  /** while the interface is down: checks whether it was deleted meanwhile (the kernel does not say) */
  check?: NodeJS.Timeout;
  /** the last open error, logged once per kind */
  lastError?: string;
}

export class MigrationWatcher {
  readonly #watches = new Map<string, Watch>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt: number | undefined;
  #closed = false;

  constructor(
    private readonly log: Logger,
    /** an endpoint's VM announced itself on its interface */
    private readonly onAnnounce: (endpointId: string, kind: 'rarp' | 'garp') => void,
    /** a TimeWait deadline passed */
    private readonly onDeadline: () => void,
  ) {}

  /** The interfaces to watch now (endpoint id → interface) and the next TimeWait deadline (ms since the epoch). */
  sync(watches: ReadonlyMap<string, string>, deadline: number | undefined): void {
    if (this.#closed) return;
    for (const [id, w] of this.#watches) {
      if (watches.get(id) !== w.dev) this.#stop(id, w);
    }
    for (const [id, dev] of watches) if (!this.#watches.has(id)) this.#start(id, { dev });
    if (deadline !== this.#timerAt) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = deadline;
      if (deadline !== undefined) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#timerAt = undefined;
          this.onDeadline();
        }, Math.max(0, deadline - Date.now()));
      }
    }
  }

  /** Endpoint ids being watched (for status and tests). */
  get watching(): string[] {
    return [...this.#watches.keys()].sort();
  }

  close(): void {
    this.#closed = true;
    for (const [id, w] of this.#watches) this.#stop(id, w);
    clearTimeout(this.#timer);
  }

  #start(id: string, w: Watch): void {
    this.#watches.set(id, w);
    try {
      const gone = (): void => {
        // The tap was deleted (and may come back under the same name, a new interface): watch it anew.
        this.log.info('live migration target: the interface went away; watching for it again', { endpoint: id, dev: w.dev });
        this.#stop(id, w);
        this.#start(id, { dev: w.dev });
      };
      const seen = (kind: 'rarp' | 'garp' | 'gone' | 'down'): void => {
        if (this.#watches.get(id) !== w) return;
        if (kind === 'gone') return gone();
        if (kind === 'down') {
          // The socket keeps watching and sees frames once the tap is up; deleted while down, it would hear nothing.
          this.log.debug('live migration target: the interface is down', { endpoint: id, dev: w.dev });
          if (w.check !== undefined) return;
          w.check = setInterval(() => {
            const state = w.handle === undefined ? 'gone' : native().announceWatchState(w.handle);
            if (state === 'down') return;
            clearInterval(w.check);
            delete w.check;
            if (state === 'gone' && this.#watches.get(id) === w) gone();
          }, RETRY_MS);
          w.check.unref();
          return;
        }
        this.log.info('live migration: the VM announced itself on this host', { endpoint: id, dev: w.dev, frame: kind });
        this.onAnnounce(id, kind);
      };
      w.handle = native().announceWatch(w.dev, seen);
      this.log.info('live migration target: watching for the VM\'s announcement', { endpoint: id, dev: w.dev });
    } catch (e) {
      const code = (e as { code?: string }).code ?? (e as Error).message;
      if (code !== w.lastError) {
        // ENODEV: the tap is not there yet (normal early in a migration); anything else is worth a warning.
        this.log[code === 'ENODEV' ? 'info' : 'warn']('live migration target: cannot watch the interface yet; retrying', { endpoint: id, dev: w.dev, err: e });
        w.lastError = code;
      }
      w.retry = setTimeout(() => {
        delete w.retry;
        if (this.#watches.get(id) === w && !this.#closed) {
          this.#watches.delete(id);
          this.#start(id, w);
        }
      }, RETRY_MS);
    }
  }

  #stop(id: string, w: Watch): void {
    this.#watches.delete(id);
    clearTimeout(w.retry);
    clearInterval(w.check);
    if (w.handle !== undefined) {
      try {
        native().announceWatchClose(w.handle);
      } catch (e) {
        this.log.warn('closing an announcement watch failed', { endpoint: id, err: e });
      }
    }
  }
}
