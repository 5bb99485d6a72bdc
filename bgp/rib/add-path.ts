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
// best N, the next one takes its place (the "Add-N-Paths" selection of the
// ADD-PATH guidelines, RFC 7964, over the paths the peer may receive).
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

/**
 * What is advertised for one prefix, flat: [peer, pathId, id, set, ...] per
 * path — the source (its peer id and its own path id: the identity of a path
 * while it exists; a replaced path keeps it), our path id, the set. One
 * exactly sized array per prefix and peer rather than an object per path: an
 * RR holds one per client and prefix, so this is the bulk of the ADD-PATH
 * memory (small integers stay unboxed in it).
 */
type OutList = (number | AttrSet)[];
const W = 4;

export type AddPathBatch =
  | { readonly kind: 'announce'; readonly afi: number; readonly safi: number; readonly attrs: AttrSet; readonly prefixes: PrefixKey[]; readonly pathIds: number[] }
  | { readonly kind: 'withdraw'; readonly afi: number; readonly safi: number; readonly prefixes: PrefixKey[]; readonly pathIds: number[] };

/**
 * Pending (prefix, path id) work of one family, like core.ts OutQueue: per
 * pair the set to announce or null to withdraw; the group lists and the
 * withdraw list index it and may hold stale entries, checked on the way out.
 * Per prefix the pending pairs are one flat array [id, value, unsent, ...]:
 * unsent 1 marks a first announcement not yet taken, which the peer does not
 * know, so withdrawing it just drops it.
 */
class AddPathQueue {
  private readonly pending = new PrefixMap<(number | AttrSet | null)[]>();
  private count = 0;
  private readonly groups = new Map<AttrSet, { prefixes: PrefixKey[]; ids: number[]; pos: number }>();
  private wPrefixes: PrefixKey[] = [];
  private wIds: number[] = [];
  private wPos = 0;

  get size(): number {
    return this.count;
  }

  /** first: nothing was ever sent under this id (or its withdrawal went out) */
  announce(prefix: PrefixKey, id: number, set: AttrSet, first = false): void {
    const a = this.pending.get(prefix);
    let i: number;
    if (a === undefined) {
      this.pending.set(prefix, [id, set, first ? 1 : 0]); // a literal: exactly sized
      this.count++;
    } else if ((i = this.find(a, id)) === a.length) {
      a.push(id, set, first ? 1 : 0);
      this.count++;
    } else {
      if (a[i + 1] === set) return; // already queued in that group
      a[i + 1] = set;
    }
    let g = this.groups.get(set);
    if (g === undefined) this.groups.set(set, (g = { prefixes: [], ids: [], pos: 0 }));
    g.prefixes.push(prefix);
    g.ids.push(id);
  }

  withdraw(prefix: PrefixKey, id: number): void {
    const a = this.pending.get(prefix);
    let i: number;
    if (a === undefined) {
      this.pending.set(prefix, [id, null, 0]);
      this.count++;
    } else if ((i = this.find(a, id)) === a.length) {
      a.push(id, null, 0);
      this.count++;
    } else if (a[i + 2] === 1) {
      // never sent: nothing to withdraw (the stale index entries are skipped on the way out)
      this.removeAt(prefix, a, i);
      return;
    } else {
      if (a[i + 1] === null) return;
      a[i + 1] = null;
    }
    this.wPrefixes.push(prefix);
    this.wIds.push(id);
  }

  private find(a: (number | AttrSet | null)[], id: number): number {
    let i = 0;
    while (i < a.length && a[i] !== id) i += 3;
    return i;
  }

  private removeAt(prefix: PrefixKey, a: (number | AttrSet | null)[], i: number): void {
    a.splice(i, 3);
    if (a.length === 0) this.pending.delete(prefix);
    this.count--;
  }

  /** Remove the pair when it is pending as v (one still to be sent); true when it was. */
  private takeIf(prefix: PrefixKey, id: number, v: AttrSet | null): boolean {
    const a = this.pending.get(prefix);
    if (a === undefined) return false;
    const i = this.find(a, id);
    if (i === a.length || a[i + 1] !== v) return false;
    this.removeAt(prefix, a, i);
    return true;
  }

  clear(): void {
    this.pending.clear();
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

/** scratch for AddPathOut.update: which entries of the current list were kept */
let keptScratch = new Uint8Array(64);

/** ADD-PATH send state of one Established peer: the families it applies to, the Adj-RIB-Out, the queues. */
export class AddPathOut {
  /** prefix → the paths advertised (or about to be), see OutList */
  private readonly out = new PrefixMap<OutList>();
  private readonly queues = new Map<number, AddPathQueue>();
  /** advertised (prefix, path id) pairs */
  count = 0;
  /** of those, IPv6 ones (per-family counts for the metrics: views.ts peerStats) */
  count6 = 0;

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
    const nCur = cur === undefined ? 0 : cur.length / W;
    if (keptScratch.length < nCur) keptScratch = new Uint8Array(nCur * 2);
    const kept = keptScratch;
    kept.fill(0, 0, nCur);
    const max = this.limit();
    // fresh paths, flat [path, set, ...]; entries kept are marked in `kept`
    let fresh = null as (Path | AttrSet)[] | null; // (filled in by consider(): no narrowing to null)
    let taken = 0;
    let structural = false;

    const consider = (path: Path): void => {
      const set = exportOne(path);
      if (set === null) return;
      taken++;
      const peer = path.source.id;
      const pid = path.pathId;
      let j = 0;
      while (j < nCur && ((cur as OutList)[W * j] !== peer || (cur as OutList)[W * j + 1] !== pid)) j++;
      if (j === nCur) {
        (fresh ??= []).push(path, set);
        return;
      }
      kept[j] = 1;
      const old = (cur as OutList)[W * j + 3] as AttrSet;
      if (old === set) release(set); // unchanged: nothing to send
      else {
        q.announce(prefix, (cur as OutList)[W * j + 2] as number, set);
        release(old);
        (cur as OutList)[W * j + 3] = set; // same path, same id, new attributes: in place
      }
    };

    if (best !== null) {
      if (paths.length <= max) {
        // every candidate fits: the order only decides which new path gets the lower id (the best first)
        consider(best);
        for (let i = 0; i < paths.length; i++) if (paths[i] !== best) consider(paths[i] as Path);
      } else {
        // The decision order, one winner at a time (selectBest is deterministic
        // whatever the order of its input; compare() alone is not a total order, see decision.ts).
        let rest: readonly Path[] = paths;
        let winner: Path | null = best;
        while (winner !== null && taken < max) {
          consider(winner);
          const w = winner;
          rest = rest.filter((x) => x !== w);
          winner = selectBest(rest, 1)?.best ?? null;
        }
      }
    }

    let nKept = nCur;
    for (let j = 0; j < nCur; j++) {
      if (kept[j] === 1) continue;
      structural = true;
      nKept--;
      const c = cur as OutList;
      q.withdraw(prefix, c[W * j + 2] as number); // RFC 7911 §3: the withdrawal names the path id
      release(c[W * j + 3] as AttrSet);
      this.count--;
      if (typeof prefix !== 'number') this.count6--;
    }
    if (!structural && fresh === null) return; // nothing came or went (changed attributes were updated in place)
    const nFresh = fresh === null ? 0 : fresh.length / 2;
    if (nKept + nFresh === 0) {
      this.out.delete(prefix);
      return;
    }
    // exactly sized: a grown array would keep spare capacity per prefix and peer
    const next: OutList = new Array<number | AttrSet>((nKept + nFresh) * W);
    let n = 0;
    for (let j = 0; j < nCur; j++) {
      if (kept[j] !== 1) continue;
      const c = cur as OutList;
      for (let k = 0; k < W; k++) next[n++] = c[W * j + k] as number | AttrSet;
    }
    if (fresh !== null) {
      // the lowest ids not in use for the prefix, nor given up in this change (a withdrawal must not be folded into
      // an unrelated announcement)
      let id = 1;
      for (let k = 0; k < fresh.length; k += 2) {
        for (;;) {
          let used = false;
          for (let j = 2; j < (cur?.length ?? 0) && !used; j += W) used = (cur as OutList)[j] === id;
          for (let j = 2; j < n && !used; j += W) used = next[j] === id;
          if (!used) break;
          id++;
        }
        const path = fresh[k] as Path;
        const set = fresh[k + 1] as AttrSet;
        next[n++] = path.source.id;
        next[n++] = path.pathId;
        next[n++] = id;
        next[n++] = set;
        q.announce(prefix, id, set, true);
        this.count++;
        if (typeof prefix !== 'number') this.count6++;
      }
    }
    this.out.set(prefix, next);
  }

  /**
   * An announcement of (prefix, our path id) could not be encoded for the peer (RFC 8654 §4): the path leaves this
   * Adj-RIB-Out and a withdrawal of the id is queued (the peer may hold an older version under it; withdrawing one
   * it lacks is harmless, RFC 4271 §9.1.3). The next update() of the prefix finds the path missing and offers it
   * again, so a later change that makes it fit is sent. False when the id is not advertised (already replaced).
   */
  drop(prefix: PrefixKey, family: number, pathId: number, release: (set: AttrSet) => void): boolean {
    const q = this.queues.get(family);
    const cur = this.out.get(prefix);
    if (q === undefined || cur === undefined) return false;
    let j = 0;
    while (j < cur.length && cur[j + 2] !== pathId) j += W;
    if (j >= cur.length) return false;
    release(cur[j + 3] as AttrSet);
    this.count--;
    if (typeof prefix !== 'number') this.count6--;
    if (cur.length === W) this.out.delete(prefix);
    else {
      // exactly sized, as update() keeps it
      const next: OutList = new Array<number | AttrSet>(cur.length - W);
      for (let k = 0, n = 0; k < cur.length; k++) if (k < j || k >= j + W) next[n++] = cur[k] as number | AttrSet;
      this.out.set(prefix, next);
    }
    q.withdraw(prefix, pathId);
    return true;
  }

  /** ROUTE-REFRESH (RFC 2918 §4, RFC 7911 §5 with every path): queue everything advertised in the family again. */
  requeue(family: number, familyOf: (p: PrefixKey) => number): void {
    const q = this.queues.get(family);
    if (q === undefined) return;
    this.out.forEach((list, prefix) => {
      if (familyOf(prefix) !== family) return;
      for (let j = 0; j < list.length; j += W) q.announce(prefix, list[j + 2] as number, list[j + 3] as AttrSet);
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
    const list = this.out.get(prefix) ?? [];
    const out: { pathId: number; attrs: AttrSet }[] = [];
    for (let j = 0; j < list.length; j += W) out.push({ pathId: list[j + 2] as number, attrs: list[j + 3] as AttrSet });
    return out.sort((a, b) => a.pathId - b.pathId);
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
      for (let j = 3; j < list.length; j += W) release(list[j] as AttrSet);
    });
    this.out.clear();
    this.count = 0;
    this.count6 = 0;
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
