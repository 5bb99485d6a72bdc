// How a streamed answer (`routes`, `fib`) ends in skeinctl's exit code and output when it fails, shared by both.
// The reader of our output going away (EPIPE: `skeinctl routes | head`) is what it asked for, not an error;
// otherwise the exit codes are index.ts's: the daemon not reachable, the daemon reporting an error, or an answer
// that does not have the contract's shape. With --json, an error before any row is printed as {"error": …}.
import { ControlClientError } from '../control/client.js';
import type { CtlIo } from './index.js';
import { EXIT } from './index.js';
import { ShapeError } from './render.js';

export type Fail = (status: number, message: string, code?: string) => number;

/** Reports a failure on stderr (and as a JSON document while none has been started) and returns its exit status. */
export function failer(io: CtlIo, json: boolean, rowsSoFar: () => number): Fail {
  return (status, message, code) => {
    io.stderr(`skeinctl: ${message}\n`);
    if (json && rowsSoFar() === 0) io.stdout(`${JSON.stringify({ error: code === undefined ? { message } : { message, code } }, null, 2)}\n`);
    return status;
  };
}

/** The exit status of a stream that threw `e`. */
export function streamFailed(e: unknown, fail: Fail): number {
  if (e instanceof ControlClientError) {
    if (e.code === 'EPIPE') return EXIT.OK;
    if (e.kind === 'unreachable') return fail(EXIT.UNREACHABLE, e.message, e.code);
    if (e.kind === 'remote') return fail(EXIT.DAEMON_ERROR, `the daemon reports: ${e.message}`, e.code);
    return fail(EXIT.DAEMON_ERROR, e.message);
  }
  if ((e as NodeJS.ErrnoException).code === 'EPIPE') return EXIT.OK;
  if (e instanceof ShapeError) return fail(EXIT.DAEMON_ERROR, e.message);
  return fail(EXIT.DAEMON_ERROR, (e as Error).message);
}
