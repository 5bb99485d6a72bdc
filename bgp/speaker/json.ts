// The JSON shapes of docs/contract.md ("The `--json` shapes") that the speaker builds (skeinctl peers / status / routes --json): a peer, our own
// graceful restart, a route, and one path of the Loc-RIB with where it came from and why it won or lost.
import { isUsable, unusableWhy } from '../rib/decision.js';
import type { Path, Reason } from '../rib/decision.js';
import { ORIGIN_NAMES, SegmentType } from '../wire/constants.js';
import { communityText, extendedCommunityText } from '../wire/json.js';
import type { State } from '../session/fsm.js';
import type { FamilyName } from './config.js';
import type { GracefulRestartJson } from './llgr.js';
import type { MessageTypeName } from './types.js';

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
  /** false: the next hop is bad or unresolvable; the path is kept but never best, installed or advertised */
  usable: boolean;
  /** why not usable (a sentence), null when usable */
  unusableReason: string | null;
  /** the reason's stable code (martian, own-address, link-local-only, unresolvable, invalid), null when usable */
  unusableCode: string | null;
}

export interface PeerJson {
  address: string;
  port: number;
  asn: number;
  localAsn: number;
  type: string;
  state: State;
  since: string;
  info: string;
  families: FamilyName[];
  prefixes: { received: number; accepted: number; advertised: number };
  /** the same per family the session carries (a dual-stack session has both: the sum is `prefixes`) */
  prefixesByFamily: Partial<Record<FamilyName, { received: number; accepted: number; advertised: number }>>;
  routeReflectorClient: boolean;
  connection: number | null;
  messages: { in: Record<MessageTypeName, number>; out: Record<MessageTypeName, number> };
  notifications: { in: Record<string, number>; out: Record<string, number> };
  gracefulRestart: GracefulRestartJson;
  /**
   * ADD-PATH (RFC 7911) as negotiated on the current session: the families we send several paths in (sendMode
   * says how many: "all", "best N", or "off" when only the best goes out, under a path id) and receive them in.
   */
  addPath: { send: FamilyName[]; receive: FamilyName[]; sendMode: string };
}

/** Our own restart as the operator sees it (`skeinctl status --json`, field "gracefulRestart"). */
export interface LocalRestartJson {
  /** the R bit still goes into our OPENs (RFC 4724 §4.1) */
  restarting: boolean;
  /** our UPDATEs wait for End-of-RIB from the peers (selection deferral) */
  deferring: boolean;
  /** seconds left before the deferral ends anyway; null when not deferring */
  secondsLeft: number | null;
  /** peers whose session or End-of-RIB the deferral waits for */
  waitingFor: string[];
}

/** One prefix of the Loc-RIB. Whether it is in the kernel is the daemon's to add (src/control/types.ts RouteJson). */
export interface RouteJson {
  prefix: string;
  best: PathJson;
  paths: PathJson[];
}

const REASONS: Readonly<Record<Reason, string>> = {
  'only-path': 'only path',
  'next-hop': 'usable next hop (RFC 4271 §9.1.2)',
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

/** A decision reason as `skeinctl routes` words it. */
export function reasonText(reason: Reason): string {
  return REASONS[reason];
}

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
    origin: ORIGIN_NAMES[a.origin ?? 2],
    localPref: a.localPref ?? null,
    med: a.med ?? null,
    communities: (a.communities ?? []).map(communityText),
    largeCommunities: (a.largeCommunities ?? []).map((l) => l.join(':')),
    extendedCommunities: (a.extendedCommunities ?? []).map(extendedCommunityText),
    reason: REASONS[reason],
    usable: isUsable(p),
    unusableReason: unusableWhy(p)?.text ?? null,
    unusableCode: unusableWhy(p)?.code ?? null,
  };
}
