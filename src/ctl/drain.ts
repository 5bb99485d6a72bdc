// skeinctl drain / undrain, and the drain line of `skeinctl status`: text from the daemon's DrainJson
// (src/daemon/drain.ts). An answer of the wrong shape is a ShapeError, as for the other renderers.
import { fields, humaneSince } from './format.js';
import { ShapeError } from './render.js';
import type { DrainJson } from '../control/types.js';

const STATES = new Set(['off', 'draining', 'drained']);

/** One line: what the drain is doing now. */
export function drainLine(d: DrainJson, now: Date): string {
  if (d.state === 'off') {
    return d.shutdownDrainSeconds > 0 ? `off (a stop drains for ${d.shutdownDrainSeconds}s first)` : 'off';
  }
  const since = d.since !== null ? ` since ${humaneSince(d.since, now)}` : '';
  const then = d.stopping ? ', then the sessions end (skeind is stopping)' : '';
  if (d.state === 'draining') {
    return `draining${since}: routes carry GRACEFUL_SHUTDOWN (RFC 8326), ${d.secondsLeft ?? 0}s of ${d.seconds}s left for peers to move traffic${then}`;
  }
  return `drained${since}: routes carry GRACEFUL_SHUTDOWN (RFC 8326); peers had ${d.seconds}s to move traffic${then}`;
}

export function checkDrain(v: unknown, what = 'drain'): DrainJson {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ShapeError(`${what} is not an object`);
  const d = v as Record<string, unknown>;
  if (typeof d.state !== 'string' || !STATES.has(d.state)) throw new ShapeError(`${what}.state is not off, draining or drained`);
  if (typeof d.seconds !== 'number') throw new ShapeError(`${what}.seconds is not a number`);
  return d as unknown as DrainJson;
}

/** `skeinctl drain` / `undrain` as text. */
export function renderDrain(result: unknown, now: Date): string {
  return fields([['Graceful shutdown', drainLine(checkDrain(result), now)]]);
}
