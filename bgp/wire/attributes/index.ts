// The path attribute section of an UPDATE (RFC 4271 §4.3): decode it into a
// PathAttributes (plus MP_REACH/MP_UNREACH and the RFC 6793 attributes kept
// apart), and encode one back.
import { AttrFlag, AttrType, UpdateSubcode } from '../constants.js';
import { toAs2 } from '../as4.js';
import type { CodecContext, MpReach, MpUnreach, PathAttributes, UnknownAttribute } from '../types.js';
import { decodeAggregator, decodeAs4Aggregator, writeAggregator, writeAs4Aggregator } from './aggregator.js';
import { decodeAs4Path, decodeAsPath, writeAs4Path, writeAsPath } from './aspath.js';
import { OPTIONAL_NON_TRANSITIVE, OPTIONAL_TRANSITIVE, WELL_KNOWN } from './common.js';
import type { AttributeDecoder, DecodeState } from './common.js';
import {
  decodeCommunities,
  decodeExtendedCommunities,
  decodeLargeCommunities,
  writeCommunities,
  writeExtendedCommunities,
  writeLargeCommunities,
} from './communities.js';
import { decodeMpReach, decodeMpUnreach, writeMpReach, writeMpUnreach } from './mp.js';
import { decodeNextHop, writeNextHop } from './nexthop.js';
import { decodeOrigin, writeOrigin } from './origin.js';
import { decodeClusterList, decodeOriginatorId, writeClusterList, writeOriginatorId } from './reflection.js';
import { decodeAtomicAggregate, decodeLocalPref, decodeMed, writeAtomicAggregate, writeLocalPref, writeMed } from './scalars.js';
import { decodeUnknown, writeUnknown } from './unknown.js';

export { DecodeState, SCRATCH_SIZE } from './common.js';
export type { MutableAttributes } from './common.js';
export { finishMp, nextHopSize, writeMpReachHead, writeMpUnreachHead } from './mp.js';

/** Per recognised type code: its decoder and the Optional/Transitive bits it must carry (RFC 4271 §5, RFCs of each). */
const DECODERS: (AttributeDecoder | undefined)[] = new Array(256).fill(undefined);
const EXPECTED_FLAGS = new Int16Array(256).fill(-1);
function known(type: number, flags: number, dec: AttributeDecoder): void {
  DECODERS[type] = dec;
  EXPECTED_FLAGS[type] = flags;
}
known(AttrType.ORIGIN, WELL_KNOWN, decodeOrigin);
known(AttrType.AS_PATH, WELL_KNOWN, decodeAsPath);
known(AttrType.NEXT_HOP, WELL_KNOWN, decodeNextHop);
known(AttrType.MULTI_EXIT_DISC, OPTIONAL_NON_TRANSITIVE, decodeMed);
known(AttrType.LOCAL_PREF, WELL_KNOWN, decodeLocalPref);
known(AttrType.ATOMIC_AGGREGATE, WELL_KNOWN, decodeAtomicAggregate);
known(AttrType.AGGREGATOR, OPTIONAL_TRANSITIVE, decodeAggregator);
known(AttrType.COMMUNITIES, OPTIONAL_TRANSITIVE, decodeCommunities);
known(AttrType.ORIGINATOR_ID, OPTIONAL_NON_TRANSITIVE, decodeOriginatorId);
known(AttrType.CLUSTER_LIST, OPTIONAL_NON_TRANSITIVE, decodeClusterList);
known(AttrType.MP_REACH_NLRI, OPTIONAL_NON_TRANSITIVE, decodeMpReach);
known(AttrType.MP_UNREACH_NLRI, OPTIONAL_NON_TRANSITIVE, decodeMpUnreach);
known(AttrType.EXTENDED_COMMUNITIES, OPTIONAL_TRANSITIVE, decodeExtendedCommunities);
known(AttrType.AS4_PATH, OPTIONAL_TRANSITIVE, decodeAs4Path);
known(AttrType.AS4_AGGREGATOR, OPTIONAL_TRANSITIVE, decodeAs4Aggregator);
known(AttrType.LARGE_COMMUNITY, OPTIONAL_TRANSITIVE, decodeLargeCommunities);

/** Is this a type code the codec interprets (so it cannot be carried as an UnknownAttribute)? */
export const isKnownAttribute = (type: number): boolean => DECODERS[type] !== undefined;

const isMp = (type: number): boolean => type === AttrType.MP_REACH_NLRI || type === AttrType.MP_UNREACH_NLRI;

/**
 * RFC 7606 §4: the attribute section cannot be walked any further (an
 * attribute overruns it, or too few octets remain for a header). The RFC
 * calls for treat-as-withdraw, locating the NLRI field with the Total
 * Attribute Length — but treat-as-withdraw is only sound when every NLRI of
 * the UPDATE is known (§3.i). An MP_REACH/MP_UNREACH could hide in the
 * unparsed tail unless we already hold one (§5.1: senders put them first, and
 * an UPDATE carries at most one of withdrawn, NLRI, MP_REACH, MP_UNREACH) or
 * the IPv4 fields are in use. Otherwise: session reset.
 */
function framingError(st: DecodeState, ipv4Nlri: boolean, subcode: number, reason: string, data: Buffer): void {
  const located = ipv4Nlri || st.mpReach !== undefined || st.mpUnreach !== undefined;
  st.fail(subcode, located ? 'treat-as-withdraw' : 'session-reset', reason, data);
}

/**
 * Decode the attributes in st.buf[pos, end). `ipv4Nlri` says whether the
 * UPDATE's IPv4 Withdrawn Routes or NLRI field is non-empty (see framingError).
 * Throws a BgpError for session-reset errors; others are recorded in `st`.
 */
export function decodeAttributes(st: DecodeState, pos: number, end: number, ipv4Nlri: boolean): void {
  const b = st.buf;
  while (pos < end) {
    const left = end - pos;
    if (left < 3) {
      framingError(st, ipv4Nlri, UpdateSubcode.MalformedAttributeList, `${left} octet(s) left in the attribute section, too few for an attribute`, Buffer.alloc(0));
      return;
    }
    const flags = b[pos]!;
    const type = b[pos + 1]!;
    let len: number;
    let hdr: number;
    if ((flags & AttrFlag.ExtendedLength) !== 0) {
      if (left < 4) {
        framingError(st, ipv4Nlri, UpdateSubcode.MalformedAttributeList, `3 octets left in the attribute section, too few for an extended-length attribute`, Buffer.alloc(0));
        return;
      }
      len = (b[pos + 2]! << 8) | b[pos + 3]!;
      hdr = 4;
    } else {
      len = b[pos + 2]!;
      hdr = 3;
    }
    if (len > left - hdr) {
      // RFC 4271 §6.3 Attribute Length Error, data = the attribute (what there is of it)
      framingError(
        st,
        ipv4Nlri,
        UpdateSubcode.AttributeLengthError,
        `attribute type ${type} of length ${len} overruns the attribute section (${left - hdr} octets left)`,
        Buffer.from(b.subarray(pos, end)),
      );
      return;
    }
    st.flags = flags;
    st.type = type;
    st.start = pos;
    st.valueStart = pos + hdr;
    st.valueLen = len;
    pos += hdr + len;

    if (st.seen[type] !== 0) {
      // RFC 7606 §3.g: a repeated MP_REACH_NLRI or MP_UNREACH_NLRI is Malformed
      // Attribute List (session reset); any other repeat is discarded, the first kept
      if (isMp(type)) st.fail(UpdateSubcode.MalformedAttributeList, 'session-reset', `attribute type ${type} appears more than once`, Buffer.alloc(0));
      continue;
    }
    st.seen[type] = 1;
    const dec = DECODERS[type];
    if (dec === undefined) {
      decodeUnknown(st);
      continue;
    }
    if ((flags & (AttrFlag.Optional | AttrFlag.Transitive)) !== EXPECTED_FLAGS[type]) {
      flagsError(st);
      continue;
    }
    dec(st);
  }
}

/**
 * RFC 4271 §6.3 Attribute Flags Error, data = the attribute. RFC 7606 §3.c:
 * Optional/Transitive bits in conflict with the type make the attribute
 * malformed and call for treat-as-withdraw, unless the attribute's own rules
 * say otherwise: AS4_PATH/AS4_AGGREGATOR errors are attribute discard (RFC
 * 6793 §6); MP_REACH/MP_UNREACH cannot be trusted to locate NLRI (§3.i), so
 * session reset. The Partial bit is not checked (§3.c names only O and T).
 */
function flagsError(st: DecodeState): void {
  const t = st.type;
  const why = `attribute type ${t} has flags 0x${st.flags.toString(16).padStart(2, '0')}, expected Optional/Transitive 0x${EXPECTED_FLAGS[t]!.toString(16).padStart(2, '0')}`;
  if (isMp(t)) st.fail(UpdateSubcode.AttributeFlagsError, 'session-reset', why);
  else if (t === AttrType.AS4_PATH || t === AttrType.AS4_AGGREGATOR) {
    if (!st.ctx.as4) st.fail(UpdateSubcode.AttributeFlagsError, 'attribute-discard', why);
  } else st.fail(UpdateSubcode.AttributeFlagsError, 'treat-as-withdraw', why);
}

function sortedUnknown(list: readonly UnknownAttribute[] | undefined): readonly UnknownAttribute[] {
  if (list === undefined || list.length === 0) return [];
  for (const a of list) {
    if (isKnownAttribute(a.type)) throw new RangeError(`attribute type ${a.type} is interpreted by the codec and cannot be sent as an unknown attribute`);
  }
  let sorted = true;
  for (let i = 1; i < list.length; i++) if (list[i]!.type < list[i - 1]!.type) sorted = false;
  return sorted ? list : [...list].sort((a, b) => a.type - b.type);
}

/**
 * Write the attribute section at `off`; returns the offset after it.
 * Order: MP_REACH_NLRI and MP_UNREACH_NLRI first (RFC 7606 §5.1 SHALL, so a
 * receiver can locate NLRI even when a later attribute is malformed), then the
 * rest in ascending type code (RFC 4271 §5 SHOULD), unknown attributes merged
 * in by type. On a 2-octet AS session AS4_PATH/AS4_AGGREGATOR are added as
 * RFC 6793 §4.2.2 requires (as4.ts).
 */
export function writeAttributes(
  buf: Buffer,
  off: number,
  a: PathAttributes,
  ctx: CodecContext,
  mpReach?: MpReach,
  mpUnreach?: MpUnreach,
): number {
  if (mpReach !== undefined) off = writeMpReach(buf, off, mpReach, ctx);
  if (mpUnreach !== undefined) off = writeMpUnreach(buf, off, mpUnreach, ctx);
  const unknown = sortedUnknown(a.unknown);
  let u = 0;
  const upTo = (type: number): void => {
    while (u < unknown.length && unknown[u]!.type < type) off = writeUnknown(buf, off, unknown[u++]!);
  };
  const as2 = ctx.as4 ? undefined : toAs2(a.asPath, a.aggregator);
  if (a.origin !== undefined) off = writeOrigin(buf, off, a.origin);
  upTo(AttrType.AS_PATH);
  if (a.asPath !== undefined) off = writeAsPath(buf, off, a.asPath, ctx.as4);
  upTo(AttrType.NEXT_HOP);
  if (a.nextHop !== undefined) off = writeNextHop(buf, off, a.nextHop);
  upTo(AttrType.MULTI_EXIT_DISC);
  if (a.med !== undefined) off = writeMed(buf, off, a.med);
  upTo(AttrType.LOCAL_PREF);
  if (a.localPref !== undefined) off = writeLocalPref(buf, off, a.localPref);
  upTo(AttrType.ATOMIC_AGGREGATE);
  if (a.atomicAggregate === true) off = writeAtomicAggregate(buf, off);
  upTo(AttrType.AGGREGATOR);
  if (a.aggregator !== undefined) off = writeAggregator(buf, off, a.aggregator, ctx.as4);
  upTo(AttrType.COMMUNITIES);
  // empty lists are not written: a zero-length attribute is malformed (RFC 7606 §7.8, §7.10, §7.14, RFC 8092 §6)
  if (a.communities !== undefined && a.communities.length > 0) off = writeCommunities(buf, off, a.communities);
  upTo(AttrType.ORIGINATOR_ID);
  if (a.originatorId !== undefined) off = writeOriginatorId(buf, off, a.originatorId);
  upTo(AttrType.CLUSTER_LIST);
  if (a.clusterList !== undefined && a.clusterList.length > 0) off = writeClusterList(buf, off, a.clusterList);
  upTo(AttrType.EXTENDED_COMMUNITIES);
  if (a.extendedCommunities !== undefined && a.extendedCommunities.length > 0) off = writeExtendedCommunities(buf, off, a.extendedCommunities);
  upTo(AttrType.AS4_PATH);
  if (as2?.as4Path !== undefined) off = writeAs4Path(buf, off, as2.as4Path);
  upTo(AttrType.AS4_AGGREGATOR);
  if (as2?.as4Aggregator !== undefined) off = writeAs4Aggregator(buf, off, as2.as4Aggregator);
  upTo(AttrType.LARGE_COMMUNITY);
  if (a.largeCommunities !== undefined && a.largeCommunities.length > 0) off = writeLargeCommunities(buf, off, a.largeCommunities);
  upTo(256);
  return off;
}
