// Import: a decoded UPDATE from an Established peer into its Adj-RIB-In (loop checks, eBGP LOCAL_PREF, the import
// rules and hook), and the kept pre-policy copy for sessions without route refresh (keepReceived / reimport).
import { SegmentType, familyKey } from '../wire/constants.js';
import type { PathAttributes, PrefixList, UpdateMessage } from '../wire/types.js';
import type { RibCore } from './core.js';
import type { AttrSet } from './intern.js';
import type { Peer } from './peer.js';
import { evaluate, type RuleSet } from './policy.js';
import type { Policy, PrefixKey, UpdateResult } from './types.js';

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
      if (p.rejectedIn.size > 0) p.rejectedIn.delete(prefixes[i] as PrefixKey);
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
  if (rules !== undefined) {
    const d = evaluate(rules, { prefix, attrs: now, local: false, ibgp: p.ibgp, ifname: () => rib.ifnameOf(prefix, nextHops, false) });
    if (!d.accept) {
      p.policyRejectedIn++;
      p.rejectedIn.set(prefix, d.rule);
      return false;
    }
    if (p.rejectedIn.size > 0) p.rejectedIn.delete(prefix);
    if (d.attrs !== undefined) now = d.attrs;
  }
  if (policy) {
    const res = rib.callPolicy(policy, 'import', prefix, now, p);
    if (!res.accept) return false;
    if (res.attrs !== undefined) now = res.attrs;
  }
  let set: AttrSet;
  if (now !== shared.attrs) {
    const nh = typeof prefix === 'number' && now.nextHop !== undefined ? [now.nextHop] : nextHops;
    set = rib.attrs.intern(now, nh);
  } else set = rib.attrs.retain(shared);
  rib.announcePath(p, prefix, pathId, set);
  return true;
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
  } else p.rawIn ??= new Map();
}

/** Whether reimport() can apply changed import rules for this peer. */
export function keepsReceived(rib: RibCore, id: number): boolean {
  return rib.peer(id).rawIn !== null;
}

/** Run the peer's current import rules again over what it sent (kept by keepReceived); returns paths accepted. */
export function reimport(rib: RibCore, id: number): number {
  const p = rib.peer(id);
  if (p.rawIn === null) return 0;
  let n = 0;
  for (const e of [...p.rawIn.values()]) {
    const rules = p.cfg.rules === undefined ? undefined : typeof e.prefix === 'number' ? p.cfg.rules.import4 : p.cfg.rules.import6;
    if (importOne(rib, p, e.prefix, e.pathId, e.set, rules, p.cfg.importPolicy)) n++;
    else rib.withdrawPath(p, e.prefix, e.pathId);
  }
  return n;
}

/**
 * Import rules that do not depend on the prefix. Returns the attributes to
 * store, or null when the route must be refused.
 */
function importAttrs(rib: RibCore, p: Peer, a: PathAttributes): PathAttributes | null {
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
  if (!p.ibgp) {
    // RFC 4271 §5.1.5: LOCAL_PREF from an external peer is ignored; ours applies.
    return { ...a, localPref: rib.defaultLocalPref };
  }
  return a;
}
