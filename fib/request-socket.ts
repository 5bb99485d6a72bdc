// The request socket as the writer sees it: the netlink package's socket on this thread, or ThreadSocket, which
// hands every send to the request thread (request-thread.ts) and gives back its replies as 'message' events.
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { ErrnoException } from 'netlink/dist/raw.js';
import type { RequestThreadCommand, RequestThreadConfig, RequestThreadMessage } from './request-thread.js';

/** What fib/ uses of a request socket. */
export interface RequestSocket {
  /**
   * `owned`: the caller gives up msg's whole ArrayBuffer (it was allocated for this message alone and is not used
   * again), so a thread socket may hand it over without a copy.
   */
  send(msg: Uint8Array, options: undefined, callback?: (error?: ErrnoException) => void, owned?: boolean): void;
  /** A buffer of at least `size` bytes that an earlier owned send gave up and the thread handed back, if one is spare. */
  buffer?(size: number): Buffer | undefined;
  /** Writes are likely soon: get ready for them (start the thread) without sending anything. */
  warm?(): void;
  close(): void;
}

/** Batch buffers kept for reuse: more than the writer's window of batches in flight is never needed at once. */
const SPARE_MAX = 64;
/**
 * A thread warm() started that nothing has been sent through stops after this long (or idleMs, if shorter), not after
 * idleMs: the session that came up may bring a few routes only, which go on the direct socket (a Calico host's start:
 * a block route from each peer), and the idle worker's ~9 MiB stayed on every host for idleMs (60 s) after each
 * session came up (the 10-host convergence bench's idle RSS per host: 70.5 MiB before prepare(), 79.5 with it and the
 * idle period, 72.3-72.9 with this). A table that follows its session comes within this time, or while the thread
 * starts (its sends wait for it and count).
 */
const WARM_UNUSED_MS = 1000;

const errnoError = (code: string, errno: number, message: string, syscall: string): ErrnoException =>
  Object.assign(new Error(message), { name: 'ErrnoException' as const, code, errno, syscall });

export class ThreadSocket extends EventEmitter<{ message: [Buffer]; error: [ErrnoException] }> implements RequestSocket {
  readonly #worker: Worker;
  readonly #callbacks = new Map<number, ((error?: ErrnoException) => void) | undefined>();
  #nextId = 1;
  #closed = false;
  /** batch buffers the thread handed back after sending them (a few dozen at most: the writer's window) */
  readonly #spare: ArrayBuffer[] = [];

  private constructor(worker: Worker) {
    super();
    this.#worker = worker;
  }

  /** Start the thread and open its socket; resolves with the socket and its netlink port. */
  static open(cfg: RequestThreadConfig): Promise<{ sock: ThreadSocket; port: number }> {
    const worker = new Worker(new URL('./request-thread.js', import.meta.url), { workerData: cfg });
    const sock = new ThreadSocket(worker);
    return new Promise((resolve, reject) => {
      const onExit = (code: number): void => reject(new Error(`fib request thread exited (${code}) before it was ready`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.on('message', (m: RequestThreadMessage) => {
        if (m.kind === 'ready') {
          worker.off('error', reject);
          worker.off('exit', onExit);
          worker.on('error', (err) => sock.#failed(`fib request thread failed: ${err.message}`));
          worker.on('exit', () => sock.#failed('fib request thread exited'));
          resolve({ sock, port: m.port });
        } else sock.#onMessage(m);
      });
    });
  }

  send(msg: Uint8Array, _options: undefined, callback?: (error?: ErrnoException) => void, owned = false): void {
    if (this.#closed) {
      const cb = callback;
      if (cb) queueMicrotask(() => cb(errnoError('EBADF', 9, 'the request socket is closed', 'sendmsg')));
      return;
    }
    const id = this.#nextId++;
    this.#callbacks.set(id, callback);
    // A buffer the caller gives up is handed over as it is (a route batch: a copy and a fresh allocation per batch
    // were ~0.19 ms each, ~190 ms of the programming thread for a million routes); anything else is copied first, as
    // posting a view copies its whole backing buffer (a slice of Node's pool).
    let data: Uint8Array;
    if (owned && !(msg.buffer instanceof SharedArrayBuffer)) data = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
    else {
      data = new Uint8Array(msg.byteLength);
      data.set(msg);
    }
    this.#worker.postMessage({ kind: 'send', id, data } satisfies RequestThreadCommand, [data.buffer as ArrayBuffer]);
  }

  /** closed, or the thread is gone */
  get closed(): boolean {
    return this.#closed;
  }

  buffer(size: number): Buffer | undefined {
    const ab = this.#spare.pop();
    return ab !== undefined && ab.byteLength >= size ? Buffer.from(ab, 0, ab.byteLength) : undefined;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const w = this.#worker;
    // the thread closes its socket and exits; terminate() while the binding is in a callback aborts, so only if it hangs
    w.postMessage({ kind: 'close' } satisfies RequestThreadCommand);
    const timer = setTimeout(() => void w.terminate(), 2000);
    timer.unref();
    w.once('exit', () => clearTimeout(timer));
    w.unref();
  }

  #onMessage(m: RequestThreadMessage): void {
    if (m.kind === 'replies') {
      this.emit('message', Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
    } else if (m.kind === 'sent') {
      if (m.buf !== undefined && this.#spare.length < SPARE_MAX) this.#spare.push(m.buf);
      const cb = this.#callbacks.get(m.id);
      this.#callbacks.delete(m.id);
      cb?.(m.code === undefined ? undefined : errnoError(m.code, m.errno ?? 0, m.message ?? m.code, 'sendmsg'));
    } else if (m.kind === 'error') {
      this.emit('error', errnoError(m.code, m.errno, m.message, 'recvmsg'));
    }
  }

  /** The thread is gone: every send waiting for its answer failed, and the owner hears of it once. */
  #failed(why: string): void {
    if (this.#closed) return;
    this.#closed = true;
    const cbs = [...this.#callbacks.values()];
    this.#callbacks.clear();
    for (const cb of cbs) cb?.(errnoError('EIO', 5, why, 'sendmsg'));
    this.emit('error', errnoError('EIO', 5, why, 'recvmsg'));
  }
}

/** What LazyThreadSocket needs from its owner. */
export interface LazyThreadHooks {
  /**
   * The thread's socket got its netlink port: resolve once the event reader marks that port's notifications as
   * ours. Nothing is sent before, so no notification of a write through the thread is read without the mark.
   */
  onPort(port: number): Promise<void>;
  onMessage(b: Buffer): void;
  onError(e: ErrnoException): void;
  /** nothing sent through the socket awaits an answer (route batches and nexthop messages alike) */
  idle(): boolean;
}

interface Waiting {
  readonly msg: Uint8Array;
  readonly callback: ((error?: ErrnoException) => void) | undefined;
  readonly owned: boolean;
}

/**
 * The request thread, started when something is first sent through it and stopped again after `idleMs` without a
 * send and with nothing awaiting an answer (0: it stays). A Node worker costs ~9 MiB of RSS; a host in a cluster's
 * steady state writes a route or two at a time, which the writer sends on the programming thread's `direct` socket
 * (writer.ts, #sendBatch), so the thread is only needed for a large batch, a burst or a write while others are in
 * flight.
 *
 * Sends made while the thread starts wait here, in order, and count as in flight for their owners (the writer's
 * batches, the nexthop table's pending messages), which is what keeps the direct socket from overtaking them.
 */
export class LazyThreadSocket implements RequestSocket {
  readonly #cfg: RequestThreadConfig;
  readonly #hooks: LazyThreadHooks;
  readonly #idleMs: number;
  #sock: ThreadSocket | undefined;
  #starting = false;
  #waiting: Waiting[] = [];
  #closed = false;
  #sends = 0;
  #checkedSends = 0;
  /** #sends when prepare() started the running thread (-1: a send started it) */
  #sendsAtStart = -1;
  #idleTimer: NodeJS.Timeout | undefined;
  /** times the thread was started */
  starts = 0;

  constructor(cfg: RequestThreadConfig, hooks: LazyThreadHooks, idleMs: number) {
    this.#cfg = cfg;
    this.#hooks = hooks;
    this.#idleMs = idleMs;
  }

  /** the thread runs (or is starting) */
  get running(): boolean {
    return this.#sock !== undefined || this.#starting;
  }

  send(msg: Uint8Array, _options: undefined, callback?: (error?: ErrnoException) => void, owned = false): void {
    if (this.#closed) {
      const cb = callback;
      if (cb) queueMicrotask(() => cb(errnoError('EBADF', 9, 'the request socket is closed', 'sendmsg')));
      return;
    }
    this.#sends++;
    if (this.#sock !== undefined && !this.#starting) {
      this.#sock.send(msg, undefined, callback, owned);
      return;
    }
    // the writer does not touch a sent batch's buffer again, and a nexthop message has a buffer of its own
    this.#waiting.push({ msg, callback, owned });
    if (!this.#starting) this.#start();
  }

  /**
   * Start the thread now if it is stopped, for writes expected soon. Started on the first batch instead, it took
   * 0.1-1 s (a Node worker's start-up, on a loaded machine) while that batch and the window behind it waited. With no
   * send, the idle timer stops it again after WARM_UNUSED_MS (or `idleMs`, if shorter).
   */
  warm(): void {
    if (!this.#closed && this.#sock === undefined && !this.#starting) this.#start(true);
  }

  buffer(size: number): Buffer | undefined {
    return this.#starting ? undefined : this.#sock?.buffer(size);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    if (!this.#starting) this.#sock?.close();
    this.#sock = undefined;
    this.#failWaiting(errnoError('EBADF', 9, 'the request socket is closed', 'sendmsg'));
  }

  #start(warm = false): void {
    this.#starting = true;
    this.starts++;
    const sendsAtStart = this.#sends;
    this.#sendsAtStart = warm ? sendsAtStart : -1;
    ThreadSocket.open(this.#cfg).then(async ({ sock, port }) => {
      sock.on('message', (b) => this.#hooks.onMessage(b));
      sock.on('error', (e) => {
        // the thread may be gone (its sends were failed by ThreadSocket): the next send starts another one
        if (this.#sock === sock && sock.closed) this.#sock = undefined;
        this.#hooks.onError(e);
      });
      await this.#hooks.onPort(port);
      this.#starting = false;
      if (this.#closed) {
        sock.close();
        return;
      }
      this.#sock = sock;
      const waiting = this.#waiting;
      this.#waiting = [];
      for (const w of waiting) sock.send(w.msg, undefined, w.callback, w.owned);
      this.#armIdle(warm && this.#sends === sendsAtStart ? Math.min(WARM_UNUSED_MS, this.#idleMs) : this.#idleMs);
    }, (err: unknown) => {
      this.#starting = false;
      const e = errnoError('EIO', 5, `fib request thread did not start: ${err instanceof Error ? err.message : String(err)}`, 'sendmsg');
      this.#failWaiting(e);
      if (!this.#closed) this.#hooks.onError(e);
    }).catch((err: unknown) => {
      // a hook that threw while the thread was handed over: report it as a socket error (the resync retries),
      // never as an unhandled rejection, which would end the daemon
      this.#starting = false;
      const e = errnoError('EIO', 5, `fib request thread start failed: ${err instanceof Error ? err.message : String(err)}`, 'sendmsg');
      this.#failWaiting(e);
      if (!this.#closed) this.#hooks.onError(e);
    });
  }

  #failWaiting(e: ErrnoException): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) {
      const cb = w.callback;
      if (cb) queueMicrotask(() => cb(e));
    }
  }

  /** Stop the thread once a whole idle period passed with no send and nothing awaiting an answer. */
  #armIdle(ms = this.#idleMs): void {
    if (this.#idleMs <= 0 || this.#idleTimer !== undefined) return;
    this.#checkedSends = this.#sends;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      const sock = this.#sock;
      if (this.#closed || sock === undefined || this.#starting) return;
      // a thread prepare() started that nothing was ever sent through has nothing to wait for, however busy the
      // writer is on the direct socket meanwhile (a host's start: sessions coming up while their routes go direct)
      const unused = this.#sends === this.#sendsAtStart;
      if (this.#sends === this.#checkedSends && (unused || this.#hooks.idle())) {
        this.#sock = undefined;
        sock.close();
        return;
      }
      this.#armIdle(unused ? ms : this.#idleMs);
    }, ms);
    this.#idleTimer.unref();
  }
}
