// The interfaces fib/ has seen: index -> name and flags, name -> index. Routes may name their device (a workload
// interface deleted and created again gets a new index under the same name), so every encoded next-hop set is
// valid for one generation of this table; `gen` moves on every change that can affect a route.
import { IFF_LOWER_UP, IFF_UP } from './constants.js';

export interface Link {
  name: string;
  flags: number;
}

export class Links {
  readonly byIndex = new Map<number, Link>();
  readonly byName = new Map<string, number>();
  gen = 0;

  /**
   * A link event (RTM_NEWLINK when `added`, else RTM_DELLINK). True when it changed something that matters to
   * routes (a link appeared, went away, was renamed, or went up or down).
   */
  update(added: boolean, index: number, name: string | undefined, flags: number): boolean {
    const old = this.byIndex.get(index);
    const UPS = IFF_UP | IFF_LOWER_UP;
    if (!added) {
      if (old === undefined) return false;
      this.byIndex.delete(index);
      if (this.byName.get(old.name) === index) this.byName.delete(old.name);
    } else {
      const nm = name ?? old?.name;
      if (nm === undefined) return false;
      if (old && old.name === nm && (old.flags & UPS) === (flags & UPS)) {
        old.flags = flags;
        return false; // nothing that affects routes
      }
      if (old && old.name !== nm && this.byName.get(old.name) === index) this.byName.delete(old.name);
      this.byIndex.set(index, { name: nm, flags });
      this.byName.set(nm, index);
    }
    this.gen++;
    return true;
  }

  /** Replace the whole table with a dump's (only when something differs, so encodings stay valid otherwise). */
  replaceAll(links: ReadonlyMap<number, Link>): void {
    let changed = links.size !== this.byIndex.size;
    for (const [i, l] of links) {
      const old = this.byIndex.get(i);
      if (!old || old.name !== l.name || old.flags !== l.flags) changed = true;
    }
    if (!changed) return;
    this.byIndex.clear();
    this.byName.clear();
    for (const [i, l] of links) {
      this.byIndex.set(i, l);
      this.byName.set(l.name, i);
    }
    this.gen++;
  }
}
