// Attribute interning: every path whose attributes (and next hops) are equal
// shares one frozen AttrSet. A full table has ~1M prefixes but a few
// hundred thousand attribute sets at most (a cluster: a handful), so sharing is
// the biggest memory saving there is (GoBGP's memory issues #1150/#1579 came
// from per-path copies). An AttrSet is counted: each Adj-RIB-In path, local
// origination and Adj-RIB-Out entry holds one reference; the last release
// deletes it from the table.
//
// The fields the decision process reads are computed once here, on the set,
// so comparing two paths never walks an AS_PATH.
import type { NextHopVerdict } from './next-hop.js';
import type { PrefixKey } from './types.js';
import { LLGR_STALE, SegmentType } from '../wire/constants.js';
import type { AsPathSegment, PathAttributes } from '../wire/types.js';

export class AttrSet {
  /** the attributes, frozen (deeply for the arrays we build) */
  readonly attrs: PathAttributes;
  /** next hops of the family the set is used for: IPv4 NEXT_HOP, or MP_REACH next hops; [] = none (local) */
  readonly nextHops: readonly string[];
  readonly key: string;
  /** paths and Adj-RIB-Out entries using the set */
  refs = 0;
  // decision process inputs (RFC 4271 §9.1.2.2, RFC 4456 §9)
  readonly localPref: number | undefined;
  readonly asPathLength: number;
  /** leftmost AS of the first AS_SEQUENCE: the neighbouring AS for MED (§9.1.2.2 c); 0 = none (our own AS) */
  readonly neighborAs: number;
  readonly origin: number;
  readonly med: number;
  readonly originatorId: number | undefined;
  readonly clusterListLength: number;
  /** carries LLGR_STALE (RFC 9494 §4.3): least preferred of all (§4.4), advertised only to LLGR peers */
  readonly llgrStale: boolean;
  /**
   * Per (peer, family, locality) slot: this set as exported by the default
   * rules under the peer's settings epoch (no reference held; valid while the
   * cached set still has refs > 0). One entry per slot, so flapping peers do
   * not make it grow.
   */
  /** per export slot (see RibCore.exportSet): the set made for it; origin is the ORIGINATOR_ID it assumed, or 0 */
  exportCache: Map<number, { readonly epoch: number; readonly set: AttrSet; readonly origin: number }> | null = null;
  /**
   * Why a path with this set cannot be used (next-hop.ts: bad or unresolvable next hop), or null. Decided when the
   * set is made and again when reachability changes (RibCore.recheckNextHops); ignored for our own originations.
   */
  unusable: NextHopVerdict | null = null;
  /**
   * The Loc-RIB prefix the first next hop resolves through when no route of the host's covers it (recursive.ts),
   * null otherwise; decided with `unusable`.
   */
  viaBgp: PrefixKey | null = null;
  /** the first next hop as an IPv4 uint32, -1 when it is not one, -2 before it was asked (recursive.ts nextHopInside) */
  nh4 = -2;
  /**
   * the first next hop as IPv6 (recursive.ts nextHopInside): its bytes, and its covering prefix per length as asked
   * (canonical text, as IPv6 prefix keys are); null when it is not IPv6, undefined before it was asked
   */
  nh6: { readonly bytes: Uint8Array; readonly covers: Map<number, string> } | null | undefined = undefined;

  constructor(key: string, attrs: PathAttributes, nextHops: readonly string[]) {
    this.key = key;
    this.attrs = attrs;
    this.nextHops = nextHops;
    this.localPref = attrs.localPref;
    this.asPathLength = asPathLength(attrs.asPath);
    this.neighborAs = neighborAs(attrs.asPath);
    this.origin = attrs.origin ?? 2;
    this.med = attrs.med ?? 0; // RFC 4271 §9.1.2.2 c: a missing MED counts as 0
    this.originatorId = attrs.originatorId;
    this.clusterListLength = attrs.clusterList?.length ?? 0;
    this.llgrStale = attrs.communities?.includes(LLGR_STALE) ?? false;
  }
}

/** RFC 4271 §9.1.2.2 a: an AS_SET counts as one; RFC 5065 §5.3: confederation segments count as zero. */
export function asPathLength(path: readonly AsPathSegment[] | undefined): number {
  let n = 0;
  for (const s of path ?? []) {
    if (s.type === SegmentType.AS_SEQUENCE) n += s.asns.length;
    else if (s.type === SegmentType.AS_SET) n += 1;
  }
  return n;
}

/** The AS a route was learned from, for MED comparison; confederation segments are skipped. */
export function neighborAs(path: readonly AsPathSegment[] | undefined): number {
  for (const s of path ?? []) {
    if (s.type === SegmentType.AS_CONFED_SEQUENCE || s.type === SegmentType.AS_CONFED_SET) continue;
    return s.type === SegmentType.AS_SEQUENCE ? (s.asns[0] ?? 0) : 0;
  }
  return 0;
}

const hex = (b: Buffer): string => b.toString('hex');

/**
 * A stable text key for an attribute set: fields in a fixed order, each tagged,
 * so two sets with the same meaning give the same key whatever the order their
 * object properties were created in. Communities (RFC 1997 §: a set) and large
 * communities are sorted.
 */
export function attrKey(a: PathAttributes, nextHops: readonly string[]): string {
  let k = `h${nextHops.join(',')}`;
  if (a.origin !== undefined) k += `|o${a.origin}`;
  if (a.asPath !== undefined) {
    k += '|p';
    for (const s of a.asPath) k += `${s.type}:${s.asns.join(' ')};`;
  }
  if (a.nextHop !== undefined) k += `|n${a.nextHop}`;
  if (a.med !== undefined) k += `|m${a.med}`;
  if (a.localPref !== undefined) k += `|l${a.localPref}`;
  if (a.atomicAggregate) k += '|A';
  if (a.aggregator !== undefined) k += `|g${a.aggregator.asn}@${a.aggregator.address}`;
  if (a.communities !== undefined) k += `|c${[...a.communities].sort((x, y) => x - y).join(',')}`;
  if (a.originatorId !== undefined) k += `|O${a.originatorId}`;
  if (a.clusterList !== undefined) k += `|C${a.clusterList.join(',')}`;
  if (a.extendedCommunities !== undefined) k += `|x${a.extendedCommunities.map(hex).sort().join(',')}`;
  if (a.largeCommunities !== undefined) k += `|L${a.largeCommunities.map((l) => l.join(':')).sort().join(',')}`;
  if (a.unknown !== undefined) k += `|u${a.unknown.map((u) => `${u.type}/${u.flags}/${hex(u.value)}`).join(',')}`;
  return k;
}

/** A frozen copy in canonical form; Buffers are copied so no socket chunk is pinned. */
function freezeAttrs(a: PathAttributes): PathAttributes {
  const out: { -readonly [K in keyof PathAttributes]: PathAttributes[K] } = {};
  if (a.origin !== undefined) out.origin = a.origin;
  if (a.asPath !== undefined) out.asPath = Object.freeze(a.asPath.map((s) => Object.freeze({ type: s.type, asns: Object.freeze([...s.asns]) })));
  if (a.nextHop !== undefined) out.nextHop = a.nextHop;
  if (a.med !== undefined) out.med = a.med;
  if (a.localPref !== undefined) out.localPref = a.localPref;
  if (a.atomicAggregate !== undefined) out.atomicAggregate = a.atomicAggregate;
  if (a.aggregator !== undefined) out.aggregator = Object.freeze({ ...a.aggregator });
  if (a.communities !== undefined) out.communities = Object.freeze([...a.communities].sort((x, y) => x - y));
  if (a.originatorId !== undefined) out.originatorId = a.originatorId;
  if (a.clusterList !== undefined) out.clusterList = Object.freeze([...a.clusterList]);
  if (a.extendedCommunities !== undefined) out.extendedCommunities = Object.freeze(a.extendedCommunities.map((b) => Buffer.from(b)));
  if (a.largeCommunities !== undefined) {
    out.largeCommunities = Object.freeze(
      [...a.largeCommunities].sort((x, y) => x[0] - y[0] || x[1] - y[1] || x[2] - y[2]).map((l) => Object.freeze([l[0], l[1], l[2]] as const)),
    );
  }
  if (a.unknown !== undefined) out.unknown = Object.freeze(a.unknown.map((u) => Object.freeze({ flags: u.flags, type: u.type, value: Buffer.from(u.value) })));
  return Object.freeze(out);
}

export class AttrTable {
  private readonly table = new Map<string, AttrSet>();
  /**
   * live sets by first next hop (the one their verdict depends on, next-hop.ts): a change of the host's routes
   * re-judges only the sets whose next hop it concerns (affected), not every set
   */
  private readonly byNextHop = new Map<string, Set<AttrSet>>();
  /** sets handed out by affected() to be judged again, in total (tests and metrics: what a change cost) */
  rejudged = 0;
  /** judges the next hops of every new set, setting `unusable` and `viaBgp` (RibCore.setNextHopCheck); null: every set is usable */
  classify: ((set: AttrSet) => void) | null = null;

  /** every live set (for re-judging next hops) */
  values(): IterableIterator<AttrSet> {
    return this.table.values();
  }

  /**
   * The sets to judge again after the host's routes changed: those whose first next hop `changed` says is concerned
   * (one call per distinct next hop, not per set), or every set when `changed` is null (no narrower answer known).
   */
  affected(changed: ((nextHop: string) => boolean) | null): AttrSet[] {
    let out: AttrSet[];
    if (changed === null) out = [...this.table.values()];
    else {
      out = [];
      for (const [nh, sets] of this.byNextHop) if (changed(nh)) for (const s of sets) out.push(s);
    }
    this.rejudged += out.length;
    return out;
  }

  /** distinct attribute sets alive */
  get size(): number {
    return this.table.size;
  }

  /** The shared set for these attributes, with one more reference. */
  intern(attrs: PathAttributes, nextHops: readonly string[]): AttrSet {
    const key = attrKey(attrs, nextHops);
    let set = this.table.get(key);
    if (set === undefined) {
      set = new AttrSet(key, freezeAttrs(attrs), Object.freeze([...nextHops]));
      if (this.classify !== null && nextHops.length > 0) this.classify(set);
      this.table.set(key, set);
      const nh = set.nextHops[0];
      if (nh !== undefined) {
        let s = this.byNextHop.get(nh);
        if (s === undefined) this.byNextHop.set(nh, (s = new Set()));
        s.add(set);
      }
    }
    set.refs++;
    return set;
  }

  /** One more reference to a set already interned. */
  retain(set: AttrSet): AttrSet {
    if (set.refs <= 0) throw new Error(`attribute set retained after release: ${set.key}`);
    set.refs++;
    return set;
  }

  /** told of a set that goes while recursion follows it (RibCore: RecursiveNextHops.forget) */
  onDrop: ((set: AttrSet) => void) | null = null;

  /** Drop one reference; the last one removes the set from the table. */
  release(set: AttrSet): void {
    if (set.refs <= 0) throw new Error(`attribute set released too often: ${set.key}`);
    if (--set.refs === 0) {
      this.table.delete(set.key);
      set.exportCache = null;
      const nh = set.nextHops[0];
      const s = nh === undefined ? undefined : this.byNextHop.get(nh);
      if (s !== undefined && s.delete(set) && s.size === 0) this.byNextHop.delete(nh as string);
      if (set.unusable?.code === 'unresolvable' || set.viaBgp !== null) this.onDrop?.(set);
    }
  }

  /** Look a key up without taking a reference (tests, metrics). */
  get(key: string): AttrSet | undefined {
    return this.table.get(key);
  }
}
