// config/etcdclient.ts, skeind's own gRPC client for etcd (issue #16), against what a real etcd seldom does on demand:
// a gRPC server of the test's own over node:http2 that answers with an error status, a garbled or truncated frame, an
// oversized message, or not at all; an endpoint list whose first member is down (and a real etcd behind the second);
// a connection that stops passing bytes (keepalive). Each must end the call with an error that says what happened,
// and nothing may crash the process or leave it waiting forever.
// Ports of this file: 24331-24334 (etcd client/peer 24331/24332, nothing listening on 24333, the proxy on 24334).
import t, { type Test } from 'tap';
import http2 from 'node:http2';
import { once } from 'node:events';
import { createServer as netServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { GrpcError } from '../../config/etcdclient.js';
import { EtcdClient, FrameReader, Status, grpcFrame } from '../../config/etcdclient.js';
import { EtcdDatastore } from '../../config/index.js';
import { decodeWatchResponse, encodeRangeRequest } from '../../config/etcdwire.js';
import { startEtcd, startProxy, until } from '../helpers/etcd.js';
import { requires } from '../helpers/env.js';
import { RANGE_OK, failure } from '../helpers/grpc-fake.js';

type Answer = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: Buffer) => void;

/** A gRPC server of the test's own on a free loopback port: `answer` decides what each call gets. */
async function fakeServer(t: Test, answer: Answer): Promise<{ endpoint: string; calls: http2.IncomingHttpHeaders[] }> {
  const server = http2.createServer();
  const calls: http2.IncomingHttpHeaders[] = [];
  server.on('stream', (stream, headers) => {
    calls.push(headers);
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('error', () => undefined);
    // a unary call's request ends; a stream's first message is enough
    const go = (): void => { answer(stream, headers, Buffer.concat(chunks)); };
    if (headers[':path'] === '/etcdserverpb.Watch/Watch') stream.once('data', go);
    else stream.on('end', go);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => { sessions.add(s); s.on('close', () => sessions.delete(s)); });
  t.teardown(async () => {
    for (const s of sessions) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

const grpcHeaders = { ':status': 200, 'content-type': 'application/grpc' };
/** a reply with `body` as the response's DATA and the given status in the trailers */
const reply = (body: Buffer, status = 0, message?: string): Answer => (stream) => {
  stream.respond(grpcHeaders, { waitForTrailers: true });
  stream.on('wantTrailers', () => { stream.sendTrailers({ 'grpc-status': String(status), ...(message !== undefined ? { 'grpc-message': encodeURIComponent(message) } : {}) }); });
  stream.end(body);
};

const client = (t: Test, endpoints: string[], extra: Partial<ConstructorParameters<typeof EtcdClient>[0]> = {}): EtcdClient => {
  const c = new EtcdClient({ endpoints, dialTimeoutMs: 1000, requestTimeoutMs: 2000, ...extra });
  t.teardown(() => c.close());
  return c;
};

t.test('a good answer, over gRPC framing: the request as etcd expects it', async (t) => {
  let body: Buffer | undefined;
  const s = await fakeServer(t, (stream, _h, b) => { body = b; reply(grpcFrame(RANGE_OK))(stream, _h, b); });
  const c = client(t, [s.endpoint]);
  const r = await c.range({ key: Buffer.from('k') });
  t.same([r.revision, r.kvs[0]?.key.toString(), r.kvs[0]?.value.toString(), r.more], ['5', 'k', 'v', false]);
  const h = s.calls[0]!;
  t.same([h[':method'], h[':path'], h['content-type'], h.te], ['POST', '/etcdserverpb.KV/Range', 'application/grpc', 'trailers']);
  t.match(h['grpc-timeout'], /^\d{1,8}m$/, 'the deadline travels with the call');
  t.same(body, grpcFrame(encodeRangeRequest({ key: Buffer.from('k') })), 'one uncompressed frame: flag 0, 4-byte length, the message');
});

t.test('an error status from the server is a clear error; trailers-only too', async (t) => {
  const s = await fakeServer(t, reply(Buffer.alloc(0), 9, 'etcdserver: no leader, 100% gone'));
  const e = await failure(client(t, [s.endpoint]).range({ key: Buffer.from('k') }));
  t.equal(e.code, 9);
  t.equal(e.message, '9 FAILED_PRECONDITION: etcdserver: no leader, 100% gone', 'code, name and the percent-decoded grpc-message');
  t.equal(e.transport, false, 'etcd answered: not a connection failure (no failover for it)');
  t.equal(s.calls.length, 1, 'not retried');
  const only = await fakeServer(t, (stream) => { stream.respond({ ...grpcHeaders, 'grpc-status': '16', 'grpc-message': 'etcdserver%3A invalid auth token' }, { endStream: true }); });
  const e2 = await failure(client(t, [only.endpoint]).range({ key: Buffer.from('k') }));
  t.equal(e2.message, '16 UNAUTHENTICATED: etcdserver: invalid auth token');
  const html = await fakeServer(t, (stream) => { stream.respond({ ':status': 200, 'content-type': 'text/html' }); stream.end('<html>'); });
  t.match((await failure(client(t, [html.endpoint]).range({ key: Buffer.from('k') }))).message, /content-type text\/html, not gRPC/);
});

t.test('garbled, truncated and oversized frames end the call with an error, never a crash', async (t) => {
  const cases: [string, Buffer, RegExp][] = [
    ['a flag byte that is neither 0 nor 1', Buffer.from([7, 0, 0, 0, 1, 0]), /13 INTERNAL: malformed gRPC frame \(flag byte 7\)/],
    ['a compressed message (none was asked for)', Buffer.from([1, 0, 0, 0, 1, 0]), /13 INTERNAL: .*compressed/],
    ['the body ends inside a frame', grpcFrame(RANGE_OK).subarray(0, 9), /13 INTERNAL: etcd's response ended inside a message \(9 bytes/],
    ['the body ends inside the prefix', Buffer.from([0, 0, 0]), /13 INTERNAL: etcd's response ended inside a message/],
    ['a message that is not a RangeResponse', grpcFrame(Buffer.from([0x12, 0x7f, 0x01])), /13 INTERNAL: malformed \/etcdserverpb\.KV\/Range response from etcd: truncated length-delimited field/],
    ['a length over the receive limit', Buffer.from([0, 0x10, 0, 0, 0]), /8 RESOURCE_EXHAUSTED: received message larger than max \(268435456 vs\. 1024\)/],
    ['two messages for a unary call', Buffer.concat([grpcFrame(RANGE_OK), grpcFrame(RANGE_OK)]), /13 INTERNAL: .*more than one message/],
    ['no message at all', Buffer.alloc(0), /13 INTERNAL: .*no message/],
  ];
  for (const [what, body, re] of cases) {
    let n = 0;
    const s = await fakeServer(t, (stream, h, b) => { (n++ === 0 ? reply(body) : reply(grpcFrame(RANGE_OK)))(stream, h, b); });
    const c = client(t, [s.endpoint], { maxReceiveBytes: 1024 });
    let e: Error | undefined;
    try { await c.range({ key: Buffer.from('k') }); } catch (x) { e = x as Error; }
    t.match(e?.message, re, `${what}: ${e?.message}`);
    t.equal((await c.range({ key: Buffer.from('k') })).revision, '5', 'the client serves the next call');
  }
});

t.test('a frame split over many DATA chunks is joined; several frames in one chunk are split', async (t) => {
  const frames: Buffer[] = [];
  const r = new FrameReader(1 << 20);
  const big = Buffer.alloc(70_000, 0x61);
  const all = Buffer.concat([grpcFrame(Buffer.from('one')), grpcFrame(big), grpcFrame(Buffer.alloc(0)), grpcFrame(Buffer.from('two'))]);
  for (let i = 0; i < all.length; i += 3) r.push(all.subarray(i, Math.min(all.length, i + 3)), (m) => frames.push(Buffer.from(m)));
  t.same(frames.map((f) => f.length), [3, 70_000, 0, 3]);
  t.equal(r.pending, 0);
  const once2: Buffer[] = [];
  new FrameReader(1 << 20).push(all, (m) => once2.push(m));
  t.equal(once2.length, 4, 'the same from one chunk');
  t.equal(once2[1]!.buffer, all.buffer, 'a whole frame in a chunk is a view of it, not a copy');
});

t.test('no answer: the unary deadline ends the call', async (t) => {
  const s = await fakeServer(t, () => undefined);
  const e = await failure(client(t, [s.endpoint], { requestTimeoutMs: 300 }).range({ key: Buffer.from('k') }));
  t.equal(e.code, Status.DEADLINE_EXCEEDED);
  t.match(e.message, /no answer from etcd within 300 ms \(\/etcdserverpb\.KV\/Range\)/);
});

t.test('a watch stream: messages in order, a garbled one ends it with a clear error', async (t) => {
  const watchResp = (id: number): Buffer => Buffer.from([0x10, id]); // WatchResponse { watch_id }
  const s = await fakeServer(t, (stream) => {
    stream.respond(grpcHeaders);
    stream.write(Buffer.concat([grpcFrame(watchResp(1)), grpcFrame(watchResp(2))]));
    stream.write(grpcFrame(Buffer.from([0x5a, 0x09, 0x01]))); // field 11 (events), 9 bytes promised, 1 there
  });
  const c = client(t, [s.endpoint]);
  const got: number[] = [];
  let ended: GrpcError | undefined | 'no' = 'no';
  await c.stream('/etcdserverpb.Watch/Watch', { hasleader: 'true' }, {
    message: (m) => { got.push(decodeWatchResponse(m).watchId); },
    end: (e) => { ended = e; },
  }).then((st) => { st.write(Buffer.from([0x1a, 0])); });
  await until(() => ended !== 'no', 'the stream ended', 5000);
  t.same(got, [1, 2], 'the good messages first, in order');
  t.match((ended as unknown as GrpcError).message, /13 INTERNAL: malformed message from etcd: truncated/);
  t.equal(s.calls[0]!.hasleader, 'true', 'metadata as headers');
});

t.test('failover: the first endpoint refuses connections, the second serves', async (t) => {
  // a port that was just free: nothing listens there
  const probe = netServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const dead = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise((r) => probe.close(r));
  const s = await fakeServer(t, reply(grpcFrame(RANGE_OK)));
  const c = client(t, [dead, s.endpoint]);
  t.equal((await c.range({ key: Buffer.from('k') })).revision, '5', 'the same call, on the next endpoint');
  t.equal((await c.range({ key: Buffer.from('k') })).revision, '5', 'and the next call stays there');
  t.equal(s.calls.length, 2);
  const none = await failure(client(t, [dead, dead]).range({ key: Buffer.from('k') }));
  t.equal(none.code, Status.UNAVAILABLE);
  t.match(none.message, /ECONNREFUSED/, `says why: ${none.message}`);
});

t.test('a real etcd: failover from a dead endpoint, keepalive on a silent connection', async (t) => {
  if (!requires(t, { commands: ['etcd'] })) return;
  const etcd = await startEtcd(24331, 24332);
  t.teardown(() => etcd.stop());
  await etcd.client.put('/calico/resources/v3/projectcalico.org/ippools/p1').value(JSON.stringify({ kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name: 'p1' }, spec: { cidr: '10.61.0.0/16' } }));
  // the datastore on [nothing listening, etcd]
  const ds = new EtcdDatastore({ endpoints: ['http://127.0.0.1:24333', etcd.endpoint], backoffMinMs: 50, backoffMaxMs: 200, dialTimeoutMs: 1000 }).start();
  t.teardown(() => ds.close());
  const model = await ds.synced();
  t.ok(model.get('IPPool', 'p1') !== undefined, 'synced through the second endpoint');
  await etcd.client.put('/calico/resources/v3/projectcalico.org/ippools/p2').value(JSON.stringify({ kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name: 'p2' }, spec: { cidr: '10.62.0.0/16' } }));
  await until(() => ds.model.get('IPPool', 'p2') !== undefined, 'a change watched through it', 10_000);

  // a proxy that stops passing bytes both ways: only the keepalive ping can tell
  const proxy = await startProxy(24334, 24331);
  t.teardown(() => proxy.close());
  const c = client(t, [proxy.endpoint], { keepaliveMs: 200, keepaliveTimeoutMs: 300, requestTimeoutMs: 60_000 });
  t.equal((await c.range({ key: Buffer.from('/calico/'), rangeEnd: Buffer.from('/calico0') })).kvs.length, 2, 'through the proxy');
  proxy.pause();
  const e = await failure(c.range({ key: Buffer.from('/calico/'), rangeEnd: Buffer.from('/calico0') }));
  t.match(e.message, /14 UNAVAILABLE: .*did not answer a keepalive ping within 300 ms/, `the silent connection dropped by keepalive, not the 60 s deadline: ${e.message}`);
  proxy.unpause();
  t.equal((await c.range({ key: Buffer.from('/calico/'), rangeEnd: Buffer.from('/calico0') })).kvs.length, 2, 'a new connection serves the next call');
});
