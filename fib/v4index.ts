// An IPv4 prefix -> value table for a million entries: open addressing over typed arrays. A Map keyed by
// address * 64 + length works, but its keys are above the small-integer range, so every insert, lookup and delete
// hashes a boxed double; this table hashes two integers and allocates nothing per entry (benchmark: 1M inserts
// ~40 ms here vs ~250-370 ms for the Map).
// Growing and shrinking are incremental: the new arrays are allocated at once, and the entries move over a few
// slots per later insert or delete (lookups read both). Moving a million entries in one call held the event loop
// for 100-600 ms at the size where it happened (the FIB-on skeind bench, issue 16); now no call moves more than
// STEP slots, except a grow needed while a move is still under way or while an iterator is open (rare: the new
// arrays have room for twice the entries).
const EMPTY = 255;
const TOMB = 254;
const MIN_CAP = 1024;
/** slots of the old arrays moved per insert or delete while a resize is under way */
const STEP = 64;
/**
 * A probe moves on by PROBE = 9 slots: to the next group of 8, one place on (as bgp/rib/prefix-map.ts, b493af6).
 * With a step of 1, the keys of a group whose home group was taken spilled slot by slot into the next groups and
 * filled them whole, so clusters grew group by group (~20 probes an insert at 1M consecutive prefixes, counted in
 * the RIB's map); with 9 they spread one to a group. 9 is odd, so a key's probes visit every slot before repeating.
 */
const PROBE = 9;
/** #remove's answer for a key that is not there (a stored value may itself be undefined) */
const MISSING: unique symbol = Symbol('missing');

interface Slots<T> {
  cap: number;
  /** 32 - log2(cap): the hash's top bits pick the group */
  shift: number;
  /** this table's hash seed (seedOf) */
  seed: number;
  addr: Uint32Array;
  len: Uint8Array;
  vals: (T | undefined)[];
}

/** Per process, so the hash order of one run tells nothing of another's (and nobody outside can aim at a slot). */
const PROCESS_SEED = (Math.random() * 0x100000000) | 0;
let tables = 0;
/**
 * A seed per table (and per resize of it). Walking one table visits its keys in its hash order; inserting them in
 * that order into a table hashed with the same seed piles them into one long probe run (bgp/rib/prefix-map.ts saw
 * a 100k-prefix peer-down take seconds that way). Here that is markBgpStale's swap, resync's walks and the moves
 * of an incremental resize.
 */
const seedOf = (): number => Math.imul(++tables, 0x9e3779b1) ^ PROCESS_SEED;

const slots = <T>(cap: number): Slots<T> => ({
  cap, shift: 32 - Math.log2(cap), seed: seedOf(),
  addr: new Uint32Array(cap), len: new Uint8Array(cap).fill(EMPTY), vals: new Array<T | undefined>(cap),
});

/**
 * Home slot of (n, len), as bgp/rib/prefix-map.ts places the RIB's keys: prefixes of one length that are neighbours
 * in the address space (index = the network bits) share a group of 8 slots, so a burst of consecutive prefixes (an
 * UPDATE's NLRI, a peer's table in order) touches a few cache lines instead of missing once per prefix in each of
 * the three arrays; the group number and the length are mixed (murmur3's finaliser) and the TOP bits taken. The
 * hash this replaces multiplied and kept the low bits, which depend only on the low bits of the address: every
 * /24 (low 8 bits zero) landed on one slot in 256, so probe runs were ~100 long at a full table (1M /24s: insert
 * 1.05 s, delete 0.62 s, vs 0.37 / 0.21 s for /32s; /22s 3.0 / 1.5 s; a peer-down's two deletes per prefix, the
 * route table's and fib/'s, were ~3 s of the main thread's ~7).
 */
const slotOf = (n: number, len: number, s: Slots<unknown>): number => {
  const index = len === 0 ? 0 : n >>> (32 - len);
  let h = ((index >>> 3) ^ s.seed ^ Math.imul(len, 0x27d4eb2f)) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  // the place in the group is permuted by the hash too, so keys 8 apart (one per group) do not all start at one place
  return ((h >>> s.shift) & ~7) | ((index ^ h) & 7);
};

/** Index of (n, len) in s, or -1. */
function find<T>(s: Slots<T>, n: number, len: number): number {
  const mask = s.cap - 1;
  for (let j = slotOf(n, len, s); ; j = (j + PROBE) & mask) {
    const l = s.len[j]!;
    if (l === EMPTY) return -1;
    if (l === len && s.addr[j] === n) return j;
  }
}

export class V4Index<T> {
  /** where inserts go */
  #cur: Slots<T> = slots(MIN_CAP);
  /** live entries in #cur */
  #size = 0;
  /** live + tombstones of #cur: what probing has to walk over */
  #used = 0;
  /** the arrays being moved out of during a resize (undefined: none), their live entries, the next slot to move */
  #old: Slots<T> | undefined;
  #oldLive = 0;
  #oldPos = 0;
  /** open iterators: entries do not move while one is open (it would miss them), and shrinking waits */
  #iterating = 0;

  get size(): number {
    return this.#size + this.#oldLive;
  }

  get(n: number, len: number): T | undefined {
    const c = this.#cur;
    const j = find(c, n, len);
    if (j >= 0) return c.vals[j];
    const o = this.#old;
    if (o === undefined) return undefined;
    const i = find(o, n, len);
    return i >= 0 ? o.vals[i] : undefined;
  }

  set(n: number, len: number, v: T): void {
    this.swap(n, len, v);
  }

  /** Before an insert: grow (or clean out tombstones) when one more key would pass 1/2 load, else move a step of #old. */
  #roomForOne(): void {
    if ((this.#used + this.#oldLive + 1) * 2 > this.#cur.cap) {
      const total = this.size;
      this.#resize(total * 4 > this.#cur.cap ? this.#cur.cap * 2 : this.#cur.cap);
    } else this.#step();
  }

  /** Set and return the previous value: one probe where get + set take two (the route table's hot path). */
  swap(n: number, len: number, v: T): T | undefined {
    this.#roomForOne();
    const c = this.#cur;
    const mask = c.cap - 1;
    let tomb = -1;
    for (let j = slotOf(n, len, c); ; j = (j + PROBE) & mask) {
      const l = c.len[j]!;
      if (l === EMPTY) {
        const o = this.#old;
        if (o !== undefined) {
          const i = find(o, n, len);
          if (i >= 0) {
            const prev = o.vals[i];
            if (this.#iterating > 0) {
              o.vals[i] = v; // in place: an open iterator may still have to visit it
              return prev;
            }
            o.len[i] = TOMB;
            o.vals[i] = undefined;
            this.#oldLive--;
            this.#size++;
            this.#put(c, j, tomb, n, len, v);
            return prev;
          }
        }
        this.#size++;
        this.#put(c, j, tomb, n, len, v);
        return undefined;
      }
      if (l === TOMB) {
        if (tomb < 0) tomb = j;
      } else if (l === len && c.addr[j] === n) {
        const prev = c.vals[j];
        c.vals[j] = v;
        return prev;
      }
    }
  }

  /**
   * The value of (n, len), or, when there is none, `make(n, len)` stored there: one probe where get and then set
   * take two (fib/'s entry for a new prefix, once per route of a full table).
   */
  getOr(n: number, len: number, make: (n: number, len: number) => T): T {
    this.#roomForOne();
    const c = this.#cur;
    const mask = c.cap - 1;
    let tomb = -1;
    for (let j = slotOf(n, len, c); ; j = (j + PROBE) & mask) {
      const l = c.len[j]!;
      if (l === EMPTY) {
        const o = this.#old;
        if (o !== undefined) {
          const i = find(o, n, len);
          if (i >= 0) return o.vals[i] as T; // stays where it is: #step moves it
        }
        const v = make(n, len);
        this.#size++;
        this.#put(c, j, tomb, n, len, v);
        return v;
      }
      if (l === TOMB) {
        if (tomb < 0) tomb = j;
      } else if (l === len && c.addr[j] === n) return c.vals[j] as T;
    }
  }

  /** Store at the first tombstone seen, else at the empty slot j (which then counts as used). */
  #put(c: Slots<T>, j: number, tomb: number, n: number, len: number, v: T | undefined): void {
    const at = tomb >= 0 ? tomb : j;
    if (tomb < 0) this.#used++;
    c.addr[at] = n;
    c.len[at] = len;
    c.vals[at] = v;
  }

  delete(n: number, len: number): boolean {
    return this.#remove(n, len) !== MISSING;
  }

  /** Remove and return the value (undefined: there was none), in one probe where get + delete take two. */
  take(n: number, len: number): T | undefined {
    const v = this.#remove(n, len);
    return v === MISSING ? undefined : v;
  }

  #remove(n: number, len: number): T | typeof MISSING {
    this.#step();
    const c = this.#cur;
    const j = find(c, n, len);
    let v: T;
    if (j >= 0) {
      v = c.vals[j] as T;
      c.len[j] = TOMB;
      c.vals[j] = undefined;
      this.#size--;
    } else if (this.#old !== undefined) {
      const o = this.#old;
      const i = find(o, n, len);
      if (i < 0) return MISSING;
      v = o.vals[i] as T;
      o.len[i] = TOMB;
      o.vals[i] = undefined;
      this.#oldLive--;
    } else return MISSING;
    // give memory back after a mass withdrawal (memory must stay flat across install/withdraw cycles)
    if (this.#iterating === 0 && this.#old === undefined && c.cap > MIN_CAP && this.#size * 8 < c.cap) this.#resize(Math.max(MIN_CAP, c.cap / 4));
    return v;
  }

  *values(): IterableIterator<T> {
    this.#iterating++;
    try {
      // the arrays as they are now: a resize while the walk pauses leaves them as they were (a snapshot), and
      // nothing moves between them while the walk is open
      for (const s of this.#old === undefined ? [this.#cur] : [this.#old, this.#cur]) {
        const vals = s.vals;
        const lens = s.len;
        for (let j = 0; j < lens.length; j++) {
          if (lens[j]! < TOMB) yield vals[j]!;
        }
      }
    } finally {
      this.#iterating--;
    }
  }

  /** Every entry with its key (address as uint32, length). The table must not change during the walk. */
  forEach(fn: (n: number, len: number, v: T) => void): void {
    this.#iterating++;
    try {
      for (const s of this.#old === undefined ? [this.#cur] : [this.#old, this.#cur]) {
        const vals = s.vals;
        const lens = s.len;
        const addrs = s.addr;
        for (let j = 0; j < lens.length; j++) {
          const l = lens[j]!;
          if (l < TOMB) fn(addrs[j]!, l, vals[j]!);
        }
      }
    } finally {
      this.#iterating--;
    }
  }

  /**
   * Start moving into new arrays of `cap` slots. When a move is still under way, or an iterator is open, every
   * entry moves now into fresh arrays (an open iterator keeps walking the arrays it started with, which no longer
   * change).
   */
  #resize(cap: number): void {
    if (this.#old !== undefined || this.#iterating > 0) {
      const all: Slots<T>[] = this.#old === undefined ? [this.#cur] : [this.#old, this.#cur];
      const fresh = slots<T>(cap);
      let size = 0;
      for (const s of all) {
        for (let i = 0; i < s.cap; i++) {
          const l = s.len[i]!;
          if (l >= TOMB) continue;
          this.#put(fresh, this.#emptyIn(fresh, s.addr[i]!, l), -1, s.addr[i]!, l, s.vals[i]);
          size++;
        }
      }
      this.#cur = fresh;
      this.#old = undefined;
      this.#oldLive = 0;
      this.#size = size;
      this.#used = size;
      return;
    }
    this.#old = this.#cur;
    this.#oldLive = this.#size;
    this.#oldPos = 0;
    this.#cur = slots(cap);
    this.#size = 0;
    this.#used = 0;
    this.#step();
  }

  /** The first empty slot of (n, len)'s probe sequence in s (s holds no tombstones, or they may stay). */
  #emptyIn(s: Slots<T>, n: number, len: number): number {
    const mask = s.cap - 1;
    let j = slotOf(n, len, s);
    while (s.len[j] !== EMPTY) j = (j + PROBE) & mask;
    return j;
  }

  /** Move up to STEP slots of the old arrays (none while an iterator is open). */
  #step(): void {
    const o = this.#old;
    if (o === undefined || this.#iterating > 0) return;
    const c = this.#cur;
    const end = Math.min(o.cap, this.#oldPos + STEP);
    for (let i = this.#oldPos; i < end; i++) {
      const l = o.len[i]!;
      if (l >= TOMB) continue;
      const n = o.addr[i]!;
      // not in #cur (an entry lives in one of the two), so the first free slot of its sequence will do
      const mask = c.cap - 1;
      let j = slotOf(n, l, c);
      let tomb = -1;
      for (; c.len[j] !== EMPTY; j = (j + PROBE) & mask) if (tomb < 0 && c.len[j] === TOMB) tomb = j;
      this.#put(c, j, tomb, n, l, o.vals[i]);
      o.len[i] = TOMB;
      o.vals[i] = undefined;
      this.#oldLive--;
      this.#size++;
    }
    this.#oldPos = end;
    if (end >= o.cap) {
      this.#old = undefined;
      this.#oldLive = 0;
    }
  }
}
