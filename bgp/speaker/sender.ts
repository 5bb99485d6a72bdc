// The sending half of a session: messages the FSM asks for, and the pump that drains this peer's queue in the RIB
// core (RibCore.nextBatch) into UPDATEs. Sending is pull-based: the pump takes batches, encodes them into as few
// UPDATEs as fit (packUpdates / packWithdrawals) and writes until socket.write() returns false, then waits for
// 'drain' (connection.ts calls pump again). A peer that stops reading therefore holds at most one batch
// plus the socket's high-water mark in user space; the rest stays in the core's queue, where later changes to a
// prefix replace earlier ones (RFC 4271 §9.2: only the latest state matters). Every write is reported to the FSM
// (SendProgress) for the RFC 9687 send hold timer and the KeepaliveTimer (RFC 4271 §4.4).
// Must not: decide what to send (rib/ does), or touch the socket's life (connection.ts does).
import type { OutBatch, PrefixKey, RibCore } from '../rib/core.js';
import type { FsmAction } from '../session/fsm.js';
import { encodeMessage } from '../wire/message.js';
import { encodeRouteRefresh } from '../wire/route-refresh.js';
import type { CodecContext, Message, PrefixList } from '../wire/types.js';
import { endOfRib, packUpdates, packWithdrawals } from '../wire/update.js';
import { ribConn } from './peer.js';
import type { Connection, Peer } from './peer.js';
import type { LogRateLimit } from './rate-limit.js';
import { notificationText } from './text.js';

/** most batches one pump takes before yielding to other peers and to received data */
const BATCHES_PER_TURN = 64;
/**
 * Unsent bytes past which a member leaves its update group (see pump): well above a socket's high-water mark, so a
 * member that is only briefly slower stays, and small enough that a stuck one costs little memory.
 */
const SLOW_MEMBER_BYTES = 4 * 1024 * 1024;
/** unsent bytes of a socket at which the pump stops writing to it until 'drain' (see write) */
const TURN_BYTES = 256 * 1024;

const ctxKeys = new WeakMap<CodecContext, string>();
/** Codec contexts that encode alike have the same key (a member's UPDATE bytes can be another's). */
function ctxKey(ctx: CodecContext): string {
  let k = ctxKeys.get(ctx);
  if (k === undefined) {
    const fams = (x: ReadonlySet<number> | undefined): string => [...(x ?? [])].sort((a, b) => a - b).join(',');
    k = `${ctx.as4}|${ctx.extendedMessage}|${fams(ctx.addPathTx)}|${fams(ctx.addPathRx)}|${ctx.external === true}|${fams(ctx.extendedNextHopRx)}`;
    ctxKeys.set(ctx, k);
  }
  return k;
}

/** What the sender needs of the speaker. */
export interface SenderHost {
  readonly rib: RibCore;
  /** RFC 4724 §4.1: after our own restart, our UPDATEs wait for the peers' End-of-RIB */
  deferring(): boolean;
  log(level: 'info' | 'warn' | 'error', msg: string, peer?: string): void;
  /** limits log lines a remote peer causes (rate-limit.ts) */
  readonly remoteLog: LogRateLimit;
  /** carry out what the FSM answered to a SendProgress */
  run(p: Peer, c: Connection, actions: readonly FsmAction[]): void;
  /** the speaker's peer of a core peer id (the members of an update group are core ids) */
  peerByCore(id: number): Peer | undefined;
}

export class Sender {
  constructor(
    private readonly host: SenderHost,
    /** prefixes per batch taken from the core */
    private readonly batchPrefixes: number,
  ) {}

  /** Send one message the FSM asked for (OPEN, KEEPALIVE, NOTIFICATION, ROUTE-REFRESH). */
  send(p: Peer, c: Connection, m: Message): void {
    const s = c.socket;
    if (!s) return;
    let buf: Buffer;
    try {
      buf = encodeMessage(m, c.ctx);
    } catch (e) {
      this.host.log('error', `cannot encode ${m.type}: ${(e as Error).message}`, p.address);
      return;
    }
    p.counters.messagesOut[m.type]++;
    if (m.type === 'NOTIFICATION') {
      // a peer that keeps sending bad messages makes us send a NOTIFICATION each time: limited like its UPDATE errors
      const suppressed = this.host.remoteLog.take(p.address, 'notification-sent');
      if (suppressed !== null) this.host.log('info', `sending NOTIFICATION ${notificationText(m)}${suppressed > 0 ? ` (${suppressed} similar lines suppressed)` : ''}`, p.address);
    }
    this.write(p, c, buf);
  }

  /** Write one message; report = false leaves the SendProgress report to the caller (the pump reports once). */
  private write(p: Peer, c: Connection, buf: Buffer, report = true): void {
    const s = c.socket;
    if (!s || s.destroyed) return;
    let ok: boolean;
    try {
      ok = s.write(buf);
    } catch {
      return; // the 'error'/'close' handlers report it
    }
    // Past the socket's high-water mark (16 KiB) write() says false, but the pump writes corked and the bytes are
    // ours already: stopping there let ~3 UPDATEs out per event-loop turn while each turn's input slice (8 ms)
    // exported thousands of prefixes, so at 1M routes the listener's queue held over half the table (~600k
    // pending, its table and lists the largest transient memory). The pump goes on to TURN_BYTES unsent, then waits
    // for 'drain' (which a false write() guarantees).
    if (!ok && s.writableLength >= TURN_BYTES) c.blocked = true;
    if (report) this.progress(p, c);
  }

  /**
   * RFC 9687: tell the FSM whether bytes are waiting (SendHoldTimer runs only
   * then); updates: UPDATEs were written, which restarts the KeepaliveTimer
   * (RFC 4271 §4.4) — unless the socket is stuck, when nothing really moved.
   */
  progress(p: Peer, c: Connection, updates = false): void {
    const s = c.socket;
    if (!s || c.dead) return;
    const pending = s.writableLength > 0;
    if (pending === c.sendPending && pending) return; // still stuck: no progress to report
    if (!updates && !pending && !c.sendPending && !c.fsm.timerRunning('SendHold')) return;
    c.sendPending = pending;
    this.host.run(p, c, c.fsm.handle(updates ? { type: 'SendProgress', pending, updates } : { type: 'SendProgress', pending }));
  }

  /** groups with a pump scheduled, by group id (a member's pump is its group's: update groups, bgp/rib/update-group.ts) */
  private readonly scheduled = new Set<number>();

  schedulePump(p: Peer): void {
    const g = this.host.rib.groupIdOf(p.coreId);
    if (g === null || this.scheduled.has(g)) return;
    this.scheduled.add(g);
    setImmediate(() => {
      this.scheduled.delete(g);
      this.pump(p);
    });
  }

  /**
   * Pump every update group once (a group's pump serves all its members), found from the RIB's groups rather
   * than by asking each peer for its group: a reflector's 500 clients in one group were 500 look-ups per flush.
   * The list is taken first: a pump may split a slow member off into a new group (scheduled on its own).
   */
  pumpAll(): void {
    for (const id of this.host.rib.groupReps()) {
      const p = this.host.peerByCore(id);
      if (p !== undefined) this.pump(p);
    }
  }

  /**
   * Send queued work of p's update group until every member's socket pushes back, or a turn's share is used (then
   * continue next turn): first each member's personal work, then the group's batches, each encoded once per codec
   * context and the same bytes written to every member (less a member's own routes, update-group.ts). A member's
   * socket that pushes back still gets the group's messages, so the members stay in lockstep; one whose unsent
   * bytes pass SLOW_MEMBER_BYTES leaves the group (RibCore.splitFromGroup) and is paced by its own socket after.
   */
  pump(p: Peer): void {
    const rib = this.host.rib;
    const gid = rib.groupIdOf(p.coreId);
    if (gid === null || this.host.deferring()) return;
    // Nothing queued for the group or any member: no turn to build. A flush follows every turn in which anything
    // arrived or a timer ran (a KEEPALIVE from, or due to, any of a reflector's hundreds of clients: ~33 a second
    // for 500 at the default timers), and each corked, polled and uncorked every member's socket for nothing.
    if (!rib.groupHasWork(gid)) return;
    const g = rib.groupOf(p.coreId);
    if (g === null) return;
    const live: { p: Peer; c: Connection }[] = [];
    for (const id of g.members) {
      const m = this.host.peerByCore(id);
      const c = m === undefined ? undefined : ribConn(m);
      if (m && c && c.socket && !c.socket.destroyed && c.fsm.state === 'Established') live.push({ p: m, c });
    }
    if (live.every((x) => x.c.blocked)) return; // resumed on 'drain'
    const wrote = new Set<{ p: Peer; c: Connection }>();
    let more = false;
    // One socket write per member for the whole turn: corked, a socket collects this turn's UPDATEs and uncork()
    // hands them to the kernel in one writev, instead of one write (and, with TCP_NODELAY, at least one segment)
    // per UPDATE. write() still returns false past the high-water mark while corked.
    const corked = live.map((x) => x.c.socket as NonNullable<Connection['socket']>);
    for (const s of corked) s.cork();
    try {
      for (const x of live) {
        for (let i = 0; !x.c.blocked && x.c.socket; i++) {
          if (i === BATCHES_PER_TURN) {
            more = true;
            break;
          }
          const b = rib.nextPersonalBatch(x.p.coreId, this.batchPrefixes);
          if (b === null) break;
          if (this.emit(x.p, x.c, b, this.encodeOrDrop(x.p, b, x.c.ctx))) wrote.add(x);
        }
      }
      for (let i = 0; ; i++) {
        if (live.every((x) => x.c.blocked || !x.c.socket)) break; // resumed on 'drain'
        if (i === BATCHES_PER_TURN) {
          more = true;
          break;
        }
        const gb = rib.nextGroupBatch(g.id, this.batchPrefixes);
        if (gb === null) break;
        const byCtx = new Map<string, Buffer[] | null>();
        for (const x of live) {
          if (!x.c.socket) continue;
          const own = gb.except.get(x.p.coreId);
          if (own === null) continue;
          let bufs: Buffer[] | null;
          if (own !== undefined) bufs = this.encodeOrDrop(x.p, own, x.c.ctx);
          else {
            const k = ctxKey(x.c.ctx);
            bufs = byCtx.get(k) ?? null;
            if (!byCtx.has(k)) byCtx.set(k, (bufs = this.encodeOrDrop(x.p, gb.batch, x.c.ctx)));
          }
          if (this.emit(x.p, x.c, own ?? gb.batch, bufs)) wrote.add(x);
        }
      }
    } finally {
      for (const s of corked) s.uncork();
    }
    for (const x of wrote) this.progress(x.p, x.c, true);
    if (live.length > 1) {
      for (const x of live) {
        if ((x.c.socket?.writableLength ?? 0) <= SLOW_MEMBER_BYTES) continue;
        this.host.log('info', `falls behind its update group (${x.c.socket?.writableLength} bytes unsent): sent on its own from now`, x.p.address);
        rib.splitFromGroup(x.p.coreId);
        this.schedulePump(x.p);
      }
    }
    if (more) this.schedulePump(p);
  }

  /** Encode a batch for one peer; null (logged) when it cannot be, see encodeOrDrop's caller. */
  private encodeOrDrop(p: Peer, b: OutBatch, ctx: CodecContext): Buffer[] | null {
    try {
      return this.encodeBatch(b, ctx);
    } catch (e) {
      this.host.log('error', `cannot encode ${b.kind} for AFI ${b.afi}: ${(e as Error).message}`, p.address);
      // RFC 8654 §4: a route that does not fit the peer's largest message is not sent, and a previous version of
      // it the peer holds is withdrawn. Adj-RIB-Out must then say the peer does not have it, or the next identical
      // export would be suppressed as already sent.
      if (b.kind === 'announce') p.counters.unsendable += this.host.rib.unsendable(p.coreId, b);
      return null;
    }
  }

  /** Write a batch's messages; false when there were none. */
  private emit(p: Peer, c: Connection, b: OutBatch, bufs: Buffer[] | null): boolean {
    if (bufs === null || bufs.length === 0) return false;
    p.counters.messagesOut[b.kind === 'begin-refresh' || b.kind === 'end-refresh' ? 'ROUTE-REFRESH' : 'UPDATE'] += bufs.length;
    for (const buf of bufs) this.write(p, c, buf, false);
    return true;
  }

  private encodeBatch(b: OutBatch, ctx: CodecContext): Buffer[] {
    switch (b.kind) {
      case 'end-of-rib':
        return [endOfRib(b.afi, b.safi, ctx)];
      case 'begin-refresh':
      case 'end-refresh':
        return [encodeRouteRefresh({ afi: b.afi, safi: b.safi, subtype: b.kind === 'begin-refresh' ? 1 : 2 })];
      case 'withdraw':
        return packWithdrawals(prefixList(b.afi, b.safi, b.prefixes, b.pathIds), ctx);
      case 'announce': {
        const list = prefixList(b.afi, b.safi, b.prefixes, b.pathIds);
        if (b.afi === 1) return packUpdates(b.attrs.attrs, list, ctx);
        return packUpdates(b.attrs.attrs, list, ctx, undefined, b.attrs.nextHops);
      }
    }
  }
}

function prefixList(afi: number, safi: number, prefixes: PrefixKey[], pathIds: number[] | null): PrefixList {
  return afi === 1
    ? { afi: 1, safi, prefixes: prefixes as number[], pathIds }
    : { afi: 2, safi, prefixes: prefixes as string[], pathIds };
}
