// Verdicts on paths: whether a path's next hop can be used (the next-hop check, next hops resolved through other
// Loc-RIB routes, and re-deciding the prefixes whose paths flip when what the host can reach changes; RFC 4271
// §9.1.2: an unusable path counts for nothing), and what the rules said of a route (the policy hooks, the outgoing
// interface the rules may match, and the trace skeinctl shows).
import type { PathAttributes } from '../wire/types.js';
import type { RibCore } from './core.js';
import { Path, isUsable, selectBest, type Selection } from './decision.js';
import type { AttrSet } from './intern.js';
import type { NextHopVerdict } from './next-hop.js';
import { Dest, familyOf, usableBest, type Peer } from './peer.js';
import { DecisionMemo, evaluate, type Decision, type RouteFacts, type RuleSet } from './policy.js';
import type { Policy, PolicyResult, PolicyVerdict, PrefixKey } from './types.js';

/** what #arm queues its microtask behind */
const SETTLED = Promise.resolve();
const REJECT: PolicyResult = Object.freeze({ accept: false });

/**
 * Judge the next hops of every attribute set, now and whenever one is made (next-hop.ts), or stop judging (null:
 * every path usable). Re-decides the prefixes whose paths changed verdict.
 */
export function setNextHopCheck(rib: RibCore, check: ((nextHops: readonly string[]) => NextHopVerdict | null) | null): number {
  rib.nhCheck = check;
  rib.attrs.classify = check === null ? null : (set) => judge(rib, set);
  rib.attrs.onDrop = (set) => rib.recursive.forget(set);
  return recheckNextHops(rib);
}

/**
 * One set's verdict: the check's, except that a next hop no host route covers may resolve through another
 * Loc-RIB route (recursive.ts), which makes it usable and sets `viaBgp`.
 */
function judge(rib: RibCore, set: AttrSet): void {
  const check = rib.nhCheck;
  const v = check === null || set.nextHops.length === 0 ? null : check(set.nextHops);
  if (v !== null && v.code === 'unresolvable') {
    const via = rib.recursive.resolve(set);
    set.unusable = via === null ? v : null;
    set.viaBgp = via;
    return;
  }
  if (set.viaBgp !== null || set.unusable?.code === 'unresolvable') rib.recursive.forget(set);
  set.unusable = v;
  set.viaBgp = null;
}

/**
 * Next hops resolved through the Loc-RIB whose covering routes changed: resolve them again and re-decide the
 * prefixes whose paths flipped (recursive.ts). Run after each change from outside (UPDATE, origination, drain).
 * Bounded: a round's re-decisions may mark more next hops (one level deep they cannot chain further), left for
 * the next call.
 */
export function flushRecursive(rib: RibCore): number {
  let n = 0;
  for (let round = 0; round < 4 && rib.recursive.pending; round++) {
    const epoch = rib.recursive.epoch;
    const flipped = rib.recursive.flush((set) => judge(rib, set));
    if (flipped.size > 0) n += redecide(rib, flipped);
    if (rib.recursive.epoch !== epoch) rib.config.onRecursiveMoved?.();
  }
  return n;
}

/**
 * The Loc-RIB route a next hop resolves through (recursive.ts) and its next hops in use (its best, or every
 * multipath member), which the FIB installs a route with this next hop through; null when it resolves otherwise.
 */
export function recursiveHops(rib: RibCore, nextHop: string): { via: PrefixKey; nextHops: string[] } | null {
  const via = rib.recursive.via(nextHop);
  if (via === null) return null;
  const e = rib.loc.get(via);
  if (e === undefined) return null;
  const best = usableBest(e);
  if (best === null) return null;
  const members = e instanceof Dest ? e.sel.multipath.filter((p) => isUsable(p)) : [best];
  const hops = [...new Set(members.map((p) => p.attrs.nextHops[0]).filter((h): h is string => h !== undefined))];
  return { via, nextHops: hops };
}

/**
 * What the host can reach changed: judge the attribute sets again (when `changed` is given, only those whose
 * first next hop it says the change concerns: next-hop.ts setReachability) and re-run the decision for the
 * prefixes that have a path whose usability flipped (a new verdict with the same usability only changes what is
 * shown). Walks the table only when some set flipped, in slices (walker.ts): returns the number of prefixes
 * re-decided by the time it returns (all of them for a table the first slice covers); the rest follow, the driver
 * told through CoreConfig.onWork after each later slice.
 */
export function recheckNextHops(rib: RibCore, changed: ((nextHop: string) => boolean) | null = null): number {
  const flipped = new Map<AttrSet, { ok: boolean; rec: boolean }>();
  for (const set of rib.attrs.affected(changed)) {
    const before = { ok: set.unusable === null, rec: set.viaBgp !== null };
    if (rib.nhCheck === null || set.nextHops.length === 0) {
      if (set.viaBgp !== null || set.unusable?.code === 'unresolvable') rib.recursive.forget(set);
      set.unusable = null;
      set.viaBgp = null;
    } else judge(rib, set);
    if (before.ok !== (set.unusable === null) || before.rec !== (set.viaBgp !== null)) flipped.set(set, before);
  }
  // the host's routes changed: where recursive next hops resolve may have too
  rib.recursive.epoch++;
  rib.config.onRecursiveMoved?.();
  const n = flipped.size === 0 ? 0 : redecide(rib, flipped);
  return n + (rib.recursive.pending ? flushRecursive(rib) : 0);
}

/** Re-decide, in a walk, every prefix with a path whose set's verdict changed (`flipped`: the verdict of before). */
function redecide(rib: RibCore, flipped: Map<AttrSet, { ok: boolean; rec: boolean }>): number {
  // usability under the verdicts of before the change
  const was = (p: Path): boolean => {
    const b = flipped.get(p.attrs);
    if (b === undefined) return isUsable(p);
    return p.source.local || (b.ok && !(p.inside && b.rec));
  };
  // The prefixes are re-decided in a walk (walker.ts). A prefix that changes before the walk reaches it is decided
  // under the new verdicts by the ordinary path; when the walk then reaches it, deciding again changes nothing
  // (exports and best changes of an unchanged state are suppressed or repeated harmlessly). A prefix added
  // meanwhile got its verdicts when its set was made.
  const loc = rib.loc;
  let n = 0;
  rib.rechecking++;
  rib.walker.start(loc.keySnapshot(), (prefix) => {
    const e = loc.get(prefix);
    if (e === undefined) return;
    if (e instanceof Path) {
      if (!flipped.has(e.attrs)) return;
      n++;
      rib.changed(prefix, was(e) ? e : null, null, e, true);
      return;
    }
    if (!e.paths.some((x) => flipped.has(x.attrs))) return;
    n++;
    const before = e.sel;
    const prevBest = was(before.best) ? before.best : null;
    e.sel = selectBest(e.paths, rib.maxPaths) as Selection;
    rib.changed(prefix, prevBest, prevBest === null ? null : before.multipath, e, true);
  }, () => {
    rib.rechecking--;
  });
  return n;
}

/** The route's outgoing interface for the rules, or undefined (no resolver, or none known). */
export function ifnameOf(rib: RibCore, prefix: PrefixKey, nextHops: readonly string[], local: boolean): string | undefined {
  const f = rib.config.routeInterface;
  if (f === undefined) return undefined;
  try {
    return f(prefix, nextHops, local);
  } catch {
    return undefined; // a failing lookup is a route without an interface, never a broken core
  }
}

const NO_ATTRS: PathAttributes = Object.freeze({});
const NO_HOPS: readonly string[] = Object.freeze([]);

/**
 * The facts of one route as the rules see them, refilled for each evaluation: the import and export paths run the
 * rules once per route (a million at a full table), and a fresh facts object with its own interface closure per
 * route was garbage the collector then had to sweep. evaluate() reads it synchronously and keeps none of it; fill()
 * it right before each evaluate() call.
 */
export class FactsCell implements RouteFacts {
  prefix: PrefixKey = 0;
  attrs: PathAttributes = NO_ATTRS;
  local = false;
  ibgp = false;
  nextHops: readonly string[] = NO_HOPS;
  /**
   * The interface of the learned route asked last, by its next-hop array (an attribute set's own, shared by every
   * prefix of an UPDATE): Calico's export rules test the interface of every route, and the answer of a learned one
   * depends on its next hops only (src/daemon/policy.ts routeInterface). Kept for one UPDATE (applyUpdate forgets
   * it) and never past the task that asked (a microtask forgets it), so a change of the host's interfaces is seen
   * as soon as it was before. null: nothing kept.
   */
  #memoHops: readonly string[] | null = null;
  #memo: string | undefined = undefined;
  constructor(private readonly rib: RibCore) {}
  /** the last rule-list decision over a learned IPv4 route (policy.ts DecisionMemo), kept as long as #memoHops */
  readonly #decisions = new DecisionMemo();
  /** a microtask that forgets is queued */
  #armed = false;
  readonly ifname = (): string | undefined => {
    if (this.local) return ifnameOf(this.rib, this.prefix, this.nextHops, true);
    if (this.nextHops === this.#memoHops) return this.#memo;
    this.#arm();
    this.#memo = ifnameOf(this.rib, this.prefix, this.nextHops, false);
    this.#memoHops = this.nextHops;
    return this.#memo;
  };

  #arm(): void {
    if (this.#armed) return;
    this.#armed = true;
    // a microtask through a settled promise: Node's queueMicrotask makes an AsyncResource per call, which with the
    // callback's wrapper was ~2% of a host's CPU per received UPDATE (`npm run bench -- convergence`, perf); forget
    // cannot throw, so nothing is lost by a rejection instead of an exception
    void SETTLED.then(this.forget);
  }

  /** Drop the remembered interface and decision (see #memoHops). */
  readonly forget = (): void => {
    this.#memoHops = null;
    this.#memo = undefined;
    this.#decisions.clear();
    this.#armed = false;
  };

  /**
   * evaluate(set, this route): for a learned IPv4 route the decision of the route before when no rule can tell
   * them apart (DecisionMemo; the route's interface follows its next hops, as ifname() assumes).
   */
  decide(set: RuleSet): Decision {
    const prefix = this.prefix;
    if (this.local || typeof prefix !== 'number') return evaluate(set, this);
    this.#arm();
    return this.#decisions.evaluate4(set, this as RouteFacts & { readonly prefix: number }, this.nextHops);
  }

  fill(prefix: PrefixKey, attrs: PathAttributes, local: boolean, ibgp: boolean, nextHops: readonly string[]): this {
    this.prefix = prefix;
    this.attrs = attrs;
    this.local = local;
    this.ibgp = ibgp;
    this.nextHops = nextHops;
    return this;
  }
}

/** Run a policy hook; one that throws rejects the route and is reported, never unwinds the core. */
export function callPolicy(rib: RibCore, policy: Policy, which: 'import' | 'export', prefix: PrefixKey, attrs: PathAttributes, p: Peer): PolicyResult {
  try {
    return policy(prefix, attrs, p);
  } catch (error) {
    rib.policyErrors++;
    try {
      rib.config.onPolicyError?.({ which, prefix, peer: p, error });
    } catch {
      /* a reporter that throws must not break the core either */
    }
    return REJECT;
  }
}

/**
 * Why a prefix is or is not held from each peer and advertised to each Established peer, by rule name. Import:
 * a refused route is remembered with its rule; an accepted one is evaluated again on what is held. Export: the
 * best path through the same steps as an advertisement (the rule lists, then the RFC 4271 / RFC 4456 rules).
 */
export function policyTrace(rib: RibCore, prefix: PrefixKey): { imported: PolicyVerdict[]; exported: PolicyVerdict[] } {
  const v6 = typeof prefix !== 'number';
  const e = rib.loc.get(prefix);
  const paths = e === undefined ? [] : e instanceof Path ? [e] : e.paths;
  const imported: PolicyVerdict[] = [];
  for (const p of rib.peers.values()) {
    for (const r of p.refused > 0 ? rib.refusedRoutes(p.id, prefix) : []) imported.push({ peer: p.address, accept: false, rule: r.rule });
    // an accepted path carries the rule that accepted it (Path.rule), as decided when it came in
    for (const path of paths) if (path.source === p) imported.push({ peer: p.address, accept: true, rule: rib.ruleName(path.rule) });
  }
  const exported: PolicyVerdict[] = [];
  const best = e === undefined ? null : usableBest(e);
  if (best !== null) {
    for (const p of rib.up) {
      if (!p.families.has(familyOf(prefix))) continue;
      const src = best.source;
      let verdict: PolicyVerdict;
      if (src.id === p.id) verdict = { peer: p.address, accept: false, rule: 'learned from this peer' };
      else if (!src.local && src.ibgp && p.ibgp && !(src as Peer).rrClient && !p.rrClient) {
        verdict = { peer: p.address, accept: false, rule: 'iBGP route to an iBGP peer (RFC 4271 §9.2, not reflected)' };
      } else if (p.cfg.rules === undefined) verdict = { peer: p.address, accept: true, rule: 'no policy' };
      else {
        const d = evaluate(v6 ? p.cfg.rules.export6 : p.cfg.rules.export4, {
          prefix, attrs: best.attrs.attrs, local: src.local, ibgp: p.ibgp, ifname: () => ifnameOf(rib, prefix, best.attrs.nextHops, src.local),
        });
        verdict = { peer: p.address, accept: d.accept, rule: d.rule };
      }
      exported.push(verdict);
    }
  }
  return { imported, exported };
}
