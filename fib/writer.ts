// The batcher and writer: the queue of entries that need a write, batches of route messages in one netlink send,
// the kernel's replies, lost-reply timeouts, flow control against our own notifications, and bulk mode.
//
// Many messages go in one send; only the last asks for an ACK. Failures are always reported per message with
// their sequence number (netlink_rcv_skb acks every message that fails), so a batch costs one reply plus one per
// error. Which message an entry needs (and the ownership flags it carries) is ownership.ts's decision.
import { NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_OVERRUN, NLM_F_ACK } from './constants.js';
import { routeMessageSize } from './codec.js';
import type { Core } from './core.js';
import { EVENT_SEEN, INFLIGHT, QUEUED, type Entry } from './entries.js';
import { describeErrno } from './kernel.js';
import { OP_ADD, OP_DELETE, OP_NONE, OP_REPLACE, writeOp } from './ownership.js';
import { NH_WAIT } from './nexthops.js';
import { encodeSpec, type Spec } from './targets.js';

/**
 * Bulk mode ends only after the writes have been idle for this long: a burst that arrives in pieces (a peer's
 * million prefixes handed over in 10 ms slices while the writer keeps up) is one burst, with one verification dump
 * at its end, not a dump each time the writer catches up (each dump reads the whole table: at 1M routes a dump in
 * the middle of the ingest cost more CPU than the writes it verified).
 */
const BULK_QUIET_MS = 300;
/** ...but a burst that never pauses still gets its dump this often (external changes meanwhile are repaired then). */
const BULK_MAX_MS = 20_000;
/** The window in which `burstThreshold()` changes make a burst although the queue never holds that many at once. */
const RATE_WINDOW_MS = 1000;
/** How long one pump may build and hand over batches before it yields to the event loop. */
const PUMP_SLICE_MS = 4;
/**
 * A batch of at most this many routes, with nothing in flight, is written on this thread (see #sendBatch). The kernel
 * handles a route in ~3 us inside sendmsg(), so this bounds the loop's stall near 1 ms; it is as large as that so a
 * host's start (a block route from each peer, each with its next hop's object) and a cluster's steady state never need
 * the request thread, which then never starts (an idle Node worker holds ~9 MiB).
 */
export const DIRECT_MAX = 256;
/** ...and of at most this many bytes (the direct socket's send buffer is 64 KiB; ECMP routes are longer). */
const DIRECT_MAX_BYTES = 32768;
/**
 * How long the kernel's replies may be handled in one turn of the event loop; what arrived beyond that waits for the
 * next turn. The request thread posts each reply as it reads it, and a whole window of them (32 batches of 1000 routes)
 * is delivered in one go: each acknowledgement settles its batch's routes, so all of them at once held the loop for
 * tens of ms, on top of the other slices of the same turn (a peer holding 1M routes going down, issue 16).
 */
const REPLY_SLICE_MS = 4;

interface Batch {
  readonly firstSeq: number;
  readonly count: number;
  readonly entries: Entry[];
  readonly ops: Uint8Array;
  /** the nexthop object each add/replace points the route at (0: plain route) */
  readonly nh: Uint32Array;
  readonly errors: Map<number, number>;
  readonly sentAt: number;
  readonly queuedAt: number;
  /** written on the `direct` socket (see #sendBatch) */
  readonly direct: boolean;
}

export class Writer {
  // The fields that hold clock readings (performance.now(), a fraction) start as -0, which equals 0 in every
  // comparison and sum here but is stored as a double: V8 keeps a field that has only held small integers in another
  // form than one holding fractions, and the first reading written to a field that started as 0 gave the writer a
  // new hidden class in the middle of a burst, which threw away the optimised code of everything that uses it
  // (--trace-deopt at 100k routes, FIB on: "wrong map" in enqueue, schedulePump, #sendBatch and Programmer.set).
  #queue: Entry[] = [];
  #queuedAt: number[] = [];
  #qhead = 0;
  readonly inflight: Batch[] = [];
  #pumpScheduled = false;
  /** sends on the direct socket whose completion has not been reported (the socket sends at once only when none) */
  #directQueued = 0;
  /** batches in `inflight` that went on the direct socket */
  #directInflight = 0;
  /** own adds/deletes sent vs their notifications seen by the event reader (as it last reported: it reports every
   *  few hundred, and at once when asked while the writer pauses) */
  #selfExpected = 0;
  selfSeen = 0;
  paused = false;
  #pausedSince = -0;
  #pausedSeen = 0;
  readonly #maxBacklog = 4000;
  /** route notifications are off while a burst is written; one dump follows */
  bulk = false;
  #rejoining = false;
  #bulkSince = -0;
  #quietTimer: NodeJS.Timeout | undefined;
  /** changes queued in this window and in the one before it (a burst is judged by their rate too) */
  #winStart = -0;
  #winCount = 0;
  #prevCount = 0;
  #lastEnqueue = -0;
  /** enqueue()'s clock: read afresh at the start of a burst, every 1024 changes and in each pump */
  #clock = -0;
  #clockUses = 0;
  #timeoutTimer: NodeJS.Timeout | undefined;
  /** replies received and not handled yet (oldest at #replyHead), handled in slices of REPLY_SLICE_MS */
  #replies: (Buffer | undefined)[] = [];
  #replyHead = 0;
  /** a slice of reply handling is open in this turn, until #replyEnd; the next turn closes it */
  #replySlice = false;
  #replyEnd = -0;

  readonly core: Core;

  constructor(core: Core) {
    this.core = core;
  }

  writesIdle(): boolean {
    return this.#qhead >= this.#queue.length && this.inflight.length === 0 && this.core.nexthops.pending === 0;
  }

  /** Something is queued or in flight (a resync waits for the burst to go out). */
  busy(): boolean {
    return this.inflight.length > 0 || this.#qhead < this.#queue.length;
  }

  enqueue(e: Entry): void {
    if (e.flags & QUEUED) return;
    e.flags |= QUEUED;
    // The clock is read at the start of a burst and every 1024 changes (and by each pump): performance.now() per
    // change was ~220 ms of the main thread for a million routes from BGP. It dates the queue for the rate window
    // and the batch latency figure, both fine with a turn's precision.
    const now = this.#qhead >= this.#queue.length || (++this.#clockUses & 1023) === 0 ? (this.#clock = performance.now()) : this.#clock;
    this.#queue.push(e);
    this.#queuedAt.push(now);
    if (now - this.#winStart >= RATE_WINDOW_MS) {
      this.#prevCount = now - this.#winStart >= 2 * RATE_WINDOW_MS ? 0 : this.#winCount;
      this.#winCount = 0;
      this.#winStart = now;
    }
    this.#winCount++;
    this.#lastEnqueue = now;
    this.schedulePump();
  }

  schedulePump(): void {
    if (this.#pumpScheduled || this.core.closed || !this.core.cmd) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.pump();
    });
  }

  close(): void {
    if (this.#timeoutTimer) clearTimeout(this.#timeoutTimer);
    if (this.#quietTimer) clearTimeout(this.#quietTimer);
  }

  // ---------------------------------------------------------------- bulk mode

  /** The burst is written: listen again, then dump (in onJoined) so nothing in between is missed. */
  checkBulkDone(): void {
    const events = this.core.events;
    if (this.bulk && !this.#rejoining && this.writesIdle() && events) {
      // not while more of the same burst may follow (see BULK_QUIET_MS); a burst that has gone on for long enough
      // is verified now anyway
      const now = performance.now();
      const quiet = now - this.#lastEnqueue;
      if (quiet < BULK_QUIET_MS && now - this.#bulkSince < BULK_MAX_MS && !this.core.closed) {
        if (this.#quietTimer === undefined) {
          this.#quietTimer = setTimeout(() => {
            this.#quietTimer = undefined;
            this.core.checkIdle();
          }, BULK_QUIET_MS - quiet + 1);
        }
        return;
      }
      this.#rejoining = true;
      events.postMessage('join');
    }
  }

  onJoined(): void {
    if (!this.#rejoining) return;
    this.#rejoining = false;
    this.bulk = false;
    this.#selfExpected = this.selfSeen;
    this.core.resync.run('after a bulk write').catch((err: unknown) => this.core.warn(err));
  }

  // ---------------------------------------------------------------- writing

  pump(): void {
    const core = this.core;
    this.paused = false;
    this.#clock = performance.now();
    // a burst: this many queued at once, or queued within about a second (the caller hands a big change over in
    // slices, and the writer keeps up with each)
    const burst = this.bulk ? 0 : core.burstThreshold();
    if (!this.bulk && core.events && (this.#queue.length - this.#qhead >= burst ||
      (this.#qhead < this.#queue.length && this.#winCount + this.#prevCount >= burst &&
        this.#clock - this.#lastEnqueue < RATE_WINDOW_MS))) {
      // (the rate alone does not start a burst when nothing is queued: a pump right after a burst was written, and
      // within a second of its last change, started another with nothing to write, and its end a second full dump)
      // Bulk mode. Each write comes back as a notification that costs more to read (~4 us) than the write costs the
      // kernel, and a burst overruns the event socket anyway, which then needs a dump. So stop listening to route
      // notifications for the burst and dump once when it is done; link events still arrive. External changes made
      // during the burst are seen (and repaired) by that dump.
      this.bulk = true;
      this.#bulkSince = performance.now();
      core.events.postMessage('leave');
    }
    while (!core.closed && this.inflight.length < core.maxInFlight && this.#qhead < this.#queue.length) {
      // Flow control against our own notifications: every add and delete comes back to the event reader, whose
      // socket overruns (and forces a full dump) if we write faster than it reads. Wait for it to catch up, but
      // not for more than a second without progress (the count is a heuristic; a kernel may merge notifications).
      if (!this.bulk && this.#selfExpected - this.selfSeen > this.#maxBacklog) {
        // wait while the reader makes progress (on a loaded machine its thread may wait for a core); if it has seen
        // nothing new for a second, the count is off: go on
        const now = performance.now();
        if (this.#pausedSince === 0 || this.#pausedSeen !== this.selfSeen) {
          this.#pausedSince = now;
          this.#pausedSeen = this.selfSeen;
        }
        if (now - this.#pausedSince < 1000) {
          this.paused = true;
          // the reader reports its count every few hundred notifications (event-reader.ts, SELF_REPORT_EVERY): ask
          // for it as it is now, so a pause ends as soon as the reader has caught up
          core.events?.postMessage('report');
          setTimeout(() => this.schedulePump(), 5).unref();
          break;
        }
        this.#selfExpected = this.selfSeen; // waited long enough: resynchronise the heuristic
      }
      this.#pausedSince = 0;
      // A few routes while only direct batches are unanswered wait for that answer (the kernel gives it inside the
      // sendmsg(), so it is read in the next turn) and then go direct too, rather than start the request thread for
      // them (~9 MiB held for its idle period): a host's start and a cluster's steady state bring routes one peer at a
      // time, a few turns apart, and the second of two in one turn took the thread before.
      if (this.#directInflight > 0 && this.#directInflight === this.inflight.length && !this.bulk &&
        this.#queue.length - this.#qhead <= DIRECT_MAX) break;
      if (!this.#sendBatch()) break;
      // with a window of many batches, filling it at once could hold the loop for tens of ms: the rest goes in the
      // next turn (the request thread still has the batches sent so far to work on)
      if (performance.now() - this.#clock >= PUMP_SLICE_MS && this.#qhead < this.#queue.length) {
        this.schedulePump();
        break;
      }
    }
    if (this.#qhead >= this.#queue.length) {
      this.#queue = [];
      this.#queuedAt = [];
      this.#qhead = 0;
    }
    core.checkIdle();
  }

  /** Build one batch from the queue and send it; false when nothing was sendable. */
  #sendBatch(): boolean {
    const core = this.core;
    // Sized for what is queued, not for a full batch: a lone route (the usual steady-state write) then takes a
    // slice of Node's buffer pool instead of a fresh 96 KB allocation, which GC pressure made costly.
    const max = Math.min(core.batchSize, Math.max(this.#queue.length - this.#qhead, 1));
    const entries: Entry[] = [];
    const ops = new Uint8Array(max);
    const nhs = new Uint32Array(max);
    // a batch of more than a few routes gets a buffer of its own (never a slice of Node's pool), handed to the
    // request thread without a copy and back from it for a later batch
    const bytes = Math.min(Math.max(max, 8) * 96, 1 << 20);
    let owned = bytes >= 4096;
    let buf = owned ? (core.cmd!.buffer?.(bytes) ?? Buffer.allocUnsafeSlow(bytes)) : Buffer.allocUnsafe(bytes);
    let off = 0;
    let lastOff = -1;
    const firstSeq = core.seq;
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
      const op = core.opFor(e);
      let spec: Spec | null = null;
      let size = 0;
      let nhTail: Buffer | undefined;
      let nhid = 0;
      const t = e.tbl;
      if (op === OP_ADD || op === OP_REPLACE) {
        spec = e.want!;
        const enc = spec.blackhole ? undefined : encodeSpec(spec, core.links.gen, core.links.byName);
        if (!spec.blackhole && enc === undefined) {
          // a named interface does not exist: report it as the kernel would, and wait for the link to appear
          this.#qhead++;
          e.flags &= ~QUEUED;
          core.retry.record(e, 'ENODEV', `interface ${spec.missingDev ?? '?'} does not exist`, core.retryMax);
          continue;
        }
        nhid = spec.blackhole ? 0 : core.nexthops.idFor(spec, core.links);
        if (nhid === NH_WAIT) {
          // the kernel deleted the objects on a device without carrier and refuses new ones there: the route waits
          // for the link (a link event retries every failure at once)
          this.#qhead++;
          e.flags &= ~QUEUED;
          core.retry.record(e, 'ENETDOWN', 'the next hop\'s device has no carrier (nexthop objects are refused there); written when it returns', core.retryMax);
          continue;
        }
        nhTail = nhid !== 0 ? core.nexthops.tail(nhid) : undefined;
        if (nhTail === undefined) nhid = 0;
        size = routeMessageSize(t.family, t.table, t.metric, nhTail ? nhTail.length : enc ? enc.tail.length : 0);
      } else if (op === OP_DELETE) {
        size = routeMessageSize(t.family, t.table, t.metric, 0);
      }
      if (op === OP_NONE) {
        this.#qhead++;
        e.flags &= ~QUEUED;
        core.forget(e);
        continue;
      }
      if (off + size > buf.length) {
        if (entries.length > 0) break; // full: the rest goes in the next batch
        buf = Buffer.allocUnsafe(size);
        owned = false;
      }
      this.#qhead++;
      e.flags = (e.flags & ~(QUEUED | EVENT_SEEN)) | INFLIGHT;
      queuedAt = Math.min(queuedAt, this.#queuedAt[i]!);
      const seq = core.seq;
      core.seq = (core.seq + 1) >>> 0 || 1;
      lastOff = off;
      off = writeOp(buf, off, op, e, spec, seq, core.protocol, nhTail);
      nhs[entries.length] = nhid;
      if (op === OP_DELETE) core.counters.delete++;
      else if (op === OP_ADD) core.counters.add++;
      else core.counters.replace++;
      if (op !== OP_REPLACE) this.#selfExpected++; // an add or delete that succeeds comes back as one notification
      e.sent = spec;
      if (spec) core.specs.acquire(spec);
      ops[entries.length] = op;
      entries.push(e);
    }
    if (entries.length === 0) return this.#qhead < this.#queue.length;
    // only the last message asks for an ACK; failures are answered per message regardless
    buf.writeUInt16LE(buf.readUInt16LE(lastOff + 6) | NLM_F_ACK, lastOff + 6);

    // A few routes with nothing in flight (a cluster's steady state: one workload's /32 from a peer) are written on
    // this thread's `direct` socket. Through the request thread one route cost three thread hand-offs (the batch
    // over, the send's completion and the kernel's ACK back), each the wake-up of a sleeping thread: ~23% of a host's
    // CPU per workload event in the convergence bench (perf, 10 hosts, with the event reader's echo). The kernel's
    // work for a few routes is small, and rtnetlink handles a request inside sendmsg(); with no batch or nexthop
    // message still waiting for the request thread or its answer, nothing can overtake it. New nexthop objects the
    // batch needs go in the same sendmsg() ahead of its routes (the kernel handles them in order), and only while
    // the socket's own queue is empty, so that sendmsg() happens now: a later batch on the request thread that uses
    // those objects cannot reach the kernel before them.
    const direct = core.direct !== undefined && !this.bulk && entries.length <= DIRECT_MAX && off <= DIRECT_MAX_BYTES &&
      this.inflight.length === this.#directInflight && core.nexthops.pending === 0 && this.#directQueued === 0;
    const batch: Batch = {
      firstSeq, count: entries.length, entries, ops, nh: nhs, errors: new Map(), sentAt: performance.now(), queuedAt, direct,
    };
    this.inflight.push(batch);
    if (direct) this.#directInflight++;
    this.#armTimeout();
    const done = (err?: Error): void => {
      if (err) this.#abandonBatch(batch, `send failed: ${err.message}`);
    };
    if (direct) {
      core.directBatches++;
      const objs = core.nexthops.takeFresh(() => core.nextSeq());
      this.#directQueued++;
      core.direct!.send(objs.length === 0 ? buf.subarray(0, off) : Buffer.concat([...objs, buf.subarray(0, off)]), undefined, (err) => {
        this.#directQueued--;
        if (err) core.nexthops.unsent(objs, err);
        done(err);
      });
      return true;
    }
    // objects the batch's routes need go first, on the same socket: the kernel handles them in order
    core.nexthops.sendFresh(core.cmd!, () => core.nextSeq());
    core.cmd!.send(buf.subarray(0, off), undefined, done, owned);
    return true;
  }

  // ---------------------------------------------------------------- replies

  /**
   * The kernel's replies from any of the request sockets, in the order they arrive: handled at once while this turn's
   * slice lasts, else in the next turns (a reply only settles what it names by sequence number, so a late one changes
   * nothing but when; its batch counts as in flight until then, and the lost-reply timeout is seconds away).
   */
  onReplies(b: Buffer): void {
    this.#replies.push(b);
    if (!this.#replySlice) {
      this.#replySlice = true;
      this.#replyEnd = performance.now() + REPLY_SLICE_MS;
      setImmediate(() => this.#nextReplySlice());
    } else if (this.#replyHead < this.#replies.length - 1 || performance.now() >= this.#replyEnd) return;
    this.#handleReplies();
  }

  #nextReplySlice(): void {
    this.#replySlice = false;
    if (this.#replyHead >= this.#replies.length) return;
    this.#replySlice = true;
    this.#replyEnd = performance.now() + REPLY_SLICE_MS;
    setImmediate(() => this.#nextReplySlice());
    this.#handleReplies();
  }

  /** Handle waiting replies, oldest first, until the slice ends. */
  #handleReplies(): void {
    const q = this.#replies;
    while (this.#replyHead < q.length) {
      const b = q[this.#replyHead]!;
      q[this.#replyHead++] = undefined;
      if (!this.core.closed) this.#handleReply(b);
      if (performance.now() >= this.#replyEnd) break;
    }
    if (this.#replyHead >= q.length) {
      this.#replies = [];
      this.#replyHead = 0;
    }
    this.schedulePump();
  }

  #handleReply(b: Buffer): void {
    for (let o = 0; o + NLMSG_HDRLEN <= b.length;) {
      const len = b.readUInt32LE(o);
      if (len < NLMSG_HDRLEN || o + len > b.length) break;
      const type = b.readUInt16LE(o + 4);
      if (type === NLMSG_ERROR && len >= NLMSG_HDRLEN + 4) {
        const seq = b.readUInt32LE(o + 8);
        const errno = -b.readInt32LE(o + NLMSG_HDRLEN);
        this.#reply(seq, errno);
      } else if (type === NLMSG_OVERRUN) {
        this.core.resync.overrun('requests');
      }
      o += (len + 3) & ~3;
    }
  }

  #reply(seq: number, errno: number): void {
    if (this.core.nexthops.reply(seq, errno)) return;
    for (let i = 0; i < this.inflight.length; i++) {
      const batch = this.inflight[i]!;
      const idx = (seq - batch.firstSeq) >>> 0;
      if (idx >= batch.count) continue;
      if (errno !== 0) batch.errors.set(idx, errno);
      if (idx === batch.count - 1) {
        this.inflight.splice(i, 1);
        if (batch.direct) this.#directInflight--;
        this.#complete(batch);
      }
      return;
    }
    // a reply for a batch already abandoned (timeout/overrun): the resync it triggered settles those routes
  }

  #complete(batch: Batch): void {
    const core = this.core;
    const now = performance.now();
    let failed = 0;
    let needResync = false;
    let nhSuspect = false;
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
          core.setHave(e, op === OP_DELETE ? null : sent, batch.nh[i]!);
        }
        if (e.fail && (op !== OP_DELETE || !e.want)) core.retry.clear(e);
      } else if (eventSeen && batch.nh[i]! !== 0 && core.nexthops.tail(batch.nh[i]!) === undefined) {
        // The route pointed at a nexthop object that was deleted while the batch waited for the request thread
        // (nextHopDown's deletion goes out on the urgent socket and can overtake it): no failure of the route. It
        // is looked at again at once below, and written on the object its next hops have now.
      } else {
        failed++;
        core.counters.errors++;
        const d = describeErrno(errno);
        if (errno === 17 /* EEXIST */) {
          // something holds the prefix: another protocol's route (left alone), or one of ours we did not know of;
          // one dump tells which (not one per retry: a foreign route may hold the prefix for a long time)
          if ((e.fail?.attempts ?? 0) === 0) needResync = true;
          core.retry.record(e, d.code, 'a route of another protocol (or an unknown one) holds this prefix', undefined);
        } else {
          core.retry.record(e, d.code, d.message, undefined);
          // through an object the kernel may no longer have (deleted unseen): without a check, every retry would
          // carry the same nhid and be refused the same way
          if (batch.nh[i] !== 0) nhSuspect = true;
        }
      }
      if (sent) core.specs.release(sent);
      if (!e.fail && core.opFor(e) !== OP_NONE) this.enqueue(e);
      else if (!(e.flags & QUEUED)) core.forget(e);
    }
    if (needResync) core.resync.schedule('EEXIST on add');
    if (nhSuspect) core.resync.checkNexthops();
    core.bus.emit('batch', {
      routes: batch.count, failed,
      latencySeconds: (now - batch.queuedAt) / 1000,
      kernelSeconds: (now - batch.sentAt) / 1000,
    });
    this.#armTimeout();
    core.checkIdle();
  }

  /** The batch's replies are lost or it was never sent: what the kernel did is unknown, so dump. */
  #abandonBatch(batch: Batch, why: string): void {
    const i = this.inflight.indexOf(batch);
    if (i < 0) return;
    this.inflight.splice(i, 1);
    if (batch.direct) {
      this.#directInflight--;
      // routes may be waiting for this batch's answer (pump): they go on now
      this.schedulePump();
    }
    for (const e of batch.entries) {
      if (e.sent) this.core.specs.release(e.sent);
      e.sent = null;
      e.flags &= ~(INFLIGHT | EVENT_SEEN);
    }
    this.core.resync.schedule(why);
    this.core.checkIdle();
  }

  /** Replies were dropped (request socket overrun): what happened to the in-flight batches is unknown. */
  abandonAll(why: string): void {
    this.core.nexthops.abandonPending();
    for (const b of [...this.inflight]) this.#abandonBatch(b, why);
  }

  #armTimeout(): void {
    // One timer for every request in flight, checked lazily: batches complete in the order they were sent, so the
    // oldest one's deadline only moves later, and a timer already set fires no later than needed (it re-checks and
    // re-arms). Re-creating a timer per write cost more than the rest of the write's bookkeeping. While nothing is
    // in flight the timer is left to fire unreferenced, so it holds no process open.
    const oldest = this.inflight[0];
    const t = this.#timeoutTimer;
    const closed = this.core.closed;
    if (!oldest || closed) {
      if (closed && t) {
        clearTimeout(t);
        this.#timeoutTimer = undefined;
      } else t?.unref();
      return;
    }
    if (t) {
      t.ref();
      return;
    }
    const timeoutMs = this.core.timeoutMs;
    const wait = Math.max(0, oldest.sentAt + timeoutMs - performance.now());
    this.#timeoutTimer = setTimeout(() => {
      this.#timeoutTimer = undefined;
      // replies that arrived and wait for their slice are not lost: settle them first (a timer can run before the
      // turn's slice does), so only a batch the kernel really left unanswered is abandoned
      if (this.#replyHead < this.#replies.length) {
        this.#replyEnd = Infinity;
        this.#handleReplies();
        this.#replyEnd = 0;
      }
      const now = performance.now();
      for (const b of [...this.inflight]) {
        if (now - b.sentAt >= timeoutMs) this.#abandonBatch(b, `no acknowledgement within ${timeoutMs} ms`);
      }
      this.#armTimeout();
    }, wait);
  }
}
