// skeind's side of the control socket (protocol in ./protocol.ts). Owns the socket file: creates its directory,
// replaces a stale socket left by a daemon that died, refuses to start when another daemon still answers on it,
// gives it mode 0660 and the configured group, and removes it on close. Handlers are registered by method name;
// a client's bad request gets an error answer, never a crash, and one slow handler does not hold up the others.
import { chmod, chown, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import { resolveGroup } from './group.js';
import { ControlError, DEFAULT_CONTROL_SOCKET, DEFAULT_MAX_REQUEST_BYTES } from './protocol.js';
import type { ControlResponse, RequestId } from './protocol.js';

export type ControlHandler = (params: Record<string, unknown>) => unknown;

export interface ControlServerOptions {
  /** default /run/skein/skein.sock */
  path?: string;
  /** group that may use the socket (name or gid); unset: the daemon's own group (root only, under systemd) */
  group?: string | number;
  /** socket file mode; default 0o660 */
  mode?: number;
  maxRequestBytes?: number;
  /** connections beyond this are closed at once; default 128 */
  maxConnections?: number;
  /** a connection with no request for this long is closed; default 5 min */
  idleTimeoutMs?: number;
  log?: Logger;
}

export class ControlServer {
  readonly path: string;
  readonly #o: ControlServerOptions;
  readonly #handlers = new Map<string, ControlHandler>();
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #inflight = 0;
  #idle: (() => void) | undefined;
  #ino: number | undefined;

  constructor(options: ControlServerOptions = {}) {
    this.#o = options;
    this.path = options.path ?? DEFAULT_CONTROL_SOCKET;
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
    // Beyond this many connections new ones are closed at once: a runaway script cannot exhaust descriptors.
    // Up to maxConnections are served; past that an idle client is shed for the new one (#accept), and only when all
    // are busy is the new one refused. The hard cap is twice that.
    server.maxConnections = 2 * (this.#o.maxConnections ?? 128);
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
    for (const s of this.#sockets) s.destroy();
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

  /** per connection: requests in flight and when it last sent or received (to shed the idlest one first) */
  #activity = new Map<Socket, { busy: number; at: number }>();

  #accept(sock: Socket): void {
    if (this.#sockets.size >= (this.#o.maxConnections ?? 128)) {
      // Idle clients (a script that connected and went quiet) must not lock `skeinctl` out: shed the one idle longest.
      let idlest: Socket | undefined;
      for (const [s, a] of this.#activity) if (a.busy === 0 && (idlest === undefined || a.at < (this.#activity.get(idlest)?.at ?? 0))) idlest = s;
      if (idlest === undefined) { sock.destroy(); return; }
      idlest.destroy();
      this.#sockets.delete(idlest);
      this.#activity.delete(idlest);
    }
    this.#sockets.add(sock);
    const act = { busy: 0, at: Date.now() };
    this.#activity.set(sock, act);
    sock.on('close', () => this.#activity.delete(sock));
    sock.on('data', () => { act.at = Date.now(); });
    sock.setTimeout(this.#o.idleTimeoutMs ?? 300_000, () => sock.destroy());
    sock.on('close', () => this.#sockets.delete(sock));
    sock.on('error', () => sock.destroy());
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
        if (line.length > 0) this.#request(sock, line.toString('utf8'));
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

  #request(sock: Socket, line: string): void {
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      return send(sock, { id: null, error: { message: 'request is not valid JSON', code: 'bad-request' } });
    }
    const r = req as { id?: unknown; method?: unknown; params?: unknown };
    const id: RequestId | null = typeof r?.id === 'number' || typeof r?.id === 'string' ? r.id : null;
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
    const act = this.#activity.get(sock);
    if (act) act.busy++;
    const params = (r.params ?? {}) as Record<string, unknown>;
    Promise.resolve()
      .then(() => handler(params))
      .then(
        (result) => send(sock, { id, result: result === undefined ? null : result }),
        (e: unknown) => {
          const code = e instanceof ControlError ? e.code : 'internal';
          if (!(e instanceof ControlError)) this.#o.log?.error('control handler failed', { method: r.method, err: e });
          send(sock, { id, error: { message: e instanceof Error ? e.message : String(e), code } });
        },
      )
      .finally(() => {
        if (act) { act.busy--; act.at = Date.now(); }
        if (--this.#inflight === 0) this.#idle?.();
      });
  }
}

function reply(r: ControlResponse): string {
  return `${JSON.stringify(r)}\n`;
}

function send(sock: Socket, r: ControlResponse): void {
  if (sock.writable) sock.write(reply(r));
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
