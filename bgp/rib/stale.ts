// Stale paths of a peer (RFC 4724 graceful restart, RFC 7313 enhanced route refresh, RFC 9494 long-lived graceful
// restart): a path is stale when it was announced under an older generation of its family than the peer's current
// one (markStale bumps the generation; the peer announcing a path again makes it fresh).
import { NO_LLGR, LLGR_STALE } from '../wire/constants.js';
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
  p.gens.set(family, p.gen(family) + 1);
}

/**
 * Remove the peer's paths still stale in a family (all families when
 * family is omitted): RFC 7313 §4 EoRR, RFC 4724 §4.2 End-of-RIB or timer.
 * Returns how many paths went.
 */
export function sweepStale(rib: RibCore, id: number, family?: number): number {
  const p = rib.peer(id);
  return sweepPaths(rib, p, family ?? null, false);
}

/**
 * RFC 9494 §4.2: the peer's restart time ran out (or was 0) and a family of its stale paths enters the long-lived
 * phase. Each path still stale gets the LLGR_STALE community (§3.2), which ranks it below every other path (§4.4)
 * and keeps it from peers without LLGR (§4.3); one carrying NO_LLGR (§3.3) is removed instead. The paths stay
 * stale: the peer re-announcing them makes them fresh (without the community), and sweepStale removes the rest.
 */
export function enterLongLivedStale(rib: RibCore, id: number, family: number): { kept: number; removed: number } {
  const p = rib.peer(id);
  const todo: [PrefixKey, Path][] = [];
  rib.loc.forEach((e, prefix) => {
    if (familyOf(prefix) !== family) return;
    for (const path of e instanceof Path ? [e] : e.paths) if (path.source === p && path.gen < p.gen(family)) todo.push([prefix, path]);
  });
  let kept = 0;
  let removed = 0;
  for (const [prefix, path] of todo) {
    const a = path.attrs.attrs;
    if (a.communities?.includes(NO_LLGR)) {
      if (rib.withdrawPath(p, prefix, path.pathId)) removed++;
      continue;
    }
    kept++;
    if (path.attrs.llgrStale) continue; // it came with the community already
    const set = rib.attrs.intern({ ...a, communities: [...(a.communities ?? []), LLGR_STALE] }, path.attrs.nextHops);
    rib.put(prefix, p, path.pathId, set, path.gen);
  }
  return { kept, removed };
}

/** How many of a peer's paths are stale now (graceful restart, route refresh); walks the table. */
export function staleCount(rib: RibCore, id: number): number {
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

/** Remove the paths of p in a family (or all families): the stale ones, or every one when all is set. */
export function sweepPaths(rib: RibCore, p: Peer, family: number | null, all: boolean): number {
  if (p.paths === 0) return 0;
  const before = p.paths;
  const stale = (path: Path, prefix: PrefixKey): boolean => {
    const f = familyOf(prefix);
    if (family !== null && f !== family) return false;
    return all || path.gen < p.gen(f);
  };
  // Adj-RIB-In lives in the shared prefix table (see put()): one walk finds the peer's paths.
  rib.loc.forEach((e, prefix) => {
    if (e instanceof Path) {
      if (e.source === p && stale(e, prefix)) rib.withdrawPath(p, prefix, e.pathId);
    } else {
      for (const path of e.paths.filter((x) => x.source === p && stale(x, prefix))) rib.withdrawPath(p, prefix, path.pathId);
    }
  });
  return before - p.paths;
}
