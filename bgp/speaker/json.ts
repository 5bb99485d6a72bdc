// The CONTRACT PATH shape (skeinctl routes --json): one path of the Loc-RIB
// with where it came from and why it won or lost.
import type { Path, Reason } from '../rib/decision.js';
import { ORIGIN_NAMES, SegmentType } from '../wire/constants.js';
import { communityText, extendedCommunityText } from '../wire/json.js';

export interface PathJson {
  from: string;
  nextHops: string[];
  /** AS numbers in path order; an AS_SET's members appear in braces' place as a nested list */
  asPath: (number | number[])[];
  origin: string;
  localPref: number | null;
  med: number | null;
  communities: string[];
  largeCommunities: string[];
  extendedCommunities: string[];
  reason: string;
}

const REASONS: Readonly<Record<Reason, string>> = {
  'only-path': 'only path',
  'llgr-stale': 'not long-lived stale (RFC 9494)',
  'local-pref': 'higher LOCAL_PREF',
  local: 'locally originated',
  'as-path-length': 'shorter AS_PATH',
  origin: 'lower ORIGIN',
  med: 'lower MED',
  'ebgp-over-ibgp': 'eBGP over iBGP',
  'igp-cost': 'lower IGP cost to next hop',
  'router-id': 'lower router ID',
  'cluster-list-length': 'shorter CLUSTER_LIST',
  'peer-address': 'lower peer address',
  'path-id': 'lower path ID',
  equal: 'equal',
};

export function pathJson(p: Path, reason: Reason): PathJson {
  const a = p.attrs.attrs;
  const asPath: (number | number[])[] = [];
  for (const s of a.asPath ?? []) {
    if (s.type === SegmentType.AS_SEQUENCE || s.type === SegmentType.AS_CONFED_SEQUENCE) asPath.push(...s.asns);
    else asPath.push([...s.asns]);
  }
  return {
    from: p.source.local ? 'local' : p.source.address,
    nextHops: [...p.attrs.nextHops],
    asPath,
    origin: ORIGIN_NAMES[a.origin ?? 2] ?? 'INCOMPLETE',
    localPref: a.localPref ?? null,
    med: a.med ?? null,
    communities: (a.communities ?? []).map(communityText),
    largeCommunities: (a.largeCommunities ?? []).map((l) => l.join(':')),
    extendedCommunities: (a.extendedCommunities ?? []).map(extendedCommunityText),
    reason: REASONS[reason] ?? reason,
  };
}
