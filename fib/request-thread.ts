// Worker thread that owns the request socket (option requestThread): the route batches the writer builds are sent
// from here. rtnetlink handles a request inside the sender's sendmsg() (netlink_unicast runs the kernel's handler
// in the calling thread, under the RTNL lock), so on the programming thread every batch of 1000 route messages held
// it for the kernel's work: at a million routes ~3 s of system time on the thread that also reads BGP. Here that
// time runs beside it, on the other core. The socket, its sequence numbers and its replies are the same as on the
// programming thread; only where sendmsg() runs changes. Messages are sent in the order they were posted (nexthop
// objects before the routes that point at them), and replies go back as they are read.
import { parentPort, workerData } from 'node:worker_threads';
import { errnoCode, openSocket } from './kernel.js';

export interface RequestThreadConfig {
  readonly recvBufferSize: number;
  readonly sendBufferSize: number;
  readonly msgBufferSize: number;
}

/** From the programming thread. */
export type RequestThreadCommand =
  | { readonly kind: 'send'; readonly id: number; readonly data: Uint8Array }
  | { readonly kind: 'close' };

/** To the programming thread. */
export type RequestThreadMessage =
  | { readonly kind: 'ready'; readonly port: number }
  /** a send done (code undefined) or failed */
  | {
    readonly kind: 'sent'; readonly id: number; readonly code?: string; readonly errno?: number; readonly message?: string;
    /** the send's buffer, handed back for the next batch (a batch-sized one only) */
    readonly buf?: ArrayBuffer | undefined;
  }
  | { readonly kind: 'replies'; readonly data: Uint8Array }
  | { readonly kind: 'error'; readonly code: string; readonly errno: number; readonly message: string };

const port = parentPort;
if (port) {
  const cfg = workerData as RequestThreadConfig;
  const sock = openSocket(cfg.recvBufferSize, cfg.sendBufferSize, cfg.msgBufferSize);
  sock.on('message', (b: Buffer) => {
    port.postMessage({ kind: 'replies', data: b } satisfies RequestThreadMessage);
  });
  sock.on('error', (e) => {
    port.postMessage({ kind: 'error', code: errnoCode(e) ?? 'EIO', errno: e.errno, message: e.message } satisfies RequestThreadMessage);
  });
  port.on('message', (m: RequestThreadCommand) => {
    if (m.kind === 'send') {
      const id = m.id;
      const ab = m.data.buffer as ArrayBuffer;
      sock.send(Buffer.from(ab, m.data.byteOffset, m.data.byteLength), undefined, (err) => {
        // a batch buffer goes back to be filled again: freed here, it would wait for this thread's garbage
        // collector, which runs seldom (a million routes left ~100 MB of them behind)
        const back = ab.byteLength >= 4096 ? ab : undefined;
        const msg: RequestThreadMessage = err
          ? { kind: 'sent', id, code: errnoCode(err) ?? 'EIO', errno: err.errno, message: err.message, buf: back }
          : { kind: 'sent', id, buf: back };
        port.postMessage(msg, back ? [back] : []);
      });
    } else {
      // 'close', the only other command: both ends are this module's code in one process
      sock.close();
      port.close();
    }
  });
  port.postMessage({ kind: 'ready', port: sock.address().port } satisfies RequestThreadMessage);
}
