// Maximum prefixes (RFC 4486 §4) decided before an UPDATE is applied: how many paths a peer's Adj-RIB-In would hold
// per family once this UPDATE were taken, so the speaker can refuse an UPDATE that would cross the limit as a whole
// (and close the session with Cease / Maximum Number of Prefixes Reached) instead of taking it and closing afterwards
// — which let the routes beyond the limit into the Loc-RIB, the FIB and other peers' Adj-RIB-Out for a moment.
//
// Two passes, so the usual UPDATE costs one lookup per announced prefix: an upper bound first (every announced
// route that is not held yet counts, withdrawals do not); only when that bound crosses a limit, the exact count, in
// the order applyUpdate (import.ts) takes the message: withdrawals first, then announcements, each through the loop
// checks and the import rules. The import hook (CoreConfig/PeerConfig importPolicy, a library user's function that
// may count or log) is not called here: a route it would refuse is counted, so a hook refusing routes of a
// crossing UPDATE can only close the session early, never let a route past the limit.
import { familyKey } from '../wire/constants.js';
import type { PathAttributes, PrefixList, UpdateMessage } from '../wire/types.js';
import { ifnameOf } from './verdicts.js';
import type { RibCore } from './core.js';
import { Path } from './decision.js';
import { importAttrs } from './import.js';
import type { Peer } from './peer.js';
import { evaluate } from './policy.js';
import type { PrefixKey } from './types.js';

/** Paths per family, as RibCore.peerStats gives them. */
export interface FamilyCounts {
  received4: number;
  received6: number;
}

/** Whether the peer holds a path for (prefix, path id) in its Adj-RIB-In (post-policy). */
function holds(rib: RibCore, p: Peer, prefix: PrefixKey, pathId: number): boolean {
  const e = rib.loc.get(prefix);
  if (e === undefined) return false;
  if (e instanceof Path) return e.source === p && e.pathId === pathId;
  return e.paths.some((x) => x.source === p && x.pathId === pathId);
}

/** The lists of an UPDATE a peer's session takes (unicast, a negotiated family); others are ignored by import. */
function taken(p: Peer, list: PrefixList | undefined): list is PrefixList {
  return list !== undefined && list.prefixes.length > 0 && list.safi === 1 && p.families.has(familyKey(list.afi, list.safi));
}

/**
 * What the peer's Adj-RIB-In would count per family after `u`: exact when the upper bound crosses `limits`, else
 * that bound (within the limits either way, so the caller needs no exact figure). Nothing is changed.
 */
export function countsAfterUpdate(rib: RibCore, id: number, u: UpdateMessage, limits: { v4: number; v6: number }): FamilyCounts {
  const p = rib.peer(id);
  const now: FamilyCounts = { received4: p.paths - p.paths6, received6: p.paths6 };
  // RFC 7606 treat-as-withdraw (or AFI/SAFI disable) turns every announcement into a withdrawal: nothing grows;
  // a session reset is the FSM's, and applies nothing.
  if (u.errorAction !== undefined) return now;
  const announced: { list: PrefixList; attrs: PathAttributes; nextHops: readonly string[] }[] = [];
  if (taken(p, u.nlri)) announced.push({ list: u.nlri, attrs: u.attributes, nextHops: u.attributes.nextHop === undefined ? [] : [u.attributes.nextHop] });
  if (u.mpReach !== undefined && taken(p, u.mpReach.nlri)) {
    const { nextHop: _ignored, ...rest } = u.attributes; // RFC 4760 §3, as import.ts
    announced.push({ list: u.mpReach.nlri, attrs: rest, nextHops: u.mpReach.nextHops });
  }
  if (announced.length === 0) return now;

  // Upper bound: every announced route not held yet is a new path.
  const bound = { ...now };
  for (const { list } of announced) {
    const ids = p.addPathRx.has(familyKey(list.afi, list.safi)) ? list.pathIds : null;
    const prefixes = list.prefixes as readonly PrefixKey[];
    let added = 0;
    for (let i = 0; i < prefixes.length; i++) if (!holds(rib, p, prefixes[i] as PrefixKey, ids?.[i] ?? 0)) added++;
    if (list.afi === 1) bound.received4 += added;
    else bound.received6 += added;
  }
  if (bound.received4 <= limits.v4 && bound.received6 <= limits.v6) return bound;

  // Exact: replay the UPDATE over an overlay of what changes (route key → held after it).
  const after = { ...now };
  const overlay = new Map<string, boolean>();
  const held = (prefix: PrefixKey, pathId: number): boolean => overlay.get(`${prefix}|${pathId}`) ?? holds(rib, p, prefix, pathId);
  const set = (afi: number, prefix: PrefixKey, pathId: number, on: boolean): void => {
    if (held(prefix, pathId) === on) return;
    overlay.set(`${prefix}|${pathId}`, on);
    const d = on ? 1 : -1;
    if (afi === 1) after.received4 += d;
    else after.received6 += d;
  };
  for (const list of [u.withdrawn, u.mpUnreach?.withdrawn]) {
    if (!taken(p, list)) continue;
    const ids = p.addPathRx.has(familyKey(list.afi, list.safi)) ? list.pathIds : null;
    const prefixes = list.prefixes as readonly PrefixKey[];
    for (let i = 0; i < prefixes.length; i++) set(list.afi, prefixes[i] as PrefixKey, ids?.[i] ?? 0, false);
  }
  for (const { list, attrs, nextHops } of announced) {
    const ids = p.addPathRx.has(familyKey(list.afi, list.safi)) ? list.pathIds : null;
    const prefixes = list.prefixes as readonly PrefixKey[];
    const a = nextHops.length === 0 ? null : importAttrs(rib, p, attrs);
    const rules = p.cfg.rules === undefined ? undefined : list.afi === 1 ? p.cfg.rules.import4 : p.cfg.rules.import6;
    for (let i = 0; i < prefixes.length; i++) {
      const prefix = prefixes[i] as PrefixKey;
      let accept = a !== null;
      if (a !== null && rules !== undefined) {
        accept = evaluate(rules, { prefix, attrs: a, local: false, ibgp: p.ibgp, ifname: () => ifnameOf(rib, prefix, nextHops, false) }).accept;
      }
      set(list.afi, prefix, ids?.[i] ?? 0, accept);
    }
  }
  return after;
}
