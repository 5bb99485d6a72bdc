// The outbound queue of one update group and family (what is to be announced or withdrawn, not sent yet);
// update-group.ts nextGroupBatch hands the sender its next piece of work from it.
import type { AttrSet } from './intern.js';
import { PrefixMap } from './prefix-map.js';
import type { PrefixKey } from './types.js';

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
