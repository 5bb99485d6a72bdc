// `skeinctl fib`: what skein wants in the kernel beside what the kernel holds, printed as the daemon streams it
// (src/daemon/fib-query.ts, src/control/stream.ts), the way `skeinctl routes` prints its rows (routes.ts): a table
// of a million routes shows its first rows at once and never becomes one document in either process. `--json`
// prints the contract's FibJson ({"enabled", "table", "protocol", "routes": [...], "counts"}) a row at a time;
// `--jsonl` one row per line. Filters: --prefix-within, --family, --state, --count, --limit/--after. A reader that
// goes away (`skeinctl fib | head`) ends the command quietly.
import { streamControl } from '../control/client.js';
import { UsageError, type CtlOptions, type ParsedCtlArgs, type RouteOptions } from './args.js';
import type { CtlIo } from './index.js';
import { failer, streamFailed } from './stream-exit.js';
import { EXIT } from './index.js';
import { fibEntry, fibWriterLine, renderFib, ShapeError } from './render.js';
import type { FibJson, FibRouteJson } from '../control/types.js';

/** Usage errors of the fib options given together. */
export function checkFibOptions(p: ParsedCtlArgs): void {
  const r = p.routes;
  if (r.family !== undefined && r.family !== 'ipv4' && r.family !== 'ipv6') throw new UsageError('fib: --family is ipv4 or ipv6');
  if (r.state !== undefined && r.state !== 'in-sync' && r.state !== 'pending' && r.state !== 'failed') throw new UsageError('fib: --state is in-sync, pending or failed');
  if (r.after !== undefined && !r.after.includes('/')) throw new UsageError('fib: --after takes a prefix (the last one of the previous page)');
}

/** The control request's params for a fib command line. */
export function fibParams(r: RouteOptions): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  if (r.within !== undefined) p.within = r.within;
  if (r.family !== undefined) p.family = r.family;
  if (r.state !== undefined) p.state = r.state;
  if (r.count) p.count = true;
  if (r.limit !== undefined) p.limit = r.limit;
  if (r.after !== undefined) p.after = r.after;
  return p;
}

/** Column widths of the streamed table: rows come before their widths could be known, so they are fixed. */
const WIDTHS = [20, 24, 32] as const;
const pad = (s: string, w: number): string => (s.length >= w ? `${s}  ` : s.padEnd(w + 2));

/** One row of the text table. */
export function fibLine(r: FibRouteJson): string {
  return `${pad(String(r.prefix), WIDTHS[0])}${pad(fibEntry(r.desired), WIDTHS[1])}${pad(fibEntry(r.kernel), WIDTHS[2])}${String(r.state)}\n`;
}

/** failures kept for the summary under the text table; the rest are counted */
const MAX_FAILURES_SHOWN = 1000;

export async function streamFib(o: CtlOptions, io: CtlIo, r: RouteOptions): Promise<number> {
  const write = io.stdoutAsync ?? ((s: string): Promise<void> => {
    io.stdout(s);
    return Promise.resolve();
  });
  const json = o.json === true && o.jsonl !== true;
  const text = !o.json && !o.jsonl;
  let rows = 0;
  let head = '';
  let enabled = true;
  const failures: FibRouteJson[] = [];
  let moreFailures = 0;
  const fail = failer(io, json, () => rows);
  let outcome;
  try {
    outcome = await streamControl(o.socket, 'fib', fibParams(r), {
      onWaiting: (position) => {
        if (text) io.stderr(`skeinctl: the daemon is busy; waiting (${position} ahead)\n`);
      },
      onBegin: (h) => {
        enabled = h.enabled !== false;
        const writer = h.writer !== undefined ? `, "writer": ${JSON.stringify(h.writer)}` : '';
        if (json) head = `{"enabled": ${JSON.stringify(h.enabled)}, "table": ${JSON.stringify(h.table)}, "protocol": ${JSON.stringify(h.protocol)}${writer}, "routes": [`;
        else if (text) head = enabled ? `FIB: table ${String(h.table)}, protocol ${String(h.protocol)}\n${fibWriterLine(h.writer)}` : renderFib({ enabled: false });
      },
      onRows: (batch) => {
        let s = head;
        head = '';
        for (const item of batch) {
          if (typeof item !== 'object' || item === null) throw new ShapeError('fib.routes[] is not an object');
          const row = item as FibRouteJson;
          if (o.jsonl) s += `${JSON.stringify(row)}\n`;
          else if (json) s += `${rows === 0 ? '\n' : ',\n'}${JSON.stringify(row)}`;
          else if (enabled && !r.count) {
            if (rows === 0) s += `\n${pad('PREFIX', WIDTHS[0])}${pad('DESIRED', WIDTHS[1])}${pad('KERNEL', WIDTHS[2])}STATE\n`;
            s += fibLine(row);
            if (row.state === 'failed' || row.error) {
              if (failures.length < MAX_FAILURES_SHOWN) failures.push(row);
              else moreFailures++;
            }
          }
          rows++;
        }
        return write(s);
      },
    }, { timeoutMs: o.timeoutMs });
  } catch (e) {
    return streamFailed(e, fail);
  }
  try {
    if (outcome.kind === 'result') {
      // a daemon that answers in one piece (an older skeind)
      if (o.json) await write(`${JSON.stringify(outcome.result, null, 2)}\n`);
      else if (o.jsonl) {
        const list = (outcome.result as FibJson | null)?.routes;
        await write(Array.isArray(list) ? list.map((x) => `${JSON.stringify(x)}\n`).join('') : '');
      } else await write(renderFib(outcome.result));
      return EXIT.OK;
    }
    const end = outcome.end;
    const matched = typeof end.matched === 'number' ? end.matched : rows;
    const next = typeof end.next === 'string' ? end.next : undefined;
    const c = (end.counts ?? {}) as Partial<FibJson['counts']>;
    if (r.count) {
      await write(o.json || o.jsonl ? `${JSON.stringify({ count: matched })}\n` : `${matched}\n`);
      return EXIT.OK;
    }
    if (json) {
      await write(`${head}\n], "counts": ${JSON.stringify(end.counts ?? null)}${next !== undefined ? `, "next": ${JSON.stringify(next)}` : ''}}\n`);
    } else if (text) {
      let s = head;
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set in the onHeader callback above
      if (enabled) {
        if (rows === 0) s += '\nNo routes.\n';
        s += `\n${rows} route${rows === 1 ? '' : 's'}: desired ${String(c.desired ?? '-')}, installed ${String(c.installed ?? '-')}, pending ${String(c.pending ?? '-')}, failed ${String(c.failed ?? '-')}\n`;
        if (failures.length > 0) {
          const w = Math.max(6, ...failures.map((f) => f.prefix.length));
          s += `\nFailures:\n  ${'PREFIX'.padEnd(w + 2)}REASON\n${failures.map((f) => `  ${f.prefix.padEnd(w + 2)}${f.error ?? '-'}\n`).join('')}`;
          if (moreFailures > 0) s += `  ... and ${moreFailures} more (skeinctl fib --state failed)\n`;
        }
        if (next !== undefined) s += `more: add --after ${next} for the next page\n`;
      }
      await write(s);
    }
    return EXIT.OK;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') return EXIT.OK;
    if (e instanceof ShapeError) return fail(EXIT.DAEMON_ERROR, e.message);
    return fail(EXIT.DAEMON_ERROR, `cannot render the daemon's answer (${(e as Error).message}); try --json`);
  }
}
