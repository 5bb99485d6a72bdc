// ADD-PATH send (RFC 7911): the Adj-RIB-Out of a peer that receives several
// paths per prefix from us, and its outbound queue.
//
// Without ADD-PATH a peer gets one route per prefix, the best, and a new best
// replaces the old one. With it, the peer gets a set of paths per prefix, each
// under a Path Identifier of our choosing (RFC 7911 §3: it only has to tell
// paths of one prefix apart on this session, §5). What the set holds is the
// send mode of the peer:
//   all     every path of the Loc-RIB entry the export rules let through;
//   best N  the N best of those, in the decision order (RFC 4271 §9.1.2 with
//           the tie-breakers of decision.ts), the best first.
// Every path goes through the same export rules as the best path does for a
// peer without ADD-PATH (core.ts exportSet: never back to its source, iBGP
// split horizon and RFC 4456 reflection, ORIGINATOR_ID / CLUSTER_LIST, the
// eBGP attribute rules, export policy); a path they refuse is skipped and, in
// best N, the next one takes its place (the "Add-N" selection of RFC 9494 §5
// over the paths the peer may receive).
//
// Identifiers are stable: an advertised path is known by its source (peer,
// and that peer's own path id), and keeps the identifier it was given for as
// long as it stays in the set. A change of the best path therefore moves
// nothing on the wire but the paths that really came or went; a replaced
// path (same source, new attributes) is re-announced under its identifier,
// which replaces it at the receiver (RFC 7911 §3 implicit withdraw per
// (prefix, path id)). A new path takes the lowest identifier not in use for
// the prefix, nor just given up by a path leaving in the same change, so a
// withdrawal is never folded into an unrelated announcement.
import type { Path } from './decision.js';
import { selectBest } from './decision.js';
import type { AttrSet } from './intern.js';
import { PrefixMap } from './prefix-map.js';
import type { Prefix4, Prefix6 } from '../wire/types.js';

type PrefixKey = Prefix4 | Prefix6;

/** ADD-PATH send mode of a peer (RFC 7911 §4 send/receive = 2 or 3 in our capability). */
export type AddPathSend = { readonly mode: 'all' } | { readonly mode: 'best'; readonly count: number };

/** A path as advertised to the peer: which source path it is, under which id, with what attributes. */
interface OutPath {
  /** source peer id * 2^32 + the source's own path id */
  readonly src: number;
  readonly id: number;
  set: AttrSet;
}

/** The source identity of a path: stable while the path exists (a replaced path keeps it). */
const sourceKey = (p: Path): number => p.source.id * 0x1_0000_0000 + p.pathId;

export type AddPathBatch =
  | { readonly kind: 'announce'; readonly afi: number; readonly safi: number; readonly attrs: AttrSet; readonly prefixes: PrefixKey[]; readonly pathIds: number[] }
  | { readonly kind: 'withdraw'; readonly afi: number; readonly safi: number; readonly prefixes: PrefixKey[]; readonly pathIds: number[] };

/**
 * Pending (prefix, path id) work of one family, like core.ts OutQueue: per
 * pair the set to announce or null to withdraw; the group lists and the
 * withdraw list index it and may hold stale entries, checked on the way out.
 */
class AddPathQueue {
  private readonly pending = new PrefixMap<Map<number, AttrSet | null>>();
  /** pairs whose first announcement is still pending: the peer does not know them, so a withdrawal just drops it */
  private readonly unsent = new PrefixMap<Set<number>>();
  private count = 0;
  private readonly groups = new Map<AttrSet, { prefixes: PrefixKey[]; ids: number[]; pos: number }>();
  private wPrefixes: PrefixKey[] = [];
  private wIds: number[] = [];
  private wPos = 0;

  get size(): number {
    return this.count;
  }

  private put(prefix: PrefixKey, id: number, v: AttrSet | null): AttrSet | null | undefined {
    let m = this.pending.get(prefix);
    if (m === undefined) this.pending.set(prefix, (m = new Map()));
    const prev = m.get(id);
    if (prev === undefined) this.count++;
    m.set(id, v);
    return prev;
  }

  /** first: a path new to the peer under this id (nothing was ever sent under it, or its withdrawal went out) */
  announce(prefix: PrefixKey, id: number, set: AttrSet, first = false): void {
    const prev = this.put(prefix, id, set);
    if (first && prev === undefined) {
      let u = this.unsent.get(prefix);
      if (u === undefined) this.unsent.set(prefix, (u = new Set()));
      u.add(id);
    }
    if (prev === set) return;
    let g = this.groups.get(set);
    if (g === undefined) this.groups.set(set, (g = { prefixes: [], ids: [], pos: 0 }));
    g.prefixes.push(prefix);
    g.ids.push(id);
  }

  withdraw(prefix: PrefixKey, id: number): void {
    const u = this.unsent.get(prefix);
    if (u?.delete(id) === true) {
      // never sent: nothing to withdraw (the stale index entries are skipped on the way out)
      if (u.size === 0) this.unsent.delete(prefix);
      const m = this.pending.get(prefix) as Map<number, AttrSet | null>;
      m.delete(id);
      if (m.size === 0) this.pending.delete(prefix);
      this.count--;
      return;
    }
    if (this.put(prefix, id, null) === null) return;
    this.wPrefixes.push(prefix);
    this.wIds.push(id);
  }

  /** Remove the pair when it is pending as v (one still to be sent); true when it was. */
  private takeIf(prefix: PrefixKey, id: number, v: AttrSet | null): boolean {
    const m = this.pending.get(prefix);
    if (m === undefined || m.get(id) !== v || !m.has(id)) return false;
    m.delete(id);
    if (m.size === 0) this.pending.delete(prefix);
    this.count--;
    if (v !== null) {
      const u = this.unsent.get(prefix);
      if (u?.delete(id) === true && u.size === 0) this.unsent.delete(prefix);
    }
    return true;
  }

  clear(): void {
    this.pending.clear();
    this.unsent.clear();
    this.count = 0;
    this.groups.clear();
    this.wPrefixes = [];
    this.wIds = [];
    this.wPos = 0;
  }

  takeWithdrawals(max: number): { prefixes: PrefixKey[]; ids: number[] } | null {
    const prefixes: PrefixKey[] = [];
    const ids: number[] = [];
    let i = this.wPos;
    for (; i < this.wPrefixes.length && prefixes.length < max; i++) {
      const p = this.wPrefixes[i] as PrefixKey;
      const id = this.wIds[i] as number;
      if (!this.takeIf(p, id, null)) continue; // re-announced or already sent
      prefixes.push(p);
      ids.push(id);
    }
    if (i >= this.wPrefixes.length) {
      this.wPrefixes = [];
      this.wIds = [];
      this.wPos = 0;
    } else this.wPos = i;
    return prefixes.length > 0 ? { prefixes, ids } : null;
  }

  takeAnnouncements(max: number): { set: AttrSet; prefixes: PrefixKey[]; ids: number[] } | null {
    for (const [set, g] of this.groups) {
      const prefixes: PrefixKey[] = [];
      const ids: number[] = [];
      let i = g.pos;
      for (; i < g.prefixes.length && prefixes.length < max; i++) {
        const p = g.prefixes[i] as PrefixKey;
        const id = g.ids[i] as number;
        if (!this.takeIf(p, id, set)) continue; // moved or withdrawn since
        prefixes.push(p);
        ids.push(id);
      }
      if (i >= g.prefixes.length) this.groups.delete(set);
      else g.pos = i;
      if (prefixes.length > 0) return { set, prefixes, ids };
    }
    return null;
  }
}

/** ADD-PATH send state of one Established peer: the families it applies to, the Adj-RIB-Out, the queues. */
export class AddPathOut {
  /** prefix → the paths advertised (or about to be), in no particular order */
  private readonly out = new PrefixMap<OutPath[]>();
  private readonly queues = new Map<number, AddPathQueue>();
  /** advertised (prefix, path id) pairs */
  count = 0;

  constructor(
    /** the families where ADD-PATH send was negotiated and is configured */
    readonly families: ReadonlySet<number>,
    public mode: AddPathSend,
  ) {
    for (const f of families) this.queues.set(f, new AddPathQueue());
  }

  private limit(): number {
    return this.mode.mode === 'all' ? Infinity : Math.max(1, Math.floor(this.mode.count));
  }

  /**
   * Bring the advertised set of a prefix in line with its Loc-RIB candidates.
   * exportOne applies the export rules to one path and returns the set to
   * advertise with one reference taken (or null: not to this peer); release
   * gives a reference back.
   */
  update(
    prefix: PrefixKey,
    family: number,
    paths: readonly Path[],
    best: Path | null,
    exportOne: (path: Path) => AttrSet | null,
    release: (set: AttrSet) => void,
  ): void {
    const q = this.queues.get(family);
    if (q === undefined) return;
    const cur = this.out.get(prefix);
    const max = this.limit();
    const next: OutPath[] = [];
    const fresh: { src: number; set: AttrSet }[] = [];
    const take = (path: Path): void => {
      const set = exportOne(path);
      if (set === null) return;
      const src = sourceKey(path);
      const old = cur?.find((x) => x.src === src);
      if (old === undefined) {
        fresh.push({ src, set });
        return;
      }
      if (old.set === set) release(set); // unchanged: nothing to send
      else {
        q.announce(prefix, old.id, set);
        release(old.set);
        old.set = set;
      }
      next.push(old);
    };
    if (best !== null) {
      if (max === Infinity) {
        take(best);
        for (const x of paths) if (x !== best) take(x);
      } else {
        // The decision order, one winner at a time (selectBest is deterministic
        // whatever the order of its input; compare() alone is not a total order, see decision.ts).
        let rest: readonly Path[] = paths;
        let winner: Path | null = best;
        while (winner !== null && next.length + fresh.length < max) {
          take(winner);
          const w = winner;
          rest = rest.filter((x) => x !== w);
          winner = selectBest(rest, 1)?.best ?? null;
        }
      }
    }
    if (cur !== undefined) {
      for (const old of cur) {
        if (next.includes(old)) continue;
        q.withdraw(prefix, old.id); // RFC 7911 §3: the withdrawal names the path id
        release(old.set);
        this.count--;
      }
    }
    if (fresh.length > 0) {
      const used = new Set<number>();
      for (const x of cur ?? []) used.add(x.id);
      let id = 1;
      for (const f of fresh) {
        while (used.has(id)) id++;
        used.add(id);
        next.push({ src: f.src, id, set: f.set });
        q.announce(prefix, id, f.set, true);
        this.count++;
      }
    }
    if (next.length === 0) {
      if (cur !== undefined) this.out.delete(prefix);
    } else this.out.set(prefix, next);
  }

  /** ROUTE-REFRESH (RFC 2918 §4, RFC 7911 §5 with every path): queue everything advertised in the family again. */
  requeue(family: number, familyOf: (p: PrefixKey) => number): void {
    const q = this.queues.get(family);
    if (q === undefined) return;
    this.out.forEach((list, prefix) => {
      if (familyOf(prefix) !== family) return;
      for (const x of list) q.announce(prefix, x.id, x.set);
    });
  }

  /** Prefixes with something advertised (for a full recomputation). */
  prefixes(): PrefixKey[] {
    const out: PrefixKey[] = [];
    this.out.forEach((_l, p) => out.push(p));
    return out;
  }

  /** What is advertised for a prefix: path id and set, by path id. */
  advertised(prefix: PrefixKey): { pathId: number; attrs: AttrSet }[] {
    return (this.out.get(prefix) ?? []).map((x) => ({ pathId: x.id, attrs: x.set })).sort((a, b) => a.pathId - b.pathId);
  }

  hasWork(family: number): boolean {
    return (this.queues.get(family)?.size ?? 0) > 0;
  }

  /** Withdrawals first, then announcements one set at a time, at most max pairs. */
  next(family: number, max: number): AddPathBatch | null {
    const q = this.queues.get(family);
    if (q === undefined || q.size === 0) return null;
    const afi = family >> 8;
    const safi = family & 0xff;
    const w = q.takeWithdrawals(max);
    if (w !== null) return { kind: 'withdraw', afi, safi, prefixes: w.prefixes, pathIds: w.ids };
    const a = q.takeAnnouncements(max);
    if (a !== null) return { kind: 'announce', afi, safi, attrs: a.set, prefixes: a.prefixes, pathIds: a.ids };
    return null;
  }

  /** The session ended: give every reference back. */
  clear(release: (set: AttrSet) => void): void {
    this.out.forEach((list) => {
      for (const x of list) release(x.set);
    });
    this.out.clear();
    this.count = 0;
    for (const q of this.queues.values()) q.clear();
  }
}

/** A send mode as configured, checked (the operator's typo must not become a silent "best 0"); throws RangeError. */
export function checkAddPathSend(m: AddPathSend | undefined): void {
  if (m === undefined) return;
  const x = m as { mode?: unknown; count?: unknown };
  if (x.mode === 'all') return;
  if (x.mode === 'best' && typeof x.count === 'number' && Number.isInteger(x.count) && x.count >= 1 && x.count <= 0xffff) return;
  throw new RangeError(`ADD-PATH send must be { mode: 'all' } or { mode: 'best', count: 1..65535 }, not ${JSON.stringify(m)}`);
}
