// Resync: a full dump of the interfaces and of skein's routes, reconciled against the desired state.
//  - At start it is the adoption: every route of skein's protocol in a managed table becomes an entry whose `have`
//    is what the kernel holds and whose `want` is empty; it stays until markSynced() (the sweep) unless set again.
//  - Later it is the repair: after an overrun (ENOBUFS; notifications were lost), after link changes (the kernel
//    flushes routes of a downed link without notifying), after an unexpected EEXIST, after lost acknowledgements,
//    and once after a bulk write (route notifications were off).
// A dump started before an ACK or event never overwrites what they said (the per-entry stamp against the clock).
// Routes of other protocols are skipped by their rtm_protocol before anything is parsed.
import type { ErrnoException } from 'netlink/dist/raw.js';
import { AF_INET, AF_INET6, IFINFOMSG_LEN, NHMSG_LEN, RTM_GETLINK, RTM_GETNEXTHOP, RTM_GETROUTE, RTMSG_LEN, RTPROT_KERNEL } from './constants.js';
import { newRouteScan, parseLink, parseRoute, rtmProtocol, scanRoute } from './codec.js';
import { Slices, type Core } from './core.js';
import { INFLIGHT, WANTED } from './entries.js';
import { DumpError, dump, errnoCode } from './kernel.js';
import type { Link } from './links.js';
import { parseNexthop, type DumpedNexthop } from './nexthops.js';
import { OP_NONE } from './ownership.js';
import { fastMatch } from './targets.js';

export class Resync {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #reasons: string[] = [];
  /** performance.now() when a deferred resync was first asked for */
  #since = 0;
  #dumpGen = 0;
  /** the job in #running is a nexthop check only (checkNexthops), not a full dump */
  #light = false;
  #checkAgain = false;
  #checkTimer: NodeJS.Timeout | undefined;
  /** nexthop checks that found objects not as written (for tests and stats) */
  nexthopRepairs = 0;
  readonly core: Core;

  constructor(core: Core) {
    this.core = core;
  }

  /** A dump is running or scheduled. */
  busy(): boolean {
    return this.#running !== undefined || this.#timer !== undefined;
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#checkTimer) clearInterval(this.#checkTimer);
  }

  /** Check the kernel's nexthop objects every `ms` (0: never), besides the check in every full resync. */
  startNexthopChecks(ms: number): void {
    if (ms <= 0 || this.#checkTimer || !this.core.nexthops.enabled) return;
    this.#checkTimer = setInterval(() => this.checkNexthops(), ms);
    this.#checkTimer.unref();
  }

  /** Something may have been missed: dump after resyncDelayMs, gathering the reasons. */
  schedule(reason: string): void {
    if (this.core.closed || !this.core.started) return;
    this.#reasons.push(reason);
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#timer) return;
    this.#since = performance.now();
    this.#arm(this.core.resyncDelay);
  }

  /**
   * Run the pending resync after `delay`, but not while a burst of writes is still going out (their own
   * notifications are what overran the event socket; a dump per overrun would cost more than the burst), unless it
   * has waited resyncMaxDeferMs already.
   */
  #arm(delay: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const core = this.core;
      if (core.writer.busy() && performance.now() - this.#since < core.resyncMaxDefer) return this.#arm(core.resyncDelay);
      const why = [...new Set(this.#reasons)].join(', ');
      this.#reasons = [];
      this.run(why).catch((err: unknown) => core.warn(err));
    }, delay);
  }

  /** Dump now (or join the dump already running, and run again after it). */
  run(reason: string): Promise<void> {
    // a nexthop check is not a dump of the routes: run a real one after it (callers wait for that one)
    if (this.#running && this.#light) return this.#running.then(() => this.run(reason));
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    const run = (async () => {
      try {
        for (let attempt = 0; ; attempt++) {
          try {
            await this.#dumpAndReconcile(reason);
            break;
          } catch (err) {
            if (this.core.closed) return;
            if (attempt >= 5) throw err;
            // interrupted dumps (table changed meanwhile) and overruns are retried; give the storm a moment
            if (!(err instanceof DumpError)) throw err;
            await new Promise((r) => setTimeout(r, 20 * 2 ** attempt));
          }
        }
      } finally {
        this.#running = undefined;
        if (this.#again && !this.core.closed) {
          this.#again = false;
          this.schedule('changes during the last resync');
        }
        this.core.checkIdle();
      }
    })();
    this.#running = run;
    return run;
  }

  /**
   * Compare the kernel's nexthop objects with ours (fib/nexthops.ts verify) without dumping the routes: cheap (one
   * message per object, tens of them), so it runs periodically and whenever a route write that pointed at an object
   * was refused. A full resync does the same check, so none runs beside one; one asked for while a check runs
   * follows it.
   */
  checkNexthops(): void {
    const core = this.core;
    if (core.closed || !core.started || !core.nexthops.enabled || !core.dumper) return;
    if (this.busy()) {
      if (this.#light) this.#checkAgain = true; // a full resync checks them anyway
      return;
    }
    this.#light = true;
    const run = (async () => {
      core.dumper!.ref();
      try {
        await this.#verifyNexthops();
      } catch (err) {
        // an interrupted dump (objects changed meanwhile) is left to the next check
        if (!core.closed && !(err instanceof DumpError)) core.warn(err);
      } finally {
        core.dumper?.unref();
        this.#running = undefined;
        this.#light = false;
        core.checkIdle();
      }
      if (this.#again && !core.closed) {
        // a resync was asked for while the check ran (schedule() saw #running): arm it now
        this.#again = false;
        if (!this.#timer) {
          this.#since = performance.now();
          this.#arm(core.resyncDelay);
        }
      } else if (this.#checkAgain && !core.closed) {
        this.#checkAgain = false;
        this.checkNexthops();
      }
    })();
    this.#running = run;
  }

  /** Dump the nexthop objects and settle what differs from what fib/ wrote (the routes that used them too). */
  async #verifyNexthops(): Promise<void> {
    const core = this.core, nh = core.nexthops, sock = core.dumper;
    if (!sock || core.closed || !nh.enabled) return;
    // taken before the dump is asked for: every object acknowledged by then must be in it, unless deleted since
    const before = nh.acknowledged();
    const dumped = new Map<number, DumpedNexthop>();
    await dump(sock, RTM_GETNEXTHOP, 0, NHMSG_LEN, core.nextSeq(), core.timeoutMs * 4, (b, o, l) => {
      const d = parseNexthop(b, o, l);
      if (d !== undefined) dumped.set(d.id, d);
    });
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may have run during the dump
    if (core.closed) return;
    const r = nh.verify(before, dumped);
    if (r.gone.size === 0 && r.changed.size === 0) return;
    this.nexthopRepairs++;
    core.objectsGone(r.gone);
    core.objectsChanged(r.changed);
    core.retry.allNow(); // routes refused for an nhid the kernel no longer had: written now, with a new object
  }

  // ---------------------------------------------------------------- lost information

  /** A socket overran (ENOBUFS): notifications or replies were dropped. */
  overrun(which: string): void {
    const core = this.core;
    core.counters.overruns++;
    core.bus.emit('overrun', which);
    if (which === 'requests') core.writer.abandonAll('request socket overrun');
    this.schedule(`${which} socket overrun`);
  }

  onSocketError(which: string, e: ErrnoException): void {
    if (errnoCode(e) === 'ENOBUFS') return this.overrun(which);
    this.core.bus.emit('warning', new Error(`netlink ${which} socket: ${e.message}`, { cause: e }));
    this.schedule(`${which} socket error`);
  }

  // ---------------------------------------------------------------- dump and reconcile

  async #dumpAndReconcile(reason: string): Promise<void> {
    const core = this.core;
    const sock = core.dumper;
    if (!sock || core.closed) return;
    core.counters.resyncs++;
    core.bus.emit('resync', reason);
    sock.ref();
    const routes = core.routes;
    const byName = core.links.byName;
    try {
      // interfaces first: device routes resolve names through them
      const links = new Map<number, Link>();
      await dump(sock, RTM_GETLINK, 0, IFINFOMSG_LEN, core.nextSeq(), core.timeoutMs * 4, (b, o, l) => {
        const li = parseLink(b, o, l);
        if (li?.name !== undefined) links.set(li.index, { name: li.name, flags: li.flags });
      });
      core.links.replaceAll(links);
      // objects next: a route dump is read against them, and one deleted unseen must not be written to again
      if (core.nexthops.enabled) await this.#verifyNexthops();
      const gen = ++this.#dumpGen;
      const sc = newRouteScan();
      const since = core.clock; // an ACK or event newer than this knows better than the dump
      core.dumping = true;
      const nh = core.nexthops;
      const connected: Parameters<typeof nh.setConnected>[0] = [];
      const foreign = new Set<number>();
      for (const af of [AF_INET, AF_INET6]) {
        await dump(sock, RTM_GETROUTE, af, RTMSG_LEN, core.nextSeq(), core.timeoutMs * 4, (b, o, l) => {
          const proto = rtmProtocol(b, o);
          if (proto === RTPROT_KERNEL && nh.enabled) nh.connectedFromDump(b, o, l, connected); // devices of gateways
          if (proto !== core.protocol) {
            // another protocol's route: never adopted; but if it points at one of our objects, that object stays
            if (nh.enabled && scanRoute(b, o, l, sc) && sc.nhid !== 0) foreign.add(sc.nhid);
            return;
          }
          // fast path: the route is exactly what is wanted (the common case after a bulk write)
          const e0 = scanRoute(b, o, l, sc) ? routes.entryForScan(b, sc) : undefined;
          if (e0 && e0.want && fastMatch(e0.want, b, sc, byName) && sc.nhid === nh.idFor(e0.want, core.links)) {
            e0.seen = gen;
            if (e0.stamp <= since && !(e0.flags & INFLIGHT)) {
              if (e0.have === null) core.counts.installed++;
              e0.have = e0.want;
              e0.nhid = sc.nhid;
            }
            return;
          }
          const k = parseRoute(b, o, l);
          if (k === undefined || !routes.managed.has(k.table)) return;
          const e = routes.entryForKernel(k, true)!;
          e.seen = gen;
          if (e.stamp <= since && !(e.flags & INFLIGHT)) {
            if (e.have === null) core.counts.installed++;
            e.have = core.observed(e, k);
            e.nhid = k.nhid ?? 0;
          }
        });
        // the connected routes are complete once both families are read (IPv4 is dumped first)
        if (af === AF_INET6 && nh.enabled) {
          nh.setConnected(connected);
          nh.setForeignUse(foreign);
        }
      }
      core.dumping = false;
      // reconcile: what the dump lacks is gone; whatever differs from the desired state is queued. In slices of a few
      // ms (a million entries take a few hundred): the loop keeps turning meanwhile. What happens to an entry between
      // two slices is safe: an ACK or event stamps it after `since` (so the dump does not overwrite it), a new entry
      // has nothing the dump could have seen, and an entry dropped meanwhile is skipped (routes.drop checks that the
      // table still holds that entry).
      const linkGen = core.links.gen;
      const slices = new Slices();
      let paused = false;
      for (const e of routes.all()) {
        if (slices.due()) {
          await slices.pause();
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may have run during the pause
          if (core.closed) return;
          paused = true;
        }
        if (paused && !routes.holds(e)) continue; // dropped during a pause
        if (e.seen !== gen && e.stamp <= since && !(e.flags & INFLIGHT)) {
          if (e.have !== null) core.counts.installed--;
          e.have = null;
          e.nhid = 0;
        }
        if (e.flags & INFLIGHT) continue;
        const w = e.want;
        // in sync (most of a big table): skip the general comparison
        if (w !== null && e.have === w && !e.fail && w.encGen === linkGen && (w.blackhole || w.enc !== undefined) &&
          e.nhid === nh.idFor(w, core.links)) continue;
        if (core.opFor(e) !== OP_NONE) {
          if (e.fail) continue; // retried on its own schedule (or now, after a link change)
          if (e.want && e.flags & WANTED && e.have === null && reason !== 'start') core.counters.repairs++;
          core.writer.enqueue(e);
        } else {
          core.forget(e);
        }
      }
    } finally {
      core.dumping = false;
      sock.unref();
    }
  }
}
