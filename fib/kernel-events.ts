// The kernel's notifications, as the event reader (event-reader.ts) forwards them: route events of skein's
// protocol written by someone else (`ip route del` by hand, another skeind), link events, and routes of other
// protocols in the main and local tables (only announced: the 'foreignRoute' event). Notifications of our
// own writes are dropped in the reader (their ACKs already said it all) and only counted, for the writer's flow
// control. A route event updates what the kernel holds and queues a repair when that differs from what is wanted;
// a link event may change how named devices resolve, and the kernel flushes routes of a downed link without
// notifying, so it schedules a dump and retries failed routes at once.
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import {
  NLMSG_HDRLEN, NLMSG_OVERRUN, RTM_DELLINK, RTM_DELNEXTHOP, RTM_DELROUTE, RTM_NEWLINK, RTM_NEWNEXTHOP, RTM_NEWROUTE,
  RTMSG_LEN, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_LINK, RTNLGRP_NEXTHOP,
} from './constants.js';
import { parseLink, parseRoute, rtmProtocol } from './codec.js';
import type { Core } from './core.js';
import { INFLIGHT, EVENT_SEEN } from './entries.js';
import { runEventReader, type EventReaderConfig, type EventReaderMessage } from './event-reader.js';
import { carrierOk } from './nexthops.js';
import { OP_NONE, isOthersWriteOfOurs } from './ownership.js';
import type { KernelRoute } from './types.js';

/**
 * The reader on the programming thread (event-reader.ts, the default), behind a worker's interface. What it passes
 * on arrives as a worker's message would, after the callback that caused it (a microtask): a 'report' asked for
 * inside the writer's pump is handled after the pump, never inside it.
 */
export class InlineReader extends EventEmitter {
  readonly #handle: (m: unknown) => void;
  #closed = false;

  constructor(cfg: EventReaderConfig) {
    super();
    this.#handle = runEventReader(cfg, (m) => queueMicrotask(() => this.emit('message', m)), () => {
      this.#closed = true;
      queueMicrotask(() => this.emit('exit', 0));
    });
    queueMicrotask(() => this.emit('message', { kind: 'ready' } satisfies EventReaderMessage));
  }

  postMessage(m: unknown): void {
    if (!this.#closed) this.#handle(m);
  }

  terminate(): Promise<number> {
    this.postMessage('close');
    return Promise.resolve(0);
  }
}

/** Start the reader (on this thread, or in a worker with `eventThread`), subscribed to link and route events; resolves once it listens. */
export function startEventReader(core: Core): Promise<void> {
  const cfg: EventReaderConfig = {
    recvBufferSize: core.rcvbuf, protocol: core.protocol, skipPort: core.cmdPort, directPort: core.directPort,
    // nexthop notifications: objects of ours deleted or replaced by someone else are re-asserted (fib/nexthops.ts)
    groups: [RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, ...(core.nexthopObjects ? [RTNLGRP_NEXTHOP] : [])],
    routeGroups: [RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE],
  };
  const reader = core.eventThread
    ? new Worker(new URL('./event-reader.js', import.meta.url), { workerData: { ...cfg, eventReader: true } satisfies EventReaderConfig })
    : new InlineReader(cfg);
  core.events = reader;
  // a Worker and an InlineReader are both event emitters of the same events
  const worker: EventEmitter = reader;
  const ready = new Promise<void>((resolve, reject) => {
    const onExit = (code: number): void => reject(new Error(`fib event reader exited (${code}) before it was ready`));
    worker.once('error', reject);
    worker.once('exit', onExit);
    worker.on('message', (m: EventReaderMessage) => {
      if (m.kind === 'joined') core.writer.onJoined();
      else if (m.kind === 'skipping') {
        const waiters = core.skipWaiters;
        core.skipWaiters = [];
        for (const w of waiters) w();
      }
      else if (m.kind === 'ready') {
        worker.off('error', reject);
        worker.off('exit', onExit);
        resolve();
      } else if (m.kind === 'events') {
        core.writer.selfSeen = m.selfSeen;
        if (m.data) onEvents(core, Buffer.from(m.data));
        if (core.writer.paused) core.writer.schedulePump();
      }
      else if (m.code === 'ENOBUFS') core.resync.overrun('events');
      else {
        core.bus.emit('warning', new Error(`netlink event socket: ${m.message}`));
        core.resync.schedule('event socket error');
      }
    });
  });
  return ready.then(() => {
    // a reader that is gone answers no { skip }: a request thread starting then must not wait for ever
    worker.once('exit', () => {
      for (const w of core.skipWaiters.splice(0)) w();
    });
    worker.on('error', (err: Error) => {
      if (core.closed) return;
      core.bus.emit('warning', new Error(`fib event reader failed: ${err.message}`, { cause: err }));
    });
  });
}

/**
 * Tell the reader that `port` (the request thread's, started again) sends our writes; resolves once it counts that
 * port's notifications as ours. Without a reader there is nothing to tell.
 */
export function skipPort(core: Core, port: number): Promise<void> {
  core.cmdPort = port;
  const reader = core.events;
  if (!reader || core.closed) return Promise.resolve();
  return new Promise((resolve) => {
    core.skipWaiters.push(() => resolve());
    reader.postMessage({ skip: port });
  });
}

/** Stop the reader thread (it closes its socket and exits by itself). */
export async function stopEventReader(core: Core): Promise<void> {
  const reader = core.events;
  if (!reader) return;
  // terminate() while the binding is in a callback aborts, so ask first and terminate only if it hangs
  const exited = new Promise<void>((resolve) => (reader as EventEmitter).once('exit', () => resolve()));
  // a request thread starting now waits for no answer (its socket is closed with the others)
  for (const w of core.skipWaiters.splice(0)) w();
  reader.postMessage('close');
  const timer = setTimeout(() => void reader.terminate(), 2000);
  await exited;
  clearTimeout(timer);
}

function onEvents(core: Core, b: Buffer): void {
  for (let o = 0; o + NLMSG_HDRLEN <= b.length;) {
    const len = b.readUInt32LE(o);
    if (len < NLMSG_HDRLEN || o + len > b.length) break;
    const type = b.readUInt16LE(o + 4);
    if (type === RTM_NEWROUTE || type === RTM_DELROUTE) {
      // our own writes come back with our port as nlmsg_pid: their ACKs already tell the story
      if (isOthersWriteOfOurs(b, o, len, core.protocol, core.cmdPort, core.directPort)) {
        const k = parseRoute(b, o, len);
        if (k) routeEvent(core, type === RTM_NEWROUTE, k);
      } else if (len >= NLMSG_HDRLEN + RTMSG_LEN && rtmProtocol(b, o) !== core.protocol) {
        // another protocol's route in the main or local table (the reader passes no others): what the host reaches
        // without skein changed (src/daemon/reachability.ts re-reads it); parsed only for a listener that learns
        // such routes (src/daemon/kernel-learn.ts), which sees the change before the re-read is scheduled
        if (core.bus.listenerCount('foreignRouteChange') > 0) {
          const k = parseRoute(b, o, len);
          if (k) core.bus.emit('foreignRouteChange', type === RTM_NEWROUTE, k);
        }
        core.bus.emit('foreignRoute', rtmProtocol(b, o));
      }
    } else if (type === RTM_NEWLINK || type === RTM_DELLINK) {
      const l = parseLink(b, o, len);
      if (l) linkEvent(core, type === RTM_NEWLINK, l.index, l.name, l.flags);
    } else if (type === RTM_NEWNEXTHOP || type === RTM_DELNEXTHOP) {
      if (core.nexthops.enabled) {
        const r = core.nexthops.event(b, o, len, type === RTM_NEWNEXTHOP);
        core.objectsGone(r.gone);
        core.objectsChanged(r.changed);
      }
    } else if (type === NLMSG_OVERRUN) {
      core.resync.overrun('events');
    }
    o += (len + 3) & ~3;
  }
}

function routeEvent(core: Core, added: boolean, k: KernelRoute): void {
  if (!core.routes.managed.has(k.table)) return; // a table skein does not manage: not ours to touch
  const e = core.routes.entryForKernel(k, added);
  if (e === undefined) return;
  if (e.flags & INFLIGHT) e.flags |= EVENT_SEEN;
  core.setHave(e, added ? core.observed(e, k) : null, k.nhid ?? 0);
  if (e.flags & INFLIGHT) return; // settled when the ACK arrives
  if (core.opFor(e) !== OP_NONE) {
    if (e.want) core.counters.repairs++;
    core.writer.enqueue(e);
  } else core.forget(e);
}

function linkEvent(core: Core, added: boolean, index: number, name: string | undefined, flags: number): void {
  if (!core.links.update(added, index, name, flags)) return;
  // the kernel deletes nexthop objects on a link that goes down, away or loses its carrier, silently
  // (nexthop_flush_dev); the routes that used them wait (NH_WAIT) until it is back, then objects and routes return
  if (!added || !carrierOk(flags)) core.objectsGone(core.nexthops.linkGone(index));
  else core.nexthops.linkUp();
  // The kernel flushes routes through a link that goes down or away without a notification per route, and
  // routes through a link that comes up may now be installable: dump and repair, and retry failures now.
  core.resync.schedule(added ? 'link change' : 'link removed');
  core.retry.allNow();
}
