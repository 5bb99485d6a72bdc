// Worker thread that reads the kernel's link and route notifications. During a bulk install every route skein
// writes comes back as a notification (one datagram each); reading them on the programming thread would halve its
// speed and overrun the socket, forcing a full dump. Here, on another core, notifications caused by skein's own
// request socket (nlmsg_pid = its port, which the kernel copies from the request) and routes of other protocols are
// dropped, and only what the Programmer must see is passed on, several datagrams per message.
import { parentPort, workerData } from 'node:worker_threads';
import {
  NLMSG_HDRLEN, NLMSG_OVERRUN, RTM_DELLINK, RTM_DELNEXTHOP, RTM_DELROUTE, RTM_NEWLINK, RTM_NEWNEXTHOP, RTM_NEWROUTE, RTMSG_LEN,
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

const port = parentPort;
if (port) {
  const cfg = workerData as EventReaderConfig;
  // notifications are one small message per datagram: a read buffer of 8 KiB (not the dump-sized 32 KiB) keeps the
  // per-datagram allocation small; a bigger one (a link with many attributes) arrives truncated and is reported as
  // an overrun, which makes the Programmer dump.
  const sock = openSocket(cfg.recvBufferSize, 1 << 16, 8192);
  sock.on('truncatedMessage', () => {
    port.postMessage({ kind: 'error', code: 'ENOBUFS', message: 'truncated notification' } satisfies EventReaderMessage);
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
      if (selfSeen !== selfReported) port.postMessage({ kind: 'events', data: undefined, selfSeen } satisfies EventReaderMessage);
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
    port.postMessage({ kind: 'events', data: out.buffer, selfSeen } satisfies EventReaderMessage, [out.buffer]);
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
        else keep = len >= NLMSG_HDRLEN + RTMSG_LEN && b[o + NLMSG_HDRLEN + 5] === cfg.protocol;
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
    port.postMessage({ kind: 'error', code: errnoCode(e) ?? 'EIO', message: e.message } satisfies EventReaderMessage);
  });
  for (const g of cfg.groups) sock.addMembership(g);
  let joined = true;
  port.on('message', (m: unknown) => {
    if (typeof m === 'object' && m !== null && typeof (m as { skip?: unknown }).skip === 'number') {
      skipPort = (m as { skip: number }).skip;
      port.postMessage({ kind: 'skipping', port: skipPort } satisfies EventReaderMessage);
    } else if (m === 'report') {
      // the writer is pausing on its backlog: it needs the count as it is now
      if (!scheduled) flush();
    } else if (m === 'close') {
      sock.close();
      port.close();
    } else if (m === 'leave' && joined) {
      for (const g of cfg.routeGroups) sock.dropMembership(g);
      joined = false;
    } else if (m === 'join') {
      if (!joined) for (const g of cfg.routeGroups) sock.addMembership(g);
      joined = true;
      flush(); // whatever was read before re-joining goes first
      port.postMessage({ kind: 'joined' } satisfies EventReaderMessage);
    }
  });
  port.postMessage({ kind: 'ready' } satisfies EventReaderMessage);
}
