// Update groups: peers whose export result is the same share one Adj-RIB-Out, one outbound queue and (in the
// speaker's sender) one encoding of each UPDATE. RFC 4271 §9.2 leaves how Adj-RIB-Out is kept to the
// implementation; a route reflector with hundreds of clients otherwise computes, queues and encodes every change
// once per client (issue 16).
//
// What makes peers' output the same (groupKey): the session terms (iBGP, families, ADD-PATH receive/send families,
// LLGR families), our AS on the session, whether the peer is a reflector client, and the export-relevant
// configuration (rules, next-hop settings, local addresses) compared as JSON. A peer with an export policy hook
// (a function, which may look at the peer) or ADD-PATH send gets a group of its own. The codec context (4-octet
// AS, extended messages) is not part of the key: the sender encodes once per distinct context among members.
//
// The one per-member difference within a group is RFC 4271 §9.1.3's "not back to the peer it came from": the
// group's Adj-RIB-Out holds the export as if the source were someone else, and srcOf remembers, per prefix, which
// peer's route it is. A member never receives a group message about a prefix whose route is its own (the batch
// is re-encoded without those prefixes for it); when a prefix's source moves to or from a member while the
// group's own output stays the same, that member gets a personal entry (Personal: a prefix to send again, its
// content decided when it is taken, so it can never overtake a later group message with stale content).
// FRR's update groups send a client's route back to it and rely on the client's ORIGINATOR_ID check (RFC 4456 §8)
// whenever a subgroup has more than one peer; skein keeps the exact per-peer output instead.
//
// A group of one (every group until a second member joins; `shared` false) is simply that peer's Adj-RIB-Out: its
// own routes are not in adjOut at all and srcOf stays empty, so a peer alone in its group costs one table (at 1M
// routes the bench's injector and listener each held two more 1M-entry tables before). When a second member
// joins, shareGroup (export.ts) turns it into the form above in one pass over the Loc-RIB, in slices (walker.ts):
// exports meanwhile are made in the shared form at once, the pass skips what they did, and the joiner gets no
// group message until the pass is over and its catch-up starts (issue 16).
//
// A late joiner (a peer whose session comes up when its group already advertises routes) joins at once and gets
// the group's Adj-RIB-Out as personal entries, walked in slices (walker.ts); until that walk ends it gets no
// group End-of-RIB; after it, the group's if that is still to go out, else one of its own. Group messages it receives meanwhile are the group's latest
// state, as are its personal entries, so the order between them does not matter.
//
// A slow member: the sender writes a group's messages to every member in the same turn (they stay in lockstep,
// which is what lets a leaving member take a copy of the group's state, split()), and goes on while any member
// can take more. A member whose unsent bytes pass a bound leaves the group for one of its own with a copy of the
// group's Adj-RIB-Out and pending queue, and from then on is paced by its own socket as before. So one stuck
// client costs the bound in memory, never the others' progress. (OpenBGPD keeps per-peer Adj-RIB-Out and
// throttles the RDE per peer; GoBGP and BIRD 2 export per peer; FRR splits a subgroup off a peer whose state
// diverges, merging later. skein splits and does not merge back: the split member stays on its own until its
// session restarts.)
import type { Path } from './decision.js';
import type { AttrSet } from './intern.js';
import { OutQueue, type Marker } from './out-queue.js';
import type { Peer } from './peer.js';
import { familyOf } from './peer.js';
import { PrefixMap } from './prefix-map.js';
import type { OutBatch, PrefixKey, SessionTerms } from './types.js';

export class UpdateGroup {
  readonly members: Peer[] = [];
  /**
   * Whether the group has been shared (a second member joined, shareGroup in export.ts). Until then it is one
   * peer's plain Adj-RIB-Out: adjOut holds what that peer holds (never its own routes) and srcOf stays empty, so a
   * peer alone in its group (every eBGP peer with its own local address, the harness's injector and listener)
   * keeps one table, not two, and no copy of the routes it sent us. Once shared, it stays so.
   */
  shared = false;
  /** the group's Adj-RIB-Out: prefix -> what the members (but a route's own source) advertise */
  adjOut = new PrefixMap<AttrSet>();
  readonly queues = new Map<number, OutQueue>();
  /**
   * Shared groups only: prefix -> id of the peer whose route the group advertises (kept past a withdrawal until
   * it is sent).
   */
  readonly srcOf = new PrefixMap<number>();
  /**
   * Shared groups only: per source peer id, how many adjOut prefixes have it in srcOf (what that member does not
   * get), kept as they change so a peer's advertised count is not a walk of srcOf (RibCore.peerStats).
   */
  readonly own = new Map<number, number>();
  /** the same counted for IPv6 prefixes only (the metrics are per family) */
  readonly own6 = new Map<number, number>();
  /** while shareGroup's pass runs: what to call when it ends (the joiners' catch-ups); null otherwise */
  shareWaiters: (() => void)[] | null = null;
  /** members that joined while that pass runs: no group message reaches them until their catch-up starts */
  readonly waiting = new Set<Peer>();
  /** bumped whenever the export rules may change (export.ts caches per group and epoch) */
  epoch = 0;
  /** the first member's walk of the Loc-RIB is done (its End-of-RIB queued) */
  initialDone = false;
  /** families whose group End-of-RIB has gone out (a joiner after that gets its own) */
  readonly eorSent = new Set<number>();
  constructor(
    readonly id: number,
    readonly key: string,
  ) {}

  queue(family: number): OutQueue {
    let q = this.queues.get(family);
    if (q === undefined) this.queues.set(family, (q = new OutQueue(family)));
    return q;
  }

  get rep(): Peer {
    return this.members[0] as Peer;
  }

  /** Count a change of (prefix in adjOut with source s): d = +1 or -1. IPv4 prefixes are numbers (PrefixKey). */
  bump(s: number | undefined, d: number, prefix: PrefixKey): void {
    if (s === undefined || s === 0) return;
    count(this.own, s, d);
    if (typeof prefix !== 'number') count(this.own6, s, d);
  }

  /** How many prefixes the group advertises to member m (its own routes left out), in all and IPv6 only. */
  advertisedTo(m: Peer): { all: number; v6: number } {
    return { all: this.adjOut.size - (this.own.get(m.id) ?? 0), v6: this.adjOut.size6 - (this.own6.get(m.id) ?? 0) };
  }

  /** What member m is to hold for the prefix: the group's, unless the route is m's own. */
  desired(m: Peer, prefix: PrefixKey): AttrSet | undefined {
    if (this.srcOf.get(prefix) === m.id) return undefined;
    return this.adjOut.get(prefix);
  }

  get idle(): boolean {
    for (const q of this.queues.values()) if (!q.empty) return false;
    return true;
  }
}

/** A member's own pending work: markers, and prefixes whose content is decided when taken (UpdateGroup.desired). */
export class Personal {
  readonly head: { kind: Marker; family: number }[] = [];
  readonly tail: { kind: Marker; family: number }[] = [];
  readonly dirty = new PrefixMap<1>(64, true);
  list: PrefixKey[] = [];
  pos = 0;

  add(p: PrefixKey): void {
    if (this.dirty.getOrSet(p, 1) === undefined) this.list.push(p);
  }

  get empty(): boolean {
    return this.head.length === 0 && this.tail.length === 0 && this.dirty.size === 0;
  }

  clear(): void {
    this.head.length = 0;
    this.tail.length = 0;
    this.dirty.clear();
    this.list = [];
    this.pos = 0;
  }
}

/** The group key (see the header): members of one group get the same export. */
export function groupKey(p: Peer, terms: SessionTerms): string {
  if (p.cfg.exportPolicy !== undefined || p.cfg.addPathSend !== undefined) return `own:${p.id}`;
  const { address: _a, asn: _n, importPolicy: _i, ...cfg } = p.cfg;
  const fams = (s: Iterable<number>): string => [...s].sort((a, b) => a - b).join(',');
  return JSON.stringify([
    terms.ibgp, p.localAs, p.rrClient, fams(terms.families), fams(terms.addPathTx), fams(terms.llgrFamilies ?? []), cfg,
  ]);
}

function count(m: Map<number, number>, s: number, d: number): void {
  const n = (m.get(s) ?? 0) + d;
  if (n === 0) m.delete(s);
  else m.set(s, n);
}

/** The source peer id of a best path, 0 for our own routes. */
export const sourceId = (best: Path | null): number => (best === null || best.source.local ? 0 : best.source.id);

/**
 * Record the group's new state for a prefix (the caller swapped adjOut already: cur was, want is) and source,
 * and give members whose own view changed without a group message a personal entry.
 */
export function noteSource(g: UpdateGroup, prefix: PrefixKey, cur: AttrSet | undefined, want: AttrSet | null, s: number, wasPending: boolean): void {
  if (want === null) {
    // withdrawn for all: h (if any) stays excluded from the withdrawal, which it never had
    if (cur !== undefined) g.bump(g.srcOf.get(prefix), -1, prefix);
    return;
  }
  // one probe of srcOf (swap / take) that also gives the previous source
  const h = (s !== 0 ? g.srcOf.swap(prefix, s) : g.srcOf.take(prefix)) ?? 0;
  // the own counts: the prefix was in adjOut under h (if cur), is now under s
  if (cur !== undefined) g.bump(h, -1, prefix);
  g.bump(s, 1, prefix);
  if (h === s) return;
  for (const m of g.members) {
    // The new source may hold the group's previous route: it must lose it. It holds one if the group advertised
    // one, or (a change not sent yet) may still hold an older one the queue has since replaced.
    if (m.id === s && (cur !== undefined || wasPending)) m.personal.add(prefix);
    // the previous source held nothing; a group message follows if the group's route changed or is still queued
    else if (m.id === h && cur === want && !wasPending) m.personal.add(prefix);
  }
}

/**
 * The next group batch (markers, withdrawals, then announcements one set at a time) and, per member that must not
 * get all of it, what it gets instead: null for nothing, else the prefixes left when its own are taken out.
 */
export function nextGroupBatch(g: UpdateGroup, maxPrefixes: number): { batch: OutBatch; except: Map<Peer, PrefixKey[] | null> } | null {
  const max = Math.max(1, maxPrefixes);
  const rep = g.rep;
  for (const fam of [...g.queues.keys()].sort((a, b) => a - b)) {
    const q = g.queues.get(fam) as OutQueue;
    if (q.pending.size === 0 && (q.groups.size > 0 || q.withdrawList.length > 0)) q.dropIndex();
    if (q.empty) continue;
    const afi = fam >> 8;
    const safi = fam & 0xff;
    const ids = (n: number): number[] | null => (rep.addPathTx.has(fam) ? new Array<number>(n).fill(1) : null);
    const marker = (kind: Marker): { batch: OutBatch; except: Map<Peer, PrefixKey[] | null> } => {
      const except = new Map<Peer, PrefixKey[] | null>();
      for (const m of g.members) if (m.catchingUp) except.set(m, null);
      return { batch: { kind, afi, safi }, except };
    };
    const h = q.head.shift();
    if (h !== undefined) {
      if (h === 'end-of-rib') g.eorSent.add(fam);
      return marker(h);
    }
    const w = q.takeWithdrawals(max);
    if (w.length > 0) {
      const except = exceptions(g, w);
      if (g.srcOf.size > 0) for (const p of w) if (!g.adjOut.has(p)) g.srcOf.delete(p); // the source's exclusion has served
      return { batch: { kind: 'withdraw', afi, safi, prefixes: w, pathIds: ids(w.length) }, except };
    }
    const a = q.takeAnnouncements(max);
    if (a !== null) return { batch: { kind: 'announce', afi, safi, attrs: a.set, prefixes: a.prefixes, pathIds: ids(a.prefixes.length) }, except: exceptions(g, a.prefixes) };
    const t = q.tail.shift();
    if (t !== undefined) {
      if (t === 'end-of-rib') g.eorSent.add(fam);
      return marker(t);
    }
  }
  return null;
}

function exceptions(g: UpdateGroup, prefixes: PrefixKey[]): Map<Peer, PrefixKey[] | null> {
  const except = new Map<Peer, PrefixKey[] | null>();
  for (const m of g.waiting) except.set(m, null); // it gets the group's state by its catch-up, once srcOf is whole
  if (g.srcOf.size === 0) return except;
  let owners: Set<number> | null = null;
  for (const p of prefixes) {
    const s = g.srcOf.get(p);
    if (s !== undefined) (owners ??= new Set()).add(s);
  }
  if (owners === null) return except;
  for (const m of g.members) {
    if (!owners.has(m.id) || g.waiting.has(m)) continue;
    const rest = prefixes.filter((p) => g.srcOf.get(p) !== m.id);
    except.set(m, rest.length === 0 ? null : rest);
  }
  return except;
}

/**
 * A member's next personal batch: head markers, ADD-PATH work, its dirty prefixes (each as the member is to hold
 * it now: announce under one set, or withdraw), then tail markers. Prefixes of another kind than the batch's first
 * are looked at again next time.
 */
export function nextPersonal(g: UpdateGroup, m: Peer, maxPrefixes: number): OutBatch | null {
  const max = Math.max(1, maxPrefixes);
  const me = m.personal;
  const h = me.head.shift();
  if (h !== undefined) return { kind: h.kind, afi: h.family >> 8, safi: h.family & 0xff };
  if (m.ap !== null) {
    for (const fam of [...m.ap.families].sort((a, b) => a - b)) {
      if (!m.ap.hasWork(fam)) continue;
      const b = m.ap.next(fam, max);
      if (b) return b;
    }
  }
  while (me.dirty.size > 0) {
    let fam = -1;
    let set: AttrSet | null | undefined;
    const out: PrefixKey[] = [];
    const again: PrefixKey[] = [];
    const list = me.list;
    let i = me.pos;
    for (let seen = 0; i < list.length && out.length < max && seen < 4 * max; i++, seen++) {
      const p = list[i] as PrefixKey;
      if (me.dirty.take(p) === undefined) continue;
      const d = g.desired(m, p) ?? null;
      const f = familyOf(p);
      if (!m.families.has(f)) continue;
      if (fam === -1) {
        fam = f;
        set = d;
      }
      if (f === fam && d === set) out.push(p);
      else again.push(p);
    }
    me.pos = i;
    for (const p of again) me.add(p);
    if (me.pos >= me.list.length && again.length === 0) {
      me.list = [];
      me.pos = 0;
    } else if (me.pos > 4096 && me.pos * 2 > me.list.length) {
      me.list = me.list.slice(me.pos);
      me.pos = 0;
    }
    if (out.length === 0) continue;
    const afi = fam >> 8;
    const safi = fam & 0xff;
    const pathIds = m.addPathTx.has(fam) ? new Array<number>(out.length).fill(1) : null;
    if (set === null || set === undefined) return { kind: 'withdraw', afi, safi, prefixes: out, pathIds };
    return { kind: 'announce', afi, safi, attrs: set, prefixes: out, pathIds };
  }
  if (me.dirty.size === 0 && me.list.length > 0) {
    me.list = [];
    me.pos = 0;
  }
  const t = me.tail.shift();
  if (t !== undefined) return { kind: t.kind, afi: t.family >> 8, safi: t.family & 0xff };
  return null;
}

/** A copy of the group's Adj-RIB-Out, sources and pending queues, for a member leaving it (see the header). */
export function copyGroup(g: UpdateGroup, id: number, key: string, retain: (s: AttrSet) => void): UpdateGroup {
  const c = new UpdateGroup(id, key);
  c.shared = g.shared;
  for (const [s, n] of g.own) c.own.set(s, n);
  for (const [s, n] of g.own6) c.own6.set(s, n);
  c.epoch = g.epoch;
  c.initialDone = g.initialDone;
  for (const f of g.eorSent) c.eorSent.add(f);
  g.adjOut.forEach((set, p) => {
    retain(set);
    c.adjOut.set(p, set);
  });
  g.srcOf.forEach((s, p) => c.srcOf.set(p, s));
  for (const [fam, q] of g.queues) {
    const cq = c.queue(fam);
    cq.head.push(...q.head);
    cq.tail.push(...q.tail);
    q.pending.forEach((v, p) => {
      if (v === null) cq.withdraw(p);
      else cq.announce(v, p);
    });
  }
  return c;
}
