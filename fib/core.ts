// What the machines of fib/ share: the options, the sockets, the desired-state table, the interface table, the
// counters and the clock that orders what is known of each route. Programmer (the facade) builds one Core and the
// machines around it; each machine keeps its own state and reaches the others only through `core.writer`,
// `core.retry` and `core.resync`.
//
//   set()/remove() ──> entries.ts (want) ──> writer.ts (queue, batches, replies) ──> kernel
//                                              │ refused: retry.ts (back-off)        │
//   kernel-events.ts (route/link events) ──────┤                                     │
//   resync.ts (dump: adopt at start, repair) ──┘  <──────── dumps, events ───────────┘
import type { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import type { RawNetlinkSocket } from 'netlink/dist/raw.js';
import { EVENT_SEEN, INFLIGHT, QUEUED, RouteTable, isSpec, v4Bytes, type Entry, type Shape } from './entries.js';
import { Links } from './links.js';
import type { RequestSocket } from './request-socket.js';
import { Nexthops } from './nexthops.js';
import { OP_NONE, matches, opFor } from './ownership.js';
import type { InlineReader } from './kernel-events.js';
import type { Resync } from './resync.js';
import type { Retry } from './retry.js';
import { Shapes } from './shapes.js';
import { FibInputError, SpecTable, encodeSpec, kernelRouteOf, type Spec } from './targets.js';
import { RTPROT_SKEIN, RT_TABLE_MAIN } from './constants.js';
import type { KernelRoute, ProgrammerEvents, ProgrammerOptions, RouteView } from './types.js';
import type { Writer } from './writer.js';

/** How long after the writes settle unused nexthop objects are deleted (a burst of changes settles first). */
const NH_GC_DELAY_MS = 1000;
/** How long one slice of a walk of every entry may hold the event loop. */
const WALK_SLICE_MS = 8;

/**
 * The clock of a walk over every entry that gives the event loop a turn every WALK_SLICE_MS: `due()` is cheap (it
 * reads the clock every 1024 calls), `pause()` waits for the next turn and starts a new slice.
 */
export class Slices {
  #end = performance.now() + WALK_SLICE_MS;
  #n = 0;
  due(): boolean {
    return (++this.#n & 1023) === 0 && performance.now() >= this.#end;
  }
  async pause(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    this.#end = performance.now() + WALK_SLICE_MS;
  }
}

export function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new FibInputError(`${name} must be an integer in ${min}..${max}, not ${v}`);
  return v;
}

export class Core {
  readonly protocol: number;
  readonly table: number;
  readonly metric: number;
  readonly batchSize: number;
  readonly maxInFlight: number;
  readonly timeoutMs: number;
  readonly retryMin: number;
  readonly retryMax: number;
  /** the bulkThreshold option as given; undefined: it follows the table's size (burstThreshold) */
  readonly bulkThreshold: number | undefined;
  readonly resyncDelay: number;
  readonly resyncMaxDefer: number;
  readonly rcvbuf: number;
  /** the option: use nexthop objects where the kernel has them */
  readonly nexthopObjects: boolean;
  /** the option: the request socket lives in a thread of its own (request-thread.ts) */
  readonly requestThread: boolean;
  /** ms between checks of the kernel's nexthop objects (0: only on resyncs and refused writes) */
  readonly nexthopCheckMs: number;

  readonly specs = new SpecTable();
  readonly routes: RouteTable;
  readonly links = new Links();
  readonly shapes = new Shapes();
  readonly nexthops: Nexthops;
  readonly counters = { add: 0, replace: 0, delete: 0, errors: 0, resyncs: 0, overruns: 0, repairs: 0 };
  /**
   * Entries with a `want` and with a `have`, kept as they change (Programmer.counts()): the metrics sampler reads
   * them every 5 s, and walking a million entries for two numbers took tens of ms of the event loop (issue 15).
   * Every assignment of `want` goes through Programmer.set/remove and of `have` through setHave.
   */
  readonly counts = { desired: 0, installed: 0 };

  /** request socket (writes and their acknowledgements) and its port, which the kernel copies into notifications */
  cmd: RequestSocket | undefined;
  /**
   * A second request socket for a dead next hop's object deletion only (Programmer.nextHopDown): a message on
   * `cmd` would wait in that socket's send queue behind a large batch of route writes, while the kernel handles
   * each socket's messages as they are written, so this one goes out at once. Its replies go the same way as
   * cmd's (sequence numbers are shared).
   */
  urgent: RawNetlinkSocket | undefined;
  /** messages sent on `urgent` */
  urgentSent = 0;
  /**
   * With the request thread: a socket on this thread for batches of a few routes while nothing is in flight
   * (writer.ts, #sendBatch), so a lone route costs no thread hand-offs. Route writes only; its port, like cmd's,
   * marks notifications of our own writes.
   */
  direct: RawNetlinkSocket | undefined;
  directPort = -1;
  /** route batches written on `direct` */
  directBatches = 0;
  cmdPort = -1;
  /** skipPort() calls waiting for the event reader's answer (kernel-events.ts) */
  skipWaiters: (() => void)[] = [];
  /** ms without a send after which the request thread stops (0: it stays once started) */
  readonly requestThreadIdleMs: number;
  /** the event reader (event-reader.ts): on this thread, or a worker with the `eventThread` option */
  events: Worker | InlineReader | undefined;
  /** the option: the event reader runs in a worker thread of its own */
  readonly eventThread: boolean;
  /** dump socket */
  dumper: RawNetlinkSocket | undefined;
  closed = false;
  started = false;
  /** markSynced() ran: adopted routes that are not wanted are deleted */
  synced = false;
  /** a dump is streaming in (entries must not be forgotten meanwhile) */
  dumping = false;
  /** orders what is known of a route: an ACK or event stamped after a dump began knows better than the dump */
  clock = 0;
  seq = 1;
  /**
   * Counts changes of any entry's `want` or `have` (Programmer.set/remove, setHave; dumps count through
   * counters.resyncs): a walk that pauses between slices tells by it whether what it read is still true.
   */
  mutations = 0;

  writer!: Writer;
  retry!: Retry;
  resync!: Resync;

  #waiters: (() => void)[] = [];
  #gcTimer: NodeJS.Timeout | undefined;
  /** a collection walk (#collectWalk) is under way */
  #collecting = false;
  #writeWaiters: (() => void)[] = [];

  constructor(opts: ProgrammerOptions, readonly bus: EventEmitter<ProgrammerEvents>) {
    this.protocol = checkInt('protocol', opts.protocol ?? RTPROT_SKEIN, 1, 255);
    this.table = checkInt('table', opts.table ?? RT_TABLE_MAIN, 1, 0xffffffff);
    this.metric = checkInt('metric', opts.metric ?? 0, 0, 0xffffffff);
    this.batchSize = checkInt('batchSize', opts.batchSize ?? 1000, 1, 100_000);
    this.requestThread = opts.requestThread ?? true;
    this.eventThread = opts.eventThread ?? false;
    this.requestThreadIdleMs = checkInt('requestThreadIdleMs', opts.requestThreadIdleMs ?? 60_000, 0, 86_400_000);
    this.maxInFlight = checkInt('maxInFlight', opts.maxInFlight ?? (this.requestThread ? 32 : 8), 1, 1024);
    this.timeoutMs = checkInt('requestTimeoutMs', opts.requestTimeoutMs ?? 5000, 1, 3_600_000);
    this.retryMin = checkInt('retryMinMs', opts.retryMinMs ?? 250, 1, 3_600_000);
    this.retryMax = checkInt('retryMaxMs', opts.retryMaxMs ?? 30_000, this.retryMin, 3_600_000);
    this.bulkThreshold = opts.bulkThreshold === undefined ? undefined : checkInt('bulkThreshold', opts.bulkThreshold, 1, 1 << 30);
    this.resyncDelay = checkInt('resyncDelayMs', opts.resyncDelayMs ?? 50, 0, 60_000);
    this.resyncMaxDefer = checkInt('resyncMaxDeferMs', opts.resyncMaxDeferMs ?? 5000, 0, 600_000);
    this.rcvbuf = checkInt('recvBufferSize', opts.recvBufferSize ?? 8 << 20, 65536, 1 << 30);
    this.routes = new RouteTable(this.table, this.metric);
    this.nexthopObjects = opts.nexthopObjects ?? true;
    this.nexthopCheckMs = checkInt('nexthopCheckMs', opts.nexthopCheckMs ?? 10_000, 0, 3_600_000);
    this.nexthops = new Nexthops(this.protocol, (e) => this.warn(e));
  }

  nextSeq(): number {
    const s = this.seq;
    this.seq = (this.seq + 1) >>> 0 || 1;
    return s;
  }

  setHave(e: Entry, have: Spec | Shape | null, nhid: number): void {
    this.mutations++;
    if ((e.have === null) !== (have === null)) this.counts.installed += have === null ? -1 : 1;
    e.have = have;
    e.nhid = have === null ? 0 : nhid;
    e.stamp = ++this.clock;
  }

  matches(e: Entry): boolean {
    return matches(e, this.links, this.nexthops);
  }

  opFor(e: Entry): number {
    return opFor(e, this.links, this.nexthops, this.synced);
  }

  observed(e: Entry, k: KernelRoute): Spec | Shape {
    return this.shapes.observed(e, k, this.links.byName);
  }

  /** Drop an entry nothing refers to any more. */
  forget(e: Entry): void {
    // while a dump streams in, a forgotten entry could be re-created from an older part of the dump
    if (this.dumping) return;
    if (e.want || e.have || e.flags & (QUEUED | INFLIGHT) || e.fail) return;
    this.routes.drop(e);
  }

  /** Nexthop objects vanished from the kernel with the routes that used them (IPv4: without notifications). */
  objectsGone(gone: ReadonlySet<number>): void {
    // routes on a group that lost a member are looked at again when the writer runs: if they still want the old
    // set (the member was deleted behind our back, or its carrier went), they are written to a new group; if the
    // desired state moved to the survivors (a BFD Down's withdrawals), they match already and nothing is written
    const shrunk = this.nexthops.takeShrunk();
    if (gone.size === 0 && shrunk.size === 0) return;
    for (const e of this.routes.all()) {
      if (e.nhid === 0) continue;
      if (shrunk.has(e.nhid) && !gone.has(e.nhid)) {
        if (e.want && !(e.flags & INFLIGHT)) this.writer.enqueue(e);
        continue;
      }
      if (!gone.has(e.nhid)) continue;
      if (e.flags & INFLIGHT) e.flags |= EVENT_SEEN;
      this.setHave(e, null, 0);
      if (e.flags & INFLIGHT) continue; // settled when the ACK arrives
      // not resolved here (opFor would create objects for what is wanted now): a BFD Down calls this before the
      // withdrawals are handed over, and the writer decides when it runs, after them
      if (e.want) this.writer.enqueue(e);
      else this.forget(e);
    }
  }

  /** Nexthop objects were replaced behind our back: the routes on them point at the wrong thing, write them again. */
  objectsChanged(ids: ReadonlySet<number>): void {
    if (ids.size === 0) return;
    for (const e of this.routes.all()) {
      if (e.nhid === 0 || !ids.has(e.nhid) || e.flags & INFLIGHT) continue;
      if (e.want) this.counters.repairs++;
      if (this.opFor(e) !== OP_NONE) this.writer.enqueue(e);
    }
  }

  warn(err: unknown): void {
    this.bus.emit('warning', err instanceof Error ? err : new Error(String(err)));
  }

  // ---------------------------------------------------------------- idle tracking

  #idle(): boolean {
    return this.closed || (this.writer.writesIdle() && !this.writer.bulk && !this.resync.busy());
  }

  /** Resolves once nothing is queued, in flight or being dumped; with 'writes', once every write is answered. */
  whenIdle(what: 'all' | 'writes'): Promise<void> {
    if (what === 'writes') {
      if (this.closed || this.writer.writesIdle()) return Promise.resolve();
      return new Promise((resolve) => this.#writeWaiters.push(resolve));
    }
    if (this.#idle()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  checkIdle(): void {
    this.writer.checkBulkDone();
    if (this.nexthops.dirty && this.#gcTimer === undefined && !this.closed && this.synced) {
      this.#gcTimer = setTimeout(() => this.#collectNexthops(), NH_GC_DELAY_MS);
      this.#gcTimer.unref();
    }
    if (this.#writeWaiters.length > 0 && (this.closed || this.writer.writesIdle())) {
      const w = this.#writeWaiters;
      this.#writeWaiters = [];
      for (const f of w) f();
    }
    if (this.#waiters.length > 0 && this.#idle()) this.wake();
  }

  /**
   * Delete nexthop objects nothing uses any more, once the writes are done (an entry in flight or queued may be about
   * to use one, so a busy writer or a running dump postpones it). Ids in use: what the kernel's routes point at
   * (`nhid`) and what the desired sets resolve to.
   */
  #collectNexthops(): void {
    this.#gcTimer = undefined;
    if (this.closed || !this.cmd || !this.nexthops.dirty || this.#collecting) return;
    if (!this.#settled()) return this.#collectLater();
    this.#collecting = true;
    this.#collectWalk().then(
      () => { this.#collecting = false; },
      (err: unknown) => { this.#collecting = false; this.warn(err); },
    );
  }

  /**
   * How many changes make a burst, written in bulk mode (route notifications off, one verification dump of the whole
   * table at the end). Unless the option fixes it, it follows the table: the dump reads every route held, while
   * listening costs a notification read per route written, so a small table goes into bulk mode early (2,000
   * changes: a first 100k-route table no longer has its first 20,000 routes echoed back and read one by one) and a
   * big one late (20,000 at 80,000 routes held and above, the fixed default before).
   */
  burstThreshold(): number {
    return this.bulkThreshold ?? Math.min(20_000, Math.max(2_000, this.routes.size() >> 2));
  }

  /** Nothing queued, in flight, dumped or written in bulk: the ids in use can be read off the table. */
  #settled(): boolean {
    return this.writer.writesIdle() && !this.resync.busy() && !this.writer.bulk;
  }

  #collectLater(): void {
    if (this.closed || this.#gcTimer !== undefined) return;
    this.#gcTimer = setTimeout(() => this.#collectNexthops(), NH_GC_DELAY_MS);
    this.#gcTimer.unref();
  }

  /**
   * The walk of every entry for the ids in use, in slices of a few ms (a million entries take a few hundred): if
   * anything changed meanwhile (a desired route, an ACK, an event, a dump, the objects), what it read may be out of
   * date and nothing is deleted; it starts over once the writes settle again.
   */
  async #collectWalk(): Promise<void> {
    const used = new Set<number>();
    const m0 = this.mutations, g0 = this.nexthops.gen, l0 = this.links.gen, r0 = this.counters.resyncs;
    const changed = (): boolean => this.mutations !== m0 || this.nexthops.gen !== g0 || this.links.gen !== l0 ||
      this.counters.resyncs !== r0 || !this.#settled();
    const slices = new Slices();
    for (const e of this.routes.all()) {
      if (slices.due()) {
        await slices.pause();
        if (this.closed) return;
        if (changed()) return this.#collectLater();
      }
      if (e.nhid > 0) used.add(e.nhid);
      if (e.want && !e.want.blackhole) {
        const id = this.nexthops.idFor(e.want, this.links);
        if (id > 0) used.add(id);
      }
    }
    if (this.closed || !this.cmd) return;
    if (changed()) return this.#collectLater();
    this.nexthops.collect(used, this.cmd, () => this.nextSeq());
    this.nexthops.sendFresh(this.cmd, () => this.nextSeq()); // objects idFor made (a want not yet written)
  }

  wake(): void {
    const w = [...this.#waiters, ...this.#writeWaiters];
    this.#waiters = [];
    this.#writeWaiters = [];
    for (const f of w) f();
  }

  // ---------------------------------------------------------------- views

  view(e: Entry): RouteView {
    const t = e.tbl;
    const addr = t.family === 4 ? v4Bytes(e.v4) : Uint8Array.from(e.v6!);
    let kernel: KernelRoute | undefined;
    if (isSpec(e.have)) {
      encodeSpec(e.have, this.links.gen, this.links.byName);
      kernel = kernelRouteOf(e.have, t.family, addr, e.len, t.table, t.metric, this.protocol, this.links.byName);
      if (e.nhid !== 0) kernel = { ...kernel, nhid: e.nhid };
    } else if (e.have) {
      kernel = { family: t.family, addr, len: e.len, table: t.table, metric: t.metric, protocol: this.protocol, type: e.have.type, scope: e.have.scope, hops: e.have.hops };
    }
    return {
      prefix: { family: t.family, addr, len: e.len },
      table: t.table,
      metric: t.metric,
      desired: e.want?.target,
      kernel,
      inSync: e.want !== null && this.matches(e),
      pending: (e.flags & (QUEUED | INFLIGHT)) !== 0,
      failure: e.fail,
    };
  }
}
