// AS_PATH (type 2, well-known mandatory; RFC 4271 §4.3 b) and AS4_PATH (type
// 17, optional transitive; RFC 6793 §3). A path is a list of segments:
// <type octet><count octet><count AS numbers>, each AS 2 octets on a session
// without the 4-octet AS capability and 4 octets with it (RFC 6793 §4.1);
// AS4_PATH always carries 4-octet AS numbers (RFC 6793 §3).
// Segment types: AS_SET 1, AS_SEQUENCE 2 (RFC 4271), AS_CONFED_SEQUENCE 3,
// AS_CONFED_SET 4 (RFC 5065 §3).
import { AS_TRANS, AttrType, UpdateSubcode } from '../constants.js';
import type { AsPathSegment } from '../types.js';
import { beginAttr, checkU32, endAttr, OPTIONAL_TRANSITIVE, WELL_KNOWN } from './common.js';
import type { DecodeState } from './common.js';

/**
 * Parse segments from buf[pos, pos+len). Returns the segments, or a reason
 * string when the path is malformed by RFC 7606 §7.2: an unknown segment type,
 * a segment overrunning the attribute, a single octet left over, or a segment
 * of length zero.
 */
export function readSegments(buf: Uint8Array, pos: number, len: number, asnSize: 2 | 4): AsPathSegment[] | string {
  const end = pos + len;
  const segs: AsPathSegment[] = [];
  while (pos < end) {
    if (end - pos < 2) return 'a single octet is left after the last segment';
    const type = buf[pos]!;
    const count = buf[pos + 1]!;
    if (type < 1 || type > 4) return `unknown segment type ${type}`;
    if (count === 0) return 'a segment of length zero';
    pos += 2;
    if (pos + count * asnSize > end) return `a segment of ${count} AS numbers overruns the attribute`;
    const asns = new Array<number>(count);
    if (asnSize === 4) {
      for (let i = 0; i < count; i++, pos += 4) asns[i] = ((buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!) >>> 0;
    } else {
      for (let i = 0; i < count; i++, pos += 2) asns[i] = (buf[pos]! << 8) | buf[pos + 1]!;
    }
    segs.push({ type: type as 1 | 2 | 3 | 4, asns });
  }
  return segs;
}

/**
 * Write segments at `off`. With 2-octet AS numbers, an AS that does not fit is
 * written as AS_TRANS (RFC 6793 §4.2.2). A segment holds at most 255 AS
 * numbers (one count octet), so a longer one is written as consecutive
 * segments of the same type.
 */
export function writeSegments(buf: Buffer, off: number, segs: readonly AsPathSegment[], asnSize: 2 | 4): number {
  for (const seg of segs) {
    if (seg.type < 1 || seg.type > 4) throw new RangeError(`AS_PATH segment type ${seg.type} is not 1..4`);
    const asns = seg.asns;
    if (asns.length === 0) throw new RangeError('AS_PATH segment with no AS numbers (RFC 7606 §7.2 calls it malformed)');
    for (let from = 0; from < asns.length; from += 255) {
      const to = Math.min(asns.length, from + 255);
      buf[off++] = seg.type;
      buf[off++] = to - from;
      for (let i = from; i < to; i++) {
        const asn = asns[i]!;
        checkU32(asn, 'AS number');
        if (asnSize === 4) {
          buf[off++] = asn >>> 24;
          buf[off++] = (asn >>> 16) & 255;
          buf[off++] = (asn >>> 8) & 255;
          buf[off++] = asn & 255;
        } else {
          const a = asn > 0xffff ? AS_TRANS : asn;
          buf[off++] = a >> 8;
          buf[off++] = a & 255;
        }
      }
      if (off > buf.length) throw new RangeError('AS_PATH too long to encode');
    }
  }
  return off;
}

export function decodeAsPath(st: DecodeState): void {
  const segs = readSegments(st.buf, st.valueStart, st.valueLen, st.ctx.as4 ? 4 : 2);
  if (typeof segs === 'string') {
    // RFC 7606 §7.2: malformed AS_PATH is treat-as-withdraw; RFC 4271 §6.3
    // Malformed AS_PATH carries no data
    st.fail(UpdateSubcode.MalformedAsPath, 'treat-as-withdraw', `AS_PATH malformed: ${segs}`, Buffer.alloc(0));
    return;
  }
  st.attrs.asPath = segs;
}

export function decodeAs4Path(st: DecodeState): void {
  // RFC 6793 §6 (as revised by RFC 7606 §7 intro): AS4_PATH received from a
  // NEW (4-octet) speaker is discarded without further ado
  if (st.ctx.as4) return;
  const segs = readSegments(st.buf, st.valueStart, st.valueLen, 4);
  if (typeof segs === 'string') {
    // RFC 6793 §6: a malformed AS4_PATH is handled by attribute discard
    st.fail(UpdateSubcode.OptionalAttributeError, 'attribute-discard', `AS4_PATH malformed: ${segs}`);
    return;
  }
  st.as4Path = segs;
}

export function writeAsPath(buf: Buffer, off: number, segs: readonly AsPathSegment[], as4: boolean): number {
  const v = beginAttr(off);
  return endAttr(buf, off, WELL_KNOWN, AttrType.AS_PATH, writeSegments(buf, v, segs, as4 ? 4 : 2));
}

export function writeAs4Path(buf: Buffer, off: number, segs: readonly AsPathSegment[]): number {
  const v = beginAttr(off);
  return endAttr(buf, off, OPTIONAL_TRANSITIVE, AttrType.AS4_PATH, writeSegments(buf, v, segs, 4));
}
