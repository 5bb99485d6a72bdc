// RIBs: attribute interning, the decision process, and the route-processing core.
export { AttrSet, AttrTable, attrKey, asPathLength, neighborAs } from './intern.js';
export {
  Path, PATH_EPOCH_MS, compare, equalCost, isUsable, selectBest, addressSortKey, DEFAULT_LOCAL_PREF, unusableWhy,
} from './decision.js';
export type { PathSource, Reason, Comparison, Selection } from './decision.js';
export { RibCore, DEFAULT_KEEP_REFUSED } from './core.js';
export { BestBatch } from './change-queue.js';
export { NextHopTable } from './next-hop.js';
export { NextHopResolver } from './nexthop-resolve.js';
export type { ResolvingRoute, ViaHop } from './nexthop-resolve.js';
export type { NextHopProblem, NextHopVerdict, Reachability } from './next-hop.js';
export type { AddPathSend } from './add-path.js';
export type {
  PrefixKey, PeerView, Policy, PolicyResult, PolicyError, PeerConfig, CoreConfig, SessionTerms, BestChange, OutBatch, UpdateResult, RouteView, RefusedRoute,
} from './core.js';
export type { PolicyVerdict } from './core.js';
export { evaluate, checkRules, globToRegExp, ACCEPT_ALL } from './policy.js';
export type { Rule, RuleSet, RuleAction, RuleOperation, MatchOperator, PeerRules, RouteFacts, Decision } from './policy.js';
