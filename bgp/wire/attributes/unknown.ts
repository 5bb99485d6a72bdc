// Attributes skein does not recognise (RFC 4271 §5, §6.3):
// - well-known (Optional bit clear): Unrecognized Well-known Attribute, session reset;
// - optional transitive: kept whole and passed on with the Partial bit set;
// - optional non-transitive: quietly ignored (dropped).
import { AttrFlag, UpdateSubcode } from '../constants.js';
import type { UnknownAttribute } from '../types.js';
import { beginAttr, endAttr } from './common.js';
import type { DecodeState } from './common.js';

export function decodeUnknown(st: DecodeState): void {
  if ((st.flags & AttrFlag.Optional) === 0) {
    // RFC 4271 §6.3: data = the unrecognized attribute (type, length and value).
    // RFC 7606 has no softer rule: without knowing its meaning nothing can be assumed.
    st.fail(UpdateSubcode.UnrecognizedWellKnownAttribute, 'session-reset', `unrecognized well-known attribute type ${st.type}`);
    return;
  }
  // RFC 4271 §5: unrecognized optional non-transitive attributes are quietly ignored
  if ((st.flags & AttrFlag.Transitive) === 0) return;
  // keep O, T and P; the low four bits are unused (RFC 4271 §4.3), Extended
  // Length is re-decided when encoding
  (st.unknown ??= []).push({ flags: st.flags & 0xe0, type: st.type, value: st.value() });
}

/** RFC 4271 §5: an unrecognized optional transitive attribute passed on gets the Partial bit. */
export function writeUnknown(buf: Buffer, off: number, a: UnknownAttribute): number {
  if (a.type < 0 || a.type > 255 || !Number.isInteger(a.type)) throw new RangeError(`attribute type ${a.type} is not 0..255`);
  const v = beginAttr(off);
  buf.set(a.value, v);
  let flags = a.flags & 0xe0;
  if ((flags & AttrFlag.Optional) !== 0 && (flags & AttrFlag.Transitive) !== 0) flags |= AttrFlag.Partial;
  return endAttr(buf, off, flags, a.type, v + a.value.length);
}
