// `skeinctl fib` on the daemon's side: the rows of what skein wants in the kernel beside what the kernel holds
// (src/daemon/status.ts makes each row), streamed a slice at a time in prefix order (src/control/stream.ts,
// ./prefix-walk.ts) as `skeinctl routes` is, so a table of a million routes is never one document in memory.
//
// Params (all optional): within (a prefix: only rows inside it), family ("ipv4" | "ipv6"), state ("in-sync" |
// "pending" | "failed"), count (no rows, only the number in the end line), limit and after (paging, in walk order).
// The header names the table and protocol; the end line carries `matched`, the counts of the rows matched (for an
// unfiltered listing: the whole table, as the one-document answer had them) and `next` when a page is full.
import type { DaemonConfig } from '../../config/index.js';
import type { Programmer } from '../../fib/index.js';
import { ControlStream, scheduler as sharedScheduler, type TurnScheduler } from '../control/stream.js';
import type { FibJson, FibRouteJson } from '../control/types.js';
import { PrefixWalk, pagedRows, type KeyRange, type Page, type PrefixKey } from './prefix-walk.js';
import { bad, keyText, parsePaging, parseRange, str } from './route-query.js';
import { ipv4Bytes } from '../ip.js';
import type { RouteTable } from './routes.js';
import { countFibRow, desiredFibRow, fmtPrefix, kernelOnlyFibRow, writerField } from './status.js';

export type FibState = FibRouteJson['state'];

export interface FibQuery {
  within?: KeyRange;
  family?: 4 | 6;
  state?: FibState;
  count: boolean;
  limit?: number;
  after?: PrefixKey;
}

/** What the fib view reads: the FIB programmer (undefined with fib.enabled false) and the route table. */
export interface FibSource {
  fib: Programmer | undefined;
  routes: RouteTable;
  cfg: DaemonConfig['fib'];
}

/** Checks a fib request. Throws a bad-request ControlError naming the field. */
export function parseFibQuery(p: Record<string, unknown>): FibQuery {
  const q: FibQuery = { count: p.count === true };
  const within = str(p, 'within');
  if (within !== undefined) q.within = parseRange(within, 'within').range;
  const family = str(p, 'family');
  if (family !== undefined) {
    if (family !== 'ipv4' && family !== 'ipv6') throw bad('"family" must be "ipv4" or "ipv6"');
    q.family = family === 'ipv4' ? 4 : 6;
  }
  const state = str(p, 'state');
  if (state !== undefined) {
    if (state !== 'in-sync' && state !== 'pending' && state !== 'failed') throw bad('"state" must be "in-sync", "pending" or "failed"');
    q.state = state;
  }
  parsePaging(p, q);
  return q;
}

/**
 * The keys of every prefix `skeinctl fib` lists: those the route table has a route for, then routes of ours the
 * kernel holds that nothing wants. Read lazily by the walk's snapshot, a slice at a time.
 */
function* fibKeys(src: FibSource): Generator<PrefixKey> {
  for (const d of src.routes.all()) yield parseRange(d.prefix, 'prefix').key;
  if (src.fib === undefined) return;
  for (const v of src.fib.routes()) {
    if (!v.kernel) continue;
    const text = fmtPrefix(v);
    if (src.routes.desired(text) === undefined) yield parseRange(text, 'prefix').key;
  }
}

/** The row of one prefix now, or null when it is gone since the snapshot. */
function fibRow(src: FibSource, text: string): FibRouteJson | null {
  const d = src.routes.desired(text);
  if (d !== undefined) return desiredFibRow(src.fib, src.routes, d);
  if (src.fib === undefined) return null;
  const r = parseRange(text, 'prefix');
  const v = src.fib.lookup(r.range.family, r.range.family === 4 ? ipv4Bytes(r.range.addr4) : r.range.addr6, r.range.len);
  return v?.kernel ? kernelOnlyFibRow(v) : null;
}

/** rows per batch at most: one line on the socket stays small (as in route-query.ts) */
const MAX_BATCH = 512;

/** The streaming answer of a fib request. */
export function fibStream(q: FibQuery, src: FibSource, sched: TurnScheduler = sharedScheduler): ControlStream {
  const counts: FibJson['counts'] = { desired: 0, installed: 0, pending: 0, failed: 0 };
  const page: Page = { matched: 0 };
  return new ControlStream({
    header: { enabled: src.fib !== undefined, table: src.cfg.table, protocol: src.cfg.protocol, ...writerField(src.fib) },
    async *rows(signal) {
      const walk = new PrefixWalk(() => fibKeys(src), {
        ...(q.within ? { within: q.within } : {}),
        ...(q.after !== undefined ? { after: q.after } : {}),
        ...(q.family !== undefined ? { family: q.family } : {}),
      });
      const rows = pagedRows(walk, sched, signal, {
        limit: q.limit ?? Infinity,
        countOnly: q.count === true,
        maxBatch: MAX_BATCH,
        row: (k) => {
          const row = fibRow(src, keyText(k));
          if (row === null || (q.state !== undefined && row.state !== q.state)) return null;
          countFibRow(counts, row);
          return row;
        },
      }, page);
      for await (const batch of rows) yield batch;
    },
    trailer: () => ({ matched: page.matched, counts, ...(page.next !== undefined ? { next: keyText(page.next) } : {}) }),
  });
}
