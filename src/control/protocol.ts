// The control socket protocol, shared by skeind's server and skeinctl's client.
// A UNIX stream socket carrying newline-delimited JSON, one object per line, both ways:
//   request  {"id": 1, "method": "status", "params": {}}
//   response {"id": 1, "result": ...}   or   {"id": 1, "error": {"message": "...", "code": "..."}}
// A client may send several requests on one connection without waiting; responses carry the request's id and
// may come back in any order. Results are the `--json` shapes of docs/contract.md: skeinctl prints them untouched.
// Large answers (routes, watch) are streamed instead: see StreamMessage below and ./stream.ts.

export const DEFAULT_CONTROL_SOCKET = '/run/skein/skein.sock';
/** The largest request line the server reads; requests are small (a method and a prefix). */
export const DEFAULT_MAX_REQUEST_BYTES = 64 * 1024;

export type RequestId = number | string;

export interface ControlRequest {
  id: RequestId;
  method: string;
  params?: Record<string, unknown>;
}

export interface ControlErrorBody {
  message: string;
  /** stable, for scripts: "unknown-method", "bad-request", "too-large", "internal", or a handler's own code */
  code?: string;
}

export type ControlResponse =
  | { id: RequestId | null; result: unknown }
  | { id: RequestId | null; error: ControlErrorBody }
  | StreamMessage;

/**
 * The lines of a streamed answer (./stream.ts): an optional `waiting` notice while the request queues for a slot,
 * `begin` with the stream's header, `rows` batches, and `end` with the row count and the stream's trailer (or an
 * `error` line instead of `end`).
 */
export type StreamMessage =
  | { id: RequestId; waiting: { position: number } }
  | { id: RequestId; begin: Record<string, unknown> }
  | { id: RequestId; rows: unknown[] }
  | { id: RequestId; end: { count: number } & Record<string, unknown> };

/** An error a handler throws to answer with a specific message and code (anything else is "internal"). */
export class ControlError extends Error {
  readonly code: string;
  constructor(message: string, code = 'error') {
    super(message);
    this.name = 'ControlError';
    this.code = code;
  }
}
