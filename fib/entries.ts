// The desired-state table: one Entry per (family, table, metric, prefix) that fib/ knows of, whether skein wants
// it, the kernel holds it, or both. An Entry is the only per-route object; the machines around it (writer, resync,
// kernel events, retries) read and change its fields, and this file only finds, creates and drops entries.
// IPv4 entries live in a V4Index keyed by numbers (no allocation per route), IPv6 ones in a Map keyed by a short
// string of the masked address bytes and the length.
import { AF_INET } from './constants.js';
import type { RouteScan } from './codec.js';
import { FibInputError, type Spec } from './targets.js';
import type { Family, KernelHop, KernelRoute, Placement, RouteFailure } from './types.js';
import { V4Index } from './v4index.js';

// Entry flags
export const QUEUED = 1;
export const INFLIGHT = 2;
/** another writer changed the route while our write was in flight: the event, not our ACK, is the truth */
export const EVENT_SEEN = 4;
/** the caller withdrew this prefix: delete even before the sweep */
export const WITHDRAWN = 8;
/** the caller set this prefix during this run (so a sweep keeps it) */
export const WANTED = 16;

export interface Table {
  readonly family: Family;
  readonly table: number;
  readonly metric: number;
  /** IPv4 entries by (address, length) */
  readonly v4: V4Index<Entry>;
  /** IPv6 entries by v6Key */
  readonly v6: Map<string, Entry>;
  /** a new IPv4 entry of this table (V4Index.getOr's factory, made once per table) */
  readonly make4: (n: number, len: number) => Entry;
}

export interface Entry {
  readonly tbl: Table;
  /** IPv4 destination as an unsigned 32-bit number (0 for IPv6) */
  readonly v4: number;
  /** IPv6 destination bytes (undefined for IPv4) */
  readonly v6: Uint8Array | undefined;
  readonly len: number;
  want: Spec | null;
  /** what the kernel holds: the wanted Spec when it matches, else the observed shape */
  have: Spec | Shape | null;
  flags: number;
  /** clock value when `have` was last set from an ACK or an event */
  stamp: number;
  /** dump generation in which the entry was last seen */
  seen: number;
  /** what the in-flight write sends (null for a delete) */
  sent: Spec | null;
  /** the nexthop object id the kernel route uses (RTA_NH_ID), 0 for a plain route or none */
  nhid: number;
  fail: RouteFailure | undefined;
}

/** A kernel route's content without its prefix: interned, so a million adopted routes share a few. */
export interface Shape {
  readonly type: number;
  readonly scope: number;
  readonly hops: readonly KernelHop[];
}

export const isSpec = (h: Spec | Shape | null): h is Spec => h !== null && 'key' in h;

export const v4Number = (a: Uint8Array, len: number): number => {
  const n = ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;
  return len === 0 ? 0 : (n & (0xffffffff << (32 - len))) >>> 0;
};
export const v4Bytes = (n: number): Uint8Array => Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
/** Mask `a` to `len` bits into `out` (16 bytes). */
const v6MaskInto = (a: Uint8Array, len: number, out: Uint8Array): Uint8Array => {
  for (let i = 0; i < 16; i++) {
    const bits = len - i * 8;
    out[i] = bits >= 8 ? a[i]! : bits <= 0 ? 0 : a[i]! & (0xff << (8 - bits)) & 0xff;
  }
  return out;
};
const v6Scratch = new Uint8Array(16);
/** Map key of an IPv6 prefix: 16 address bytes and the length as char codes (as latin1 text of the bytes would be). */
const v6Key = (a: Uint8Array, len: number): string => String.fromCharCode(
  a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!, a[9]!, a[10]!, a[11]!, a[12]!, a[13]!, a[14]!, a[15]!, len);

function newEntry(tbl: Table, v4: number, v6: Uint8Array | undefined, len: number): Entry {
  return { tbl, v4, v6, len, want: null, have: null, flags: 0, stamp: 0, seen: 0, sent: null, nhid: 0, fail: undefined };
}

export function entriesOf(t: Table): IterableIterator<Entry> {
  return t.family === 4 ? t.v4.values() : t.v6.values();
}

export function checkPrefix(family: Family, addr: Uint8Array, len: number): void {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the library's input check: a caller in plain JS can pass anything
  if (family !== 4 && family !== 6) throw new FibInputError(`family must be 4 or 6, not ${String(family)}`);
  const bits = family === 4 ? 32 : 128;
  if (!(addr instanceof Uint8Array) || addr.length < bits / 8) throw new FibInputError(`address must be ${bits / 8} bytes`);
  if (!Number.isInteger(len) || len < 0 || len > bits) throw new FibInputError(`prefix length must be 0..${bits}`);
}

/** Every entry by table, plus the set of tables skein manages (a route in any other table is never touched). */
export class RouteTable {
  readonly tables = new Map<string, Table>();
  /** tables skein writes to: the default one and every table a route was placed in */
  readonly managed = new Set<number>();
  #lastTable: Table | undefined;
  #recentTable: Table | undefined;

  readonly defaultTable: number;
  readonly defaultMetric: number;

  constructor(defaultTable: number, defaultMetric: number) {
    this.defaultTable = defaultTable;
    this.defaultMetric = defaultMetric;
    this.managed.add(defaultTable);
  }

  /** routes held, every table */
  size(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.v4.size + t.v6.size;
    return n;
  }

  *all(): IterableIterator<Entry> {
    for (const t of this.tables.values()) yield* entriesOf(t);
  }

  tableFor(family: Family, table: number, metric: number, create: boolean): Table | undefined {
    const last = this.#recentTable; // nearly every call is for the same table as the one before
    if (last !== undefined && last.family === family && last.table === table && last.metric === metric) return last;
    const key = `${family}:${table}:${metric}`;
    let t = this.tables.get(key);
    if (t === undefined && create) {
      const made: Table = { family, table, metric, v4: new V4Index(), v6: new Map(), make4: (n, len) => newEntry(made, n, undefined, len) };
      t = made;
      this.tables.set(key, t);
      this.managed.add(table);
    }
    if (t !== undefined) this.#recentTable = t;
    return t;
  }

  /** The entry of a caller's prefix; throws FibInputError on a bad prefix, table or metric. */
  entry(family: Family, addr: Uint8Array, len: number, where: Placement | undefined, create: boolean): Entry | undefined {
    checkPrefix(family, addr, len);
    const table = where?.table ?? this.defaultTable;
    if (!Number.isInteger(table) || table < 1 || table > 0xffffffff || table === 255) throw new FibInputError(`bad table ${table}`);
    let metric = where?.metric ?? this.defaultMetric;
    if (!Number.isInteger(metric) || metric < 0 || metric > 0xffffffff) throw new FibInputError(`bad metric ${metric}`);
    if (family === 6 && metric === 0) metric = 1024; // the kernel stores IPv6 metric 0 as 1024 (IP6_RT_PRIO_USER)
    const t = this.tableFor(family, table, metric, create);
    if (t === undefined) return undefined;
    if (family === 4) {
      const n = v4Number(addr, len);
      return create ? t.v4.getOr(n, len, t.make4) : t.v4.get(n, len);
    }
    const a = v6MaskInto(addr, len, v6Scratch);
    const key = v6Key(a, len);
    let e = t.v6.get(key);
    if (e === undefined && create) {
      e = newEntry(t, 0, Uint8Array.from(a), len);
      t.v6.set(key, e);
    }
    return e;
  }

  /** The entry of a route the kernel reported (dump or event). */
  entryForKernel(k: KernelRoute, create: boolean): Entry | undefined {
    const t = this.tableFor(k.family, k.table, k.metric, create);
    if (t === undefined) return undefined;
    if (k.family === 4) {
      const n = v4Number(k.addr, k.len);
      return create ? t.v4.getOr(n, k.len, t.make4) : t.v4.get(n, k.len);
    }
    const key = v6Key(k.addr, k.len);
    let e = t.v6.get(key);
    if (e === undefined && create) t.v6.set(key, (e = newEntry(t, 0, Uint8Array.from(k.addr), k.len)));
    return e;
  }

  /** The existing entry a scanned kernel route belongs to, without creating anything. */
  entryForScan(b: Buffer, sc: RouteScan): Entry | undefined {
    if (!this.managed.has(sc.table)) return undefined;
    const family: Family = sc.family === AF_INET ? 4 : 6;
    let t = this.#lastTable;
    if (t === undefined || t.family !== family || t.table !== sc.table || t.metric !== sc.metric) {
      t = this.tableFor(family, sc.table, sc.metric, false);
      if (t === undefined) return undefined;
      this.#lastTable = t;
    }
    if (family === 4) return t.v4.get(sc.dstOff ? b.readUInt32BE(sc.dstOff) : 0, sc.dstLen);
    if (!sc.dstOff) return t.v6.get('\0'.repeat(16) + String.fromCharCode(sc.dstLen));
    return t.v6.get(b.toString('latin1', sc.dstOff, sc.dstOff + 16) + String.fromCharCode(sc.dstLen));
  }

  /** The entry is the one its table holds for its prefix (not one dropped and since replaced by a new entry). */
  holds(e: Entry): boolean {
    const t = e.tbl;
    return (t.family === 4 ? t.v4.get(e.v4, e.len) : t.v6.get(v6Key(e.v6!, e.len))) === e;
  }

  /**
   * Drop an entry from its table (the caller checked that nothing refers to it any more). An entry already dropped
   * (a walk that paused may still hold it) leaves a newer entry of the same prefix alone.
   */
  drop(e: Entry): void {
    const t = e.tbl;
    if (t.family === 4) {
      if (t.v4.get(e.v4, e.len) === e) t.v4.delete(e.v4, e.len);
    } else {
      const k = v6Key(e.v6!, e.len);
      if (t.v6.get(k) === e) t.v6.delete(k);
    }
  }
}
