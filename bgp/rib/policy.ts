// Routing policy as plain data: ordered rule lists per peer, direction and family, evaluated first match wins.
// Nothing here knows Calico; src/controller/policy.ts compiles Calico's resources (BGPFilter, IPPool, the node's
// blocks and service ranges) into these lists in the order Calico's confd renders its BIRD filters, and the core
// (core.ts) runs them on import (before Adj-RIB-In) and on export (before the per-peer attribute rules of RFC 4271
// §5.1, as BIRD runs a protocol's export filter before the BGP code prepends its AS).
//
// A rule matches when every condition it has holds (a rule without conditions always matches). Its action:
// - 'accept' / 'reject': ends the evaluation (BIRD's `accept;` / `reject;`, which end the whole filter even from
//   inside a function);
// - 'modify': applies its operations and goes on (Calico's apply_communities(), which only adds communities).
// An accepting rule may carry operations too (BGPFilter `operations`), applied before the route is accepted.
// When no rule ends the evaluation, the list's fallback decides. Every decision names the rule that made it, so an
// operator can ask why a route went out or not.
import type { AsPathSegment, PathAttributes, Prefix4, Prefix6 } from '../wire/types.js';
import { SegmentType } from '../wire/constants.js';
import { DEFAULT_LOCAL_PREF } from './decision.js';
import { mask4, parseIpv4, parseIpv6, prefix4Addr, prefix4Len, prefix6Bytes, prefix6Len } from '../wire/prefix.js';

export type RuleAction = 'accept' | 'reject' | 'modify';

/** BGPFilter matchOperator: Equal / NotEqual compare the prefix exactly; In / NotIn ask whether it lies inside. */
export type MatchOperator = 'Equal' | 'NotEqual' | 'In' | 'NotIn';

export type RuleOperation =
  /** RFC 1997 community as [asn, value] */
  | { readonly addCommunity: readonly [number, number] }
  /** RFC 8092 large community */
  | { readonly addLargeCommunity: readonly [number, number, number] }
  /** these ASNs, in this order, in front of the AS_PATH */
  | { readonly prependAsPath: readonly number[] }
  | { readonly setLocalPref: number };

export interface Rule {
  /** who wrote the rule and where, e.g. "BGPFilter/edge exportV4[2]" or "IPPool 10.65.0.0/16 (pool export)" */
  readonly name: string;
  readonly action: RuleAction;
  /** the route's prefix against this CIDR ("10.0.0.0/8", "fd00::/48") */
  readonly cidr?: string;
  /** required with cidr */
  readonly operator?: MatchOperator;
  /** In / NotIn: bounds on the route's prefix length (the CIDR's own length and the family's maximum by default) */
  readonly minLength?: number;
  readonly maxLength?: number;
  /** only routes learned from a BGP peer (BGPFilter source RemotePeers), not our own */
  readonly remoteOnly?: boolean;
  /** only routes whose outgoing interface matches this shell pattern (`*`, `?`), as BIRD's `ifname ~ "..."` */
  readonly interface?: string;
  /** only toward (export) or from (import) peers of this kind */
  readonly peerType?: 'iBGP' | 'eBGP';
  /** only routes carrying this community */
  readonly community?: readonly [number, number];
  readonly largeCommunity?: readonly [number, number, number];
  /** only routes whose AS_PATH starts with these ASNs */
  readonly asPathPrefix?: readonly number[];
  /** only routes with exactly this LOCAL_PREF (a BGPFilter priority, converted) */
  readonly localPref?: number;
  /** only routes whose LOCAL_PREF (100 when absent, as BIRD attaches it) is above this */
  readonly localPrefAbove?: number;
  readonly operations?: readonly RuleOperation[];
}

export interface RuleSet {
  readonly rules: readonly Rule[];
  /** what happens when no rule ends the evaluation */
  readonly fallback: { readonly action: 'accept' | 'reject'; readonly name: string };
}

/** One peer's rules: import and export, per family. */
export interface PeerRules {
  readonly import4: RuleSet;
  readonly import6: RuleSet;
  readonly export4: RuleSet;
  readonly export6: RuleSet;
}

/** What a rule can look at. */
export interface RouteFacts {
  readonly prefix: Prefix4 | Prefix6;
  readonly attrs: PathAttributes;
  /** our own origination (not learned from a peer) */
  readonly local: boolean;
  /** the peer the route comes from (import) or goes to (export) is iBGP */
  readonly ibgp: boolean;
  /** the route's outgoing interface, asked only when a rule needs it */
  readonly ifname?: () => string | undefined;
}

export interface Decision {
  readonly accept: boolean;
  /** the rule (or fallback) that decided */
  readonly rule: string;
  /** the attributes after the matching rules' operations, when any ran */
  readonly attrs?: PathAttributes;
}

// ------------------------------------------------------------------ compiled form (cached per rule object)

interface Compiled {
  readonly v6: boolean;
  /** v4: network address as uint32; v6: 16 bytes */
  readonly addr4: number;
  readonly addr6: Uint8Array | null;
  readonly len: number;
  readonly lo: number;
  readonly hi: number;
  readonly glob: RegExp | null;
  /**
   * The last interface name tested against glob and the answer. A route's interface comes from a short list (the
   * host's interfaces, handed out as the same strings), while an export rule list is run for every route of a
   * table: a million routes ask the same few names, so one remembered answer saves the pattern match for nearly all.
   */
  lastIf: string | undefined;
  lastHit: boolean;
}

const compiledRules = new WeakMap<Rule, Compiled>();

/** BIRD's shell-like patterns: `*` any run of characters, `?` one character; everything else literal. */
export function globToRegExp(pattern: string): RegExp {
  let re = '^';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
  }
  return new RegExp(`${re}$`);
}

function compile(r: Rule): Compiled {
  let c = compiledRules.get(r);
  if (c !== undefined) return c;
  let v6 = false;
  let addr4 = 0;
  let addr6: Uint8Array | null = null;
  let len = 0;
  if (r.cidr !== undefined) {
    const slash = r.cidr.indexOf('/');
    const a = slash < 0 ? r.cidr : r.cidr.slice(0, slash);
    v6 = a.includes(':');
    const max = v6 ? 128 : 32;
    len = slash < 0 ? max : Number(r.cidr.slice(slash + 1));
    if (!Number.isInteger(len) || len < 0 || len > max) throw new Error(`rule ${r.name}: bad prefix length in ${r.cidr}`);
    if (v6) {
      addr6 = parseIpv6(a);
      for (let i = 0; i < 16; i++) {
        const keep = len - i * 8;
        if (keep < 8) addr6[i] = keep <= 0 ? 0 : (addr6[i] as number) & ((0xff << (8 - keep)) & 0xff);
      }
    } else addr4 = (parseIpv4(a) & mask4(len)) >>> 0;
  }
  const max = v6 ? 128 : 32;
  const lo = Math.max(len, r.minLength ?? 0);
  const hi = Math.min(max, r.maxLength ?? max);
  c = { v6, addr4, addr6, len, lo, hi, glob: r.interface !== undefined ? globToRegExp(r.interface) : null, lastIf: undefined, lastHit: false };
  compiledRules.set(r, c);
  return c;
}

/** Throws with the rule's name when a rule cannot be evaluated (bad CIDR, operator missing): check before use. */
export function checkRules(set: RuleSet): void {
  for (const r of set.rules) {
    compile(r);
    if (r.cidr !== undefined && r.operator === undefined) throw new Error(`rule ${r.name}: a CIDR needs a match operator`);
  }
}

const scratch6 = new Uint8Array(16);

/** Is the route's prefix inside the rule's CIDR, and is its length within [lo, hi]? */
function inside(c: Compiled, prefix: Prefix4 | Prefix6, lo: number, hi: number): boolean {
  if (typeof prefix === 'number') {
    if (c.v6) return false;
    const len = prefix4Len(prefix);
    if (len < lo || len > hi) return false;
    return ((prefix4Addr(prefix) & mask4(c.len)) >>> 0) === c.addr4;
  }
  if (!c.v6) return false;
  const len = prefix6Len(prefix);
  if (len < lo || len > hi) return false;
  const b = prefix6Bytes(prefix, scratch6);
  const net = c.addr6 as Uint8Array;
  for (let i = 0; i < 16; i++) {
    const keep = c.len - i * 8;
    if (keep <= 0) break;
    const m = keep >= 8 ? 0xff : (0xff << (8 - keep)) & 0xff;
    if (((b[i] as number) & m) !== net[i]) return false;
  }
  return true;
}

function prefixMatches(r: Rule, c: Compiled, prefix: Prefix4 | Prefix6): boolean {
  switch (r.operator) {
    case 'Equal':
      return inside(c, prefix, c.len, c.len);
    case 'NotEqual':
      return !inside(c, prefix, c.len, c.len);
    case 'In':
      return inside(c, prefix, c.lo, c.hi);
    case 'NotIn':
      return !inside(c, prefix, c.lo, c.hi);
    default:
      return false; // checkRules refuses a CIDR without operator; never match rather than guess
  }
}

/** The AS_PATH as one sequence from its start; an AS_SET ends it (it has no order to compare). */
function leadingAsns(path: readonly AsPathSegment[] | undefined): number[] {
  const out: number[] = [];
  for (const s of path ?? []) {
    if (s.type !== SegmentType.AS_SEQUENCE) break;
    out.push(...s.asns);
  }
  return out;
}

/** the route's interface, asked at most once per evaluation (several rules of a list may test it) */
interface IfnameMemo {
  asked: boolean;
  value: string | undefined;
}

function matches(r: Rule, c: Compiled, route: RouteFacts, attrs: PathAttributes, ifm: IfnameMemo): boolean {
  if (r.cidr !== undefined && !prefixMatches(r, c, route.prefix)) return false;
  if (r.remoteOnly && route.local) return false;
  if (r.peerType !== undefined && (r.peerType === 'iBGP') !== route.ibgp) return false;
  if (c.glob !== null) {
    if (!ifm.asked) {
      ifm.asked = true;
      ifm.value = route.ifname?.();
    }
    const ifname = ifm.value;
    if (ifname === undefined) return false;
    if (ifname !== c.lastIf) {
      c.lastHit = c.glob.test(ifname);
      c.lastIf = ifname;
    }
    if (!c.lastHit) return false;
  }
  if (r.community !== undefined) {
    const v = ((r.community[0] << 16) | r.community[1]) >>> 0;
    if (!(attrs.communities ?? []).includes(v)) return false;
  }
  if (r.largeCommunity !== undefined) {
    const [g, a, b] = r.largeCommunity;
    if (!(attrs.largeCommunities ?? []).some((l) => l[0] === g && l[1] === a && l[2] === b)) return false;
  }
  if (r.asPathPrefix !== undefined) {
    const have = leadingAsns(attrs.asPath);
    if (have.length < r.asPathPrefix.length) return false;
    for (let i = 0; i < r.asPathPrefix.length; i++) if (have[i] !== r.asPathPrefix[i]) return false;
  }
  if (r.localPref !== undefined && attrs.localPref !== r.localPref) return false;
  if (r.localPrefAbove !== undefined && (attrs.localPref ?? DEFAULT_LOCAL_PREF) <= r.localPrefAbove) return false;
  return true;
}

function applyOps(attrs: PathAttributes, ops: readonly RuleOperation[]): PathAttributes {
  const a: { -readonly [K in keyof PathAttributes]: PathAttributes[K] } = { ...attrs };
  for (const op of ops) {
    if ('addCommunity' in op) {
      const v = ((op.addCommunity[0] << 16) | op.addCommunity[1]) >>> 0;
      const have = a.communities ?? [];
      if (!have.includes(v)) a.communities = [...have, v];
    } else if ('addLargeCommunity' in op) {
      const [g, x, y] = op.addLargeCommunity;
      const have = a.largeCommunities ?? [];
      if (!have.some((l) => l[0] === g && l[1] === x && l[2] === y)) a.largeCommunities = [...have, [g, x, y] as const];
    } else if ('prependAsPath' in op) {
      const path = a.asPath ?? [];
      const first = path[0];
      // RFC 4271 §4.3: an AS_SEQUENCE segment holds at most 255 ASNs; start a new one when the first is full.
      a.asPath =
        first !== undefined && first.type === SegmentType.AS_SEQUENCE && first.asns.length + op.prependAsPath.length <= 255
          ? [{ type: SegmentType.AS_SEQUENCE, asns: [...op.prependAsPath, ...first.asns] }, ...path.slice(1)]
          : [{ type: SegmentType.AS_SEQUENCE, asns: [...op.prependAsPath] }, ...path];
    } else a.localPref = op.setLocalPref >>> 0;
  }
  return a;
}

/** A rule list evaluate() ran lately: its rules compiled, and the decisions it hands out, made once. */
interface ListEntry {
  readonly set: RuleSet;
  readonly rules: readonly Rule[];
  readonly length: number;
  readonly compiled: readonly Compiled[];
  /** per rule, its decision without attributes (accept / reject rules; modify rules never decide) */
  readonly decisions: readonly Decision[];
  readonly fallback: Decision;
  /** the longest IPv4 CIDR among its rules (0: none): IPv4 prefixes that agree on these leading bits and on length
   * fall alike into every rule's CIDR (DecisionMemo) */
  readonly cell4: number;
}

/**
 * The last few lists evaluated. A route reflector runs one peer's import list and another's export list for each
 * route in turn, so a cache of the last list alone missed on every call: each route then compiled both lists again
 * (a WeakMap lookup per rule and a new array) and made a new Decision object per evaluation.
 */
const recent: (ListEntry | undefined)[] = [undefined, undefined, undefined, undefined];
let recentNext = 0;

function listEntry(set: RuleSet): ListEntry {
  const rules = set.rules;
  for (let i = 0; i < recent.length; i++) {
    const e = recent[i];
    // (a list is built by appending before it is handed over: a changed length is another list)
    if (e !== undefined && e.set === set && e.rules === rules && e.length === rules.length) return e;
  }
  const compiled = rules.map(compile);
  const decisions = rules.map((r) => Object.freeze({ accept: r.action === 'accept', rule: r.name }));
  const fallback = Object.freeze({ accept: set.fallback.action === 'accept', rule: set.fallback.name });
  let cell4 = 0;
  for (let i = 0; i < rules.length; i++) {
    const c = compiled[i] as Compiled;
    if ((rules[i] as Rule).cidr !== undefined && !c.v6 && c.len > cell4) cell4 = c.len;
  }
  const e: ListEntry = { set, rules, length: rules.length, compiled, decisions, fallback, cell4 };
  recent[recentNext] = e;
  recentNext = (recentNext + 1) % recent.length;
  return e;
}

/** the interface memo of the evaluation running (one at a time; a nested one, if ever, gets its own) */
const memo: IfnameMemo = { asked: false, value: undefined };
let evaluating = false;

/** Run a rule list over one route: the first accept or reject decides; modify rules change attributes on the way. */
export function evaluate(set: RuleSet, route: RouteFacts): Decision {
  let attrs = route.attrs;
  let changed = false;
  const nested = evaluating;
  const ifm: IfnameMemo = nested ? { asked: false, value: undefined } : memo;
  ifm.asked = false;
  ifm.value = undefined;
  evaluating = true;
  try {
    const e = listEntry(set);
    const rules = e.rules;
    const compiled = e.compiled;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i] as Rule;
      const c = compiled[i] as Compiled;
      if (!matches(r, c, route, attrs, ifm)) continue;
      if (r.operations !== undefined && r.operations.length > 0 && r.action !== 'reject') {
        attrs = applyOps(attrs, r.operations);
        changed = true;
      }
      if (r.action === 'modify') continue;
      const accept = r.action === 'accept';
      return accept && changed ? { accept, rule: r.name, attrs } : (e.decisions[i] as Decision);
    }
    const accept = e.fallback.accept;
    return accept && changed ? { accept, rule: e.fallback.rule, attrs } : e.fallback;
  } finally {
    evaluating = nested;
  }
}

/**
 * The last decision of a rule list over a learned IPv4 route, and everything it depended on. A rule looks at the
 * route's prefix only through its CIDR (inside or not, and the prefix length), and otherwise at the attributes, the
 * peer's kind and the route's interface, which for a learned route follows its next hops (FactsCell.ifname). The
 * prefixes of one UPDATE share all of those but the prefix, and two IPv4 prefixes of one length whose leading
 * `cell4` bits agree (the longest CIDR of the list) are inside or outside each CIDR alike: such a route gets the
 * decision of the one before without running the list (the rule lists of a Calico route reflector ran for each of
 * a million routes, ~10% of skeind's ingest). The holder forgets it whenever what a rule reads may have changed
 * (FactsCell.forget: every UPDATE, and at the end of the task).
 */
export class DecisionMemo {
  /**
   * One entry per rule list, a few lists: a route reflector runs one peer's import list and another's export list
   * for each route in turn (one entry for both would be replaced on every call and never answer).
   */
  private readonly slots: MemoSlot[] = [newSlot(), newSlot(), newSlot(), newSlot()];
  private next = 0;

  clear(): void {
    for (const m of this.slots) {
      m.set = null;
      m.attrs = null;
      m.hops = null;
      m.decision = null;
    }
  }

  /** evaluate(set, route) for a learned (not local) route with an IPv4 prefix; `hops` is what its interface follows. */
  evaluate4(set: RuleSet, route: RouteFacts & { readonly prefix: Prefix4 }, hops: unknown): Decision {
    const prefix = route.prefix;
    const len = prefix4Len(prefix);
    const slots = this.slots;
    let m: MemoSlot | undefined;
    for (let i = 0; i < slots.length; i++) {
      const x = slots[i] as MemoSlot;
      if (x.set === set) {
        m = x;
        break;
      }
    }
    if (m === undefined) {
      m = slots[this.next] as MemoSlot;
      this.next = (this.next + 1) % slots.length;
      m.set = set;
      m.decision = null;
    } else if (
      // the list as compiled when the slot was filled (listEntry's test, without its lookup on every route)
      m.decision !== null && m.rules === set.rules && m.length === set.rules.length && m.attrs === route.attrs &&
      m.ibgp === route.ibgp && m.hops === hops && m.len === len &&
      m.cell === (m.cell4 === 0 ? 0 : prefix4Addr(prefix) >>> (32 - m.cell4))
    ) {
      return m.decision;
    }
    const e = listEntry(set);
    const d = evaluate(set, route);
    m.rules = e.rules;
    m.length = e.length;
    m.cell4 = e.cell4;
    m.attrs = route.attrs;
    m.ibgp = route.ibgp;
    m.hops = hops;
    m.len = len;
    m.cell = e.cell4 === 0 ? 0 : prefix4Addr(prefix) >>> (32 - e.cell4);
    m.decision = d;
    return d;
  }
}

/** DecisionMemo's entry for one rule list: the last decision and what it depended on. */
interface MemoSlot {
  set: RuleSet | null;
  rules: readonly Rule[];
  length: number;
  /** the list's cell4 (ListEntry) */
  cell4: number;
  attrs: PathAttributes | null;
  ibgp: boolean;
  hops: unknown;
  len: number;
  cell: number;
  decision: Decision | null;
}

const newSlot = (): MemoSlot => ({ set: null, rules: [], length: 0, cell4: 0, attrs: null, ibgp: false, hops: null, len: -1, cell: 0, decision: null });

/** A rule list that accepts everything (a peer without rules). */
export const ACCEPT_ALL: RuleSet = Object.freeze({ rules: Object.freeze([]) as readonly Rule[], fallback: Object.freeze({ action: 'accept', name: 'no policy' }) });
