// The client side of HTTP/2 (RFC 9113) over one TCP or TLS socket, just what etcdclient.ts's gRPC calls need: a few
// streams we open (POST, headers, DATA, trailers), SETTINGS, PING, WINDOW_UPDATE with our own flow-control
// accounting, RST_STREAM and GOAWAY. No server push (SETTINGS_ENABLE_PUSH 0), no priorities, no request bodies
// larger than a window's worth at a time without waiting for the peer's WINDOW_UPDATE.
//
// Why not node:http2 (issue #16): a host receives every WorkloadEndpoint change of the cluster as one DATA frame of
// the etcd watch stream, and node:http2 spent ~61–66 µs of CPU on each such frame (nghttp2, then the stream's
// Readable machinery) against ~20 µs for a message read off a plain TCP socket; that per-frame work was most of
// what a host spent on another node's single put. Here a DATA frame costs a slice of the socket's chunk and one call.
//
// Error handling: whatever the server sends that breaks RFC 9113 (a frame too large or of the wrong length, a
// HEADERS block cut short or not valid HPACK, a window overflow, DATA on a stream it never answered) ends the whole
// connection with an H2Error naming the fault (a connection error, §5.4.1), after a GOAWAY saying why; every open
// stream ends with that error. Faults that concern one stream only (§5.4.2) end that stream alone.
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { HpackDecoder, HpackError, encodeHeaders } from './hpack.js';

/** RFC 9113 §7 error codes */
export const H2Code = {
  NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, INTERNAL_ERROR: 0x2, FLOW_CONTROL_ERROR: 0x3, SETTINGS_TIMEOUT: 0x4, STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6, REFUSED_STREAM: 0x7, CANCEL: 0x8, COMPRESSION_ERROR: 0x9, CONNECT_ERROR: 0xa, ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc, HTTP_1_1_REQUIRED: 0xd,
} as const;
const CODE_NAMES = Object.fromEntries(Object.entries(H2Code).map(([k, v]) => [v, k])) as Record<number, string>;
export const h2CodeName = (code: number): string => CODE_NAMES[code] ?? `0x${code.toString(16)}`;

/** A connection or stream that ended in error: `code` the HTTP/2 error code, `remote` when the server sent it. */
export class H2Error extends Error {
  constructor(message: string, readonly code: number, readonly remote = false) {
    super(message);
    this.name = 'H2Error';
  }
}

// frame types (§6) and flags
const DATA = 0x0, HEADERS = 0x1, PRIORITY = 0x2, RST_STREAM = 0x3, SETTINGS = 0x4, PUSH_PROMISE = 0x5, PING = 0x6, GOAWAY = 0x7,
  WINDOW_UPDATE = 0x8, CONTINUATION = 0x9;
const END_STREAM = 0x1, ACK = 0x1, END_HEADERS = 0x4, PADDED = 0x8, PRIORITY_FLAG = 0x20;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** §6.5.2 default and §6.9.1 limit */
const DEFAULT_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;
/** the largest frame we accept (our SETTINGS_MAX_FRAME_SIZE is left at its default, §6.5.2) */
const MAX_FRAME = 16_384;
/** a response's header block, CONTINUATIONs joined, beyond which the server is not answering gRPC */
const MAX_HEADER_BLOCK = 64 * 1024;
/** the most a header block may decode to (hpack.ts counts it) */
const MAX_HEADER_LIST = 1 << 20;
/** one read's most; the buffer is shared by every session of the process (reads are copied out before it is reused) */
const READ_BUFFER = 64 * 1024;
let readBuffer: Buffer | undefined;

export interface SessionOptions {
  host: string;
  port: number;
  tls?: { ca?: Buffer | undefined; cert?: Buffer | undefined; key?: Buffer | undefined } | undefined;
  /** our receive window, per stream and for the connection (bytes) */
  window: number;
}

export interface SessionEvents {
  /** the server's SETTINGS arrived: it speaks HTTP/2 and streams may be opened */
  ready(): void;
  /** the server sent GOAWAY (§6.8) */
  goaway(code: number, lastStreamId: number, debug: string): void;
  /** the connection is over, once: `err` undefined when we closed it */
  closed(err: Error | undefined): void;
}

export interface StreamEvents {
  /** a header block: the response's headers, then (endStream set) its trailers */
  headers(fields: Record<string, string>, endStream: boolean): void;
  /** a DATA frame's payload (a view of the socket's chunk, valid until it is dropped) */
  data(d: Buffer): void;
  /** the stream is over: `err` undefined when the server ended it (END_STREAM). Not called after cancel(). */
  close(err?: Error): void;
}

export class H2Stream {
  /** bytes the server may still send us before our WINDOW_UPDATE */
  recvWindow: number;
  /** bytes received and consumed, not yet given back by a WINDOW_UPDATE */
  recvUnacked = 0;
  sendWindow: number;
  /** DATA waiting for send window */
  queue: Buffer[] = [];
  /** END_STREAM goes out after the queue */
  ending = false;
  localEnded = false;
  gotHeaders = false;
  closed = false;

  constructor(readonly id: number, private readonly session: H2Session, readonly ev: StreamEvents, recvWindow: number, sendWindow: number) {
    this.recvWindow = recvWindow;
    this.sendWindow = sendWindow;
  }

  write(d: Buffer): void { this.session.send(this, d, false); }

  end(d?: Buffer): void { this.session.send(this, d, true); }

  /** RST_STREAM (CANCEL by default); the close event is not called */
  cancel(code: number = H2Code.CANCEL): void { this.session.reset(this, code); }
}

export class H2Session {
  private readonly socket: Socket | TLSSocket;
  private readonly streams = new Map<number, H2Stream>();
  private nextId = 1;
  private readonly hpack = new HpackDecoder(4096, MAX_HEADER_LIST);
  private isReady = false;
  private over = false;
  // the peer's settings (§6.5.2 defaults until its SETTINGS)
  private peerWindow = DEFAULT_WINDOW;
  private peerMaxFrame = 16_384;
  private connSendWindow = DEFAULT_WINDOW;
  private connRecvWindow: number;
  private connRecvUnacked = 0;
  /** a frame cut by the chunk boundary: its bytes so far */
  private partial: Buffer | undefined;
  private partialHave = 0;
  /** a header block waiting for its CONTINUATION frames (§6.10) */
  private cont: { id: number; endStream: boolean; parts: Buffer[]; size: number } | undefined;
  private readonly pings: { data: Buffer; cb: (err: Error | null) => void }[] = [];
  private pingSeq = 0;
  private readonly authority: string;
  private readonly scheme: string;

  constructor(private readonly o: SessionOptions, private readonly ev: SessionEvents) {
    this.connRecvWindow = o.window;
    // Reads go into one buffer of ours and straight to receive(), not through the socket's Readable (its buffering,
    // 'data' events, and a new 64 KiB ArrayBuffer for every read): a watch event is one small read, and those per-read
    // costs were a good part of what it cost. What was read is copied out to a Buffer of its own size (small ones come
    // from Node's shared pool), because DATA payloads are handed on as views and may be kept.
    const onread = {
      buffer: readBuffer ??= Buffer.allocUnsafe(READ_BUFFER),
      callback: (n: number, buf: Uint8Array): boolean => {
        const d = Buffer.allocUnsafe(n);
        d.set(buf.subarray(0, n));
        try {
          this.receive(d);
        } catch (e) {
          // a fault of ours or of a handler's, met on what the server sent: the connection ends with it, the process
          // does not (an exception here would be uncaught: nothing of ours is on the stack above a socket read)
          this.fail(new H2Error(`failed on what the server sent: ${(e as Error).message}`, H2Code.INTERNAL_ERROR));
        }
        return true;
      },
    };
    this.authority = `${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
    if (o.tls !== undefined) {
      this.scheme = 'https';
      // onread works on a TLS socket as on a TCP one (the cleartext), though @types/node does not list it for tls
      const s = tlsConnect({ onread, host: o.host, port: o.port, ca: o.tls.ca, cert: o.tls.cert, key: o.tls.key, ALPNProtocols: ['h2'], ...(isIP(o.host) === 0 ? { servername: o.host } : {}) } as ConnectionOptions);
      s.once('secureConnect', () => {
        // §3.3: over TLS, HTTP/2 only where ALPN chose "h2"
        if (s.alpnProtocol !== 'h2') { this.fail(new H2Error(`the server did not agree to HTTP/2 over TLS (ALPN ${String(s.alpnProtocol)})`, H2Code.INADEQUATE_SECURITY)); return; }
        this.start();
      });
      this.socket = s;
    } else {
      this.scheme = 'http';
      this.socket = netConnect({ onread, host: o.host, port: o.port });
      this.socket.once('connect', () => { this.start(); });
    }
    this.socket.on('error', (e) => { this.fail(e); });
    this.socket.on('close', () => { this.fail(new H2Error('the server closed the connection', H2Code.NO_ERROR, true)); });
  }

  get closed(): boolean { return this.over; }

  /** Open a stream: POST `path` with the given extra headers. Throws when the connection is over. */
  request(path: string, headers: readonly (readonly [string, string])[], endStream: boolean, ev: StreamEvents): H2Stream {
    if (this.over || !this.isReady) throw new H2Error('the HTTP/2 connection is not open', H2Code.REFUSED_STREAM);
    const id = this.nextId;
    this.nextId += 2;
    const s = new H2Stream(id, this, ev, this.o.window, this.peerWindow);
    this.streams.set(id, s);
    const block = encodeHeaders([[':method', 'POST'], [':scheme', this.scheme], [':path', path], [':authority', this.authority], ...headers]);
    this.socket.cork();
    // §6.2, §6.10: a block larger than the peer's frame size goes on in CONTINUATION frames
    const first = Math.min(block.length, this.peerMaxFrame);
    this.frame(HEADERS, (endStream ? END_STREAM : 0) | (first === block.length ? END_HEADERS : 0), id, block.subarray(0, first));
    for (let at = first; at < block.length; at += this.peerMaxFrame) {
      const n = Math.min(block.length - at, this.peerMaxFrame);
      this.frame(CONTINUATION, at + n === block.length ? END_HEADERS : 0, id, block.subarray(at, at + n));
    }
    this.socket.uncork();
    if (endStream) s.localEnded = true;
    return s;
  }

  /** A PING (§6.7); `cb` on its ACK, or with the error that ended the connection first. */
  ping(cb: (err: Error | null) => void): void {
    if (this.over) { cb(new H2Error('the HTTP/2 connection is over', H2Code.CANCEL)); return; }
    const data = Buffer.alloc(8);
    data.writeUInt32BE(++this.pingSeq >>> 0, 4);
    this.pings.push({ data, cb });
    this.frame(PING, 0, 0, data);
  }

  /** Close the connection from our side (GOAWAY NO_ERROR); open streams end with `err`. */
  destroy(err: Error = new H2Error('the connection was closed by us', H2Code.CANCEL)): void {
    this.end(err, H2Code.NO_ERROR, false);
  }

  /** DATA for a stream, within the send windows (§6.9); the rest waits for the peer's WINDOW_UPDATE. */
  send(s: H2Stream, d: Buffer | undefined, end: boolean): void {
    if (s.closed || s.localEnded || s.ending || this.over) return;
    if (d !== undefined && d.length > 0) s.queue.push(d);
    if (end) s.ending = true;
    this.flush(s);
  }

  reset(s: H2Stream, code: number): void {
    if (s.closed) return;
    s.closed = true;
    this.streams.delete(s.id);
    if (!this.over) this.frame(RST_STREAM, 0, s.id, u32(code));
  }

  private start(): void {
    this.socket.setNoDelay(true);
    this.socket.cork();
    this.socket.write(PREFACE);
    // §6.5.2: no server push; our stream window; the header list size our decoder allows (advisory, §10.5.1)
    const settings = Buffer.alloc(18);
    settings.writeUInt16BE(0x2, 0); // SETTINGS_ENABLE_PUSH
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(0x4, 6); // SETTINGS_INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(this.o.window, 8);
    settings.writeUInt16BE(0x6, 12); // SETTINGS_MAX_HEADER_LIST_SIZE
    settings.writeUInt32BE(MAX_HEADER_LIST, 14);
    this.frame(SETTINGS, 0, 0, settings);
    // the connection's window is not a setting (§6.9.2): it grows by a WINDOW_UPDATE on stream 0
    if (this.o.window > DEFAULT_WINDOW) this.frame(WINDOW_UPDATE, 0, 0, u32(this.o.window - DEFAULT_WINDOW));
    this.socket.uncork();
  }

  private frame(type: number, flags: number, id: number, payload: Buffer): void {
    // a small frame in one buffer: one write (a socket not corked writes each buffer on its own)
    const small = payload.length <= 1024;
    const h = Buffer.allocUnsafe(small ? 9 + payload.length : 9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(id, 5);
    if (small) {
      payload.copy(h, 9);
      this.socket.write(h);
    } else {
      this.socket.write(h);
      this.socket.write(payload);
    }
  }

  private flush(s: H2Stream): void {
    if (s.closed || this.over) return;
    this.socket.cork();
    while (s.queue.length > 0) {
      const head = s.queue[0]!;
      const n = Math.min(head.length, s.sendWindow, this.connSendWindow, this.peerMaxFrame);
      if (n <= 0) break;
      s.sendWindow -= n;
      this.connSendWindow -= n;
      const last = n === head.length && s.queue.length === 1 && s.ending;
      this.frame(DATA, last ? END_STREAM : 0, s.id, n === head.length ? head : head.subarray(0, n));
      if (n === head.length) s.queue.shift();
      else s.queue[0] = head.subarray(n);
      if (last) s.localEnded = true;
    }
    if (s.queue.length === 0 && s.ending && !s.localEnded) {
      this.frame(DATA, END_STREAM, s.id, Buffer.alloc(0));
      s.localEnded = true;
    }
    this.socket.uncork();
  }

  /** A chunk off the socket: every whole frame in it, a cut one kept for the next chunk. */
  private receive(d: Buffer): void {
    let at = 0;
    if (this.partial !== undefined) {
      const p = this.partial;
      if (this.partialHave < 9) {
        // the frame header was cut: complete it, then size the frame
        const n = Math.min(9 - this.partialHave, d.length);
        d.copy(p, this.partialHave, 0, n);
        this.partialHave += n;
        at = n;
        if (this.partialHave < 9) return;
        const len = p.readUIntBE(0, 3);
        if (len > MAX_FRAME) { this.frameSizeError(len); return; }
        const whole = Buffer.allocUnsafe(9 + len);
        p.copy(whole, 0, 0, 9);
        this.partial = whole;
      }
      const w = this.partial;
      const n = Math.min(w.length - this.partialHave, d.length - at);
      d.copy(w, this.partialHave, at, at + n);
      this.partialHave += n;
      at += n;
      if (this.partialHave < w.length) return;
      this.partial = undefined;
      this.partialHave = 0;
      this.onFrame(w, 0, w.length - 9);
    }
    while (!this.over && d.length - at >= 9) {
      const len = (d[at]! << 16) | (d[at + 1]! << 8) | d[at + 2]!;
      if (len > MAX_FRAME) { this.frameSizeError(len); return; }
      if (d.length - at < 9 + len) break;
      this.onFrame(d, at, len);
      at += 9 + len;
    }
    if (!this.over && at < d.length) {
      const rest = d.length - at;
      const p = Buffer.allocUnsafe(rest >= 9 ? 9 + d.readUIntBE(at, 3) : 9);
      d.copy(p, 0, at);
      this.partial = p;
      this.partialHave = rest;
    }
  }

  private frameSizeError(len: number): void {
    this.fail(new H2Error(`the server sent a frame of ${len} bytes, above our maximum frame size ${MAX_FRAME}`, H2Code.FRAME_SIZE_ERROR));
  }

  /** One frame: header at b[at..at+9], payload the next len bytes. */
  private onFrame(b: Buffer, at: number, len: number): void {
    const type = b[at + 3]!;
    const flags = b[at + 4]!;
    const id = b.readUInt32BE(at + 5) & 0x7fffffff;
    const p = at + 9;
    if (this.cont !== undefined && type !== CONTINUATION) {
      this.fail(new H2Error(`the server sent a frame of type ${type} inside a header block (CONTINUATION expected, RFC 9113 §6.10)`, H2Code.PROTOCOL_ERROR));
      return;
    }
    if (!this.isReady && type !== SETTINGS) {
      this.fail(new H2Error(`the server's first frame is of type ${type}, not SETTINGS (RFC 9113 §3.4)`, H2Code.PROTOCOL_ERROR));
      return;
    }
    switch (type) {
      case DATA: this.onData(b, p, len, flags, id); break;
      case HEADERS: this.onHeaders(b, p, len, flags, id); break;
      case CONTINUATION: this.onContinuation(b, p, len, flags, id); break;
      case PRIORITY:
        if (id === 0) this.fail(new H2Error('PRIORITY on stream 0', H2Code.PROTOCOL_ERROR));
        else if (len !== 5) this.fail(new H2Error(`PRIORITY of ${len} bytes, not 5`, H2Code.FRAME_SIZE_ERROR));
        break; // otherwise ignored: we send nothing that priorities would order
      case RST_STREAM: this.onRst(b, p, len, id); break;
      case SETTINGS: this.onSettings(b, p, len, flags, id); break;
      case PUSH_PROMISE: this.fail(new H2Error('PUSH_PROMISE, though we disabled server push', H2Code.PROTOCOL_ERROR)); break;
      case PING: this.onPing(b, p, len, flags, id); break;
      case GOAWAY: this.onGoaway(b, p, len, id); break;
      case WINDOW_UPDATE: this.onWindowUpdate(b, p, len, id); break;
      default: break; // §4.1, §5.5: frames of unknown types are ignored
    }
  }

  /** the payload of a frame that may be PADDED (§6.1, §6.2): [start, end], or undefined after a connection error */
  private unpad(b: Buffer, p: number, len: number, flags: number, what: string): [number, number] | undefined {
    if ((flags & PADDED) === 0) return [p, p + len];
    const pad = len > 0 ? b[p]! : 0;
    if (len === 0 || pad >= len) { this.fail(new H2Error(`${what} padding of ${pad} bytes in a ${len}-byte frame`, H2Code.PROTOCOL_ERROR)); return undefined; }
    return [p + 1, p + len - pad];
  }

  private onData(b: Buffer, p: number, len: number, flags: number, id: number): void {
    if (id === 0) { this.fail(new H2Error('DATA on stream 0', H2Code.PROTOCOL_ERROR)); return; }
    // §6.9: all of the frame counts against the windows, padding included
    this.connRecvWindow -= len;
    if (this.connRecvWindow < 0) { this.fail(new H2Error(`the server overran the connection's flow-control window by ${-this.connRecvWindow} bytes`, H2Code.FLOW_CONTROL_ERROR)); return; }
    this.connRecvUnacked += len;
    if (this.connRecvUnacked >= this.o.window / 2) {
      this.frame(WINDOW_UPDATE, 0, 0, u32(this.connRecvUnacked));
      this.connRecvWindow += this.connRecvUnacked;
      this.connRecvUnacked = 0;
    }
    const s = this.streams.get(id);
    if (s === undefined) {
      if (id % 2 === 0 || id >= this.nextId) this.fail(new H2Error(`DATA on stream ${id}, which we never opened`, H2Code.PROTOCOL_ERROR));
      return; // a stream we reset: its late frames are dropped
    }
    const range = this.unpad(b, p, len, flags, 'DATA');
    if (range === undefined) return;
    s.recvWindow -= len;
    if (s.recvWindow < 0) { this.streamError(s, `the server overran stream ${id}'s flow-control window`, H2Code.FLOW_CONTROL_ERROR); return; }
    if (!s.gotHeaders) { this.streamError(s, `DATA before HEADERS on stream ${id}`, H2Code.PROTOCOL_ERROR); return; }
    if (range[1] > range[0]) s.ev.data(b.subarray(range[0], range[1]));
    if (s.closed) return;
    if ((flags & END_STREAM) !== 0) { this.remoteEnd(s); return; }
    s.recvUnacked += len;
    if (s.recvUnacked >= this.o.window / 2) {
      this.frame(WINDOW_UPDATE, 0, id, u32(s.recvUnacked));
      s.recvWindow += s.recvUnacked;
      s.recvUnacked = 0;
    }
  }

  private onHeaders(b: Buffer, p: number, len: number, flags: number, id: number): void {
    if (id === 0) { this.fail(new H2Error('HEADERS on stream 0', H2Code.PROTOCOL_ERROR)); return; }
    const range = this.unpad(b, p, len, flags, 'HEADERS');
    if (range === undefined) return;
    let [start] = range;
    const end = range[1];
    if ((flags & PRIORITY_FLAG) !== 0) {
      if (end - start < 5) { this.fail(new H2Error('HEADERS too short for its priority fields', H2Code.FRAME_SIZE_ERROR)); return; }
      start += 5;
    }
    const fragment = b.subarray(start, end);
    const endStream = (flags & END_STREAM) !== 0;
    if ((flags & END_HEADERS) !== 0) { this.onBlock(id, endStream, fragment); return; }
    // the block goes on in CONTINUATION frames: keep a copy (the chunk it is in may be reused)
    this.cont = { id, endStream, parts: [Buffer.from(fragment)], size: fragment.length };
  }

  private onContinuation(b: Buffer, p: number, len: number, flags: number, id: number): void {
    const c = this.cont;
    if (c === undefined || c.id !== id) {
      this.fail(new H2Error(c === undefined ? 'CONTINUATION with no header block open' : `CONTINUATION for stream ${id} inside stream ${c.id}'s header block`, H2Code.PROTOCOL_ERROR));
      return;
    }
    c.size += len;
    if (c.size > MAX_HEADER_BLOCK) { this.fail(new H2Error(`a header block over ${MAX_HEADER_BLOCK} bytes`, H2Code.ENHANCE_YOUR_CALM)); return; }
    c.parts.push(Buffer.from(b.subarray(p, p + len)));
    if ((flags & END_HEADERS) === 0) return;
    this.cont = undefined;
    this.onBlock(id, c.endStream, Buffer.concat(c.parts, c.size));
  }

  /** A whole header block: decoded even for a stream we reset, to keep the HPACK table in step (RFC 7541 §2.2). */
  private onBlock(id: number, endStream: boolean, block: Buffer): void {
    let fields: [string, string][];
    try {
      fields = this.hpack.decode(block);
    } catch (e) {
      if (e instanceof HpackError && e.tooLarge) this.fail(new H2Error(`a header block that decodes to ${e.message}`, H2Code.ENHANCE_YOUR_CALM));
      else this.fail(new H2Error(`a header block that is not valid HPACK: ${(e as Error).message}`, e instanceof HpackError ? H2Code.COMPRESSION_ERROR : H2Code.INTERNAL_ERROR));
      return;
    }
    const s = this.streams.get(id);
    if (s === undefined) {
      if (id % 2 === 0 || id >= this.nextId) this.fail(new H2Error(`HEADERS on stream ${id}, which we never opened`, H2Code.PROTOCOL_ERROR));
      return;
    }
    const h: Record<string, string> = {};
    for (const [n, v] of fields) h[n] = h[n] === undefined ? v : `${h[n]}, ${v}`;
    // 1xx informational headers (RFC 9113 §8.1) precede the response: not gRPC's, and skipped
    if (!s.gotHeaders && h[':status']?.startsWith('1') === true && !endStream) return;
    s.gotHeaders = true;
    s.ev.headers(h, endStream);
    if (endStream && !s.closed) this.remoteEnd(s);
  }

  private onRst(b: Buffer, p: number, len: number, id: number): void {
    if (id === 0) { this.fail(new H2Error('RST_STREAM on stream 0', H2Code.PROTOCOL_ERROR)); return; }
    if (len !== 4) { this.fail(new H2Error(`RST_STREAM of ${len} bytes, not 4`, H2Code.FRAME_SIZE_ERROR)); return; }
    const s = this.streams.get(id);
    if (s === undefined) return;
    const code = b.readUInt32BE(p);
    s.closed = true;
    this.streams.delete(id);
    s.ev.close(new H2Error(`the server reset the stream (${h2CodeName(code)})`, code, true));
  }

  private onSettings(b: Buffer, p: number, len: number, flags: number, id: number): void {
    if (id !== 0) { this.fail(new H2Error(`SETTINGS on stream ${id}`, H2Code.PROTOCOL_ERROR)); return; }
    if ((flags & ACK) !== 0) {
      if (len !== 0) this.fail(new H2Error('a SETTINGS ACK with a payload', H2Code.FRAME_SIZE_ERROR));
      return;
    }
    if (len % 6 !== 0) { this.fail(new H2Error(`SETTINGS of ${len} bytes, not a multiple of 6`, H2Code.FRAME_SIZE_ERROR)); return; }
    for (let i = p; i < p + len; i += 6) {
      const key = b.readUInt16BE(i);
      const v = b.readUInt32BE(i + 2);
      if (key === 0x2 && v > 1) { this.fail(new H2Error(`SETTINGS_ENABLE_PUSH ${v}`, H2Code.PROTOCOL_ERROR)); return; }
      if (key === 0x4) { // SETTINGS_INITIAL_WINDOW_SIZE: applies to open streams too, by the difference (§6.9.2)
        if (v > MAX_WINDOW) { this.fail(new H2Error(`SETTINGS_INITIAL_WINDOW_SIZE ${v}, above 2^31-1`, H2Code.FLOW_CONTROL_ERROR)); return; }
        const delta = v - this.peerWindow;
        this.peerWindow = v;
        for (const s of this.streams.values()) s.sendWindow += delta;
      }
      if (key === 0x5) { // SETTINGS_MAX_FRAME_SIZE
        if (v < 16_384 || v > 16_777_215) { this.fail(new H2Error(`SETTINGS_MAX_FRAME_SIZE ${v}`, H2Code.PROTOCOL_ERROR)); return; }
        this.peerMaxFrame = v;
      }
      // HEADER_TABLE_SIZE: our encoder indexes nothing; MAX_CONCURRENT_STREAMS: we open a few; the rest: unknown or unused
    }
    this.frame(SETTINGS, ACK, 0, Buffer.alloc(0));
    if (!this.isReady) {
      this.isReady = true;
      this.ev.ready();
    } else {
      for (const s of [...this.streams.values()]) this.flush(s);
    }
  }

  private onPing(b: Buffer, p: number, len: number, flags: number, id: number): void {
    if (id !== 0) { this.fail(new H2Error(`PING on stream ${id}`, H2Code.PROTOCOL_ERROR)); return; }
    if (len !== 8) { this.fail(new H2Error(`PING of ${len} bytes, not 8`, H2Code.FRAME_SIZE_ERROR)); return; }
    const data = b.subarray(p, p + 8);
    if ((flags & ACK) === 0) { this.frame(PING, ACK, 0, Buffer.from(data)); return; }
    const k = this.pings.findIndex((x) => x.data.equals(data));
    if (k < 0) return; // an answer to no ping of ours: nothing waits for it
    const [done] = this.pings.splice(k, 1);
    done!.cb(null);
  }

  private onGoaway(b: Buffer, p: number, len: number, id: number): void {
    if (id !== 0) { this.fail(new H2Error(`GOAWAY on stream ${id}`, H2Code.PROTOCOL_ERROR)); return; }
    if (len < 8) { this.fail(new H2Error(`GOAWAY of ${len} bytes`, H2Code.FRAME_SIZE_ERROR)); return; }
    const last = b.readUInt32BE(p) & 0x7fffffff;
    const code = b.readUInt32BE(p + 4);
    this.ev.goaway(code, last, b.toString('latin1', p + 8, p + len));
  }

  private onWindowUpdate(b: Buffer, p: number, len: number, id: number): void {
    if (len !== 4) { this.fail(new H2Error(`WINDOW_UPDATE of ${len} bytes, not 4`, H2Code.FRAME_SIZE_ERROR)); return; }
    const inc = b.readUInt32BE(p) & 0x7fffffff;
    if (id === 0) {
      if (inc === 0) { this.fail(new H2Error('a WINDOW_UPDATE of 0 for the connection', H2Code.PROTOCOL_ERROR)); return; }
      this.connSendWindow += inc;
      if (this.connSendWindow > MAX_WINDOW) { this.fail(new H2Error('a WINDOW_UPDATE that takes the connection window above 2^31-1', H2Code.FLOW_CONTROL_ERROR)); return; }
      for (const s of [...this.streams.values()]) if (s.queue.length > 0 || (s.ending && !s.localEnded)) this.flush(s);
      return;
    }
    const s = this.streams.get(id);
    if (s === undefined) return;
    if (inc === 0) { this.streamError(s, `a WINDOW_UPDATE of 0 on stream ${id}`, H2Code.PROTOCOL_ERROR); return; }
    s.sendWindow += inc;
    if (s.sendWindow > MAX_WINDOW) { this.streamError(s, `a WINDOW_UPDATE that takes stream ${id}'s window above 2^31-1`, H2Code.FLOW_CONTROL_ERROR); return; }
    this.flush(s);
  }

  /** The server ended its side: the stream is over for us too (a call whose request is still open is cancelled). */
  private remoteEnd(s: H2Stream): void {
    s.closed = true;
    this.streams.delete(s.id);
    if (!s.localEnded && !this.over) this.frame(RST_STREAM, 0, s.id, u32(H2Code.CANCEL));
    s.ev.close();
  }

  /** §5.4.2: one stream is broken, the connection is not */
  private streamError(s: H2Stream, message: string, code: number): void {
    s.closed = true;
    this.streams.delete(s.id);
    this.frame(RST_STREAM, 0, s.id, u32(code));
    s.ev.close(new H2Error(message, code));
  }

  /** §5.4.1: the connection is broken: GOAWAY with the reason, then closed; every stream ends with `err` */
  private fail(err: Error): void {
    this.end(err, err instanceof H2Error && !err.remote ? err.code : H2Code.NO_ERROR, true);
  }

  private end(err: Error, code: number, report: boolean): void {
    if (this.over) return;
    this.over = true;
    if (this.isReady && !this.socket.destroyed && this.socket.writable) {
      const g = Buffer.alloc(8);
      g.writeUInt32BE(code, 4);
      this.frame(GOAWAY, 0, 0, Buffer.concat([g, Buffer.from(err.message.slice(0, 200), 'latin1')]));
    }
    // the GOAWAY goes out, then the socket is closed; a socket still connecting (a dial timeout) is dropped at once, or
    // it would stay in the kernel's SYN retries for minutes
    if (this.isReady) this.socket.destroySoon();
    else this.socket.destroy();
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const s of streams) { s.closed = true; s.ev.close(err); }
    for (const p of this.pings.splice(0)) p.cb(err);
    this.ev.closed(report ? err : undefined);
  }
}

function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}
