// Export: a Loc-RIB best path (or, with ADD-PATH send, every usable candidate) to one peer's Adj-RIB-Out and
// outbound queue, through the peer's rules, the default rules below and its export hook.
//
// Export rules (RFC 4271 §9.1.3, §5.1):
// - a route is never sent back to the peer it was learned from (for eBGP the
//   peer would drop it by its AS loop check anyway; not sending it saves the
//   peer the work and keeps Adj-RIB-Out small);
// - a route learned over iBGP is not sent to iBGP peers (§9.2), except by
//   route reflection (RFC 4456 §6): from a non-client iBGP peer to clients
//   only; from a client to every iBGP peer, clients and non-clients; a
//   reflected route gets ORIGINATOR_ID (the BGP Identifier of the peer it
//   came from, unless already set) and our CLUSTER_ID prepended to
//   CLUSTER_LIST (§8); its NEXT_HOP, AS_PATH and LOCAL_PREF are kept (§6:
//   the reflector must not change them; next-hop-self still applies when
//   configured); routes from eBGP and our own go to every peer as before;
// - the AS we prepend and count in loops is the peer's localAs (a per-session
//   local AS override) when set, else CoreConfig.localAs;
// - to eBGP: our AS prepended (§5.1.2), NEXT_HOP set to our address (§5.1.3),
//   LOCAL_PREF removed (§5.1.5), MULTI_EXIT_DISC removed unless we set it
//   ourselves (§5.1.4: MED is not passed between neighbouring ASes), and the
//   RR attributes ORIGINATOR_ID/CLUSTER_LIST removed (RFC 4456 §8: they are
//   for inside the AS);
// - to iBGP: AS_PATH unchanged, LOCAL_PREF always present (§5.1.5), NEXT_HOP
//   kept (§5.1.3) unless the peer is configured next-hop-self or the route is
//   ours and has no next hop;
// - unrecognised optional transitive attributes pass on with the Partial bit
//   set, non-transitive ones are dropped (§5, §9.1.3);
// - then the peer's export policy.
import { AttrFlag, GRACEFUL_SHUTDOWN, SegmentType } from '../wire/constants.js';
import type { PathAttributes } from '../wire/types.js';
import { Path, isUsable } from './decision.js';
import type { PathSource } from './decision.js';
import type { AddPathOut } from './add-path.js';
import { callPolicy } from './verdicts.js';
import type { RibCore } from './core.js';
import type { AttrSet } from './intern.js';
import { familyOf, usableBest, type Dest, type LocEntry, type Peer } from './peer.js';
import type { PrefixKey } from './types.js';
import { noteSource, sourceId, type UpdateGroup } from './update-group.js';

/**
 * A best path (null: none) into an update group's Adj-RIB-Out and queue (update-group.ts): computed once for all
 * members, as if the route came from someone else; srcOf keeps each member off its own routes.
 */
export function exportTo(rib: RibCore, g: UpdateGroup, prefix: PrefixKey, best: Path | null): void {
  const p = g.rep;
  const fam = familyOf(prefix);
  if (!p.families.has(fam)) return;
  if (p.ap !== null && p.ap.families.has(fam)) return; // exportAddPath's
  // A group not shared yet is its one member's own Adj-RIB-Out: the member's own route is not there at all
  // (RFC 4271 §9.1.3: not sent back), and no source is recorded (update-group.ts, shared).
  const want = best === null || (!g.shared && sourceId(best) === p.id) ? null : exportSet(rib, p, prefix, best, g);
  // nothing to withdraw from an empty Adj-RIB-Out of one member: the source's own group sees every one of its
  // routes this way (a million at a full table), and needs no lookup for them
  if (want === null && !g.shared && g.adjOut.size === 0) return;
  const q = g.queue(fam);
  // a change of the group's not sent yet: then what a member holds is not what Adj-RIB-Out said (noteSource)
  const wasPending = g.shared && q.pending.has(prefix);
  // one probe of Adj-RIB-Out either way (swap / take)
  let cur: AttrSet | undefined;
  if (want !== null) {
    cur = g.adjOut.swap(prefix, want);
    if (cur === want) rib.attrs.release(want); // re-advertising identical state sends nothing
    else q.announce(want, prefix);
  } else {
    cur = g.adjOut.take(prefix);
    if (cur !== undefined) q.withdraw(prefix);
  }
  if (g.shared) noteSource(g, prefix, cur, want, want === null ? 0 : sourceId(best), wasPending);
  if (cur !== undefined && cur !== want) rib.attrs.release(cur);
}

/**
 * A second peer joins a group that was one peer's (update-group.ts, shared): the group's tables become the shared
 * kind before it gets anything from the group; then() runs once they are (at once when they already are). Every
 * Loc-RIB prefix gets its source in srcOf, and the first member's own routes, which its table left out, go into
 * adjOut as the group advertises them to the others. Nothing is queued for them: the first member holds none of
 * them, and the joiner gets adjOut as its catch-up (after this). A change of such a prefix still queued (a
 * withdrawal the first member must get) becomes a personal entry of that member, since the group's message now
 * leaves it out. One pass over the Loc-RIB in slices (walker.ts; 2.1 s of work at 1M routes of the first member,
 * 0.31 s at 100k, load 14-17), once per group in its life. The group is shared from its start: a prefix exported
 * meanwhile is in the shared form already (its srcOf is set, or it has no source) and the pass leaves it alone.
 */
export function shareGroup(rib: RibCore, g: UpdateGroup, then: () => void): void {
  if (g.shareWaiters !== null) {
    g.shareWaiters.push(then);
    return;
  }
  if (g.shared) {
    then();
    return;
  }
  g.shared = true;
  const a = g.rep;
  g.shareWaiters = [then];
  const loc = rib.loc;
  rib.walker.start(loc.keySnapshot(), (prefix) => {
    if (g.srcOf.has(prefix)) return;
    const e = loc.get(prefix);
    if (e !== undefined) shareOne(rib, g, a, prefix, e);
  }, () => {
    const w = g.shareWaiters ?? [];
    g.shareWaiters = null;
    for (const f of w) f();
  }, () => g.members.length === 0);
}

function shareOne(rib: RibCore, g: UpdateGroup, a: Peer, prefix: PrefixKey, e: LocEntry): void {
  const best = usableBest(e);
  if (best === null) return;
  const fam = familyOf(prefix);
  if (!a.families.has(fam) || (a.ap !== null && a.ap.families.has(fam))) return;
  const s = sourceId(best);
  if (s === 0) return;
  g.srcOf.set(prefix, s);
  const q = g.queues.get(fam);
  if (s === a.id) {
    const want = exportSet(rib, a, prefix, best, g);
    if (want !== null) {
      const cur = g.adjOut.swap(prefix, want);
      if (cur !== undefined) rib.attrs.release(cur); // not expected: an unshared group never holds its member's routes
      const was = q?.pending.get(prefix);
      // the group's message for the others (the joiner gets it by its catch-up as well); the member's is personal
      if (was !== undefined && was !== want) q?.announce(want, prefix);
    }
    if (q?.pending.has(prefix) === true) a.personal.add(prefix);
  }
  if (g.adjOut.has(prefix)) g.bump(s, 1, prefix);
}

/** Export one Loc-RIB entry (undefined: the prefix is gone) to a group, with or without ADD-PATH. */
export function exportEntry(rib: RibCore, g: UpdateGroup, prefix: PrefixKey, e: LocEntry | undefined): void {
  const p = g.rep;
  if (p.ap !== null && p.ap.families.has(familyOf(prefix))) {
    for (const m of g.members) exportAddPath(rib, m, prefix, e);
  } else exportTo(rib, g, prefix, e === undefined ? null : usableBest(e));
}

/** RFC 7911: the peer's set of paths for the prefix follows the candidates (add-path.ts); each path passes exportSet. */
export function exportAddPath(rib: RibCore, p: Peer, prefix: PrefixKey, e: LocEntry | undefined): void {
  const ap = p.ap as AddPathOut;
  const fam = familyOf(prefix);
  if (!ap.families.has(fam)) return;
  const best = e === undefined ? null : usableBest(e);
  const paths = best === null ? [] : e instanceof Path ? [e] : (e as Dest).paths.filter(isUsable);
  ap.update(prefix, fam, paths, best, (path) => exportSet(rib, p, prefix, path), rib.release);
}

/**
 * The set to advertise to p for this best path (one reference taken), or null for none. With g, for every member
 * of p's update group: the route's own source is not excluded here (the group does that, update-group.ts).
 */
export function exportSet(rib: RibCore, p: Peer, prefix: PrefixKey, best: Path, g?: UpdateGroup): AttrSet | null {
  const src = best.source;
  if (g === undefined && src.id === p.id) return null; // not back to where it came from
  // RFC 9494 §4.3: a long-lived stale path goes only to peers that announced LLGR; to others it is withdrawn
  // (the default; the optional NO_EXPORT + LOCAL_PREF 0 partial deployment of §4.6 is not implemented).
  if (best.attrs.llgrStale && !p.llgrFamilies.has(familyOf(prefix))) return null;
  const reflect = !src.local && src.ibgp && p.ibgp;
  if (reflect) {
    // RFC 4271 §9.2: no iBGP → iBGP, unless reflecting (RFC 4456 §6): a
    // client's route goes to every iBGP peer, a non-client's to clients only.
    if (!(src as Peer).rrClient && !p.rrClient) return null;
  }
  const v6 = typeof prefix !== 'number';
  // The peer's rules see the route as we hold it (before our AS is prepended or LOCAL_PREF dropped), as BIRD's
  // export filter does; operations of an accepting rule change it before the rules below apply.
  const rules = p.cfg.rules;
  let base = best.attrs;
  let changed: AttrSet | null = null;
  if (rules !== undefined) {
    const d = rib.facts.fill(prefix, base.attrs, src.local, p.ibgp, base.nextHops).decide(v6 ? rules.export6 : rules.export4);
    if (!d.accept) {
      if (g === undefined) p.policyRejectedOut++;
      else for (const m of g.members) if (m.id !== src.id) m.policyRejectedOut++; // the source never had it evaluated
      return null;
    }
    if (d.attrs !== undefined) base = changed = rib.attrs.intern(d.attrs, base.nextHops);
  }
  // The default export of a set depends on the peer (its settings: the
  // epoch), the family, whether the path is ours (MED) or reflected (RR
  // attributes), and for a reflected set without ORIGINATOR_ID on the
  // peer it came from (whose BGP Identifier becomes the ORIGINATOR_ID).
  const kind = src.local ? 1 : reflect ? 2 : 0;
  // a group's slots are negative, a peer's (ADD-PATH) positive
  const slot = ((g === undefined ? p.id : -g.id) * 2 + (v6 ? 1 : 0)) * 3 + kind;
  const epoch = g === undefined ? p.epoch : g.epoch;
  const origin = reflect && base.attrs.originatorId === undefined ? src.routerId : 0;
  let out: AttrSet;
  const cached = base.exportCache?.get(slot);
  if (cached !== undefined && cached.epoch === epoch && cached.set.refs > 0 && cached.origin === origin) {
    out = rib.attrs.retain(cached.set);
  } else {
    const t = transform(rib, p, base, src, v6, reflect);
    if (t === null) {
      if (changed !== null) rib.attrs.release(changed);
      return null;
    }
    out = rib.attrs.intern(t.attrs, t.nextHops);
    (base.exportCache ??= new Map()).set(slot, { epoch, set: out, origin });
  }
  if (changed !== null) rib.attrs.release(changed);
  const policy = p.cfg.exportPolicy;
  if (!policy) return out;
  const res = callPolicy(rib, policy, 'export', prefix, out.attrs, p);
  if (!res.accept) {
    rib.attrs.release(out);
    return null;
  }
  if (res.attrs === undefined || res.attrs === out.attrs) return out;
  const nh = !v6 && res.attrs.nextHop !== undefined ? [res.attrs.nextHop] : out.nextHops;
  const changedOut = rib.attrs.intern(res.attrs, nh);
  rib.attrs.release(out);
  return changedOut;
}

/** The default export rules (see the header comment); null when no next hop can be given. */
function transform(rib: RibCore, p: Peer, src: AttrSet, source: PathSource, v6: boolean, reflect: boolean): { attrs: PathAttributes; nextHops: readonly string[] } | null {
  const a: { -readonly [K in keyof PathAttributes]: PathAttributes[K] } = { ...src.attrs };
  const self = v6 ? p.cfg.localAddress6 : p.cfg.localAddress;
  let hops: readonly string[];
  if (!p.ibgp) {
    const path = a.asPath ?? [];
    const first = path[0];
    const own = p.localAs;
    // RFC 4271 §5.1.2: prepend to a leading AS_SEQUENCE, or start a new one (max 255 per segment).
    a.asPath =
      first !== undefined && first.type === SegmentType.AS_SEQUENCE && first.asns.length < 255
        ? [{ type: SegmentType.AS_SEQUENCE, asns: [own, ...first.asns] }, ...path.slice(1)]
        : [{ type: SegmentType.AS_SEQUENCE, asns: [own] }, ...path];
    delete a.localPref;
    if (!source.local) delete a.med;
    delete a.originatorId;
    delete a.clusterList;
    if (p.cfg.nextHopKeep && src.nextHops.length > 0) hops = src.nextHops;
    else if (self === undefined) return null;
    else hops = [self];
  } else {
    a.localPref ??= rib.defaultLocalPref;
    if (reflect) {
      // RFC 4456 §8: ORIGINATOR_ID names the router that brought the route
      // into the AS (kept when already set); CLUSTER_LIST records our cluster.
      a.originatorId ??= source.routerId >>> 0;
      a.clusterList = [rib.clusterId, ...(a.clusterList ?? [])];
    }
    if (p.cfg.nextHopSelf || src.nextHops.length === 0) {
      if (self === undefined) return null;
      hops = [self];
    } else hops = src.nextHops;
  }
  if (a.unknown !== undefined) {
    const kept = a.unknown
      .filter((u) => u.flags & AttrFlag.Transitive)
      .map((u) => ({ flags: u.flags | AttrFlag.Partial, type: u.type, value: u.value }));
    if (kept.length > 0) a.unknown = kept;
    else delete a.unknown;
  }
  if (rib.draining) {
    // RFC 8326 §4.1: while we drain, every route we advertise carries GRACEFUL_SHUTDOWN, and to iBGP peers
    // LOCAL_PREF 0 (an eBGP peer's own policy decides what the community means there, §4.2).
    if (!(a.communities ?? []).includes(GRACEFUL_SHUTDOWN)) a.communities = [...(a.communities ?? []), GRACEFUL_SHUTDOWN];
    if (p.ibgp) a.localPref = 0;
  }
  if (v6) delete a.nextHop;
  else a.nextHop = hops[0] as string;
  return { attrs: a, nextHops: hops };
}
