// The etcd watch stream's two messages, encoded and decoded by hand (issue #16: the cost of another node's change).
//
// Every host watches every WorkloadEndpoint of the cluster (their keys start with the namespace, not the node, so no
// key range holds one node's), and drops another node's by its key (keys.ts, keyConcernsNode). Through etcd3's
// protobufjs definitions each watch message was first decoded to protobufjs objects and then turned into plain objects
// with every int64 as a decimal string (Long.toString): ~30% of the JavaScript time a host spent on one other-node put
// (a --cpu-prof of EtcdDatastore with single puts from another process). Here the decoder reads only the fields the
// datastore uses and leaves the rest (the header, create_revision, version, lease, prev_kv) unread; a key and a value
// are views into the received message, not copies, so the value of a dropped key is never touched.
//
// Field numbers from etcd's api/etcdserverpb/rpc.proto (WatchRequest, WatchCreateRequest, WatchProgressRequest,
// WatchResponse) and api/mvccpb/kv.proto (Event, KeyValue), the files etcd3 ships in proto/. Protobuf encoding:
// https://protobuf.dev/programming-guides/encoding/ (varints; int64 negatives as ten-byte two's complement).

export interface WatchKeyValue {
  key: Buffer;
  value: Buffer;
  /** decimal, as etcd3's objects gave it */
  mod_revision: string;
}

export interface WatchEvent {
  type: 'Put' | 'Delete';
  kv: WatchKeyValue;
}

export interface WatchResponseLite {
  /** -1 for a progress response that concerns the whole stream */
  watchId: number;
  created: boolean;
  canceled: boolean;
  /** '0' when none */
  compactRevision: string;
  cancelReason: string;
  fragment: boolean;
  events: WatchEvent[];
}

export interface WatchCreate {
  key: Buffer;
  rangeEnd: Buffer;
  startRevision: bigint;
  watchId: number;
  progressNotify: boolean;
  fragment: boolean;
}

const EMPTY: Buffer = Buffer.alloc(0);

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer, public end = buf.length) {}

  /** A varint as a number while it fits 53 bits; longer ones (negative int64s) go through BigInt. */
  varint(): number {
    const b = this.buf;
    let result = 0;
    let mul = 1;
    const start = this.pos;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const x = b[this.pos++] as number;
      result += (x & 0x7f) * mul;
      if (x < 0x80) return result;
      mul *= 128;
    }
    this.pos = start;
    let big = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const x = b[this.pos++] as number;
      big |= BigInt(x & 0x7f) << shift;
      if (x < 0x80) return Number(BigInt.asIntN(64, big));
      shift += 7n;
    }
    throw new Error('varint longer than 10 bytes');
  }

  /** The same varint's decimal text, exact for any int64 (a revision). */
  int64Text(): string {
    const start = this.pos;
    const n = this.varint();
    if (Number.isSafeInteger(n) && n >= 0 && this.pos - start < 8) return String(n);
    this.pos = start;
    let big = 0n;
    let shift = 0n;
    for (;;) {
      const x = this.buf[this.pos++] as number;
      big |= BigInt(x & 0x7f) << shift;
      if (x < 0x80) break;
      shift += 7n;
    }
    return BigInt.asIntN(64, big).toString();
  }

  /** A length-delimited field's extent; the reader moves past it. */
  bytes(): [number, number] {
    const len = this.varint();
    const s = this.pos;
    if (len < 0 || s + len > this.end) throw new Error('truncated length-delimited field');
    this.pos = s + len;
    return [s, s + len];
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0: this.varint(); return;
      case 1: this.pos += 8; break;
      case 2: this.bytes(); return;
      case 5: this.pos += 4; break;
      default: throw new Error(`unsupported protobuf wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new Error('truncated fixed-width field');
  }
}

function decodeKeyValue(r: Reader, end: number): WatchKeyValue {
  const outer = r.end;
  r.end = end;
  let key = EMPTY;
  let value = EMPTY;
  let mod = '0';
  while (r.pos < end) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === 2) { const [s, e] = r.bytes(); key = r.buf.subarray(s, e); }
    else if (field === 3 && wt === 0) mod = r.int64Text();
    else if (field === 5 && wt === 2) { const [s, e] = r.bytes(); value = r.buf.subarray(s, e); }
    else r.skip(wt);
  }
  r.end = outer;
  return { key, value, mod_revision: mod };
}

function decodeEvent(r: Reader, end: number): WatchEvent {
  const outer = r.end;
  r.end = end;
  let type: WatchEvent['type'] = 'Put';
  let kv: WatchKeyValue = { key: EMPTY, value: EMPTY, mod_revision: '0' };
  while (r.pos < end) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === 0) type = r.varint() === 1 ? 'Delete' : 'Put';
    else if (field === 2 && wt === 2) { const [s, e] = r.bytes(); r.pos = s; kv = decodeKeyValue(r, e); r.pos = e; }
    else r.skip(wt); // prev_kv (not asked for), unknown fields
  }
  r.end = outer;
  return { type, kv };
}

/** One WatchResponse. Throws on a malformed message (gRPC then ends the stream with an error). */
export function decodeWatchResponse(buf: Buffer): WatchResponseLite {
  const r = new Reader(buf);
  const out: WatchResponseLite = { watchId: 0, created: false, canceled: false, compactRevision: '0', cancelReason: '', fragment: false, events: [] };
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wt = tag & 7;
    switch (wt === 0 || wt === 2 ? field : -1) {
      case 2: if (wt === 0) { out.watchId = r.varint(); continue; } break;
      case 3: if (wt === 0) { out.created = r.varint() !== 0; continue; } break;
      case 4: if (wt === 0) { out.canceled = r.varint() !== 0; continue; } break;
      case 5: if (wt === 0) { out.compactRevision = r.int64Text(); continue; } break;
      case 6: if (wt === 2) { const [s, e] = r.bytes(); out.cancelReason = buf.toString('utf8', s, e); continue; } break;
      case 7: if (wt === 0) { out.fragment = r.varint() !== 0; continue; } break;
      case 11: if (wt === 2) { const [s, e] = r.bytes(); r.pos = s; out.events.push(decodeEvent(r, e)); r.pos = e; continue; } break;
      default: break;
    }
    r.skip(wt); // the header (field 1) and anything newer
  }
  return out;
}

function varintBytes(out: number[], v: bigint): void {
  let x = BigInt.asUintN(64, v);
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

function lenField(out: number[], field: number, data: Buffer | number[]): void {
  varintBytes(out, BigInt((field << 3) | 2));
  varintBytes(out, BigInt(data.length));
  for (const b of data) out.push(b);
}

function varintField(out: number[], field: number, v: bigint): void {
  if (v === 0n) return; // proto3: a zero scalar is not sent
  varintBytes(out, BigInt(field << 3));
  varintBytes(out, v);
}

/** WatchRequest { create_request }. */
export function encodeWatchCreate(c: WatchCreate): Buffer {
  const inner: number[] = [];
  lenField(inner, 1, c.key);
  lenField(inner, 2, c.rangeEnd);
  varintField(inner, 3, c.startRevision);
  varintField(inner, 4, c.progressNotify ? 1n : 0n);
  varintField(inner, 7, BigInt(c.watchId));
  varintField(inner, 8, c.fragment ? 1n : 0n);
  const out: number[] = [];
  lenField(out, 1, inner);
  return Buffer.from(out);
}

/** WatchRequest { progress_request: {} }: field 3, empty. */
export const WATCH_PROGRESS_REQUEST: Buffer = Buffer.from([(3 << 3) | 2, 0]);

// The unary calls the datastore makes (issue #16: skeind speaks gRPC over node:http2 itself, etcdclient.ts): KV.Range
// (a list page), KV.Txn of range reads only (values of listed keys at the list's revision), Auth.Authenticate.
// Field numbers from rpc.proto: RangeRequest, RangeResponse, ResponseHeader, TxnRequest, RequestOp, TxnResponse,
// ResponseOp, AuthenticateRequest, AuthenticateResponse; KeyValue from kv.proto as above.

export interface RangeRequestLite {
  key: Buffer;
  rangeEnd?: Buffer | undefined;
  /** 0: no limit */
  limit?: number | undefined;
  /** 0 or absent: the current revision */
  revision?: bigint | undefined;
  keysOnly?: boolean | undefined;
}

export interface RangeResponseLite {
  /** the header's revision: the store's revision the response was served at (decimal) */
  revision: string;
  kvs: WatchKeyValue[];
  more: boolean;
}

function encodeRangeFields(out: number[], r: RangeRequestLite): void {
  lenField(out, 1, r.key);
  if (r.rangeEnd !== undefined && r.rangeEnd.length > 0) lenField(out, 2, r.rangeEnd);
  varintField(out, 3, BigInt(r.limit ?? 0));
  varintField(out, 4, r.revision ?? 0n);
  varintField(out, 8, r.keysOnly === true ? 1n : 0n);
}

/** RangeRequest. */
export function encodeRangeRequest(r: RangeRequestLite): Buffer {
  const out: number[] = [];
  encodeRangeFields(out, r);
  return Buffer.from(out);
}

/** TxnRequest with no compare and one RequestOp { request_range } per read in success (always taken). */
export function encodeTxnRanges(reads: readonly RangeRequestLite[]): Buffer {
  const out: number[] = [];
  for (const r of reads) {
    const range: number[] = [];
    encodeRangeFields(range, r);
    const op: number[] = [];
    lenField(op, 1, range);
    lenField(out, 2, op);
  }
  return Buffer.from(out);
}

function decodeHeaderRevision(r: Reader, end: number): string {
  const outer = r.end;
  r.end = end;
  let rev = '0';
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === 3 << 3) rev = r.int64Text(); // revision, a varint
    else r.skip(tag & 7); // cluster_id, member_id, raft_term
  }
  r.end = outer;
  return rev;
}

function decodeRangeAt(r: Reader, end: number): RangeResponseLite {
  const outer = r.end;
  r.end = end;
  const out: RangeResponseLite = { revision: '0', kvs: [], more: false };
  while (r.pos < end) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === 2) { const [s, e] = r.bytes(); r.pos = s; out.revision = decodeHeaderRevision(r, e); r.pos = e; }
    else if (field === 2 && wt === 2) { const [s, e] = r.bytes(); r.pos = s; out.kvs.push(decodeKeyValue(r, e)); r.pos = e; }
    else if (field === 3 && wt === 0) out.more = r.varint() !== 0;
    else r.skip(wt); // count, anything newer
  }
  r.end = outer;
  return out;
}

/** RangeResponse. Throws on a malformed message. */
export function decodeRangeResponse(buf: Buffer): RangeResponseLite {
  return decodeRangeAt(new Reader(buf), buf.length);
}

export interface TxnResponseLite {
  revision: string;
  succeeded: boolean;
  /** one per op: the range read's response (an op of another kind comes out as an empty range) */
  responses: RangeResponseLite[];
}

/** TxnResponse whose ops are range reads. Throws on a malformed message. */
export function decodeTxnResponse(buf: Buffer): TxnResponseLite {
  const r = new Reader(buf);
  const out: TxnResponseLite = { revision: '0', succeeded: false, responses: [] };
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === 2) { const [s, e] = r.bytes(); r.pos = s; out.revision = decodeHeaderRevision(r, e); r.pos = e; }
    else if (field === 2 && wt === 0) out.succeeded = r.varint() !== 0;
    else if (field === 3 && wt === 2) {
      const [s, e] = r.bytes();
      r.pos = s;
      r.end = e;
      let range: RangeResponseLite = { revision: '0', kvs: [], more: false };
      while (r.pos < e) {
        const t2 = r.varint();
        if (t2 === ((1 << 3) | 2)) { const [s2, e2] = r.bytes(); r.pos = s2; range = decodeRangeAt(r, e2); r.pos = e2; }
        else r.skip(t2 & 7);
      }
      r.end = buf.length;
      r.pos = e;
      out.responses.push(range);
    } else r.skip(wt);
  }
  return out;
}

/** AuthenticateRequest. */
export function encodeAuthenticate(name: string, password: string): Buffer {
  const out: number[] = [];
  lenField(out, 1, Buffer.from(name, 'utf8'));
  lenField(out, 2, Buffer.from(password, 'utf8'));
  return Buffer.from(out);
}

/** AuthenticateResponse's token. Throws on a malformed message. */
export function decodeAuthenticateResponse(buf: Buffer): string {
  const r = new Reader(buf);
  let token = '';
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === ((2 << 3) | 2)) { const [s, e] = r.bytes(); token = buf.toString('utf8', s, e); }
    else r.skip(tag & 7);
  }
  return token;
}
