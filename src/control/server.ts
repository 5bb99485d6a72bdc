// skeind's side of the control socket (protocol in ./protocol.ts). Owns the socket file: creates its directory,
// replaces a stale socket left by a daemon that died, refuses to start when another daemon still answers on it,
// gives it mode 0660 and the configured group, and removes it on close. Handlers are registered by method name;
// a client's bad request gets an error answer, never a crash, and one slow handler does not hold up the others.
// A handler may answer with a ControlStream (./stream.ts): its rows go out batch by batch as the client reads them,
// within the shared time slices and the concurrency limits there; a client that goes away cancels its request.
// Connections that hold nothing in flight are closed after `idleTimeoutMs`, and when every connection slot is
// taken the longest-idle one is shed to make room.
import { chmod, chown, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import { resolveGroup } from './group.js';
import { IdleCollector } from './idle-gc.js';
import { ControlError, DEFAULT_CONTROL_SOCKET, DEFAULT_MAX_REQUEST_BYTES } from './protocol.js';
import type { ControlResponse, RequestId } from './protocol.js';
import { BusyError, ControlStream, StreamLimiter } from './stream.js';
import type { LimiterStats } from './stream.js';

export type ControlHandler = (params: Record<string, unknown>) => unknown;

export interface ControlServerOptions {
  /** default /run/skein/skein.sock */
  path?: string;
  /** group that may use the socket (name or gid); unset: the daemon's own group (root only, under systemd) */
  group?: string | number;
  /** socket file mode; default 0o660 */
  mode?: number;
  maxRequestBytes?: number;
  /** connections beyond this shed an idle one or are closed at once; default 512 (16 streaming + 256 queued + plenty for plain requests) */
  maxConnections?: number;
  /** a connection with nothing in flight and no traffic for this long is closed; default 60 s */
  idleTimeoutMs?: number;
  /** a stream whose client reads nothing for this long is cancelled and its connection closed; default 30 s */
  stallTimeoutMs?: number;
  /** streams producing at once / waiting for a slot; defaults 16 / 256 */
  maxActiveStreams?: number;
  maxQueuedStreams?: number;
  log?: Logger;
}

/** a connection quieter than this is never shed to make room */
const MIN_IDLE_MS = 1000;

/** What the server tracks per connection. */
interface Conn {
  /** requests (plain or streams) not yet answered in full */
  inflight: number;
  /** live streams (watch) on this connection: it is never idle while one runs */
  live: number;
  /** when the last request arrived or the last answer went out (ms, Date.now()) */
  lastActive: number;
  /** aborted when the connection closes: cancels its streams */
  readonly closed: AbortController;
}

export interface ControlServerStats extends LimiterStats {
  connections: number;
  /** connections closed to make room for a new one, or for idleness */
  shed: number;
  /** streams cancelled because their client went away or stopped reading */
  cancelled: number;
  /** full heap collections asked for after the table streams ended (idle-gc.ts) */
  idleCollections: number;
}

export class ControlServer {
  readonly path: string;
  readonly #o: ControlServerOptions;
  readonly #handlers = new Map<string, ControlHandler>();
  readonly #sockets = new Map<Socket, Conn>();
  readonly #limiter: StreamLimiter;
  #shed = 0;
  #cancelled = 0;
  /** table streams producing or waiting; when it falls to 0 after a spike, the heap is collected (idle-gc.ts) */
  #streams = 0;
  readonly #idleGc = new IdleCollector();
  #server: Server | undefined;
  #inflight = 0;
  #idle: (() => void) | undefined;
  #ino: number | undefined;

  constructor(options: ControlServerOptions = {}) {
    this.#o = options;
    this.path = options.path ?? DEFAULT_CONTROL_SOCKET;
    this.#limiter = new StreamLimiter({
      ...(options.maxActiveStreams !== undefined ? { active: options.maxActiveStreams } : {}),
      ...(options.maxQueuedStreams !== undefined ? { queued: options.maxQueuedStreams } : {}),
    });
  }

  get stats(): ControlServerStats {
    return { ...this.#limiter.stats, connections: this.#sockets.size, shed: this.#shed, cancelled: this.#cancelled, idleCollections: this.#idleGc.collections };
  }

  /** Registers the handler of `method`; its (awaited) return value is the result. */
  handle(method: string, handler: ControlHandler): this {
    this.#handlers.set(method, handler);
    return this;
  }

  /**
   * Creates the socket and starts accepting. Rejects when another daemon answers on the path, when the path
   * exists and is not a socket, or when the group does not exist.
   */
  async listen(): Promise<void> {
    const log = this.#o.log;
    const gid = this.#o.group === undefined ? undefined : await resolveGroup(this.#o.group);
    await mkdir(dirname(this.path), { recursive: true, mode: 0o755 });
    await this.#clearStale();

    const server = createServer((sock) => this.#accept(sock));
    // Beyond maxConnections a new connection sheds the longest-idle one, or is closed at once when every
    // connection has something in flight (#accept): a runaway script cannot exhaust descriptors.
    const mode = this.#o.mode ?? 0o660;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // bind() creates the file with the process umask: narrow it for the bind, so there is no moment when
      // the socket is more open than `mode`. Node binds synchronously inside listen(), so restoring right
      // after is enough.
      const old = process.umask(~mode & 0o777);
      try {
        server.listen({ path: this.path }, () => {
          server.off('error', reject);
          resolve();
        });
      } finally {
        process.umask(old);
      }
    });
    this.#server = server;
    server.on('error', (e) => log?.error('control socket error', { err: e, socket: this.path }));
    try {
      await this.#own(mode, gid);
    } catch (e) {
      await this.close();
      throw e;
    }
    log?.info('control socket listening', { socket: this.path });
  }

  // Mode and group of the socket file, and its inode (so close() removes only our own file).
  async #own(mode: number, gid: number | undefined): Promise<void> {
    const log = this.#o.log;
    this.#ino = (await lstat(this.path)).ino;
    await chmod(this.path, mode);
    if (gid !== undefined) {
      try {
        await chown(this.path, process.getuid?.() ?? 0, gid);
      } catch (e) {
        // Without CAP_CHOWN (the systemd unit bounds capabilities) a process may only give a file one of its
        // own groups: the socket stays root-only, which is safe. Say how to fix it.
        log?.warn('cannot give the control socket its group; only root can use skeinctl', {
          socket: this.path, group: this.#o.group, err: e, hint: 'run skeind with Group= set to that group',
        });
      }
    }
  }

  /** Stops accepting, lets requests in flight finish (up to `graceMs`), closes connections, removes the file. */
  async close(graceMs = 2000): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    this.#idleGc.stop();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    if (this.#inflight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, graceMs);
        this.#idle = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    for (const s of this.#sockets.keys()) s.destroy();
    await closed;
    // Remove the file only if it is still the one we made (a successor may already have replaced it).
    try {
      if ((await lstat(this.path)).ino === this.#ino) await unlink(this.path);
    } catch {
      // already gone
    }
  }

  async #clearStale(): Promise<void> {
    let st;
    try {
      st = await lstat(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    if (!st.isSocket()) throw new Error(`refusing to replace ${this.path}: it exists and is not a socket`);
    const probe = await probeSocket(this.path);
    if (probe === 'live') throw new Error(`another skeind is already answering on ${this.path}`);
    if (probe !== 'stale') throw new Error(`cannot tell whether ${this.path} is in use (${probe}); not replacing it`);
    await unlink(this.path);
    this.#o.log?.info('removed a stale control socket', { socket: this.path });
  }

  #accept(sock: Socket, retried = false): void {
    const max = this.#o.maxConnections ?? 512;
    if (this.#sockets.size >= max && !this.#shedIdle()) {
      // Clients that just got their answer hang up a moment later: give their close a chance to be seen once
      // before refusing.
      if (!retried) {
        sock.on('error', () => sock.destroy());
        setTimeout(() => (sock.destroyed ? undefined : this.#server ? this.#accept(sock, true) : sock.destroy()), 50).unref();
        return;
      }
      sock.destroy();
      return;
    }
    const conn: Conn = { inflight: 0, live: 0, lastActive: Date.now(), closed: new AbortController() };
    this.#sockets.set(sock, conn);
    // Idle: no traffic either way for this long. A connection waiting for its answer or holding a live stream is
    // not idle (a stream whose client stopped reading is caught by the stall timeout instead).
    sock.setTimeout(this.#o.idleTimeoutMs ?? 60_000, () => {
      if (conn.inflight > 0 || conn.live > 0) return;
      this.#shed++;
      sock.destroy();
    });
    sock.on('close', () => {
      this.#sockets.delete(sock);
      conn.closed.abort();
    });
    sock.on('error', () => sock.destroy());
    this.#serve(sock, conn);
  }

  /**
   * Closes the connection idle the longest (nothing in flight, quiet for at least a second, so a client that
   * just connected gets to send its request); false when there is none.
   */
  #shedIdle(): boolean {
    let victim: [Socket, Conn] | undefined;
    const now = Date.now();
    for (const e of this.#sockets) {
      if (e[1].inflight > 0 || e[1].live > 0 || now - e[1].lastActive < MIN_IDLE_MS) continue;
      if (!victim || e[1].lastActive < victim[1].lastActive) victim = e;
    }
    if (!victim) return false;
    this.#shed++;
    this.#o.log?.debug('control socket full: closing the longest-idle connection', { idleMs: Date.now() - victim[1].lastActive });
    this.#sockets.delete(victim[0]);
    victim[0].destroy();
    return true;
  }

  #serve(sock: Socket, conn: Conn): void {
    const max = this.#o.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    sock.on('data', (chunk: Buffer) => {
      let start = 0;
      let nl: number;
      while ((nl = chunk.indexOf(10, start)) >= 0) {
        const part = chunk.subarray(start, nl);
        const line = pendingBytes === 0 ? part : Buffer.concat([...pending, part]);
        pending = [];
        pendingBytes = 0;
        start = nl + 1;
        if (line.length > max) return this.#tooLarge(sock, max);
        if (line.length > 0) this.#request(sock, conn, line.toString('utf8'));
      }
      const rest = chunk.subarray(start);
      if (rest.length === 0) return;
      pending.push(rest);
      pendingBytes += rest.length;
      // No newline within the limit: the line cannot become valid, and reading on would let a client make us
      // buffer without bound. Answer and hang up (the stream cannot be resynchronised).
      if (pendingBytes > max) this.#tooLarge(sock, max);
    });
  }

  #tooLarge(sock: Socket, max: number): void {
    this.#o.log?.warn('control request too large; closing the connection', { limit: max });
    sock.end(reply({ id: null, error: { message: `request too large (limit ${max} bytes)`, code: 'too-large' } }));
    sock.removeAllListeners('data');
    sock.pause();
  }

  #request(sock: Socket, conn: Conn, line: string): void {
    conn.lastActive = Date.now();
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      return send(sock, { id: null, error: { message: 'request is not valid JSON', code: 'bad-request' } });
    }
    const r = (typeof req === 'object' && req !== null ? req : {}) as { id?: unknown; method?: unknown; params?: unknown };
    const id: RequestId | null = typeof r.id === 'number' || typeof r.id === 'string' ? r.id : null;
    if (typeof req !== 'object' || req === null || id === null || typeof r.method !== 'string') {
      return send(sock, { id, error: { message: 'request must be an object with "id" (number or string) and "method" (string)', code: 'bad-request' } });
    }
    if (r.params !== undefined && (typeof r.params !== 'object' || r.params === null || Array.isArray(r.params))) {
      return send(sock, { id, error: { message: '"params" must be an object', code: 'bad-request' } });
    }
    const handler = this.#handlers.get(r.method);
    if (!handler) {
      const known = [...this.#handlers.keys()].sort().join(', ');
      return send(sock, { id, error: { message: `unknown method "${r.method}" (known: ${known})`, code: 'unknown-method' } });
    }
    this.#inflight++;
    conn.inflight++;
    const params = (r.params ?? {}) as Record<string, unknown>;
    const fail = (e: unknown): void => {
      const code = e instanceof ControlError ? e.code : e instanceof BusyError ? 'busy' : 'internal';
      if (code === 'internal') this.#o.log?.error('control handler failed', { method: r.method, err: e });
      send(sock, { id, error: { message: e instanceof Error ? e.message : String(e), code } });
    };
    Promise.resolve()
      .then(() => handler(params))
      .then(
        (result) => (result instanceof ControlStream ? this.#stream(sock, conn, id, result) : send(sock, { id, result: result === undefined ? null : result })),
      )
      .catch(fail)
      .finally(() => {
        conn.inflight--;
        conn.lastActive = Date.now();
        if (--this.#inflight === 0) this.#idle?.();
      });
  }

  /**
   * Sends a stream's rows as the client reads them. Resolves when the stream ended, failed or was cancelled; a
   * failure before the first row rejects (the caller answers with an error line), a later one ends the stream
   * with an error line.
   */
  async #stream(sock: Socket, conn: Conn, id: RequestId, st: ControlStream): Promise<void> {
    let release: (() => void) | undefined;
    const table = !st.live && !st.light;
    if (table && this.#streams++ === 0) this.#idleGc.busy();
    try {
      await this.#streamRows(sock, conn, id, st, (r) => (release = r));
    } finally {
      release?.();
      if (table && --this.#streams === 0 && this.#server !== undefined) this.#idleGc.idle();
    }
  }

  async #streamRows(sock: Socket, conn: Conn, id: RequestId, st: ControlStream, held: (release: () => void) => void): Promise<void> {
    const signal = conn.closed.signal;
    let release: (() => void) | undefined;
    if (st.live) conn.live++;
    else if (!st.light) {
      release = await this.#limiter.acquire(signal, (position) => send(sock, { id, waiting: { position } })).catch((e: unknown) => {
        if (signal.aborted) return undefined;
        throw e;
      });
      if (!release) return;
      held(release);
    }
    const stallMs = this.#o.stallTimeoutMs ?? 30_000;
    const it = st.rows(signal)[Symbol.asyncIterator]();
    let count = 0;
    try {
      if (!write(sock, { id, begin: st.header })) await drained(sock, signal, stallMs);
      for (;;) {
        if (signal.aborted) break;
        const next = await it.next();
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the client may have gone while the rows were made
        if (next.done || signal.aborted) break;
        const rows = next.value;
        if (rows.length === 0) continue;
        count += rows.length;
        conn.lastActive = Date.now();
        const ok = st.raw
          ? sock.writable ? sock.write(`{"id":${JSON.stringify(id)},"rows":[${(rows as readonly string[]).join(',')}]}\n`) : true
          : write(sock, { id, rows });
        if (!ok) await drained(sock, signal, stallMs);
      }
      if (!signal.aborted) write(sock, { id, end: { count, ...st.trailer() } });
    } catch (e) {
      if (e instanceof StallError) {
        this.#o.log?.info('control client stopped reading; request cancelled', { waitedMs: stallMs, rows: count });
        sock.destroy();
      } else if (!signal.aborted) {
        const code = e instanceof ControlError ? e.code : 'internal';
        if (code === 'internal') this.#o.log?.error('control stream failed', { err: e, rows: count });
        send(sock, { id, error: { message: e instanceof Error ? e.message : String(e), code } });
      }
    } finally {
      if (signal.aborted) this.#cancelled++;
      // Ends the producer: its finally blocks run, and the snapshot it held can be collected.
      void it.return?.().catch(() => undefined);
      if (st.live) conn.live--;
    }
  }
}

function reply(r: ControlResponse): string {
  return `${JSON.stringify(r)}\n`;
}

function send(sock: Socket, r: ControlResponse): void {
  if (sock.writable) sock.write(reply(r));
}

/** Writes one line; false when the socket's buffer is above its high-water mark (wait for 'drain'). */
function write(sock: Socket, msg: Record<string, unknown>): boolean {
  if (!sock.writable) return true;
  return sock.write(`${JSON.stringify(msg)}\n`);
}

class StallError extends Error {}

/** Resolves on 'drain', or when the connection closes; rejects with StallError after `ms` without progress. */
function drained(sock: Socket, signal: AbortSignal, ms: number): Promise<void> {
  if (signal.aborted || !sock.writable) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      sock.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(() => {
      sock.off('drain', done);
      signal.removeEventListener('abort', done);
      reject(new StallError('client stopped reading'));
    }, ms);
    sock.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** "live" when something accepts a connection on `path`, "stale" when the kernel refuses it, else the errno. */
export function probeSocket(path: string, timeoutMs = 1000): Promise<'live' | 'stale' | string> {
  return new Promise((resolve) => {
    const s = connect({ path });
    const t = setTimeout(() => {
      s.destroy();
      resolve('no answer to connect');
    }, timeoutMs);
    s.on('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve('live');
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? 'stale' : (e.code ?? e.message));
    });
  });
}
