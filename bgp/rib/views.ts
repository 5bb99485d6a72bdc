// Plain-data views of the RIB for skeinctl, the daemon and tests: a prefix's candidates and why the best won
// (decision.ts reasons), what a peer sent (Adj-RIB-In) and what it is sent (Adj-RIB-Out, per path id under ADD-PATH
// send, RFC 7911), and a peer's counts. Read only: nothing here changes the tables.
import type { RibCore } from './core.js';
import { Path, compare, type Reason } from './decision.js';
import type { AttrSet } from './intern.js';
import { familyOf } from './peer.js';
import type { PrefixKey, RouteView } from './types.js';

/** Loc-RIB view of one prefix (skeinctl routes). */
export function route(rib: RibCore, prefix: PrefixKey): RouteView | null {
  const e = rib.loc.get(prefix);
  if (e === undefined) return null;
  if (e instanceof Path) return { prefix, best: e, reason: 'only-path', multipath: [e], paths: [e] };
  return { prefix, best: e.sel.best, reason: e.sel.reason, multipath: e.sel.multipath, paths: [...e.paths] };
}

/**
 * Every candidate path of a prefix with why it won or lost (skeinctl
 * routes): the best carries the reason it beat the runner-up, every other
 * path the first decision step where the best beat it. Best first.
 */
export function explain(rib: RibCore, prefix: PrefixKey): { readonly path: Path; readonly best: boolean; readonly reason: Reason }[] {
  const r = route(rib, prefix);
  if (r === null) return [];
  const rest = r.paths.filter((p) => p !== r.best).map((p) => ({ path: p, best: false, reason: compare(r.best, p).reason }));
  return [{ path: r.best, best: true, reason: r.reason }, ...rest];
}

/**
 * Every path advertised to a peer for a prefix with its path id: several
 * under ADD-PATH send (RFC 7911), else the one route (path id 1 when the
 * session has ADD-PATH without a send mode, 0 for none).
 */
export function advertisedPaths(rib: RibCore, id: number, prefix: PrefixKey): { pathId: number; attrs: AttrSet }[] {
  const p = rib.peer(id);
  if (p.ap !== null && p.ap.families.has(familyOf(prefix))) return p.ap.advertised(prefix);
  const set = p.group?.desired(p, prefix);
  return set === undefined ? [] : [{ pathId: p.addPathTx.has(familyOf(prefix)) ? 1 : 0, attrs: set }];
}

/**
 * Every prefix advertised to a peer (Adj-RIB-Out; under ADD-PATH send, the prefixes of the families it covers
 * come from the Loc-RIB and advertisedPaths() says which are really sent). A lazy walk, for skeinctl.
 */
export function* advertisedPrefixes(rib: RibCore, id: number): Generator<PrefixKey> {
  const p = rib.peer(id);
  const g = p.group;
  if (g !== null) for (const k of g.adjOut.keysIter()) if (g.srcOf.get(k) !== p.id) yield k;
  const ap = p.ap;
  if (ap === null) return;
  for (const k of rib.loc.keysIter()) if (ap.families.has(familyOf(k)) && g?.desired(p, k) === undefined) yield k;
}

/** Adj-RIB-In paths of a peer for a prefix. */
export function received(rib: RibCore, id: number, prefix: PrefixKey): readonly Path[] {
  const p = rib.peer(id);
  const e = rib.loc.get(prefix);
  if (e === undefined) return [];
  return e instanceof Path ? (e.source === p ? [e] : []) : e.paths.filter((x) => x.source === p);
}

/**
 * A peer's counts: paths received (held in Adj-RIB-In) and prefixes advertised, in all and per family (a dual-stack
 * session carries both: the metrics are per family, and the total under each family label counted routes twice).
 */
export function peerStats(rib: RibCore, id: number): {
  received: number; received4: number; received6: number; advertised: number; advertised4: number; advertised6: number; established: boolean;
} {
  const p = rib.peer(id);
  const g = p.group;
  // counted as the tables change (update-group.ts own/own6), not by a walk: the metrics sampler and `peers` ask often
  const out = g === null ? { all: 0, v6: 0 } : g.advertisedTo(p);
  const advertised = out.all + (p.ap?.count ?? 0);
  const advertised6 = out.v6 + (p.ap?.count6 ?? 0);
  return {
    received: p.paths, received4: p.paths - p.paths6, received6: p.paths6, advertised, advertised4: advertised - advertised6, advertised6, established: p.established,
  };
}
