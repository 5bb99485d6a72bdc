// ONE timer per peer: a setTimeout re-armed to the earliest deadline of its connections' FSMs
// (fsm.nextDeadline()); when it fires, every FSM of the peer ticks. A timer that fires late because this process
// stalled (stall.ts) does not count against the peer.
import type { Clock, FsmAction } from '../session/fsm.js';
import type { Connection, Peer } from './peer.js';
import type { StallWatch } from './stall.js';

export interface PeerTimerHost {
  clock: Clock;
  stalls: StallWatch;
  /** carry out what a tick of this connection's FSM says */
  run: (p: Peer, c: Connection, actions: readonly FsmAction[]) => void;
  log: (level: 'info' | 'error', msg: string, peer: string) => void;
  /** after the ticks: hand out best-path changes and pump */
  ticked: () => void;
}

export class PeerTimers {
  readonly #h: PeerTimerHost;

  constructor(h: PeerTimerHost) {
    this.#h = h;
  }

  arm(p: Peer): void {
    const clock = this.#h.clock;
    let at = Infinity;
    for (const c of p.conns) {
      const d = c.fsm.nextDeadline();
      if (d !== null && d < at) at = d;
    }
    if (at === p.timerAt && p.timer) return;
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
    p.timerAt = at;
    if (at === Infinity || p.removed) return;
    p.timer = setTimeout(() => {
      p.timer = null;
      p.timerAt = Infinity;
      const lateMs = clock.now() - at;
      // Node runs due timers before it polls sockets: after a stall this callback would come before the input that
      // arrived meanwhile (the KEEPALIVE that restarts the hold timer) is read. setImmediate runs after the poll
      // phase, so pending input is read first and the FSM judges the peer on what it really sent.
      setImmediate(() => this.#fire(p, at, lateMs));
    }, Math.max(0, Math.ceil(at - clock.now())));
  }

  #fire(p: Peer, at: number, lateMs: number): void {
    if (p.removed) return;
    const h = this.#h;
    const stalled = h.stalls.late(at, lateMs);
    for (const c of [...p.conns]) {
      if (c.dead) continue;
      try {
        if (stalled) {
          // time in which the process could neither read nor write is not the peer's silence
          const moved = c.fsm.forgiveStall(lateMs);
          if (moved.length > 0) h.log('info', `${moved.join(' and ')} timer fell due during a stall of this process (${Math.round(lateMs)} ms); not expired, the peer gets that time again`, p.address);
        }
        h.run(p, c, c.fsm.tick());
      } catch (e) {
        h.log('error', `internal error on a timer: ${String(e)}`, p.address);
      }
    }
    this.arm(p);
    h.ticked();
  }
}
