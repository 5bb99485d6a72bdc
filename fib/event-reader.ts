// The reader of the kernel's link and route notifications: notifications caused by skein's own request sockets
// (nlmsg_pid = the sender's port, which the kernel copies from the request) are counted and dropped, and so are routes
// of other protocols outside the main and local tables; only what the Programmer must see is passed on, several
// datagrams per message.
//
// It runs on the programming thread (the default) or in a worker thread of its own (the `eventThread` option). A
// thread of its own was the only way once, when every route of a bulk install came back as a notification; since
// bulk mode drops the route groups for a burst (writer.ts), what is left is a route's echo at a time in a cluster's
// steady state, which on this thread is read in the same turn as the write's ACK (the kernel sends both inside the
// write's sendmsg()), while the worker cost a thread wake-up per route written and ~9 MiB of RSS (an idle Node
// worker) on every host.
import { parentPort, workerData } from 'node:worker_threads';
import {
  NLMSG_HDRLEN, NLMSG_OVERRUN, RTM_DELLINK, RTM_DELNEXTHOP, RTM_DELROUTE, RTM_F_CLONED, RTM_NEWLINK, RTM_NEWNEXTHOP, RTM_NEWROUTE,
  RTMSG_LEN, RT_TABLE_LOCAL, RT_TABLE_MAIN,
} from './constants.js';
import { errnoCode, openSocket } from './kernel.js';

export interface EventReaderConfig {
  readonly recvBufferSize: number;
  readonly protocol: number;
  readonly skipPort: number;
  /** the programming thread's socket for a few routes (core.ts, direct); -1 without one: its route writes are ours too */
  readonly directPort: number;
  readonly groups: readonly number[];
  /** the groups 'leave' drops during a bulk write and 'join' re-adds */
  readonly routeGroups: readonly number[];
  /** set when it runs as the worker's entry */
  readonly eventReader?: true;
}

/**
 * Notifications of our own writes are reported to the Programmer once this many have been counted since the last
 * report (or with anything else the reader forwards, or when the writer asks: 'report'), not each on its own. The
 * writer reads the count only to pace itself when thousands are outstanding (writer.ts, its backlog limit), and a
 * report of one echo woke the programming thread once per route written: in a cluster's steady state (a route at a
 * time on the `direct` socket), one of the few wake-ups each workload event costs every host.
 */
export const SELF_REPORT_EVERY = 256;

/** Messages from the reader to the Programmer. */
export type EventReaderMessage =
  | { readonly kind: 'ready' }
  /** answer to 'join': route notifications flow again from here on */
  | { readonly kind: 'joined' }
  /** answer to { skip }: notifications of that port are counted as ours from here on */
  | { readonly kind: 'skipping'; readonly port: number }
  | { readonly kind: 'events'; readonly data: ArrayBuffer | undefined; readonly selfSeen: number }
  | { readonly kind: 'error'; readonly code: string; readonly message: string };

/**
 * Open the event socket and read it; `post` gets what the Programmer must see, `closed` is called once the socket is
 * closed. Returns the handler of the Programmer's commands ({ skip }, 'leave', 'join', 'report', 'close').
 */
export function runEventReader(cfg: EventReaderConfig, post: (m: EventReaderMessage, transfer?: ArrayBuffer[]) => void,
  closed: () => void): (m: unknown) => void {
  // notifications are one small message per datagram: a read buffer of 8 KiB (not the dump-sized 32 KiB) keeps the
  // per-datagram allocation small; a bigger one (a link with many attributes) arrives truncated and is reported as
  // an overrun, which makes the Programmer dump.
  const sock = openSocket(cfg.recvBufferSize, 1 << 16, 8192);
  sock.on('truncatedMessage', () => {
    post({ kind: 'error', code: 'ENOBUFS', message: 'truncated notification' });
  });
  let kept: Buffer[] = [];
  let keptBytes = 0;
  let scheduled = false;
  /** notifications of skein's own writes: counted (the Programmer paces its writes by them), not forwarded */
  let selfSeen = 0;
  /** the request thread's port; it changes when the thread is started again (request-socket.ts, LazyThreadSocket) */
  let skipPort = cfg.skipPort;
  let selfReported = 0;
  const flush = (): void => {
    scheduled = false;
    if (keptBytes === 0) {
      if (selfSeen !== selfReported) post({ kind: 'events', data: undefined, selfSeen });
      selfReported = selfSeen;
      return;
    }
    const out = new Uint8Array(keptBytes); // its own ArrayBuffer, so it can be transferred
    let o = 0;
    for (const k of kept) {
      out.set(k, o);
      o += k.length;
    }
    kept = [];
    keptBytes = 0;
    selfReported = selfSeen;
    post({ kind: 'events', data: out.buffer, selfSeen }, [out.buffer]);
  };
  sock.on('message', (b: Buffer) => {
    for (let o = 0; o + NLMSG_HDRLEN <= b.length;) {
      const len = b.readUInt32LE(o);
      if (len < NLMSG_HDRLEN || o + len > b.length) break;
      const type = b.readUInt16LE(o + 4);
      let keep = false;
      if (type === RTM_NEWROUTE || type === RTM_DELROUTE) {
        const pid = b.readUInt32LE(o + 12);
        if (pid === skipPort || pid === cfg.directPort) selfSeen++;
        else if (len >= NLMSG_HDRLEN + RTMSG_LEN) {
          const proto = b[o + NLMSG_HDRLEN + 5], table = b[o + NLMSG_HDRLEN + 4]!;
          // skein's routes written by someone else; and any other protocol's route in the main or local table
          // (not a cached clone), which src/'s next-hop reachability re-reads the kernel for (the 'foreignRoute'
          // event, kernel-events.ts): rare next to our own writes, which never get here
          keep = proto === cfg.protocol ||
            ((table === RT_TABLE_MAIN || table === RT_TABLE_LOCAL) && (b.readUInt32LE(o + NLMSG_HDRLEN + 8) & RTM_F_CLONED) === 0);
        }
      } else if (type === RTM_NEWNEXTHOP || type === RTM_DELNEXTHOP) {
        // nexthop objects: rare; every one not caused by our own sockets goes on (fib/nexthops.ts decides by id; a
        // notification of one of ours it takes for someone else's replacement of it)
        const pid = b.readUInt32LE(o + 12);
        keep = pid !== skipPort && pid !== cfg.directPort;
      } else keep = type === RTM_NEWLINK || type === RTM_DELLINK || type === NLMSG_OVERRUN;
      if (keep) {
        const padded = (len + 3) & ~3;
        kept.push(b.subarray(o, Math.min(o + padded, b.length)));
        keptBytes += Math.min(padded, b.length - o);
      }
      o += (len + 3) & ~3;
    }
    if ((keptBytes > 0 || selfSeen - selfReported >= SELF_REPORT_EVERY) && !scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  });
  sock.on('error', (e) => {
    post({ kind: 'error', code: errnoCode(e) ?? 'EIO', message: e.message });
  });
  for (const g of cfg.groups) sock.addMembership(g);
  let joined = true;
  return (m: unknown) => {
    if (typeof m === 'object' && m !== null && typeof (m as { skip?: unknown }).skip === 'number') {
      skipPort = (m as { skip: number }).skip;
      post({ kind: 'skipping', port: skipPort });
    } else if (m === 'report') {
      // the writer is pausing on its backlog: it needs the count as it is now
      if (!scheduled) flush();
    } else if (m === 'close') {
      sock.close();
      closed();
    } else if (m === 'leave' && joined) {
      for (const g of cfg.routeGroups) sock.dropMembership(g);
      joined = false;
    } else if (m === 'join') {
      if (!joined) for (const g of cfg.routeGroups) sock.addMembership(g);
      joined = true;
      flush(); // whatever was read before re-joining goes first
      post({ kind: 'joined' });
    }
  };
}

// the worker thread's entry (kernel-events.ts starts it with the `eventThread` option)
const port = parentPort;
if (port && (workerData as { eventReader?: unknown } | undefined)?.eventReader === true) {
  const handle = runEventReader(workerData as EventReaderConfig, (m, transfer) => port.postMessage(m, transfer ?? []), () => port.close());
  port.on('message', handle);
  port.postMessage({ kind: 'ready' } satisfies EventReaderMessage);
}
