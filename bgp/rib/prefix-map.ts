// A map keyed by prefix, built for a million IPv4 entries. A Prefix4 is
// address * 64 + length, up to 2^38: too big for V8's small integers, so as a
// Map key every one is a boxed heap number that Map hashes on each operation.
// IPv4 keys therefore live in an open-addressing table of their own: the keys
// unboxed in a Float64Array, the values in a parallel array, linear probing,
// tombstones for deletion (so a walk may delete as it goes), growth at 3/4
// load. Measured by bench/rib.ts. IPv6 keys (short strings, small tables) use
// a Map.
import type { Prefix4, Prefix6 } from '../wire/types.js';

const EMPTY = -1;
/** the probe step (slot() says why 9) */
const STEP = 9;
const DELETED = -2;
/** largest table an emptied PrefixMap clears in place instead of shrinking (2 MiB of arrays) */
const KEEP_SLOTS = 1 << 17;
/** tables made so far: each gets its own hash seed */
let tables = 0;
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
   * keysOnly: a set (PrefixMap<true>) with no value array: at a million keys that is 16 MiB less, and no 16 MiB
   * array for the collector to scan (change-queue.ts keeps one of these for every prefix changed at once).
   */
  constructor(capacity = 64, private readonly keysOnly = false) {
    let cap = 16;
    while (cap < capacity) cap *= 2;
    this.keys = new Float64Array(cap).fill(EMPTY);
    this.vals = this.newVals(cap);
    this.mask = cap - 1;
    this.shift = 32 - Math.log2(cap);
  }

  private newVals(cap: number): (V | undefined)[] {
    return this.keysOnly ? [] : new Array<V | undefined>(cap).fill(undefined);
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
   * space (index = the prefix's network bits) share a group of 8 slots, one
   * 64-byte cache line of `keys`: tables here fill from UPDATEs whose NLRI
   * are mostly consecutive blocks, so keeping them together in memory turns
   * most lookups of a burst into cache hits instead of one miss per prefix
   * (at 1M prefixes the tables are far bigger than the CPU caches). The group
   * number and length are mixed with this table's seed (murmur3's
   * finaliser): its top bits choose the group, its low bits permute the 8
   * places in it, so neighbours still fill one group while keys 8 apart (one
   * per group key) do not all start in the same place of their groups. The
   * seed matters: walking one table visits keys in its hash order, and
   * inserting them in that order into another table hashed the same way
   * piles them into one long probe run (quadratic; seen here as a
   * 100k-prefix peer-down taking seconds). Seeds come from a counter mixed
   * with a per-process random value (PROCESS_SEED).
   *
   * A probe moves on by STEP = 9 slots: to the next group, one place on. With
   * a step of 1, neighbours that found their group taken spilled slot by slot
   * into the next groups, filling them whole, and the groups after those: at
   * 1M consecutive /32s an insert took ~20 probes (bench/rib.ts's keys and
   * the skeind benchmark's alike). With 9 the 8 keys of a group that finds
   * its home group taken spread one to a group over the next ones, a
   * collision costs one probe per group passed, and the run one key makes
   * crosses another group's home in one place only (3.3 probes an insert at
   * 1M, table at 1/2 to 3/4 load). 9 is odd, so the probes of a key visit
   * every slot of the table before they repeat: a find or insert ends even
   * when all keys want the same place in their groups.
   */
  private slot(k: number): number {
    const addr = (k / 64) >>> 0;
    const len = k - Math.floor(k / 64) * 64;
    const index = len === 0 ? 0 : addr >>> (32 - len);
    let h = ((index >>> 3) ^ this.seed ^ Math.imul(len, 0x27d4eb2f)) | 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    return ((h >>> this.shift) & ~7) | ((index ^ h) & 7);
  }

  private find(k: number): number {
    const keys = this.keys;
    const mask = this.mask;
    for (let i = this.slot(k); ; i = (i + STEP) & mask) {
      const x = keys[i] as number;
      if (x === k) return i;
      if (x === EMPTY) return -1;
    }
  }

  get(k: Prefix4 | Prefix6): V | undefined {
    if (typeof k === 'string') return this.v6.get(k);
    const i = this.find(k);
    return i < 0 ? undefined : this.val(i);
  }

  has(k: Prefix4 | Prefix6): boolean {
    return typeof k === 'string' ? this.v6.has(k) : this.find(k) >= 0;
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
    const keys = this.keys;
    const mask = this.mask;
    let tomb = -1;
    let i = this.slot(k);
    for (; ; i = (i + STEP) & mask) {
      const x = keys[i] as number;
      if (x === k) {
        const prev = this.val(i);
        if (replace && !this.keysOnly) this.vals[i] = v;
        return prev;
      }
      if (x === EMPTY) break;
      if (x === DELETED && tomb < 0) tomb = i;
    }
    if (tomb >= 0) {
      i = tomb; // reuse a tombstone: `used` does not grow
    } else {
      if ((this.used + 1) * 4 > keys.length * 3) {
        this.rehash(this.live + 1);
        return this.put4(k, v, replace);
      }
      this.used++;
    }
    keys[i] = k;
    if (!this.keysOnly) this.vals[i] = v;
    if (++this.live > this.peak) this.peak = this.live;
    return undefined;
  }

  delete(k: Prefix4 | Prefix6): boolean {
    if (typeof k === 'string') return this.v6.delete(k);
    const i = this.find(k);
    if (i < 0) return false;
    this.removeAt(i);
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
    if (i < 0) return undefined;
    const prev = this.val(i);
    this.removeAt(i);
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
    if (i < 0 || this.val(i) !== v) return false;
    this.removeAt(i);
    return true;
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
    if (this.peak * 8 >= this.keys.length && this.keys.length <= KEEP_SLOTS) {
      this.keys.fill(EMPTY);
      this.vals.fill(undefined);
      this.used = 0;
      this.peak = 0;
    } else this.reset();
  }

  clear(): void {
    this.clear4();
    this.v6.clear();
  }

  private clear4(): void {
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
    this.peak = 0;
    this.keys = new Float64Array(16).fill(EMPTY);
    this.vals = this.newVals(16);
    this.mask = 15;
    this.shift = 28;
    this.used = 0;
    this.live = 0;
  }

  /** Grow (or clean out tombstones) so that `need` live keys fit under 1/2 load. */
  private rehash(need: number): void {
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
        while (keys[j] !== EMPTY) j = (j + STEP) & mask;
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
    const keys = this.keys;
    const v4 = new Float64Array(this.live);
    let j = 0;
    for (let i = 0; i < keys.length && j < v4.length; i++) {
      const x = keys[i] as number;
      if (x >= 0) v4[j++] = x;
    }
    return { v4, v6: [...this.v6.keys()] };
  }

  *keysIter(): Generator<Prefix4 | Prefix6> {
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) {
      const x = keys[i] as number;
      if (x >= 0) yield x;
    }
    yield* this.v6.keys();
  }
}
