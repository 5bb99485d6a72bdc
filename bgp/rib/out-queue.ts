// The outbound queue of one peer and family (what is to be announced or withdrawn, not sent yet), and nextBatch,
// which hands the sender its next piece of work from it (core.ts RibCore.nextBatch).
import type { AttrSet } from './intern.js';
import { PrefixMap } from './prefix-map.js';
import type { RibCore } from './core.js';
import type { OutBatch, PrefixKey } from './types.js';

export type Marker = 'end-of-rib' | 'begin-refresh' | 'end-refresh';

/**
 * Pending outbound work of one family to one peer. `pending` says, per
 * prefix, what is to go out: an AttrSet to announce, or null to withdraw.
 * The group arrays and the withdraw list only index it and may hold stale
 * entries (a prefix that moved to another set before it was sent): nextBatch
 * checks each against `pending`, so moving a prefix costs an append, not a
 * search.
 */
export class OutQueue {
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

/**
 * The next piece of outbound work for a peer: markers first, withdrawals,
 * then announcements one attribute set at a time (all prefixes of a batch
 * share it, so they fit one UPDATE's NLRI), at most maxPrefixes per batch;
 * null when nothing waits. The sender encodes what it gets and asks again
 * when its socket drains.
 */
export function nextBatch(rib: RibCore, id: number, maxPrefixes: number): OutBatch | null {
  const p = rib.peer(id);
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
