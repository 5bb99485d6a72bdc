// The route-processing core's types: what its callers configure, hand in and get back (core.ts).
import type { PathAttributes, Prefix4, Prefix6 } from '../wire/types.js';
import type { Path, Reason } from './decision.js';
import type { AttrSet } from './intern.js';
import type { AddPathSend } from './add-path.js';
import type { PeerRules } from './policy.js';
import type { WalkerOptions } from './walker.js';

export type PrefixKey = Prefix4 | Prefix6;

/** What policy hooks see of a peer. */
export interface PeerView {
  readonly id: number;
  readonly address: string;
  readonly asn: number;
  readonly ibgp: boolean;
}

export type PolicyResult = { readonly accept: true; readonly attrs?: PathAttributes } | { readonly accept: false };
/** (prefix, attributes, peer) → accept, possibly with changed attributes, or reject. */
export type Policy = (prefix: PrefixKey, attrs: PathAttributes, peer: PeerView) => PolicyResult;

export interface PeerConfig {
  readonly address: string;
  readonly asn: number;
  /** our IPv4 address on this session: the NEXT_HOP when next-hop-self applies */
  readonly localAddress?: string;
  /** our IPv6 address for MP_REACH next hops when next-hop-self applies */
  readonly localAddress6?: string;
  /** iBGP: replace the next hop with ours (eBGP does unless nextHopKeep) */
  readonly nextHopSelf?: boolean;
  /**
   * eBGP: pass the route's own NEXT_HOP on instead of ours (Calico nextHopMode Keep / keepOriginalNextHop,
   * BIRD's `next hop keep`). RFC 4271 §5.1.3 allows a next hop other than our address toward an external peer
   * (a third-party next hop) when the peer can reach it directly; that is the operator's promise here. Our
   * own routes, which carry no next hop, still get ours.
   */
  readonly nextHopKeep?: boolean;
  /** accept routes whose AS_PATH holds our AS up to this many times (Calico numAllowedLocalASNumbers); default 0 */
  readonly allowOwnAs?: number;
  /**
   * our AS on this session when it differs from CoreConfig.localAs (RFC 4271
   * §4.2 My Autonomous System of this session's OPEN): prepended toward eBGP,
   * counted in the AS loop check, and compared with asn to tell iBGP from eBGP
   */
  readonly localAs?: number;
  /** RFC 4456: the peer is a route reflector client of ours */
  readonly routeReflectorClient?: boolean;
  /**
   * RFC 7911: advertise several paths per prefix (see add-path.ts) in the
   * families where the session negotiated ADD-PATH send; unset: the best only
   */
  readonly addPathSend?: AddPathSend;
  readonly importPolicy?: Policy;
  readonly exportPolicy?: Policy;
  /**
   * Compiled rule lists (policy.ts): import rules run before importPolicy, export rules before the attribute
   * rules of RFC 4271 §5.1 (BIRD runs a protocol's export filter before prepending its AS). Unset: accept all.
   */
  readonly rules?: PeerRules;
}

export interface CoreConfig {
  readonly localAs: number;
  /** our BGP Identifier, uint32 */
  readonly routerId: number;
  /** most equal-cost paths handed to the FIB; default 1 */
  readonly maxPaths?: number;
  /** LOCAL_PREF given to routes from eBGP peers and assumed when missing; default 100 */
  readonly defaultLocalPref?: number;
  /** RFC 4456 CLUSTER_ID (uint32) used when reflecting; default routerId (Calico routeReflectorClusterID) */
  readonly clusterId?: number;
  /**
   * Told when a policy hook throws. The route is then rejected (import) or not
   * advertised (export) and processing goes on: a faulty hook must not leave
   * the RIB half-updated or stop other peers' routes.
   */
  readonly onPolicyError?: (e: PolicyError) => void;
  /**
   * The outgoing interface of a route, for rules that match on it (BGPFilter `interface`, Calico's tunnel and BPF
   * interface rules): asked only when such a rule is reached. Unset: no route has an interface.
   */
  readonly routeInterface?: (prefix: PrefixKey, nextHops: readonly string[], local: boolean) => string | undefined;
  /** whole-table walks (walker.ts): slice length, clock and scheduler; default 10 ms slices on setImmediate */
  readonly walk?: WalkerOptions;
  /**
   * Told after a slice of a walk ran on a later turn of the event loop: it may have left best-path changes and
   * outbound work (the driver drains and sends, as after applyUpdate).
   */
  readonly onWork?: () => void;
  /**
   * Peers whose export is the same share one update group (update-group.ts): the driver then takes their work with
   * nextGroupBatch / nextPersonalBatch. Off (the default): every peer has a group of its own, and nextBatch(id)
   * gives a peer's work.
   */
  readonly updateGroups?: boolean;
  /**
   * Where a next hop resolved through another Loc-RIB route (recursive.ts) resolves may have moved (another route,
   * another best of it, or the host's routes changed): the FIB asks recursiveHops() again.
   */
  readonly onRecursiveMoved?: () => void;
  /**
   * Most routes refused by import rules kept per peer, with their attributes and the refusing rule, so an operator
   * can list them (BIRD's `import keep filtered`, FRR's soft-reconfiguration inbound); beyond it a refused route is
   * only counted. 0 keeps none. Default DEFAULT_KEEP_REFUSED (core.ts).
   */
  readonly keepRefused?: number;
}

/** Default bound of refused routes kept per peer (CoreConfig.keepRefused; README: about 90 bytes each). */
export const DEFAULT_KEEP_REFUSED = 10_000;

/** the name recorded for a route refused by a CoreConfig/PeerConfig import hook rather than a rule list */
export const HOOK_RULE = 'import policy hook';

/** A route the import rules refused, as kept (RibCore.refusedRoutes). */
export interface RefusedRoute {
  readonly pathId: number;
  readonly attrs: AttrSet;
  /** the rule that refused it */
  readonly rule: string;
}

/** Why a route was or was not accepted from, or advertised to, one peer (policyTrace). */
export interface PolicyVerdict {
  readonly peer: string;
  readonly accept: boolean;
  readonly rule: string;
}

export interface PolicyError {
  readonly which: 'import' | 'export';
  readonly prefix: PrefixKey;
  readonly peer: PeerView;
  readonly error: unknown;
}

/** What the session negotiated that the RIB needs (a NegotiatedSession fits). */
export interface SessionTerms {
  readonly peerId: number;
  readonly ibgp: boolean;
  readonly families: readonly number[];
  readonly addPathRx: ReadonlySet<number>;
  readonly addPathTx: ReadonlySet<number>;
  readonly enhancedRouteRefresh: boolean;
  /** families where the peer announced LLGR (RFC 9494 §4.3: only those may receive LLGR_STALE paths); default none */
  readonly llgrFamilies?: ReadonlySet<number>;
}

/** A best-path change for the FIB consumer. best null: the prefix is gone. */
export interface BestChange {
  readonly prefix: PrefixKey;
  readonly afi: 1 | 2;
  readonly best: AttrSet | null;
  /** next hops of the multipath set (first next hop of each path), best first */
  readonly nextHops: readonly string[];
  /** the best path is our own origination (nothing to install from BGP) */
  readonly local: boolean;
  /** peer address of the best path, or 'local' */
  readonly from: string | null;
}

export type OutBatch =
  | {
      readonly kind: 'announce';
      readonly afi: number;
      readonly safi: number;
      readonly attrs: AttrSet;
      readonly prefixes: PrefixKey[];
      /** RFC 7911 path ids when ADD-PATH send is negotiated for the family, else null */
      readonly pathIds: number[] | null;
    }
  | { readonly kind: 'withdraw'; readonly afi: number; readonly safi: number; readonly prefixes: PrefixKey[]; readonly pathIds: number[] | null }
  /** RFC 4724 §2 End-of-RIB marker: the initial table has been sent */
  | { readonly kind: 'end-of-rib'; readonly afi: number; readonly safi: number }
  /** RFC 7313 §4 BoRR / EoRR around a refreshed Adj-RIB-Out */
  | { readonly kind: 'begin-refresh' | 'end-refresh'; readonly afi: number; readonly safi: number };

export interface UpdateResult {
  /** paths added or replaced in Adj-RIB-In */
  readonly announced: number;
  /** paths removed from Adj-RIB-In (explicit, treat-as-withdraw, or rejected replacing an old path) */
  readonly withdrawn: number;
  /** announcements refused by import rules or policy */
  readonly rejected: number;
  /** prefixes of families not negotiated with the peer, ignored (RFC 4760 §7) */
  readonly ignored: number;
  /** RFC 7606 action applied, if the UPDATE carried one */
  readonly errorAction?: string;
}

export interface RouteView {
  readonly prefix: PrefixKey;
  readonly best: Path;
  readonly reason: Reason;
  readonly multipath: readonly Path[];
  readonly paths: readonly Path[];
}
