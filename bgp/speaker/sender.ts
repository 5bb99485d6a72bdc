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
    if (!ok) c.blocked = true;
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

  schedulePump(p: Peer): void {
    if (p.pumpScheduled) return;
    p.pumpScheduled = true;
    setImmediate(() => {
      p.pumpScheduled = false;
      this.pump(p);
    });
  }

  /** Send queued work until the socket pushes back, or a turn's share is used (then continue next turn). */
  pump(p: Peer): void {
    const c = ribConn(p);
    if (!c || !c.socket || c.blocked || c.fsm.state !== 'Established' || this.host.deferring()) return;
    let wrote = false;
    let more = true;
    // One socket write for the whole turn: corked, the socket collects this turn's UPDATEs and uncork() hands them
    // to the kernel in one writev, instead of one write (and, with TCP_NODELAY, at least one segment) per UPDATE.
    // write() still returns false past the high-water mark while corked, so a slow reader pushes back as before.
    const sock = c.socket;
    sock.cork();
    try {
      for (let i = 0; i < BATCHES_PER_TURN; i++) {
        const b = this.host.rib.nextBatch(p.coreId, this.batchPrefixes);
        if (b === null) {
          more = false;
          break;
        }
        let bufs: Buffer[];
        try {
          bufs = this.encodeBatch(b, c.ctx);
        } catch (e) {
          this.host.log('error', `cannot encode ${b.kind} for AFI ${b.afi}: ${(e as Error).message}`, p.address);
          // RFC 8654 §4: a route that does not fit the peer's largest message is not sent, and a previous version of
          // it the peer holds is withdrawn. Adj-RIB-Out must then say the peer does not have it, or the next identical
          // export would be suppressed as already sent.
          if (b.kind === 'announce') p.counters.unsendable += this.host.rib.unsendable(p.coreId, b);
          continue;
        }
        p.counters.messagesOut[b.kind === 'begin-refresh' || b.kind === 'end-refresh' ? 'ROUTE-REFRESH' : 'UPDATE'] += bufs.length;
        for (const buf of bufs) this.write(p, c, buf, false);
        wrote ||= bufs.length > 0;
        if (c.blocked || !c.socket) {
          more = false; // resumed on 'drain'
          break;
        }
      }
    } finally {
      sock.uncork();
    }
    if (wrote) this.progress(p, c, true);
    if (more) this.schedulePump(p);
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
