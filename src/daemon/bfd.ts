// BFD in skeind: which BGP sessions run BFD (RFC 5880), with which timers, and what a BFD Down does.
//
// Which: Calico Enterprise's BFDConfiguration resources (config/bfd.ts) from the datastore. A BGP peer runs BFD
// when the interface the kernel reaches it over matches an `interfaces[].matchPattern` of a resource whose
// nodeSelector selects this node. The interface and the local address come from the kernel's route to the peer
// (`ip route get`, the answer the BGP session's own packets get): a route without a gateway means the peer is on a
// connected subnet, a single-hop session (RFC 5881); a route through a gateway means a multihop one (RFC 5883).
// Peers whose route cannot be read are retried on every reconcile (datastore changes, and every RECHECK_MS).
//
// What a Down does (the decision written in docs/contract.md, "BFD"): it ends the BGP session with Cease / BFD
// Down (RFC 9384) and withdraws the peer's routes at once, with no graceful-restart retention, whatever the
// peer's C bit says (RFC 5882 §4.3.1 leaves the choice to the operator; BIRD's `bfd on` and FRR's default make the
// same one). The kernel is written in the same turn of the event loop. Not a Down: a session that never came Up,
// the peer signalling AdminDown (RFC 5882 §3.2: not a failure), or our own removal of a session.
//
// The sessions themselves run in a BfdTransport: the UDP driver in this process (bgp/bfd/udp.ts), or skein-bfdd,
// a companion process that outlives skeind (src/daemon/bfd-companion.ts chooses, by skein.yaml's bfd.companion).
import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import {
  BfdUdpDriver, keyString, type BfdKey, type BfdOutput, type BfdParams, type BfdSessionInfo,
} from '../../bgp/index.js';
import { bfdSettingsFor, type BFDInterface, type Model } from '../../config/index.js';
import type { Logger } from '../log.js';
import type { BfdJson } from '../control/types.js';
import { LateTimerLog } from './bfd-late.js';

/** How often peers are looked at again without a datastore change (a route to a peer may appear later). */
export const RECHECK_MS = 10_000;

/** The kernel's route to a peer, as far as BFD needs it. */
export interface PeerRoute {
  readonly dev: string;
  /** the source address the kernel would use */
  readonly local: string;
  /** the peer is behind a gateway: multihop (RFC 5883) */
  readonly viaGateway: boolean;
}

/** Which process runs the sessions: skein-bfdd (the companion), skeind itself, or not chosen yet (no session added). */
export type BfdRunsIn = 'skein-bfdd' | 'skeind' | 'undecided';

/** Where BFD sessions run. BfdUdpDriver is one (in this process). */
export interface BfdTransport {
  /** which process runs the sessions (`skeinctl bfd` shows it per session) */
  readonly runsIn: () => BfdRunsIn;
  add(key: BfdKey, params: BfdParams): Promise<void>;
  update(key: BfdKey, params: BfdParams): void;
  remove(key: BfdKey): void;
  sessions(): BfdSessionInfo[];
  close(opts?: { graceful?: boolean }): Promise<void>;
}

export interface BfdWiringOptions {
  readonly log: Logger;
  readonly nodeName: string;
  /** the datastore's current model */
  readonly model: () => Model | undefined;
  /** the BGP peers this node has now (addresses) */
  readonly peers: () => readonly string[];
  /** a BFD session that was Up went Down: end the BGP session without retention */
  readonly onDown: (peer: string, reason: string, remoteControlPlaneIndependent: boolean) => void;
  /** a BFD session came Up: the path to the peer works (the speaker lifts its restart damping, speaker/path-up.ts) */
  readonly onUp?: (peer: string) => void;
  /** the kernel's route to an address (tests inject one) */
  readonly resolve?: (address: string) => Promise<PeerRoute>;
  /** builds the transport; events go to `onEvent` (default: the in-process UDP driver) */
  readonly transport?: (onEvent: (e: BfdOutput) => void, onError: (e: Error, where: string) => void) => BfdTransport;
}

const DIAG_NAMES = [
  'No Diagnostic', 'Control Detection Time Expired', 'Echo Function Failed', 'Neighbor Signaled Session Down',
  'Forwarding Plane Reset', 'Path Down', 'Concatenated Path Down', 'Administratively Down', 'Reverse Concatenated Path Down',
];

/** `ip -j route get ADDR`: the interface, the source address, and whether a gateway is in between. */
export function kernelRouteTo(address: string, bin = 'ip'): Promise<PeerRoute> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['-j', 'route', 'get', address], { timeout: 5000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`no route to ${address}: ${String(stderr).trim() || err.message}`));
      try {
        const r = (JSON.parse(stdout) as { dev?: string; prefsrc?: string; gateway?: string }[])[0];
        if (!r?.dev || !r.prefsrc) return reject(new Error(`the route to ${address} names no interface or source address`));
        resolve({ dev: r.dev, local: r.prefsrc, viaGateway: r.gateway !== undefined });
      } catch (e) {
        reject(new Error(`ip route get ${address}: unreadable output: ${(e as Error).message}`));
      }
    });
  });
}

export function paramsOf(s: BFDInterface): BfdParams {
  return {
    desiredMinTxUs: s.minimumSendIntervalMs * 1000,
    requiredMinRxUs: s.minimumRecvIntervalMs * 1000,
    idleTxUs: s.idleSendIntervalMs * 1000,
    detectMult: s.multiplier,
  };
}

const sameParams = (a: BfdParams, b: BfdParams): boolean =>
  a.desiredMinTxUs === b.desiredMinTxUs && a.requiredMinRxUs === b.requiredMinRxUs && a.idleTxUs === b.idleTxUs && a.detectMult === b.detectMult;

interface Running {
  readonly key: BfdKey;
  params: BfdParams;
}

export class BfdWiring {
  readonly #o: BfdWiringOptions;
  #transport: BfdTransport | undefined;
  /** peer address → its session */
  readonly #running = new Map<string, Running>();
  readonly #pending = new Map<string, string>();
  #queue: Promise<void> = Promise.resolve();
  #again = false;
  #busy = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #late: LateTimerLog;

  constructor(o: BfdWiringOptions) {
    this.#o = o;
    this.#late = new LateTimerLog(o.log);
  }

  /** schedule() calls from outside (its own RECHECK_MS timer not counted): tests see which changes asked for a look */
  requests = 0;

  /** Looks at the configuration again soon (coalesced); also runs every RECHECK_MS. */
  schedule(): void {
    this.requests++;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#busy) {
      this.#again = true;
      return;
    }
    this.#busy = true;
    this.#queue = this.#queue.then(async () => {
      do {
        this.#again = false;
        try {
          await this.#reconcile();
        } catch (e) {
          this.#o.log.warn('bfd: reconciling sessions failed', { err: e });
        }
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may have run while reconciling
      } while (this.#again && !this.#closed);
      this.#busy = false;
    });
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#schedule(), RECHECK_MS);
      this.#timer.unref();
    }
  }

  /** Resolves when no reconcile is running. */
  settled(): Promise<void> {
    return this.#queue;
  }

  sessions(): BfdSessionInfo[] {
    return this.#transport?.sessions() ?? [];
  }

  /** The session of one BGP peer, if BFD runs for it. */
  sessionOf(peer: string): BfdSessionInfo | undefined {
    const r = this.#running.get(peer);
    if (!r) return undefined;
    const k = keyString(r.key);
    return this.sessions().find((s) => keyString(s.key) === k);
  }

  /** What `skeinctl status` adds to a peer's INFO column: "BFD Up", "BFD Down (Control Detection Time Expired)". */
  infoFor(peer: string): string | undefined {
    const s = this.sessionOf(peer);
    if (s) return `BFD ${s.state}${s.state !== 'Up' && s.lastDownReason ? ` (${s.lastDownReason})` : ''}`;
    const p = this.#pending.get(peer);
    return p !== undefined ? `BFD not running: ${p}` : undefined;
  }

  json(): BfdJson {
    const nowMs = performance.now();
    const nowDate = Date.now();
    const ms = (us: number): number => us / 1000;
    const runsIn = this.#transport?.runsIn() ?? 'undecided';
    return {
      sessions: this.sessions().map((s) => ({
        peer: s.key.peer,
        runsIn,
        local: s.key.local,
        interface: s.key.interface,
        multihop: s.key.multihop,
        state: s.state,
        remoteState: s.remoteState,
        since: new Date(nowDate - (nowMs - s.since)).toISOString(),
        localDiag: DIAG_NAMES[s.localDiag] ?? `diag ${s.localDiag}`,
        lastDownReason: s.lastDownReason,
        upCount: s.upCount,
        downCount: s.downCount,
        remoteControlPlaneIndependent: s.remoteControlPlaneIndependent,
        timers: {
          desiredMinTx: ms(s.desiredMinTxUs), requiredMinRx: ms(s.requiredMinRxUs), detectMult: s.detectMult,
          txInterval: ms(s.txIntervalUs), detectTime: ms(s.detectTimeUs),
          remoteMinTx: ms(s.remoteMinTxUs), remoteMinRx: ms(s.remoteMinRxUs), remoteDetectMult: s.remoteDetectMult,
        },
      })).sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0)),
      pending: [...this.#pending].map(([peer, reason]) => ({ peer, reason })).sort((a, b) => (a.peer < b.peer ? -1 : 1)),
    };
  }

  /** Stops every session. graceful: AdminDown first (a planned stop); otherwise the sockets just close. */
  async close(opts: { graceful?: boolean } = {}): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#queue;
    await this.#transport?.close(opts);
    this.#transport = undefined;
  }

  #ensureTransport(): BfdTransport {
    if (this.#transport) return this.#transport;
    const onEvent = (e: BfdOutput): void => this.#onEvent(e);
    const onError = (e: Error, where: string): void => this.#o.log.debug('bfd socket', { where, err: e });
    this.#transport = this.#o.transport ? this.#o.transport(onEvent, onError) : udpTransport(onEvent, onError);
    return this.#transport;
  }

  async #reconcile(): Promise<void> {
    const model = this.#o.model();
    if (!model || this.#closed) return;
    const resources = model.list('BFDConfiguration');
    const labels = model.node(this.#o.nodeName)?.metadata.labels ?? {};
    const peers = new Set(this.#o.peers());
    const resolve = this.#o.resolve ?? ((a: string) => kernelRouteTo(a));
    const wanted = new Map<string, { key: BfdKey; params: BfdParams }>();
    this.#pending.clear();
    if (resources.length > 0) {
      for (const peer of peers) {
        if (isIP(peer) === 0) continue; // a link-local peer with a scope: not supported yet
        let route: PeerRoute;
        try {
          route = await resolve(peer);
        } catch (e) {
          // Without a route the BGP session cannot come up either; keep a running session as it is.
          const r = this.#running.get(peer);
          if (r) wanted.set(peer, { key: r.key, params: r.params });
          else this.#pending.set(peer, (e as Error).message);
          continue;
        }
        const s = bfdSettingsFor(resources, labels, route.dev);
        if (!s) continue;
        wanted.set(peer, {
          key: { peer, local: route.local, interface: route.viaGateway ? '' : route.dev, multihop: route.viaGateway },
          params: paramsOf(s),
        });
      }
    }
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may have run while a route was resolved
    if (this.#closed) return;
    for (const [peer, r] of [...this.#running]) {
      const w = wanted.get(peer);
      if (w && keyString(w.key) === keyString(r.key)) continue;
      this.#transport?.remove(r.key);
      this.#running.delete(peer);
      this.#o.log.info('bfd session removed', { peer, reason: w ? 'the route to the peer changed' : 'no BFDConfiguration applies any more, or the peer is gone' });
    }
    for (const [peer, w] of wanted) {
      const r = this.#running.get(peer);
      if (r) {
        if (!sameParams(r.params, w.params)) {
          this.#transport?.update(r.key, w.params);
          r.params = w.params;
          this.#o.log.info('bfd timers changed', { peer, ...timersLog(w.params) });
        }
        continue;
      }
      try {
        await this.#ensureTransport().add(w.key, w.params);
        this.#running.set(peer, { key: w.key, params: w.params });
        this.#o.log.info('bfd session added', { peer, local: w.key.local, interface: w.key.interface || undefined, multihop: w.key.multihop, ...timersLog(w.params) });
      } catch (e) {
        this.#pending.set(peer, (e as Error).message);
        this.#o.log.warn('bfd: cannot start a session', { peer, err: e });
      }
    }
  }

  #onEvent(e: BfdOutput): void {
    if (e.type === 'send') return;
    if (e.type === 'late') return this.#late.note(e);
    const peer = e.key.peer;
    const mine = this.#running.get(peer);
    if (!mine || keyString(mine.key) !== keyString(e.key)) return;
    if (e.type === 'up') {
      this.#o.log.info('bfd session up', { peer, remoteControlPlaneIndependent: e.remoteControlPlaneIndependent });
      this.#o.onUp?.(peer);
    }
    else if (e.type === 'down') {
      const remoteState = this.sessionOf(peer)?.remoteState;
      // RFC 5882 §3.2: the peer taking its session AdminDown is not a path failure; our own Stop is not one either.
      if (e.to === 'AdminDown' || remoteState === 'AdminDown') {
        this.#o.log.info('bfd session administratively down; the BGP session is left alone', { peer, reason: e.reason });
        return;
      }
      this.#o.log.warn('bfd session down: ending the BGP session and withdrawing its routes', { peer, reason: e.reason, remoteControlPlaneIndependent: e.remoteControlPlaneIndependent });
      this.#o.onDown(peer, e.reason, e.remoteControlPlaneIndependent);
    }
  }
}

function timersLog(p: BfdParams): Record<string, number> {
  return { minTxMs: p.desiredMinTxUs / 1000, minRxMs: p.requiredMinRxUs / 1000, idleTxMs: p.idleTxUs / 1000, multiplier: p.detectMult };
}

/** The in-process UDP driver as a transport. */
export function udpTransport(onEvent: (e: BfdOutput) => void, onError: (e: Error, where: string) => void): BfdTransport {
  const d = new BfdUdpDriver({
    onEvent: (e) => {
      if (e.type !== 'discard') onEvent(e);
    },
    onError,
  });
  return {
    runsIn: () => 'skeind',
    add: (k, p) => d.add(k, p),
    update: (k, p) => d.update(k, p),
    remove: (k) => d.remove(k),
    sessions: () => d.manager.sessions(),
    close: (o) => d.close(o),
  };
}
