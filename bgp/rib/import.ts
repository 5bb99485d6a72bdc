// Import: a decoded UPDATE from an Established peer into its Adj-RIB-In (loop checks, eBGP LOCAL_PREF, the import
// rules and hook), and the kept pre-policy copy for sessions without route refresh (keepReceived / reimport).
import { GRACEFUL_SHUTDOWN, SegmentType, familyKey } from '../wire/constants.js';
import type { PathAttributes, PrefixList, UpdateMessage } from '../wire/types.js';
import { callPolicy } from './verdicts.js';
import type { RibCore } from './core.js';
import type { AttrSet } from './intern.js';
import type { Peer } from './peer.js';
import type { RuleSet } from './policy.js';
import { DEFAULT_KEEP_REFUSED, HOOK_RULE } from './types.js';
import type { Policy, PrefixKey, RefusedRoute, UpdateResult } from './types.js';

/** Apply one decoded UPDATE from an Established peer. */
export function applyUpdate(rib: RibCore, id: number, u: UpdateMessage): UpdateResult {
  const p = rib.peer(id);
  if (!p.established) throw new Error(`UPDATE for peer ${p.address}, which is not Established`);
  const counts = { announced: 0, withdrawn: 0, rejected: 0, ignored: 0 };

  const withdrawList = (list: PrefixList | undefined): void => {
    if (!list || list.prefixes.length === 0) return;
    if (list.safi !== 1 || !p.families.has(familyKey(list.afi, list.safi))) {
      counts.ignored += list.prefixes.length;
      return;
    }
    const ids = p.addPathRx.has(familyKey(list.afi, list.safi)) ? list.pathIds : null;
    const prefixes = list.prefixes as readonly PrefixKey[];
    for (let i = 0; i < prefixes.length; i++) {
      if (p.rawIn !== null) dropRaw(rib, p, prefixes[i] as PrefixKey, ids?.[i] ?? 0);
      if (p.refused > 0) forgetRefused(rib, p, prefixes[i] as PrefixKey, ids?.[i] ?? 0);
      if (rib.withdrawPath(p, prefixes[i] as PrefixKey, ids?.[i] ?? 0)) counts.withdrawn++;
    }
  };

  // RFC 7606 §2: treat-as-withdraw (and, for the family, AFI/SAFI disable)
  // turns every announcement of the UPDATE into a withdrawal.
  const asWithdraw = u.errorAction === 'treat-as-withdraw' || u.errorAction === 'afi-safi-disable';
  withdrawList(u.withdrawn);
  withdrawList(u.mpUnreach?.withdrawn);
  if (asWithdraw) {
    withdrawList(u.nlri);
    withdrawList(u.mpReach?.nlri);
  } else {
    if (u.nlri.prefixes.length > 0) {
      const nh = u.attributes.nextHop;
      announceList(rib, p, u.nlri, u.attributes, nh === undefined ? [] : [nh], counts);
    }
    if (u.mpReach && u.mpReach.nlri.prefixes.length > 0) {
      // The IPv4 NEXT_HOP attribute has no meaning for MP_REACH NLRI (RFC 4760 §3).
      const { nextHop: _ignored, ...rest } = u.attributes;
      announceList(rib, p, u.mpReach.nlri, rest, u.mpReach.nextHops, counts);
    }
  }
  return u.errorAction ? { ...counts, errorAction: u.errorAction } : counts;
}

function announceList(rib: RibCore, 
  p: Peer,
  list: PrefixList,
  received: PathAttributes,
  nextHops: readonly string[],
  counts: { announced: number; withdrawn: number; rejected: number; ignored: number },
): void {
  const fam = familyKey(list.afi, list.safi);
  const prefixes = list.prefixes as readonly PrefixKey[];
  if (list.safi !== 1 || !p.families.has(fam)) {
    counts.ignored += prefixes.length;
    return;
  }
  const ids = p.addPathRx.has(fam) ? list.pathIds : null;
  const attrs = nextHops.length === 0 ? null : importAttrs(rib, p, received);
  if (attrs === null) {
    // Refused for the whole UPDATE (loop, no next hop): an announcement still
    // replaces what the peer sent before, so the old path goes (implicit withdraw).
    for (let i = 0; i < prefixes.length; i++) {
      counts.rejected++;
      if (p.rawIn !== null) dropRaw(rib, p, prefixes[i] as PrefixKey, ids?.[i] ?? 0);
      if (p.refused > 0) forgetRefused(rib, p, prefixes[i] as PrefixKey, ids?.[i] ?? 0);
      if (rib.withdrawPath(p, prefixes[i] as PrefixKey, ids?.[i] ?? 0)) counts.withdrawn++;
    }
    return;
  }
  const policy = p.cfg.importPolicy;
  const rules = p.cfg.rules === undefined ? undefined : list.afi === 1 ? p.cfg.rules.import4 : p.cfg.rules.import6;
  const shared = rib.attrs.intern(attrs, nextHops); // one reference held for the loop
  for (let i = 0; i < prefixes.length; i++) {
    const prefix = prefixes[i] as PrefixKey;
    const pathId = ids?.[i] ?? 0;
    if (p.rawIn !== null) {
      const key = `${prefix}|${pathId}`;
      const old = p.rawIn.get(key);
      p.rawIn.set(key, { prefix, pathId, set: rib.attrs.retain(shared) });
      if (old !== undefined) rib.attrs.release(old.set);
    }
    if (importOne(rib, p, prefix, pathId, shared, rules, policy)) counts.announced++;
    else {
      counts.rejected++;
      if (rib.withdrawPath(p, prefix, pathId)) counts.withdrawn++;
    }
  }
  rib.attrs.release(shared);
}

/**
 * The import rules and hook for one received route; announces it into Adj-RIB-In and returns true, or returns
 * false when refused (the caller withdraws what the peer had).
 */
export function importOne(rib: RibCore, p: Peer, prefix: PrefixKey, pathId: number, shared: AttrSet, rules: RuleSet | undefined, policy: Policy | undefined): boolean {
  const nextHops = shared.nextHops;
  let now = shared.attrs;
  let rule = 0;
  if (rules !== undefined) {
    const d = rib.facts.fill(prefix, now, false, p.ibgp, nextHops).decide(rules);
    rule = rib.ruleIndex(d.rule);
    if (!d.accept) {
      p.policyRejectedIn++;
      keepRefused(rib, p, prefix, pathId, rule, shared);
      return false;
    }
    if (d.attrs !== undefined) now = d.attrs;
  }
  if (policy) {
    const res = callPolicy(rib, policy, 'import', prefix, now, p);
    if (!res.accept) {
      keepRefused(rib, p, prefix, pathId, rib.ruleIndex(HOOK_RULE), shared);
      return false;
    }
    if (res.attrs !== undefined) now = res.attrs;
  }
  if (p.refused > 0) forgetRefused(rib, p, prefix, pathId);
  let set: AttrSet;
  if (now !== shared.attrs) {
    const nh = typeof prefix === 'number' && now.nextHop !== undefined ? [now.nextHop] : nextHops;
    set = rib.attrs.intern(now, nh);
  } else set = rib.attrs.retain(shared);
  rib.announcePath(p, prefix, pathId, set, rule);
  return true;
}

/** Remember a refused route (replacing what was kept for the same path id) within the peer's bound. */
export function keepRefused(rib: RibCore, p: Peer, prefix: PrefixKey, pathId: number, rule: number, set: AttrSet): void {
  const a = p.refusedIn.get(prefix);
  if (a !== undefined) {
    for (let i = 0; i < a.length; i += 3) {
      if (a[i] !== pathId) continue;
      if (a[i + 2] !== set) {
        rib.attrs.release(a[i + 2] as AttrSet);
        a[i + 2] = rib.attrs.retain(set);
      }
      a[i + 1] = rule;
      return;
    }
  }
  if (p.refused >= (rib.config.keepRefused ?? DEFAULT_KEEP_REFUSED)) {
    p.refusedNotKept++;
    return;
  }
  const s = rib.attrs.retain(set);
  if (a === undefined) p.refusedIn.set(prefix, [pathId, rule, s]);
  else p.refusedIn.set(prefix, [...a, pathId, rule, s]); // exactly sized
  p.refused++;
}

/** The path is no longer refused (withdrawn, or now accepted). */
export function forgetRefused(rib: RibCore, p: Peer, prefix: PrefixKey, pathId: number): void {
  const a = p.refusedIn.get(prefix);
  if (a === undefined) return;
  for (let i = 0; i < a.length; i += 3) {
    if (a[i] !== pathId) continue;
    rib.attrs.release(a[i + 2] as AttrSet);
    p.refused--;
    if (a.length === 3) p.refusedIn.delete(prefix);
    else p.refusedIn.set(prefix, [...a.slice(0, i), ...a.slice(i + 3)]);
    return;
  }
}

/** Forget every refused route kept for the peer (its session went down). */
export function clearRefused(rib: RibCore, p: Peer): void {
  p.refusedIn.forEach((a) => {
    for (let i = 2; i < a.length; i += 3) rib.attrs.release(a[i] as AttrSet);
  });
  p.refusedIn.clear();
  p.refused = 0;
}

/** The routes a peer sent that import rules refused, kept for a prefix (bounded by CoreConfig.keepRefused). */
export function refusedRoutes(rib: RibCore, p: Peer, prefix: PrefixKey): RefusedRoute[] {
  const a = p.refusedIn.get(prefix);
  if (a === undefined) return [];
  const out: RefusedRoute[] = [];
  for (let i = 0; i < a.length; i += 3) out.push({ pathId: a[i] as number, rule: rib.ruleName(a[i + 1] as number), attrs: a[i + 2] as AttrSet });
  return out;
}

export function dropRaw(rib: RibCore, p: Peer, prefix: PrefixKey, pathId: number): void {
  const m = p.rawIn as NonNullable<Peer['rawIn']>;
  const key = `${prefix}|${pathId}`;
  const old = m.get(key);
  if (old === undefined) return;
  m.delete(key);
  rib.attrs.release(old.set);
}

/**
 * Keep what the peer sends before the import rules (on), or stop and forget it (off). For a session that cannot
 * refresh (RFC 2918), so changed import rules apply without a reset: reimport().
 */
export function keepReceived(rib: RibCore, id: number, on: boolean): void {
  const p = rib.peer(id);
  if (!on) {
    p.rawIn?.forEach((e) => rib.attrs.release(e.set));
    p.rawIn = null;
    p.reimports = 0; // their walks stop (reimport)
  } else p.rawIn ??= new Map();
}

/** Whether reimport() can apply changed import rules for this peer. */
export function keepsReceived(rib: RibCore, id: number): boolean {
  return rib.peer(id).rawIn !== null;
}

/**
 * Run the peer's current import rules again over what it sent (kept by keepReceived), in a walk (walker.ts) over
 * what was kept at this call: a route the peer withdraws or sends again meanwhile has met the current rules already
 * (the walk finds it gone, or decides it again to the same result). Returns the paths accepted by the time it
 * returns (all of them when the first slice covers what was kept).
 */
export function reimport(rib: RibCore, id: number): number {
  const p = rib.peer(id);
  const raw = p.rawIn;
  if (raw === null) return 0;
  let n = 0;
  // A session that goes down meanwhile finishes the walk first (core.ts peerDown): the paths it keeps as stale are
  // then the ones these rules accepted, as if the walk had run at once.
  p.reimports++;
  // the kept routes' keys ride in the walker's string list (it only hands each key back to the visitor)
  rib.walker.start({ v4: new Float64Array(0), v6: [...raw.keys()] }, (key) => {
    const e = raw.get(key as string);
    if (e === undefined) return;
    const rules = p.cfg.rules === undefined ? undefined : typeof e.prefix === 'number' ? p.cfg.rules.import4 : p.cfg.rules.import6;
    if (importOne(rib, p, e.prefix, e.pathId, e.set, rules, p.cfg.importPolicy)) n++;
    else rib.withdrawPath(p, e.prefix, e.pathId);
  }, () => {
    p.reimports--;
  }, () => p.rawIn !== raw); // what was kept is forgotten (keepReceived off): nothing left to import again
  return n;
}

/**
 * Import rules that do not depend on the prefix (also asked by prefix-limit.ts before an UPDATE is applied). Returns the attributes to
 * store, or null when the route must be refused.
 */
export function importAttrs(rib: RibCore, p: Peer, a: PathAttributes): PathAttributes | null {
  // The session's own AS (a local AS override) and the speaker's both mark a loop.
  const own = p.localAs;
  const global = rib.config.localAs;
  let count = 0;
  for (const s of a.asPath ?? []) {
    // RFC 4271 §9.1.2: our AS in the path is a loop; confederation segments
    // are our own confederation's business (RFC 5065) and are not counted.
    if (s.type !== SegmentType.AS_SEQUENCE && s.type !== SegmentType.AS_SET) continue;
    for (const asn of s.asns) if (asn === own || asn === global) count++;
  }
  if (count > (p.cfg.allowOwnAs ?? 0)) return null;
  // RFC 4456 §8: a route carrying our own ORIGINATOR_ID came back to us;
  // one whose CLUSTER_LIST holds our CLUSTER_ID went round the cluster.
  if (a.originatorId !== undefined && a.originatorId >>> 0 === rib.config.routerId >>> 0) return null;
  if (a.clusterList !== undefined && a.clusterList.some((c) => c >>> 0 === rib.clusterId)) return null;
  // RFC 8326 §4.2: a route carrying GRACEFUL_SHUTDOWN is about to go (its sender drains); rank it lowest, as
  // LOCAL_PREF 0, from iBGP and eBGP peers alike, so traffic moves to another path before the withdrawal.
  const draining = a.communities !== undefined && a.communities.includes(GRACEFUL_SHUTDOWN);
  if (!p.ibgp) {
    // RFC 4271 §5.1.5: LOCAL_PREF from an external peer is ignored; ours applies.
    return { ...a, localPref: draining ? 0 : rib.defaultLocalPref };
  }
  return draining && a.localPref !== 0 ? { ...a, localPref: 0 } : a;
}
