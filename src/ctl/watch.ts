// `skeinctl watch [PREFIX]`: prints the daemon's events as they happen (src/daemon/watch.ts) until interrupted or
// until the daemon goes away. Text: one line per event; --json or --jsonl: the events as JSON lines.
import { ControlClientError, streamControl } from '../control/client.js';
import type { CtlIo, CtlOptions } from './index.js';
import { EXIT } from './index.js';

/** One event as a line of text: time, type, then what happened. */
export function renderWatchEvent(ev: Record<string, unknown>): string {
  const time = typeof ev.time === 'string' ? ev.time.replace('T', ' ').replace('Z', '') : '-';
  const list = (v: unknown): string => (Array.isArray(v) && v.length > 0 ? v.join(',') : '-');
  switch (ev.type) {
    case 'peer':
      return `${time}  peer   ${String(ev.peer)} ${String(ev.from)} -> ${String(ev.state)}${ev.info ? ` (${String(ev.info)})` : ''}`;
    case 'best':
      return ev.gone
        ? `${time}  best   ${String(ev.prefix)} withdrawn`
        : `${time}  best   ${String(ev.prefix)} from ${ev.local ? 'local' : String(ev.from)} via ${list(ev.nextHops)}`;
    case 'fib':
      return ev.action === 'remove'
        ? `${time}  fib    ${String(ev.prefix)} remove`
        : `${time}  fib    ${String(ev.prefix)} set ${String(ev.kind)}${ev.dev !== undefined ? ` dev ${String(ev.dev)}` : ev.kind === 'bgp' ? ` via ${list(ev.nextHops)}` : ''}`;
    case 'fib-batch':
      return `${time}  fib    batch of ${String(ev.routes)} written in ${Number(ev.latencySeconds ?? 0).toFixed(3)}s${Number(ev.failed) > 0 ? `, ${String(ev.failed)} failed` : ''}`;
    case 'fib-failure':
      return `${time}  fib    ${String(ev.prefix)} REFUSED ${String(ev.code)}: ${String(ev.reason)}`;
    case 'lost':
      return `${time}  lost   ${String(ev.events)} events (this watcher fell behind)`;
    default:
      return `${time}  ${String(ev.type)} ${JSON.stringify(ev)}`;
  }
}

export async function ctlWatch(o: CtlOptions, io: CtlIo, prefix: string | undefined, kinds: string | undefined): Promise<number> {
  const write = io.stdoutAsync ?? ((s: string): Promise<void> => {
    io.stdout(s);
    return Promise.resolve();
  });
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const params: Record<string, unknown> = {};
  if (prefix !== undefined) params.prefix = prefix;
  if (kinds !== undefined) params.kinds = kinds.split(',').map((k) => k.trim()).filter(Boolean);
  try {
    await streamControl(o.socket, 'watch', params, {
      onBegin: (h) => {
        if (!o.json && !o.jsonl) io.stderr(`watching ${Array.isArray(h.watching) ? h.watching.join(', ') : 'events'}${prefix !== undefined ? ` of ${prefix}` : ''}; Ctrl-C to stop\n`);
      },
      onRows: (rows) => write(rows.map((r) => `${o.json || o.jsonl ? JSON.stringify(r) : renderWatchEvent(r as Record<string, unknown>)}\n`).join('')),
    }, { timeoutMs: o.timeoutMs, signal: ac.signal });
    io.stderr('skeinctl: the daemon ended the watch\n');
    return EXIT.OK;
  } catch (e) {
    if (ac.signal.aborted) return EXIT.OK;
    if (e instanceof ControlClientError) {
      if (e.code === 'EPIPE') return EXIT.OK;
      io.stderr(`skeinctl: ${e.kind === 'remote' ? `the daemon reports: ${e.message}` : e.message}\n`);
      return e.kind === 'unreachable' ? EXIT.UNREACHABLE : EXIT.DAEMON_ERROR;
    }
    io.stderr(`skeinctl: ${(e as Error).message}\n`);
    return EXIT.DAEMON_ERROR;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
