// Route reflection attributes (RFC 4456 §8), both optional non-transitive:
// ORIGINATOR_ID (type 9), a 4-octet router id; CLUSTER_LIST (type 10), a list
// of 4-octet cluster ids.
import { AttrType, UpdateSubcode } from '../constants.js';
import { beginAttr, checkU32, endAttr, OPTIONAL_NON_TRANSITIVE, readU32, writeU32 } from './common.js';
import type { DecodeState } from './common.js';

export function decodeOriginatorId(st: DecodeState): void {
  // RFC 7606 §7.9: from an external peer ORIGINATOR_ID is discarded whatever its length (it is for inside an AS,
  // RFC 4456 §8; kept, it could make us drop routes as looped); from an internal one a length other than 4 is
  // treat-as-withdraw.
  if (st.ctx.external === true) {
    if (st.valueLen !== 4) st.fail(UpdateSubcode.AttributeLengthError, 'attribute-discard', `ORIGINATOR_ID length ${st.valueLen} from an external peer`);
    return;
  }
  if (st.valueLen !== 4) {
    st.fail(UpdateSubcode.AttributeLengthError, 'treat-as-withdraw', `ORIGINATOR_ID length ${st.valueLen}, expected 4`);
    return;
  }
  st.attrs.originatorId = readU32(st.buf, st.valueStart);
}

export function decodeClusterList(st: DecodeState): void {
  const len = st.valueLen;
  const malformed = len === 0 || len % 4 !== 0;
  // RFC 7606 §7.10: from an external peer CLUSTER_LIST is discarded whatever its length.
  if (st.ctx.external === true) {
    if (malformed) st.fail(UpdateSubcode.AttributeLengthError, 'attribute-discard', `CLUSTER_LIST length ${len} from an external peer`);
    return;
  }
  // From an internal peer it is malformed unless the length is a non-zero multiple of 4: treat-as-withdraw.
  if (malformed) {
    st.fail(UpdateSubcode.AttributeLengthError, 'treat-as-withdraw', `CLUSTER_LIST length ${len} is not a non-zero multiple of 4`);
    return;
  }
  const out = new Array<number>(len / 4);
  for (let i = 0; i < out.length; i++) out[i] = readU32(st.buf, st.valueStart + 4 * i);
  st.attrs.clusterList = out;
}

export function writeOriginatorId(buf: Buffer, off: number, id: number): number {
  checkU32(id, 'ORIGINATOR_ID');
  return endAttr(buf, off, OPTIONAL_NON_TRANSITIVE, AttrType.ORIGINATOR_ID, writeU32(buf, beginAttr(off), id));
}

export function writeClusterList(buf: Buffer, off: number, ids: readonly number[]): number {
  let v = beginAttr(off);
  for (const id of ids) {
    checkU32(id, 'CLUSTER_LIST id');
    v = writeU32(buf, v, id);
  }
  return endAttr(buf, off, OPTIONAL_NON_TRANSITIVE, AttrType.CLUSTER_LIST, v);
}
