// The route-processing core (OpenBGPD's RDE, without the process): decoded
// UPDATEs in, best-path changes and per-peer outbound work out. No I/O, no
// timers, no codec: the driver feeds applyUpdate() and drains nextBatch() and
// drainBestChanges() as its sockets and the FIB allow.
//
//   UPDATE ──► import (loop checks, eBGP LOCAL_PREF, policy) ──► Adj-RIB-In[peer]
//          ──► Loc-RIB (decision.ts, only the prefixes touched) ──► best-change stream (FIB)
//          ──► export (rules below, policy) ──► Adj-RIB-Out[peer] + queue ──► nextBatch()
//
// Representation (sized for 1M IPv4 prefixes): a prefix is its Prefix4 number
// or Prefix6 string, used directly as a Map key; a route is one Path object
// (source, path id, interned AttrSet); a Loc-RIB entry is that same Path while
// it is the only candidate, and a Dest only when several compete. Adj-RIB-In
// keeps what import accepted (post-policy): after an import policy change the
// driver sends ROUTE-REFRESH rather than skein keeping a pre-policy copy of
// every route (soft-reconfiguration inbound costs a second table); only a
// session without route refresh keeps the pre-policy copy (keepReceived).
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
// A path whose next hop is bad or unresolvable (next-hop.ts) stays in the table but counts for nothing: when the
// best candidate is unusable the prefix has no best (the FIB removes it, peers get a withdrawal), and ADD-PATH
// peers never get an unusable path (RFC 4271 §9.1.2).
// With ADD-PATH send (RFC 7911, add-path.ts) a peer gets every candidate of
// a prefix, or the N best, each under its own path id and each through the
// rules above, instead of the best alone.
import { AttrFlag, GRACEFUL_SHUTDOWN, IPV4_UNICAST, IPV6_UNICAST, LLGR_STALE, NO_LLGR, SegmentType, familyKey } from '../wire/constants.js';
import type { PathAttributes, Prefix4, Prefix6, PrefixList, UpdateMessage } from '../wire/types.js';
import { DEFAULT_LOCAL_PREF, Path, addressSortKey, compare, isUsable, selectBest } from './decision.js';
import type { NextHopVerdict } from './next-hop.js';
import type { PathSource, Reason, Selection } from './decision.js';
import { AttrTable } from './intern.js';
import { AddPathOut, checkAddPathSend } from './add-path.js';
import type { AddPathSend } from './add-path.js';
import { PrefixMap } from './prefix-map.js';
import type { AttrSet } from './intern.js';
import { evaluate, type PeerRules, type RuleSet } from './policy.js';

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
  /**
   * Most routes refused by import rules kept per peer, with their attributes and the refusing rule, so an operator
   * can list them (BIRD's `import keep filtered`, FRR's soft-reconfiguration inbound); beyond it a refused route is
   * only counted. 0 keeps none. Default DEFAULT_KEEP_REFUSED.
   */
  readonly keepRefused?: number;
}

/** Default bound of refused routes kept per peer (CoreConfig.keepRefused; README: about 90 bytes each). */
export const DEFAULT_KEEP_REFUSED = 10_000;

/** A route the import rules refused, as kept (RibCore.refused). */
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

type Marker = 'end-of-rib' | 'begin-refresh' | 'end-refresh';

/**
 * Pending outbound work of one family to one peer. `pending` says, per
 * prefix, what is to go out: an AttrSet to announce, or null to withdraw.
 * The group arrays and the withdraw list only index it and may hold stale
 * entries (a prefix that moved to another set before it was sent): nextBatch
 * checks each against `pending`, so moving a prefix costs an append, not a
 * search.
 */
class OutQueue {
  readonly pending = new PrefixMap<AttrSet | null>();
  /** per set: the prefixes queued under it, and how far the sender got */
  readonly groups = new Map<AttrSet, { list: PrefixKey[]; pos: number }>();
  withdrawList: PrefixKey[] = [];
  withdrawPos = 0;
  readonly head: Marker[] = [];
  readonly tail: Marker[] = [];
  constructor(readonly family: number) {}

  get empty(): boolean {
    return this.pending.size === 0 && this.head.length === 0 && this.tail.length === 0;
  }

  announce(set: AttrSet, p: PrefixKey): void {
    const prev = this.pending.swap(p, set);
    if (prev === set) return; // already queued in that group
    // consecutive prefixes mostly share a set (they came in one UPDATE)
    let g = this.lastSet === set ? this.lastGroup : this.groups.get(set);
    if (g === undefined) this.groups.set(set, (g = { list: [], pos: 0 }));
    this.lastSet = set;
    this.lastGroup = g;
    g.list.push(p);
  }

  private lastSet: AttrSet | null = null;
  private lastGroup: { list: PrefixKey[]; pos: number } | undefined = undefined;

  withdraw(p: PrefixKey): void {
    const prev = this.pending.swap(p, null);
    if (prev !== null) this.withdrawList.push(p);
  }

  clear(): void {
    this.pending.clear();
    this.dropIndex();
    this.head.length = 0;
    this.tail.length = 0;
  }

  /** Forget the group and withdraw indexes (when nothing is pending they only hold stale entries). */
  dropIndex(): void {
    this.groups.clear();
    this.lastSet = null;
    this.lastGroup = undefined;
    this.withdrawList = [];
    this.withdrawPos = 0;
  }

  /** Up to max prefixes still pending withdrawal. */
  takeWithdrawals(max: number): PrefixKey[] {
    const out: PrefixKey[] = [];
    const list = this.withdrawList;
    let i = this.withdrawPos;
    for (; i < list.length && out.length < max; i++) {
      const p = list[i] as PrefixKey;
      if (!this.pending.takeIf(p, null)) continue; // re-announced or already sent
      out.push(p);
    }
    if (i >= list.length) {
      this.withdrawList = [];
      this.withdrawPos = 0;
    } else {
      this.withdrawPos = i;
    }
    return out;
  }

  /** The first group with prefixes still pending under its set, up to max of them. */
  takeAnnouncements(max: number): { set: AttrSet; prefixes: PrefixKey[] } | null {
    for (const [set, g] of this.groups) {
      const out: PrefixKey[] = [];
      const list = g.list;
      let i = g.pos;
      for (; i < list.length && out.length < max; i++) {
        const p = list[i] as PrefixKey;
        if (!this.pending.takeIf(p, set)) continue; // moved or withdrawn since
        out.push(p);
      }
      if (i >= list.length) {
        this.groups.delete(set);
        if (this.lastSet === set) {
          this.lastSet = null;
          this.lastGroup = undefined;
        }
      } else g.pos = i;
      if (out.length > 0) return { set, prefixes: out };
    }
    return null;
  }
}

class Peer implements PathSource, PeerView {
  readonly local = false;
  readonly addressKey: string;
  readonly address: string;
  readonly asn: number;
  ibgp: boolean;
  routerId = 0;
  established = false;
  families = new Set<number>();
  addPathRx: ReadonlySet<number> = new Set();
  addPathTx: ReadonlySet<number> = new Set();
  enhancedRouteRefresh = false;
  llgrFamilies: ReadonlySet<number> = new Set();
  /** Adj-RIB-Out: prefix → what we advertise (or are about to) */
  readonly adjOut = new PrefixMap<AttrSet>();
  /** ADD-PATH send (RFC 7911) while Established: Adj-RIB-Out and queues of its families, which adjOut then leaves alone */
  ap: AddPathOut | null = null;
  readonly queues = new Map<number, OutQueue>();
  /** count of Adj-RIB-In paths */
  paths = 0;
  /** of which IPv6 (per-family maximum-prefix limits, RFC 4486) */
  paths6 = 0;
  /** bumped whenever the export rules for this peer may change (settings, session) */
  epoch = 0;
  /** per family: the current generation; paths announced under an older one are stale */
  readonly gens = new Map<number, number>();
  /**
   * What the peer sent, before the rules (after the loop checks), by "prefix|path id": kept only for a session
   * without route refresh, so a change of its import rules can be applied from it (keepReceived).
   */
  rawIn: Map<string, { prefix: PrefixKey; pathId: number; set: AttrSet }> | null = null;
  /**
   * Routes refused by the import rules (policy.ts), kept to be listed and explained: per prefix a flat
   * [path id, rule index, set, ...] (one small exactly sized array, as add-path.ts keeps its lists); at most
   * CoreConfig.keepRefused routes, `refused` of them.
   */
  readonly refusedIn = new PrefixMap<(number | AttrSet)[]>();
  refused = 0;
  /** refused routes not kept because the bound was reached (only grows) */
  refusedNotKept = 0;
  /** decisions of the rules that refused a route: on import, and on export (each evaluation counts) */
  policyRejectedIn = 0;
  policyRejectedOut = 0;

  gen(family: number): number {
    return this.gens.get(family) ?? 0;
  }
  constructor(
    readonly id: number,
    public cfg: PeerConfig,
    localAs: number,
  ) {
    this.address = cfg.address;
    this.addressKey = addressSortKey(cfg.address);
    this.asn = cfg.asn;
    this.localAs = cfg.localAs ?? localAs;
    this.ibgp = cfg.asn === this.localAs;
  }

  /** our AS on this session */
  readonly localAs: number;

  get rrClient(): boolean {
    return this.cfg.routeReflectorClient === true;
  }

  queue(family: number): OutQueue {
    let q = this.queues.get(family);
    if (q === undefined) this.queues.set(family, (q = new OutQueue(family)));
    return q;
  }
}

/** A Loc-RIB entry with more than one candidate. */
class Dest {
  constructor(
    public paths: Path[],
    public sel: Selection,
  ) {}
}

type LocEntry = Path | Dest;

const familyOf = (p: PrefixKey): number => (typeof p === 'number' ? IPV4_UNICAST : IPV6_UNICAST);

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

export class RibCore {
  readonly attrs = new AttrTable();
  private readonly peers = new Map<number, Peer>();
  /** the Established peers, for the per-prefix export loop */
  private up: Peer[] = [];
  /** the Established peers with ADD-PATH send: every candidate change goes to them */
  private apUp: Peer[] = [];
  private readonly loc = new PrefixMap<LocEntry>();
  /** prefixes whose best path or next hops changed since the last drain (map for dedup, list for order) */
  private readonly bestDirty = new PrefixMap<true>();
  private bestDirtyList: PrefixKey[] = [];
  private nextPeerId = 1;
  private readonly localSource: PathSource;
  private readonly maxPaths: number;
  private readonly defaultLocalPref: number;
  private readonly clusterId: number;
  /** policy hooks that threw (each rejected its route) */
  policyErrors = 0;

  constructor(readonly config: CoreConfig) {
    this.maxPaths = Math.max(1, config.maxPaths ?? 1);
    this.clusterId = (config.clusterId ?? config.routerId) >>> 0;
    this.defaultLocalPref = config.defaultLocalPref ?? DEFAULT_LOCAL_PREF;
    this.localSource = Object.freeze({ id: 0, local: true, ibgp: false, routerId: config.routerId >>> 0, addressKey: '', address: 'local' });
  }

  // ------------------------------------------------------------------ peers

  addPeer(cfg: PeerConfig): number {
    checkAddPathSend(cfg.addPathSend);
    const id = this.nextPeerId++;
    this.peers.set(id, new Peer(id, cfg, this.config.localAs));
    return id;
  }

  /** Forget a peer; its routes go first. */
  removePeer(id: number): void {
    this.peerDown(id);
    this.peers.delete(id);
  }

  /** Change a peer's policy or next-hop settings; call refreshExports / ROUTE-REFRESH after. */
  updatePeer(id: number, cfg: PeerConfig): void {
    const p = this.peer(id);
    if (cfg.address !== p.address || cfg.asn !== p.asn || (cfg.localAs ?? this.config.localAs) !== p.localAs) {
      throw new Error('a peer\'s address and AS numbers are fixed; remove and add it');
    }
    checkAddPathSend(cfg.addPathSend);
    p.cfg = cfg;
    p.epoch++; // cached exports were made under the old settings
    if (p.ap !== null && cfg.addPathSend !== undefined) p.ap.mode = cfg.addPathSend; // applies from refreshExports
  }

  /**
   * The session reached Established: remember what it negotiated and queue
   * the whole Loc-RIB for it, followed by End-of-RIB per family.
   */
  peerUp(id: number, terms: SessionTerms): void {
    const p = this.peer(id);
    if (p.established) this.peerDown(id);
    p.established = true;
    this.up = [...this.peers.values()].filter((x) => x.established);
    p.epoch++;
    p.routerId = terms.peerId >>> 0;
    p.ibgp = terms.ibgp;
    p.families = new Set(terms.families.filter((f) => f === IPV4_UNICAST || f === IPV6_UNICAST));
    p.addPathRx = terms.addPathRx;
    p.addPathTx = terms.addPathTx;
    p.enhancedRouteRefresh = terms.enhancedRouteRefresh;
    p.llgrFamilies = terms.llgrFamilies ?? new Set();
    const apFams = p.cfg.addPathSend === undefined ? [] : [...p.families].filter((f) => terms.addPathTx.has(f));
    if (apFams.length > 0) {
      p.ap = new AddPathOut(new Set(apFams), p.cfg.addPathSend as AddPathSend);
      this.apUp = this.up.filter((x) => x.ap !== null);
    }
    this.loc.forEach((e, prefix) => this.exportEntry(p, prefix, e));
    for (const f of p.families) p.queue(f).tail.push('end-of-rib');
  }

  /**
   * The session left Established: its Adj-RIB-Out is forgotten and its routes
   * leave the Loc-RIB — unless retainStale (RFC 4724 §4.2, we are the
   * receiving speaker of a peer that restarts gracefully): then its routes
   * stay, marked stale, until sweepStale() (End-of-RIB received, or the
   * restart or stale timer ran out).
   */
  peerDown(id: number, opts: { retainStale?: boolean } = {}): void {
    const p = this.peer(id);
    p.established = false;
    this.up = this.up.filter((x) => x !== p);
    p.adjOut.forEach((set) => this.attrs.release(set));
    p.adjOut.clear();
    this.clearRefused(p);
    p.rawIn?.forEach((e) => this.attrs.release(e.set));
    p.rawIn = null;
    for (const q of p.queues.values()) q.clear();
    if (p.ap !== null) {
      p.ap.clear((set) => this.attrs.release(set));
      p.ap = null;
      this.apUp = this.apUp.filter((x) => x !== p);
    }
    if (opts.retainStale) {
      for (const f of [IPV4_UNICAST, IPV6_UNICAST]) this.markStale(id, f);
      return;
    }
    this.sweep(p, null, true);
  }

  /**
   * Mark every path of the peer in a family stale (RFC 7313 §4: a BoRR was
   * received; RFC 4724: the session went down gracefully). Paths the peer
   * announces again become fresh.
   */
  markStale(id: number, family: number): void {
    const p = this.peer(id);
    p.gens.set(family, p.gen(family) + 1);
  }

  /**
   * Remove the peer's paths still stale in a family (all families when
   * family is omitted): RFC 7313 §4 EoRR, RFC 4724 §4.2 End-of-RIB or timer.
   * Returns how many paths went.
   */
  sweepStale(id: number, family?: number): number {
    const p = this.peer(id);
    return this.sweep(p, family ?? null, false);
  }

  /**
   * RFC 9494 §4.2: the peer's restart time ran out (or was 0) and a family of its stale paths enters the long-lived
   * phase. Each path still stale gets the LLGR_STALE community (§3.2), which ranks it below every other path (§4.4)
   * and keeps it from peers without LLGR (§4.3); one carrying NO_LLGR (§3.3) is removed instead. The paths stay
   * stale: the peer re-announcing them makes them fresh (without the community), and sweepStale removes the rest.
   */
  enterLongLivedStale(id: number, family: number): { kept: number; removed: number } {
    const p = this.peer(id);
    const todo: [PrefixKey, Path][] = [];
    this.loc.forEach((e, prefix) => {
      if (familyOf(prefix) !== family) return;
      for (const path of e instanceof Path ? [e] : e.paths) if (path.source === p && path.gen < p.gen(family)) todo.push([prefix, path]);
    });
    let kept = 0;
    let removed = 0;
    for (const [prefix, path] of todo) {
      const a = path.attrs.attrs;
      if (a.communities?.includes(NO_LLGR)) {
        if (this.withdrawPath(p, prefix, path.pathId)) removed++;
        continue;
      }
      kept++;
      if (path.attrs.llgrStale) continue; // it came with the community already
      const set = this.attrs.intern({ ...a, communities: [...(a.communities ?? []), LLGR_STALE] }, path.attrs.nextHops);
      this.put(prefix, p, path.pathId, set, path.gen, path.rule);
    }
    return { kept, removed };
  }

  /** How many of a peer's paths are stale now (graceful restart, route refresh); walks the table. */
  staleCount(id: number): number {
    const p = this.peer(id);
    if (p.paths === 0 || p.gens.size === 0) return 0;
    let n = 0;
    this.loc.forEach((e, prefix) => {
      const g = p.gen(familyOf(prefix));
      if (g === 0) return;
      for (const path of e instanceof Path ? [e] : e.paths) if (path.source === p && path.gen < g) n++;
    });
    return n;
  }

  /** Remove the paths of p in a family (or all families): the stale ones, or every one when all is set. */
  private sweep(p: Peer, family: number | null, all: boolean): number {
    if (p.paths === 0) return 0;
    const before = p.paths;
    const stale = (path: Path, prefix: PrefixKey): boolean => {
      const f = familyOf(prefix);
      if (family !== null && f !== family) return false;
      return all || path.gen < p.gen(f);
    };
    // Adj-RIB-In lives in the shared prefix table (see put()): one walk finds the peer's paths.
    this.loc.forEach((e, prefix) => {
      if (e instanceof Path) {
        if (e.source === p && stale(e, prefix)) this.withdrawPath(p, prefix, e.pathId);
      } else {
        for (const path of e.paths.filter((x) => x.source === p && stale(x, prefix))) this.withdrawPath(p, prefix, path.pathId);
      }
    });
    return before - p.paths;
  }

  // ------------------------------------------------------------------ import

  /** Apply one decoded UPDATE from an Established peer. */
  applyUpdate(id: number, u: UpdateMessage): UpdateResult {
    const p = this.peer(id);
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
        if (p.rawIn !== null) this.dropRaw(p, prefixes[i] as PrefixKey, ids?.[i] ?? 0);
        if (p.refused > 0) this.forgetRefused(p, prefixes[i] as PrefixKey, ids?.[i] ?? 0);
        if (this.withdrawPath(p, prefixes[i] as PrefixKey, ids?.[i] ?? 0)) counts.withdrawn++;
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
        this.announceList(p, u.nlri, u.attributes, nh === undefined ? [] : [nh], counts);
      }
      if (u.mpReach && u.mpReach.nlri.prefixes.length > 0) {
        // The IPv4 NEXT_HOP attribute has no meaning for MP_REACH NLRI (RFC 4760 §3).
        const { nextHop: _ignored, ...rest } = u.attributes;
        this.announceList(p, u.mpReach.nlri, rest, u.mpReach.nextHops, counts);
      }
    }
    return u.errorAction ? { ...counts, errorAction: u.errorAction } : counts;
  }

  private announceList(
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
    const attrs = nextHops.length === 0 ? null : this.importAttrs(p, received);
    if (attrs === null) {
      // Refused for the whole UPDATE (loop, no next hop): an announcement still
      // replaces what the peer sent before, so the old path goes (implicit withdraw).
      for (let i = 0; i < prefixes.length; i++) {
        counts.rejected++;
        if (p.rawIn !== null) this.dropRaw(p, prefixes[i] as PrefixKey, ids?.[i] ?? 0);
        if (p.refused > 0) this.forgetRefused(p, prefixes[i] as PrefixKey, ids?.[i] ?? 0);
        if (this.withdrawPath(p, prefixes[i] as PrefixKey, ids?.[i] ?? 0)) counts.withdrawn++;
      }
      return;
    }
    const policy = p.cfg.importPolicy;
    const rules = p.cfg.rules === undefined ? undefined : list.afi === 1 ? p.cfg.rules.import4 : p.cfg.rules.import6;
    const shared = this.attrs.intern(attrs, nextHops); // one reference held for the loop
    for (let i = 0; i < prefixes.length; i++) {
      const prefix = prefixes[i] as PrefixKey;
      const pathId = ids?.[i] ?? 0;
      if (p.rawIn !== null) {
        const key = `${prefix}|${pathId}`;
        const old = p.rawIn.get(key);
        p.rawIn.set(key, { prefix, pathId, set: this.attrs.retain(shared) });
        if (old !== undefined) this.attrs.release(old.set);
      }
      if (this.importOne(p, prefix, pathId, shared, rules, policy)) counts.announced++;
      else {
        counts.rejected++;
        if (this.withdrawPath(p, prefix, pathId)) counts.withdrawn++;
      }
    }
    this.attrs.release(shared);
  }

  /**
   * The import rules and hook for one received route; announces it into Adj-RIB-In and returns true, or returns
   * false when refused (the caller withdraws what the peer had).
   */
  private importOne(p: Peer, prefix: PrefixKey, pathId: number, shared: AttrSet, rules: RuleSet | undefined, policy: Policy | undefined): boolean {
    const nextHops = shared.nextHops;
    let now = shared.attrs;
    let rule = 0;
    if (rules !== undefined) {
      const d = evaluate(rules, { prefix, attrs: now, local: false, ibgp: p.ibgp, ifname: () => this.ifnameOf(prefix, nextHops, false) });
      rule = this.ruleIndex(d.rule);
      if (!d.accept) {
        p.policyRejectedIn++;
        this.keepRefused(p, prefix, pathId, rule, shared);
        return false;
      }
      if (d.attrs !== undefined) now = d.attrs;
    }
    if (policy) {
      const res = this.callPolicy(policy, 'import', prefix, now, p);
      if (!res.accept) {
        this.keepRefused(p, prefix, pathId, this.ruleIndex(HOOK_RULE), shared);
        return false;
      }
      if (res.attrs !== undefined) now = res.attrs;
    }
    if (p.refused > 0) this.forgetRefused(p, prefix, pathId);
    let set: AttrSet;
    if (now !== shared.attrs) {
      const nh = typeof prefix === 'number' && now.nextHop !== undefined ? [now.nextHop] : nextHops;
      set = this.attrs.intern(now, nh);
    } else set = this.attrs.retain(shared);
    this.announcePath(p, prefix, pathId, set, rule);
    return true;
  }

  /** rule names by index (Path.rule, refused routes); 0 is "no policy" */
  private readonly ruleNames: string[] = ['no policy'];
  private readonly ruleIndexes = new Map<string, number>([['no policy', 0]]);

  /**
   * The index of a rule name, added on first use. Names come from the configuration (one per rule and fallback),
   * so the table is as large as the rules ever configured, not the routes; past 65,536 names (a configuration
   * churning generated names) new ones share one last index rather than grow it further.
   */
  private ruleIndex(name: string): number {
    const i = this.ruleIndexes.get(name);
    if (i !== undefined) return i;
    if (this.ruleNames.length >= 65_536) return this.ruleIndex('(rule names beyond 65,536 not kept)');
    this.ruleNames.push(name);
    this.ruleIndexes.set(name, this.ruleNames.length - 1);
    return this.ruleNames.length - 1;
  }

  /** The name of a Path's import rule (Path.rule). */
  ruleName(index: number): string {
    return this.ruleNames[index] ?? 'no policy';
  }

  /** Remember a refused route (replacing what was kept for the same path id) within the peer's bound. */
  private keepRefused(p: Peer, prefix: PrefixKey, pathId: number, rule: number, set: AttrSet): void {
    const a = p.refusedIn.get(prefix);
    if (a !== undefined) {
      for (let i = 0; i < a.length; i += 3) {
        if (a[i] !== pathId) continue;
        if (a[i + 2] !== set) {
          this.attrs.release(a[i + 2] as AttrSet);
          a[i + 2] = this.attrs.retain(set);
        }
        a[i + 1] = rule;
        return;
      }
    }
    if (p.refused >= (this.config.keepRefused ?? DEFAULT_KEEP_REFUSED)) {
      p.refusedNotKept++;
      return;
    }
    const s = this.attrs.retain(set);
    if (a === undefined) p.refusedIn.set(prefix, [pathId, rule, s]);
    else p.refusedIn.set(prefix, [...a, pathId, rule, s]); // exactly sized
    p.refused++;
  }

  /** The path is no longer refused (withdrawn, or now accepted). */
  private forgetRefused(p: Peer, prefix: PrefixKey, pathId: number): void {
    const a = p.refusedIn.get(prefix);
    if (a === undefined) return;
    for (let i = 0; i < a.length; i += 3) {
      if (a[i] !== pathId) continue;
      this.attrs.release(a[i + 2] as AttrSet);
      p.refused--;
      if (a.length === 3) p.refusedIn.delete(prefix);
      else p.refusedIn.set(prefix, [...a.slice(0, i), ...a.slice(i + 3)]);
      return;
    }
  }

  private clearRefused(p: Peer): void {
    p.refusedIn.forEach((a) => {
      for (let i = 2; i < a.length; i += 3) this.attrs.release(a[i] as AttrSet);
    });
    p.refusedIn.clear();
    p.refused = 0;
  }

  /** The routes a peer sent that import rules refused, kept for a prefix (bounded by CoreConfig.keepRefused). */
  refusedRoutes(id: number, prefix: PrefixKey): RefusedRoute[] {
    const a = this.peer(id).refusedIn.get(prefix);
    if (a === undefined) return [];
    const out: RefusedRoute[] = [];
    for (let i = 0; i < a.length; i += 3) out.push({ pathId: a[i] as number, rule: this.ruleName(a[i + 1] as number), attrs: a[i + 2] as AttrSet });
    return out;
  }

  /** Every prefix with a refused route kept for the peer (a lazy walk, for skeinctl). */
  refusedPrefixes(id: number): Generator<PrefixKey> {
    return this.peer(id).refusedIn.keysIter();
  }

  /** Refused routes kept for a peer, and those refused past the bound (not kept). */
  refusedStats(id: number): { kept: number; notKept: number } {
    const p = this.peer(id);
    return { kept: p.refused, notKept: p.refusedNotKept };
  }

  private dropRaw(p: Peer, prefix: PrefixKey, pathId: number): void {
    const m = p.rawIn as NonNullable<Peer['rawIn']>;
    const key = `${prefix}|${pathId}`;
    const old = m.get(key);
    if (old === undefined) return;
    m.delete(key);
    this.attrs.release(old.set);
  }

  /**
   * Keep what the peer sends before the import rules (on), or stop and forget it (off). For a session that cannot
   * refresh (RFC 2918), so changed import rules apply without a reset: reimport().
   */
  keepReceived(id: number, on: boolean): void {
    const p = this.peer(id);
    if (!on) {
      p.rawIn?.forEach((e) => this.attrs.release(e.set));
      p.rawIn = null;
    } else p.rawIn ??= new Map();
  }

  /** Whether reimport() can apply changed import rules for this peer. */
  keepsReceived(id: number): boolean {
    return this.peer(id).rawIn !== null;
  }

  /** Run the peer's current import rules again over what it sent (kept by keepReceived); returns paths accepted. */
  reimport(id: number): number {
    const p = this.peer(id);
    if (p.rawIn === null) return 0;
    let n = 0;
    for (const e of [...p.rawIn.values()]) {
      const rules = p.cfg.rules === undefined ? undefined : typeof e.prefix === 'number' ? p.cfg.rules.import4 : p.cfg.rules.import6;
      if (this.importOne(p, e.prefix, e.pathId, e.set, rules, p.cfg.importPolicy)) n++;
      else this.withdrawPath(p, e.prefix, e.pathId);
    }
    return n;
  }

  /**
   * Import rules that do not depend on the prefix. Returns the attributes to
   * store, or null when the route must be refused.
   */
  private importAttrs(p: Peer, a: PathAttributes): PathAttributes | null {
    // The session's own AS (a local AS override) and the speaker's both mark a loop.
    const own = p.localAs;
    const global = this.config.localAs;
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
    if (a.originatorId !== undefined && a.originatorId >>> 0 === this.config.routerId >>> 0) return null;
    if (a.clusterList !== undefined && a.clusterList.some((c) => c >>> 0 === this.clusterId)) return null;
    // RFC 8326 §4.2: a route carrying GRACEFUL_SHUTDOWN is about to go (its sender drains); rank it lowest, as
    // LOCAL_PREF 0, from iBGP and eBGP peers alike, so traffic moves to another path before the withdrawal.
    const draining = a.communities !== undefined && a.communities.includes(GRACEFUL_SHUTDOWN);
    if (!p.ibgp) {
      // RFC 4271 §5.1.5: LOCAL_PREF from an external peer is ignored; ours applies.
      return { ...a, localPref: draining ? 0 : this.defaultLocalPref };
    }
    return draining && a.localPref !== 0 ? { ...a, localPref: 0 } : a;
  }

  private announcePath(p: Peer, prefix: PrefixKey, pathId: number, set: AttrSet, rule = 0): void {
    if (this.put(prefix, p, pathId, set, p.gen(familyOf(prefix)), rule) === 'added') {
      p.paths++;
      if (typeof prefix !== 'number') p.paths6++;
    }
  }

  private withdrawPath(p: Peer, prefix: PrefixKey, pathId: number): boolean {
    if (!this.remove(prefix, p, pathId)) return false;
    p.paths--;
    if (typeof prefix !== 'number') p.paths6--;
    return true;
  }

  // ------------------------------------------------------------------ local origination

  /**
   * Originate a prefix (IPAM block, service address…). The path has an empty
   * AS_PATH and ORIGIN IGP unless given; nextHop unset means "this node" when
   * advertised. Announcing again replaces the previous attributes.
   */
  originate(prefix: PrefixKey, attrs: PathAttributes = {}): void {
    const a: PathAttributes = { origin: 0, asPath: [], ...attrs };
    const v4 = typeof prefix === 'number';
    const nh = v4 ? a.nextHop : undefined;
    const { nextHop: _drop, ...rest } = a;
    const set = this.attrs.intern(v4 && nh !== undefined ? { ...rest, nextHop: nh } : rest, nh !== undefined ? [nh] : []);
    this.put(prefix, this.localSource, 0, set);
  }

  /** Stop originating a prefix; false if it was not originated. */
  withdrawOrigin(prefix: PrefixKey): boolean {
    return this.remove(prefix, this.localSource, 0);
  }

  // ------------------------------------------------------------------ Loc-RIB

  // One table holds, per prefix, every candidate path: each peer's Adj-RIB-In
  // (post-policy) is the set of paths whose source is that peer, and the
  // Loc-RIB is the selection made over them. Keeping them in one Map halves
  // the hash operations per route and the per-prefix overhead (two Maps of 1M
  // entries cost ~50 MiB more); the price is that a peer going down walks the
  // table instead of its own index.

  /**
   * Add or replace the path of (source, path id) for a prefix; the AttrSet
   * reference is handed over. Re-runs the decision for this prefix only.
   */
  private put(prefix: PrefixKey, src: PathSource, pathId: number, set: AttrSet, gen = 0, rule = 0): 'same' | 'replaced' | 'added' {
    const path0 = this.pathOf(src, pathId, set, gen, rule);
    const e = this.loc.getOrSet(prefix, path0); // a new prefix is stored by the same probe
    if (e === undefined) {
      this.changed(prefix, null, null, path0);
      return 'added';
    }
    if (e instanceof Path) {
      if (e.source === src && e.pathId === pathId) {
        if (e.attrs === set) {
          // the same route again: nothing changes, but it is fresh (Paths are shared: replace, never assign)
          if (e.gen !== gen || e.rule !== rule) this.loc.set(prefix, path0);
          this.attrs.release(set);
          return 'same';
        }
        this.loc.set(prefix, path0);
        this.changed(prefix, e, null, path0);
        this.attrs.release(e.attrs);
        return 'replaced';
      }
      const paths = [e, path0];
      const d = new Dest(paths, selectBest(paths, this.maxPaths) as Selection);
      this.loc.set(prefix, d);
      this.changed(prefix, e, null, d);
      return 'added';
    }
    const i = e.paths.findIndex((x) => x.source === src && x.pathId === pathId);
    const old = i >= 0 ? (e.paths[i] as Path) : undefined;
    if (old !== undefined && old.attrs === set) {
      if (old.gen !== gen || old.rule !== rule) {
        // fresh again (or accepted by another rule): swap in the new Path; the
        // selection is the same but must hold the object that is now in the entry
        e.paths[i] = path0;
        if (e.sel.multipath.includes(old) || e.sel.best === old) e.sel = selectBest(e.paths, this.maxPaths) as Selection;
      }
      this.attrs.release(set);
      return 'same';
    }
    const before = e.sel;
    if (old !== undefined) e.paths[i] = path0;
    else e.paths.push(path0);
    e.sel = selectBest(e.paths, this.maxPaths) as Selection;
    this.changed(prefix, before.best, before.multipath, e);
    if (old === undefined) return 'added';
    this.attrs.release(old.attrs);
    return 'replaced';
  }

  /** the Path most recently made by pathOf */
  private lastPath: Path | null = null;

  /**
   * The Path for (source, path id, set, generation): the one made last when it
   * matches, else a new one (frozen: Paths are shared between prefixes). The
   * prefixes of an UPDATE arrive together with the same set, so one cached
   * object covers them all; AttrSet references are still counted per prefix.
   */
  private pathOf(src: PathSource, pathId: number, set: AttrSet, gen: number, rule: number): Path {
    const c = this.lastPath;
    if (c !== null && c.attrs === set && c.source === src && c.pathId === pathId && c.gen === gen && c.rule === rule) return c;
    return (this.lastPath = Object.freeze(new Path(src, pathId, set, gen, rule)));
  }

  /** Remove the path of (source, path id) for a prefix; false if there was none. */
  private remove(prefix: PrefixKey, src: PathSource, pathId: number): boolean {
    const e = this.loc.get(prefix);
    if (e === undefined) return false;
    let old: Path;
    if (e instanceof Path) {
      if (e.source !== src || e.pathId !== pathId) return false;
      old = e;
      this.loc.delete(prefix);
      this.changed(prefix, e, null, undefined);
    } else {
      const i = e.paths.findIndex((x) => x.source === src && x.pathId === pathId);
      if (i < 0) return false;
      old = e.paths[i] as Path;
      const before = e.sel;
      e.paths.splice(i, 1);
      if (e.paths.length === 1) {
        const only = e.paths[0] as Path;
        this.loc.set(prefix, only);
        this.changed(prefix, before.best, before.multipath, only);
      } else {
        e.sel = selectBest(e.paths, this.maxPaths) as Selection;
        this.changed(prefix, before.best, before.multipath, e);
      }
    }
    this.attrs.release(old.attrs);
    return true;
  }

  /**
   * After a Loc-RIB entry changed: note FIB work and export the new best where
   * it differs. prevMulti null stands for [prevBest] (a lone path).
   */
  private changed(prefix: PrefixKey, prevBest: Path | null, prevMulti: readonly Path[] | null, after: LocEntry | undefined, prevJudged = false): void {
    // ADD-PATH send peers see every candidate, not only the best (RFC 7911)
    for (let i = 0; i < this.apUp.length; i++) this.exportAddPath(this.apUp[i] as Peer, prefix, after);
    // An unusable best was no best (unless the caller judged the previous state under the verdicts of before).
    if (!prevJudged && prevBest !== null && !isUsable(prevBest)) {
      prevBest = null;
      prevMulti = null;
    }
    const best = after === undefined ? null : usableBest(after);
    let sameMulti: boolean;
    if (best === null) {
      sameMulti = prevBest === null;
    } else if (after instanceof Path) {
      sameMulti = prevMulti === null ? best === prevBest : prevMulti.length === 1 && prevMulti[0] === best;
    } else {
      const multi = (after as Dest).sel.multipath;
      const pm = prevMulti ?? (prevBest === null ? [] : [prevBest]);
      sameMulti = multi.length === pm.length && multi.every((x, i) => x === pm[i]);
    }
    if (best === prevBest && sameMulti) return; // a non-best candidate changed
    if (
      this.trackBest &&
      (best === null ||
        prevBest === null ||
        best.attrs !== prevBest.attrs ||
        best.source !== prevBest.source ||
        !sameHops(after instanceof Dest ? after.sel.multipath : [best], prevMulti ?? [prevBest]))
    ) {
      if (this.bestDirty.get(prefix) === undefined) {
        this.bestDirty.set(prefix, true);
        this.bestDirtyList.push(prefix);
      }
    }
    if (best === prevBest) return; // only the multipath set moved: exports follow the best alone
    const up = this.up;
    for (let i = 0; i < up.length; i++) this.exportTo(up[i] as Peer, prefix, best);
  }

  // ------------------------------------------------------------------ next hops

  /**
   * Judge the next hops of every attribute set, now and whenever one is made (next-hop.ts), or stop judging (null:
   * every path usable). Re-decides the prefixes whose paths changed verdict.
   */
  setNextHopCheck(check: ((nextHops: readonly string[]) => NextHopVerdict | null) | null): number {
    this.attrs.classify = check;
    return this.recheckNextHops();
  }

  /**
   * What the host can reach changed: judge every attribute set again and re-run the decision for the prefixes that
   * have a path whose usability flipped (a new verdict with the same usability only changes what is shown). Walks
   * the table only when some set flipped. Returns the number of prefixes re-decided.
   */
  recheckNextHops(): number {
    const check = this.attrs.classify;
    const flipped = new Set<AttrSet>();
    for (const set of this.attrs.values()) {
      const v = check === null || set.nextHops.length === 0 ? null : check(set.nextHops);
      if ((v === null) !== (set.unusable === null)) flipped.add(set);
      set.unusable = v;
    }
    if (flipped.size === 0) return 0;
    // usability under the verdicts of before the change
    const was = (p: Path): boolean => (flipped.has(p.attrs) ? !isUsable(p) : isUsable(p));
    const todo: PrefixKey[] = [];
    this.loc.forEach((e, prefix) => {
      if (e instanceof Path ? flipped.has(e.attrs) : e.paths.some((x) => flipped.has(x.attrs))) todo.push(prefix);
    });
    for (const prefix of todo) {
      const e = this.loc.get(prefix) as LocEntry;
      if (e instanceof Path) {
        this.changed(prefix, was(e) ? e : null, null, e, true);
        continue;
      }
      const before = e.sel;
      const prevBest = was(before.best) ? before.best : null;
      e.sel = selectBest(e.paths, this.maxPaths) as Selection;
      this.changed(prefix, prevBest, prevBest === null ? null : before.multipath, e, true);
    }
    return todo.length;
  }

  // ------------------------------------------------------------------ export

  private exportTo(p: Peer, prefix: PrefixKey, best: Path | null): void {
    const fam = familyOf(prefix);
    if (!p.families.has(fam)) return;
    if (p.ap !== null && p.ap.families.has(fam)) return; // exportAddPath's
    const want = best === null ? null : this.exportSet(p, prefix, best);
    // one probe of Adj-RIB-Out either way (swap / take)
    if (want !== null) {
      const cur = p.adjOut.swap(prefix, want);
      if (cur === want) {
        this.attrs.release(want); // re-advertising identical state sends nothing
        return;
      }
      p.queue(fam).announce(want, prefix);
      if (cur !== undefined) this.attrs.release(cur);
    } else {
      const cur = p.adjOut.take(prefix);
      if (cur === undefined) return;
      p.queue(fam).withdraw(prefix);
      this.attrs.release(cur);
    }
  }

  /** Export one Loc-RIB entry (undefined: the prefix is gone) to a peer, with or without ADD-PATH. */
  private exportEntry(p: Peer, prefix: PrefixKey, e: LocEntry | undefined): void {
    if (p.ap !== null && p.ap.families.has(familyOf(prefix))) this.exportAddPath(p, prefix, e);
    else this.exportTo(p, prefix, e === undefined ? null : usableBest(e));
  }

  /** RFC 7911: the peer's set of paths for the prefix follows the candidates (add-path.ts); each path passes exportSet. */
  private exportAddPath(p: Peer, prefix: PrefixKey, e: LocEntry | undefined): void {
    const ap = p.ap as AddPathOut;
    const fam = familyOf(prefix);
    if (!ap.families.has(fam)) return;
    const best = e === undefined ? null : usableBest(e);
    const paths = best === null ? [] : e instanceof Path ? [e] : (e as Dest).paths.filter(isUsable);
    ap.update(prefix, fam, paths, best, (path) => this.exportSet(p, prefix, path), this.release);
  }

  private readonly release = (set: AttrSet): void => this.attrs.release(set);

  /** The set to advertise to p for this best path (one reference taken), or null for none. */
  private exportSet(p: Peer, prefix: PrefixKey, best: Path): AttrSet | null {
    const src = best.source;
    if (src.id === p.id) return null; // not back to where it came from
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
      const d = evaluate(v6 ? rules.export6 : rules.export4, {
        prefix, attrs: base.attrs, local: src.local, ibgp: p.ibgp, ifname: () => this.ifnameOf(prefix, base.nextHops, src.local),
      });
      if (!d.accept) {
        p.policyRejectedOut++;
        return null;
      }
      if (d.attrs !== undefined) base = changed = this.attrs.intern(d.attrs, base.nextHops);
    }
    // The default export of a set depends on the peer (its settings: the
    // epoch), the family, whether the path is ours (MED) or reflected (RR
    // attributes), and for a reflected set without ORIGINATOR_ID on the
    // peer it came from (whose BGP Identifier becomes the ORIGINATOR_ID).
    const kind = src.local ? 1 : reflect ? 2 : 0;
    const slot = (p.id * 2 + (v6 ? 1 : 0)) * 3 + kind;
    const origin = reflect && base.attrs.originatorId === undefined ? src.routerId : 0;
    let out: AttrSet;
    const cached = base.exportCache?.get(slot);
    if (cached !== undefined && cached.epoch === p.epoch && cached.set.refs > 0 && cached.origin === origin) {
      out = this.attrs.retain(cached.set);
    } else {
      const t = this.transform(p, base, src, v6, reflect);
      if (t === null) {
        if (changed !== null) this.attrs.release(changed);
        return null;
      }
      out = this.attrs.intern(t.attrs, t.nextHops);
      (base.exportCache ??= new Map()).set(slot, { epoch: p.epoch, set: out, origin });
    }
    if (changed !== null) this.attrs.release(changed);
    const policy = p.cfg.exportPolicy;
    if (!policy) return out;
    const res = this.callPolicy(policy, 'export', prefix, out.attrs, p);
    if (!res.accept) {
      this.attrs.release(out);
      return null;
    }
    if (res.attrs === undefined || res.attrs === out.attrs) return out;
    const nh = !v6 && res.attrs.nextHop !== undefined ? [res.attrs.nextHop] : out.nextHops;
    const changedOut = this.attrs.intern(res.attrs, nh);
    this.attrs.release(out);
    return changedOut;
  }

  /** The route's outgoing interface for the rules, or undefined (no resolver, or none known). */
  private ifnameOf(prefix: PrefixKey, nextHops: readonly string[], local: boolean): string | undefined {
    const f = this.config.routeInterface;
    if (f === undefined) return undefined;
    try {
      return f(prefix, nextHops, local);
    } catch {
      return undefined; // a failing lookup is a route without an interface, never a broken core
    }
  }

  /** Run a policy hook; one that throws rejects the route and is reported, never unwinds the core. */
  private callPolicy(policy: Policy, which: 'import' | 'export', prefix: PrefixKey, attrs: PathAttributes, p: Peer): PolicyResult {
    try {
      return policy(prefix, attrs, p);
    } catch (error) {
      this.policyErrors++;
      try {
        this.config.onPolicyError?.({ which, prefix, peer: p, error });
      } catch {
        /* a reporter that throws must not break the core either */
      }
      return REJECT;
    }
  }

  /** The default export rules (see the header comment); null when no next hop can be given. */
  private transform(p: Peer, src: AttrSet, source: PathSource, v6: boolean, reflect: boolean): { attrs: PathAttributes; nextHops: readonly string[] } | null {
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
      a.localPref ??= this.defaultLocalPref;
      if (reflect) {
        // RFC 4456 §8: ORIGINATOR_ID names the router that brought the route
        // into the AS (kept when already set); CLUSTER_LIST records our cluster.
        a.originatorId ??= source.routerId >>> 0;
        a.clusterList = [this.clusterId, ...(a.clusterList ?? [])];
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
    if (this.draining) {
      // RFC 8326 §4.1: while we drain, every route we advertise carries GRACEFUL_SHUTDOWN, and to iBGP peers
      // LOCAL_PREF 0 (an eBGP peer's own policy decides what the community means there, §4.2).
      if (!(a.communities ?? []).includes(GRACEFUL_SHUTDOWN)) a.communities = [...(a.communities ?? []), GRACEFUL_SHUTDOWN];
      if (p.ibgp) a.localPref = 0;
    }
    if (v6) delete a.nextHop;
    else a.nextHop = hops[0] as string;
    return { attrs: a, nextHops: hops };
  }

  /**
   * The driver could not encode an announcement batch for the peer (RFC 8654 §4: too large for its messages): the
   * prefixes leave its Adj-RIB-Out and a withdrawal is queued for each (the peer may hold an older version; a
   * withdrawal of a route it does not have is harmless, RFC 4271 §9.1.3). Returns how many prefixes.
   */
  unsendable(id: number, b: Extract<OutBatch, { kind: 'announce' }>): number {
    const p = this.peer(id);
    const fam = familyKey(b.afi, b.safi);
    if (p.ap !== null && p.ap.families.has(fam)) {
      // ADD-PATH send (RFC 7911): the batch names each path by its id; only those paths leave (add-path.ts drop).
      const ids = b.pathIds ?? [];
      for (let i = 0; i < b.prefixes.length; i++) p.ap.drop(b.prefixes[i] as PrefixKey, fam, ids[i] ?? 0, this.release);
      return b.prefixes.length;
    }
    for (const prefix of b.prefixes) {
      const cur = p.adjOut.take(prefix);
      if (cur !== undefined) this.attrs.release(cur);
      p.queue(fam).withdraw(prefix);
    }
    return b.prefixes.length;
  }

  /** RFC 8326 graceful shutdown of this speaker in progress (setDraining) */
  private draining = false;

  /**
   * Start (on) or end (off) RFC 8326 graceful shutdown: every Established peer's exports are recomputed, now with
   * (or again without) GRACEFUL_SHUTDOWN and, to iBGP, LOCAL_PREF 0. The driver waits for peers to move traffic,
   * then closes the sessions; this only changes what is advertised.
   */
  setDraining(on: boolean): void {
    if (on === this.draining) return;
    this.draining = on;
    for (const p of this.peers.values()) {
      p.epoch++; // cached exports were made under the other mode
      if (p.established) this.refreshExports(p.id);
    }
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** How many routes a peer's rules refused, per direction (only grows; an export is counted each time it is decided). */
  policyRejections(id: number): { import: number; export: number } {
    const p = this.peer(id);
    return { import: p.policyRejectedIn, export: p.policyRejectedOut };
  }

  /**
   * Why a prefix is or is not held from each peer and advertised to each Established peer, by rule name. Import:
   * a refused route is remembered with its rule; an accepted one is evaluated again on what is held. Export: the
   * best path through the same steps as an advertisement (the rule lists, then the RFC 4271 / RFC 4456 rules).
   */
  policyTrace(prefix: PrefixKey): { imported: PolicyVerdict[]; exported: PolicyVerdict[] } {
    const v6 = typeof prefix !== 'number';
    const e = this.loc.get(prefix);
    const paths = e === undefined ? [] : e instanceof Path ? [e] : e.paths;
    const imported: PolicyVerdict[] = [];
    for (const p of this.peers.values()) {
      for (const r of p.refused > 0 ? this.refusedRoutes(p.id, prefix) : []) imported.push({ peer: p.address, accept: false, rule: r.rule });
      // an accepted path carries the rule that accepted it (Path.rule), as decided when it came in
      for (const path of paths) if (path.source === p) imported.push({ peer: p.address, accept: true, rule: this.ruleName(path.rule) });
    }
    const exported: PolicyVerdict[] = [];
    const best = e === undefined ? null : usableBest(e);
    if (best !== null) {
      for (const p of this.up) {
        if (!p.families.has(familyOf(prefix))) continue;
        const src = best.source;
        let verdict: PolicyVerdict;
        if (src.id === p.id) verdict = { peer: p.address, accept: false, rule: 'learned from this peer' };
        else if (!src.local && src.ibgp && p.ibgp && !(src as Peer).rrClient && !p.rrClient) {
          verdict = { peer: p.address, accept: false, rule: 'iBGP route to an iBGP peer (RFC 4271 §9.2, not reflected)' };
        } else if (p.cfg.rules === undefined) verdict = { peer: p.address, accept: true, rule: 'no policy' };
        else {
          const d = evaluate(v6 ? p.cfg.rules.export6 : p.cfg.rules.export4, {
            prefix, attrs: best.attrs.attrs, local: src.local, ibgp: p.ibgp, ifname: () => this.ifnameOf(prefix, best.attrs.nextHops, src.local),
          });
          verdict = { peer: p.address, accept: d.accept, rule: d.rule };
        }
        exported.push(verdict);
      }
    }
    return { imported, exported };
  }

  /** Recompute one peer's exports against the whole Loc-RIB (after an export policy change). */
  refreshExports(id: number): void {
    const p = this.peer(id);
    if (!p.established) return;
    this.loc.forEach((e, prefix) => this.exportEntry(p, prefix, e));
    const gone: PrefixKey[] = [];
    p.adjOut.forEach((_set, prefix) => {
      if (!this.loc.has(prefix)) gone.push(prefix);
    });
    for (const prefix of gone) this.exportTo(p, prefix, null);
    for (const prefix of p.ap?.prefixes() ?? []) if (!this.loc.has(prefix)) this.exportAddPath(p, prefix, undefined);
  }

  /**
   * ROUTE-REFRESH received (RFC 2918 §4): queue everything we advertise in the
   * family again, bracketed by BoRR/EoRR when enhanced route refresh was
   * negotiated (RFC 7313 §4).
   */
  routeRefresh(id: number, afi: number, safi: number): void {
    const p = this.peer(id);
    const fam = familyKey(afi, safi);
    if (!p.established || !p.families.has(fam)) return;
    const q = p.queue(fam);
    if (p.enhancedRouteRefresh) q.head.push('begin-refresh');
    p.adjOut.forEach((set, prefix) => {
      if (familyOf(prefix) === fam) q.announce(set, prefix);
    });
    p.ap?.requeue(fam, familyOf); // every path, under its path id (RFC 7911)
    if (p.enhancedRouteRefresh) q.tail.push('end-refresh');
  }

  /**
   * The next piece of outbound work for a peer: markers first, withdrawals,
   * then announcements one attribute set at a time (all prefixes of a batch
   * share it, so they fit one UPDATE's NLRI), at most maxPrefixes per batch;
   * null when nothing waits. The sender encodes what it gets and asks again
   * when its socket drains.
   */
  nextBatch(id: number, maxPrefixes: number): OutBatch | null {
    const p = this.peer(id);
    const max = Math.max(1, maxPrefixes);
    for (const fam of [...p.queues.keys()].sort((a, b) => a - b)) {
      const q = p.queues.get(fam) as OutQueue;
      if (q.pending.size === 0 && (q.groups.size > 0 || q.withdrawList.length > 0)) q.dropIndex();
      if (q.empty && !(p.ap?.hasWork(fam) ?? false)) continue;
      const afi = fam >> 8;
      const safi = fam & 0xff;
      const ids = (n: number): number[] | null => (p.addPathTx.has(fam) ? new Array<number>(n).fill(1) : null);
      const h = q.head.shift();
      if (h !== undefined) return { kind: h, afi, safi };
      const apb = p.ap?.next(fam, max);
      if (apb) return apb;
      const w = q.takeWithdrawals(max);
      if (w.length > 0) return { kind: 'withdraw', afi, safi, prefixes: w, pathIds: ids(w.length) };
      const a = q.takeAnnouncements(max);
      if (a !== null) return { kind: 'announce', afi, safi, attrs: a.set, prefixes: a.prefixes, pathIds: ids(a.prefixes.length) };
      const t = q.tail.shift();
      if (t !== undefined) return { kind: t, afi, safi };
    }
    return null;
  }

  // ------------------------------------------------------------------ outputs and views

  /** Best-path changes since the last call, one per prefix (coalesced), for the FIB. */
  drainBestChanges(): BestChange[] {
    const out: BestChange[] = [];
    const list = this.bestDirtyList;
    this.bestDirtyList = [];
    for (const prefix of list) {
      this.bestDirty.delete(prefix);
      const e = this.loc.get(prefix);
      const afi = typeof prefix === 'number' ? 1 : 2;
      if (e === undefined) {
        out.push({ prefix, afi, best: null, nextHops: [], local: false, from: null });
        continue;
      }
      const best = usableBest(e);
      if (best === null) {
        out.push({ prefix, afi, best: null, nextHops: [], local: false, from: null });
        continue;
      }
      let nextHops: readonly string[];
      if (e instanceof Path && e.attrs.nextHops.length <= 1) {
        nextHops = e.attrs.nextHops; // the shared frozen array: no allocation for the common case
      } else {
        const hops: string[] = [];
        for (const m of e instanceof Path ? [e] : e.sel.multipath) {
          const nh = m.attrs.nextHops[0];
          if (nh !== undefined) hops.push(nh);
        }
        nextHops = hops;
      }
      out.push({ prefix, afi, best: best.attrs, nextHops, local: best.source.local, from: best.source.address });
    }
    return out;
  }

  private trackBest = true;

  /**
   * Whether best-path changes are recorded for drainBestChanges (default on).
   * A driver with no FIB consumer turns it off: recording costs a table entry
   * per changed prefix and an object per change when drained. Turning it on
   * again marks every Loc-RIB prefix changed, so a consumer that starts late
   * receives the whole table.
   */
  setBestTracking(on: boolean): void {
    if (on === this.trackBest) return;
    this.trackBest = on;
    this.bestDirty.clear();
    this.bestDirtyList = [];
    if (!on) return;
    this.loc.forEach((_e, prefix) => {
      this.bestDirty.set(prefix, true);
      this.bestDirtyList.push(prefix);
    });
  }

  /** pending best-path changes */
  get pendingBestChanges(): number {
    return this.bestDirty.size;
  }

  /** Loc-RIB view of one prefix (skeinctl routes). */
  route(prefix: PrefixKey): RouteView | null {
    const e = this.loc.get(prefix);
    if (e === undefined) return null;
    if (e instanceof Path) return { prefix, best: e, reason: 'only-path', multipath: [e], paths: [e] };
    return { prefix, best: e.sel.best, reason: e.sel.reason, multipath: e.sel.multipath, paths: [...e.paths] };
  }

  /**
   * Every candidate path of a prefix with why it won or lost (skeinctl
   * routes): the best carries the reason it beat the runner-up, every other
   * path the first decision step where the best beat it. Best first.
   */
  explain(prefix: PrefixKey): { readonly path: Path; readonly best: boolean; readonly reason: Reason }[] {
    const r = this.route(prefix);
    if (r === null) return [];
    const rest = r.paths.filter((p) => p !== r.best).map((p) => ({ path: p, best: false, reason: compare(r.best, p).reason }));
    return [{ path: r.best, best: true, reason: r.reason }, ...rest];
  }

  /** Every Loc-RIB prefix (IPv4 in table order, then IPv6). */
  prefixes(): Generator<PrefixKey> {
    return this.loc.keysIter();
  }

  get locSize(): number {
    return this.loc.size;
  }

  /** What we advertise to a peer for a prefix (Adj-RIB-Out), if anything. */
  advertised(id: number, prefix: PrefixKey): AttrSet | undefined {
    return this.peer(id).adjOut.get(prefix);
  }

  /**
   * Every path advertised to a peer for a prefix with its path id: several
   * under ADD-PATH send (RFC 7911), else the one route (path id 1 when the
   * session has ADD-PATH without a send mode, 0 for none).
   */
  advertisedPaths(id: number, prefix: PrefixKey): { pathId: number; attrs: AttrSet }[] {
    const p = this.peer(id);
    if (p.ap !== null && p.ap.families.has(familyOf(prefix))) return p.ap.advertised(prefix);
    const set = p.adjOut.get(prefix);
    return set === undefined ? [] : [{ pathId: p.addPathTx.has(familyOf(prefix)) ? 1 : 0, attrs: set }];
  }

  /**
   * Every prefix advertised to a peer (Adj-RIB-Out; under ADD-PATH send, the prefixes of the families it covers
   * come from the Loc-RIB and advertisedPaths() says which are really sent). A lazy walk, for skeinctl.
   */
  *advertisedPrefixes(id: number): Generator<PrefixKey> {
    const p = this.peer(id);
    yield* p.adjOut.keysIter();
    const ap = p.ap;
    if (ap === null) return;
    for (const k of this.loc.keysIter()) if (ap.families.has(familyOf(k)) && !p.adjOut.has(k)) yield k;
  }

  /** Adj-RIB-In paths of a peer for a prefix. */
  received(id: number, prefix: PrefixKey): readonly Path[] {
    const p = this.peer(id);
    const e = this.loc.get(prefix);
    if (e === undefined) return [];
    return e instanceof Path ? (e.source === p ? [e] : []) : e.paths.filter((x) => x.source === p);
  }

  peerStats(id: number): { received: number; received4: number; received6: number; advertised: number; established: boolean } {
    const p = this.peer(id);
    return { received: p.paths, received4: p.paths - p.paths6, received6: p.paths6, advertised: p.adjOut.size + (p.ap?.count ?? 0), established: p.established };
  }

  private peer(id: number): Peer {
    const p = this.peers.get(id);
    if (p === undefined) throw new Error(`unknown peer id ${id}`);
    return p;
  }
}

const REJECT: PolicyResult = Object.freeze({ accept: false });
/** the name recorded for a route refused by a CoreConfig/PeerConfig import hook rather than a rule list */
const HOOK_RULE = 'import policy hook';

/** The best path if it may be used (installed, advertised); null when even the best has an unusable next hop. */
function usableBest(e: LocEntry): Path | null {
  const b = e instanceof Path ? e : e.sel.best;
  return isUsable(b) ? b : null;
}

function sameHops(a: readonly Path[], b: readonly Path[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if ((a[i] as Path).attrs.nextHops[0] !== (b[i] as Path).attrs.nextHops[0]) return false;
  return true;
}
