// Our own graceful restart, the restarting side (RFC 4724 §4.1): after a restart, route selection — here, sending
// our UPDATEs — waits until every peer has sent End-of-RIB (or the daemon says the restart is complete, or the
// selection deferral timer runs out), so that no peer gets a partial table followed by our End-of-RIB, which would
// make it sweep routes we simply had not re-learned yet.
import type { LocalRestartJson } from './json.js';
import { secondsLeft } from './llgr.js';
import { ribConn, type Peer } from './peer.js';

/** FRR's select-defer-time: the longest a restarted speaker holds its UPDATEs back waiting for End-of-RIB. */
export const DEFAULT_SELECTION_DEFERRAL_S = 360;

export interface DeferralHost {
  peers: () => Iterable<Peer>;
  log: (msg: string) => void;
  /** the deferral ended: let every peer send */
  ended: () => void;
}

export class SelectionDeferral {
  #active: boolean;
  #timer: NodeJS.Timeout | null = null;
  #deadline = 0;
  readonly #h: DeferralHost;

  constructor(active: boolean, h: DeferralHost) {
    this.#active = active;
    this.#h = h;
  }

  /** Still holding our UPDATEs back? */
  get active(): boolean {
    return this.#active;
  }

  /** The speaker starts: the deferral lasts at most this long. */
  start(seconds: number): void {
    if (!this.#active) return;
    const ms = seconds * 1000;
    this.#deadline = Date.now() + ms;
    this.#timer = setTimeout(() => this.end('selection deferral time ran out'), ms);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /**
   * End the deferral once every peer is Established and has sent End-of-RIB for all its families. A peer without
   * graceful restart promises no End-of-RIB, and one restarting itself (R bit) may be waiting for ours (RFC 4724
   * §4.1 avoids that deadlock): neither is waited for beyond being Established.
   */
  check(): void {
    if (!this.#active) return;
    for (const p of this.#h.peers()) {
      const gr = ribConn(p)?.session?.gracefulRestart;
      if (p.state !== 'Established') return;
      if (gr && !gr.restarting && p.eorPending.size > 0) return;
    }
    this.end('End-of-RIB received from every peer');
  }

  end(reason: string): void {
    if (!this.#active) return;
    this.#active = false;
    this.stop();
    this.#h.log(`sending our routes now (${reason})`);
    this.#h.ended();
  }

  /** Our own graceful restart as `skeinctl status` shows it: the R bit, and whether our UPDATEs still wait. */
  json(restarting: boolean): LocalRestartJson {
    const waitingFor: string[] = [];
    if (this.#active) {
      for (const p of this.#h.peers()) {
        const gr = ribConn(p)?.session?.gracefulRestart;
        if (p.state !== 'Established' || (gr && !gr.restarting && p.eorPending.size > 0)) waitingFor.push(p.address);
      }
    }
    return {
      restarting,
      deferring: this.#active,
      secondsLeft: this.#active && this.#deadline > 0 ? secondsLeft(this.#deadline) : null,
      waitingFor,
    };
  }
}
