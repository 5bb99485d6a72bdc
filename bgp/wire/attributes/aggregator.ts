// AGGREGATOR (type 7, optional transitive; RFC 4271 §4.3 g): the aggregating
// AS and its BGP identifier as an IPv4 address; 6 octets on a 2-octet AS
// session, 8 octets with the 4-octet AS capability (RFC 6793 §4.1).
// AS4_AGGREGATOR (type 18, optional transitive; RFC 6793 §3): always 8 octets.
import { AS_TRANS, AttrType, UpdateSubcode } from '../constants.js';
import { ipv4ToString, parseIpv4 } from '../prefix.js';
import type { Aggregator } from '../types.js';
import { beginAttr, checkU32, endAttr, OPTIONAL_TRANSITIVE, readU32, writeU32 } from './common.js';
import type { DecodeState } from './common.js';

export function decodeAggregator(st: DecodeState): void {
  const want = st.ctx.as4 ? 8 : 6;
  // RFC 7606 §7.7: AGGREGATOR of the wrong length is attribute discard
  if (st.valueLen !== want) {
    st.fail(UpdateSubcode.AttributeLengthError, 'attribute-discard', `AGGREGATOR length ${st.valueLen}, expected ${want}`);
    return;
  }
  const b = st.buf;
  const p = st.valueStart;
  st.attrs.aggregator = st.ctx.as4
    ? { asn: readU32(b, p), address: ipv4ToString(readU32(b, p + 4)) }
    : { asn: (b[p]! << 8) | b[p + 1]!, address: ipv4ToString(readU32(b, p + 2)) };
}

export function decodeAs4Aggregator(st: DecodeState): void {
  // RFC 6793 §6: discarded when received from a NEW (4-octet) speaker
  if (st.ctx.as4) return;
  // RFC 6793 §6: a malformed AS4_AGGREGATOR (length other than 8) is attribute discard
  if (st.valueLen !== 8) {
    st.fail(UpdateSubcode.OptionalAttributeError, 'attribute-discard', `AS4_AGGREGATOR length ${st.valueLen}, expected 8`);
    return;
  }
  st.as4Aggregator = { asn: readU32(st.buf, st.valueStart), address: ipv4ToString(readU32(st.buf, st.valueStart + 4)) };
}

/** AGGREGATOR; on a 2-octet session an AS that does not fit goes out as AS_TRANS (RFC 6793 §4.2.2). */
export function writeAggregator(buf: Buffer, off: number, agg: Aggregator, as4: boolean): number {
  checkU32(agg.asn, 'AGGREGATOR AS');
  const addr = parseIpv4(agg.address);
  let v = beginAttr(off);
  if (as4) v = writeU32(buf, v, agg.asn);
  else {
    const a = agg.asn > 0xffff ? AS_TRANS : agg.asn;
    buf[v++] = a >> 8;
    buf[v++] = a & 255;
  }
  return endAttr(buf, off, OPTIONAL_TRANSITIVE, AttrType.AGGREGATOR, writeU32(buf, v, addr));
}

export function writeAs4Aggregator(buf: Buffer, off: number, agg: Aggregator): number {
  const v = beginAttr(off);
  return endAttr(buf, off, OPTIONAL_TRANSITIVE, AttrType.AS4_AGGREGATOR, writeU32(buf, writeU32(buf, v, agg.asn), parseIpv4(agg.address)));
}
