// A small etcd v3 client: gRPC over our own HTTP/2 client (h2client.ts), the messages encoded and decoded by etcdwire.ts. It does what the
// datastore needs and nothing more: KV.Range, KV.Txn of range reads, the Watch bidi stream, Auth.Authenticate.
//
// Why not etcd3 and grpc-js (issue #16): every host runs skeind, and every host receives every WorkloadEndpoint
// change of the cluster. Measured on one host receiving other nodes' single puts, grpc-js's per-message work (its
// call/filter/stream layers over node:http2) was ~35% of the CPU each such change costs, and loading etcd3 with grpc-js
// added ~24 MiB to an idle skeind (82.9 MiB on etcd against 58.7 MiB on a file datastore; the commit message has the
// commands). What gRPC asks of a client over HTTP/2 is small (grpc/grpc doc/PROTOCOL-HTTP2.md): POST to
// /<service>/<method> with content-type application/grpc and te: trailers; each message prefixed by one flag byte
// (compressed or not) and a 4-byte big-endian length; the call's outcome in the grpc-status / grpc-message trailers
// (or in the response headers alone, "trailers-only"), grpc-timeout for a deadline.
//
// What Calico's etcd client does is kept (libcalico-go lib/backend/etcdv3/etcdv3.go over clientv3): several
// endpoints, a failed connection moves on to the next one; keepalive pings every 30 s with a 10 s timeout; a dial
// timeout; a deadline on unary calls; a username and password exchanged for a token (clientv3 sends it as the `token`
// metadata, re-authenticating when etcd says the token is invalid); TLS with a CA and a client certificate.
import { H2Error, H2Session, h2CodeName, type H2Stream } from './h2client.js';
import { decodeAuthenticateResponse, decodeRangeResponse, decodeTxnResponse, encodeAuthenticate, encodeRangeRequest, encodeTxnRanges, type RangeRequestLite, type RangeResponseLite } from './etcdwire.js';

// gRPC status codes (grpc/grpc doc/statuscodes.md)
const STATUS_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
export const Status = { CANCELLED: 1, UNKNOWN: 2, DEADLINE_EXCEEDED: 4, RESOURCE_EXHAUSTED: 8, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/** A failed call: a status from etcd, or one of ours (transport: the connection failed, another endpoint may do). */
export class GrpcError extends Error {
  constructor(readonly code: number, readonly details: string, readonly transport = false) {
    super(`${code} ${STATUS_NAMES[code] ?? 'UNKNOWN'}: ${details}`);
    this.name = 'GrpcError';
  }
}

/**
 * Splits a gRPC response body into messages. A message usually arrives whole in one DATA chunk and is then handed over
 * as a view of it, not a copy; a message split over chunks is joined once, when its last byte is in.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private have = 0;
  /** the bytes of the frame at the head (prefix included), -1 while its prefix is not all in */
  private need = -1;
  constructor(private readonly maxBytes: number) {}

  /** bytes of an unfinished frame held */
  get pending(): number { return this.have; }

  /** Feed a chunk; `out` gets every whole message. Throws a GrpcError on a frame that cannot be one of etcd's. */
  push(d: Buffer, out: (msg: Buffer) => void): void {
    if (this.have > 0) {
      this.chunks.push(d);
      this.have += d.length;
      if (this.need < 0) {
        if (this.have < 5) return;
        const head = Buffer.concat(this.chunks, this.have);
        this.chunks = [head];
        this.need = 5 + this.length(head);
      }
      if (this.have < this.need) return;
      d = Buffer.concat(this.chunks, this.have);
      this.chunks = [];
      this.have = 0;
      this.need = -1;
    }
    while (d.length >= 5) {
      const len = this.length(d);
      if (d.length < 5 + len) break;
      out(d.subarray(5, 5 + len));
      d = d.subarray(5 + len);
    }
    if (d.length > 0) {
      this.chunks.push(d);
      this.have = d.length;
      this.need = d.length >= 5 ? 5 + this.length(d) : -1;
    }
  }

  private length(d: Buffer): number {
    const flag = d[0] as number;
    if (flag === 1) throw new GrpcError(Status.INTERNAL, 'etcd sent a compressed message, and none was asked for');
    if (flag !== 0) throw new GrpcError(Status.INTERNAL, `malformed gRPC frame (flag byte ${flag})`);
    const len = d.readUInt32BE(1);
    if (len > this.maxBytes) throw new GrpcError(Status.RESOURCE_EXHAUSTED, `received message larger than max (${len} vs. ${this.maxBytes})`);
    return len;
  }
}

/** One message in a gRPC frame. */
export function grpcFrame(msg: Buffer): Buffer {
  const f = Buffer.allocUnsafe(5 + msg.length);
  f[0] = 0;
  f.writeUInt32BE(msg.length, 1);
  msg.copy(f, 5);
  return f;
}

export interface EtcdClientOptions {
  endpoints: string[];
  tls?: { ca?: Buffer | undefined; cert?: Buffer | undefined; key?: Buffer | undefined } | undefined;
  auth?: { username: string; password: string } | undefined;
  /** how long one connection attempt may take (ms) */
  dialTimeoutMs?: number | undefined;
  /** deadline of a unary call (ms) */
  requestTimeoutMs?: number | undefined;
  /** HTTP/2 PING interval and how long its answer may take (ms) */
  keepaliveMs?: number | undefined;
  keepaliveTimeoutMs?: number | undefined;
  /** the largest message accepted */
  maxReceiveBytes?: number | undefined;
}

export interface StreamHandlers {
  /** one whole message; a throw ends the stream with INTERNAL */
  message(msg: Buffer): void;
  /** the stream is over: with no error when etcd closed it with status OK; called once */
  end(error?: GrpcError): void;
}

export interface ClientStream {
  write(msg: Buffer): void;
  /** end the call from our side (the end handler is not called) */
  cancel(): void;
}

interface Conn {
  session: H2Session;
  endpoint: string;
  /** set once the session is connected (and authenticated) */
  ready: Promise<void>;
  token?: string | undefined;
  dead: boolean;
  /** why it died */
  error?: GrpcError | undefined;
  keepalive?: NodeJS.Timeout | undefined;
}

// An HTTP/2 flow-control window far above the 64 KiB default, so a list page (~2 MiB) is not paced by WINDOW_UPDATE
// round trips.
const WINDOW = 4 * 1024 * 1024;

export class EtcdClient {
  private conn: Conn | undefined;
  /** the endpoint the next connection goes to */
  private next = 0;
  private closed = false;
  private readonly max: number;

  constructor(private readonly o: EtcdClientOptions) {
    if (o.endpoints.length === 0) throw new Error('no etcd endpoint');
    this.max = o.maxReceiveBytes ?? 4 * 1024 * 1024;
  }

  /** KV.Range. */
  async range(r: RangeRequestLite): Promise<RangeResponseLite> {
    return decoded('/etcdserverpb.KV/Range', await this.unary('/etcdserverpb.KV/Range', encodeRangeRequest(r)), decodeRangeResponse);
  }

  /** KV.Txn of range reads: each read's response, in order. */
  async txnRanges(reads: readonly RangeRequestLite[]): Promise<RangeResponseLite[]> {
    return decoded('/etcdserverpb.KV/Txn', await this.unary('/etcdserverpb.KV/Txn', encodeTxnRanges(reads)), decodeTxnResponse).responses;
  }

  /**
   * A bidi stream (the Watch). Connecting goes through the endpoints like a unary call; once open, a failure ends the
   * stream (the caller decides to open another; reset() first moves to another connection).
   */
  async stream(method: string, metadata: Record<string, string>, h: StreamHandlers): Promise<ClientStream> {
    const conn = await this.connected();
    let done = false;
    const finish = (err?: GrpcError): void => {
      if (done) return;
      done = true;
      req.cancel();
      if (err?.code === Status.UNAUTHENTICATED) this.tokenRejected(conn);
      h.end(err);
    };
    const req = this.open(conn, method, this.headers(conn, metadata), false, (msg) => {
      try {
        h.message(msg);
      } catch (e) {
        finish(new GrpcError(Status.INTERNAL, `malformed message from etcd: ${(e as Error).message}`));
      }
    }, finish);
    return {
      write: (msg) => { if (!done) req.write(grpcFrame(msg)); },
      cancel: () => { done = true; req.cancel(); },
    };
  }

  /** Give up the current connection (a stream over it went silent): the next call connects to the next endpoint. */
  reset(reason: string): void {
    if (this.conn !== undefined) this.drop(this.conn, new GrpcError(Status.UNAVAILABLE, reason, true));
  }

  close(): void {
    this.closed = true;
    this.reset('client closed');
  }

  /** A unary call: on a failed connection, the same call on the next endpoint (each endpoint once). */
  private async unary(method: string, body: Buffer): Promise<Buffer> {
    let last: GrpcError | undefined;
    for (let attempt = 0; attempt < this.o.endpoints.length; attempt++) {
      try {
        const conn = await this.connected();
        return await this.call(conn, method, body);
      } catch (e) {
        if (!(e instanceof GrpcError) || !e.transport || this.closed) throw e;
        last = e;
      }
    }
    throw last ?? new GrpcError(Status.UNAVAILABLE, 'no etcd endpoint answered', true);
  }

  /** gRPC's request headers (after the pseudo-headers h2client.ts writes), metadata, and the token */
  private headers(conn: Conn | undefined, extra: Record<string, string> = {}): [string, string][] {
    const h: [string, string][] = [['content-type', 'application/grpc'], ['te', 'trailers']];
    for (const k of Object.keys(extra)) h.push([k, extra[k] as string]);
    if (conn?.token !== undefined) h.push(['token', conn.token]);
    return h;
  }

  private call(conn: Conn, method: string, body: Buffer, authenticating = false): Promise<Buffer> {
    // grpc-timeout holds at most 8 digits
    const timeout = Math.min(this.o.requestTimeoutMs ?? 10_000, 99_999_999);
    return new Promise<Buffer>((resolve, reject) => {
      let msg: Buffer | undefined;
      let done = false;
      let req: H2Stream | undefined;
      const finish = (err?: GrpcError): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        req?.cancel();
        if (err !== undefined) {
          if (err.code === Status.UNAUTHENTICATED && !authenticating) this.tokenRejected(conn);
          reject(err);
        } else if (msg === undefined) reject(new GrpcError(Status.INTERNAL, `etcd answered ${method} with no message`));
        else resolve(msg);
      };
      const timer = setTimeout(() => { finish(new GrpcError(Status.DEADLINE_EXCEEDED, `no answer from etcd within ${timeout} ms (${method})`)); }, timeout);
      try {
        req = this.open(conn, method, [...this.headers(authenticating ? undefined : conn), ['grpc-timeout', `${timeout}m`]], false, (m) => {
          if (msg !== undefined) finish(new GrpcError(Status.INTERNAL, `etcd answered ${method} with more than one message`));
          msg = m;
        }, finish);
      } catch (e) {
        clearTimeout(timer);
        reject(e);
        return;
      }
      req.end(grpcFrame(body));
    });
  }

  /**
   * A call's stream: the request headers out, the response's messages to `message`, then exactly one `end` with the
   * call's outcome. Throws (a transport error) when the connection cannot open a stream, and drops the connection.
   */
  private open(conn: Conn, method: string, headers: [string, string][], endStream: boolean, message: (m: Buffer) => void, done: (err?: GrpcError) => void): H2Stream {
    const reader = new FrameReader(this.max);
    // once the outcome is known, chunks still buffered in the stream are not decoded
    let over = false;
    const end = (err?: GrpcError): void => { if (!over) { over = true; done(err); } };
    const deliver = (m: Buffer): void => { if (!over) message(m); };
    let status: number | undefined;
    let details = '';
    const outcome = (h: Record<string, string>): void => {
      const s = h['grpc-status'];
      if (s === undefined) return;
      status = Number(s);
      const m = h['grpc-message'];
      if (typeof m === 'string') { try { details = decodeURIComponent(m); } catch { details = m; } }
    };
    let response = false;
    try {
      return conn.session.request(method, headers, endStream, {
        headers: (h) => {
          if (response) { outcome(h); return; } // the trailers
          response = true;
          const code = h[':status'];
          if (code !== '200') { end(new GrpcError(code === '503' || code === '502' || code === '504' ? Status.UNAVAILABLE : Status.UNKNOWN, `etcd answered HTTP status ${code}`, true)); return; }
          const ct = h['content-type'];
          if (ct === undefined || !ct.startsWith('application/grpc')) { end(new GrpcError(Status.UNKNOWN, `etcd answered with content-type ${ct}, not gRPC`, true)); return; }
          outcome(h); // trailers-only: the outcome in the headers
        },
        data: (d) => {
          if (over) return;
          try {
            reader.push(d, deliver);
          } catch (e) {
            end(e instanceof GrpcError ? e : new GrpcError(Status.INTERNAL, (e as Error).message));
          }
        },
        close: (err) => {
          if (err !== undefined) end(conn.error ?? this.connError(conn, err));
          else if (status === undefined) end(new GrpcError(Status.UNAVAILABLE, 'etcd closed the call with no status', true));
          else if (status !== 0) end(new GrpcError(status, details));
          else if (reader.pending > 0) end(new GrpcError(Status.INTERNAL, `etcd's response ended inside a message (${reader.pending} bytes of a frame)`));
          else end();
        },
      });
    } catch (e) {
      const err = this.connError(conn, e);
      this.drop(conn, err);
      throw err;
    }
  }

  /**
   * What a stream's or connection's failure means for a call: a stream reset by etcd, a connection lost (both
   * transport errors: the next endpoint may serve), or etcd breaking HTTP/2 itself (INTERNAL, and the connection is
   * dropped: another endpoint may do better).
   */
  private connError(conn: Conn, e: unknown): GrpcError {
    if (e instanceof GrpcError) return e;
    if (!(e instanceof H2Error)) return transportError(e);
    if (e.remote) {
      if (e.code === 0 && conn.dead) return new GrpcError(Status.UNAVAILABLE, 'connection to etcd lost', true);
      return new GrpcError(Status.UNAVAILABLE, `etcd closed the call with no status (HTTP/2 ${h2CodeName(e.code)}: ${e.message})`, true);
    }
    return new GrpcError(Status.INTERNAL, `etcd ${conn.endpoint} broke HTTP/2 (${h2CodeName(e.code)}): ${e.message}`, true);
  }

  /** The live connection, or a new one to the next endpoint. */
  private async connected(): Promise<Conn> {
    if (this.closed) throw new GrpcError(Status.CANCELLED, 'etcd client closed');
    const c = this.conn ?? this.connect();
    await c.ready;
    return c;
  }

  private connect(): Conn {
    const endpoint = this.o.endpoints[this.next % this.o.endpoints.length] as string;
    const url = new URL(endpoint.includes('://') ? endpoint : `http://${endpoint}`);
    const secure = url.protocol === 'https:';
    const tls = this.o.tls;
    const dial = this.o.dialTimeoutMs ?? 5000;
    const conn = { endpoint, ready: Promise.resolve(), dead: false } as Conn;
    this.conn = conn;
    conn.ready = new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => { this.drop(conn, new GrpcError(Status.UNAVAILABLE, `cannot connect to etcd ${endpoint} within ${dial} ms`, true)); }, dial);
      conn.session = new H2Session({
        host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: url.port !== '' ? Number(url.port) : secure ? 443 : 80,
        tls: secure ? { ca: tls?.ca, cert: tls?.cert, key: tls?.key } : undefined,
        window: WINDOW,
      }, {
        ready: () => {
          settled = true;
          clearTimeout(timer);
          this.keepalive(conn);
          resolve();
        },
        goaway: () => { this.drop(conn, new GrpcError(Status.UNAVAILABLE, `etcd ${endpoint} is going away`, true)); },
        closed: (err) => {
          this.drop(conn, err !== undefined ? this.connError(conn, err) : new GrpcError(Status.UNAVAILABLE, `connection to etcd ${endpoint} closed`, true));
          if (!settled) {
            settled = true;
            clearTimeout(timer);
            reject(conn.error ?? new GrpcError(Status.UNAVAILABLE, `cannot connect to etcd ${endpoint}`, true));
          }
        },
      });
    }).then(() => this.authenticate(conn)).catch((e: unknown) => {
      // a refused password, or no answer: this connection is not used again; the next attempt starts afresh
      const err = e instanceof GrpcError ? e : transportError(e);
      this.drop(conn, err);
      throw err;
    });
    conn.ready.catch(() => undefined); // awaited by the callers
    return conn;
  }

  /** Username and password for a token; the token rides on every later call of this connection. */
  private async authenticate(conn: Conn): Promise<void> {
    const a = this.o.auth;
    if (a === undefined) return;
    const res = await this.call(conn, '/etcdserverpb.Auth/Authenticate', encodeAuthenticate(a.username, a.password), true);
    conn.token = decoded('/etcdserverpb.Auth/Authenticate', res, decodeAuthenticateResponse);
  }

  /**
   * etcd refused the token (expired: etcd's simple tokens live --auth-token-ttl, 300 s, unused; or the member restarted):
   * the next call opens a new connection, which authenticates again (clientv3 retries with a fresh token the same way).
   */
  private tokenRejected(conn: Conn): void {
    if (this.o.auth !== undefined) this.drop(conn, new GrpcError(Status.UNAUTHENTICATED, 'etcd refused the auth token', true));
  }

  /** HTTP/2 PINGs: a connection whose peer vanished without closing it is dropped (Calico: 30 s, 10 s). */
  private keepalive(conn: Conn): void {
    const every = this.o.keepaliveMs ?? 30_000;
    const wait = this.o.keepaliveTimeoutMs ?? 10_000;
    let outstanding: NodeJS.Timeout | undefined;
    conn.keepalive = setInterval(() => {
      if (outstanding !== undefined || conn.dead) return;
      outstanding = setTimeout(() => { this.drop(conn, new GrpcError(Status.UNAVAILABLE, `etcd ${conn.endpoint} did not answer a keepalive ping within ${wait} ms`, true)); }, wait);
      conn.session.ping((err) => { clearTimeout(outstanding); outstanding = undefined; if (err !== null) this.drop(conn, this.connError(conn, err)); });
    }, every);
    conn.keepalive.unref();
  }

  /** A connection is done: later calls go to the next endpoint. */
  private drop(conn: Conn, err: GrpcError): void {
    if (conn.dead) return;
    conn.dead = true;
    conn.error = err;
    clearInterval(conn.keepalive);
    if (this.conn === conn) {
      this.conn = undefined;
      this.next = (this.o.endpoints.indexOf(conn.endpoint) + 1) % this.o.endpoints.length;
    }
    if (!conn.session.closed) conn.session.destroy(err);
  }
}

function decoded<T>(method: string, msg: Buffer, decode: (b: Buffer) => T): T {
  try {
    return decode(msg);
  } catch (e) {
    throw new GrpcError(Status.INTERNAL, `malformed ${method} response from etcd: ${(e as Error).message}`);
  }
}

function transportError(e: unknown): GrpcError {
  if (e instanceof GrpcError) return e;
  const err = e as NodeJS.ErrnoException;
  return new GrpcError(Status.UNAVAILABLE, `${err.code !== undefined ? `${err.code}: ` : ''}${err.message}`, true);
}
