// `skeinctl routes`: the request's filters, and its answer printed as it streams in (src/control/stream.ts), so
// the first rows of a million-route table show at once and a slow reader (`| less`) slows the daemon's producer
// instead of filling memory. `--json` prints the contract's document ({"routes": [...]}) a row at a time; `--jsonl`
// prints one route per line. A reader that goes away (`| head`) ends the command quietly, and the daemon stops
// making the answer.
import { streamControl } from '../control/client.js';
import { UsageError, type CtlOptions, type ParsedCtlArgs, type RouteOptions } from './args.js';
import type { CtlIo } from './index.js';
import { failer, streamFailed } from './stream-exit.js';
import { EXIT } from './index.js';
import { renderPolicy, renderRouteBlock, renderRoutes, ShapeError } from './render.js';

/** Usage errors of the routes options given together (which command takes which option is args.ts's table). */
export function checkRouteOptions(p: ParsedCtlArgs): void {
  const r = p.routes;
  if (r.longer && p.args[0] === undefined) throw new UsageError('routes: --longer needs a PREFIX');
  if (r.longer && r.within !== undefined) throw new UsageError('routes: give PREFIX --longer or --prefix-within, not both');
  const views = (['received', 'refused', 'advertised'] as const).filter((v) => r[v] === true);
  if (views.length > 1) throw new UsageError(`routes: one of --received, --refused, --advertised, not ${views.map((v) => `--${v}`).join(' and ')}`);
  if (views.length === 1 && r.peer === undefined) throw new UsageError(`routes: --${views[0]!} needs --peer ADDR`);
  if (r.family !== undefined && r.family !== 'ipv4' && r.family !== 'ipv6') throw new UsageError('routes: --family is ipv4 or ipv6');
  const lookup = p.args[0] !== undefined && !r.longer;
  if (lookup && (r.limit !== undefined || r.after !== undefined)) throw new UsageError('routes: --limit and --after page through listings, not a PREFIX lookup (add --longer)');
  if (r.after !== undefined && !r.after.includes('/')) throw new UsageError('routes: --after takes a prefix (the last one of the previous page)');
}

/** The control request's params for a routes command line. */
export function routeParams(prefix: string | undefined, r: RouteOptions): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  if (prefix !== undefined) p.prefix = prefix;
  if (r.longer) p.longer = true;
  if (r.within !== undefined) p.within = r.within;
  if (r.peer !== undefined) p.peer = r.peer;
  if (r.received) p.view = 'received';
  if (r.refused) p.view = 'refused';
  if (r.advertised) p.view = 'advertised';
  if (r.community !== undefined) p.community = r.community;
  if (r.family !== undefined) p.family = r.family;
  if (r.count) p.count = true;
  if (r.limit !== undefined) p.limit = r.limit;
  if (r.after !== undefined) p.after = r.after;
  return p;
}

export async function streamRoutes(o: CtlOptions, io: CtlIo, prefix: string | undefined, r: RouteOptions): Promise<number> {
  const write = io.stdoutAsync ?? ((s: string): Promise<void> => {
    io.stdout(s);
    return Promise.resolve();
  });
  const lookup = prefix !== undefined && !r.longer;
  const json = o.json === true && o.jsonl !== true;
  let rows = 0;
  const fail = failer(io, json, () => rows);
  let outcome;
  try {
    outcome = await streamControl(o.socket, 'routes', routeParams(prefix, r), {
      onWaiting: (position) => {
        if (!o.json && !o.jsonl) io.stderr(`skeinctl: the daemon is busy; waiting (${position} ahead)\n`);
      },
      onRows: (batch) => {
        let s = '';
        for (const row of batch) {
          if (o.jsonl) s += `${JSON.stringify(row)}\n`;
          else if (json) s += `${rows === 0 ? '{"routes": [\n' : ',\n'}${JSON.stringify(row)}`;
          else s += `${rows > 0 ? '\n' : ''}${renderRouteBlock(row)}`;
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
      // a daemon that answers in one piece (older skeind)
      const list = (outcome.result as { routes?: unknown[] } | null)?.routes;
      if (o.json) await write(`${JSON.stringify(outcome.result, null, 2)}\n`);
      else if (o.jsonl) await write(Array.isArray(list) ? list.map((x) => `${JSON.stringify(x)}\n`).join('') : '');
      else await write(renderRoutes(outcome.result, prefix));
      return lookup && Array.isArray(list) && list.length === 0 ? EXIT.DAEMON_ERROR : EXIT.OK;
    }
    const end = outcome.end;
    const matched = typeof end.matched === 'number' ? end.matched : rows;
    const next = typeof end.next === 'string' ? end.next : undefined;
    if (r.count) {
      await write(o.json || o.jsonl ? `${JSON.stringify({ count: matched })}\n` : `${matched}\n`);
      return lookup && matched === 0 ? EXIT.DAEMON_ERROR : EXIT.OK;
    }
    const policy = end.policy !== undefined && end.policy !== null ? end.policy : undefined;
    if (json) {
      const extra = (next !== undefined ? `,\n"next": ${JSON.stringify(next)}` : '') + (policy !== undefined ? `,\n"policy": ${JSON.stringify(policy)}` : '');
      await write(`${rows === 0 ? '{"routes": [' : ''}\n]${extra}}\n`);
    } else if (!o.jsonl) {
      if (rows === 0) await write(lookup ? `No route for ${prefix}.\n` : 'No routes.\n');
      else await write(`\n${rows} route${rows === 1 ? '' : 's'}\n`);
      if (policy !== undefined) await write(renderPolicy(policy));
      if (next !== undefined) await write(`more: add --after ${next} for the next page\n`);
    }
    return lookup && rows === 0 ? EXIT.DAEMON_ERROR : EXIT.OK;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') return EXIT.OK;
    if (e instanceof ShapeError) return fail(EXIT.DAEMON_ERROR, e.message);
    return fail(EXIT.DAEMON_ERROR, `cannot render the daemon's answer (${(e as Error).message}); try --json`);
  }
}
