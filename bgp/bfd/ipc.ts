// The protocol between skeind and skein-bfdd, the companion process that owns the BFD sessions so they outlive a
// restart of skeind (issue 18; RFC 5880 §6.8.7: the C bit may only be set when BFD does not share fate with the
// control plane, and with the companion it does not).
//
// JSON lines over a unix stream socket, one object per line, at most MAX_LINE bytes. Pure: encoding, framing and
// validation only; the socket ends are src/bfdd/server.ts and src/daemon/bfd-companion.ts.
//
// client → server
//   {"type":"hello","version":1,"client":"skeind"}           first, always; another version is refused
//   {"type":"add","id":N,"key":KEY,"params":PARAMS}          start (or adopt and update) a session
//   {"type":"update","id":N,"key":KEY,"params":PARAMS}
//   {"type":"remove","id":N,"key":KEY}                       AdminDown to the peer (RFC 5880 §6.8.16), then gone
//   {"type":"sessions","id":N}                               a snapshot
// server → client
//   {"type":"hello","version":1,"server":"skein-bfdd","pid":P,"sessions":[SESSION...]}
//   {"type":"ok","id":N} | {"type":"error","id":N|null,"code":"...","message":"..."}
//   {"type":"sessions","id":N|null,"sessions":[SESSION...]}    (id null: pushed after a state change)
//   {"type":"event","event":EVENT}                           up / down / state of a session this client owns
// Times cross the boundary as wall-clock milliseconds (sinceEpochMs): the two processes' monotonic clocks have
// different origins.
import { isIP } from 'node:net';
import { BFD_STATES, type BfdState } from './packet.js';
import type { BfdKey, BfdSessionInfo } from './manager.js';
import { checkParams, type BfdParams } from './session.js';

export const IPC_VERSION = 1;
/** A line longer than this is a broken or hostile peer: the connection is closed. */
export const MAX_LINE = 64 * 1024;
/** A companion holds at most this many sessions (memory bound against a runaway client). */
export const MAX_SESSIONS = 4096;
/** Linux IFNAMSIZ - 1 */
const MAX_IFNAME = 15;

export class IpcError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'IpcError';
  }
}

/** A session as it crosses the socket. */
export interface IpcSession extends Omit<BfdSessionInfo, 'since'> {
  readonly sinceEpochMs: number;
}

export type IpcEvent =
  | { readonly type: 'up'; readonly key: BfdKey; readonly remoteControlPlaneIndependent: boolean }
  | {
      readonly type: 'down'; readonly key: BfdKey; readonly diag: number; readonly reason: string; readonly to: BfdState;
      readonly remoteControlPlaneIndependent: boolean;
    }
  | { readonly type: 'state'; readonly key: BfdKey; readonly from: BfdState; readonly to: BfdState; readonly diag: number };

export type ClientMessage =
  | { readonly type: 'hello'; readonly version: number; readonly client: string }
  | { readonly type: 'add' | 'update'; readonly id: number; readonly key: BfdKey; readonly params: BfdParams }
  | { readonly type: 'remove'; readonly id: number; readonly key: BfdKey }
  | { readonly type: 'sessions'; readonly id: number };

export type ServerMessage =
  | { readonly type: 'hello'; readonly version: number; readonly server: string; readonly pid: number; readonly sessions: readonly IpcSession[] }
  | { readonly type: 'ok'; readonly id: number }
  | { readonly type: 'error'; readonly id: number | null; readonly code: string; readonly message: string }
  | { readonly type: 'sessions'; readonly id: number | null; readonly sessions: readonly IpcSession[] }
  | { readonly type: 'event'; readonly event: IpcEvent };

export const encodeIpc = (m: ClientMessage | ServerMessage): string => `${JSON.stringify(m)}\n`;

/**
 * Splits a byte stream into lines. push() returns the complete lines; an over-long line throws IpcError
 * (LINE_TOO_LONG) and the caller closes the connection: there is no resynchronising inside a line.
 */
export class LineReader {
  #buf = '';
  push(chunk: Buffer | string): string[] {
    this.#buf += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    const parts = this.#buf.split('\n');
    this.#buf = parts.pop() ?? '';
    if (this.#buf.length > MAX_LINE) {
      this.#buf = '';
      throw new IpcError('LINE_TOO_LONG', `a line longer than ${MAX_LINE} bytes`);
    }
    const lines = parts.filter((l) => l.trim() !== '');
    const tooLong = lines.find((l) => l.length > MAX_LINE);
    if (tooLong !== undefined) throw new IpcError('LINE_TOO_LONG', `a line of ${tooLong.length} bytes (at most ${MAX_LINE})`);
    return lines;
  }
}

// ------------------------------------------------------------------ validation

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseJson(line: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new IpcError('BAD_JSON', `not JSON: ${(e as Error).message}`);
  }
  if (!isObj(v)) throw new IpcError('BAD_MESSAGE', 'a message is a JSON object');
  if (typeof v.type !== 'string') throw new IpcError('BAD_MESSAGE', 'a message needs a string "type"');
  return v;
}

function id(v: unknown): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw new IpcError('BAD_MESSAGE', `"id" must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v as number;
}

/** A session key, checked so that nothing the socket says reaches a socket call unvalidated. */
export function parseKey(v: unknown): BfdKey {
  if (!isObj(v)) throw new IpcError('BAD_KEY', '"key" must be an object');
  const { peer, local, multihop } = v;
  const iface = v.interface ?? '';
  if (typeof peer !== 'string' || isIP(peer) === 0) throw new IpcError('BAD_KEY', `key.peer ${JSON.stringify(peer)} is not an IP address`);
  if (typeof local !== 'string' || isIP(local) === 0) throw new IpcError('BAD_KEY', `key.local ${JSON.stringify(local)} is not an IP address`);
  if (isIP(peer) !== isIP(local)) throw new IpcError('BAD_KEY', `key.peer ${peer} and key.local ${local} are of different families`);
  if (typeof iface !== 'string' || iface.length > MAX_IFNAME || /[\s/\0]/.test(iface)) {
    throw new IpcError('BAD_KEY', `key.interface ${JSON.stringify(iface)} is not an interface name`);
  }
  if (typeof multihop !== 'boolean') throw new IpcError('BAD_KEY', 'key.multihop must be true or false');
  return { peer, local, interface: iface, multihop };
}

export function parseParams(v: unknown): BfdParams {
  if (!isObj(v)) throw new IpcError('BAD_PARAMS', '"params" must be an object');
  const p = {
    desiredMinTxUs: v.desiredMinTxUs as number,
    requiredMinRxUs: v.requiredMinRxUs as number,
    idleTxUs: v.idleTxUs as number,
    detectMult: v.detectMult as number,
  };
  try {
    checkParams(p);
  } catch (e) {
    throw new IpcError('BAD_PARAMS', (e as Error).message);
  }
  return p;
}

/** One line from a client. Throws IpcError with a code and a specific reason. */
export function parseClientMessage(line: string): ClientMessage {
  const v = parseJson(line);
  switch (v.type) {
    case 'hello':
      if (!Number.isSafeInteger(v.version)) throw new IpcError('BAD_MESSAGE', 'hello needs an integer "version"');
      return { type: 'hello', version: v.version as number, client: typeof v.client === 'string' ? v.client.slice(0, 64) : '' };
    case 'add':
    case 'update':
      return { type: v.type, id: id(v.id), key: parseKey(v.key), params: parseParams(v.params) };
    case 'remove':
      return { type: 'remove', id: id(v.id), key: parseKey(v.key) };
    case 'sessions':
      return { type: 'sessions', id: id(v.id) };
    default:
      throw new IpcError('UNKNOWN_TYPE', `unknown message type ${JSON.stringify(v.type).slice(0, 40)}`);
  }
}

const isState = (v: unknown): v is BfdState => typeof v === 'string' && (BFD_STATES as readonly string[]).includes(v);
const num = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new IpcError('BAD_MESSAGE', `${what} must be a number`);
  return v;
};

function parseSession(v: unknown): IpcSession {
  if (!isObj(v)) throw new IpcError('BAD_MESSAGE', 'a session must be an object');
  if (!isState(v.state) || !isState(v.remoteState)) throw new IpcError('BAD_MESSAGE', 'a session needs valid "state" and "remoteState"');
  const n = (k: string): number => num(v[k], `session.${k}`);
  return {
    key: parseKey(v.key),
    state: v.state,
    remoteState: v.remoteState,
    localDiag: n('localDiag'),
    localDiscriminator: n('localDiscriminator'),
    remoteDiscriminator: n('remoteDiscriminator'),
    remoteDiag: n('remoteDiag'),
    remoteControlPlaneIndependent: v.remoteControlPlaneIndependent === true,
    desiredMinTxUs: n('desiredMinTxUs'),
    requiredMinRxUs: n('requiredMinRxUs'),
    detectMult: n('detectMult'),
    txIntervalUs: n('txIntervalUs'),
    detectTimeUs: n('detectTimeUs'),
    remoteMinTxUs: n('remoteMinTxUs'),
    remoteMinRxUs: n('remoteMinRxUs'),
    remoteDetectMult: n('remoteDetectMult'),
    pollActive: v.pollActive === true,
    sinceEpochMs: n('sinceEpochMs'),
    upCount: n('upCount'),
    downCount: n('downCount'),
    lastDownReason: typeof v.lastDownReason === 'string' ? v.lastDownReason.slice(0, 200) : '',
    // Added after version 1 was fixed: a companion from before sends neither, read as 0.
    timerLateMaxMs: v.timerLateMaxMs === undefined ? 0 : n('timerLateMaxMs'),
    lateTimers: v.lateTimers === undefined ? 0 : n('lateTimers'),
  };
}

function parseSessions(v: unknown): IpcSession[] {
  if (!Array.isArray(v)) throw new IpcError('BAD_MESSAGE', '"sessions" must be an array');
  if (v.length > MAX_SESSIONS) throw new IpcError('BAD_MESSAGE', `more than ${MAX_SESSIONS} sessions`);
  return v.map(parseSession);
}

function parseEvent(v: unknown): IpcEvent {
  if (!isObj(v)) throw new IpcError('BAD_MESSAGE', '"event" must be an object');
  const key = parseKey(v.key);
  const cpi = v.remoteControlPlaneIndependent === true;
  if (v.type === 'up') return { type: 'up', key, remoteControlPlaneIndependent: cpi };
  if (v.type === 'down') {
    if (!isState(v.to)) throw new IpcError('BAD_MESSAGE', 'a down event needs a valid "to"');
    return { type: 'down', key, diag: num(v.diag, 'event.diag'), reason: typeof v.reason === 'string' ? v.reason.slice(0, 200) : '', to: v.to, remoteControlPlaneIndependent: cpi };
  }
  if (v.type === 'state') {
    if (!isState(v.from) || !isState(v.to)) throw new IpcError('BAD_MESSAGE', 'a state event needs valid "from" and "to"');
    return { type: 'state', key, from: v.from, to: v.to, diag: num(v.diag, 'event.diag') };
  }
  throw new IpcError('BAD_MESSAGE', `unknown event type ${JSON.stringify(v.type).slice(0, 40)}`);
}

/** One line from the server. Throws IpcError with a code and a specific reason. */
export function parseServerMessage(line: string): ServerMessage {
  const v = parseJson(line);
  const optId = (x: unknown): number | null => (x === null || x === undefined ? null : id(x));
  switch (v.type) {
    case 'hello':
      if (!Number.isSafeInteger(v.version)) throw new IpcError('BAD_MESSAGE', 'hello needs an integer "version"');
      return {
        type: 'hello', version: v.version as number, server: typeof v.server === 'string' ? v.server.slice(0, 64) : '',
        pid: Number.isSafeInteger(v.pid) ? (v.pid as number) : 0,
        sessions: v.version === IPC_VERSION ? parseSessions(v.sessions) : [],
      };
    case 'ok':
      return { type: 'ok', id: id(v.id) };
    case 'error':
      return {
        type: 'error', id: optId(v.id), code: typeof v.code === 'string' ? v.code.slice(0, 40) : 'UNKNOWN',
        message: typeof v.message === 'string' ? v.message.slice(0, 500) : '',
      };
    case 'sessions':
      return { type: 'sessions', id: optId(v.id), sessions: parseSessions(v.sessions) };
    case 'event':
      return { type: 'event', event: parseEvent(v.event) };
    default:
      throw new IpcError('UNKNOWN_TYPE', `unknown message type ${JSON.stringify(v.type).slice(0, 40)}`);
  }
}

/** A manager's session as it crosses the socket; `since` is on the sender's monotonic clock `nowMs`. */
export function toIpcSession(s: BfdSessionInfo, nowMs: number, epochMs = Date.now()): IpcSession {
  const { since, ...rest } = s;
  return { ...rest, sinceEpochMs: Math.round(epochMs - (nowMs - since)) };
}

/** Back to the receiver's monotonic clock. */
export function fromIpcSession(s: IpcSession, nowMs: number, epochMs = Date.now()): BfdSessionInfo {
  const { sinceEpochMs, ...rest } = s;
  return { ...rest, since: nowMs - (epochMs - sinceEpochMs) };
}

