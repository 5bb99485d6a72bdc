// Stale paths of a peer (RFC 4724 graceful restart, RFC 7313 enhanced route refresh, RFC 9494 long-lived graceful
// restart): a path is stale when it was announced under an older generation of its family than the peer's current
// one (markStale bumps the generation; the peer announcing a path again makes it fresh). How many of a peer's paths
// are stale is kept as paths change (Peer.stale4/stale6, core.ts staleMoved), not counted by walking the table;
// sweeps walk the table through the resumable walker (walker.ts), so a sweep of a million paths lets the event loop
// turn while it goes.
import { IPV4_UNICAST, NO_LLGR, LLGR_STALE } from '../wire/constants.js';
import { Path } from './decision.js';
import type { RibCore } from './core.js';
import { familyOf, type Peer } from './peer.js';
import type { PrefixKey } from './types.js';

/**
 * Mark every path of the peer in a family stale (RFC 7313 §4: a BoRR was
 * received; RFC 4724: the session went down gracefully). Paths the peer
 * announces again become fresh.
 */
export function markStale(rib: RibCore, id: number, family: number): void {
  const p = rib.peer(id);
  // a reimport walk (import.ts) makes the paths it accepts fresh: it must be done before they become stale
  if (p.reimports > 0) rib.walker.finish();
  markPeerStale(p, family);
}

/** markStale for a Peer: every one of its paths in the family is now stale. */
export function markPeerStale(p: Peer, family: number): void {
  p.gens.set(family, p.gen(family) + 1);
  if (family === IPV4_UNICAST) p.stale4 = p.paths - p.paths6;
  else p.stale6 = p.paths6;
}

/**
 * Remove the peer's paths still stale in a family (all families when
 * family is omitted): RFC 7313 §4 EoRR, RFC 4724 §4.2 End-of-RIB or timer.
 * Returns how many paths are stale now: the walk that removes them runs in slices (walker.ts), a path the peer
 * announces again before the walk reaches it stays.
 */
export function sweepStale(rib: RibCore, id: number, family?: number): number {
  const p = rib.peer(id);
  const n = staleIn(p, family ?? null);
  sweepPaths(rib, p, family ?? null);
  return n;
}

/** The peer's stale paths in a family, or in all (null). */
function staleIn(p: Peer, family: number | null): number {
  return family === null ? p.stale4 + p.stale6 : family === IPV4_UNICAST ? p.stale4 : p.stale6;
}

/**
 * RFC 9494 §4.2: the peer's restart time ran out (or was 0) and a family of its stale paths enters the long-lived
 * phase. Each path still stale gets the LLGR_STALE community (§3.2), which ranks it below every other path (§4.4)
 * and keeps it from peers without LLGR (§4.3); one carrying NO_LLGR (§3.3) is removed instead. The paths stay
 * stale: the peer re-announcing them makes them fresh (without the community), and sweepStale removes the rest.
 * A walk in slices (walker.ts) over the paths stale at this call: a path announced again before the walk reaches it
 * is fresh and left alone. The counts are those of the paths handled by the time this returns: all of them when
 * the first slice covers the table, else the rest follow unreported.
 */
export function enterLongLivedStale(rib: RibCore, id: number, family: number): { kept: number; removed: number } {
  const p = rib.peer(id);
  const r = { kept: 0, removed: 0 };
  if (staleIn(p, family) === 0) return r;
  const g = p.gen(family);
  const loc = rib.loc;
  const keys = loc.keySnapshot();
  const v4 = family === IPV4_UNICAST;
  rib.walker.start({ v4: v4 ? keys.v4 : new Float64Array(0), v6: v4 ? [] : keys.v6 }, (prefix) => {
    const e = loc.get(prefix);
    if (e === undefined) return;
    const mine = e instanceof Path ? (e.source === p && e.gen < g ? [e] : []) : e.paths.filter((x) => x.source === p && x.gen < g);
    for (const path of mine) {
      const a = path.attrs.attrs;
      if (a.communities?.includes(NO_LLGR)) {
        if (rib.withdrawPath(p, prefix, path.pathId)) r.removed++;
        continue;
      }
      r.kept++;
      if (path.attrs.llgrStale) continue; // it came with the community already
      const set = rib.attrs.intern({ ...a, communities: [...(a.communities ?? []), LLGR_STALE] }, path.attrs.nextHops);
      rib.put(prefix, p, path.pathId, set, path.gen, path.rule);
    }
  });
  return { ...r };
}

/** How many of a peer's paths are stale now (graceful restart, route refresh): kept as paths change. */
export function staleCount(rib: RibCore, id: number): number {
  const p = rib.peer(id);
  return p.stale4 + p.stale6;
}

/** staleCount by walking the whole table: what the kept count must always equal (for tests). */
export function staleCountByWalk(rib: RibCore, id: number): number {
  const p = rib.peer(id);
  if (p.paths === 0 || p.gens.size === 0) return 0;
  let n = 0;
  rib.loc.forEach((e, prefix) => {
    const g = p.gen(familyOf(prefix));
    if (g === 0) return;
    for (const path of e instanceof Path ? [e] : e.paths) if (path.source === p && path.gen < g) n++;
  });
  return n;
}

/**
 * Remove the stale paths of p in a family (or all families, null): those announced under an older generation than
 * the family's at this call. A walk in slices (walker.ts); nothing to walk when no path is stale.
 */
export function sweepPaths(rib: RibCore, p: Peer, family: number | null): void {
  if (p.paths === 0 || staleIn(p, family) === 0) return;
  const g4 = p.gen(IPV4_UNICAST);
  const g6 = p.gen(familyOf('::/0'));
  const loc = rib.loc;
  // Adj-RIB-In lives in the shared prefix table (see core.ts put()): one walk finds the peer's paths.
  rib.walker.start(loc.keySnapshot(), (prefix) => {
    const e = loc.get(prefix);
    if (e === undefined) return;
    const v4 = typeof prefix === 'number';
    if (family !== null && (family === IPV4_UNICAST) !== v4) return;
    const g = v4 ? g4 : g6;
    if (e instanceof Path) {
      if (e.source === p && e.gen < g) rib.withdrawPath(p, prefix, e.pathId);
    } else {
      for (const path of e.paths.filter((x) => x.source === p && x.gen < g)) rib.withdrawPath(p, prefix, path.pathId);
    }
  });
}
