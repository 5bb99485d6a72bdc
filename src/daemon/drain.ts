// Planned maintenance without loss: RFC 8326 graceful shutdown of this node (`skeinctl drain`, and a stop when
// skein.yaml's bgp.shutdownDrainSeconds is set).
//
// Draining re-announces every route this node advertises with the GRACEFUL_SHUTDOWN community (65535:0), and to iBGP
// peers with LOCAL_PREF 0 (RFC 8326 §4.1; the RIB does it, bgp/rib/export.ts). A peer with another path to the same
// destination prefers that one (§4.2: a receiver ranks the community lowest; skein does so on import,
// bgp/rib/import.ts), and traffic moves off this node while its sessions and routes are all still up, so nothing is
// dropped. After bgp.shutdownDrainSeconds (the time peers need to converge, §5) the drain is "drained".
//
//   skeinctl drain     draining -> drained after the wait; sessions stay up (the node is in maintenance)
//   skeinctl undrain   the routes are announced again without the community; no session is reset
//   SIGTERM/SIGINT     with bgp.shutdownDrainSeconds > 0: drain (unless drained already), wait what is left of the
//                      wait, then end every session with Cease / Administrative Shutdown and an RFC 8203 message, so
//                      peers withdraw our routes at once instead of keeping them for the graceful-restart time.
//                      With 0 (the default) a stop stays a restart: silent close, routes kept by the peers (RFC 4724).
//                      A second signal cuts the wait short.
//
// A drain started by `skeinctl drain` (maintenance) is kept across a restart of skeind (an upgrade in the middle of
// maintenance must not announce the node again): stateDirectory/drain.json holds its state and times, written at
// each change and removed by `skeinctl undrain`; the next skeind starts in that state (a wait that ran out meanwhile
// is "drained"). A drain that a stop began (bgp.shutdownDrainSeconds) is not kept: the node left, and when it starts
// again it is back. Calico itself has no graceful shutdown: its BIRD templates
// (node/filesystem/etc/calico/confd/templates/bird.cfg.template, bird_ipam.cfg.template) neither send nor honour
// 65535:0, and calico-node's shutdown hook (node/pkg/lifecycle/shutdown/shutdown.go) only records the time and sets
// the Kubernetes NetworkUnavailable condition; BIRD then goes with the container.
import { readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Gauge } from '../prom.js';
import type { Speaker } from '../../bgp/index.js';
import { ControlError } from '../control/index.js';
import type { DrainJson, DrainStateName } from '../control/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

/** `skeinctl drain` with bgp.shutdownDrainSeconds at 0 (a stop does not drain): how long until "drained". */
export const DEFAULT_DRAIN_SECONDS = 30;

/** The RFC 8203 text peers log when a stop after a drain ends their session. */
export const SHUTDOWN_MESSAGE = 'graceful shutdown (RFC 8326): node leaving';

/** Seconds a stop takes beyond the drain (closing sessions, the datastore, the FIB), for systemd's stop timeout. */
const STOP_MARGIN_S = 15;

const STATES: readonly DrainStateName[] = ['off', 'draining', 'drained'];

export interface DrainOptions {
  readonly log: Logger;
  readonly metrics: Metrics;
  /** skein.yaml's bgp.shutdownDrainSeconds now (a reload changes it) */
  readonly seconds: () => number;
  readonly speaker: () => Speaker | undefined;
  /** sd_notify (src/daemon/notify.ts): what `systemctl status` shows, and more stop time while a stop drains */
  readonly notify?: (state: string) => void;
  /** the clock (ms) and the timer, for a unit test of the logic */
  readonly now?: () => number;
  readonly setTimer?: (fn: () => void, ms: number) => { unref?: () => void };
  readonly clearTimer?: (t: unknown) => void;
  /** stateDirectory/drain.json: a `skeinctl drain` outlives a restart (read at construction); none: not kept */
  readonly stateFile?: string;
}

/** drain.json */
interface SavedDrain {
  readonly state: 'draining' | 'drained';
  /** ms since the epoch */
  readonly since: number;
  readonly until: number | null;
  readonly seconds: number;
}

/** drain.json as written by a previous skeind; anything else (edited, truncated, another version) is not. */
function isSavedDrain(v: unknown): v is SavedDrain {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Partial<Record<keyof SavedDrain, unknown>>;
  const num = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
  return (s.state === 'draining' || s.state === 'drained') && num(s.since) && num(s.seconds) && (s.until === null || num(s.until));
}

export class Drain {
  readonly #o: DrainOptions;
  readonly #now: () => number;
  #state: DrainStateName = 'off';
  #since: number | null = null;
  #until: number | null = null;
  #seconds = 0;
  #timer: unknown;
  /** set by a stop: undrain is refused, the sessions end when the wait is over */
  #stopping = false;
  #waiters: (() => void)[] = [];
  /** the drain running now is one a stop began (not kept across a restart) */
  #byStop = false;
  #warnedState = false;

  constructor(o: DrainOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#restore();
    // skein_drain_state{state}: 1 for the current state, 0 for the others (one series per state, as
    // skein_datastore_state), read when /metrics is scraped.
    const read = (): DrainStateName => this.#state;
    new Gauge({
      name: 'skein_drain_state',
      help: 'RFC 8326 graceful shutdown of this node (skeinctl drain, or a stop with bgp.shutdownDrainSeconds): 1 for the current state (off, draining, drained), 0 for the others',
      labelNames: ['state'],
      registers: [o.metrics.registry],
      collect() {
        for (const state of STATES) this.set({ state }, state === read() ? 1 : 0);
      },
    });
  }

  get state(): DrainStateName {
    return this.#state;
  }

  /** Status and `skeinctl drain --json`. */
  json(): DrainJson {
    const left = this.#state === 'draining' && this.#until !== null ? Math.max(0, Math.ceil((this.#until - this.#now()) / 1000)) : null;
    return {
      state: this.#state,
      since: this.#since === null ? null : new Date(this.#since).toISOString(),
      seconds: this.#seconds,
      secondsLeft: left,
      stopping: this.#stopping,
      shutdownDrainSeconds: this.#configured(),
    };
  }

  /**
   * The control method `drain`: params.seconds (optional) overrides the wait; params.wait resolves only once the
   * drain is over (drained, or undone). Starting a drain that runs already changes nothing.
   */
  control(params: Record<string, unknown>): DrainJson | Promise<DrainJson> {
    const s = params.seconds;
    if (s !== undefined && (typeof s !== 'number' || !Number.isInteger(s) || s < 0 || s > 3600)) {
      throw new ControlError(`drain: seconds must be a whole number from 0 to 3600, got ${JSON.stringify(s)}`, 'bad-params');
    }
    this.start(s, 'skeinctl drain');
    return params.wait === true ? this.settled() : this.json();
  }

  /** Start draining (no-op when draining or drained). */
  start(seconds: number | undefined, why: string): void {
    if (this.#state !== 'off') return;
    const configured = this.#configured();
    this.#seconds = seconds ?? (configured > 0 ? configured : DEFAULT_DRAIN_SECONDS);
    this.#byStop = why === 'stop';
    this.#until = this.#now() + this.#seconds * 1000;
    this.#enter('draining');
    this.#o.speaker()?.setDraining(true);
    this.#o.log.warn('graceful shutdown: draining (RFC 8326): routes announced with GRACEFUL_SHUTDOWN, LOCAL_PREF 0 to iBGP', { why, seconds: this.#seconds });
    this.#o.notify?.(`STATUS=draining (RFC 8326 graceful shutdown): peers get ${this.#seconds}s to move traffic`);
    this.#arm(this.#seconds * 1000);
  }

  /** The control method `undrain`: routes announced as before, sessions untouched. */
  undrain(): DrainJson {
    if (this.#stopping) throw new ControlError('skeind is stopping: the drain cannot be undone', 'stopping');
    if (this.#state === 'off') return this.json();
    this.#clear();
    this.#until = null;
    this.#enter('off');
    this.#o.speaker()?.setDraining(false);
    this.#o.log.warn('graceful shutdown undone: routes announced without GRACEFUL_SHUTDOWN again', {});
    this.#o.notify?.('STATUS=running; drain undone');
    this.#wake();
    return this.json();
  }

  /** A new speaker (an identity change replaced it): it advertises as the running one did. */
  attach(speaker: Speaker): void {
    if (this.#state !== 'off') speaker.setDraining(true);
  }

  /**
   * A stop (SIGTERM/SIGINT). With bgp.shutdownDrainSeconds 0 and no drain running: undefined at once, the stop is
   * a restart. Otherwise drain (unless drained already), wait what is left, and resolve with the RFC 8203 message
   * the sessions end with. No established peer: nobody to move traffic, no wait.
   */
  async beforeStop(): Promise<string | undefined> {
    const configured = this.#configured();
    if (configured === 0) return undefined;
    this.#stopping = true;
    // systemd's TimeoutStopSec (30 s in our unit) would SIGKILL a longer drain: ask for the time the drain needs
    // (EXTEND_TIMEOUT_USEC, systemd 236+), plus the rest of the stop
    this.#o.notify?.(`STOPPING=1\nEXTEND_TIMEOUT_USEC=${(configured + STOP_MARGIN_S) * 1_000_000}`);
    if (this.#state === 'off') this.start(configured, 'stop');
    else if (this.#state === 'draining' && this.#until !== null && this.#until - this.#now() > configured * 1000) {
      // a long manual drain: a stop waits no longer than the configured time
      this.#clear();
      this.#until = this.#now() + configured * 1000;
      this.#arm(configured * 1000);
    }
    if (this.#state === 'draining' && !this.#anyEstablished()) this.#drained();
    await this.settled();
    return SHUTDOWN_MESSAGE;
  }

  /** A stop drains first (bgp.shutdownDrainSeconds > 0). */
  get drainsOnStop(): boolean {
    return this.#configured() > 0;
  }

  /** A second signal: stop waiting now. */
  hurry(): void {
    if (this.#state !== 'draining') return;
    this.#o.log.warn('graceful shutdown: wait cut short', {});
    this.#drained();
  }

  /** Resolves when no drain is in its wait (drained, undone or never started). */
  settled(): Promise<DrainJson> {
    if (this.#state !== 'draining') return Promise.resolve(this.json());
    return new Promise((resolve) => this.#waiters.push(() => resolve(this.json())));
  }

  close(): void {
    this.#clear();
    this.#wake();
  }

  /** bgp.shutdownDrainSeconds; 0 when a configuration made without the key (an older test's object) has none */
  #configured(): number {
    const s = this.#o.seconds() as number | undefined;
    return s !== undefined && Number.isFinite(s) && s > 0 ? s : 0;
  }

  #anyEstablished(): boolean {
    const sp = this.#o.speaker();
    return sp !== undefined && sp.peerAddresses().some((a) => sp.peerInfo(a)?.state === 'Established');
  }

  #enter(state: DrainStateName, since = this.#now()): void {
    this.#state = state;
    this.#since = since;
    this.#save();
  }

  /** drain.json follows every change of a drain from `skeinctl drain`; written whole, then renamed into place. */
  #save(): void {
    const file = this.#o.stateFile;
    if (file === undefined || this.#byStop) return;
    try {
      if (this.#state === 'off') {
        try {
          unlinkSync(file);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
        return;
      }
      // skeind does not make the directory (systemd's StateDirectory= does): without it, nothing is kept
      if (!statSync(dirname(file), { throwIfNoEntry: false })?.isDirectory()) throw Object.assign(new Error(`${dirname(file)} does not exist`), { code: 'ENOENT' });
      const saved: SavedDrain = { state: this.#state, since: this.#since ?? this.#now(), until: this.#until, seconds: this.#seconds };
      writeFileSync(`${file}.tmp`, `${JSON.stringify(saved)}\n`, { mode: 0o640 });
      renameSync(`${file}.tmp`, file);
    } catch (e) {
      if (this.#warnedState) return;
      this.#warnedState = true;
      this.#o.log.warn('graceful shutdown: the drain state cannot be kept for a restart (stateDirectory)', { file, err: (e as Error).message });
    }
  }

  /** The state a previous skeind left in drain.json; anything unreadable is logged and ignored (undrained). */
  #restore(): void {
    const file = this.#o.stateFile;
    if (file === undefined) return;
    let saved: unknown;
    try {
      saved = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.#o.log.warn('graceful shutdown: drain.json unreadable; starting undrained', { file, err: (e as Error).message });
      return;
    }
    if (!isSavedDrain(saved)) {
      this.#o.log.warn('graceful shutdown: drain.json unreadable; starting undrained', { file, err: 'unexpected content' });
      return;
    }
    this.#seconds = saved.seconds;
    this.#state = saved.state;
    this.#since = saved.since;
    this.#until = saved.until;
    const left = saved.state === 'draining' && saved.until !== null ? saved.until - this.#now() : 0;
    if (saved.state === 'draining' && left > 0) this.#arm(left);
    else if (saved.state === 'draining') this.#drained(); // the wait ran out while skeind was away
    this.#o.log.warn('graceful shutdown: drain state from before the restart kept (skeinctl undrain ends it)', { state: this.#state, file });
  }

  #arm(ms: number): void {
    const set = this.#o.setTimer ?? ((fn: () => void, t: number) => setTimeout(fn, t));
    const timer = set(() => this.#drained(), ms);
    timer.unref?.();
    this.#timer = timer;
  }

  #clear(): void {
    if (this.#timer !== undefined) (this.#o.clearTimer ?? ((t: unknown) => clearTimeout(t as NodeJS.Timeout)))(this.#timer);
    this.#timer = undefined;
  }

  #drained(): void {
    if (this.#state !== 'draining') return;
    this.#clear();
    this.#until = null;
    this.#enter('drained');
    this.#o.log.warn('graceful shutdown: drained: peers had the time to move traffic off this node', { seconds: this.#seconds });
    this.#o.notify?.(`STATUS=drained (RFC 8326 graceful shutdown)${this.#stopping ? ': stopping' : ''}`);
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}
