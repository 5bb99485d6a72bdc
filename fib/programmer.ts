// The FIB programmer: keeps the kernel's routes of skein's protocol equal to a
// desired state given as a stream of changes.
//
// Per prefix it knows what is wanted (`want`, an interned Spec) and what the
// kernel holds (`have`), learned from three sources, newest wins:
//  - acknowledgements of its own batched writes,
//  - route events of other writers (its own notifications are recognised by
//    the sender port the kernel copies into them, and skipped),
//  - full dumps (start-up adoption, after an overrun, after link changes that
//    make the kernel flush routes without notifying, after a lost ACK).
// A per-entry stamp orders these, so a dump that started before an
// acknowledgement or event never overwrites what they said.
//
// Writes: add = NLM_F_CREATE|NLM_F_EXCL (never clobbers another protocol's
// route at the same prefix and metric), change = NLM_F_CREATE|NLM_F_REPLACE
// (atomic: no moment without a route), delete = RTM_DELROUTE carrying skein's
// protocol number, which the kernel matches, so it can never remove another
// protocol's route (fib_table_delete / ip6_route_del compare rtm_protocol).
// Many messages go in one send; only the last asks for an ACK, failures are
// always reported per message with their sequence number (netlink_rcv_skb
// acks every message that fails), so a batch costs one reply plus one per error.
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { EventReaderConfig, EventReaderMessage } from './event-reader.js';
import { V4Index } from './v4index.js';
import { endianness } from 'node:os';
import type { RawNetlinkSocket, ErrnoException } from 'netlink';
import {
  AF_INET, AF_INET6, IFF_LOWER_UP, IFF_UP, IFINFOMSG_LEN, NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_OVERRUN, NLM_F_ACK,
  NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, RTM_DELLINK, RTM_DELROUTE, RTM_GETLINK, RTM_GETROUTE,
  RTM_NEWLINK, RTM_NEWROUTE, RTMSG_LEN, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_LINK, RTN_BLACKHOLE,
  RTN_UNICAST, RTN_UNSPEC, RTPROT_SKEIN, RT_SCOPE_NOWHERE, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN,
} from './constants.js';
import {
  type RouteScan, newRouteScan, parseLink, parseRoute, routeMessageSize, rtmProtocol, scanRoute, writeRouteMessage,
} from './codec.js';
import { BIG_READ, DumpError, describeErrno, dump, errnoCode, openSocket } from './kernel.js';
import { FibInputError, SpecTable, encodeSpec, fastMatch, kernelRouteOf, specMatches, type Spec } from './targets.js';
import type {
  BatchReport, Family, FibStats, KernelHop, KernelRoute, Placement, Prefix, ProgrammerOptions, RouteFailure, RouteView, Target,
} from './types.js';

// Entry flags
const QUEUED = 1;
const INFLIGHT = 2;
/** another writer changed the route while our write was in flight: the event, not our ACK, is the truth */
const EVENT_SEEN = 4;
/** the caller withdrew this prefix: delete even before the sweep */
const WITHDRAWN = 8;
/** the caller set this prefix during this run (so a sweep keeps it) */
const WANTED = 16;

const OP_NONE = 0;
const OP_ADD = 1;
const OP_REPLACE = 2;
const OP_DELETE = 3;

interface Table {
  readonly family: Family;
  readonly table: number;
  readonly metric: number;
  /** IPv4 entries by (address, length) */
  readonly v4: V4Index<Entry>;
  /** IPv6 entries by v6Key */
  readonly v6: Map<string, Entry>;
}

interface Entry {
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
  fail: RouteFailure | undefined;
}

/** A kernel route's content without its prefix: interned, so a million adopted routes share a few. */
interface Shape {
  readonly type: number;
  readonly scope: number;
  readonly hops: readonly KernelHop[];
}

const sameHop = (a: KernelHop, b: KernelHop): boolean => {
  if (a.ifindex !== b.ifindex || a.onlink !== b.onlink || a.weight !== b.weight || a.dead !== b.dead) return false;
  const x = a.gateway, y = b.gateway;
  if (x === undefined || y === undefined) return x === y;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
};
const sameShape = (s: Shape, k: KernelRoute): boolean =>
  s.type === k.type && s.scope === k.scope && s.hops.length === k.hops.length && s.hops.every((h, i) => sameHop(h, k.hops[i]!));

interface Batch {
  readonly firstSeq: number;
  readonly count: number;
  readonly entries: Entry[];
  readonly ops: Uint8Array;
  readonly errors: Map<number, number>;
  readonly sentAt: number;
  readonly queuedAt: number;
}

export interface ProgrammerEvents {
  batch: [BatchReport];
  failure: [RouteView];
  resync: [string];
  overrun: [string];
  warning: [Error];
}

const v4Number = (a: Uint8Array, len: number): number => {
  const n = ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;
  return len === 0 ? 0 : (n & (0xffffffff << (32 - len))) >>> 0;
};
const v4Bytes = (n: number): Uint8Array => Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
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

const isSpec = (h: Spec | Shape | null): h is Spec => h !== null && 'key' in h;

export class Programmer extends EventEmitter<ProgrammerEvents> {
  readonly protocol: number;
  readonly table: number;
  readonly metric: number;
  readonly #batchSize: number;
  readonly #maxInFlight: number;
  readonly #timeoutMs: number;
  readonly #retryMin: number;
  readonly #retryMax: number;
  readonly #resyncDelay: number;
  readonly #resyncMaxDefer: number;
  readonly #rcvbuf: number;

  readonly #specs = new SpecTable();
  readonly #tables = new Map<string, Table>();
  readonly #managed = new Set<number>();
  #cmd: RawNetlinkSocket | undefined;
  #events: Worker | undefined;
  #dumper: RawNetlinkSocket | undefined;
  #cmdPort = -1;
  #closed = false;
  #started = false;
  #synced = false;

  #queue: Entry[] = [];
  #queuedAt: number[] = [];
  #qhead = 0;
  readonly #inflight: Batch[] = [];
  #seq = 1;
  #clock = 0;
  #dumpGen = 0;
  #pumpScheduled = false;
  /** own adds/deletes acknowledged vs their notifications seen by the event reader */
  #selfExpected = 0;
  #selfSeen = 0;
  #paused = false;
  #pausedSince = 0;
  #pausedSeen = 0;
  readonly #maxBacklog = 4000;
  readonly #bulkThreshold: number;
  #bulk = false;
  #lastTable: Table | undefined;
  #recentTable: Table | undefined;
  #rejoining = false;

  readonly #failed = new Set<Entry>();
  #retryTimer: NodeJS.Timeout | undefined;
  #retryAt = Infinity;
  #timeoutTimer: NodeJS.Timeout | undefined;

  #resyncTimer: NodeJS.Timeout | undefined;
  #resyncing: Promise<void> | undefined;
  #resyncAgain = false;
  #resyncReasons: string[] = [];

  /** interfaces: index -> name/flags, name -> index; linkGen bumps on every change that matters */
  readonly #links = new Map<number, { name: string; flags: number }>();
  readonly #shapes: Shape[] = [];
  #dumping = false;
  /** performance.now() when a deferred resync was first asked for */
  #resyncSince = 0;
  readonly #byName = new Map<string, number>();
  #linkGen = 0;

  #waiters: (() => void)[] = [];
  #writeWaiters: (() => void)[] = [];
  readonly #counters = { add: 0, replace: 0, delete: 0, errors: 0, resyncs: 0, overruns: 0, repairs: 0 };

  constructor(opts: ProgrammerOptions = {}) {
    super();
    if (endianness() !== 'LE') throw new Error('fib/ encodes netlink in little-endian host order; this host is big-endian');
    this.protocol = checkInt('protocol', opts.protocol ?? RTPROT_SKEIN, 1, 255);
    this.table = checkInt('table', opts.table ?? RT_TABLE_MAIN, 1, 0xffffffff);
    this.metric = checkInt('metric', opts.metric ?? 0, 0, 0xffffffff);
    this.#batchSize = checkInt('batchSize', opts.batchSize ?? 1000, 1, 100_000);
    this.#maxInFlight = checkInt('maxInFlight', opts.maxInFlight ?? 8, 1, 1024);
    this.#timeoutMs = checkInt('requestTimeoutMs', opts.requestTimeoutMs ?? 5000, 1, 3_600_000);
    this.#retryMin = checkInt('retryMinMs', opts.retryMinMs ?? 250, 1, 3_600_000);
    this.#retryMax = checkInt('retryMaxMs', opts.retryMaxMs ?? 30_000, this.#retryMin, 3_600_000);
    this.#bulkThreshold = checkInt('bulkThreshold', opts.bulkThreshold ?? 20_000, 1, 1 << 30);
    this.#resyncDelay = checkInt('resyncDelayMs', opts.resyncDelayMs ?? 50, 0, 60_000);
    this.#resyncMaxDefer = checkInt('resyncMaxDeferMs', opts.resyncMaxDeferMs ?? 5000, 0, 600_000);
    this.#rcvbuf = checkInt('recvBufferSize', opts.recvBufferSize ?? 8 << 20, 65536, 1 << 30);
    this.#managed.add(this.table);
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Open the sockets, subscribe to link and route events, read the interfaces and then the kernel's routes once:
   * routes of skein's protocol in managed tables are adopted (kept, not removed) until markSynced().
   */
  async start(): Promise<void> {
    if (this.#started) throw new Error('Programmer already started');
    this.#started = true;
    try {
      await this.#open();
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async #open(): Promise<void> {
    this.#cmd = openSocket(this.#rcvbuf, 4 << 20, 16384);
    this.#cmdPort = this.#cmd.address().port;
    this.#cmd.on('message', (b) => this.#onReplies(b));
    this.#cmd.on('error', (e) => this.#onSocketError('requests', e));
    // subscribe before the first dump, so nothing that happens after the dump starts is missed
    const cfg: EventReaderConfig = {
      recvBufferSize: this.#rcvbuf, protocol: this.protocol, skipPort: this.#cmdPort,
      groups: [RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE],
      routeGroups: [RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE],
    };
    const worker = new Worker(new URL('./event-reader.js', import.meta.url), { workerData: cfg });
    this.#events = worker;
    await new Promise<void>((resolve, reject) => {
      const onExit = (code: number): void => reject(new Error(`fib event reader exited (${code}) before it was ready`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.on('message', (m: EventReaderMessage) => {
        if (m.kind === 'joined') this.#onJoined();
        else if (m.kind === 'ready') {
          worker.off('error', reject);
          worker.off('exit', onExit);
          resolve();
        } else if (m.kind === 'events') {
          this.#selfSeen = m.selfSeen;
          if (m.data) this.#onEvents(Buffer.from(m.data));
          if (this.#paused) this.#schedulePump();
        }
        else if (m.code === 'ENOBUFS') this.#overrun('events');
        else {
          this.emit('warning', new Error(`netlink event socket: ${m.message}`));
          this.#scheduleResync('event socket error');
        }
      });
    });
    worker.on('error', (err) => {
      if (this.#closed) return;
      this.emit('warning', new Error(`fib event reader failed: ${err.message}`, { cause: err }));
    });
    this.#dumper = openSocket(this.#rcvbuf, 1 << 16, BIG_READ);
    this.#dumper.on('error', () => { /* reported through the dump promise */ });
    this.#dumper.unref();
    await this.#runResync('start');
  }

  /** Close the sockets and stop timers. Routes stay in the kernel (a restart must not empty the table). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of [this.#retryTimer, this.#timeoutTimer, this.#resyncTimer]) if (t) clearTimeout(t);
    const reader = this.#events;
    if (reader) {
      // the reader closes its socket and exits by itself; terminate() while the binding is in a callback aborts
      const exited = new Promise<void>((resolve) => reader.once('exit', () => resolve()));
      reader.postMessage('close');
      const timer = setTimeout(() => void reader.terminate(), 2000);
      await exited;
      clearTimeout(timer);
    }
    for (const s of [this.#cmd, this.#dumper]) {
      try {
        s?.close();
      } catch {
        /* already closed */
      }
    }
    this.#inflight.length = 0;
    this.#wake();
  }

  // ---------------------------------------------------------------- desired state

  /** Want `prefix` to point at `target` (add, or replace in place). Throws FibInputError on malformed input. */
  set(family: Family, addr: Uint8Array, len: number, target: Target, where?: Placement): void {
    checkPrefix(family, addr, len); // before the target, whose checks depend on the family
    const spec = this.#specs.intern(family, target);
    const e = this.#entry(family, addr, len, where, true)!;
    e.flags = (e.flags | WANTED) & ~WITHDRAWN;
    if (e.want === spec) return;
    this.#specs.acquire(spec);
    if (e.want) this.#specs.release(e.want);
    e.want = spec;
    this.#clearFailure(e);
    this.#enqueue(e);
  }

  /** No longer want `prefix`: its route (if skein installed or adopted it) is deleted. */
  remove(family: Family, addr: Uint8Array, len: number, where?: Placement): void {
    const e = this.#entry(family, addr, len, where, false);
    if (e === undefined) return;
    e.flags = (e.flags | WITHDRAWN) & ~WANTED;
    if (e.want) this.#specs.release(e.want);
    e.want = null;
    this.#clearFailure(e);
    this.#enqueue(e);
  }

  /**
   * Send what is queued now rather than on the next turn of the event loop: a next hop BFD declared dead must
   * leave the kernel in the same turn that learned it (RFC 5882 §4.3). The usual batching and flow control apply.
   */
  writeNow(): void {
    if (this.#closed || !this.#cmd) return;
    this.#pump();
  }

  /** Apply a stream of changes: target null removes. */
  apply(changes: Iterable<{ prefix: Prefix; target: Target | null; where?: Placement }>): void {
    for (const c of changes) {
      if (c.target === null) this.remove(c.prefix.family, c.prefix.addr, c.prefix.len, c.where);
      else this.set(c.prefix.family, c.prefix.addr, c.prefix.len, c.target, c.where);
    }
  }

  /**
   * The desired state is complete (e.g. after graceful restart's End-of-RIB): adopted routes that were not set
   * again are removed. Resolves when the sweep and everything queued before it is programmed.
   */
  async markSynced(): Promise<void> {
    this.#synced = true;
    for (const t of this.#tables.values()) for (const e of entriesOf(t)) if (!e.want && e.have) this.#enqueue(e);
    await this.flush();
  }

  /**
   * Resolves once nothing is queued, in flight, or being dumped (failed routes waiting to retry don't count).
   * With 'writes' it resolves as soon as every queued change has been answered by the kernel, without waiting for
   * the verification dump that follows a bulk write.
   */
  flush(what: 'all' | 'writes' = 'all'): Promise<void> {
    if (what === 'writes') {
      if (this.#closed || this.#writesIdle()) return Promise.resolve();
      return new Promise((resolve) => this.#writeWaiters.push(resolve));
    }
    if (this.#idle()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  // ---------------------------------------------------------------- views

  stats(): FibStats {
    let desired = 0, installed = 0, inSync = 0, stale = 0, pending = 0;
    const failures: Record<string, number> = {};
    for (const t of this.#tables.values()) {
      for (const e of entriesOf(t)) {
        if (e.want) desired++;
        if (e.have) installed++;
        if (e.want && this.#matches(e)) inSync++;
        if (!e.want && e.have && !(e.flags & WITHDRAWN)) stale++;
        if (e.flags & (QUEUED | INFLIGHT)) pending++;
        if (e.fail) failures[e.fail.code] = (failures[e.fail.code] ?? 0) + 1;
      }
    }
    const c = this.#counters;
    return {
      desired, installed, inSync, stale, pending, failuresByReason: failures,
      sent: { add: c.add, replace: c.replace, delete: c.delete },
      errors: c.errors, resyncs: c.resyncs, overruns: c.overruns, repairs: c.repairs, synced: this.#synced,
    };
  }

  /** Desired vs kernel for one prefix. */
  lookup(family: Family, addr: Uint8Array, len: number, where?: Placement): RouteView | undefined {
    const e = this.#entry(family, addr, len, where, false);
    return e ? this.#view(e) : undefined;
  }

  /** Every prefix fib/ knows of (desired, adopted or failing). */
  *routes(): IterableIterator<RouteView> {
    for (const t of this.#tables.values()) for (const e of entriesOf(t)) yield this.#view(e);
  }

  /** Prefixes whose last attempt failed. */
  *failures(): IterableIterator<RouteView> {
    for (const e of this.#failed) yield this.#view(e);
  }

  /** Dump the kernel now and repair any difference (also runs by itself after overruns and link changes). */
  resync(reason = 'requested'): Promise<void> {
    return this.#runResync(reason);
  }

  // ---------------------------------------------------------------- entries

  #tableFor(family: Family, table: number, metric: number, create: boolean): Table | undefined {
    const last = this.#recentTable; // nearly every call is for the same table as the one before
    if (last !== undefined && last.family === family && last.table === table && last.metric === metric) return last;
    const key = `${family}:${table}:${metric}`;
    let t = this.#tables.get(key);
    if (t === undefined && create) {
      t = { family, table, metric, v4: new V4Index(), v6: new Map() };
      this.#tables.set(key, t);
      this.#managed.add(table);
    }
    if (t !== undefined) this.#recentTable = t;
    return t;
  }

  #entry(family: Family, addr: Uint8Array, len: number, where: Placement | undefined, create: boolean): Entry | undefined {
    checkPrefix(family, addr, len);
    const table = where?.table ?? this.table;
    if (!Number.isInteger(table) || table < 1 || table > 0xffffffff || table === 255) throw new FibInputError(`bad table ${table}`);
    let metric = where?.metric ?? this.metric;
    if (!Number.isInteger(metric) || metric < 0 || metric > 0xffffffff) throw new FibInputError(`bad metric ${metric}`);
    if (family === 6 && metric === 0) metric = 1024; // the kernel stores IPv6 metric 0 as 1024 (IP6_RT_PRIO_USER)
    const t = this.#tableFor(family, table, metric, create);
    if (t === undefined) return undefined;
    if (family === 4) {
      const n = v4Number(addr, len);
      let e = t.v4.get(n, len);
      if (e === undefined && create) {
        e = newEntry(t, n, undefined, len);
        t.v4.set(n, len, e);
      }
      return e;
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

  #entryForKernel(k: KernelRoute, create: boolean): Entry | undefined {
    const t = this.#tableFor(k.family, k.table, k.metric, create);
    if (t === undefined) return undefined;
    if (k.family === 4) {
      const n = v4Number(k.addr, k.len);
      let e = t.v4.get(n, k.len);
      if (e === undefined && create) t.v4.set(n, k.len, (e = newEntry(t, n, undefined, k.len)));
      return e;
    }
    const key = v6Key(k.addr, k.len);
    let e = t.v6.get(key);
    if (e === undefined && create) t.v6.set(key, (e = newEntry(t, 0, Uint8Array.from(k.addr), k.len)));
    return e;
  }

  /** The existing entry a scanned kernel route belongs to, without creating anything. */
  #entryForScan(b: Buffer, sc: RouteScan): Entry | undefined {
    if (!this.#managed.has(sc.table)) return undefined;
    const family: Family = sc.family === AF_INET ? 4 : 6;
    let t = this.#lastTable;
    if (t === undefined || t.family !== family || t.table !== sc.table || t.metric !== sc.metric) {
      t = this.#tableFor(family, sc.table, sc.metric, false);
      if (t === undefined) return undefined;
      this.#lastTable = t;
    }
    if (family === 4) return t.v4.get(sc.dstOff ? b.readUInt32BE(sc.dstOff) : 0, sc.dstLen);
    if (!sc.dstOff) return t.v6.get('\0'.repeat(16) + String.fromCharCode(sc.dstLen));
    return t.v6.get(b.toString('latin1', sc.dstOff, sc.dstOff + 16) + String.fromCharCode(sc.dstLen));
  }

  #forget(e: Entry): void {
    // while a dump streams in, a forgotten entry could be re-created from an older part of the dump
    if (this.#dumping) return;
    if (e.want || e.have || e.flags & (QUEUED | INFLIGHT) || e.fail) return;
    const t = e.tbl;
    if (t.family === 4) t.v4.delete(e.v4, e.len);
    else t.v6.delete(v6Key(e.v6!, e.len));
  }

  #matches(e: Entry): boolean {
    const w = e.want, h = e.have;
    if (w === null || h === null) return w === h;
    if (isSpec(h)) return (h === w || h.key === w.key) && (w.blackhole || encodeSpec(w, this.#linkGen, this.#byName) !== undefined);
    return specMatches(w, h, this.#byName);
  }

  #opFor(e: Entry): number {
    if (e.want) {
      if (this.#matches(e)) return OP_NONE;
      return e.have ? OP_REPLACE : OP_ADD;
    }
    if (e.have && (this.#synced || e.flags & WITHDRAWN)) return OP_DELETE;
    return OP_NONE;
  }

  #enqueue(e: Entry): void {
    if (e.flags & QUEUED) return;
    e.flags |= QUEUED;
    this.#queue.push(e);
    this.#queuedAt.push(performance.now());
    this.#schedulePump();
  }

  #schedulePump(): void {
    if (this.#pumpScheduled || this.#closed || !this.#cmd) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  // ---------------------------------------------------------------- writing

  #pump(): void {
    this.#paused = false;
    if (!this.#bulk && this.#queue.length - this.#qhead >= this.#bulkThreshold && this.#events) {
      // Bulk mode. Each write comes back as a notification that costs more to read (~4 us) than the write costs the
      // kernel, and a burst overruns the event socket anyway, which then needs a dump. So stop listening to route
      // notifications for the burst and dump once when it is done; link events still arrive. External changes made
      // during the burst are seen (and repaired) by that dump.
      this.#bulk = true;
      this.#events.postMessage('leave');
    }
    while (!this.#closed && this.#inflight.length < this.#maxInFlight && this.#qhead < this.#queue.length) {
      // Flow control against our own notifications: every add and delete comes back to the event reader, whose
      // socket overruns (and forces a full dump) if we write faster than it reads. Wait for it to catch up, but
      // not for more than a second without progress (the count is a heuristic; a kernel may merge notifications).
      if (!this.#bulk && this.#selfExpected - this.#selfSeen > this.#maxBacklog) {
        // wait while the reader makes progress (on a loaded machine its thread may wait for a core); if it has seen
        // nothing new for a second, the count is off: go on
        const now = performance.now();
        if (this.#pausedSince === 0 || this.#pausedSeen !== this.#selfSeen) {
          this.#pausedSince = now;
          this.#pausedSeen = this.#selfSeen;
        }
        if (now - this.#pausedSince < 1000) {
          this.#paused = true;
          setTimeout(() => this.#schedulePump(), 5).unref();
          break;
        }
        this.#selfExpected = this.#selfSeen; // waited long enough: resynchronise the heuristic
      }
      this.#pausedSince = 0;
      if (!this.#sendBatch()) break;
    }
    if (this.#qhead >= this.#queue.length) {
      this.#queue = [];
      this.#queuedAt = [];
      this.#qhead = 0;
    }
    this.#checkIdle();
  }

  /** Build one batch from the queue and send it; false when nothing was sendable. */
  #sendBatch(): boolean {
    // Sized for what is queued, not for a full batch: a lone route (the usual steady-state write) then takes a
    // slice of Node's buffer pool instead of a fresh 96 KB allocation, which GC pressure made costly.
    const max = Math.min(this.#batchSize, Math.max(this.#queue.length - this.#qhead, 1));
    const entries: Entry[] = [];
    const ops = new Uint8Array(max);
    let buf = Buffer.allocUnsafe(Math.min(Math.max(max, 8) * 96, 1 << 20));
    let off = 0;
    let lastOff = -1;
    const firstSeq = this.#seq;
    let queuedAt = Infinity;
    while (entries.length < max && this.#qhead < this.#queue.length) {
      const i = this.#qhead;
      const e = this.#queue[i]!;
      if (e.flags & INFLIGHT) {
        // re-examined (and queued again if still needed) when its write is acknowledged
        this.#qhead++;
        e.flags &= ~QUEUED;
        continue;
      }
      const op = this.#opFor(e);
      let spec: Spec | null = null;
      let size = 0;
      const t = e.tbl;
      if (op === OP_ADD || op === OP_REPLACE) {
        spec = e.want!;
        const enc = spec.blackhole ? undefined : encodeSpec(spec, this.#linkGen, this.#byName);
        if (!spec.blackhole && enc === undefined) {
          // a named interface does not exist: report it as the kernel would, and wait for the link to appear
          this.#qhead++;
          e.flags &= ~QUEUED;
          this.#recordFailure(e, 'ENODEV', `interface ${spec.missingDev ?? '?'} does not exist`, this.#retryMax);
          continue;
        }
        size = routeMessageSize(t.family, t.table, t.metric, enc ? enc.tail.length : 0);
      } else if (op === OP_DELETE) {
        size = routeMessageSize(t.family, t.table, t.metric, 0);
      }
      if (op === OP_NONE) {
        this.#qhead++;
        e.flags &= ~QUEUED;
        this.#forget(e);
        continue;
      }
      if (off + size > buf.length) {
        if (entries.length > 0) break; // full: the rest goes in the next batch
        buf = Buffer.allocUnsafe(size);
      }
      this.#qhead++;
      e.flags = (e.flags & ~(QUEUED | EVENT_SEEN)) | INFLIGHT;
      queuedAt = Math.min(queuedAt, this.#queuedAt[i]!);
      const seq = this.#seq;
      this.#seq = (this.#seq + 1) >>> 0 || 1;
      lastOff = off;
      if (op === OP_DELETE) {
        // rtm_protocol is matched by the kernel on delete: only a route tagged as skein's can go
        off = writeRouteMessage(buf, off, RTM_DELROUTE, NLM_F_REQUEST, seq, t.family, e.v4, e.v6, e.len,
          t.table, this.protocol, RT_SCOPE_NOWHERE, RTN_UNSPEC, 0, t.metric, undefined);
        this.#counters.delete++;
      } else {
        const s = spec!;
        const enc = s.enc;
        const flags = NLM_F_REQUEST | NLM_F_CREATE | (op === OP_ADD ? NLM_F_EXCL : NLM_F_REPLACE);
        off = writeRouteMessage(buf, off, RTM_NEWROUTE, flags, seq, t.family, e.v4, e.v6, e.len,
          t.table, this.protocol, s.blackhole ? RT_SCOPE_UNIVERSE : (t.family === 4 ? enc!.scope : RT_SCOPE_UNIVERSE),
          s.blackhole ? RTN_BLACKHOLE : RTN_UNICAST, enc ? enc.rtmFlags : 0, t.metric, enc?.tail);
        if (op === OP_ADD) this.#counters.add++;
        else this.#counters.replace++;
      }
      if (op !== OP_REPLACE) this.#selfExpected++; // an add or delete that succeeds comes back as one notification
      e.sent = spec;
      if (spec) this.#specs.acquire(spec);
      ops[entries.length] = op;
      entries.push(e);
    }
    if (entries.length === 0) return this.#qhead < this.#queue.length;
    // only the last message asks for an ACK; failures are answered per message regardless
    buf.writeUInt16LE(buf.readUInt16LE(lastOff + 6) | NLM_F_ACK, lastOff + 6);
    const batch: Batch = {
      firstSeq, count: entries.length, entries, ops, errors: new Map(), sentAt: performance.now(), queuedAt,
    };
    this.#inflight.push(batch);
    this.#armTimeout();
    this.#cmd!.send(buf.subarray(0, off), undefined, (err) => {
      if (err) this.#abandonBatch(batch, `send failed: ${err.message}`);
    });
    return true;
  }

  #onReplies(b: Buffer): void {
    for (let o = 0; o + NLMSG_HDRLEN <= b.length;) {
      const len = b.readUInt32LE(o);
      if (len < NLMSG_HDRLEN || o + len > b.length) break;
      const type = b.readUInt16LE(o + 4);
      if (type === NLMSG_ERROR && len >= NLMSG_HDRLEN + 4) {
        const seq = b.readUInt32LE(o + 8);
        const errno = -b.readInt32LE(o + NLMSG_HDRLEN);
        this.#reply(seq, errno);
      } else if (type === NLMSG_OVERRUN) {
        this.#overrun('requests');
      }
      o += (len + 3) & ~3;
    }
    this.#schedulePump();
  }

  #reply(seq: number, errno: number): void {
    for (let i = 0; i < this.#inflight.length; i++) {
      const batch = this.#inflight[i]!;
      const idx = (seq - batch.firstSeq) >>> 0;
      if (idx >= batch.count) continue;
      if (errno !== 0) batch.errors.set(idx, errno);
      if (idx === batch.count - 1) {
        this.#inflight.splice(i, 1);
        this.#complete(batch);
      }
      return;
    }
    // a reply for a batch already abandoned (timeout/overrun): the resync it triggered settles those routes
  }

  #complete(batch: Batch): void {
    const now = performance.now();
    let failed = 0;
    let needResync = false;
    for (let i = 0; i < batch.count; i++) {
      const e = batch.entries[i]!;
      const op = batch.ops[i]!;
      const sent = e.sent;
      e.sent = null;
      e.flags &= ~INFLIGHT;
      const errno = batch.errors.get(i) ?? 0;
      const eventSeen = (e.flags & EVENT_SEEN) !== 0;
      e.flags &= ~EVENT_SEEN;
      if (errno !== 0 && op !== OP_REPLACE) this.#selfExpected--; // counted when sent; a refused write notifies nobody
      if (errno === 0 || (op === OP_DELETE && errno === 3 /* ESRCH: already gone */)) {
        if (!eventSeen) {
          this.#setHave(e, op === OP_DELETE ? null : sent);
        }
        if (e.fail && (op !== OP_DELETE || !e.want)) this.#clearFailure(e);
      } else {
        failed++;
        this.#counters.errors++;
        const d = describeErrno(errno);
        if (errno === 17 /* EEXIST */) {
          // something holds the prefix: another protocol's route (left alone), or one of ours we did not know of;
          // one dump tells which (not one per retry: a foreign route may hold the prefix for a long time)
          if ((e.fail?.attempts ?? 0) === 0) needResync = true;
          this.#recordFailure(e, d.code, 'a route of another protocol (or an unknown one) holds this prefix', undefined);
        } else {
          this.#recordFailure(e, d.code, d.message, undefined);
        }
      }
      if (sent) this.#specs.release(sent);
      if (!e.fail && this.#opFor(e) !== OP_NONE) this.#enqueue(e);
      else if (!(e.flags & QUEUED)) this.#forget(e);
    }
    if (needResync) this.#scheduleResync('EEXIST on add');
    this.emit('batch', {
      routes: batch.count, failed,
      latencySeconds: (now - batch.queuedAt) / 1000,
      kernelSeconds: (now - batch.sentAt) / 1000,
    });
    this.#armTimeout();
    this.#checkIdle();
  }

  /** The batch's replies are lost or it was never sent: what the kernel did is unknown, so dump. */
  #abandonBatch(batch: Batch, why: string): void {
    const i = this.#inflight.indexOf(batch);
    if (i < 0) return;
    this.#inflight.splice(i, 1);
    for (const e of batch.entries) {
      if (e.sent) this.#specs.release(e.sent);
      e.sent = null;
      e.flags &= ~(INFLIGHT | EVENT_SEEN);
    }
    this.#scheduleResync(why);
    this.#checkIdle();
  }

  #armTimeout(): void {
    // One timer for every request in flight, checked lazily: batches complete in the order they were sent, so the
    // oldest one's deadline only moves later, and a timer already set fires no later than needed (it re-checks and
    // re-arms). Re-creating a timer per write cost more than the rest of the write's bookkeeping. While nothing is
    // in flight the timer is left to fire unreferenced, so it holds no process open.
    const oldest = this.#inflight[0];
    const t = this.#timeoutTimer;
    if (!oldest || this.#closed) {
      if (this.#closed && t) {
        clearTimeout(t);
        this.#timeoutTimer = undefined;
      } else t?.unref();
      return;
    }
    if (t) {
      t.ref();
      return;
    }
    const wait = Math.max(0, oldest.sentAt + this.#timeoutMs - performance.now());
    this.#timeoutTimer = setTimeout(() => {
      this.#timeoutTimer = undefined;
      const now = performance.now();
      for (const b of [...this.#inflight]) {
        if (now - b.sentAt >= this.#timeoutMs) this.#abandonBatch(b, `no acknowledgement within ${this.#timeoutMs} ms`);
      }
      this.#armTimeout();
    }, wait);
  }

  /** What to remember of an observed kernel route: the wanted Spec itself when they agree, else an interned shape. */
  #observed(e: Entry, k: KernelRoute): Spec | Shape {
    if (e.want && specMatches(e.want, k, this.#byName)) return e.want;
    // a small most-recently-used list is enough to share shapes: routes come in runs of the same next hops
    const recent = this.#shapes;
    for (let i = 0; i < recent.length; i++) {
      const sh = recent[i]!;
      if (sameShape(sh, k)) {
        if (i > 0) {
          recent.splice(i, 1);
          recent.unshift(sh);
        }
        return sh;
      }
    }
    const sh: Shape = { type: k.type, scope: k.scope, hops: k.hops };
    recent.unshift(sh);
    if (recent.length > 32) recent.pop();
    return sh;
  }

  #setHave(e: Entry, have: Spec | Shape | null): void {
    e.have = have;
    e.stamp = ++this.#clock;
  }

  // ---------------------------------------------------------------- failures and retries

  #recordFailure(e: Entry, code: string, message: string, delay: number | undefined): void {
    const attempts = (e.fail?.attempts ?? 0) + 1;
    const wait = delay ?? Math.min(this.#retryMax, this.#retryMin * 2 ** Math.min(attempts - 1, 20));
    const now = Date.now();
    e.fail = { code, message, attempts, at: now, retryAt: now + wait };
    this.#failed.add(e);
    this.#armRetry(now + wait);
    if (attempts === 1 || attempts % 10 === 0) this.emit('failure', this.#view(e));
  }

  #clearFailure(e: Entry): void {
    if (e.fail === undefined) return;
    e.fail = undefined;
    this.#failed.delete(e);
  }

  #armRetry(at: number): void {
    if (this.#closed || at >= this.#retryAt) return;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryAt = at;
    this.#retryTimer = setTimeout(() => this.#retryDue(), Math.max(0, at - Date.now()));
  }

  #retryDue(): void {
    this.#retryTimer = undefined;
    this.#retryAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const e of this.#failed) {
      const f = e.fail!;
      if (f.retryAt <= now) {
        // keep e.fail (attempt count) until it succeeds; retryAt moves so it is not picked twice
        e.fail = { ...f, retryAt: Infinity };
        this.#enqueue(e);
      } else next = Math.min(next, f.retryAt);
    }
    if (next < Infinity) this.#armRetry(next);
  }

  /** Retry every failing route now (an interface came back). */
  #retryAllNow(): void {
    for (const e of this.#failed) {
      e.fail = { ...e.fail!, retryAt: Infinity };
      this.#enqueue(e);
    }
  }

  // ---------------------------------------------------------------- kernel events

  #onEvents(b: Buffer): void {
    for (let o = 0; o + NLMSG_HDRLEN <= b.length;) {
      const len = b.readUInt32LE(o);
      if (len < NLMSG_HDRLEN || o + len > b.length) break;
      const type = b.readUInt16LE(o + 4);
      if (type === RTM_NEWROUTE || type === RTM_DELROUTE) {
        // our own writes come back with our port as nlmsg_pid: their ACKs already tell the story
        if (len >= NLMSG_HDRLEN + RTMSG_LEN && rtmProtocol(b, o) === this.protocol && b.readUInt32LE(o + 12) !== this.#cmdPort) {
          const k = parseRoute(b, o, len);
          if (k) this.#routeEvent(type === RTM_NEWROUTE, k);
        }
      } else if (type === RTM_NEWLINK || type === RTM_DELLINK) {
        const l = parseLink(b, o, len);
        if (l) this.#linkEvent(type === RTM_NEWLINK, l.index, l.name, l.flags);
      } else if (type === NLMSG_OVERRUN) {
        this.#overrun('events');
      }
      o += (len + 3) & ~3;
    }
  }

  #routeEvent(added: boolean, k: KernelRoute): void {
    if (!this.#managed.has(k.table)) return; // a table skein does not manage: not ours to touch
    const e = this.#entryForKernel(k, added);
    if (e === undefined) return;
    if (e.flags & INFLIGHT) e.flags |= EVENT_SEEN;
    this.#setHave(e, added ? this.#observed(e, k) : null);
    if (e.flags & INFLIGHT) return; // settled when the ACK arrives
    if (this.#opFor(e) !== OP_NONE) {
      if (e.want) this.#counters.repairs++;
      this.#enqueue(e);
    } else this.#forget(e);
  }

  #linkEvent(added: boolean, index: number, name: string | undefined, flags: number): void {
    const old = this.#links.get(index);
    const UPS = IFF_UP | IFF_LOWER_UP;
    if (!added) {
      if (old === undefined) return;
      this.#links.delete(index);
      if (this.#byName.get(old.name) === index) this.#byName.delete(old.name);
    } else {
      const nm = name ?? old?.name;
      if (nm === undefined) return;
      if (old && old.name === nm && (old.flags & UPS) === (flags & UPS)) {
        old.flags = flags;
        return; // nothing that affects routes
      }
      if (old && old.name !== nm && this.#byName.get(old.name) === index) this.#byName.delete(old.name);
      this.#links.set(index, { name: nm, flags });
      this.#byName.set(nm, index);
    }
    this.#linkGen++;
    // The kernel flushes routes through a link that goes down or away without a notification per route, and
    // routes through a link that comes up may now be installable: dump and repair, and retry failures now.
    this.#scheduleResync(added ? 'link change' : 'link removed');
    this.#retryAllNow();
  }

  #overrun(which: string): void {
    this.#counters.overruns++;
    this.emit('overrun', which);
    if (which === 'requests') {
      // replies were dropped: what happened to the in-flight batches is unknown
      for (const b of [...this.#inflight]) this.#abandonBatch(b, 'request socket overrun');
    }
    this.#scheduleResync(`${which} socket overrun`);
  }

  #onSocketError(which: string, e: ErrnoException): void {
    if (errnoCode(e) === 'ENOBUFS') return this.#overrun(which);
    this.emit('warning', new Error(`netlink ${which} socket: ${e.message}`, { cause: e }));
    this.#scheduleResync(`${which} socket error`);
  }

  // ---------------------------------------------------------------- resync (full dump)

  #scheduleResync(reason: string): void {
    if (this.#closed || !this.#started) return;
    this.#resyncReasons.push(reason);
    if (this.#resyncing) {
      this.#resyncAgain = true;
      return;
    }
    if (this.#resyncTimer) return;
    this.#resyncSince = performance.now();
    this.#armResync(this.#resyncDelay);
  }

  /**
   * Run the pending resync after `delay`, but not while a burst of writes is still going out (their own
   * notifications are what overran the event socket; a dump per overrun would cost more than the burst), unless it
   * has waited resyncMaxDeferMs already.
   */
  #armResync(delay: number): void {
    this.#resyncTimer = setTimeout(() => {
      this.#resyncTimer = undefined;
      const busy = this.#inflight.length > 0 || this.#qhead < this.#queue.length;
      if (busy && performance.now() - this.#resyncSince < this.#resyncMaxDefer) return this.#armResync(this.#resyncDelay);
      const why = [...new Set(this.#resyncReasons)].join(', ');
      this.#resyncReasons = [];
      this.#runResync(why).catch((err: unknown) => this.emit('warning', err instanceof Error ? err : new Error(String(err))));
    }, delay);
  }

  #runResync(reason: string): Promise<void> {
    if (this.#resyncing) {
      this.#resyncAgain = true;
      return this.#resyncing;
    }
    const run = (async () => {
      try {
        for (let attempt = 0; ; attempt++) {
          try {
            await this.#dumpAndReconcile(reason);
            break;
          } catch (err) {
            if (this.#closed) return;
            if (attempt >= 5) throw err;
            // interrupted dumps (table changed meanwhile) and overruns are retried; give the storm a moment
            if (!(err instanceof DumpError)) throw err;
            await new Promise((r) => setTimeout(r, 20 * 2 ** attempt));
          }
        }
      } finally {
        this.#resyncing = undefined;
        if (this.#resyncAgain && !this.#closed) {
          this.#resyncAgain = false;
          this.#scheduleResync('changes during the last resync');
        }
        this.#checkIdle();
      }
    })();
    this.#resyncing = run;
    return run;
  }

  async #dumpAndReconcile(reason: string): Promise<void> {
    const sock = this.#dumper;
    if (!sock || this.#closed) return;
    this.#counters.resyncs++;
    this.emit('resync', reason);
    sock.ref();
    try {
      // interfaces first: device routes resolve names through them
      const links = new Map<number, { name: string; flags: number }>();
      await dump(sock, RTM_GETLINK, 0, IFINFOMSG_LEN, this.#nextSeq(), this.#timeoutMs * 4, (b, o, l) => {
        const li = parseLink(b, o, l);
        if (li?.name !== undefined) links.set(li.index, { name: li.name, flags: li.flags });
      });
      let changed = links.size !== this.#links.size;
      for (const [i, l] of links) {
        const old = this.#links.get(i);
        if (!old || old.name !== l.name || old.flags !== l.flags) changed = true;
      }
      if (changed) {
        this.#links.clear();
        this.#byName.clear();
        for (const [i, l] of links) {
          this.#links.set(i, l);
          this.#byName.set(l.name, i);
        }
        this.#linkGen++;
      }
      const gen = ++this.#dumpGen;
      const sc = newRouteScan();
      const since = this.#clock; // an ACK or event newer than this knows better than the dump
      this.#dumping = true;
      for (const af of [AF_INET, AF_INET6]) {
        await dump(sock, RTM_GETROUTE, af, RTMSG_LEN, this.#nextSeq(), this.#timeoutMs * 4, (b, o, l) => {
          if (rtmProtocol(b, o) !== this.protocol) return;
          // fast path: the route is exactly what is wanted (the common case after a bulk write)
          const e0 = scanRoute(b, o, l, sc) ? this.#entryForScan(b, sc) : undefined;
          if (e0 && e0.want && fastMatch(e0.want, b, sc, this.#byName)) {
            e0.seen = gen;
            if (e0.stamp <= since && !(e0.flags & INFLIGHT)) e0.have = e0.want;
            return;
          }
          const k = parseRoute(b, o, l);
          if (k === undefined || !this.#managed.has(k.table)) return;
          const e = this.#entryForKernel(k, true)!;
          e.seen = gen;
          if (e.stamp <= since && !(e.flags & INFLIGHT)) e.have = this.#observed(e, k);
        });
      }
      this.#dumping = false;
      // reconcile: what the dump lacks is gone; whatever differs from the desired state is queued
      for (const t of this.#tables.values()) {
        for (const e of entriesOf(t)) {
          if (e.seen !== gen && e.stamp <= since && !(e.flags & INFLIGHT)) e.have = null;
          if (e.flags & INFLIGHT) continue;
          const w = e.want;
          // in sync (most of a big table): skip the general comparison
          if (w !== null && e.have === w && !e.fail && w.encGen === this.#linkGen && (w.blackhole || w.enc !== undefined)) continue;
          if (this.#opFor(e) !== OP_NONE) {
            if (e.fail) continue; // retried on its own schedule (or now, after a link change)
            if (e.want && e.flags & WANTED && e.have === null && reason !== 'start') this.#counters.repairs++;
            this.#enqueue(e);
          } else {
            this.#forget(e);
          }
        }
      }
    } finally {
      this.#dumping = false;
      sock.unref();
    }
  }

  #nextSeq(): number {
    const s = this.#seq;
    this.#seq = (this.#seq + 1) >>> 0 || 1;
    return s;
  }

  // ---------------------------------------------------------------- idle tracking

  #writesIdle(): boolean {
    return this.#qhead >= this.#queue.length && this.#inflight.length === 0;
  }

  #idle(): boolean {
    return this.#closed || (this.#writesIdle() && !this.#bulk && !this.#resyncing && !this.#resyncTimer);
  }

  #checkIdle(): void {
    if (this.#bulk && !this.#rejoining && this.#writesIdle() && this.#events) {
      // the burst is written: listen again, then dump (in #onJoined) so nothing in between is missed
      this.#rejoining = true;
      this.#events.postMessage('join');
    }
    if (this.#writeWaiters.length > 0 && (this.#closed || this.#writesIdle())) {
      const w = this.#writeWaiters;
      this.#writeWaiters = [];
      for (const f of w) f();
    }
    if (this.#waiters.length > 0 && this.#idle()) this.#wake();
  }

  #onJoined(): void {
    if (!this.#rejoining) return;
    this.#rejoining = false;
    this.#bulk = false;
    this.#selfExpected = this.#selfSeen;
    this.#runResync('after a bulk write').catch((err: unknown) => this.emit('warning', err instanceof Error ? err : new Error(String(err))));
  }

  #wake(): void {
    const w = [...this.#waiters, ...this.#writeWaiters];
    this.#waiters = [];
    this.#writeWaiters = [];
    for (const f of w) f();
  }

  #view(e: Entry): RouteView {
    const t = e.tbl;
    const addr = t.family === 4 ? v4Bytes(e.v4) : Uint8Array.from(e.v6!);
    let kernel: KernelRoute | undefined;
    if (isSpec(e.have)) {
      encodeSpec(e.have, this.#linkGen, this.#byName);
      kernel = kernelRouteOf(e.have, t.family, addr, e.len, t.table, t.metric, this.protocol, this.#byName);
    } else if (e.have) {
      kernel = { family: t.family, addr, len: e.len, table: t.table, metric: t.metric, protocol: this.protocol, type: e.have.type, scope: e.have.scope, hops: e.have.hops };
    }
    return {
      prefix: { family: t.family, addr, len: e.len },
      table: t.table,
      metric: t.metric,
      desired: e.want?.target,
      kernel,
      inSync: e.want !== null && this.#matches(e),
      pending: (e.flags & (QUEUED | INFLIGHT)) !== 0,
      failure: e.fail,
    };
  }
}

function entriesOf(t: Table): IterableIterator<Entry> {
  return t.family === 4 ? t.v4.values() : t.v6.values();
}

function newEntry(tbl: Table, v4: number, v6: Uint8Array | undefined, len: number): Entry {
  return { tbl, v4, v6, len, want: null, have: null, flags: 0, stamp: 0, seen: 0, sent: null, fail: undefined };
}

function checkPrefix(family: Family, addr: Uint8Array, len: number): void {
  if (family !== 4 && family !== 6) throw new FibInputError(`family must be 4 or 6, not ${String(family)}`);
  const bits = family === 4 ? 32 : 128;
  if (!(addr instanceof Uint8Array) || addr.length < bits / 8) throw new FibInputError(`address must be ${bits / 8} bytes`);
  if (!Number.isInteger(len) || len < 0 || len > bits) throw new FibInputError(`prefix length must be 0..${bits}`);
}

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new FibInputError(`${name} must be an integer in ${min}..${max}, not ${v}`);
  return v;
}
