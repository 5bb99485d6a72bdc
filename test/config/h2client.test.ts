// config/h2client.ts and config/hpack.ts, skeind's own HTTP/2 client and HPACK decoder (issue #16), against:
//   - RFC 7541's own examples (Appendix C) and the Huffman codes Appendix B prints;
//   - node:http2's server (nghttp2: it Huffman-codes and indexes like etcd's Go server), for CONTINUATION both ways;
//   - a server of the test's own that writes frames byte by byte as the test says: each fault the server can commit
//     must end the call with an error naming it (and the connection with a GOAWAY saying why), never crash the
//     process or leave a call waiting; each frame type must do what RFC 9113 says and nothing more.
// No fixed ports: every server here listens on a free loopback port.
import t, { type Test } from 'tap';
import http2 from 'node:http2';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { GrpcError } from '../../config/etcdclient.js';
import { EtcdClient, Status, grpcFrame } from '../../config/etcdclient.js';
import { encodeRangeRequest } from '../../config/etcdwire.js';
import { HUFFMAN_LENGTHS, HpackDecoder, HpackError, encodeHeaders, huffmanCodes, huffmanDecode } from '../../config/hpack.js';
import { until } from '../helpers/etcd.js';
import { RANGE_OK, failure } from '../helpers/grpc-fake.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

t.test('HPACK: the Huffman code rebuilt from its lengths is RFC 7541 Appendix B', async (t) => {
  const codes = huffmanCodes();
  t.equal(codes.length, 257, '256 octets and EOS');
  const sym = (c: string): number => c.charCodeAt(0);
  t.same([codes[sym('0')], HUFFMAN_LENGTHS[sym('0')]], [0b00000, 5], "'0' = 00000");
  t.same([codes[sym('a')], HUFFMAN_LENGTHS[sym('a')]], [0b00011, 5], "'a' = 00011");
  t.same([codes[sym(' ')], HUFFMAN_LENGTHS[sym(' ')]], [0b010100, 6], "' ' = 010100");
  t.same([codes[0], HUFFMAN_LENGTHS[0]], [0x1ff8, 13], 'octet 0 = 1111111111000');
  t.same([codes[256], HUFFMAN_LENGTHS[256]], [0x3fffffff, 30], 'EOS = 30 ones');
  // a complete prefix code: the Kraft sum is exactly 1
  let kraft = 0;
  for (const len of HUFFMAN_LENGTHS) kraft += 2 ** (30 - len);
  t.equal(kraft, 2 ** 30);
  // RFC 7541 C.4.1: "www.example.com"; C.4.2: "no-cache"; C.4.3: "custom-key", "custom-value"
  t.equal(huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff'), 0, 12), 'www.example.com');
  t.equal(huffmanDecode(hex('a8eb 1064 9cbf'), 0, 6), 'no-cache');
  t.equal(huffmanDecode(hex('25a8 49e9 5ba9 7d7f'), 0, 8), 'custom-key');
  t.equal(huffmanDecode(hex('25a8 49e9 5bb8 e8b4 bf'), 0, 9), 'custom-value');
});

t.test('HPACK: RFC 7541 C.4, three requests through one dynamic table', async (t) => {
  const d = new HpackDecoder();
  t.same(d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')), [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']]);
  t.same(d.decode(hex('8286 84be 5886 a8eb 1064 9cbf')), [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
    ':authority from the dynamic table (index 62)');
  t.same(d.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')),
    [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
    'index 63 is the older entry once a newer one is in');
});

t.test('HPACK: eviction, and blocks that are not HPACK', async (t) => {
  // a 100-octet table holds one 63-octet entry: the second evicts the first (RFC 7541 §4.4)
  const d = new HpackDecoder(100);
  const lit = (name: string, value: string): Buffer => Buffer.concat([Buffer.from([0x40, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
  d.decode(lit('a', 'x'.repeat(30)));
  t.same(d.decode(Buffer.from([0xbe])), [['a', 'x'.repeat(30)]]);
  d.decode(lit('b', 'y'.repeat(30)));
  t.same(d.decode(Buffer.from([0xbe])), [['b', 'y'.repeat(30)]], 'the newest at 62');
  t.throws(() => d.decode(Buffer.from([0xbf])), /index 63 beyond the dynamic table \(1 entries\)/, 'the first was evicted');
  const bad: [string, Buffer, RegExp][] = [
    ['index 0', Buffer.from([0x80]), /index 0/],
    ['an index past the tables', Buffer.from([0xc6]), /index 70 beyond the dynamic table/],
    ['a table size above ours', Buffer.from([0x3f, 0xe1, 0x1f]), /size update to 4096, above our 100/],
    ['a size update after a field', Buffer.from([0x82, 0x20]), /size update after a header field/],
    ['an integer cut short', Buffer.from([0xff]), /ends inside an integer/],
    ['an integer without end', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), /integer too large/],
    ['a string past the block', Buffer.from([0x00, 0x05, 0x61]), /string runs past the header block/],
    ['Huffman padding of 8 bits', Buffer.from([0x00, 0x81, 0x1f, 0x82, 0x1f, 0xff]), /bad padding/],
    ['Huffman padding that is not ones', Buffer.from([0x00, 0x81, 0x1e, 0x81, 0x1e]), /bad padding/],
    ['EOS inside a string', Buffer.from([0x00, 0x81, 0x1f, 0x84, 0xff, 0xff, 0xff, 0xff]), /holds EOS/],
  ];
  for (const [what, block, re] of bad) {
    t.throws(() => new HpackDecoder(100).decode(block), re, what);
    let e: unknown;
    try { new HpackDecoder(100).decode(block); } catch (x) { e = x; }
    t.ok(e instanceof HpackError, `${what}: an HpackError`);
  }
  // RFC 7541 §7.3: one 4 KB entry referenced from a 16 KB block would decode to 64 MB; over the limit it is an error
  const bomb = new HpackDecoder(4096, 1 << 20);
  bomb.decode(Buffer.concat([Buffer.from([0x40, 0x01, 0x62, 0x7f, 0xa1, 0x1e]), Buffer.alloc(4000, 0x63)]));
  t.same(bomb.decode(Buffer.from([0xbe])).map(([n, v]) => [n, v.length]), [['b', 4000]], 'the 4 KB entry');
  let big: unknown;
  try { bomb.decode(Buffer.alloc(16_000, 0xbe)); } catch (e) { big = e; }
  t.ok(big instanceof HpackError && big.tooLarge, 'a header list over the limit: an HpackError marked tooLarge');
  t.match((big as Error).message, /a header list over 1048576 bytes/);
  t.equal(new HpackDecoder(4096, 1 << 20).decode(Buffer.alloc(200, 0x82)).length, 200, '200 small fields are fine');
  // our literals round-trip, a long value (a multi-octet length) too
  const fields: [string, string][] = [[':path', '/etcdserverpb.KV/Range'], ['token', 't'.repeat(300)], ['te', 'trailers']];
  t.same(new HpackDecoder().decode(encodeHeaders(fields)), fields);
  t.same(new HpackDecoder().decode(encodeHeaders([['x', 'y'.repeat(127)]])), [['x', 'y'.repeat(127)]], 'a length of exactly 2^7-1');
});


const client = (t: Test, endpoint: string, extra: Partial<ConstructorParameters<typeof EtcdClient>[0]> = {}): EtcdClient => {
  const c = new EtcdClient({ endpoints: [endpoint], dialTimeoutMs: 1000, requestTimeoutMs: 3000, ...extra });
  t.teardown(() => c.close());
  return c;
};

t.test('node:http2 server: CONTINUATION both ways (a 40 KB token out, 40 KB of trailers back)', async (t) => {
  const server = http2.createServer();
  const tokens: unknown[] = [];
  server.on('stream', (stream, headers) => {
    tokens.push(headers.token);
    stream.on('data', () => undefined);
    stream.on('end', () => {
      if (stream.destroyed) return; // the stream the test leaves open, cancelled at teardown
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => { stream.sendTrailers({ 'grpc-status': '0', 'x-big': 'b'.repeat(40_000) }); });
      stream.end(grpcFrame(RANGE_OK));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise((r) => { server.close(r); }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => { sessions.add(s); });
  t.teardown(() => { for (const s of sessions) s.destroy(); });
  const port = (server.address() as AddressInfo).port;
  // the token rides on the calls after Authenticate: here a header of the test's own through the stream metadata
  const c = client(t, `http://127.0.0.1:${port}`);
  let ended: GrpcError | undefined | 'no' = 'no';
  const msgs: Buffer[] = [];
  await c.stream('/etcdserverpb.KV/Range', { token: 'k'.repeat(40_000) }, { message: (m) => msgs.push(m), end: (e) => { ended = e; } }).then((s) => { s.write(Buffer.from('x')); });
  // node:http2's server answers when our side ends; a unary call does that
  t.equal((await c.range({ key: Buffer.from('k') })).revision, '5', 'a unary call beside it, answered with 40 KB trailers');
  t.same(tokens.map((x) => typeof x === 'string' ? x.length : x), [40_000, undefined], 'the 40 KB header arrived whole (HEADERS and CONTINUATION)');
  t.equal(ended, 'no', 'the open stream is not ended by its neighbour');
});

interface Frame { type: number; flags: number; id: number; payload: Buffer }

/** One accepted connection of the raw server: the client's frames as they come, and a way to write any bytes. */
interface Raw {
  frames: Frame[];
  /** every frame of the client's, in order (next() does not take from it) */
  log: Frame[];
  sock: Socket;
  write(type: number, flags: number, id: number, payload?: Buffer): void;
  /** wait for the client's frame matching `pred` */
  next(pred: (f: Frame) => boolean, what: string): Promise<Frame>;
}

const frameBytes = (type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return Buffer.concat([h, payload]);
};
const SETTINGS = 4, DATA = 0, HEADERS = 1, RST = 3, PUSH = 5, PING = 6, GOAWAY = 7, WINDOW = 8, CONT = 9;
const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };
const settings = (...kv: [number, number][]): Buffer => Buffer.concat(kv.map(([k, v]) => { const b = Buffer.alloc(6); b.writeUInt16BE(k); b.writeUInt32BE(v, 2); return b; }));
const RESPONSE = encodeHeaders([[':status', '200'], ['content-type', 'application/grpc']]);
const TRAILERS_OK = encodeHeaders([['grpc-status', '0']]);

/** A server that speaks HTTP/2 frames only as `serve` writes them; its SETTINGS first unless `serve` opts out. */
async function rawServer(t: Test, serve: (c: Raw) => void | Promise<void>, opts: { noSettings?: boolean } = {}): Promise<{ endpoint: string; conns: Raw[] }> {
  const conns: Raw[] = [];
  const server = createServer((sock) => {
    const waiters: (() => void)[] = [];
    const c: Raw = {
      frames: [],
      log: [],
      sock,
      write: (type, flags, id, payload) => { if (!sock.destroyed) sock.write(frameBytes(type, flags, id, payload)); },
      next: async (pred, what) => {
        for (let i = 0; i < 200; i++) {
          const f = c.frames.find(pred);
          if (f !== undefined) { c.frames.splice(c.frames.indexOf(f), 1); return f; }
          await Promise.race([new Promise<void>((r) => waiters.push(r)), new Promise((r) => setTimeout(r, 50))]);
        }
        throw new Error(`the client sent no ${what}`);
      },
    };
    conns.push(c);
    let buf = Buffer.alloc(0);
    let preface = false;
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!preface) {
        if (buf.length < 24) return;
        preface = true;
        buf = buf.subarray(24);
      }
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const len = buf.readUIntBE(0, 3);
        const f = { type: buf[3]!, flags: buf[4]!, id: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
        c.frames.push(f);
        c.log.push(f);
        buf = buf.subarray(9 + len);
      }
      for (const w of waiters.splice(0)) w();
    });
    sock.on('error', () => undefined);
    if (opts.noSettings !== true) c.write(SETTINGS, 0, 0);
    void serve(c);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise((r) => { for (const c of conns) c.sock.destroy(); server.close(r); }));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, conns };
}

/** the client's first request on a connection: its HEADERS frame */
const request = (c: Raw): Promise<Frame> => c.next((f) => f.type === HEADERS, 'HEADERS');
/** a whole good answer to stream `id` */
const answer = (c: Raw, id: number): void => {
  c.write(HEADERS, 0x4, id, RESPONSE);
  c.write(DATA, 0, id, grpcFrame(RANGE_OK));
  c.write(HEADERS, 0x5, id, TRAILERS_OK);
};

t.test('a good exchange at the frame level: what the client sends, and what it must not', async (t) => {
  const s = await rawServer(t, async (c) => { const h = await request(c); answer(c, h.id); });
  const c = client(t, s.endpoint);
  t.equal((await c.range({ key: Buffer.from('k') })).revision, '5');
  const conn = s.conns[0]!;
  const first = await conn.next((f) => f.type === SETTINGS && f.flags === 0, 'SETTINGS');
  t.same([first.payload.readUInt16BE(0), first.payload.readUInt32BE(2)], [2, 0], 'server push disabled');
  t.same([first.payload.readUInt16BE(6), first.payload.readUInt32BE(8)], [4, 4 * 1024 * 1024], 'our stream window');
  t.same([first.payload.readUInt16BE(12), first.payload.readUInt32BE(14)], [6, 1 << 20], 'the header list size we decode');
  const w = await conn.next((f) => f.type === WINDOW && f.id === 0, 'the connection window');
  t.equal(w.payload.readUInt32BE(0), 4 * 1024 * 1024 - 65_535);
  await conn.next((f) => f.type === SETTINGS && f.flags === 1, 'SETTINGS ACK');
  await conn.next((f) => f.type === DATA, 'DATA');
  t.notOk(conn.frames.some((f) => f.type === WINDOW), 'no WINDOW_UPDATE for a few bytes');
  t.notOk(conn.frames.some((f) => f.type === RST), 'no RST_STREAM for a stream both sides ended');
});

t.test('the request: pseudo-headers first, gRPC headers, one DATA frame with END_STREAM', async (t) => {
  let seen: [string, string][] = [];
  let body: Frame | undefined;
  const s = await rawServer(t, async (c) => {
    const h = await request(c);
    seen = new HpackDecoder().decode(h.payload);
    t.equal(h.flags & 0x4, 0x4, 'END_HEADERS');
    t.equal(h.flags & 0x1, 0, 'no END_STREAM on the HEADERS of a call with a body');
    body = await c.next((f) => f.type === DATA, 'DATA');
    answer(c, h.id);
  });
  await client(t, s.endpoint).range({ key: Buffer.from('k') });
  const port = s.endpoint.split(':')[2];
  t.same(seen.slice(0, 6), [[':method', 'POST'], [':scheme', 'http'], [':path', '/etcdserverpb.KV/Range'], [':authority', `127.0.0.1:${port}`], ['content-type', 'application/grpc'], ['te', 'trailers']]);
  t.equal(body?.flags, 1, 'END_STREAM on the DATA');
  t.equal(body?.id, 1, 'the first stream is 1');
});

t.test('every fault of the server ends the call with an error naming it, and a GOAWAY with its code', async (t) => {
  const big = Buffer.alloc(16_385);
  const cases: [string, (c: Raw, id: number) => void, RegExp, number][] = [
    ['a frame over 16384 bytes', (c, id) => { c.write(DATA, 0, id, big); }, /13 INTERNAL: .*broke HTTP\/2 \(FRAME_SIZE_ERROR\): .*16385 bytes/, 6],
    ['a header block that is not HPACK', (c, id) => { c.write(HEADERS, 0x4, id, Buffer.from([0xc6])); }, /broke HTTP\/2 \(COMPRESSION_ERROR\): .*index 70/, 9],
    ['a header block that decodes to 64 MB', (c, id) => {
      c.write(HEADERS, 0x4, id, Buffer.concat([Buffer.from([0x40, 0x01, 0x62, 0x7f, 0xa1, 0x1e]), Buffer.alloc(4000, 0x63), Buffer.alloc(12_000, 0xbe)]));
    }, /broke HTTP\/2 \(ENHANCE_YOUR_CALM\): a header block that decodes to a header list over 1048576 bytes/, 11],
    ['DATA on a stream never opened', (c) => { c.write(DATA, 0, 7, Buffer.from('x')); }, /broke HTTP\/2 \(PROTOCOL_ERROR\): DATA on stream 7, which we never opened/, 1],
    ['HEADERS on a server-side (even) stream', (c) => { c.write(HEADERS, 0x4, 2, RESPONSE); }, /PROTOCOL_ERROR\): HEADERS on stream 2/, 1],
    ['DATA on stream 0', (c) => { c.write(DATA, 0, 0, Buffer.from('x')); }, /PROTOCOL_ERROR\): DATA on stream 0/, 1],
    ['a frame between HEADERS and its CONTINUATION', (c, id) => { c.write(HEADERS, 0, id, RESPONSE.subarray(0, 2)); c.write(PING, 0, 0, Buffer.alloc(8)); }, /PROTOCOL_ERROR\): .*inside a header block/, 1],
    ['CONTINUATION with no HEADERS before it', (c, id) => { c.write(CONT, 0x4, id, RESPONSE); }, /PROTOCOL_ERROR\): CONTINUATION with no header block open/, 1],
    ['a padding longer than the frame', (c, id) => { c.write(HEADERS, 0x4, id, RESPONSE); c.write(DATA, 0x8, id, Buffer.from([9, 1, 2])); }, /PROTOCOL_ERROR\): DATA padding of 9 bytes in a 3-byte frame/, 1],
    ['PUSH_PROMISE, push being off', (c, id) => { c.write(PUSH, 0x4, id, Buffer.alloc(4)); }, /PROTOCOL_ERROR\): PUSH_PROMISE/, 1],
    ['a PING of 7 bytes', (c) => { c.write(PING, 0, 0, Buffer.alloc(7)); }, /FRAME_SIZE_ERROR\): PING of 7 bytes/, 6],
    ['a SETTINGS of 5 bytes', (c) => { c.write(SETTINGS, 0, 0, Buffer.alloc(5)); }, /FRAME_SIZE_ERROR\): SETTINGS of 5 bytes/, 6],
    ['a connection WINDOW_UPDATE of 0', (c) => { c.write(WINDOW, 0, 0, u32(0)); }, /PROTOCOL_ERROR\): a WINDOW_UPDATE of 0 for the connection/, 1],
    ['a window above 2^31-1', (c) => { c.write(WINDOW, 0, 0, u32(0x7fffffff)); }, /FLOW_CONTROL_ERROR\): .*above 2\^31-1/, 3],
    ['a MAX_FRAME_SIZE under 16384', (c) => { c.write(SETTINGS, 0, 0, settings([5, 100])); }, /PROTOCOL_ERROR\): SETTINGS_MAX_FRAME_SIZE 100/, 1],
    ['an RST_STREAM of 3 bytes', (c, id) => { c.write(RST, 0, id, Buffer.alloc(3)); }, /FRAME_SIZE_ERROR\): RST_STREAM of 3 bytes/, 6],
  ];
  for (const [what, fault, re, code] of cases) {
    const s = await rawServer(t, async (c) => { const h = await request(c); fault(c, h.id); });
    const c = client(t, s.endpoint);
    const e = await failure(c.range({ key: Buffer.from('k') }));
    t.match(e.message, re, `${what}: ${e.message}`);
    t.equal(e.transport, true, `${what}: a transport error (the next call connects again)`);
    const g = await s.conns[0]!.next((f) => f.type === GOAWAY, 'GOAWAY');
    t.equal(g.payload.readUInt32BE(4), code, `${what}: GOAWAY says why`);
  }
});

t.test('after a broken connection the next call connects again; the server closing mid-frame is a lost connection', async (t) => {
  let n = 0;
  const s = await rawServer(t, async (c) => {
    const h = await request(c);
    if (n++ === 0) { c.sock.write(frameBytes(DATA, 0, h.id, Buffer.alloc(100)).subarray(0, 20)); c.sock.end(); } else answer(c, h.id);
  });
  const c = client(t, s.endpoint);
  const e = await failure(c.range({ key: Buffer.from('k') }));
  t.equal(e.code, Status.UNAVAILABLE, e.message);
  t.equal((await c.range({ key: Buffer.from('k') })).revision, '5', 'a new connection serves the next call');
  t.equal(s.conns.length, 2);
});

t.test('the first frame must be SETTINGS: a server that is not HTTP/2 fails the connect', async (t) => {
  const s = await rawServer(t, (c) => { c.write(PING, 0, 0, Buffer.alloc(8)); }, { noSettings: true });
  const e = await failure(client(t, s.endpoint).range({ key: Buffer.from('k') }));
  t.match(e.message, /PROTOCOL_ERROR\): the server's first frame is of type 6, not SETTINGS/);
  const http1 = createServer((sock) => { sock.on('data', () => { sock.end('HTTP/1.1 400 Bad Request\r\n\r\n'); }); sock.on('error', () => undefined); }).listen(0, '127.0.0.1');
  await once(http1, 'listening');
  t.teardown(() => new Promise((r) => { http1.close(r); }));
  const e2 = await failure(client(t, `http://127.0.0.1:${(http1.address() as AddressInfo).port}`).range({ key: Buffer.from('k') }));
  t.equal(e2.transport, true, `an HTTP/1.1 answer: ${e2.message}`);
});

t.test('RST_STREAM ends that call only; PING is answered; unknown frames and PRIORITY are ignored', async (t) => {
  const s = await rawServer(t, async (c) => {
    const h1 = await request(c);
    c.write(0x42, 0xff, 0, Buffer.from('an extension frame')); // §5.5: ignored
    c.write(2, 0, h1.id, Buffer.alloc(5)); // PRIORITY: ignored
    c.write(PING, 0, 0, Buffer.from('12345678'));
    c.write(RST, 0, h1.id, u32(7));
    const h2 = await request(c);
    answer(c, h2.id);
  });
  const c = client(t, s.endpoint);
  const e = await failure(c.range({ key: Buffer.from('k') }));
  t.match(e.message, /14 UNAVAILABLE: etcd closed the call with no status \(HTTP\/2 REFUSED_STREAM/);
  t.equal((await c.range({ key: Buffer.from('k') })).revision, '5', 'the next call on the same connection');
  t.equal(s.conns.length, 1, 'no new connection for a reset stream');
  const conn = s.conns[0]!;
  const ack = await conn.next((f) => f.type === PING, 'PING ACK');
  t.same([ack.flags, ack.payload.toString()], [1, '12345678'], 'the ACK echoes the payload');
  t.notOk(conn.frames.some((f) => f.type === GOAWAY), 'no GOAWAY for any of it');
  t.notOk(conn.frames.some((f) => f.type === RST && f.id === 1), 'no RST_STREAM back for a stream the server reset');
});

t.test('GOAWAY: the call fails as a transport error and the next call opens a new connection', async (t) => {
  let n = 0;
  const s = await rawServer(t, async (c) => {
    const h = await request(c);
    if (n++ === 0) { const g = Buffer.alloc(8); g.writeUInt32BE(0, 0); c.write(GOAWAY, 0, 0, Buffer.concat([g, Buffer.from('shutting down')])); } else answer(c, h.id);
  });
  const c = client(t, s.endpoint);
  const e = await failure(c.range({ key: Buffer.from('k') }));
  t.equal(e.transport, true);
  t.match(e.message, /going away/);
  t.equal((await c.range({ key: Buffer.from('k') })).revision, '5');
  t.equal(s.conns.length, 2);
});

t.test('padding, priority fields, and a response cut at every byte', async (t) => {
  const s = await rawServer(t, async (c) => {
    const h = await request(c);
    const padded = (p: Buffer, pad: number): Buffer => Buffer.concat([Buffer.from([pad]), p, Buffer.alloc(pad)]);
    const bytes = Buffer.concat([
      frameBytes(HEADERS, 0x4 | 0x8 | 0x20, h.id, padded(Buffer.concat([Buffer.alloc(5), RESPONSE]), 3)),
      frameBytes(DATA, 0x8, h.id, padded(grpcFrame(RANGE_OK), 10)),
      frameBytes(HEADERS, 0x1, h.id, TRAILERS_OK.subarray(0, 3)),
      frameBytes(CONT, 0x4, h.id, TRAILERS_OK.subarray(3)),
    ]);
    // one byte a write, each its own segment: every frame header and payload is cut somewhere
    c.sock.setNoDelay(true);
    for (let i = 0; i < bytes.length; i++) {
      c.sock.write(bytes.subarray(i, i + 1));
      await new Promise((r) => setImmediate(r));
    }
  });
  const r = await client(t, s.endpoint).range({ key: Buffer.from('k') });
  t.same([r.revision, r.kvs[0]?.value.toString()], ['5', 'v']);
});

t.test('flow control: we do not send past the peer window, and give back ours once half is used', async (t) => {
  // the server's stream window is 10 bytes: a 20-byte message waits for its WINDOW_UPDATE
  const got: Frame[] = [];
  const s = await rawServer(t, async (c) => {
    c.write(SETTINGS, 0, 0, settings([4, 10]));
    const h = await request(c);
    got.push(await c.next((f) => f.type === DATA, 'the first DATA'));
    await new Promise((r) => setTimeout(r, 50));
    t.notOk(c.frames.some((f) => f.type === DATA), 'nothing past the window');
    c.write(WINDOW, 0, h.id, u32(100));
    got.push(await c.next((f) => f.type === DATA, 'the rest'));
    answer(c, h.id);
  });
  await client(t, s.endpoint).range({ key: Buffer.from('k'), rangeEnd: Buffer.from('kz') });
  t.equal(got[0]!.payload.length, 10, 'a window of 10 bytes');
  t.equal(got[0]!.flags, 0);
  t.equal(got[1]!.flags, 1, 'END_STREAM with the rest');
  t.same(Buffer.concat([got[0]!.payload, got[1]!.payload]), grpcFrame(encodeRangeRequest({ key: Buffer.from('k'), rangeEnd: Buffer.from('kz') })), 'the message whole, in order');

  // 2.5 MiB down one stream: one WINDOW_UPDATE for the stream and one for the connection at the half (2 MiB), not one a frame
  const s2 = await rawServer(t, async (c) => {
    const h = await request(c);
    c.write(HEADERS, 0x4, h.id, RESPONSE);
    const msg = grpcFrame(Buffer.alloc(160 * 16_000 - 5));
    for (let i = 0; i < 160; i++) c.write(DATA, 0, h.id, msg.subarray(i * 16_000, (i + 1) * 16_000));
    c.write(HEADERS, 0x5, h.id, TRAILERS_OK);
  });
  // 2.5 MB of zeros: whether they decode as a RangeResponse does not matter here, the windows do
  await client(t, s2.endpoint, { maxReceiveBytes: 8 << 20 }).range({ key: Buffer.from('k') }).catch(() => undefined);
  const conn = s2.conns[0]!;
  await until(() => conn.frames.filter((f) => f.type === WINDOW && f.id !== 0).length > 0, 'the stream window given back', 5000);
  const ups = conn.log.slice(conn.log.findIndex((f) => f.type === HEADERS)).filter((f) => f.type === WINDOW);
  t.same(ups.map((f) => [f.id === 0 ? 'conn' : 'stream', f.payload.readUInt32BE(0) >= 2 * 1024 * 1024]), [['conn', true], ['stream', true]], 'one each, at half the window');
});

t.test('a watch stream over the raw server: messages in order, trailers end it, and our side is reset', async (t) => {
  const s = await rawServer(t, async (c) => {
    const h = await request(c);
    c.write(HEADERS, 0x4, h.id, RESPONSE);
    c.write(DATA, 0, h.id, Buffer.concat([grpcFrame(Buffer.from([0x10, 1])), grpcFrame(Buffer.from([0x10, 2]))]));
    c.write(DATA, 0, h.id, grpcFrame(Buffer.from([0x10, 3])));
    c.write(HEADERS, 0x5, h.id, encodeHeaders([['grpc-status', '14'], ['grpc-message', 'etcdserver%3A no leader']]));
  });
  const c = client(t, s.endpoint);
  const got: number[] = [];
  let ended: GrpcError | undefined | 'no' = 'no';
  await c.stream('/etcdserverpb.Watch/Watch', {}, { message: (m) => got.push(m[1]!), end: (e) => { ended = e; } });
  await until(() => ended !== 'no', 'the stream ended', 5000);
  t.same(got, [1, 2, 3]);
  t.match((ended as unknown as GrpcError).message, /14 UNAVAILABLE: etcdserver: no leader/);
  const rst = await s.conns[0]!.next((f) => f.type === RST, 'RST_STREAM for our open side');
  t.equal(rst.payload.readUInt32BE(0), 8, 'CANCEL');
});

t.test('a server that accepts but never speaks: the dial timeout ends the call, and the socket is closed at once', async (t) => {
  const s = await rawServer(t, () => undefined, { noSettings: true });
  const c = client(t, s.endpoint, { dialTimeoutMs: 300 });
  const e = await failure(c.range({ key: Buffer.from('k') }));
  t.match(e.message, /14 UNAVAILABLE: cannot connect to etcd http:\/\/127\.0\.0\.1:\d+ within 300 ms/);
  const sock = s.conns[0]!.sock;
  if (!sock.destroyed) await until(() => sock.destroyed || sock.readableEnded, 'the server sees the client go', 5000);
  t.notOk(s.conns[0]!.log.some((f) => f.type === GOAWAY), 'no GOAWAY on a connection that never became HTTP/2');
});

t.test("a handler that throws on what the server sent ends the connection, not the process", async (t) => {
  let n = 0;
  const s = await rawServer(t, async (c) => {
    const h = await request(c);
    if (n++ > 0) { answer(c, h.id); return; }
    c.write(HEADERS, 0x4, h.id, RESPONSE);
    c.write(HEADERS, 0x5, h.id, TRAILERS_OK);
  });
  const c = client(t, s.endpoint);
  let ends = 0;
  await c.stream('/etcdserverpb.Watch/Watch', {}, { message: () => undefined, end: () => { ends++; throw new Error('a bug in the end handler'); } });
  const g = await s.conns[0]!.next((f) => f.type === GOAWAY, 'GOAWAY');
  t.equal(g.payload.readUInt32BE(4), 2, 'GOAWAY INTERNAL_ERROR');
  t.match(g.payload.subarray(8).toString(), /failed on what the server sent: a bug in the end handler/);
  t.equal(ends, 1, 'the end handler was called once, not again for the connection it brought down');
  t.equal((await c.range({ key: Buffer.from('k') })).revision, '5', 'the next call on a new connection');
  t.equal(s.conns.length, 2);
});
