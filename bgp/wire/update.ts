// UPDATE messages (RFC 4271 §4.3):
//   Withdrawn Routes Length (2) | Withdrawn Routes | Total Path Attribute Length (2)
//   | Path Attributes | NLRI (the rest of the message)
// decodeUpdate/encodeUpdate for one message; isEndOfRib/endOfRib for the
// graceful-restart marker (RFC 4724 §2); packUpdates/packWithdrawals to turn
// one attribute set and many prefixes into as few messages as the negotiated
// maximum length allows.
import { decodeAttributes, DecodeState, finishMp, SCRATCH_SIZE, writeAttributes, writeMpReachHead, writeMpUnreachHead } from './attributes/index.js';
import { fromAs2 } from './as4.js';
import { AttrType, ErrorCode, familyKey, HEADER_LEN, IPV4_UNICAST, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, MessageType, UpdateSubcode } from './constants.js';
import { BgpError } from './errors.js';
import { writeHeader } from './header.js';
import { emptyList, prefix4WireSize, prefix6WireSize, prefixListSize, readPrefixes4, writePrefix4, writePrefix6, writePrefixes } from './nlri.js';
import type { CodecContext, MpUnreach, PathAttributes, PrefixList, UpdateMessage } from './types.js';

/** Largest message the session allows (RFC 4271 §4.1, RFC 8654 §4). */
export function maxMessageLength(ctx: CodecContext): number {
  return ctx.extendedMessage ? MAX_EXTENDED_MESSAGE_LEN : MAX_MESSAGE_LEN;
}

function malformed(subcode: number, reason: string): BgpError {
  return new BgpError(ErrorCode.UpdateMessage, subcode, reason, Buffer.alloc(0), 'session-reset');
}

/**
 * Decode an UPDATE body (the octets after the 19-octet header). Throws a
 * BgpError only when the session must be reset; the RFC 7606 outcomes that
 * keep it up are in the result's errorAction/errors.
 */
export function decodeUpdate(body: Buffer, ctx: CodecContext): UpdateMessage {
  const len = body.length;
  // RFC 4271 §6.3: Withdrawn Routes Length or Total Attribute Length too large → Malformed Attribute List
  if (len < 4) throw malformed(UpdateSubcode.MalformedAttributeList, `UPDATE body of ${len} octets is shorter than its two length fields`);
  const wlen = (body[0]! << 8) | body[1]!;
  if (2 + wlen + 2 > len) throw malformed(UpdateSubcode.MalformedAttributeList, `Withdrawn Routes Length ${wlen} runs past the message`);
  const attrStart = 4 + wlen;
  const alen = (body[2 + wlen]! << 8) | body[3 + wlen]!;
  const attrEnd = attrStart + alen;
  if (attrEnd > len) throw malformed(UpdateSubcode.MalformedAttributeList, `Total Path Attribute Length ${alen} runs past the message`);

  // RFC 7606 §5.3: a syntactically incorrect Withdrawn Routes or NLRI field
  // (a length over 32, a prefix past the field's end) leaves nothing to
  // withdraw reliably: session reset. RFC 4271 §6.3 names the NLRI case
  // Invalid Network Field; the same subcode serves the withdrawn field.
  const addPath4 = ctx.addPathRx.has(IPV4_UNICAST);
  const withdrawn = readPrefixes4(body, 2, 2 + wlen, addPath4);
  if (typeof withdrawn === 'string') throw malformed(UpdateSubcode.InvalidNetworkField, `Withdrawn Routes: ${withdrawn}`);
  const nlri = readPrefixes4(body, attrEnd, len, addPath4);
  if (typeof nlri === 'string') throw malformed(UpdateSubcode.InvalidNetworkField, `NLRI: ${nlri}`);
  const nAnnounced = nlri.prefixes.length;

  const st = new DecodeState(body, ctx);
  if (alen > 0) decodeAttributes(st, attrStart, attrEnd, withdrawn.prefixes.length > 0 || nAnnounced > 0);
  const attrs = st.attrs;

  // RFC 6793 §4.2.3: on a 2-octet AS session, merge AS4_PATH/AS4_AGGREGATOR in
  if (!ctx.as4 && (st.as4Path !== undefined || st.as4Aggregator !== undefined)) {
    const r = fromAs2(attrs.asPath, attrs.aggregator, st.as4Path, st.as4Aggregator);
    if (r.asPath !== undefined) attrs.asPath = r.asPath;
    if (r.aggregator !== undefined) attrs.aggregator = r.aggregator;
  }
  if (st.unknown !== undefined) attrs.unknown = st.unknown;

  // RFC 4271 §6.3 / RFC 7606 §3.d: a missing well-known mandatory attribute
  // is treat-as-withdraw; the data is the missing type code. ORIGIN and
  // AS_PATH are needed whenever routes are announced; NEXT_HOP only with the
  // IPv4 NLRI field (RFC 4760 §3: MP_REACH_NLRI carries its own next hop).
  // An attribute that was present but malformed has already been reported.
  const announces = nAnnounced > 0 || (st.mpReach !== undefined && st.mpReach.nlri.prefixes.length > 0);
  if (announces) {
    const required = nAnnounced > 0 ? [AttrType.ORIGIN, AttrType.AS_PATH, AttrType.NEXT_HOP] : [AttrType.ORIGIN, AttrType.AS_PATH];
    for (const t of required) {
      if (st.seen[t] === 0) st.fail(UpdateSubcode.MissingWellKnownAttribute, 'treat-as-withdraw', `missing well-known attribute type ${t}`, Buffer.of(t));
    }
  }

  const msg: {
    -readonly [K in keyof UpdateMessage]: UpdateMessage[K];
  } = {
    type: 'UPDATE',
    withdrawn,
    attributes: attrs,
    nlri,
  };
  if (st.mpReach !== undefined) msg.mpReach = st.mpReach;
  if (st.mpUnreach !== undefined) msg.mpUnreach = st.mpUnreach;
  if (st.action !== undefined) msg.errorAction = st.action;
  if (st.errors !== undefined) msg.errors = st.errors;
  return msg;
}

// One scratch buffer for the attribute section: encoding is synchronous, so it
// is never shared between two calls in flight.
const scratch = Buffer.alloc(SCRATCH_SIZE);

function ipv4List(list: PrefixList, what: string): PrefixList {
  if (list.afi !== 1) throw new RangeError(`the ${what} field carries IPv4 prefixes only (RFC 4271 §4.3); use MP_${what === 'NLRI' ? 'REACH' : 'UNREACH'}_NLRI for IPv6`);
  return list;
}

/** Encode a whole UPDATE (header included). Throws an Error when it exceeds the session's maximum length. */
export function encodeUpdate(msg: Omit<UpdateMessage, 'type'> | UpdateMessage, ctx: CodecContext): Buffer {
  const max = maxMessageLength(ctx);
  const addPath4 = ctx.addPathTx.has(IPV4_UNICAST);
  const withdrawn = ipv4List(msg.withdrawn, 'Withdrawn Routes');
  const nlri = ipv4List(msg.nlri, 'NLRI');
  const wsize = prefixListSize(withdrawn, addPath4);
  const nsize = prefixListSize(nlri, addPath4);
  const alen = writeAttributes(scratch, 0, msg.attributes, ctx, msg.mpReach, msg.mpUnreach);
  const total = HEADER_LEN + 2 + wsize + 2 + alen + nsize;
  if (total > max) {
    throw new RangeError(`UPDATE of ${total} octets exceeds the ${max}-octet maximum of this session${ctx.extendedMessage ? '' : ' (no extended message capability, RFC 8654)'}`);
  }
  const buf = Buffer.allocUnsafe(total);
  writeHeader(buf, 0, total, MessageType.UPDATE);
  let off = HEADER_LEN;
  buf[off++] = wsize >> 8;
  buf[off++] = wsize & 255;
  off = writePrefixes(buf, off, withdrawn, addPath4);
  buf[off++] = alen >> 8;
  buf[off++] = alen & 255;
  scratch.copy(buf, off, 0, alen);
  writePrefixes(buf, off + alen, nlri, addPath4);
  return buf;
}

// ------------------------------------------------------------ End-of-RIB

/**
 * RFC 4724 §2: the End-of-RIB marker is an UPDATE with nothing in it (IPv4
 * unicast), or with only an empty MP_UNREACH_NLRI for the family.
 */
export function isEndOfRib(u: UpdateMessage): { afi: number; safi: number } | undefined {
  if (u.withdrawn.prefixes.length > 0 || u.nlri.prefixes.length > 0 || u.mpReach !== undefined || u.errors !== undefined) return undefined;
  const a = u.attributes as Record<string, unknown>;
  for (const k in a) if (a[k] !== undefined) return undefined;
  if (u.mpUnreach === undefined) return { afi: 1, safi: 1 };
  if (u.mpUnreach.withdrawn.prefixes.length > 0) return undefined;
  return { afi: u.mpUnreach.afi, safi: u.mpUnreach.safi };
}

export function endOfRib(afi: number, safi: number, ctx: CodecContext): Buffer {
  const empty4 = emptyList(1);
  if (afi === 1 && safi === 1) return encodeUpdate({ withdrawn: empty4, attributes: {}, nlri: empty4 }, ctx);
  if (afi !== 1 && afi !== 2) throw new RangeError(`End-of-RIB for AFI ${afi} is not supported`);
  const mpUnreach: MpUnreach = { afi, safi, withdrawn: emptyList(afi, safi) };
  return encodeUpdate({ withdrawn: empty4, attributes: {}, nlri: empty4, mpUnreach }, ctx);
}

// ------------------------------------------------------------ the packer

/** Wire size of prefix i of a list, path id included. */
function sizeAt(list: PrefixList, i: number, addPath: boolean): number {
  const base = list.afi === 1 ? prefix4WireSize(list.prefixes[i]!) : prefix6WireSize(list.prefixes[i]!);
  return addPath ? base + 4 : base;
}

/**
 * Split [0, n) into runs whose summed sizes fit in `room`, greedily and in
 * order, so no message could have taken the next prefix (RFC 4271 §4.3 only
 * bounds the message, so filling each to the limit is the fewest messages).
 */
function runs(list: PrefixList, addPath: boolean, room: number): { from: number; to: number; size: number }[] {
  const out: { from: number; to: number; size: number }[] = [];
  const n = list.prefixes.length;
  let from = 0;
  let size = 0;
  for (let i = 0; i < n; i++) {
    const s = sizeAt(list, i, addPath);
    if (s > room) throw new RangeError(`a prefix of ${s} octets cannot fit in ${room} octets left by the attributes`);
    if (size + s > room) {
      out.push({ from, to: i, size });
      from = i;
      size = 0;
    }
    size += s;
  }
  if (n > from) out.push({ from, to: n, size });
  return out;
}

function writeIds(buf: Buffer, off: number, id: number): number {
  buf[off] = id >>> 24;
  buf[off + 1] = (id >>> 16) & 255;
  buf[off + 2] = (id >>> 8) & 255;
  buf[off + 3] = id & 255;
  return off + 4;
}

/** Write prefixes [from, to) of one family (inlined loops; no allocation per prefix). */
function writeRun(buf: Buffer, off: number, list: PrefixList, addPath: boolean, from: number, to: number): number {
  const ids = list.pathIds;
  if (list.afi === 1) {
    const ps = list.prefixes;
    if (!addPath) for (let i = from; i < to; i++) off = writePrefix4(buf, off, ps[i]!);
    else for (let i = from; i < to; i++) off = writePrefix4(buf, writeIds(buf, off, ids?.[i] ?? 0), ps[i]!);
  } else {
    const ps = list.prefixes;
    for (let i = from; i < to; i++) off = writePrefix6(buf, addPath ? writeIds(buf, off, ids?.[i] ?? 0) : off, ps[i]!);
  }
  return off;
}

function limit(ctx: CodecContext, maxLen: number | undefined): number {
  const max = maxLen ?? maxMessageLength(ctx);
  if (!Number.isInteger(max) || max < HEADER_LEN + 4 || max > MAX_EXTENDED_MESSAGE_LEN) throw new RangeError(`maximum message length ${max} is out of range`);
  return max;
}

/**
 * Announce `nlri` with one attribute set in as few UPDATEs as fit `maxLen`
 * (default: the session's maximum). The attributes are encoded once. IPv4
 * prefixes go in the NLRI field; IPv6 prefixes (or IPv4 with `mpNextHops`,
 * RFC 8950) go in MP_REACH_NLRI, first in the attribute section (RFC 7606
 * §5.1), with `mpNextHops` as its next hop, and without NEXT_HOP (RFC 4760 §3
 * SHOULD NOT).
 */
export function packUpdates(attrs: PathAttributes, nlri: PrefixList, ctx: CodecContext, maxLen?: number, mpNextHops?: readonly string[]): Buffer[] {
  const max = limit(ctx, maxLen);
  if (nlri.prefixes.length === 0) return [];
  const fam = familyKey(nlri.afi, nlri.safi);
  const addPath = ctx.addPathTx.has(fam);
  const mp = nlri.afi !== 1 || nlri.safi !== 1 || mpNextHops !== undefined;
  // RFC 4271 §5: ORIGIN and AS_PATH go with every announcement, NEXT_HOP with
  // the IPv4 NLRI field; a receiver would treat-as-withdraw without them (RFC 7606 §3.d)
  const missing = [attrs.origin === undefined && 'ORIGIN', attrs.asPath === undefined && 'AS_PATH', !mp && attrs.nextHop === undefined && 'NEXT_HOP'].filter(Boolean);
  if (missing.length > 0) throw new RangeError(`cannot announce routes without ${missing.join(', ')}`);
  if (!mp) {
    const alen = writeAttributes(scratch, 0, attrs, ctx);
    const attrBytes = Buffer.from(scratch.subarray(0, alen));
    const fixed = HEADER_LEN + 2 + 2 + alen;
    if (fixed >= max) throw new RangeError(`the attributes alone (${fixed} octets with the UPDATE fields) leave no room under ${max}`);
    return runs(nlri, addPath, max - fixed).map(({ from, to, size }) => {
      const total = fixed + size;
      const buf = Buffer.allocUnsafe(total);
      writeHeader(buf, 0, total, MessageType.UPDATE);
      buf[HEADER_LEN] = 0;
      buf[HEADER_LEN + 1] = 0;
      buf[HEADER_LEN + 2] = alen >> 8;
      buf[HEADER_LEN + 3] = alen & 255;
      attrBytes.copy(buf, HEADER_LEN + 4);
      writeRun(buf, HEADER_LEN + 4 + alen, nlri, addPath, from, to);
      return buf;
    });
  }
  if (mpNextHops === undefined) throw new RangeError(`announcing AFI ${nlri.afi} SAFI ${nlri.safi} needs the MP_REACH_NLRI next hop(s)`);
  const rest: PathAttributes = { ...attrs };
  delete (rest as { nextHop?: string }).nextHop;
  const alen = writeAttributes(scratch, 0, rest, ctx);
  const attrBytes = Buffer.from(scratch.subarray(0, alen));
  // the MP_REACH_NLRI head: 4-octet attribute header, AFI, SAFI, next hop length, next hop, reserved
  const headLen = writeMpReachHead(scratch, 0, nlri.afi, nlri.safi, mpNextHops);
  const head = Buffer.from(scratch.subarray(0, headLen));
  const fixed = HEADER_LEN + 2 + 2 + headLen + alen;
  // the attribute value itself is bounded by its 2-octet length
  const room = Math.min(max - fixed, 0xffff - (headLen - 4));
  if (room <= 0) throw new RangeError(`the attributes alone leave no room under ${max}`);
  return runs(nlri, addPath, room).map(({ from, to, size }) => {
    const total = fixed + size;
    const buf = Buffer.allocUnsafe(total);
    writeHeader(buf, 0, total, MessageType.UPDATE);
    const attrSection = headLen + size + alen;
    buf[HEADER_LEN] = 0;
    buf[HEADER_LEN + 1] = 0;
    buf[HEADER_LEN + 2] = attrSection >> 8;
    buf[HEADER_LEN + 3] = attrSection & 255;
    const mpAt = HEADER_LEN + 4;
    head.copy(buf, mpAt);
    const end = writeRun(buf, mpAt + headLen, nlri, addPath, from, to);
    finishMp(buf, mpAt, end);
    attrBytes.copy(buf, end);
    return buf;
  });
}

/**
 * Withdraw `list` in as few UPDATEs as fit: IPv4 unicast in the Withdrawn
 * Routes field (RFC 4271 §4.3), anything else in MP_UNREACH_NLRI (RFC 4760 §4).
 */
export function packWithdrawals(list: PrefixList, ctx: CodecContext, maxLen?: number): Buffer[] {
  const max = limit(ctx, maxLen);
  if (list.prefixes.length === 0) return [];
  const addPath = ctx.addPathTx.has(familyKey(list.afi, list.safi));
  if (list.afi === 1 && list.safi === 1) {
    const fixed = HEADER_LEN + 2 + 2;
    return runs(list, addPath, max - fixed).map(({ from, to, size }) => {
      const total = fixed + size;
      const buf = Buffer.allocUnsafe(total);
      writeHeader(buf, 0, total, MessageType.UPDATE);
      buf[HEADER_LEN] = size >> 8;
      buf[HEADER_LEN + 1] = size & 255;
      const end = writeRun(buf, HEADER_LEN + 2, list, addPath, from, to);
      buf[end] = 0;
      buf[end + 1] = 0;
      return buf;
    });
  }
  const headLen = 4 + 3; // extended attribute header, AFI, SAFI
  const fixed = HEADER_LEN + 2 + 2 + headLen;
  const room = Math.min(max - fixed, 0xffff - 3);
  return runs(list, addPath, room).map(({ from, to, size }) => {
    const total = fixed + size;
    const buf = Buffer.allocUnsafe(total);
    writeHeader(buf, 0, total, MessageType.UPDATE);
    buf[HEADER_LEN] = 0;
    buf[HEADER_LEN + 1] = 0;
    const attrSection = headLen + size;
    buf[HEADER_LEN + 2] = attrSection >> 8;
    buf[HEADER_LEN + 3] = attrSection & 255;
    const mpAt = HEADER_LEN + 4;
    const v = writeMpUnreachHead(buf, mpAt, list.afi, list.safi);
    finishMp(buf, mpAt, writeRun(buf, v, list, addPath, from, to));
    return buf;
  });
}

