// config/etcdwire.ts: the watch stream's hand-written codec against the protobuf definitions etcd3 ships (its
// proto/rpc.proto and kv.proto, read by protobufjs, which is what decoded the stream before): every field the datastore
// reads comes out the same, fields it does not read are skipped (header, create_revision, version, lease, prev_kv,
// unknown ones), negative and large int64s are exact, and a truncated message is an error rather than a short read.
import t from 'tap';
import type * as Protobuf from 'protobufjs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { WATCH_PROGRESS_REQUEST, decodeWatchResponse, encodeWatchCreate } from '../../config/etcdwire.js';

const req = createRequire(import.meta.url);
const etcd3Dir = dirname(req.resolve('etcd3/package.json'));
// protobufjs as etcd3 resolves it (a dependency of its proto loader)
const pb = createRequire(req.resolve('@grpc/proto-loader', { paths: [etcd3Dir] }))('protobufjs') as typeof Protobuf;
// keepCase: the field names as in the .proto (watch_id), as etcd3 loads them
const root = new pb.Root().loadSync(join(etcd3Dir, 'proto', 'rpc.proto'), { keepCase: true });
const WatchResponse = root.lookupType('etcdserverpb.WatchResponse');
const WatchRequest = root.lookupType('etcdserverpb.WatchRequest');

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
