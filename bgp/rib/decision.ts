// The decision process: RFC 4271 §9.1.2 phase 2 (choose the best route per
// prefix) with the tie-breakers in common use. Phase 1 (degree of preference)
// is LOCAL_PREF as received from iBGP or set by import policy; phase 3 is
// the export side in core.ts.
//
// Steps, in order; compare() stops at the first that differs and names it:
//  -1. next-hop           a usable path beats one whose next hop is bad or unresolvable (next-hop.ts): such a path is
//                         excluded from the decision (§9.1.2); it ranks last so it is best only when nothing else is,
//                         and RibCore then treats the prefix as having no best (not installed, not advertised)
//   0. llgr-stale          a path without LLGR_STALE beats one with it, whatever the
//                          rest says (RFC 9494 §4.4: long-lived stale paths are the least
//                          preferred, ahead of every other step)
//   1. local-pref          higher LOCAL_PREF wins (missing: 100, the usual default)        §9.1.2.1
//   2. local               a locally originated path beats a learned one (Cisco's step,
//                          placed after LOCAL_PREF so a peer's elevated priority — Calico's
//                          live-migration LOCAL_PREF — can still win)
//   3. as-path-length      shorter AS_PATH; AS_SET counts 1, confederation segments 0     §9.1.2.2 a, RFC 5065 §5.3
//   4. origin              IGP < EGP < INCOMPLETE                                           §9.1.2.2 b
//   5. med                 lower MED, only between paths from the same neighbouring AS
//                          (leftmost AS of the AS_PATH); missing MED is 0                   §9.1.2.2 c
//   6. ebgp-over-ibgp      a path learned over eBGP beats one learned over iBGP             §9.1.2.2 d
//   7. igp-cost            SKIPPED: skein runs no IGP and treats every next hop as equally
//                          close (next hops are on-link or reached through the kernel)       §9.1.2.2 e
//      -- paths equal up to here are equal-cost: the multipath set --
//   8. router-id           lower BGP Identifier of the advertising peer, or ORIGINATOR_ID
//                          in its place when present                                        §9.1.2.2 f, RFC 4456 §9
//   9. cluster-list-length shorter CLUSTER_LIST                                             RFC 4456 §9
//  10. peer-address        lower peer address                                               §9.1.2.2 g
//  11. path-id             lower ADD-PATH path identifier (two paths of one peer, RFC 7911)
//
// Step 5 makes compare() non-transitive: with A, B from AS 1 and C from AS 2,
// A<B by MED, B<C by router id and C<A by router id can all hold, and the winner
// would depend on the order paths arrived in. selectBest() therefore works like
// "deterministic MED": it groups the candidates by neighbouring AS, picks each
// group's best (MED applies inside a group), then compares the group winners
// (MED never applies between groups). Inside one group and among group winners
// compare() is a lexicographic order on per-path keys, hence a total order, and
// the result does not depend on insertion order.
import type { AttrSet } from './intern.js';
import type { NextHopVerdict } from './next-hop.js';

/** Where a path came from, as far as the decision process cares. */
export interface PathSource {
  /** 0 for locally originated paths */
  readonly id: number;
  readonly local: boolean;
  readonly ibgp: boolean;
  /** the peer's BGP Identifier (uint32), 0 for local */
  readonly routerId: number;
  /** peer address in a form whose string order is the numeric order (see addressSortKey) */
  readonly addressKey: string;
  readonly address: string;
}

/**
 * One path to a prefix. Immutable, and shared: RibCore hands the same Path
 * to every prefix that has the same (source, path id, attribute set,
 * generation) — an UPDATE's NLRI all get one object, not one each (at 1M
 * prefixes, 56 MiB and the garbage collector's work of promoting them). To
 * change anything about a prefix's path, put a different Path in its place;
 * never assign to one (RibCore freezes the ones it makes, so a write throws).
 */
/** Paths record when they were made in whole seconds since this moment: a small integer, no heap number per path. */
export const PATH_EPOCH_MS = Date.now();

export class Path {
  /** seconds after PATH_EPOCH_MS when this path was (re)announced: its age in skeinctl routes */
  readonly born = Math.floor((Date.now() - PATH_EPOCH_MS) / 1000);
  constructor(
    readonly source: PathSource,
    readonly pathId: number,
    readonly attrs: AttrSet,
    /**
     * The source's generation for the family when the path was last
     * (re)announced: below the current one, the path is stale (RFC 4724
     * graceful restart, RFC 7313 enhanced route refresh).
     */
    readonly gen = 0,
    /**
     * The import rule that accepted the path: an index into its RibCore's table of rule names (ruleName()), 0 for
     * none (a peer without rule lists, or our own path). A small integer, so at 1M paths it costs no heap object.
     */
    readonly rule = 0,
    /**
     * The next hop lies inside the path's own prefix: it may resolve through the host's routes, never through the
     * Loc-RIB (recursive.ts), where it would depend on itself or a more specific of itself.
     */
    readonly inside = false,
  ) {}
}

/**
 * Our own paths are always usable; a learned one unless its attribute set carries a next-hop verdict (§9.1.2), or
 * its next hop inside its own prefix resolves only through another BGP route (recursive.ts: the loop case).
 */
export function isUsable(p: Path): boolean {
  return p.source.local || (p.attrs.unusable === null && !(p.inside && p.attrs.viaBgp !== null));
}

/** Why a learned path cannot be used, or null when it can. */
export function unusableWhy(p: Path): NextHopVerdict | null {
  if (isUsable(p)) return null;
  return p.attrs.unusable ?? {
    code: 'recursive-loop',
    text: `next hop ${p.attrs.nextHops[0] ?? '?'} lies inside the route itself and resolves only through BGP routes: it would depend on itself once installed (RFC 4271 §9.1.2)`,
  };
}

export type Reason =
  | 'only-path'
  | 'next-hop'
  | 'llgr-stale'
  | 'local-pref'
  | 'local'
  | 'as-path-length'
  | 'origin'
  | 'med'
  | 'ebgp-over-ibgp'
  | 'igp-cost'
  | 'router-id'
  | 'cluster-list-length'
  | 'peer-address'
  | 'path-id'
  | 'equal';

export interface Comparison {
  /** < 0: a is better; > 0: b is better; 0 only for the same source and path id */
  readonly cmp: number;
  readonly reason: Reason;
}

/** The steps after which paths count as equal-cost (multipath). */
const TIE_BREAKS: ReadonlySet<Reason> = new Set(['router-id', 'cluster-list-length', 'peer-address', 'path-id', 'equal']);

export const DEFAULT_LOCAL_PREF = 100;

const r = (cmp: number, reason: Reason): Comparison => ({ cmp, reason });

/** Compare two paths to the same prefix; the first differing step decides. */
export function compare(a: Path, b: Path): Comparison {
  const x = a.attrs;
  const y = b.attrs;
  // -1
  if (x.unusable !== y.unusable || x.viaBgp !== null || y.viaBgp !== null) {
    const ua = isUsable(a);
    if (ua !== isUsable(b)) return r(ua ? -1 : 1, 'next-hop');
  }
  // 0
  if (x.llgrStale !== y.llgrStale) return r(x.llgrStale ? 1 : -1, 'llgr-stale');
  // 1
  const lpA = x.localPref ?? DEFAULT_LOCAL_PREF;
  const lpB = y.localPref ?? DEFAULT_LOCAL_PREF;
  if (lpA !== lpB) return r(lpB - lpA, 'local-pref');
  // 2
  if (a.source.local !== b.source.local) return r(a.source.local ? -1 : 1, 'local');
  // 3
  if (x.asPathLength !== y.asPathLength) return r(x.asPathLength - y.asPathLength, 'as-path-length');
  // 4
  if (x.origin !== y.origin) return r(x.origin - y.origin, 'origin');
  // 5
  if (x.neighborAs === y.neighborAs && x.med !== y.med) return r(x.med < y.med ? -1 : 1, 'med');
  // 6
  const ibA = !a.source.local && a.source.ibgp;
  const ibB = !b.source.local && b.source.ibgp;
  if (ibA !== ibB) return r(ibA ? 1 : -1, 'ebgp-over-ibgp');
  // 7 igp-cost: skipped, see above.
  // 8
  const idA = (x.originatorId ?? a.source.routerId) >>> 0;
  const idB = (y.originatorId ?? b.source.routerId) >>> 0;
  if (idA !== idB) return r(idA < idB ? -1 : 1, 'router-id');
  // 9
  if (x.clusterListLength !== y.clusterListLength) return r(x.clusterListLength - y.clusterListLength, 'cluster-list-length');
  // 10
  if (a.source.addressKey !== b.source.addressKey) return r(a.source.addressKey < b.source.addressKey ? -1 : 1, 'peer-address');
  // 11
  if (a.pathId !== b.pathId) return r(a.pathId < b.pathId ? -1 : 1, 'path-id');
  return r(0, 'equal');
}

/** True when a and b are equal-cost: they differ at most in the tie-breakers (steps 8-11). */
export function equalCost(a: Path, b: Path): boolean {
  return TIE_BREAKS.has(compare(a, b).reason);
}

export interface Selection {
  readonly best: Path;
  /** why best won against the runner-up ('only-path' when alone) */
  readonly reason: Reason;
  /** the best first, then equal-cost paths with distinct next hops, at most maxPaths */
  readonly multipath: readonly Path[];
}

function better(a: Path, b: Path): Path {
  return compare(a, b).cmp <= 0 ? a : b;
}

/**
 * MED is compared only within a neighbouring AS: the best path of each neighbour-AS group, and the best of those
 * winners, which therefore does not depend on the order of paths.
 */
function groupWinners(paths: readonly Path[]): Map<number, Path> {
  const groups = new Map<number, Path>();
  for (const p of paths) {
    const g = p.attrs.neighborAs;
    const cur = groups.get(g);
    groups.set(g, cur === undefined ? p : better(cur, p));
  }
  return groups;
}

function bestOfGroups(groups: Map<number, Path>): Path {
  let best: Path | undefined;
  for (const g of groups.values()) best = best === undefined ? g : better(best, g);
  return best as Path;
}

/**
 * Deterministic best path and multipath set of a prefix's candidates (see the
 * block comment for why it groups by neighbouring AS first).
 */
export function selectBest(paths: readonly Path[], maxPaths = 1): Selection | null {
  const n = paths.length;
  if (n === 0) return null;
  const only = paths[0] as Path;
  if (n === 1) return { best: only, reason: 'only-path', multipath: [only] };

  const groupBest = groupWinners(paths);
  const b = bestOfGroups(groupBest);
  // The runner-up, for the reason: best of the rest under the same rule.
  const reason = compare(b, bestOfGroups(groupWinners(paths.filter((p) => p !== b)))).reason;

  if (maxPaths <= 1 || !isUsable(b)) return { best: b, reason, multipath: [b] };

  // Equal-cost: ties its own group's winner (same AS, MED included) and that
  // winner ties the best (MED only if the same AS).
  const eligible = paths.filter((p) => {
    const gb = groupBest.get(p.attrs.neighborAs) as Path;
    return equalCost(p, gb) && equalCost(gb, b);
  });
  // Among equal-cost paths only the tie-breakers differ: a total order.
  eligible.sort((p, q) => compare(p, q).cmp);
  const multipath: Path[] = [b];
  const hops = new Set<string>([b.attrs.nextHops[0] ?? '']);
  for (const p of eligible) {
    if (multipath.length >= maxPaths) break;
    if (p === b) continue;
    const nh = p.attrs.nextHops[0] ?? '';
    if (hops.has(nh)) continue; // one path per next hop: the FIB needs distinct gateways
    hops.add(nh);
    multipath.push(p);
  }
  return { best: b, reason, multipath };
}

/**
 * A string whose lexical order is the numeric order of the address: IPv4
 * first ("4" + 8 hex digits), then IPv6 ("6" + 32 hex digits).
 */
export function addressSortKey(address: string): string {
  if (!address.includes(':')) {
    return '4' + address.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join('');
  }
  let text = address;
  // an embedded IPv4 tail ("::ffff:192.0.2.1") becomes two hex groups first
  const dot = text.lastIndexOf(':');
  const tail = text.slice(dot + 1);
  if (tail.includes('.')) {
    const o = tail.split('.').map(Number);
    text = `${text.slice(0, dot + 1)}${(((o[0] ?? 0) << 8) | (o[1] ?? 0)).toString(16)}:${(((o[2] ?? 0) << 8) | (o[3] ?? 0)).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...new Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return '6' + groups.map((g) => g.padStart(4, '0')).join('');
}
