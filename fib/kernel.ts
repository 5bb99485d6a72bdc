// The three netlink sockets fib/ uses, all from the `netlink` package's raw layer:
//  - requests: batched route writes and their acknowledgements; never joins a multicast group, because the
//    kernel would interleave notifications with the replies (dependencies.md §1.4, pitfall 3);
//  - events: joins the link and route groups and only listens;
//  - dumps: one full dump at a time, so a dump's multipart reply never mixes with acknowledgements.
import { getSystemErrorMap } from 'node:util';
import { RawNetlinkSocket, type ErrnoException } from 'netlink/dist/raw.js';
import { NETLINK_ROUTE, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_DUMP_INTR } from './constants.js';
import { dumpRequest } from './codec.js';

/**
 * A raw rtnetlink socket. `msgBufferSize` turns off the package's default MSG_PEEK (one extra syscall per
 * datagram) and reads into a fixed buffer instead; it also sizes dump replies: the kernel fills each dump datagram
 * up to the largest read buffer it has seen (netlink_recvmsg records max_recvmsg_len, capped near 32 KiB), so a
 * 32 KiB buffer makes a million-route dump take 8x fewer datagrams than peek-sized reads do.
 */
export function openSocket(recvBufferSize: number, sendBufferSize: number, msgBufferSize: number): RawNetlinkSocket {
  return new RawNetlinkSocket(NETLINK_ROUTE, { recvBufferSize, sendBufferSize, messagePeeking: false, msgBufferSize });
}

/** Read buffer for dumps and events: the kernel's dump chunk size limit (SKB_WITH_OVERHEAD(32768) < 32 KiB). */
export const BIG_READ = 32768;

const errnoMap = getSystemErrorMap();

/** errno number (positive) to its name and message: 101 -> ENETUNREACH, "network is unreachable". */
export function describeErrno(errno: number): { code: string; message: string } {
  const e = errnoMap.get(-errno);
  return e ? { code: e[0], message: e[1] } : { code: `E${errno}`, message: `errno ${errno}` };
}

/** Error codes of ErrnoException from the package ('ENOBUFS' on an overrun). */
export function errnoCode(e: unknown): string | undefined {
  return (e as Partial<ErrnoException> | undefined)?.code;
}

export class DumpError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = 'DumpError';
  }
}

/**
 * Dump one object type (RTM_GETROUTE, RTM_GETLINK) over `sock`, calling `onMessage(buffer, offset, length)` for
 * every message as it arrives, so a million routes are never held parsed at once. Rejects on an error reply, an
 * overrun, a socket error or the timeout, and with code 'EINTR' when the kernel flags the dump as interrupted
 * (NLM_F_DUMP_INTR: the table changed under it), in which case the caller dumps again.
 */
export function dump(
  sock: RawNetlinkSocket, type: number, family: number, headerLen: number, seq: number, timeoutMs: number,
  onMessage: (b: Buffer, off: number, len: number) => void,
  /** sets fields of the request's header beyond the family (a strict dump's filters: host-routes.ts) */
  fill?: (req: Buffer) => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let interrupted = false;
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      sock.off('message', onData);
      sock.off('error', onError);
      sock.off('close', onClose);
      if (err) reject(err);
      else if (interrupted) reject(new DumpError('dump interrupted by concurrent changes', 'EINTR'));
      else resolve();
    };
    const onError = (e: ErrnoException): void => finish(new DumpError(`dump failed: ${e.message}`, errnoCode(e) ?? 'EIO'));
    const onClose = (): void => finish(new DumpError('socket closed during the dump', 'ECANCELED'));
    const onData = (b: Buffer): void => {
      try {
        for (let o = 0; o + NLMSG_HDRLEN <= b.length;) {
          const len = b.readUInt32LE(o);
          if (len < NLMSG_HDRLEN || o + len > b.length) throw new DumpError('malformed netlink message in dump', 'EPROTO');
          const mtype = b.readUInt16LE(o + 4);
          const flags = b.readUInt16LE(o + 6);
          const mseq = b.readUInt32LE(o + 8);
          if (mseq === seq) {
            if (flags & NLM_F_DUMP_INTR) interrupted = true;
            if (mtype === NLMSG_DONE) return finish();
            if (mtype === NLMSG_ERROR) {
              const errno = -b.readInt32LE(o + NLMSG_HDRLEN);
              const d = describeErrno(errno);
              return finish(new DumpError(`dump refused: ${d.message}`, d.code));
            }
            if (mtype === type - 2) onMessage(b, o, len); // RTM_GETX answers with RTM_NEWX (= GETX - 2)
          }
          o += (len + 3) & ~3;
        }
      } catch (e) {
        finish(e instanceof Error ? e : new Error(String(e)));
      }
    };
    const timer = setTimeout(() => finish(new DumpError(`dump timed out after ${timeoutMs} ms`, 'ETIMEDOUT')), timeoutMs);
    sock.on('message', onData);
    sock.on('error', onError);
    sock.on('close', onClose);
    const req = dumpRequest(type, family, seq, headerLen);
    fill?.(req);
    sock.send(req, undefined, (err) => {
      if (err) finish(new DumpError(`dump request not sent: ${err.message}`, errnoCode(err) ?? 'EIO'));
    });
  });
}
