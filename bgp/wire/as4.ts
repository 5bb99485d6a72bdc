// RFC 6793: carrying 4-octet AS numbers across a session where one side has
// only 2-octet AS numbers (ctx.as4 false). Pure functions, both directions:
// - sending (§4.2.2): AS_PATH and AGGREGATOR carry AS_TRANS in place of every
//   AS that does not fit in 2 octets, and the exact values travel in AS4_PATH
//   and AS4_AGGREGATOR;
// - receiving (§4.2.3): the exact path is rebuilt from AS_PATH and AS4_PATH.
import { AS_TRANS, SegmentType } from './constants.js';
import type { Aggregator, AsPathSegment } from './types.js';

const isConfed = (t: number): boolean => t === SegmentType.AS_CONFED_SEQUENCE || t === SegmentType.AS_CONFED_SET;

/**
 * Number of AS numbers in a path as RFC 6793 §4.2.3 counts them: an AS_SET
 * counts as one (RFC 4271 §9.1.2.2), confederation segments count as zero
 * (RFC 5065 §5.3).
 */
export function countAsns(path: readonly AsPathSegment[]): number {
  let n = 0;
  for (const s of path) {
    if (s.type === SegmentType.AS_SEQUENCE) n += s.asns.length;
    else if (s.type === SegmentType.AS_SET) n += 1;
  }
  return n;
}

const mappable = (asn: number): boolean => asn <= 0xffff;

export interface As2Encoding {
  /** the AS4_PATH to send with the AS_PATH (whose 4-octet ASNs the writer turns into AS_TRANS), if needed */
  readonly as4Path?: readonly AsPathSegment[];
  /** the AS4_AGGREGATOR to send with AGGREGATOR (written with AS_TRANS), if needed */
  readonly as4Aggregator?: Aggregator;
}

/**
 * RFC 6793 §4.2.2: what a NEW speaker adds for an OLD peer. AS4_PATH is sent
 * when the path holds an AS that is not mappable to 2 octets; it carries the
 * whole path except confederation segments, which MUST NOT appear in it.
 * AS4_AGGREGATOR is sent when the aggregating AS is not mappable.
 */
export function toAs2(asPath: readonly AsPathSegment[] | undefined, aggregator: Aggregator | undefined): As2Encoding {
  let as4Path: AsPathSegment[] | undefined;
  if (asPath !== undefined && asPath.some((s) => s.asns.some((a) => !mappable(a)))) {
    const segs = asPath.filter((s) => !isConfed(s.type));
    if (segs.length > 0) as4Path = segs;
  }
  const as4Aggregator = aggregator !== undefined && !mappable(aggregator.asn) ? aggregator : undefined;
  return { ...(as4Path && { as4Path }), ...(as4Aggregator && { as4Aggregator }) };
}

export interface Reconstructed {
  readonly asPath: readonly AsPathSegment[] | undefined;
  readonly aggregator: Aggregator | undefined;
}

/**
 * RFC 6793 §4.2.3: rebuild the exact AS path and aggregator received from an
 * OLD speaker (or through one).
 */
export function fromAs2(
  asPath: readonly AsPathSegment[] | undefined,
  aggregator: Aggregator | undefined,
  as4PathIn: readonly AsPathSegment[] | undefined,
  as4Aggregator: Aggregator | undefined,
): Reconstructed {
  // §4.2.3: if AGGREGATOR carries an AS other than AS_TRANS, the aggregation
  // happened at an OLD speaker after AS4_PATH was last brought up to date:
  // ignore AS4_AGGREGATOR and AS4_PATH alike.
  if (aggregator !== undefined && aggregator.asn !== AS_TRANS) return { asPath, aggregator };
  // §4.2.3: otherwise AS4_AGGREGATOR, if present, names the aggregator
  // (AS4_AGGREGATOR without AGGREGATOR has nothing to complete and is ignored)
  const agg = aggregator !== undefined && as4Aggregator !== undefined ? as4Aggregator : aggregator;
  if (as4PathIn === undefined || asPath === undefined) return { asPath, aggregator: agg };
  // RFC 6793 §6: confederation segments MUST NOT be in AS4_PATH; any received
  // there are discarded and the rest of the attribute used
  const as4Path = as4PathIn.some((s) => isConfed(s.type)) ? as4PathIn.filter((s) => !isConfed(s.type)) : as4PathIn;
  const n = countAsns(asPath);
  const m = countAsns(as4Path);
  // §4.2.3: an AS4_PATH longer than AS_PATH is ignored
  if (n < m) return { asPath, aggregator: agg };
  // §4.2.3: take as many AS numbers (and their segments) as needed from the
  // front of AS_PATH and put them before AS4_PATH, so the result counts as
  // many AS numbers as AS_PATH. A confederation segment is taken along when it
  // leads the path or sits next to a segment taken.
  let need = n - m;
  const out: AsPathSegment[] = [];
  for (let i = 0; i < asPath.length; i++) {
    const s = asPath[i]!;
    if (isConfed(s.type)) {
      // leading, or right after segments all taken: take it along
      if (out.length === i) {
        out.push(s);
        continue;
      }
      break;
    }
    if (need === 0) break;
    if (s.type === SegmentType.AS_SET) {
      out.push(s);
      need -= 1;
    } else if (s.asns.length <= need) {
      out.push(s);
      need -= s.asns.length;
    } else {
      out.push({ type: s.type, asns: s.asns.slice(0, need) });
      need = 0;
    }
  }
  // a taken AS_SEQUENCE followed by an AS4_PATH that starts with one: they
  // were one sequence before OLD speakers prepended to it, so join them
  const first = as4Path[0];
  const last = out[out.length - 1];
  if (first !== undefined && last !== undefined && last.type === SegmentType.AS_SEQUENCE && first.type === SegmentType.AS_SEQUENCE) {
    out[out.length - 1] = { type: SegmentType.AS_SEQUENCE, asns: [...last.asns, ...first.asns] };
    return { asPath: [...out, ...as4Path.slice(1)], aggregator: agg };
  }
  return { asPath: [...out, ...as4Path], aggregator: agg };
}
