// NEXT_HOP (type 3, well-known; mandatory when the IPv4 NLRI field is used):
// a 4-octet IPv4 address (RFC 4271 §4.3 c, §5.1.3).
import { AttrType, UpdateSubcode } from '../constants.js';
import { ipv4ToString, parseIpv4 } from '../prefix.js';
import { beginAttr, endAttr, readU32, WELL_KNOWN, writeU32 } from './common.js';
import type { DecodeState } from './common.js';

export function decodeNextHop(st: DecodeState): void {
  // RFC 7606 §7.3: a length other than 4 is treat-as-withdraw (RFC 4271 §6.3
  // Attribute Length Error). Semantic checks (our own address, the peer's
  // subnet) depend on the session and are made there.
  if (st.valueLen !== 4) {
    st.fail(UpdateSubcode.AttributeLengthError, 'treat-as-withdraw', `NEXT_HOP length ${st.valueLen}, expected 4`);
    return;
  }
  st.attrs.nextHop = ipv4ToString(readU32(st.buf, st.valueStart));
}

export function writeNextHop(buf: Buffer, off: number, nextHop: string): number {
  const v = beginAttr(off);
  return endAttr(buf, off, WELL_KNOWN, AttrType.NEXT_HOP, writeU32(buf, v, parseIpv4(nextHop)));
}
