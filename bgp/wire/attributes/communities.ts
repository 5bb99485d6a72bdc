// The community attributes: COMMUNITIES (type 8, RFC 1997), EXTENDED_COMMUNITIES
// (type 16, RFC 4360), LARGE_COMMUNITY (type 32, RFC 8092). All optional
// transitive; each a list of fixed-size values (4, 8 and 12 octets).
import { AttrType, UpdateSubcode } from '../constants.js';
import { beginAttr, checkU32, endAttr, OPTIONAL_TRANSITIVE, readU32, writeU32 } from './common.js';
import type { DecodeState } from './common.js';

export function decodeCommunities(st: DecodeState): void {
  const len = st.valueLen;
  // RFC 7606 §7.8: malformed unless the length is a non-zero multiple of 4; treat-as-withdraw
  if (len === 0 || len % 4 !== 0) {
    st.fail(UpdateSubcode.OptionalAttributeError, 'treat-as-withdraw', `COMMUNITIES length ${len} is not a non-zero multiple of 4`);
    return;
  }
  const out = new Array<number>(len / 4);
  const b = st.buf;
  for (let i = 0, p = st.valueStart; i < out.length; i++, p += 4) out[i] = ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  st.attrs.communities = out;
}

export function decodeExtendedCommunities(st: DecodeState): void {
  const len = st.valueLen;
  // RFC 7606 §7.14: malformed unless the length is a non-zero multiple of 8; treat-as-withdraw
  if (len === 0 || len % 8 !== 0) {
    st.fail(UpdateSubcode.OptionalAttributeError, 'treat-as-withdraw', `EXTENDED_COMMUNITIES length ${len} is not a non-zero multiple of 8`);
    return;
  }
  const out: Buffer[] = [];
  for (let p = st.valueStart; p < st.valueStart + len; p += 8) out.push(Buffer.from(st.buf.subarray(p, p + 8)));
  st.attrs.extendedCommunities = out;
}

export function decodeLargeCommunities(st: DecodeState): void {
  const len = st.valueLen;
  // RFC 8092 §6: malformed unless the length is a non-zero multiple of 12; treat-as-withdraw.
  // Duplicate values are not an error (same section).
  if (len === 0 || len % 12 !== 0) {
    st.fail(UpdateSubcode.OptionalAttributeError, 'treat-as-withdraw', `LARGE_COMMUNITY length ${len} is not a non-zero multiple of 12`);
    return;
  }
  const out: (readonly [number, number, number])[] = [];
  const b = st.buf;
  for (let p = st.valueStart; p < st.valueStart + len; p += 12) out.push([readU32(b, p), readU32(b, p + 4), readU32(b, p + 8)]);
  st.attrs.largeCommunities = out;
}

export function writeCommunities(buf: Buffer, off: number, list: readonly number[]): number {
  let v = beginAttr(off);
  for (const c of list) {
    checkU32(c, 'community');
    v = writeU32(buf, v, c);
  }
  return endAttr(buf, off, OPTIONAL_TRANSITIVE, AttrType.COMMUNITIES, v);
}

export function writeExtendedCommunities(buf: Buffer, off: number, list: readonly Buffer[]): number {
  let v = beginAttr(off);
  for (const c of list) {
    if (c.length !== 8) throw new RangeError(`extended community of ${c.length} octets, expected 8`);
    buf.set(c, v);
    v += 8;
  }
  return endAttr(buf, off, OPTIONAL_TRANSITIVE, AttrType.EXTENDED_COMMUNITIES, v);
}

export function writeLargeCommunities(buf: Buffer, off: number, list: readonly (readonly [number, number, number])[]): number {
  let v = beginAttr(off);
  for (const [g, l1, l2] of list) {
    checkU32(g, 'large community global administrator');
    checkU32(l1, 'large community local data 1');
    checkU32(l2, 'large community local data 2');
    v = writeU32(buf, writeU32(buf, writeU32(buf, v, g), l1), l2);
  }
  return endAttr(buf, off, OPTIONAL_TRANSITIVE, AttrType.LARGE_COMMUNITY, v);
}
