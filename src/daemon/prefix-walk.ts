// A walk over a prefix table that never holds the event loop for long, in prefix order.
//
// The RIB keeps its prefixes in a hash table (bgp/rib/prefix-map.ts), which has no order, and a million of them
// cannot be sorted in one go without stopping the daemon for a quarter of a second. So a walk first takes a
// snapshot of the keys that pass its key filter, a slice at a time: keys go into runs of RUN_SIZE, each run sorted
// as soon as it fills (a few milliseconds each). Then it hands keys out in order by merging the runs (a heap over
// the runs' heads), again a slice at a time. The snapshot costs 8 bytes per IPv4 prefix (a 1M-route walk: 8 MB);
// how many walks run at once is bounded by the control server (src/control/stream.ts).
//
// The table may change while a walk runs. A walk reports each prefix at most once, in order; a prefix added after
// the snapshot passed its place is not reported, and one removed before its row is made is skipped by the caller
// (its lookup finds nothing). This is the fuzzy snapshot OpenBGPD's resumable RIB dumps give
// (usr.sbin/bgpd/rde_rib.c), and what `birdc show route` shows on a busy table.
import { parseIpv6, prefix6Addr, prefix6Len, type Prefix4, type Prefix6 } from '../../bgp/index.js';
import type { TurnScheduler } from '../control/stream.js';

export type PrefixKey = Prefix4 | Prefix6;

/** keys per sorted run: one run sorts in well under a slice */
const RUN_SIZE = 16_384;

/** IPv6 keys sort by their bytes, then length: this string does that with a plain comparison. */
export function v6SortKey(p: Prefix6): string {
  const b = parseIpv6(prefix6Addr(p));
  return `${Buffer.from(b).toString('hex')}${prefix6Len(p).toString().padStart(3, '0')}`;
}

/** Orders keys the way `skeinctl routes` lists them: IPv4 before IPv6, then by address, then by length. */
export function comparePrefixKeys(a: PrefixKey, b: PrefixKey): number {
  if (typeof a === 'number') return typeof b === 'number' ? a - b : -1;
  if (typeof b === 'number') return 1;
  const x = v6SortKey(a);
  const y = v6SortKey(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A prefix as the key filter sees it: IPv4 as (address, length), IPv6 as bytes. */
export interface KeyRange {
  family: 4 | 6;
  /** IPv4: the network address as uint32 */
  addr4: number;
  /** IPv6: the 16 address bytes */
  addr6: Uint8Array;
  len: number;
}

/** Does the key lie inside `r` (same family, at least as long, same leading bits)? */
export function keyWithin(k: PrefixKey, r: KeyRange): boolean {
  if (typeof k === 'number') {
    if (r.family !== 4) return false;
    const len = k % 64;
    if (len < r.len) return false;
    const addr = Math.floor(k / 64);
    const mask = r.len === 0 ? 0 : (0xffffffff << (32 - r.len)) >>> 0;
    return ((addr & mask) >>> 0) === r.addr4;
  }
  if (r.family !== 6) return false;
  if (prefix6Len(k) < r.len) return false;
  const b = parseIpv6(prefix6Addr(k));
  for (let i = 0; i < r.len; i++) {
    const bit = 0x80 >> (i & 7);
    if (((b[i >> 3] as number) & bit) !== ((r.addr6[i >> 3] as number) & bit)) return false;
  }
  return true;
}

/** Sorted runs of a table's keys: read-only once made, so walks can share them (SharedRuns). */
interface Runs {
  readonly v4: Float64Array[];
  readonly v6: { key: string; p: Prefix6 }[][];
  readonly size: number;
}

/**
 * The sorted runs of an unfiltered walk over one table, shared by every walk that starts while the table's key set
 * has not changed (a version the table gives, RibCore.keySetVersion). Without it each of 16 concurrent dumps of a
 * 1M-route Loc-RIB scanned and sorted the whole table itself, in its share of the time slices, before its first
 * row: 4–15 s to the first row (bench/control.ts, issue 15). The first walk makes the runs; the others wait for
 * them without taking slices. A walk that gives up while making them leaves the next one to start again.
 */
export class SharedRuns {
  #version = -1;
  #runs: Promise<Runs | null> | null = null;

  /** The runs for this version: made by `make` unless a walk made (or is making) them already. */
  async get(version: number, make: () => Promise<Runs | null>): Promise<Runs | null> {
    for (let tries = 0; tries < 3; tries++) {
      if (this.#version !== version || this.#runs === null) {
        this.#version = version;
        this.#runs = make();
        const r = await this.#runs;
        if (r === null && this.#version === version) this.#runs = null;
        return r;
      }
      const r = await this.#runs;
      if (r !== null) return r;
      // the walk that was making them gave up: this one makes them (next round)
      if (this.#version === version) this.#runs = null;
    }
    return make();
  }
}

export interface WalkOptions {
  /** only keys inside this prefix (`--longer`, `--prefix-within`) */
  within?: KeyRange;
  /** only keys after this one in walk order (paging: `--after`) */
  after?: PrefixKey;
  /** only this family */
  family?: 4 | 6;
  /** share the sorted runs with other unfiltered walks of the same table version (ignored with a filter) */
  shared?: { readonly runs: SharedRuns; readonly version: number };
}

class Heap {
  readonly #items: number[] = [];
  constructor(readonly less: (a: number, b: number) => boolean) {}
  get size(): number {
    return this.#items.length;
  }
  peek(): number | undefined {
    return this.#items[0];
  }
  push(x: number): void {
    const a = this.#items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): number | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

/**
 * A sorted, resumable walk. `prepare()` takes the snapshot (awaiting the scheduler between slices); then `next()`
 * hands out keys in order, synchronously, for the caller to slice its own work around.
 */
export class PrefixWalk {
  readonly #source: () => Iterator<PrefixKey>;
  readonly #o: WalkOptions;
  #runs4: Float64Array[] = [];
  readonly #pos4: number[] = [];
  #runs6: { key: string; p: Prefix6 }[][] = [];
  readonly #pos6: number[] = [];
  /** the runs are shared with other walks: never emptied here */
  #sharedRuns = false;
  #heap4: Heap | undefined;
  #heap6: Heap | undefined;
  #afterSort6: string | undefined;
  /** keys in the snapshot */
  size = 0;

  constructor(source: () => Iterator<PrefixKey>, o: WalkOptions = {}) {
    this.#source = source;
    this.#o = o;
    if (typeof o.after === 'string') this.#afterSort6 = v6SortKey(o.after);
  }

  #keep(k: PrefixKey): boolean {
    const o = this.#o;
    if (o.family !== undefined && (typeof k === 'number' ? 4 : 6) !== o.family) return false;
    if (o.after !== undefined) {
      if (typeof k === 'number') {
        if (typeof o.after === 'number' && k <= o.after) return false;
      } else if (typeof o.after === 'string' && v6SortKey(k) <= this.#afterSort6!) return false;
    }
    if (o.within !== undefined && !keyWithin(k, o.within)) return false;
    return true;
  }

  /** Takes the snapshot, a slice at a time (or shares one: WalkOptions.shared); false when `signal` aborted first. */
  async prepare(scheduler: TurnScheduler, signal?: AbortSignal): Promise<boolean> {
    const o = this.#o;
    if (o.shared !== undefined && o.within === undefined && o.after === undefined && o.family === undefined) {
      const runs = await o.shared.runs.get(o.shared.version, async () => {
        const own = new PrefixWalk(this.#source);
        if (!(await own.#scan(scheduler, signal))) return null;
        return { v4: own.#runs4, v6: own.#runs6, size: own.size };
      });
      if (runs === null || signal?.aborted) return false;
      this.#runs4 = runs.v4;
      this.#runs6 = runs.v6;
      this.size = runs.size;
      this.#sharedRuns = true;
      this.#heaps();
      return true;
    }
    if (!(await this.#scan(scheduler, signal))) return false;
    this.#heaps();
    return true;
  }

  /** The keys that pass the filter into sorted runs, a slice at a time; false when `signal` aborted first. */
  async #scan(scheduler: TurnScheduler, signal?: AbortSignal): Promise<boolean> {
    const it = this.#source();
    let run4 = new Float64Array(RUN_SIZE);
    let n4 = 0;
    let run6: { key: string; p: Prefix6 }[] = [];
    const flush4 = (): void => {
      if (n4 === 0) return;
      const run = run4.subarray(0, n4).sort();
      this.#runs4.push(n4 === RUN_SIZE ? run4 : run.slice());
      run4 = new Float64Array(RUN_SIZE);
      n4 = 0;
    };
    const flush6 = (): void => {
      if (run6.length === 0) return;
      run6.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      this.#runs6.push(run6);
      run6 = [];
    };
    for (let done = false; !done;) {
      const slice = await scheduler.slice();
      if (signal?.aborted) return false;
      for (let i = 0; ; i++) {
        // the clock is read every 256 keys: a key costs well under a microsecond
        if ((i & 255) === 0 && slice.over()) break;
        const r = it.next();
        if (r.done) {
          done = true;
          break;
        }
        const k = r.value;
        if (!this.#keep(k)) continue;
        this.size++;
        if (typeof k === 'number') {
          run4[n4++] = k;
          if (n4 === RUN_SIZE) flush4();
        } else {
          run6.push({ key: v6SortKey(k), p: k });
          if (run6.length === RUN_SIZE / 4) flush6();
        }
      }
    }
    flush4();
    flush6();
    return true;
  }

  /** The merge's heaps over the runs' heads, each walk its own (positions too). */
  #heaps(): void {
    this.#heap4 = new Heap((a, b) => (this.#runs4[a]![this.#pos4[a]!]!) < (this.#runs4[b]![this.#pos4[b]!]!));
    this.#runs4.forEach((_, i) => {
      this.#pos4.push(0);
      this.#heap4!.push(i);
    });
    this.#heap6 = new Heap((a, b) => this.#runs6[a]![this.#pos6[a]!]!.key < this.#runs6[b]![this.#pos6[b]!]!.key);
    this.#runs6.forEach((_, i) => {
      this.#pos6.push(0);
      this.#heap6!.push(i);
    });
  }

  /** The next key in order; undefined at the end. */
  next(): PrefixKey | undefined {
    const h4 = this.#heap4;
    if (h4 === undefined) throw new Error('PrefixWalk.next() before prepare()');
    if (h4.size > 0) {
      const i = h4.pop()!;
      const run = this.#runs4[i]!;
      const k = run[this.#pos4[i]!]!;
      if (++this.#pos4[i]! < run.length) h4.push(i);
      else if (!this.#sharedRuns) this.#runs4[i] = new Float64Array(0); // a finished run's memory goes back at once
      return k;
    }
    const h6 = this.#heap6!;
    if (h6.size === 0) return undefined;
    const i = h6.pop()!;
    const run = this.#runs6[i]!;
    const k = run[this.#pos6[i]!]!.p;
    if (++this.#pos6[i]! < run.length) h6.push(i);
    else if (!this.#sharedRuns) this.#runs6[i] = [];
    return k;
  }
}

/** What a paged walk found: rows matched, and the last prefix given when the limit cut the page short. */
export interface Page {
  matched: number;
  /** set when rows are left past the limit: the next page starts after it (--after) */
  next?: PrefixKey;
}

export interface PageOptions<R> {
  /** rows to match at most (Infinity: all) */
  limit: number;
  /** the row of a prefix, null to leave it out (gone since the snapshot, or filtered) */
  row: (k: PrefixKey) => R | null;
  /** count only: rows are matched, none is handed out */
  countOnly: boolean;
  maxBatch: number;
  /** with size: a batch also ends once its rows' sizes add up to this */
  maxBytes?: number;
  size?: (row: R) => number;
}

/**
 * The rows of a walk in batches, for a streamed answer (skeinctl routes and fib). A batch ends at maxBatch rows
 * (or maxBytes), or when the scheduler's slice is over; a batch written out does not end the slice (the consumer
 * writes it before asking for more, so that write is counted against this slice). Past `limit` matched rows the
 * page ends, and page.next names the last prefix given when anything is left. Stops when signal aborts.
 */
export async function* pagedRows<R>(walk: PrefixWalk, sched: TurnScheduler, signal: AbortSignal, o: PageOptions<R>, page: Page): AsyncGenerator<R[]> {
  if (!(await walk.prepare(sched, signal))) return;
  let last: PrefixKey | undefined;
  let slice = await sched.slice();
  for (let done = false; !done;) {
    if (slice.over()) slice = await sched.slice();
    if (signal.aborted) return;
    const batch: R[] = [];
    let bytes = 0;
    for (let i = 0; ; i++) {
      if ((i & 15) === 0 && slice.over()) break;
      if (batch.length >= o.maxBatch || (o.maxBytes !== undefined && bytes >= o.maxBytes)) break;
      if (page.matched >= o.limit) {
        // a full page: say where the next one starts, if anything is left
        if (walk.next() !== undefined && last !== undefined) page.next = last;
        done = true;
        break;
      }
      const k = walk.next();
      if (k === undefined) {
        done = true;
        break;
      }
      const row = o.row(k);
      if (row === null) continue;
      page.matched++;
      last = k;
      if (o.countOnly) continue;
      batch.push(row);
      if (o.size !== undefined) bytes += o.size(row);
    }
    if (batch.length > 0) yield batch;
  }
}
