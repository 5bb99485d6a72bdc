// skein-bfdd's core: the BFD sessions (bgp/bfd/udp.ts) behind a unix socket that skeind attaches to
// (bgp/bfd/ipc.ts). The point is fate separation: the sessions keep transmitting while skeind restarts, so a
// `kill -9` of skeind is not a BFD failure for the peers and their BGP graceful restart keeps our routes (issue 18).
// Hence the C bit is set (RFC 5880 §4.1, §6.8.7: "the BFD implementation does not share fate with its control
// plane"). A power loss takes both processes, and the peers detect it in their Detection Time.
//
// Ownership. One client at a time owns the sessions it added; a newer client's hello takes over (the old
// connection is closed), which is what a restarted skeind does while the old one's socket lingers. When the owner
// goes away its sessions become orphans: they keep running, and the next client adopts one by adding the same key
// (the parameters are updated, the state is left alone). An orphan nobody adopts within `orphanTimeoutMs` is
// removed, with AdminDown to the peer (RFC 5880 §6.8.16), so a host whose skeind is gone for good does not keep
// BFD up for ever.
//
// Nothing a client sends can stop the server: bad JSON, an unknown message, a bad key or parameters get an
// error reply naming what is wrong; an over-long line or a client that does not read its replies is
// disconnected. Sessions are bounded (MAX_SESSIONS).
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import net from 'node:net';
import {
  BfdUdpDriver, encodeIpc, IPC_VERSION, IpcError, keyString, LineReader, MAX_SESSIONS, parseClientMessage,
  toIpcSession, type BfdKey, type BfdOutput, type ClientMessage, type IpcEvent, type ServerMessage,
} from '../../bgp/index.js';
import type { Logger } from '../log.js';
import { LateTimerLog } from '../daemon/bfd-late.js';

export const DEFAULT_BFDD_SOCKET = '/run/skein-bfd/bfd.sock';
/** Long enough for a restart and a slow datastore sync; BGP graceful restart's own 120 s is the model. */
export const DEFAULT_ORPHAN_TIMEOUT_MS = 300_000;
/** A client that lets this much of our output pile up unread is dropped. */
const MAX_PENDING_OUTPUT = 4 * 1024 * 1024;

export interface BfddOptions {
  readonly socketPath: string;
  readonly log: Logger;
  readonly orphanTimeoutMs?: number;
  /** BFD destination ports (tests move them off 3784/4784) */
  readonly singleHopPort?: number;
  readonly multihopPort?: number;
  /** socket file mode; default 0600 (root only, as skeind runs) */
  readonly socketMode?: number;
}

interface Conn {
  readonly id: number;
  readonly socket: net.Socket;
  hello: boolean;
  client: string;
}

interface Owned {
  owner: Conn | undefined;
  /** clock ms when it lost its owner */
  orphanSince: number | undefined;
}

export class BfdCompanionServer {
  readonly driver: BfdUdpDriver;
  readonly #o: BfddOptions;
  readonly #orphanTimeoutMs: number;
  readonly #sessions = new Map<string, Owned>();
  readonly #conns = new Set<Conn>();
  #owner: Conn | undefined;
  #server: net.Server | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #pushQueued = false;
  #nextConn = 1;
  #closed = false;
  /** counters, for tests and logs */
  readonly stats = { connections: 0, badMessages: 0, adopted: 0, orphansRemoved: 0 };
  readonly #late: LateTimerLog;

  constructor(o: BfddOptions) {
    this.#o = o;
    this.#orphanTimeoutMs = o.orphanTimeoutMs ?? DEFAULT_ORPHAN_TIMEOUT_MS;
    this.#late = new LateTimerLog(o.log);
    this.driver = new BfdUdpDriver({
      controlPlaneIndependent: true,
      ...(o.singleHopPort !== undefined ? { singleHopPort: o.singleHopPort } : {}),
      ...(o.multihopPort !== undefined ? { multihopPort: o.multihopPort } : {}),
      onEvent: (e) => {
        if (e.type === 'discard') this.#o.log.debug('bfd packet discarded', { code: e.code, reason: e.reason, from: e.from });
        else if (e.type === 'late') this.#late.note(e); // skeind reads the counters from the session snapshot
        else if (e.type !== 'send') this.#onEvent(e);
      },
      onError: (err, where) => this.#o.log.debug('bfd socket', { where, err: err.message }),
    });
  }

  /** Listens on the socket; a stale socket file (nobody answering) is replaced, a live one is an error. */
  async start(): Promise<void> {
    const path = this.#o.socketPath;
    // Under systemd RuntimeDirectory= makes the directory; run by hand, make it here.
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    await removeStaleSocket(path);
    const server = net.createServer((s) => this.#accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.#o.log.error('control socket error', { err: e.message }));
    chmodSync(path, this.#o.socketMode ?? 0o600);
    this.#server = server;
    const every = Math.max(50, Math.min(5000, Math.floor(this.#orphanTimeoutMs / 4)));
    this.#sweep = setInterval(() => this.#sweepOrphans(), every);
    this.#sweep.unref();
    this.#o.log.info('skein-bfdd listening', { socket: path, orphanTimeoutMs: this.#orphanTimeoutMs });
  }

  /** Sessions by key, with whether a client owns them (tests, logs). */
  owned(): { key: BfdKey; owned: boolean; state: string }[] {
    return this.driver.manager.sessions().map((s) => ({ key: s.key, owned: this.#sessions.get(keyString(s.key))?.owner !== undefined, state: s.state }));
  }

  /**
   * Stops. graceful (SIGTERM: an upgrade or a planned stop): every session says AdminDown first, which peers do
   * not take for a failure (RFC 5882 §3.2); otherwise the sockets just close, as at a power loss.
   */
  async close(opts: { graceful?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const c of this.#conns) c.socket.destroy();
    this.#conns.clear();
    if (this.#server) await new Promise<void>((r) => this.#server?.close(() => r()));
    await this.driver.close(opts);
  }

  #accept(socket: net.Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const conn: Conn = { id: this.#nextConn++, socket, hello: false, client: '' };
    this.#conns.add(conn);
    this.stats.connections++;
    const reader = new LineReader();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      let lines: string[];
      try {
        lines = reader.push(chunk);
      } catch (e) {
        this.stats.badMessages++;
        this.#send(conn, { type: 'error', id: null, code: (e as Partial<IpcError>).code ?? 'BAD_MESSAGE', message: (e as Error).message });
        socket.end();
        return;
      }
      for (const line of lines) {
        if (socket.destroyed) return;
        this.#line(conn, line);
      }
    });
    socket.on('error', (e) => this.#o.log.debug('client socket error', { conn: conn.id, err: e.message }));
    socket.on('close', () => this.#detach(conn));
  }

  #line(conn: Conn, line: string): void {
    let m: ClientMessage;
    try {
      m = parseClientMessage(line);
    } catch (e) {
      this.stats.badMessages++;
      const code = e instanceof IpcError ? e.code : 'BAD_MESSAGE';
      this.#o.log.warn('bad message from a client', { conn: conn.id, code, reason: (e as Error).message });
      this.#send(conn, { type: 'error', id: idOf(line), code, message: (e as Error).message });
      return;
    }
    if (m.type === 'hello') return this.#hello(conn, m);
    if (!conn.hello) {
      this.#send(conn, { type: 'error', id: 'id' in m ? m.id : null, code: 'NO_HELLO', message: 'send hello first' });
      return;
    }
    if (conn !== this.#owner) {
      this.#send(conn, { type: 'error', id: 'id' in m ? m.id : null, code: 'NOT_OWNER', message: 'a newer client has taken over' });
      return;
    }
    switch (m.type) {
      case 'add':
        void this.#add(conn, m.id, m.key, m.params);
        return;
      case 'update': {
        const k = keyString(m.key);
        if (!this.#sessions.has(k)) return this.#send(conn, { type: 'error', id: m.id, code: 'NO_SESSION', message: `no session ${k}` });
        this.driver.update(m.key, m.params);
        this.#send(conn, { type: 'ok', id: m.id });
        return;
      }
      case 'remove': {
        const k = keyString(m.key);
        if (this.#sessions.delete(k)) {
          this.driver.remove(m.key);
          this.#o.log.info('session removed', { peer: m.key.peer, local: m.key.local });
        }
        this.#send(conn, { type: 'ok', id: m.id });
        return;
      }
      case 'sessions':
        this.#send(conn, { type: 'sessions', id: m.id, sessions: this.#snapshot() });
        return;
    }
  }

  #hello(conn: Conn, m: Extract<ClientMessage, { type: 'hello' }>): void {
    if (m.version !== IPC_VERSION) {
      this.#send(conn, { type: 'error', id: null, code: 'VERSION', message: `protocol version ${m.version} is not supported; this skein-bfdd speaks ${IPC_VERSION}` });
      conn.socket.end();
      return;
    }
    conn.hello = true;
    conn.client = m.client;
    const previous = this.#owner;
    this.#owner = conn;
    if (previous && previous !== conn) {
      this.#o.log.info('a newer client took over', { conn: conn.id, previous: previous.id });
      this.#detach(previous);
      previous.socket.destroy();
    }
    this.#o.log.info('client attached', { conn: conn.id, client: m.client, sessions: this.#sessions.size });
    this.#send(conn, { type: 'hello', version: IPC_VERSION, server: 'skein-bfdd', pid: process.pid, sessions: this.#snapshot() });
  }

  async #add(conn: Conn, id: number, key: BfdKey, params: Parameters<BfdUdpDriver['add']>[1]): Promise<void> {
    const k = keyString(key);
    const existing = this.#sessions.get(k);
    if (existing) {
      // Adoption after a restart of skeind, or a plain re-add: keep the running session (its state, its
      // discriminators, its source port) and take the parameters given now.
      if (existing.owner !== conn) {
        this.stats.adopted++;
        this.#o.log.info('session adopted', { conn: conn.id, peer: key.peer, local: key.local, state: this.driver.manager.get(key)?.state });
      }
      existing.owner = conn;
      existing.orphanSince = undefined;
      this.driver.update(key, params);
      this.#send(conn, { type: 'ok', id });
      return;
    }
    if (this.#sessions.size >= MAX_SESSIONS) {
      this.#send(conn, { type: 'error', id, code: 'TOO_MANY', message: `at most ${MAX_SESSIONS} sessions` });
      return;
    }
    const entry: Owned = { owner: conn, orphanSince: undefined };
    this.#sessions.set(k, entry);
    try {
      await this.driver.add(key, params);
    } catch (e) {
      if (this.#sessions.get(k) === entry) this.#sessions.delete(k);
      this.#send(conn, { type: 'error', id, code: 'ADD_FAILED', message: (e as Error).message });
      return;
    }
    if (this.#sessions.get(k) !== entry) {
      this.driver.remove(key); // removed while its sockets were being opened
      this.#send(conn, { type: 'ok', id });
      return;
    }
    this.#o.log.info('session added', { conn: conn.id, peer: key.peer, local: key.local, interface: key.interface || undefined, multihop: key.multihop });
    this.#send(conn, { type: 'ok', id });
  }

  #detach(conn: Conn): void {
    if (!this.#conns.delete(conn)) return;
    if (this.#owner !== conn) return;
    this.#owner = undefined;
    const now = performance.now();
    let orphans = 0;
    for (const s of this.#sessions.values()) {
      if (s.owner === conn) {
        s.owner = undefined;
        s.orphanSince = now;
        orphans++;
      }
    }
    this.#o.log.info('client detached; its sessions keep running', { conn: conn.id, orphans, orphanTimeoutMs: this.#orphanTimeoutMs });
  }

  #sweepOrphans(): void {
    const now = performance.now();
    for (const [k, s] of [...this.#sessions]) {
      if (s.owner || s.orphanSince === undefined || now - s.orphanSince < this.#orphanTimeoutMs) continue;
      const info = this.driver.manager.sessions().find((x) => keyString(x.key) === k);
      this.#sessions.delete(k);
      if (info) this.driver.remove(info.key);
      this.stats.orphansRemoved++;
      this.#o.log.info('orphaned session removed: no client adopted it', { peer: info?.key.peer, orphanTimeoutMs: this.#orphanTimeoutMs });
    }
  }

  #onEvent(e: Exclude<BfdOutput, { type: 'send' | 'late' }>): void {
    if (e.type === 'up') this.#o.log.info('session up', { peer: e.key.peer, remoteControlPlaneIndependent: e.remoteControlPlaneIndependent });
    else if (e.type === 'down') {
      // Our own AdminDown (a removal, a stop) is no failure: not worth a warning.
      if (e.to === 'AdminDown') this.#o.log.info('session administratively down', { peer: e.key.peer });
      else this.#o.log.warn('session down', { peer: e.key.peer, reason: e.reason });
    }
    const owner = this.#sessions.get(keyString(e.key))?.owner;
    if (!owner) return;
    const ev: IpcEvent = e.type === 'up'
      ? { type: 'up', key: e.key, remoteControlPlaneIndependent: e.remoteControlPlaneIndependent }
      : e.type === 'down'
        ? { type: 'down', key: e.key, diag: e.diag, reason: e.reason, to: e.to, remoteControlPlaneIndependent: e.remoteControlPlaneIndependent }
        : { type: 'state', key: e.key, from: e.from, to: e.to, diag: e.diag };
    // A down event is judged on the session's remote state (the peer's AdminDown is no failure, RFC 5882 §3.2):
    // the client gets the snapshot that shows it first.
    if (e.type === 'down') this.#send(owner, { type: 'sessions', id: null, sessions: this.#snapshot() });
    this.#send(owner, { type: 'event', event: ev });
    // The client's cached snapshot (timers, counters) follows every state change, once per turn.
    if (!this.#pushQueued) {
      this.#pushQueued = true;
      setImmediate(() => {
        this.#pushQueued = false;
        if (this.#owner) this.#send(this.#owner, { type: 'sessions', id: null, sessions: this.#snapshot() });
      });
    }
  }

  #snapshot(): ReturnType<typeof toIpcSession>[] {
    const now = performance.now();
    return this.driver.manager.sessions().map((s) => toIpcSession(s, now));
  }

  #send(conn: Conn, m: ServerMessage): void {
    const s = conn.socket;
    if (s.destroyed || !s.writable) return;
    if (s.writableLength > MAX_PENDING_OUTPUT) {
      this.#o.log.warn('client does not read its replies; disconnecting it', { conn: conn.id, pending: s.writableLength });
      s.destroy();
      return;
    }
    s.write(encodeIpc(m));
  }
}

/** The "id" of a line that failed validation, when one can be read, so the client can match the error. */
function idOf(line: string): number | null {
  try {
    const v = JSON.parse(line) as { id?: unknown } | null;
    const id = v?.id;
    return typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? id : null;
  } catch {
    return null;
  }
}

/** A socket file left by a dead companion is removed; a live companion, or a file that is not a socket, is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket; not replacing it`);
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(path);
    const t = setTimeout(() => {
      c.destroy();
      resolve(true); // connected-but-silent and hanging both mean someone holds it
    }, 1000);
    c.once('connect', () => {
      clearTimeout(t);
      c.destroy();
      resolve(true);
    });
    c.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
  if (alive) throw new Error(`another skein-bfdd is listening on ${path}`);
  unlinkSync(path);
}
