// The FSM's actions carried out (session/fsm.ts decides, this file does): connect, close, send, the shown state,
// and the entry and exit actions of Established — entering it puts the peer into the RIB (peerUp, graceful restart's
// up, End-of-RIB bookkeeping), leaving it takes the peer out (graceful restart decides what is kept, RFC 4724 §4.2)
// and lets a second connection carry on (RFC 4271 §6.8). One place for them, as OpenBGPD's session.c keeps its
// state-change actions together; the speaker keeps the peer lifecycle and the events that feed the FSM.
import { performance } from 'node:perf_hooks';
import type { PeerConfig, RibCore } from '../rib/core.js';
import type { FsmAction, State } from '../session/fsm.js';
import type { NegotiatedSession } from '../session/negotiate.js';
import { familyKey } from '../wire/constants.js';
import { DEFAULT_CONTEXT } from '../wire/types.js';
import { isEndOfRib } from '../wire/update.js';
import type { SpeakerOptions } from './config.js';
import type { Connections } from './connection.js';
import type { SelectionDeferral } from './deferral.js';
import type { Connection, Peer } from './peer.js';
import type { PeerTimers } from './peer-timer.js';
import { refreshRequested } from './route-refresh.js';
import type { Sender } from './sender.js';
import { noteDown } from './stats.js';
import type { EndOfRibEvent, PeerStateEvent } from './types.js';

/** What the actions need of the speaker. */
export interface ActionHost {
  readonly rib: RibCore;
  readonly opts: SpeakerOptions;
  readonly conns: Connections;
  readonly sender: Sender;
  readonly timers: PeerTimers;
  readonly deferral: SelectionDeferral;
  /** the speaker runs (not stopping): a session that ends may keep its routes for graceful restart */
  running: () => boolean;
  /** the core's view of a peer, with our end of the connection as one of our addresses (speaker.ts coreConfig) */
  coreConfig: (p: Peer, c: Connection) => PeerConfig;
  scheduleFlush: () => void;
  emit: (event: 'peer' | 'endOfRib', payload: PeerStateEvent | EndOfRibEvent) => void;
}

export class Actions {
  readonly #h: ActionHost;

  constructor(h: ActionHost) {
    this.#h = h;
  }

  /** Carry out a connection's FSM actions in order; silent: a NOTIFICATION is not sent (a quiet close). */
  run(p: Peer, c: Connection, actions: readonly FsmAction[], silent: boolean): void {
    const h = this.#h;
    for (const a of actions) {
      switch (a.type) {
        case 'connect':
          h.conns.connect(p, c);
          break;
        case 'close':
          h.conns.close(c);
          break;
        case 'send':
          if (silent && a.message.type === 'NOTIFICATION') break;
          h.sender.send(p, c, a.message);
          break;
        case 'setTimer':
        case 'clearTimer':
          break; // the single timer is re-armed from nextDeadline() below
        case 'stateChange':
          if (c === p.primary) this.showState(p, a.to);
          break;
        case 'established':
          this.established(p, c, a.session);
          break;
        case 'update':
          if (c.inRib) {
            const eor = isEndOfRib(a.message);
            if (eor) this.endOfRib(p, eor.afi, eor.safi);
            else {
              const timed = h.opts.onUpdateApplied;
              const t0 = timed ? performance.now() : 0;
              h.rib.applyUpdate(p.coreId, a.message);
              if (timed) timed((performance.now() - t0) / 1000);
            }
          }
          break;
        case 'routeRefresh':
          refreshRequested(h.rib, p, a.afi, a.safi, a.subtype);
          h.sender.schedulePump(p);
          break;
        case 'down':
          // A silent close sent no NOTIFICATION (see 'send' above): neither count nor report one.
          if (silent && a.notification?.sent) {
            this.down(p, c, { type: 'down', reason: `${a.reason}; closed without a NOTIFICATION`, wasEstablished: a.wasEstablished });
          } else this.down(p, c, a);
          break;
      }
    }
    h.timers.arm(p);
  }

  private showState(p: Peer, to: State): void {
    if (p.state === to) return;
    const from = p.state;
    p.state = to;
    p.since = new Date();
    const ev: PeerStateEvent = { address: p.address, from, state: to, since: p.since, info: p.info };
    this.#h.emit('peer', ev);
  }

  /** Entry into Established: the session's terms, the other connections, the RIB, graceful restart. */
  private established(p: Peer, c: Connection, s: NegotiatedSession): void {
    const h = this.#h;
    c.session = s;
    c.ctx = s.codec;
    c.framer.extendedMessage = s.extendedMessage;
    if (c !== p.primary) this.promote(p, c);
    // Other connections: one still in the core (should not happen after collision
    // handling) goes first; one that is idle, dialling or waiting would only
    // collide with this session later (§6.8 closes it then), so it goes now. One
    // in OpenSent is closed when its OPEN arrives.
    for (const x of [...p.conns]) {
      if (x !== c && (x.inRib || x.fsm.state === 'Idle' || x.fsm.state === 'Connect' || x.fsm.state === 'Active')) this.discard(p, x);
    }
    h.rib.updatePeer(p.coreId, h.coreConfig(p, c));
    p.gr.up(s);
    p.eorPending.clear();
    for (const f of s.families) p.eorPending.add(f);
    h.rib.peerUp(p.coreId, s);
    // A peer that cannot resend its routes on request (no RFC 2918 route refresh): keep what it sends before the
    // import rules, so a change of them applies without a reset (BIRD's `import table`, soft-reconfiguration inbound).
    h.rib.keepReceived(p.coreId, !s.routeRefresh);
    c.inRib = true;
    p.counters.established++;
    p.info = '';
    this.showState(p, 'Established');
    h.sender.schedulePump(p);
    h.deferral.check();
  }

  /** Exit from a session (Established or not): counters, graceful restart's say on the routes, a second connection. */
  private down(p: Peer, c: Connection, a: Extract<FsmAction, { type: 'down' }>): void {
    noteDown(p, c, a);
    if (c.inRib) {
      c.inRib = false;
      p.gr.down(c.session, { reason: a.reason, ...(a.notification ? { notification: a.notification } : {}), mayRetain: this.#h.running() && !p.removed });
      this.#h.scheduleFlush();
    }
    c.session = null;
    c.ctx = DEFAULT_CONTEXT;
    c.blocked = false;
    c.sendPending = false;
    if (c !== p.primary) {
      this.discard(p, c);
      return;
    }
    // the primary failed while a second connection is still trying: that one carries on
    const other = p.conns.find((x) => x !== c && !x.dead);
    if (other) {
      this.promote(p, other);
      this.discard(p, c);
    }
  }

  /** End-of-RIB from the peer (RFC 4724 §2): graceful restart sweeps what it left stale, deferral may end. */
  private endOfRib(p: Peer, afi: number, safi: number): void {
    const f = familyKey(afi, safi);
    p.eorPending.delete(f);
    p.gr.endOfRib(f);
    this.#h.emit('endOfRib', { peer: p.address, afi, safi } satisfies EndOfRibEvent);
    this.#h.deferral.check();
  }

  /** This connection becomes the one whose state the peer shows. */
  promote(p: Peer, c: Connection): void {
    p.primary = c;
    this.showState(p, c.fsm.state);
  }

  /** Take a connection out of its peer for good (after its last actions ran). */
  discard(p: Peer, c: Connection): void {
    if (c.dead) return;
    if (c.inRib) {
      c.inRib = false;
      this.#h.rib.peerDown(p.coreId);
      this.#h.scheduleFlush();
    }
    this.#h.conns.close(c);
    c.dead = true;
    const i = p.conns.indexOf(c);
    if (i >= 0) p.conns.splice(i, 1);
    this.#h.timers.arm(p);
  }
}
