// ORIGIN (type 1, well-known mandatory): one octet, IGP 0 / EGP 1 / INCOMPLETE 2 (RFC 4271 §4.3 a).
import { AttrType, UpdateSubcode } from '../constants.js';
import { beginAttr, endAttr, WELL_KNOWN } from './common.js';
import type { DecodeState } from './common.js';

export function decodeOrigin(st: DecodeState): void {
  // RFC 7606 §7.1: a length other than one is malformed: treat-as-withdraw
  // (RFC 4271 §6.3 Attribute Length Error, data = the attribute)
  if (st.valueLen !== 1) {
    st.fail(UpdateSubcode.AttributeLengthError, 'treat-as-withdraw', `ORIGIN length ${st.valueLen}, expected 1`);
    return;
  }
  const v = st.buf[st.valueStart]!;
  // RFC 7606 §7.1: an undefined value is treat-as-withdraw (RFC 4271 §6.3 Invalid ORIGIN Attribute)
  if (v > 2) {
    st.fail(UpdateSubcode.InvalidOriginAttribute, 'treat-as-withdraw', `ORIGIN value ${v} is undefined`);
    return;
  }
  st.attrs.origin = v as 0 | 1 | 2;
}

export function writeOrigin(buf: Buffer, off: number, origin: number): number {
  if (origin !== 0 && origin !== 1 && origin !== 2) throw new RangeError(`ORIGIN ${origin} is not 0, 1 or 2`);
  const v = beginAttr(off);
  buf[v] = origin;
  return endAttr(buf, off, WELL_KNOWN, AttrType.ORIGIN, v + 1);
}
