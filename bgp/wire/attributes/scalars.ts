// The fixed-size attributes: MULTI_EXIT_DISC (type 4, optional non-transitive,
// RFC 4271 §4.3 d), LOCAL_PREF (type 5, well-known, §4.3 e), ATOMIC_AGGREGATE
// (type 6, well-known, zero length, §4.3 f).
import { AttrType, UpdateSubcode } from '../constants.js';
import { beginAttr, checkU32, endAttr, OPTIONAL_NON_TRANSITIVE, readU32, WELL_KNOWN, writeU32 } from './common.js';
import type { DecodeState } from './common.js';

export function decodeMed(st: DecodeState): void {
  // RFC 7606 §7.4: MED of a length other than 4 is treat-as-withdraw
  if (st.valueLen !== 4) {
    st.fail(UpdateSubcode.AttributeLengthError, 'treat-as-withdraw', `MULTI_EXIT_DISC length ${st.valueLen}, expected 4`);
    return;
  }
  st.attrs.med = readU32(st.buf, st.valueStart);
}

export function decodeLocalPref(st: DecodeState): void {
  // RFC 7606 §7.5: from an external peer LOCAL_PREF is discarded whatever its length (attribute discard: an error
  // only when it is malformed; a well-formed one is dropped quietly, RFC 4271 §5.1.5 says to ignore it anyway).
  if (st.ctx.external === true) {
    if (st.valueLen !== 4) st.fail(UpdateSubcode.AttributeLengthError, 'attribute-discard', `LOCAL_PREF length ${st.valueLen} from an external peer`);
    return;
  }
  // From an internal peer, a length other than 4 is treat-as-withdraw.
  if (st.valueLen !== 4) {
    st.fail(UpdateSubcode.AttributeLengthError, 'treat-as-withdraw', `LOCAL_PREF length ${st.valueLen}, expected 4`);
    return;
  }
  st.attrs.localPref = readU32(st.buf, st.valueStart);
}

export function decodeAtomicAggregate(st: DecodeState): void {
  // RFC 7606 §7.6: ATOMIC_AGGREGATE of non-zero length is attribute discard
  if (st.valueLen !== 0) {
    st.fail(UpdateSubcode.AttributeLengthError, 'attribute-discard', `ATOMIC_AGGREGATE length ${st.valueLen}, expected 0`);
    return;
  }
  st.attrs.atomicAggregate = true;
}

export function writeMed(buf: Buffer, off: number, med: number): number {
  checkU32(med, 'MULTI_EXIT_DISC');
  const v = beginAttr(off);
  return endAttr(buf, off, OPTIONAL_NON_TRANSITIVE, AttrType.MULTI_EXIT_DISC, writeU32(buf, v, med));
}

export function writeLocalPref(buf: Buffer, off: number, pref: number): number {
  checkU32(pref, 'LOCAL_PREF');
  const v = beginAttr(off);
  return endAttr(buf, off, WELL_KNOWN, AttrType.LOCAL_PREF, writeU32(buf, v, pref));
}

export function writeAtomicAggregate(buf: Buffer, off: number): number {
  return endAttr(buf, off, WELL_KNOWN, AttrType.ATOMIC_AGGREGATE, beginAttr(off));
}
