// The route-processing core (OpenBGPD's RDE, without the process): decoded
// UPDATEs in, best-path changes and per-peer outbound work out. No I/O, no
// timers, no codec: the driver feeds applyUpdate() and drains nextBatch() and
// drainBest() as its sockets and the FIB allow.
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
// Export rules (RFC 4271 §9.1.3, §5.1, RFC 4456): see export.ts.
// A path whose next hop is bad or unresolvable (next-hop.ts) stays in the table but counts for nothing: when the
// best candidate is unusable the prefix has no best (the FIB removes it, peers get a withdrawal), and ADD-PATH
// peers never get an unusable path (RFC 4271 §9.1.2).
// With ADD-PATH send (RFC 7911, add-path.ts) a peer gets every candidate of
// a prefix, or the N best, each under its own path id and each through the
// rules above, instead of the best alone.
//
// What this file keeps, and why: RibCore's state (the tables, peers, update groups, queues) and the one path every
// route change takes — put / remove / changed, with the stale count kept as paths move (staleMoved) — so the
// invariants between the Loc-RIB, the best-change queue and the exports are kept in one place; plus the public
// entry points, each a line or two that hands over to the file doing the work:
//   session.ts   peer up / down, joining and leaving update groups
//   import.ts    UPDATEs into Adj-RIB-In          export.ts   a best path to an Adj-RIB-Out
//   outbound.ts  batches out, refresh, unsendable, graceful shutdown
//   verdicts.ts  next-hop and policy verdicts    stale.ts    graceful restart and refresh sweeps
//   best-out.ts  best-path changes for the FIB   views.ts    plain-data views for skeinctl
// Those files take the RibCore and use its members marked @internal (for the files beside this one).
import type { PathAttributes, UpdateMessage } from '../wire/types.js';
import { DEFAULT_LOCAL_PREF, Path, isUsable, selectBest } from './decision.js';
import type { NextHopVerdict } from './next-hop.js';
import type { PathSource, Reason, Selection } from './decision.js';
import { AttrTable } from './intern.js';
import { checkAddPathSend } from './add-path.js';
import { PrefixMap } from './prefix-map.js';
import type { AttrSet } from './intern.js';
import { Dest, Peer, familyOf, sameHops, usableBest, type LocEntry } from './peer.js';
import { groupKey, type UpdateGroup } from './update-group.js';
import { groupHasWork, nextBatch, nextGroupBatch, nextPersonalBatch, refreshExports, routeRefresh, setDraining, unsendable } from './outbound.js';
import { peerDown, peerUp, splitFromGroup } from './session.js';
import { advertisedPaths, advertisedPrefixes, explain, peerStats, received, route } from './views.js';
import { enterLongLivedStale, markStale, staleCount, staleCountByWalk, sweepStale } from './stale.js';
import { Walker } from './walker.js';
import { ChangeQueue, type BestBatch } from './change-queue.js';
import { drainBest, drainBestChanges, replayBest, setBestTracking } from './best-out.js';
import { applyUpdate, keepReceived, keepsReceived, refusedRoutes, reimport } from './import.js';
import { exportAddPath, exportTo } from './export.js';
import { FactsCell, flushRecursive, policyTrace, recheckNextHops, recursiveHops, setNextHopCheck } from './verdicts.js';
import { countsAfterUpdate, type FamilyCounts } from './prefix-limit.js';
import { RecursiveNextHops, nextHopInside } from './recursive.js';
import type {
  BestChange, CoreConfig, OutBatch, PeerConfig, PolicyVerdict, PrefixKey, RefusedRoute, RouteView, SessionTerms, UpdateResult,
} from './types.js';
export { DEFAULT_KEEP_REFUSED } from './types.js';

export type {
  PrefixKey, PeerView, PolicyResult, Policy, PeerConfig, CoreConfig, PolicyVerdict, PolicyError, SessionTerms, BestChange, OutBatch,
  UpdateResult, RouteView, RefusedRoute,
} from './types.js';
export class RibCore {
  readonly attrs = new AttrTable();
  /** @internal every peer by id */
  readonly peers = new Map<number, Peer>();
  /** @internal the Established peers, for the per-prefix export loop */
  up: Peer[] = [];
  /** @internal the Established peers with ADD-PATH send: every candidate change goes to them */
  apUp: Peer[] = [];
  /** @internal the update groups of the Established peers (update-group.ts), for the per-prefix export loop */
  groups: UpdateGroup[] = [];
  /** @internal */
  nextGroupId = 1;
  /** @internal (the files beside this one) */
  readonly loc = new PrefixMap<LocEntry>();
  /** next hops resolved through other Loc-RIB routes (recursive.ts) */
  readonly recursive = new RecursiveNextHops(this.loc);
  /** @internal the next-hop check (setNextHopCheck, verdicts.ts), null: none */
  nhCheck: ((nextHops: readonly string[]) => NextHopVerdict | null) | null = null;
  /** @internal prefixes whose best path or next hops changed since the last drain (change-queue.ts, best-out.ts) */
  readonly bestDirty = new ChangeQueue();
  /** @internal whether best-path changes are recorded (setBestTracking) */
  trackBest = true;
  /** @internal times setBestTracking changed the mode: a walk it started stops when the mode changes again */
  trackTurns = 0;
  private nextPeerId = 1;
  private readonly localSource: PathSource;
  /** @internal */
  readonly maxPaths: number;
  /** @internal (the files beside this one) */
  readonly defaultLocalPref: number;
  /** @internal (the files beside this one) */
  readonly clusterId: number;
  /** @internal the route facts the rules read, refilled per evaluation (verdicts.ts) */
  readonly facts = new FactsCell(this);
  /** policy hooks that threw (each rejected its route) */
  policyErrors = 0;

  /** @internal whole-table walks in slices (walker.ts) */
  readonly walker: Walker;

  constructor(readonly config: CoreConfig) {
    this.walker = new Walker(config.walk ?? {}, () => config.onWork?.());
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
    const g = p.group;
    if (g !== null && p.terms !== null && (this.config.updateGroups !== true || groupKey(p, p.terms) !== g.key)) {
      // its export may differ from the group's now: on its own (update-group.ts), the caller refreshes its exports
      this.splitFromGroup(id);
      (p.group as UpdateGroup).epoch++;
    }
    if (p.ap !== null && cfg.addPathSend !== undefined) p.ap.mode = cfg.addPathSend; // applies from refreshExports
  }

  /** The session reached Established (session.ts): the whole Loc-RIB is queued for it, then End-of-RIB. */
  peerUp(id: number, terms: SessionTerms): void {
    peerUp(this, id, terms);
  }

  /** A member leaves its shared update group for one of its own (session.ts); returns that group's id. */
  splitFromGroup(id: number): number {
    return splitFromGroup(this, id);
  }

  /** The session left Established (session.ts): its routes go, or stay stale under retainStale (RFC 4724 §4.2). */
  peerDown(id: number, opts: { retainStale?: boolean } = {}): void {
    peerDown(this, id, opts);
  }

  // ------------------------------------------------------------------ stale paths (stale.ts)

  /**
   * Mark every path of the peer in a family stale (RFC 7313 §4: a BoRR was
   * received; RFC 4724: the session went down gracefully). Paths the peer
   * announces again become fresh.
   */
  markStale(id: number, family: number): void {
    markStale(this, id, family);
  }

  /**
   * Remove the peer's paths still stale in a family (all families when
   * family is omitted): RFC 7313 §4 EoRR, RFC 4724 §4.2 End-of-RIB or timer.
   * Returns how many paths went.
   */
  sweepStale(id: number, family?: number): number {
    return sweepStale(this, id, family);
  }

  /** RFC 9494 §4.2: a family of the peer's stale paths enters the long-lived phase (stale.ts). */
  enterLongLivedStale(id: number, family: number): { kept: number; removed: number } {
    return enterLongLivedStale(this, id, family);
  }

  /** How many of a peer's paths are stale now (graceful restart, route refresh); kept, not counted. */
  staleCount(id: number): number {
    return staleCount(this, id);
  }

  /** staleCount by walking the table, which the kept count must equal (tests). */
  staleCountByWalk(id: number): number {
    return staleCountByWalk(this, id);
  }

  /** Whole-table walks started and not finished (walker.ts). */
  get walksPending(): number {
    return this.walker.pending;
  }

  /** Run every pending walk to its end now. */
  finishWalks(): void {
    this.walker.finish();
  }

  // ------------------------------------------------------------------ import (import.ts)

  /** Apply one decoded UPDATE from an Established peer. */
  applyUpdate(id: number, u: UpdateMessage): UpdateResult {
    this.facts.forget();
    const r = applyUpdate(this, id, u);
    if (this.recursive.pending) this.flushRecursive();
    return r;
  }

  /**
   * Keep what the peer sends before the import rules (on), or stop and forget it (off). For a session that cannot
   * refresh (RFC 2918), so changed import rules apply without a reset: reimport().
   */
  keepReceived(id: number, on: boolean): void {
    keepReceived(this, id, on);
  }

  /** Whether reimport() can apply changed import rules for this peer. */
  keepsReceived(id: number): boolean {
    return keepsReceived(this, id);
  }

  /** Run the peer's current import rules again over what it sent (kept by keepReceived); returns paths accepted. */
  reimport(id: number): number {
    return reimport(this, id);
  }

  /** The peer's paths per family once `u` were applied (prefix-limit.ts; exact only past `limits`); changes nothing. */
  countsAfterUpdate(id: number, u: UpdateMessage, limits: { v4: number; v6: number }): FamilyCounts {
    return countsAfterUpdate(this, id, u, limits);
  }

  /** @internal (the files beside this one) */
  announcePath(p: Peer, prefix: PrefixKey, pathId: number, set: AttrSet, rule = 0): void {
    if (this.put(prefix, p, pathId, set, p.gen(familyOf(prefix)), rule) === 'added') {
      p.paths++;
      if (typeof prefix !== 'number') p.paths6++;
    }
  }

  /** @internal (the files beside this one) */
  withdrawPath(p: Peer, prefix: PrefixKey, pathId: number): boolean {
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
    if (this.recursive.pending) this.flushRecursive();
  }

  /** Stop originating a prefix; false if it was not originated. */
  withdrawOrigin(prefix: PrefixKey): boolean {
    const ok = this.remove(prefix, this.localSource, 0);
    if (this.recursive.pending) this.flushRecursive();
    return ok;
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
  /** @internal (the files beside this one) */
  put(prefix: PrefixKey, src: PathSource, pathId: number, set: AttrSet, gen = 0, rule = 0): 'same' | 'replaced' | 'added' {
    const path0 = this.pathOf(src, pathId, set, gen, rule, !src.local && nextHopInside(prefix, set));
    const e = this.loc.getOrSet(prefix, path0); // a new prefix is stored by the same probe
    if (e === undefined) {
      this.keySetVersion++;
      this.changed(prefix, null, null, path0);
      return 'added';
    }
    if (e instanceof Path) {
      if (e.source === src && e.pathId === pathId) {
        if (e.attrs === set) {
          // the same route again: nothing changes, but it is fresh (Paths are shared: replace, never assign)
          if (e.gen !== gen || e.rule !== rule || e.inside !== path0.inside) {
            this.loc.set(prefix, path0);
            if (e.gen !== gen) this.staleMoved(src, prefix, e.gen, gen);
          }
          this.attrs.release(set);
          return 'same';
        }
        this.loc.set(prefix, path0);
        if (e.gen !== gen) this.staleMoved(src, prefix, e.gen, gen);
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
      if (old.gen !== gen || old.rule !== rule || old.inside !== path0.inside) {
        // fresh again (or accepted by another rule): swap in the new Path; the
        // selection is the same but must hold the object that is now in the entry
        e.paths[i] = path0;
        if (e.sel.multipath.includes(old) || e.sel.best === old) e.sel = selectBest(e.paths, this.maxPaths) as Selection;
        if (old.gen !== gen) this.staleMoved(src, prefix, old.gen, gen);
      }
      this.attrs.release(set);
      return 'same';
    }
    const before = e.sel;
    if (old !== undefined) {
      e.paths[i] = path0;
      if (old.gen !== gen) this.staleMoved(src, prefix, old.gen, gen);
    } else e.paths.push(path0);
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
  private pathOf(src: PathSource, pathId: number, set: AttrSet, gen: number, rule: number, inside: boolean): Path {
    const c = this.lastPath;
    if (c !== null && c.attrs === set && c.source === src && c.pathId === pathId && c.gen === gen && c.rule === rule && c.inside === inside) return c;
    return (this.lastPath = Object.freeze(new Path(src, pathId, set, gen, rule, inside)));
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
      this.keySetVersion++;
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
    this.staleMoved(src, prefix, old.gen, null);
    this.attrs.release(old.attrs);
    return true;
  }

  /**
   * A path of src for prefix went from generation `was` to `now` (null: removed): keeps the peer's count of stale
   * paths (stale.ts) without walking the table.
   */
  private staleMoved(src: PathSource, prefix: PrefixKey, was: number, now: number | null): void {
    if (src.local) return;
    const p = src as Peer;
    if (p.gens.size === 0) return; // never marked: nothing is stale
    const g = p.gen(familyOf(prefix));
    const before = was < g;
    const after = now !== null && now < g;
    if (before === after) return;
    if (typeof prefix === 'number') p.stale4 += after ? 1 : -1;
    else p.stale6 += after ? 1 : -1;
  }

  /**
   * After a Loc-RIB entry changed: note FIB work and export the new best where
   * it differs. prevMulti null stands for [prevBest] (a lone path). @internal (verdicts.ts re-decides through it)
   */
  changed(prefix: PrefixKey, prevBest: Path | null, prevMulti: readonly Path[] | null, after: LocEntry | undefined, prevJudged = false): void {
    if (this.recursive.watching) this.recursive.touched(prefix);
    // ADD-PATH send peers see every candidate, not only the best (RFC 7911)
    for (let i = 0; i < this.apUp.length; i++) exportAddPath(this, this.apUp[i] as Peer, prefix, after);
    // An unusable best was no best (unless the caller judged the previous state under the verdicts of before).
    // While a re-check walk is under way (recheckNextHops) a path judged unusable now may have been usable, and
    // exported, when this prefix was last decided: then the new state is handed on even if it looks unchanged.
    let unsure = false;
    if (!prevJudged && prevBest !== null && !isUsable(prevBest)) {
      unsure = this.rechecking > 0;
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
    if (best === prevBest && sameMulti && !unsure) return; // a non-best candidate changed
    if (
      this.trackBest &&
      (best === null ||
        unsure ||
        prevBest === null ||
        best.attrs !== prevBest.attrs ||
        best.source !== prevBest.source ||
        !sameHops(after instanceof Dest ? after.sel.multipath : [best], prevMulti ?? [prevBest]))
    ) {
      this.bestDirty.add(prefix);
    }
    if (best === prevBest && !unsure) return; // only the multipath set moved: exports follow the best alone
    const groups = this.groups;
    for (let i = 0; i < groups.length; i++) exportTo(this, groups[i] as UpdateGroup, prefix, best);
  }

  // ------------------------------------------------------------------ next hops

  /** Judge every attribute set's next hops now and as sets are made (null: stop), re-deciding flips (verdicts.ts). */
  setNextHopCheck(check: ((nextHops: readonly string[]) => NextHopVerdict | null) | null): number {
    return setNextHopCheck(this, check);
  }

  /** Re-resolve next hops whose covering Loc-RIB routes changed and re-decide what flipped (verdicts.ts). */
  flushRecursive(): number {
    return flushRecursive(this);
  }

  /** The Loc-RIB route a next hop resolves through and its next hops in use; null otherwise (verdicts.ts). */
  recursiveHops(nextHop: string): { via: PrefixKey; nextHops: string[] } | null {
    return recursiveHops(this, nextHop);
  }

  /** What the host can reach changed: judge the sets again and re-decide what flipped, in slices (verdicts.ts). */
  recheckNextHops(changed: ((nextHop: string) => boolean) | null = null): number {
    return recheckNextHops(this, changed);
  }

  /** @internal re-check walks (recheckNextHops, verdicts.ts) started and not finished */
  rechecking = 0;

  // ------------------------------------------------------------------ export (export.ts)

  /** @internal (the files beside this one) */
  readonly release = (set: AttrSet): void => this.attrs.release(set);

  /** An announcement batch the driver could not encode (RFC 8654 §4) leaves the Adj-RIB-Out (outbound.ts). */
  unsendable(id: number, b: Extract<OutBatch, { kind: 'announce' }>): number {
    return unsendable(this, id, b);
  }

  /** @internal RFC 8326 graceful shutdown of this speaker in progress (setDraining); read by export.ts transform */
  draining = false;

  /** Start or end RFC 8326 graceful shutdown: every export is recomputed (outbound.ts). */
  setDraining(on: boolean): void {
    setDraining(this, on);
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** rule names by index (Path.rule, refused routes); 0 is "no policy" */
  private readonly ruleNames: string[] = ['no policy'];
  private readonly ruleIndexes = new Map<string, number>([['no policy', 0]]);
  /** the name ruleIndex was asked last and its index */
  private lastRuleName = 'no policy';
  private lastRuleIndex = 0;

  /**
   * @internal The index of a rule name, added on first use. Names come from the configuration (one per rule and
   * fallback), so the table is as large as the rules ever configured, not the routes; past 65,536 names (a
   * configuration churning generated names) new ones share one last index rather than grow it further.
   */
  ruleIndex(name: string): number {
    // the routes of an UPDATE are mostly decided by one rule: its name again needs no Map lookup
    if (name === this.lastRuleName) return this.lastRuleIndex;
    const i = this.ruleIndexes.get(name);
    if (i !== undefined) {
      this.lastRuleName = name;
      this.lastRuleIndex = i;
      return i;
    }
    if (this.ruleNames.length >= 65_536) return this.ruleIndex('(rule names beyond 65,536 not kept)');
    this.ruleNames.push(name);
    this.ruleIndexes.set(name, this.ruleNames.length - 1);
    return this.ruleNames.length - 1;
  }

  /** The name of a Path's import rule (Path.rule). */
  ruleName(index: number): string {
    return this.ruleNames[index] ?? 'no policy';
  }

  /** The routes a peer sent that import rules refused, kept for a prefix (bounded by CoreConfig.keepRefused). */
  refusedRoutes(id: number, prefix: PrefixKey): RefusedRoute[] {
    return refusedRoutes(this, this.peer(id), prefix);
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

  /** How many routes a peer's rules refused, per direction (only grows; an export is counted each time it is decided). */
  policyRejections(id: number): { import: number; export: number } {
    const p = this.peer(id);
    return { import: p.policyRejectedIn, export: p.policyRejectedOut };
  }

  /** Why a prefix is or is not held from each peer and advertised to each Established peer, by rule (verdicts.ts). */
  policyTrace(prefix: PrefixKey): { imported: PolicyVerdict[]; exported: PolicyVerdict[] } {
    return policyTrace(this, prefix);
  }

  /** Recompute one peer's exports against the whole Loc-RIB (after an export policy change; outbound.ts). */
  refreshExports(id: number): void {
    refreshExports(this, id);
  }

  /** ROUTE-REFRESH received (RFC 2918 §4, RFC 7313 §4): queue the family again for the peer (outbound.ts). */
  routeRefresh(id: number, afi: number, safi: number): void {
    routeRefresh(this, id, afi, safi);
  }

  /** The next outbound batch of a peer alone in its update group; null when nothing waits (outbound.ts). */
  nextBatch(id: number, maxPrefixes: number): OutBatch | null {
    return nextBatch(this, id, maxPrefixes);
  }

  /** The update group of an Established peer: its id and members' ids (update-group.ts); null when not Established. */
  groupOf(id: number): { id: number; members: number[] } | null {
    const g = this.peer(id).group;
    return g === null ? null : { id: g.id, members: g.members.map((m) => m.id) };
  }

  /** The next batch of an update group with its per-member exceptions; null when none waits (outbound.ts). */
  nextGroupBatch(groupId: number, maxPrefixes: number): { batch: OutBatch; except: Map<number, OutBatch | null> } | null {
    return nextGroupBatch(this, groupId, maxPrefixes);
  }

  /** A member's own next batch (personal entries, ADD-PATH work); null when none waits (outbound.ts). */
  nextPersonalBatch(id: number, maxPrefixes: number): OutBatch | null {
    return nextPersonalBatch(this, id, maxPrefixes);
  }

  /** Whether an update group or one of its members has anything to send (outbound.ts); false for an unknown id. */
  groupHasWork(groupId: number): boolean {
    return groupHasWork(this, groupId);
  }

  /** One member's id per update group (the groups of the Established peers), to pump each group once. */
  groupReps(): number[] {
    const out: number[] = [];
    for (const g of this.groups) if (g.members.length > 0) out.push((g.members[0] as Peer).id);
    return out;
  }

  /** The id of a peer's update group; null when it is not Established. */
  groupIdOf(id: number): number | null {
    return this.peer(id).group?.id ?? null;
  }

  // ------------------------------------------------------------------ outputs and views

  /** Best-path changes since the last call, coalesced per prefix, for the FIB, within budgetMs (best-out.ts). */
  drainBest(budgetMs = Infinity): BestBatch {
    return drainBest(this, budgetMs);
  }

  /** drainBest as one object per change (tests, benchmarks of the core alone). */
  drainBestChanges(budgetMs = Infinity): BestChange[] {
    return drainBestChanges(this, budgetMs);
  }

  /**
   * Whether best-path changes are recorded (default on); on again marks the whole Loc-RIB unless replay is false
   * (best-out.ts).
   */
  setBestTracking(on: boolean, replay = true): void {
    setBestTracking(this, on, replay);
  }

  /** While tracking: mark the whole Loc-RIB changed, for a consumer that wants the whole table (best-out.ts). */
  replayBest(): void {
    replayBest(this);
  }

  /** pending best-path changes */
  get pendingBestChanges(): number {
    return this.bestDirty.size;
  }

  /** Loc-RIB view of one prefix (skeinctl routes; views.ts). */
  route(prefix: PrefixKey): RouteView | null {
    return route(this, prefix);
  }

  /** Every candidate path of a prefix with why it won or lost, best first (views.ts). */
  explain(prefix: PrefixKey): { readonly path: Path; readonly best: boolean; readonly reason: Reason }[] {
    return explain(this, prefix);
  }

  /**
   * Bumped whenever a prefix enters or leaves the Loc-RIB (not when only its paths change): sorted copies of the
   * prefixes (src/daemon/prefix-walk.ts) are shared while it stays the same.
   */
  keySetVersion = 0;

  /** Every Loc-RIB prefix (IPv4 in table order, then IPv6). */
  prefixes(): Generator<PrefixKey> {
    return this.loc.keysIter();
  }

  get locSize(): number {
    return this.loc.size;
  }

  /** What we advertise to a peer for a prefix (Adj-RIB-Out), if anything. */
  advertised(id: number, prefix: PrefixKey): AttrSet | undefined {
    const p = this.peer(id);
    return p.group?.desired(p, prefix);
  }

  /** Every path advertised to a peer for a prefix with its path id (RFC 7911; views.ts). */
  advertisedPaths(id: number, prefix: PrefixKey): { pathId: number; attrs: AttrSet }[] {
    return advertisedPaths(this, id, prefix);
  }

  /** Every prefix advertised to a peer, a lazy walk for skeinctl (views.ts). */
  *advertisedPrefixes(id: number): Generator<PrefixKey> {
    yield* advertisedPrefixes(this, id);
  }

  /** Adj-RIB-In paths of a peer for a prefix (views.ts). */
  received(id: number, prefix: PrefixKey): readonly Path[] {
    return received(this, id, prefix);
  }

  /** A peer's counts of paths received and prefixes advertised (views.ts). */
  peerStats(id: number): ReturnType<typeof peerStats> {
    return peerStats(this, id);
  }

  /** @internal (the files beside this one) */
  peer(id: number): Peer {
    const p = this.peers.get(id);
    if (p === undefined) throw new Error(`unknown peer id ${id}`);
    return p;
  }
}
