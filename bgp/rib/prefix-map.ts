// A map keyed by prefix, built for a million IPv4 entries. A Prefix4 is
// address * 64 + length, up to 2^38: too big for V8's small integers, so as a
// Map key every one is a boxed heap number that Map hashes on each operation.
// IPv4 keys therefore live in an open-addressing table of their own: the keys
// unboxed in a Float64Array, the values in a parallel array, probes by region
// (slot()), tombstones for deletion (so a walk may delete as it goes), growth
// at 3/4 load. Measured by bench/rib.ts. IPv6 keys (short strings, small
// tables) use a Map.
import type { Prefix4, Prefix6 } from '../wire/types.js';

const EMPTY = -1;
/** the probe step (slot() says why 9) */
const STEP = 9;
/** slots of a region: one block of 512 neighbouring prefixes' home (slot() says why), 4 KiB of keys */
const REGION = 512;
const DELETED = -2;
/** largest table an emptied PrefixMap clears in place instead of shrinking (2 MiB of arrays) */
const KEEP_SLOTS = 1 << 17;
/**
 * Tables of at least this many slots (196k keys at 3/4 load) grow in steps (see grow), not in one pause. A smaller
 * growth moves under 100k keys (a few ms); stepping those cost more than it gave: 1<<15 here made 100k inserts into
 * a fresh map 84 ms of CPU against 54 ms growing at once, 49 ms with this bound (/tmp pm-bench, load 9).
 */
const STEPPED_SLOTS = 1 << 18;
/** old slots moved per insert while a stepped growth is under way (see grow: 1.4 would do) */
const MOVE_PER_INSERT = 64;
/** tables made so far: each gets its own hash seed */
let tables = 0;
/** keys inserted into every PrefixMap so far: the clock by which growths are staggered (put4) */
let inserts = 0;
/** `inserts` when a table last began a stepped growth */
let lastStepped = -Infinity;
/**
 * A table due to grow in steps puts it off while another began one within this many inserts (a few event-loop
 * turns of a full table arriving), up to 7/8 load. The Loc-RIB and an Adj-RIB-Out are fed the same prefixes, so
 * they reach 3/4 load within a few inserts of each other: their growths to 2M slots at 1M prefixes (allocating
 * 32 MiB each, and the full collection V8 starts after it) came in one turn, 58-71 ms of loop delay
 * (bench/skeind.ts with --trace-gc), the largest of the announce phase.
 */
const STAGGER = 1 << 16;
/**
 * Mixed into every seed, different in every process. Seeds from the counter alone were the same in every skein
 * process: a peer that is skein too sends its table in the hash order of its Loc-RIB, which had the same seed as
 * ours, so a full table from it piled into one probe run here (a 1M-route skein peer took skeind's loop for
 * minutes at ~800 routes/s; issue 15). A peer cannot learn this value, so no sender order can do that on purpose.
 */
const PROCESS_SEED = Math.floor(Math.random() * 0x100000000) | 0;

export class PrefixMap<V> {
  private keys: Float64Array;
  /** the values, parallel to keys; empty for a set (keysOnly), whose every value is `true` */
  private vals: (V | undefined)[];
  private mask: number;
  private shift: number;
  private used = 0; // live + tombstones
  private live = 0;
  /** most live keys since the table was last emptied */
  private peak = 0;
  private readonly v6 = new Map<Prefix6, V>();
  private readonly seed = Math.imul(++tables, 0x9e3779b1) ^ PROCESS_SEED;
  /**
   * While a stepped growth is under way (grow): the table before it, whose keys not moved yet (slots from movePos
   * on) are still looked up there; null otherwise. Nothing is ever added to it. A moved key stays in its old slot
   * as a stale copy (lookups ignore slots before movePos): a walk of keysIter that began before the growth goes on
   * through this array and must still find every key that was in it.
   */
  private old: Float64Array | null = null;
  private oldVals: (V | undefined)[] = [];
  private oldMask = 0;
  private oldShift = 0;
  /** the next slot of `old` to move */
  private movePos = 0;

  /**
   * keysOnly: a set (PrefixMap<true>) with no value array: at a million keys that is 16 MiB less, and no 16 MiB
   * array for the collector to scan (change-queue.ts keeps one of these for every prefix changed at once).
   */
  constructor(
    capacity = 64,
    private readonly keysOnly = false,
    /**
     * from what table size growth goes in steps, how many old slots move per insert, and for how many inserts a
     * growth due waits for another one (tests take small tables and slow moves to reach every state of a growth
     * under way, including a new table that fills first)
     */
    private readonly stepped: { readonly from: number; readonly perInsert: number; readonly stagger?: number } = {
      from: STEPPED_SLOTS,
      perInsert: MOVE_PER_INSERT,
    },
  ) {
    let cap = 16;
    while (cap < capacity) cap *= 2;
    this.keys = new Float64Array(cap).fill(EMPTY);
    this.vals = this.newVals(cap);
    this.mask = cap - 1;
    this.shift = 32 - Math.log2(cap);
  }

  private newVals(cap: number): (V | undefined)[] {
    // holes read as undefined: V8 writes a new array's holes in one native pass, which fill(undefined) did again in
    // a loop of its own (16 MiB at 2M slots, in the turn a table grows)
    return this.keysOnly ? [] : new Array<V | undefined>(cap);
  }

  private val(i: number): V | undefined {
    return this.keysOnly ? (true as V) : this.vals[i];
  }

  get size(): number {
    return this.live + this.v6.size;
  }

  /** the IPv6 keys among size */
  get size6(): number {
    return this.v6.size;
  }

  /**
   * Slot of a key. Prefixes of one length that are neighbours in the address
   * space (index = the prefix's network bits) share a region of 512 slots
   * (REGION), one 4 KiB page of `keys`: a block of 512 neighbours (the index
   * without its low 9 bits) has its home there, and the index's low bits give
   * each its own slot in the region (its group of 8, one 64-byte cache line,
   * and its place in the group, both permuted by the hash). Tables here fill
   * from UPDATEs whose NLRI are mostly consecutive blocks, and at 1M prefixes
   * they are far bigger than the CPU caches and the TLB: with a group of 8
   * neighbours per hashed place (before 2026-12-07 afternoon) every 8
   * prefixes of a burst touched a new page of each array of each table, and
   * on this machine's virtual CPUs a page first touched costs a TLB walk as
   * well as a cache miss (a 16 MiB array read in 8-slot groups at random
   * places: ~40 ns an element, in 512-slot runs at random places: ~3 ns).
   * The block number and length are mixed with this table's seed (murmur3's
   * finaliser): its top bits choose the region, its low bits permute the
   * groups and places in it. The seed matters: walking one table visits keys
   * in its hash order, and inserting them in that order into another table
   * hashed the same way piles them into one long probe run (quadratic; seen
   * here as a 100k-prefix peer-down taking seconds). Seeds come from a
   * counter mixed with a per-process random value (PROCESS_SEED).
   *
   * A block alone in its region has no collision at all. A second block
   * homed in a taken region moves on by its own step (stepOf): an odd number
   * of regions plus 9 slots (the next group, one place on), the same for all
   * of the block's keys, so they stay together in one other region instead
   * of spilling group by group over the next regions (a shared step would
   * make runs of full regions that every later block there walks through).
   * In a table smaller than a region the step is 9, as it was for every
   * table before: with a step of 1, neighbours that found their group taken
   * spilled slot by slot into the next groups, filling them whole (~20
   * probes an insert at 1M). The step is odd, so the probes of a key visit
   * every slot of the table before they repeat: a find or insert ends even
   * when all keys want the same place. Probes an insert, 1M keys into a
   * fresh table (growing through every size, stepped growth's lookups in the
   * old table included): 2.4 for consecutive /32s or /24s, random /24s or
   * /24-/32 mixes (3.5-3.6 with the 8-slot groups); 1.4 a hit (1.45).
   */
  private slot(k: number): number {
    return this.slotAt(k, this.shift);
  }

  /** slot() in a table of 2^(32 - shift) slots */
  private slotAt(k: number, shift: number): number {
    const addr = (k / 64) >>> 0;
    const len = k - Math.floor(k / 64) * 64;
    const index = len === 0 ? 0 : addr >>> (32 - len);
    let h = ((index >>> 9) ^ this.seed ^ Math.imul(len, 0x27d4eb2f)) | 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    // the key's place in its block's region: a bijection of the index's low 9 bits (group, then place in it)
    const within = ((((index >>> 3) ^ h) & 63) << 3) | ((index ^ (h >>> 6)) & 7);
    return shift <= 23 ? ((h >>> shift) & ~(REGION - 1)) | within : within & (0xffffffff >>> shift);
  }

  /**
   * The probe step of a key (slot() says why): 9 plus an odd number of regions, the same for every key of a block.
   * Only asked once a key's first slot is taken.
   */
  private stepOf(k: number): number {
    const addr = (k / 64) >>> 0;
    const len = k - Math.floor(k / 64) * 64;
    const index = len === 0 ? 0 : addr >>> (32 - len);
    let h = ((index >>> 9) ^ this.seed ^ Math.imul(len, 0x165667b1)) | 0;
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
    h ^= h >>> 12;
    return (h >>> 12) * 2 * REGION + REGION + STEP;
  }

  private find(k: number): number {
    const keys = this.keys;
    const mask = this.mask;
    let step = 0;
    for (let i = this.slot(k); ; i = (i + step) & mask) {
      const x = keys[i] as number;
      if (x === k) return i;
      if (x === EMPTY) return -1;
      if (step === 0) step = this.stepOf(k);
    }
  }

  /**
   * The slot of k in the table before a stepped growth, -1 when it is not there, was moved (a slot before
   * movePos: its key lives in the new table now) or there is no such table.
   */
  private findOld(k: number): number {
    const keys = this.old;
    if (keys === null) return -1;
    const mask = this.oldMask;
    let step = 0;
    for (let i = this.slotAt(k, this.oldShift); ; i = (i + step) & mask) {
      const x = keys[i] as number;
      if (x === k) return i >= this.movePos ? i : -1;
      if (x === EMPTY) return -1;
      if (step === 0) step = this.stepOf(k);
    }
  }

  get(k: Prefix4 | Prefix6): V | undefined {
    if (typeof k === 'string') return this.v6.get(k);
    const i = this.find(k);
    if (i >= 0) return this.val(i);
    if (this.old === null) return undefined;
    const j = this.findOld(k);
    return j < 0 ? undefined : this.keysOnly ? (true as V) : this.oldVals[j];
  }

  has(k: Prefix4 | Prefix6): boolean {
    if (typeof k === 'string') return this.v6.has(k);
    return this.find(k) >= 0 || (this.old !== null && this.findOld(k) >= 0);
  }

  set(k: Prefix4 | Prefix6, v: V): void {
    this.swap(k, v);
  }

  /** Set and return the previous value (one probe where get + set take two). */
  swap(k: Prefix4 | Prefix6, v: V): V | undefined {
    if (typeof k === 'string') {
      const prev = this.v6.get(k);
      this.v6.set(k, v);
      return prev;
    }
    return this.put4(k, v, true);
  }

  /** The value of k when present (left as it is), else set k to v and return undefined (one probe). */
  getOrSet(k: Prefix4 | Prefix6, v: V): V | undefined {
    if (typeof k === 'string') {
      const prev = this.v6.get(k);
      if (prev === undefined) this.v6.set(k, v);
      return prev;
    }
    return this.put4(k, v, false);
  }

  private put4(k: number, v: V, replace: boolean): V | undefined {
    if (this.old !== null) {
      // a key not moved yet stays where it is: changed there, it moves with its new value
      const j = this.findOld(k);
      if (j >= 0) {
        const prev = this.keysOnly ? (true as V) : this.oldVals[j];
        if (replace && !this.keysOnly) this.oldVals[j] = v;
        return prev;
      }
    }
    const keys = this.keys;
    const mask = this.mask;
    let tomb = -1;
    let i = this.slot(k);
    let step = 0;
    for (; ; i = (i + step) & mask) {
      const x = keys[i] as number;
      if (x === k) {
        const prev = this.val(i);
        if (replace && !this.keysOnly) this.vals[i] = v;
        return prev;
      }
      if (x === EMPTY) break;
      if (x === DELETED && tomb < 0) tomb = i;
      if (step === 0) step = this.stepOf(k);
    }
    if (tomb >= 0) {
      i = tomb; // reuse a tombstone: `used` does not grow
    } else {
      if ((this.used + 1) * 4 > keys.length * 3 && !this.putOff(keys.length)) {
        this.grow();
        return this.put4(k, v, replace);
      }
      this.used++;
    }
    keys[i] = k;
    if (!this.keysOnly) this.vals[i] = v;
    inserts++;
    if (++this.live > this.peak) this.peak = this.live;
    // only an insert moves old keys: a walk (forEach) may delete and replace, never insert, so it never sees one move
    if (this.old !== null) this.move(this.stepped.perInsert);
    return undefined;
  }

  delete(k: Prefix4 | Prefix6): boolean {
    if (typeof k === 'string') return this.v6.delete(k);
    const i = this.find(k);
    if (i >= 0) {
      this.removeAt(i);
      return true;
    }
    const j = this.findOld(k);
    if (j < 0) return false;
    this.removeOld(j);
    return true;
  }

  /** Delete and return the value, undefined when absent (one probe). */
  take(k: Prefix4 | Prefix6): V | undefined {
    if (typeof k === 'string') {
      const prev = this.v6.get(k);
      this.v6.delete(k);
      return prev;
    }
    const i = this.find(k);
    if (i >= 0) {
      const prev = this.val(i);
      this.removeAt(i);
      return prev;
    }
    const j = this.findOld(k);
    if (j < 0) return undefined;
    const prev = this.keysOnly ? (true as V) : this.oldVals[j];
    this.removeOld(j);
    return prev;
  }

  /** Delete the key only when it maps to exactly v; true when it did (one probe). */
  takeIf(k: Prefix4 | Prefix6, v: V): boolean {
    if (typeof k === 'string') {
      if (!this.v6.has(k) || this.v6.get(k) !== v) return false;
      this.v6.delete(k);
      return true;
    }
    const i = this.find(k);
    if (i >= 0) {
      if (this.val(i) !== v) return false;
      this.removeAt(i);
      return true;
    }
    const j = this.findOld(k);
    if (j < 0 || (this.keysOnly ? (true as V) : this.oldVals[j]) !== v) return false;
    this.removeOld(j);
    return true;
  }

  /** Delete slot j of the table before a stepped growth. */
  private removeOld(j: number): void {
    (this.old as Float64Array)[j] = DELETED;
    if (!this.keysOnly) this.oldVals[j] = undefined;
    this.live--;
    if (this.live === 0 && this.keys.length > 1024) this.emptied();
  }

  private removeAt(i: number): void {
    this.keys[i] = DELETED;
    if (!this.keysOnly) this.vals[i] = undefined;
    this.live--;
    if (this.live === 0 && this.keys.length > 1024) this.emptied();
  }

  /**
   * The last entry went. An outbound queue empties after every burst it
   * sends: when the burst filled a good part of a moderate table, the next
   * one is likely alike, so the table is cleared in place rather than grown
   * again from 16 slots (each growth moves every entry). A table that held
   * a full-table dump, or was mostly empty, gives its arrays back.
   */
  private emptied(): void {
    this.dropOld();
    if (this.peak * 8 >= this.keys.length && this.keys.length <= KEEP_SLOTS) {
      // only the keys: every delete left its value slot undefined, so with no live key all of them are (an
      // outbound queue empties after every burst it sends: half the cost of this, ~1% of a 1M ingest's CPU)
      this.keys.fill(EMPTY);
      this.used = 0;
      this.peak = 0;
    } else this.reset();
  }

  clear(): void {
    this.clear4();
    this.v6.clear();
  }

  private clear4(): void {
    if (this.old !== null) {
      this.dropOld();
      this.reset();
      return;
    }
    if (this.used === 0) return;
    if (this.keys.length > 1024) {
      this.reset();
      return;
    }
    this.keys.fill(EMPTY);
    this.vals.fill(undefined);
    this.used = 0;
    this.live = 0;
    this.peak = 0;
  }

  private reset(): void {
    this.dropOld();
    this.peak = 0;
    this.keys = new Float64Array(16).fill(EMPTY);
    this.vals = this.newVals(16);
    this.mask = 15;
    this.shift = 28;
    this.used = 0;
    this.live = 0;
  }

  /** A stepped growth due now waits for one another table began just now (STAGGER), up to 7/8 load. */
  private putOff(slots: number): boolean {
    const s = this.stepped;
    return slots >= s.from && this.old === null && inserts - lastStepped < (s.stagger ?? STAGGER) && (this.used + 1) * 8 <= slots * 7;
  }

  /**
   * The table is at 3/4 load (tombstones included): grow, or clean out tombstones at the same size. A large table
   * (stepped.from) grows in steps: the new table takes over at once and the keys of the old one move
   * MOVE_PER_INSERT slots of it per insert, while lookups try the new table, then the old. Moving 786k keys at
   * once was a pause of 33-40 ms of the event loop (the Loc-RIB's and the listener's Adj-RIB-Out's last growths
   * while 1M prefixes arrive, bench/skeind.ts; two such in a few turns decided the loop delay's p99). The new table
   * has room for twice the live keys, so it takes as many inserts as there are live keys before it is at 3/4, and
   * the old table's 4/3 * live slots are moved by then at 64 per insert (1.4 would do); should it fill first
   * anyway (deletes freeing the old table while inserts fill the new one), the rest moves at once.
   */
  private grow(): void {
    if (this.old !== null) this.move(Infinity);
    const need = this.live + 1;
    if (need * 2 <= this.keys.length || this.keys.length < this.stepped.from) {
      this.rehash(need);
      return;
    }
    let cap = 16;
    while (cap < need * 2) cap *= 2;
    lastStepped = inserts;
    this.old = this.keys;
    this.oldVals = this.vals;
    this.oldMask = this.mask;
    this.oldShift = this.shift;
    this.movePos = 0;
    this.keys = new Float64Array(cap).fill(EMPTY);
    this.vals = this.newVals(cap);
    this.mask = cap - 1;
    this.shift = 32 - Math.log2(cap);
    this.used = 0;
  }

  /** Move up to n slots' worth of the old table's keys into the new one (a stepped growth, grow). */
  private move(n: number): void {
    const old = this.old as Float64Array;
    const oldVals = this.oldVals;
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    const withVals = !this.keysOnly;
    const end = Math.min(old.length, this.movePos + n);
    let used = this.used;
    for (let i = this.movePos; i < end; i++) {
      const x = old[i] as number;
      if (x < 0) continue;
      // not in the new table (put4 changes a key where it is), so the first free slot is its place
      let j = this.slot(x);
      if (keys[j] !== EMPTY && keys[j] !== DELETED) {
        const step = this.stepOf(x);
        do j = (j + step) & mask;
        while (keys[j] !== EMPTY && keys[j] !== DELETED);
      }
      if (keys[j] === EMPTY) used++;
      keys[j] = x;
      if (withVals) vals[j] = oldVals[i];
      // the key stays in old[i]: findOld ignores slots before movePos, and a keysIter walk over this array still sees it
    }
    this.used = used;
    this.movePos = end;
    if (end >= old.length) this.dropOld();
  }

  private dropOld(): void {
    this.old = null;
    this.oldVals = [];
    this.movePos = 0;
  }

  /** Grow (or clean out tombstones) so that `need` live keys fit under 1/2 load. */
  private rehash(need: number): void {
    if (this.old !== null) this.move(Infinity);
    let cap = 16;
    while (cap < need * 2) cap *= 2;
    const oldK = this.keys;
    const oldV = this.vals;
    this.keys = new Float64Array(cap).fill(EMPTY);
    this.vals = this.newVals(cap);
    this.mask = cap - 1;
    this.shift = 32 - Math.log2(cap);
    // locals, not fields, in the loop: a million moves per growth at a full table
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    const withVals = !this.keysOnly;
    let n = 0;
    for (let i = 0; i < oldK.length; i++) {
      const x = oldK[i] as number;
      if (x >= 0) {
        let j = this.slot(x);
        if (keys[j] !== EMPTY) {
          const step = this.stepOf(x);
          do j = (j + step) & mask;
          while (keys[j] !== EMPTY);
        }
        keys[j] = x;
        if (withVals) vals[j] = oldV[i];
        n++;
      }
    }
    this.used = n;
    this.live = n;
  }

  /**
   * Visit every entry (IPv4 in table order, then IPv6). The callback may
   * delete the entry it is given or replace its value, but not add keys.
   * (Deleting the last entry clears the arrays or swaps in fresh ones;
   * either way the rest of the walk finds nothing live.)
   */
  forEach(fn: (value: V, key: Prefix4 | Prefix6) => void): void {
    // the keys not moved yet of a stepped growth first: fn may replace a value there (put4 changes a key where it
    // is); fn never inserts, so nothing moves during the walk
    const old = this.old;
    const oldVals = this.oldVals;
    if (old !== null) {
      for (let i = this.movePos; i < old.length; i++) {
        const x = old[i] as number;
        if (x >= 0) fn((this.keysOnly ? true : oldVals[i]) as V, x);
      }
    }
    const keys = this.keys;
    const vals = this.vals;
    for (let i = 0; i < keys.length; i++) {
      const x = keys[i] as number;
      if (x >= 0) fn((this.keysOnly ? true : vals[i]) as V, x);
    }
    for (const [k, v] of this.v6) fn(v, k);
  }

  /**
   * The keys as they are now, IPv4 ones unboxed (8 bytes each): what a resumable walk (walker.ts) goes through while
   * the table keeps changing.
   */
  keySnapshot(): { v4: Float64Array; v6: Prefix6[] } {
    const v4 = new Float64Array(this.live);
    let j = 0;
    const old = this.old;
    if (old !== null) {
      for (let i = this.movePos; i < old.length && j < v4.length; i++) {
        const x = old[i] as number;
        if (x >= 0) v4[j++] = x;
      }
    }
    const keys = this.keys;
    for (let i = 0; i < keys.length && j < v4.length; i++) {
      const x = keys[i] as number;
      if (x >= 0) v4[j++] = x;
    }
    return { v4, v6: [...this.v6.keys()] };
  }

  /**
   * A lazy walk of the keys, which the caller may spread over many turns while the table changes (skeinctl's
   * dumps, src/daemon/prefix-walk.ts): every key present from its start to its end is given once; one added
   * meanwhile may be missed, one deleted meanwhile may still be given (the caller's lookup then finds nothing).
   * It goes through one array: the table as it was at the start. A growth that replaces it later leaves the keys
   * in it (rehash copies; a stepped growth leaves a stale copy of each key it moves). A walk that starts while a
   * stepped growth is under way first finishes that growth: its keys are in two arrays then, and a key could be
   * given from the old one and again from the new one after it moved.
   */
  *keysIter(): Generator<Prefix4 | Prefix6> {
    if (this.old !== null) this.move(Infinity);
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) {
      const x = keys[i] as number;
      if (x >= 0) yield x;
    }
    yield* this.v6.keys();
  }
}
