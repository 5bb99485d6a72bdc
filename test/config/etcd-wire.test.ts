// config/etcdwire.ts: the watch stream's hand-written codec against the protobuf definitions etcd3 ships (its
// proto/rpc.proto and kv.proto, read by protobufjs, which is what decoded the stream before): every field the datastore
// reads comes out the same, fields it does not read are skipped (header, create_revision, version, lease, prev_kv,
// unknown ones), negative and large int64s are exact, and a truncated message is an error rather than a short read.
import t from 'tap';
import type * as Protobuf from 'protobufjs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { WATCH_PROGRESS_REQUEST, decodeAuthenticateResponse, decodeRangeResponse, decodeTxnResponse, decodeWatchResponse, encodeAuthenticate, encodeRangeRequest, encodeTxnRanges, encodeWatchCreate } from '../../config/etcdwire.js';

const req = createRequire(import.meta.url);
const etcd3Dir = dirname(req.resolve('etcd3/package.json'));
// protobufjs as etcd3 resolves it (a dependency of its proto loader)
const pb = createRequire(req.resolve('@grpc/proto-loader', { paths: [etcd3Dir] }))('protobufjs') as typeof Protobuf;
// keepCase: the field names as in the .proto (watch_id), as etcd3 loads them
const root = new pb.Root().loadSync(join(etcd3Dir, 'proto', 'rpc.proto'), { keepCase: true });
const WatchResponse = root.lookupType('etcdserverpb.WatchResponse');
const WatchRequest = root.lookupType('etcdserverpb.WatchRequest');
const RangeRequest = root.lookupType('etcdserverpb.RangeRequest');
const RangeResponse = root.lookupType('etcdserverpb.RangeResponse');
const TxnRequest = root.lookupType('etcdserverpb.TxnRequest');
const TxnResponse = root.lookupType('etcdserverpb.TxnResponse');
const AuthenticateRequest = root.lookupType('etcdserverpb.AuthenticateRequest');
const AuthenticateResponse = root.lookupType('etcdserverpb.AuthenticateResponse');
const encAs = (type: Protobuf.Type, o: object): Buffer => Buffer.from(type.encode(type.fromObject(o)).finish());
const asObject = (type: Protobuf.Type, b: Buffer): object => type.toObject(type.decode(b), { longs: String, bytes: String });

const enc = (o: object): Buffer => Buffer.from(WatchResponse.encode(WatchResponse.fromObject(o)).finish());

t.test('a response with events: key, value, type and mod_revision; the rest skipped', async (t) => {
  const buf = enc({
    header: { cluster_id: '123456789012345', member_id: '42', revision: '99', raft_term: '7' },
    watch_id: '1', fragment: true,
    events: [
      { type: 'Put', kv: { key: Buffer.from('/calico/a'), create_revision: '5', mod_revision: '98', version: '3', value: Buffer.from('{"x":1}'), lease: '77' } },
      { type: 'Delete', kv: { key: Buffer.from('/calico/b'), mod_revision: '99' }, prev_kv: { key: Buffer.from('/calico/b'), value: Buffer.from('old'), mod_revision: '4' } },
    ],
  });
  const r = decodeWatchResponse(buf);
  t.equal(r.watchId, 1);
  t.equal(r.fragment, true);
  t.equal(r.created, false);
  t.equal(r.canceled, false);
  t.equal(r.compactRevision, '0');
  t.equal(r.events.length, 2);
  t.equal(r.events[0]!.type, 'Put');
  t.equal(r.events[0]!.kv.key.toString(), '/calico/a');
  t.equal(r.events[0]!.kv.value.toString(), '{"x":1}');
  t.equal(r.events[0]!.kv.mod_revision, '98');
  t.equal(r.events[1]!.type, 'Delete');
  t.equal(r.events[1]!.kv.key.toString(), '/calico/b', 'the key of kv, not of prev_kv');
  t.equal(r.events[1]!.kv.value.length, 0, 'a delete has no value (prev_kv\'s is not taken)');
  t.equal(r.events[1]!.kv.mod_revision, '99');
});

t.test('progress, created, cancelled and compacted responses; int64 edges', async (t) => {
  t.equal(decodeWatchResponse(enc({ header: { revision: '5' }, watch_id: '-1' })).watchId, -1, 'a whole-stream progress response (watch_id -1: ten-byte varint)');
  const c = decodeWatchResponse(enc({ watch_id: '3', created: true }));
  t.same([c.watchId, c.created, c.events.length], [3, true, 0]);
  const x = decodeWatchResponse(enc({ watch_id: '2', canceled: true, cancel_reason: 'mvcc: required revision has been compacted', compact_revision: '9007199254740993' }));
  t.equal(x.canceled, true);
  t.equal(x.cancelReason, 'mvcc: required revision has been compacted');
  t.equal(x.compactRevision, '9007199254740993', 'a revision past 2^53 is exact');
  const big = decodeWatchResponse(enc({ watch_id: '1', events: [{ kv: { key: Buffer.from('k'), mod_revision: '9223372036854775807' } }] }));
  t.equal(big.events[0]!.kv.mod_revision, '9223372036854775807', 'the largest int64');
  t.equal(decodeWatchResponse(Buffer.alloc(0)).watchId, 0, 'an empty message is all defaults');
});

t.test('unknown fields of every wire type are skipped', async (t) => {
  const known = enc({ watch_id: '4', events: [{ kv: { key: Buffer.from('k1'), value: Buffer.from('v1'), mod_revision: '12' } }] });
  // field 12 varint, 13 fixed64, 14 length-delimited, 15 fixed32, and field 300 (a two-byte tag) varint
  const extra = Buffer.from([12 << 3, 0x96, 0x01, (13 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8, (14 << 3) | 2, 3, 0x61, 0x62, 0x63, (15 << 3) | 5, 9, 9, 9, 9, 0xe0, 0x12, 5]);
  const r = decodeWatchResponse(Buffer.concat([extra, known, extra]));
  t.equal(r.watchId, 4);
  t.equal(r.events.length, 1);
  t.equal(r.events[0]!.kv.value.toString(), 'v1');
});

t.test('a truncated message throws, at every cut', async (t) => {
  const buf = enc({ watch_id: '1', events: [{ kv: { key: Buffer.from('/calico/resources/v3/x'), value: Buffer.from('{"spec":{}}'), mod_revision: '300' } }] });
  let threw = 0;
  for (let cut = 1; cut < buf.length; cut++) {
    try {
      const r = decodeWatchResponse(buf.subarray(0, cut));
      // a cut may fall between top-level fields; then what was read must be a prefix, never a wrong event
      t.equal(r.events.length, 0, `cut ${cut}: no event from a partial one`);
    } catch {
      threw++;
    }
  }
  t.ok(threw > 0, `most cuts throw (${threw} of ${buf.length - 1})`);
});

t.test('requests decode with etcd\'s definitions to what was meant', async (t) => {
  const create = WatchRequest.toObject(WatchRequest.decode(encodeWatchCreate({ key: Buffer.from('/calico/'), rangeEnd: Buffer.from('/calico0'), startRevision: 9007199254740993n, watchId: 1, fragment: true, progressNotify: true })), { longs: String, bytes: String });
  t.same(create, { create_request: { key: Buffer.from('/calico/').toString('base64'), range_end: Buffer.from('/calico0').toString('base64'), start_revision: '9007199254740993', watch_id: '1', fragment: true, progress_notify: true } });
  const plain = WatchRequest.toObject(WatchRequest.decode(encodeWatchCreate({ key: Buffer.from('a'), rangeEnd: Buffer.from('b'), startRevision: 0n, watchId: 0, fragment: false, progressNotify: false })), { longs: String, bytes: String });
  t.same(plain, { create_request: { key: 'YQ==', range_end: 'Yg==' } }, 'zero scalars are not sent (proto3)');
  const progress = WatchRequest.toObject(WatchRequest.decode(WATCH_PROGRESS_REQUEST));
  t.same(progress, { progress_request: {} });
});

// The unary calls of etcdclient.ts (issue #16): KV.Range, KV.Txn of range reads, Auth.Authenticate.
t.test('RangeRequest and a TxnRequest of range reads decode with etcd\'s definitions to what was meant', async (t) => {
  const b64 = (x: string): string => Buffer.from(x).toString('base64');
  t.same(asObject(RangeRequest, encodeRangeRequest({ key: Buffer.from('/calico/a/'), rangeEnd: Buffer.from('/calico/a0'), limit: 2000, revision: 9007199254740993n, keysOnly: true })),
    { key: b64('/calico/a/'), range_end: b64('/calico/a0'), limit: '2000', revision: '9007199254740993', keys_only: true });
  t.same(asObject(RangeRequest, encodeRangeRequest({ key: Buffer.from('k') })), { key: b64('k') }, 'a single key: no range_end, no limit, the current revision');
  const txn = asObject(TxnRequest, encodeTxnRanges([{ key: Buffer.from('/a'), revision: 7n }, { key: Buffer.from('/b'), revision: 7n }]));
  t.same(txn, { success: [{ request_range: { key: b64('/a'), revision: '7' } }, { request_range: { key: b64('/b'), revision: '7' } }] }, 'no compare: success is taken');
  t.same(asObject(AuthenticateRequest, encodeAuthenticate('root', 'pässword')), { name: 'root', password: 'pässword' });
});

t.test('RangeResponse, TxnResponse and AuthenticateResponse: what the datastore reads, the rest skipped', async (t) => {
  const header = { cluster_id: '18446744073709551615', member_id: '42', revision: '9007199254740993', raft_term: '7' };
  const kv = (k: string, v: string, rev: string): object => ({ key: Buffer.from(k), value: Buffer.from(v), mod_revision: rev, create_revision: '2', version: '3', lease: '99' });
  const r = decodeRangeResponse(encAs(RangeResponse, { header, kvs: [kv('/a', '{"x":1}', '10'), kv('/b', '', '11')], more: true, count: '1000' }));
  t.equal(r.revision, '9007199254740993', 'the header\'s revision, exact past 2^53');
  t.equal(r.more, true);
  t.same(r.kvs.map((x) => [x.key.toString(), x.value.toString(), x.mod_revision]), [['/a', '{"x":1}', '10'], ['/b', '', '11']]);
  const empty = decodeRangeResponse(encAs(RangeResponse, { header: { revision: '5' } }));
  t.same([empty.revision, empty.more, empty.kvs.length], ['5', false, 0]);
  const x = decodeTxnResponse(encAs(TxnResponse, { header, succeeded: true, responses: [
    { response_range: { header, kvs: [kv('/a', 'A', '10')] } },
    { response_range: { header } },
    { response_put: { header } },
    { response_range: { header, kvs: [kv('/c', 'C', '12'), kv('/d', 'D', '13')] } },
  ] }));
  t.equal(x.succeeded, true);
  t.equal(x.revision, '9007199254740993');
  t.same(x.responses.map((op) => op.kvs.map((k) => k.key.toString())), [['/a'], [], [], ['/c', '/d']], 'one entry per op, in order; an op of another kind is an empty range');
  t.equal(decodeAuthenticateResponse(encAs(AuthenticateResponse, { header, token: 'abc.123' })), 'abc.123');
});

t.test('a truncated Range or Txn response throws or reads nothing wrong, at every cut', async (t) => {
  const buf = encAs(TxnResponse, { header: { revision: '3' }, succeeded: true, responses: [{ response_range: { kvs: [{ key: Buffer.from('/calico/k'), value: Buffer.from('{"v":1}'), mod_revision: '3' }] } }] });
  let threw = 0;
  for (let cut = 1; cut < buf.length; cut++) {
    try {
      const r = decodeTxnResponse(buf.subarray(0, cut));
      t.ok(r.responses.every((op) => op.kvs.every((k) => k.key.toString() === '/calico/k' && k.value.toString() === '{"v":1}')), `cut ${cut}: no partial key-value`);
    } catch {
      threw++;
    }
  }
  t.ok(threw > 0, `cuts throw (${threw} of ${buf.length - 1})`);
  const range = encAs(RangeResponse, { kvs: [{ key: Buffer.from('/calico/k'), value: Buffer.from('{"v":1}'), mod_revision: '3' }] });
  t.throws(() => decodeRangeResponse(range.subarray(0, range.length - 2)), /truncated/);
});
