// skeinctl's side of the control socket: one request, one response. Errors say which of three things went
// wrong, because skeinctl maps them to different exit codes: the daemon is not reachable (no socket, nobody
// listening, no permission, no answer in time), the daemon answered with an error, or the answer is garbage.
import { connect } from 'node:net';
import type { ControlErrorBody } from './protocol.js';

export type ControlClientErrorKind = 'unreachable' | 'remote' | 'protocol';

export class ControlClientError extends Error {
  readonly kind: ControlClientErrorKind;
  /** for kind "remote": the daemon's error code; for "unreachable": the errno code or "ETIMEDOUT" */
  readonly code: string | undefined;
  constructor(kind: ControlClientErrorKind, message: string, code?: string) {
    super(message);
    this.name = 'ControlClientError';
    this.kind = kind;
    this.code = code;
  }
}

let nextId = 1;

/**
 * Sends `method(params)` to the daemon at `socketPath`; resolves with the result, rejects with a
 * ControlClientError. `timeoutMs` bounds the whole call (connect, request, response).
 */
export function callControl(socketPath: string, method: string, params: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<unknown> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const sock = connect({ path: socketPath });
    const finish = (err: ControlClientError | undefined, value?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => {
      finish(new ControlClientError('unreachable', `daemon not reachable: no answer on ${socketPath} within ${timeoutMs} ms`, 'ETIMEDOUT'));
    }, timeoutMs);

    sock.on('connect', () => {
      sock.write(`${JSON.stringify({ id, method, params })}\n`);
    });
    sock.on('error', (e: NodeJS.ErrnoException) => finish(unreachable(socketPath, e)));
    sock.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (chunk.indexOf(10) < 0) return;
      const text = Buffer.concat(chunks).toString('utf8');
      const line = text.slice(0, text.indexOf('\n'));
      finish(...parseResponse(line, id));
    });
    sock.on('end', () => {
      finish(new ControlClientError('protocol', `the daemon closed the connection on ${socketPath} without answering`));
    });
  });
}

function parseResponse(line: string, id: number): [ControlClientError | undefined, unknown?] {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    return [new ControlClientError('protocol', `the daemon's answer is not JSON: ${line.slice(0, 80)}`)];
  }
  if (typeof msg !== 'object' || msg === null) return [new ControlClientError('protocol', 'the daemon\'s answer is not a JSON object')];
  const r = msg as { id?: unknown; result?: unknown; error?: unknown };
  if (r.error !== undefined) return [remoteError(r.error)];
  if (r.id !== id) return [new ControlClientError('protocol', `the daemon answered request ${String(r.id)}, expected ${id}`)];
  if (!('result' in r)) return [new ControlClientError('protocol', 'the daemon\'s answer has neither "result" nor "error"')];
  return [undefined, r.result];
}

/** An error answer; its body came over the socket, so each field is checked. */
function remoteError(body: unknown): ControlClientError {
  const e = (typeof body === 'object' && body !== null ? body : {}) as Partial<Record<keyof ControlErrorBody, unknown>>;
  return new ControlClientError('remote', typeof e.message === 'string' ? e.message : JSON.stringify(body), typeof e.code === 'string' ? e.code : undefined);
}

function unreachable(path: string, e: NodeJS.ErrnoException): ControlClientError {
  const why =
    e.code === 'ENOENT' ? `no control socket at ${path} (is skeind running? see --socket / SKEIN_SOCKET)` :
    e.code === 'ECONNREFUSED' ? `nothing is listening on ${path} (skeind stopped and left a stale socket?)` :
    e.code === 'EACCES' || e.code === 'EPERM' ? `permission denied on ${path} (run as root or as a member of the socket's group)` :
    e.code === 'ENOTSOCK' ? `${path} is not a socket` :
    e.code === 'ECONNRESET' || e.code === 'EPIPE' ? `the daemon closed the connection on ${path} (too many clients?)` :
    `${path}: ${e.message}`;
  return new ControlClientError('unreachable', `daemon not reachable: ${why}`, e.code);
}

export interface StreamHandlers {
  /** the request queued behind others (position in the queue) */
  onWaiting?(position: number): void;
  onBegin?(header: Record<string, unknown>): void;
  /** a batch of rows; a returned promise holds further reading until it settles (the daemon then waits too) */
  onRows(rows: unknown[]): void | Promise<void>;
}

export type StreamOutcome =
  | { kind: 'stream'; header: Record<string, unknown>; end: Record<string, unknown> & { count: number } }
  /** a daemon (or method) that answers in one piece */
  | { kind: 'result'; result: unknown };

/**
 * Sends `method(params)` and receives a streamed answer (protocol.ts StreamMessage), handing rows over as they
 * come. `timeoutMs` bounds the wait for each message before the stream begins (a queued request is told so and
 * keeps waiting); once rows flow, only `signal` stops it. Rejects with a ControlClientError.
 */
export function streamControl(
  socketPath: string, method: string, params: Record<string, unknown>, handlers: StreamHandlers,
  o: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<StreamOutcome> {
  const id = nextId++;
  const timeoutMs = o.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let settled = false;
    let begun = false;
    let header: Record<string, unknown> = {};
    let buf = '';
    let paused: Promise<void> | undefined;
    const lines: string[] = [];
    const sock = connect({ path: socketPath });
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      if (begun) return;
      timer = setTimeout(() => {
        finish(new ControlClientError('unreachable', `daemon not reachable: no answer on ${socketPath} within ${timeoutMs} ms`, 'ETIMEDOUT'));
      }, timeoutMs);
    };
    const onAbort = (): void => finish(new ControlClientError('protocol', 'cancelled', 'ECANCELED'));
    const finish = (err: ControlClientError | undefined, value?: StreamOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      sock.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    arm();

    // One message; false when the stream is over.
    const handle = (line: string): boolean => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        finish(new ControlClientError('protocol', `the daemon's answer is not JSON: ${line.slice(0, 80)}`));
        return false;
      }
      if (typeof parsed !== 'object' || parsed === null) {
        finish(new ControlClientError('protocol', 'the daemon\'s answer is not a JSON object'));
        return false;
      }
      const msg = parsed as Record<string, unknown>;
      if (msg.id !== id && msg.error === undefined) {
        finish(new ControlClientError('protocol', `the daemon answered request ${String(msg.id)}, expected ${id}`));
        return false;
      }
      if (msg.error !== undefined) {
        finish(remoteError(msg.error));
        return false;
      }
      if ('result' in msg) {
        finish(undefined, { kind: 'result', result: msg.result });
        return false;
      }
      if (msg.waiting !== undefined) {
        handlers.onWaiting?.(Number((msg.waiting as { position?: unknown }).position));
        arm();
        return true;
      }
      if (msg.begin !== undefined) {
        begun = true;
        arm();
        header = msg.begin as Record<string, unknown>;
        handlers.onBegin?.(header);
        return true;
      }
      if (Array.isArray(msg.rows)) {
        const r = handlers.onRows(msg.rows);
        if (r instanceof Promise) paused = r;
        return true;
      }
      if (msg.end !== undefined) {
        finish(undefined, { kind: 'stream', header, end: msg.end as Record<string, unknown> & { count: number } });
        return false;
      }
      finish(new ControlClientError('protocol', 'the daemon sent a line that is neither rows, begin, end, result nor error'));
      return false;
    };

    // Lines are handled one at a time; while a handler's promise is pending, the socket is paused, so a slow
    // consumer (a pipe to `less`) slows the daemon down instead of filling this process's memory.
    const pump = async (): Promise<void> => {
      while (lines.length > 0 && !settled) {
        if (!handle(lines.shift()!)) return;
        if (paused) {
          sock.pause();
          try {
            await paused;
          } catch (e) {
            finish(new ControlClientError('protocol', (e as Error).message, (e as NodeJS.ErrnoException).code));
            return;
          }
          paused = undefined;
        }
      }
      if (!settled) sock.resume();
    };
    let pumping = false;
    sock.on('connect', () => {
      sock.write(`${JSON.stringify({ id, method, params })}\n`);
    });
    sock.on('error', (e: NodeJS.ErrnoException) => finish(unreachable(socketPath, e)));
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      if (pumping) return;
      pumping = true;
      sock.pause();
      // A handler that throws (onRows writing to a closed pipe) would reject pump(): that ends the request with
      // the error, instead of an unhandled rejection that ends the process.
      pump()
        .catch((e: unknown) => finish(new ControlClientError('protocol', `handling the answer failed: ${(e as Error).message}`, (e as NodeJS.ErrnoException).code)))
        .finally(() => {
          pumping = false;
        });
    });
    sock.on('end', () => {
      // lines still queued are handled first
      const check = (): void => {
        if (settled) return;
        if (pumping || lines.length > 0) return void setTimeout(check, 5);
        finish(new ControlClientError('protocol', `the daemon closed the connection on ${socketPath} before the answer was complete`));
      };
      check();
    });
  });
}
