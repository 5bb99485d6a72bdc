// Where skeind's BFD sessions run: in skeind itself (bgp/bfd/udp.ts), or in skein-bfdd, the companion process
// that outlives a restart of skeind (src/bfdd/server.ts, protocol in bgp/bfd/ipc.ts). skein.yaml's
// `bfd.companion` chooses:
//   auto (default)  the companion if its socket answers a hello when the first session is added, else in-process
//   required        the companion only; sessions wait (and are retried) until it answers
//   off             in-process only
// The choice is made once per run of skeind and logged. With the companion, a `kill -9` of skeind is invisible to
// the peers' BFD, so their BGP graceful restart (RFC 4724) keeps our routes; in-process, the peers' BFD goes Down
// and they drop them (BIRD `bfd on`, FRR's default), which is the price of running without the companion.
//
// The companion client keeps the set of sessions skeind wants. After every (re)connection it adds them all again:
// the companion adopts the ones it still runs (their state is kept) and starts the rest, so a restarted companion
// is re-synced without skeind noticing more than the sessions' own state changes. Sessions a previous skeind left
// in the companion that this one does not add are the companion's to expire (its orphan timeout).
import net from 'node:net';
import {
  encodeIpc, fromIpcSession, IPC_VERSION, IpcError, keyString, LineReader, parseServerMessage,
  type BfdKey, type BfdOutput, type BfdParams, type BfdSessionInfo, type ClientMessage, type IpcSession, type ServerMessage,
} from '../../bgp/index.js';
import type { Logger } from '../log.js';
import { udpTransport, type BfdRunsIn, type BfdTransport } from './bfd.js';

export type CompanionMode = 'auto' | 'required' | 'off';

export interface CompanionConfig {
  readonly companion: CompanionMode;
  readonly socket: string;
}

type EventSink = (e: BfdOutput) => void;
type ErrorSink = (e: Error, where: string) => void;

/** How long a hello may take before the companion counts as not answering. */
export const PROBE_TIMEOUT_MS = 1500;
/** How long a request may wait for its reply. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Snapshots are refreshed this often (timers and counters change without a state change). */
const REFRESH_MS = 2000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 2000;

interface Waiter {
  readonly done: () => void;
  readonly fail: (why: string) => void;
}

interface Pending {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** The companion's client: a BfdTransport over the unix socket. */
export class CompanionTransport implements BfdTransport {
  readonly #socketPath: string;
  readonly #log: Logger;
  readonly #onEvent: EventSink;
  /** what skeind wants: re-sent after every reconnection */
  readonly #desired = new Map<string, { key: BfdKey; params: BfdParams }>();
  readonly #pending = new Map<number, Pending>();
  #cache = new Map<string, IpcSession>();
  #socket: net.Socket | undefined;
  #ready = false;
  #nextId = 1;
  #closed = false;
  #backoff = RECONNECT_MIN_MS;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #refresh: NodeJS.Timeout | undefined;
  #waiters: Waiter[] = [];
  #lastError = '';
  /** counters, for tests */
  readonly stats = { connects: 0, badMessages: 0, resyncs: 0 };

  constructor(socketPath: string, log: Logger, onEvent: EventSink) {
    this.#socketPath = socketPath;
    this.#log = log;
    this.#onEvent = onEvent;
  }

  get connected(): boolean {
    return this.#ready;
  }

  /**
   * Connects and exchanges hellos; rejects when the companion does not answer within `timeoutMs`, or at once when
   * the connection fails (no socket file, nobody listening): a probe must not hold up the sessions.
   */
  connect(timeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#ready) return resolve();
      const w: Waiter = {
        done: () => {
          clearTimeout(timer);
          resolve();
        },
        fail: (why) => {
          clearTimeout(timer);
          this.#waiters = this.#waiters.filter((x) => x !== w);
          reject(new Error(`skein-bfdd did not answer on ${this.#socketPath}: ${why}`));
        },
      };
      const timer = setTimeout(() => w.fail(`no hello within ${timeoutMs} ms`), timeoutMs);
      this.#waiters.push(w);
      if (!this.#socket && !this.#reconnectTimer) this.#open();
    });
  }

  async add(key: BfdKey, params: BfdParams): Promise<void> {
    if (this.#closed) throw new Error('the BFD companion client is closed');
    const k = keyString(key);
    this.#desired.set(k, { key, params });
    if (!this.#ready) return; // sent with the re-sync when the companion answers
    try {
      await this.#request({ type: 'add', id: this.#nextId++, key, params });
    } catch (e) {
      if (e instanceof IpcError && e.code === 'DISCONNECTED') return; // re-sent after reconnecting
      this.#desired.delete(k);
      throw e;
    }
  }

  update(key: BfdKey, params: BfdParams): void {
    const k = keyString(key);
    if (!this.#desired.has(k)) return;
    this.#desired.set(k, { key, params });
    if (this.#ready) this.#request({ type: 'update', id: this.#nextId++, key, params }).catch((e: unknown) => this.#log.debug('bfd companion: update failed', { err: (e as Error).message }));
  }

  remove(key: BfdKey): void {
    const k = keyString(key);
    this.#desired.delete(k);
    this.#cache.delete(k);
    if (this.#ready) this.#request({ type: 'remove', id: this.#nextId++, key }).catch((e: unknown) => this.#log.debug('bfd companion: remove failed', { err: (e as Error).message }));
  }

  /** Always the companion, connected or not: sessions wait for it rather than move into skeind. */
  readonly runsIn = (): BfdRunsIn => 'skein-bfdd';

  sessions(): BfdSessionInfo[] {
    const now = performance.now();
    const out: BfdSessionInfo[] = [];
    for (const [k, s] of this.#cache) if (this.#desired.has(k)) out.push(fromIpcSession(s, now));
    return out;
  }

  /**
   * Detaches. The sessions stay in the companion whatever `graceful` says: a stopped skeind is most often a
   * restarting one, and a companion that AdminDowns everything would undo what it is for. A skeind that does not
   * come back leaves them to the companion's orphan timeout.
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    clearInterval(this.#refresh);
    const s = this.#socket;
    this.#socket = undefined;
    this.#ready = false;
    if (s && !s.destroyed) await new Promise<void>((r) => s.end(() => r()));
    s?.destroy();
    this.#failPending();
  }

  #open(): void {
    if (this.#closed) return;
    this.#reconnectTimer = undefined;
    const s = net.connect(this.#socketPath);
    this.#socket = s;
    const reader = new LineReader();
    s.setEncoding('utf8');
    s.on('connect', () => s.write(encodeIpc({ type: 'hello', version: IPC_VERSION, client: `skeind ${process.pid}` })));
    s.on('data', (chunk: string) => {
      let lines: string[];
      try {
        lines = reader.push(chunk);
      } catch (e) {
        this.stats.badMessages++;
        this.#log.warn('bfd companion: unreadable output; reconnecting', { reason: (e as Error).message });
        s.destroy();
        return;
      }
      for (const line of lines) if (this.#socket === s) this.#line(s, line);
    });
    s.on('error', (e) => {
      this.#lastError = (e as NodeJS.ErrnoException).code ?? e.message;
      this.#log.debug('bfd companion socket', { err: e.message });
    });
    s.on('close', () => {
      if (this.#socket !== s) return;
      const was = this.#ready;
      this.#socket = undefined;
      this.#ready = false;
      clearInterval(this.#refresh);
      this.#failPending();
      if (!was) for (const w of [...this.#waiters]) w.fail(this.#lastError || 'the connection closed before the hello');
      if (this.#closed) return;
      if (was) this.#log.warn('bfd companion went away; reconnecting (the peers see BFD fail if it does not come back)', { socket: this.#socketPath });
      this.#reconnectTimer = setTimeout(() => this.#open(), this.#backoff);
      this.#reconnectTimer.unref();
      this.#backoff = Math.min(RECONNECT_MAX_MS, this.#backoff * 2);
    });
  }

  #line(s: net.Socket, line: string): void {
    let m: ServerMessage;
    try {
      m = parseServerMessage(line);
    } catch (e) {
      this.stats.badMessages++;
      this.#log.warn('bfd companion: bad message ignored', { reason: (e as Error).message });
      return;
    }
    switch (m.type) {
      case 'hello':
        if (m.version !== IPC_VERSION) {
          this.#log.error('bfd companion speaks another protocol version', { theirs: m.version, ours: IPC_VERSION });
          s.destroy();
          return;
        }
        this.#attached(m.pid, m.sessions);
        return;
      case 'ok':
        return this.#settle(m.id);
      case 'error':
        if (m.id !== null) return this.#settle(m.id, new IpcError(m.code, m.message));
        this.#log.warn('bfd companion reported an error', { code: m.code, reason: m.message });
        if (m.code === 'VERSION') s.destroy();
        return;
      case 'sessions':
        this.#cache = new Map(m.sessions.map((x) => [keyString(x.key), x]));
        if (m.id !== null) this.#settle(m.id);
        return;
      case 'event': {
        if (!this.#desired.has(keyString(m.event.key))) return;
        this.#onEvent(m.event as BfdOutput);
        return;
      }
    }
  }

  #attached(pid: number, sessions: readonly IpcSession[]): void {
    this.#ready = true;
    this.#backoff = RECONNECT_MIN_MS;
    this.stats.connects++;
    this.#cache = new Map(sessions.map((x) => [keyString(x.key), x]));
    const adopt = [...this.#desired.values()];
    this.#log.info('bfd companion attached', { pid, running: sessions.length, resync: adopt.length });
    if (adopt.length > 0) this.stats.resyncs++;
    for (const d of adopt) {
      this.#request({ type: 'add', id: this.#nextId++, key: d.key, params: d.params }).catch((e: unknown) => {
        this.#log.warn('bfd companion: re-adding a session failed', { peer: d.key.peer, err: (e as Error).message });
      });
    }
    clearInterval(this.#refresh);
    this.#refresh = setInterval(() => {
      if (this.#ready) this.#request({ type: 'sessions', id: this.#nextId++ }).catch(() => undefined);
    }, REFRESH_MS);
    this.#refresh.unref();
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f.done();
  }

  #request(m: Exclude<ClientMessage, { type: 'hello' }>): Promise<void> {
    const s = this.#socket;
    if (!s || !this.#ready) return Promise.reject(new IpcError('DISCONNECTED', 'the BFD companion is not connected'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(m.id);
        reject(new IpcError('TIMEOUT', `no reply to ${m.type} within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      timer.unref();
      this.#pending.set(m.id, { resolve, reject, timer });
      s.write(encodeIpc(m));
    });
  }

  #settle(id: number, err?: Error): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve();
  }

  #failPending(): void {
    for (const [id, p] of [...this.#pending]) {
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new IpcError('DISCONNECTED', 'the BFD companion went away'));
    }
  }
}

/**
 * The transport BfdWiring gets: the choice of `bfd.companion`, made when the first session is added (BFD may
 * never be configured, and then nothing is probed).
 */
export function chooseBfdTransport(cfg: CompanionConfig, log: Logger): (onEvent: EventSink, onError: ErrorSink) => BfdTransport {
  return (onEvent, onError) => {
    if (cfg.companion === 'off') {
      log.info('bfd runs in skeind (bfd.companion: off)');
      return udpTransport(onEvent, onError);
    }
    let chosen: Promise<BfdTransport> | undefined;
    let current: BfdTransport | undefined;
    const choose = (): Promise<BfdTransport> => {
      chosen ??= (async () => {
        const c = new CompanionTransport(cfg.socket, log, onEvent);
        try {
          await c.connect();
          log.info('bfd runs in skein-bfdd: sessions survive a restart of skeind', { socket: cfg.socket });
          return (current = c);
        } catch (e) {
          if (cfg.companion === 'required') {
            // Keep trying in the background; the sessions are added with the re-sync once it answers.
            log.warn('bfd.companion is required but skein-bfdd does not answer yet; BFD sessions wait for it', { socket: cfg.socket, reason: (e as Error).message });
            return (current = c);
          }
          await c.close();
          log.info('skein-bfdd does not answer: bfd runs in skeind (a restart of skeind will look like a BFD failure to the peers)', { socket: cfg.socket, reason: (e as Error).message });
          return (current = udpTransport(onEvent, onError));
        }
      })();
      return chosen;
    };
    return {
      runsIn: () => current?.runsIn() ?? 'undecided',
      add: async (k, p) => (await choose()).add(k, p),
      update: (k, p) => current?.update(k, p),
      remove: (k) => current?.remove(k),
      sessions: () => current?.sessions() ?? [],
      close: async (o) => {
        if (chosen) await (await chosen).close(o);
      },
    };
  };
}
