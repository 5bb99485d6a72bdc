// Recursive next hops through the Loc-RIB (RFC 4271 §9.1.2.1): a BGP next hop that no route of the host's own
// covers (next-hop.ts: connected, and every other origin's kernel routes but skein's) may still be reached through
// another BGP route — an iBGP next hop that is a remote loopback learned over eBGP, as BIRD's `gateway recursive`
// (which Calico's bird.cfg.template asks for) resolves it in its master table. The path is then usable, and the FIB
// installs it via that route's own next hops (src/daemon: the resolver asks RibCore.recursiveHops).
//
// One level only, as BIRD does (rt_update_hostentry refuses a resolving route that is itself recursive): the
// covering route must have a usable best that resolves directly, never through the Loc-RIB again, and must not be
// our own origination (a block's blackhole covers it: the kernel would drop the packets). The longest matching
// prefix in the Loc-RIB with a best in the kernel decides; one that cannot resolve (recursive, or ours) makes the
// next hop unresolvable rather than letting a less specific route take over, which the kernel would not do either.
//
// Loops: a path whose next hop lies inside its own prefix never resolves through the Loc-RIB (decision.ts isUsable):
// once installed, the kernel would reach that next hop through the very route (or a more specific of it) that
// depends on it (RFC 4271 §9.1.2, "would become unresolvable if the route were installed"). Such a path stays
// unusable with the reason 'recursive-loop' (decision.ts unusableWhy).
//
// Cost: one index from every prefix that could cover a recursive next hop (its /32../0, or /128../0) to the next
// hops it covers; a Loc-RIB change looks its prefix up there (one probe, none while no next hop is recursive) and
// marks only those next hops; RibCore.flushRecursive re-resolves them, re-judges their attribute sets and
// re-decides the prefixes whose paths flipped.
import { isIpv4, parseIpv4, parseIpv6, prefix4, prefix4Addr, prefix4Len, prefix6FromBytes, prefix6Len } from '../wire/prefix.js';
import type { AttrSet } from './intern.js';
import { usableBest, type LocEntry } from './peer.js';
import type { PrefixMap } from './prefix-map.js';
import type { PrefixKey } from './types.js';

/** What recursion knows of one next hop. */
interface NextHopEntry {
  readonly text: string;
  /** the next hop's address: IPv4 as uint32, IPv6 as 16 bytes */
  readonly v4: number | null;
  readonly v6: Uint8Array | null;
  /** the Loc-RIB prefix it resolves through, or null */
  via: PrefixKey | null;
  /** the attribute sets whose first next hop this is and that no host route resolves */
  readonly sets: Set<AttrSet>;
  /** its covering prefixes, the keys under which the index holds it */
  readonly covers: PrefixKey[];
}

export class RecursiveNextHops {
  readonly #entries = new Map<string, NextHopEntry>();
  /** covering prefix → the next hops it covers */
  readonly #index = new Map<PrefixKey, Set<NextHopEntry>>();
  readonly #dirty = new Set<NextHopEntry>();
  /** bumped whenever where a next hop resolves to may have moved (another route, or another best of it) */
  epoch = 0;

  constructor(private readonly loc: PrefixMap<LocEntry>) {}

  /** true while some next hop is recursive: only then do Loc-RIB changes need a look-up here */
  get watching(): boolean {
    return this.#entries.size > 0;
  }

  /** true when a change waits for flush() */
  get pending(): boolean {
    return this.#dirty.size > 0;
  }

  /** next hops followed (for tests and metrics) */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * A set's first next hop is not resolvable through the host's routes: follow it, and return the Loc-RIB prefix it
   * resolves through now (null: none).
   */
  resolve(set: AttrSet): PrefixKey | null {
    const text = set.nextHops[0] as string;
    let e = this.#entries.get(text);
    if (e === undefined) {
      const made = this.#make(text);
      if (made === null) return null;
      e = made;
      this.#entries.set(text, e);
      for (const k of e.covers) {
        let s = this.#index.get(k);
        if (s === undefined) this.#index.set(k, (s = new Set()));
        s.add(e);
      }
      e.via = this.#lookup(e);
    }
    e.sets.add(set);
    return e.via;
  }

  /** The set resolves through the host's routes now (or is bad for another reason): no longer followed here. */
  forget(set: AttrSet): void {
    const e = this.#entries.get(set.nextHops[0] as string);
    if (e === undefined || !e.sets.delete(set)) return;
    if (e.sets.size === 0) this.#drop(e);
  }

  /** A Loc-RIB entry changed: the next hops it covers are to be resolved again. */
  touched(prefix: PrefixKey): void {
    const s = this.#index.get(prefix);
    if (s !== undefined) for (const e of s) this.#dirty.add(e);
  }

  /** Where a followed next hop resolves through now (null: nowhere, or not followed). */
  via(text: string): PrefixKey | null {
    return this.#entries.get(text)?.via ?? null;
  }

  /**
   * Resolve the marked next hops again and re-judge their live sets with `judge`; returns the sets whose verdict
   * (usable, through the Loc-RIB) changed, with the verdict of before.
   */
  flush(judge: (set: AttrSet) => void): Map<AttrSet, { ok: boolean; rec: boolean }> {
    const changed = new Map<AttrSet, { ok: boolean; rec: boolean }>();
    const dirty = [...this.#dirty];
    this.#dirty.clear();
    for (const e of dirty) {
      const via = this.#lookup(e);
      // even with the same prefix its best (so its next hops) may have changed: the FIB looks again
      if (via !== null || e.via !== null) this.epoch++;
      e.via = via;
      for (const s of [...e.sets]) {
        if (s.refs === 0) {
          e.sets.delete(s);
          continue;
        }
        const before = { ok: s.unusable === null, rec: s.viaBgp !== null };
        judge(s); // may forget the set (no longer recursive)
        if (before.ok !== (s.unusable === null) || before.rec !== (s.viaBgp !== null)) changed.set(s, before);
      }
      if (e.sets.size === 0) this.#drop(e);
    }
    return changed;
  }

  #drop(e: NextHopEntry): void {
    if (this.#entries.get(e.text) !== e) return;
    this.#entries.delete(e.text);
    this.#dirty.delete(e);
    for (const k of e.covers) {
      const s = this.#index.get(k);
      if (s === undefined) continue;
      s.delete(e);
      if (s.size === 0) this.#index.delete(k);
    }
  }

  #make(text: string): NextHopEntry | null {
    try {
      if (isIpv4(text)) {
        const a = parseIpv4(text) >>> 0;
        const covers: PrefixKey[] = [];
        for (let len = 32; len >= 0; len--) covers.push(prefix4(a, len));
        return { text, v4: a, v6: null, via: null, sets: new Set(), covers };
      }
      const b = parseIpv6(text);
      const covers: PrefixKey[] = [];
      for (let len = 128; len >= 0; len--) covers.push(prefix6FromBytes(Uint8Array.from(b), len));
      return { text, v4: null, v6: b, via: null, sets: new Set(), covers };
    } catch {
      return null;
    }
  }

  /** The longest Loc-RIB match whose best is in the kernel; null when none, or when that one cannot resolve. */
  #lookup(e: NextHopEntry): PrefixKey | null {
    for (const k of e.covers) {
      const entry = this.loc.get(k);
      if (entry === undefined) continue;
      const best = usableBest(entry);
      if (best === null) continue; // not in the kernel: the kernel would look further, so do we
      if (best.source.local) return null; // our own origination (a block's blackhole, a workload): no way through
      if (best.attrs.viaBgp !== null) return null; // recursive itself: one level only
      return k;
    }
    return null;
  }
}

/**
 * Whether a learned path's first next hop lies inside its own prefix (the loop case above). Asked for every learned
 * path, so nothing is parsed per route: IPv4 costs two shifts once the set's address is known (cached on the set);
 * IPv6 compares the prefix key (canonical text) with the next hop's covering prefix of that length, made once per
 * set and length and cached on the set (a set's IPv6 routes mostly share a length or two).
 */
export function nextHopInside(prefix: PrefixKey, set: AttrSet): boolean {
  const nh = set.nextHops[0];
  if (nh === undefined) return false;
  if (typeof prefix === 'number') {
    if (set.nh4 === -2) set.nh4 = isIpv4(nh) ? parseIpv4(nh) >>> 0 : -1;
    if (set.nh4 < 0) return false;
    const len = prefix4Len(prefix);
    if (len === 0) return true;
    const shift = 32 - len;
    return set.nh4 >>> shift === prefix4Addr(prefix) >>> shift;
  }
  let c = set.nh6;
  if (c === undefined) {
    try {
      c = isIpv4(nh) ? null : { bytes: parseIpv6(nh), covers: new Map() };
    } catch {
      c = null;
    }
    set.nh6 = c;
  }
  if (c === null) return false;
  const len = prefix6Len(prefix);
  let cover = c.covers.get(len);
  if (cover === undefined) {
    cover = prefix6FromBytes(Uint8Array.from(c.bytes), len);
    c.covers.set(len, cover);
  }
  return cover === prefix;
}
