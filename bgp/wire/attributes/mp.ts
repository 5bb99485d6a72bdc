// MP_REACH_NLRI (type 14) and MP_UNREACH_NLRI (type 15), both optional
// non-transitive (RFC 4760 §3, §4):
//   MP_REACH:   AFI(2) SAFI(1) NextHopLen(1) NextHop(var) Reserved(1) NLRI(var)
//   MP_UNREACH: AFI(2) SAFI(1) Withdrawn(var)
// Next hops: IPv6 unicast carries a global address, optionally followed by a
// link-local one (16 or 32 octets, RFC 2545 §3); IPv4 unicast carries 4 octets
// or, with the extended next hop capability, an IPv6 next hop of 16 or 32
// octets (RFC 8950 §3).
//
// skein always writes these with the Extended Length form, whatever the value
// length (allowed by RFC 4271 §4.3): the packer fills the NLRI after writing
// the header, and a fixed header size keeps that a single pass.
import { Afi, AttrType, familyKey, Safi, UpdateSubcode } from '../constants.js';
import { readPrefixes4, readPrefixes6, writePrefixes } from '../nlri.js';
import { ipv4ToString, ipv6ToString, isIpv4, parseIpv4, parseIpv6 } from '../prefix.js';
import type { CodecContext, MpReach, MpUnreach, PrefixList } from '../types.js';
import { OPTIONAL_NON_TRANSITIVE, readU32, writeExtendedHeader, writeU32 } from './common.js';
import type { DecodeState } from './common.js';

const supported = (afi: number, safi: number): boolean => (afi === Afi.IPv4 || afi === Afi.IPv6) && safi === Safi.Unicast;

/** Read a prefix list of a supported family, or return a reason. */
function readList(st: DecodeState, afi: 1 | 2, safi: number, pos: number, end: number): PrefixList | string {
  const addPath = st.ctx.addPathRx.has(familyKey(afi, safi));
  if (afi === 1) return readPrefixes4(st.buf, pos, end, addPath, safi);
  const pathIds = addPath ? [] : null;
  const prefixes: string[] = [];
  const err = readPrefixes6(st.buf, pos, end, pathIds, prefixes);
  return err ?? { afi, safi, prefixes, pathIds };
}

/**
 * RFC 7606 §5.3 and §7.11: when the MP attribute cannot be parsed its NLRI
 * cannot be located, so treat-as-withdraw is impossible (§3.i). The RFC
 * allows "AFI/SAFI disable" or "session reset"; skein resets, since it
 * negotiates only the two unicast families and a half-disabled session would
 * leave stale routes in the other direction. RFC 4760 §7: Optional Attribute
 * Error, data = the attribute.
 */
function mpFatal(st: DecodeState, what: string, reason: string): void {
  st.fail(UpdateSubcode.OptionalAttributeError, 'session-reset', `${what}: ${reason}`);
}

export function decodeMpReach(st: DecodeState): void {
  const b = st.buf;
  const p = st.valueStart;
  const end = p + st.valueLen;
  if (st.valueLen < 5) return mpFatal(st, 'MP_REACH_NLRI', `length ${st.valueLen} is too short for AFI, SAFI, next hop length and reserved octet`);
  const afi = (b[p]! << 8) | b[p + 1]!;
  const safi = b[p + 2]!;
  const nhLen = b[p + 3]!;
  if (p + 4 + nhLen + 1 > end) return mpFatal(st, 'MP_REACH_NLRI', `next hop length ${nhLen} runs past the attribute`);
  if (!supported(afi, safi)) {
    // Neither IPv4 nor IPv6 unicast: skein never negotiates another family
    // (RFC 4760 §6), so it cannot hold routes of it; drop the attribute, keep
    // the rest of the UPDATE, and say so.
    st.fail(UpdateSubcode.OptionalAttributeError, 'attribute-discard', `MP_REACH_NLRI for unsupported AFI ${afi} SAFI ${safi} ignored`);
    return;
  }
  const nh = p + 4;
  let nextHops: string[];
  // RFC 7606 §7.11: a next hop length inconsistent with what was expected makes the attribute malformed, and since
  // the next hop precedes the NLRI, the NLRI cannot be located reliably: session reset (or AFI/SAFI disable) is the
  // only choice. For IPv4 NLRI "expected" is 4 octets unless we advertised the extended next hop capability for the
  // family (RFC 8950 §3: only then may the peer send an IPv6 next hop); accepting it anyway would install a route
  // whose gateway the kernel cannot use for IPv4 and pass it on to peers that cannot either.
  if (afi === Afi.IPv4 && nhLen !== 4 && !(st.ctx.extendedNextHopRx?.has(familyKey(afi, safi)) ?? false)) {
    return mpFatal(st, 'MP_REACH_NLRI', `next hop length ${nhLen} for IPv4 NLRI needs the extended next hop capability (RFC 8950), which was not negotiated; expected 4`);
  }
  if (afi === Afi.IPv6 || nhLen !== 4) {
    // RFC 2545 §3 (IPv6), RFC 8950 §3 (IPv4 NLRI over an IPv6 next hop)
    if (nhLen === 16) nextHops = [ipv6ToString(b, nh)];
    else if (nhLen === 32) nextHops = [ipv6ToString(b, nh), ipv6ToString(b, nh + 16)];
    else return mpFatal(st, 'MP_REACH_NLRI', `next hop length ${nhLen} is not valid for AFI ${afi} (expected ${afi === 1 ? '4, 16 or 32' : '16 or 32'})`);
  } else {
    nextHops = [ipv4ToString(readU32(b, nh))];
  }
  // the reserved octet (RFC 4760 §3) is ignored on receipt
  const list = readList(st, afi as 1 | 2, safi, nh + nhLen + 1, end);
  if (typeof list === 'string') return mpFatal(st, 'MP_REACH_NLRI', list);
  st.mpReach = { afi, safi, nextHops, nlri: list };
}

export function decodeMpUnreach(st: DecodeState): void {
  const b = st.buf;
  const p = st.valueStart;
  if (st.valueLen < 3) return mpFatal(st, 'MP_UNREACH_NLRI', `length ${st.valueLen} is too short for AFI and SAFI`);
  const afi = (b[p]! << 8) | b[p + 1]!;
  const safi = b[p + 2]!;
  if (!supported(afi, safi)) {
    st.fail(UpdateSubcode.OptionalAttributeError, 'attribute-discard', `MP_UNREACH_NLRI for unsupported AFI ${afi} SAFI ${safi} ignored`);
    return;
  }
  const list = readList(st, afi as 1 | 2, safi, p + 3, p + st.valueLen);
  if (typeof list === 'string') return mpFatal(st, 'MP_UNREACH_NLRI', list);
  st.mpUnreach = { afi, safi, withdrawn: list };
}

/** Octets the next hop field takes, checked against the family (see decodeMpReach). */
export function nextHopSize(afi: number, nextHops: readonly string[]): number {
  if (nextHops.length < 1 || nextHops.length > 2) throw new RangeError(`MP_REACH_NLRI needs one or two next hops, got ${nextHops.length}`);
  if (afi === Afi.IPv4 && nextHops.length === 1 && isIpv4(nextHops[0]!)) return 4;
  return 16 * nextHops.length;
}

/**
 * Write the MP_REACH_NLRI header and next hop at `off`; returns where the NLRI
 * starts. Call finishMp with the NLRI end to fill in the attribute length.
 */
export function writeMpReachHead(buf: Buffer, off: number, afi: number, safi: number, nextHops: readonly string[]): number {
  const nhLen = nextHopSize(afi, nextHops);
  let v = writeExtendedHeader(buf, off, OPTIONAL_NON_TRANSITIVE, AttrType.MP_REACH_NLRI, 0);
  buf[v++] = afi >> 8;
  buf[v++] = afi & 255;
  buf[v++] = safi;
  buf[v++] = nhLen;
  if (nhLen === 4) v = writeU32(buf, v, parseIpv4(nextHops[0]!));
  else
    for (const nh of nextHops) {
      parseIpv6(nh, buf, v);
      v += 16;
    }
  buf[v++] = 0; // reserved (RFC 4760 §3)
  return v;
}

export function writeMpUnreachHead(buf: Buffer, off: number, afi: number, safi: number): number {
  let v = writeExtendedHeader(buf, off, OPTIONAL_NON_TRANSITIVE, AttrType.MP_UNREACH_NLRI, 0);
  buf[v++] = afi >> 8;
  buf[v++] = afi & 255;
  buf[v++] = safi;
  return v;
}

/** Fill in the length of an MP attribute begun at `off` whose value ends at `end`. */
export function finishMp(buf: Buffer, off: number, end: number): number {
  const len = end - off - 4;
  if (len > 0xffff) throw new RangeError(`MP attribute value of ${len} octets exceeds 65535`);
  buf[off + 2] = len >> 8;
  buf[off + 3] = len & 255;
  return end;
}

function checkList(afi: number, safi: number, list: PrefixList, what: string): void {
  if (list.afi !== afi || list.safi !== safi) throw new RangeError(`${what} is AFI ${afi} SAFI ${safi} but its prefix list is AFI ${list.afi} SAFI ${list.safi}`);
}

export function writeMpReach(buf: Buffer, off: number, r: MpReach, ctx: CodecContext): number {
  checkList(r.afi, r.safi, r.nlri, 'MP_REACH_NLRI');
  const v = writeMpReachHead(buf, off, r.afi, r.safi, r.nextHops);
  return finishMp(buf, off, writePrefixes(buf, v, r.nlri, ctx.addPathTx.has(familyKey(r.afi, r.safi))));
}

export function writeMpUnreach(buf: Buffer, off: number, u: MpUnreach, ctx: CodecContext): number {
  checkList(u.afi, u.safi, u.withdrawn, 'MP_UNREACH_NLRI');
  const v = writeMpUnreachHead(buf, off, u.afi, u.safi);
  return finishMp(buf, off, writePrefixes(buf, v, u.withdrawn, ctx.addPathTx.has(familyKey(u.afi, u.safi))));
}
