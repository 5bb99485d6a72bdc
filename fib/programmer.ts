// The FIB programmer: keeps the kernel's routes of skein's protocol equal to a desired state given as a stream of
// changes. This file is the facade src/ sees; the machines behind it each have their own file (fib/README.md
// draws the flow):
//   entries.ts         the desired-state table (want / have per prefix)
//   ownership.ts       which write an entry needs, and the flags that keep other protocols' routes safe
//   writer.ts          queue, batches, replies, timeouts, flow control, bulk mode
//   retry.ts           refused writes: kept with the kernel's errno, retried with back-off
//   resync.ts          dump and reconcile: adoption at start, repair after lost information; overruns
//   kernel-events.ts   route and link notifications from the event reader thread
//   core.ts            what they share, idle tracking, views
import { EventEmitter } from 'node:events';
import { endianness } from 'node:os';
import { BIG_READ, openSocket } from './kernel.js';
import { Core, Slices } from './core.js';
import { INFLIGHT, QUEUED, WANTED, WITHDRAWN, checkPrefix } from './entries.js';
import { skipPort, startEventReader, stopEventReader } from './kernel-events.js';
import { Resync } from './resync.js';
import { LazyThreadSocket } from './request-socket.js';
import { Retry } from './retry.js';
import type {
  Family, FibStats, FibWriterStats, Placement, Prefix, ProgrammerEvents, ProgrammerOptions, RouteView, Target,
} from './types.js';
import { FibInputError } from './targets.js';
import { Writer } from './writer.js';

export type { ProgrammerEvents } from './types.js';

export class Programmer extends EventEmitter<ProgrammerEvents> {
  readonly protocol: number;
  readonly table: number;
  readonly metric: number;
  readonly #core: Core;

  constructor(opts: ProgrammerOptions = {}) {
    super();
    if (endianness() !== 'LE') throw new Error('fib/ encodes netlink in little-endian host order; this host is big-endian');
    const core = new Core(opts, this);
    core.writer = new Writer(core);
    core.retry = new Retry(core);
    core.resync = new Resync(core);
    this.#core = core;
    this.protocol = core.protocol;
    this.table = core.table;
    this.metric = core.metric;
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Open the sockets, subscribe to link and route events, read the interfaces and then the kernel's routes once:
   * routes of skein's protocol in managed tables are adopted (kept, not removed) until markSynced().
   */
  async start(): Promise<void> {
    const core = this.#core;
    if (core.started) throw new Error('Programmer already started');
    core.started = true;
    try {
      await this.#open();
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async #open(): Promise<void> {
    const core = this.#core;
    if (core.requestThread) {
      // started by the first write that needs it (request-socket.ts, LazyThreadSocket): a few routes at a time go on
      // `direct` below, and an idle worker thread holds ~9 MiB
      core.cmd = new LazyThreadSocket({ recvBufferSize: core.rcvbuf, sendBufferSize: 4 << 20, msgBufferSize: 16384 }, {
        onPort: (port) => skipPort(core, port),
        onMessage: (b) => core.writer.onReplies(b),
        onError: (e) => core.resync.onSocketError('requests', e),
        idle: () => core.writer.writesIdle(),
      }, core.requestThreadIdleMs);
      // a batch of up to DIRECT_MAX routes (writer.ts) and their answers: one ACK, or an error per refused route (a
      // datagram each, ~1 KiB of the receive buffer: 256 KiB holds a whole batch refused); the kernel takes the
      // receive buffer's memory only for what is queued
      const direct = openSocket(1 << 18, 1 << 16, 4096);
      direct.on('message', (b) => core.writer.onReplies(b));
      direct.on('error', (e) => core.resync.onSocketError('requests', e));
      direct.unref();
      core.direct = direct;
      core.directPort = direct.address().port;
    } else {
      const sock = openSocket(core.rcvbuf, 4 << 20, 16384);
      sock.on('message', (b) => core.writer.onReplies(b));
      sock.on('error', (e) => core.resync.onSocketError('requests', e));
      core.cmd = sock;
      core.cmdPort = sock.address().port;
    }
    if (core.nexthopObjects) {
      // small buffers: it carries a few deletions and their acknowledgements, never a batch
      core.urgent = openSocket(1 << 16, 1 << 16, 4096);
      core.urgent.on('message', (b) => core.writer.onReplies(b));
      core.urgent.on('error', (e) => core.resync.onSocketError('requests', e));
      core.urgent.unref();
    }
    // subscribe before the first dump, so nothing that happens after the dump starts is missed
    await startEventReader(core);
    core.dumper = openSocket(core.rcvbuf, 1 << 16, BIG_READ);
    core.dumper.on('error', () => { /* reported through the dump promise */ });
    core.dumper.unref();
    if (core.nexthopObjects) {
      // the kernel's nexthop objects: none at all means an old kernel (< 5.3): plain routes, said once
      await core.nexthops.start(core.dumper, core.nextSeq(), core.timeoutMs * 4);
      if (!core.nexthops.enabled) this.emit('warning', new Error('the kernel has no nexthop objects (Linux < 5.3): gateway routes are written as plain routes'));
    }
    await core.resync.run('start');
    core.resync.startNexthopChecks(core.nexthopCheckMs);
  }

  /** Close the sockets and stop timers. Routes stay in the kernel (a restart must not empty the table). */
  async close(): Promise<void> {
    const core = this.#core;
    if (core.closed) return;
    core.closed = true;
    core.retry.close();
    core.writer.close();
    core.resync.close();
    await stopEventReader(core);
    for (const s of [core.cmd, core.direct, core.urgent, core.dumper]) {
      try {
        s?.close();
      } catch {
        /* already closed */
      }
    }
    core.writer.inflight.length = 0;
    core.wake();
  }

  // ---------------------------------------------------------------- desired state

  /** Want `prefix` to point at `target` (add, or replace in place). Throws FibInputError on malformed input. */
  set(family: Family, addr: Uint8Array, len: number, target: Target, where?: Placement): void {
    const core = this.#core;
    checkPrefix(family, addr, len); // before the target, whose checks depend on the family
    const spec = core.specs.intern(family, target);
    const e = core.routes.entry(family, addr, len, where, true)!;
    e.flags = (e.flags | WANTED) & ~WITHDRAWN;
    if (e.want === spec) return;
    core.mutations++;
    core.specs.acquire(spec);
    if (e.want) core.specs.release(e.want);
    else core.counts.desired++;
    e.want = spec;
    core.retry.clear(e);
    core.writer.enqueue(e);
  }

  /** No longer want `prefix`: its route (if skein installed or adopted it) is deleted. */
  remove(family: Family, addr: Uint8Array, len: number, where?: Placement): void {
    const core = this.#core;
    const e = core.routes.entry(family, addr, len, where, false);
    if (e === undefined) return;
    e.flags = (e.flags | WITHDRAWN) & ~WANTED;
    core.mutations++;
    if (e.want) {
      core.specs.release(e.want);
      core.counts.desired--;
    }
    e.want = null;
    core.retry.clear(e);
    core.writer.enqueue(e);
  }

  /**
   * A burst of writes is likely soon (a BGP session came up and its table follows): start the request thread now if
   * it is stopped, so the burst's first batches do not wait for its start-up. It stops again after
   * requestThreadIdleMs without a write.
   */
  prepare(): void {
    const core = this.#core;
    if (core.started && !core.closed) core.cmd?.warm?.();
  }

  /**
   * Send what is queued now rather than on the next turn of the event loop: a next hop BFD declared dead must
   * leave the kernel in the same turn that learned it (RFC 5882 §4.3). The usual batching and flow control apply.
   */
  writeNow(): void {
    const core = this.#core;
    if (core.closed || !core.cmd) return;
    core.writer.pump();
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
   * again are removed. Resolves, with the number of adopted routes it removes, when the sweep and everything queued
   * before it is programmed.
   */
  async markSynced(): Promise<number> {
    const core = this.#core;
    core.synced = true;
    // a walk of every entry (a million after a restart with a full table), in slices so the loop keeps turning;
    // an entry set again or removed meanwhile is the writer's business anyway
    let swept = 0;
    const slices = new Slices();
    for (const e of core.routes.all()) {
      if (slices.due()) {
        await slices.pause();
        if (core.closed) return swept;
      }
      if (!e.want && e.have) {
        if (!(e.flags & WITHDRAWN)) swept++;
        core.writer.enqueue(e);
      }
    }
    await this.flush();
    // nexthop objects a previous run left that nothing took over: their routes are swept, so they can go
    if (core.nexthops.enabled && core.cmd && !core.closed) core.nexthops.sweep(core.cmd, () => core.nextSeq());
    return swept;
  }

  /**
   * Next hop `gateway` is dead (BFD Down, RFC 5882 §4.3): with nexthop objects, delete its object now, in this turn
   * of the event loop: the kernel drops it from every ECMP group and removes the routes that pointed at it directly,
   * with one message however many routes use it. Call it FIRST, before the withdrawals are handed over: the kernel
   * stops using the hop at once (a few ms), while the per-route changes that follow take their time. Nothing more is
   * written in this call: the routes it affects are queued, and written after the caller updated the desired state
   * (writeNow, or the next turn), so a route still wanted through `gateway` afterwards gets a new object, and one
   * that is withdrawn is not written first. Returns the nexthop messages sent (0 without nexthop objects: then the
   * per-route changes do the work, see writeNow).
   */
  nextHopDown(family: Family, gateway: Uint8Array): number {
    const core = this.#core;
    if (core.closed || !core.cmd || !core.nexthops.enabled) return 0;
    if (gateway.length < (family === 4 ? 4 : 16)) throw new FibInputError(`a gateway of an IPv${family} next hop is ${family === 4 ? 4 : 16} bytes`);
    let sent = 0;
    // on its own socket, so it does not queue behind route writes already handed to cmd (core.ts, urgent)
    const sock = core.urgent ?? core.cmd;
    const gone = core.nexthops.hopDown(family, Uint8Array.from(gateway.subarray(0, family === 4 ? 4 : 16)), sock, () => {
      sent++;
      if (sock === core.urgent) core.urgentSent++;
      return core.nextSeq();
    });
    core.objectsGone(gone); // IPv4 routes of a vanished object go without a notification: settle them here
    return sent;
  }

  /**
   * Resolves once nothing is queued, in flight, or being dumped (failed routes waiting to retry don't count).
   * With 'writes' it resolves as soon as every queued change has been answered by the kernel, without waiting for
   * the verification dump that follows a bulk write.
   */
  flush(what: 'all' | 'writes' = 'all'): Promise<void> {
    return this.#core.whenIdle(what);
  }

  // ---------------------------------------------------------------- views

  stats(): FibStats {
    const core = this.#core;
    let desired = 0, installed = 0, inSync = 0, stale = 0, pending = 0;
    const failures: Record<string, number> = {};
    for (const e of core.routes.all()) {
      if (e.want) desired++;
      if (e.have) installed++;
      if (e.want && core.matches(e)) inSync++;
      if (!e.want && e.have && !(e.flags & WITHDRAWN)) stale++;
      if (e.flags & (QUEUED | INFLIGHT)) pending++;
      if (e.fail) failures[e.fail.code] = (failures[e.fail.code] ?? 0) + 1;
    }
    return { desired, installed, inSync, stale, pending, failuresByReason: failures, synced: core.synced, ...this.writer() };
  }

  /** The writer's counters alone: no walk of the routes, so cheap enough for every scrape. */
  writer(): FibWriterStats {
    const core = this.#core;
    const c = core.counters;
    return {
      sent: { add: c.add, replace: c.replace, delete: c.delete },
      errors: c.errors, resyncs: c.resyncs, overruns: c.overruns, repairs: c.repairs,
      nexthopObjects: core.nexthops.enabled, nexthops: core.nexthops.count, urgentSent: core.urgentSent, directBatches: core.directBatches,
      requestThreadRunning: core.cmd instanceof LazyThreadSocket && core.cmd.running,
      requestThreadStarts: core.cmd instanceof LazyThreadSocket ? core.cmd.starts : 0,
      nexthopRepairs: core.resync.nexthopRepairs,
    };
  }

  /**
   * stats()'s desired, installed and failed counts without its walk of every entry (kept as entries change): for
   * what runs periodically or per scrape (skein_fib_routes) at a million routes.
   */
  counts(): { desired: number; installed: number; failed: number } {
    const c = this.#core.counts;
    return { desired: c.desired, installed: c.installed, failed: this.#core.retry.failed.size };
  }

  /**
   * Whether the kernel holds the prefix as wanted: lookup()'s `kernel !== undefined && inSync`, without making the
   * view (which encodes the kernel route). `skeinctl routes` asks it for each of a million rows (issue 15).
   */
  holds(family: Family, addr: Uint8Array, len: number, where?: Placement): boolean {
    const e = this.#core.routes.entry(family, addr, len, where, false);
    return e !== undefined && e.have !== null && e.want !== null && this.#core.matches(e);
  }

  /** The name of interface `ifindex` as the FIB knows it (its link dump and link events), or undefined. */
  linkName(ifindex: number): string | undefined {
    return this.#core.links.byIndex.get(ifindex)?.name;
  }

  /** Desired vs kernel for one prefix. */
  lookup(family: Family, addr: Uint8Array, len: number, where?: Placement): RouteView | undefined {
    const e = this.#core.routes.entry(family, addr, len, where, false);
    return e ? this.#core.view(e) : undefined;
  }

  /** Every prefix fib/ knows of (desired, adopted or failing). */
  *routes(): IterableIterator<RouteView> {
    for (const e of this.#core.routes.all()) yield this.#core.view(e);
  }

  /** Prefixes whose last attempt failed. */
  *failures(): IterableIterator<RouteView> {
    for (const e of this.#core.retry.failed) yield this.#core.view(e);
  }

  /** Dump the kernel now and repair any difference (also runs by itself after overruns and link changes). */
  resync(reason = 'requested'): Promise<void> {
    return this.#core.resync.run(reason);
  }
}
