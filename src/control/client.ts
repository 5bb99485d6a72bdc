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
  const r = msg as { id?: unknown; result?: unknown; error?: ControlErrorBody };
  if (r.error !== undefined) {
    const message = typeof r.error?.message === 'string' ? r.error.message : JSON.stringify(r.error);
    return [new ControlClientError('remote', message, typeof r.error?.code === 'string' ? r.error.code : undefined)];
  }
  if (r.id !== id) return [new ControlClientError('protocol', `the daemon answered request ${String(r.id)}, expected ${id}`)];
  if (!('result' in r)) return [new ControlClientError('protocol', 'the daemon\'s answer has neither "result" nor "error"')];
  return [undefined, r.result];
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
