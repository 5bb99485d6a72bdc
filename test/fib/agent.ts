// Drives fib/'s Programmer inside a network namespace for the tests (a Node process cannot enter a namespace, so
// the test spawns `ip netns exec NS node dist/test/fib/agent.js`). Commands arrive as JSON lines on stdin and are
// answered as JSON lines on stdout: {id, ok, result} or {id, ok: false, error}. Events go out as {event, ...}.
// Addresses travel as text here; the agent turns them into the bytes fib/ takes.
import { Programmer, formatAddress, formatPrefix, type NextHop, type RouteView, type Target } from '../../fib/index.js';
import { parseAddress, parsePrefix } from './addr.js';
import { emit as out, serveJsonLines } from '../helpers/json-lines.js';

export interface HopSpec { gw?: string; dev?: string; ifindex?: number; onlink?: boolean; weight?: number }
export interface RouteSpec { prefix: string; hops?: HopSpec[]; blackhole?: boolean; table?: number; metric?: number }
export interface RangeSpec { base: string; count: number; hops: HopSpec[] }

let fib: Programmer | undefined;
/** totals of the Programmer's per-batch reports (what src/ turns into a latency histogram) */
const batches = { count: 0, routes: 0, failed: 0, maxLatency: 0, inconsistent: 0 };

function target(r: RouteSpec, family: 4 | 6): Target {
  if (r.blackhole) return { blackhole: true };
  const hops: NextHop[] = (r.hops ?? []).map((h) => ({
    ...(h.gw !== undefined ? { gateway: parseAddress(h.gw, family) } : {}),
    ...(h.dev !== undefined ? { dev: h.dev } : {}),
    ...(h.ifindex !== undefined ? { ifindex: h.ifindex } : {}),
    ...(h.onlink !== undefined ? { onlink: h.onlink } : {}),
    ...(h.weight !== undefined ? { weight: h.weight } : {}),
  }));
  return { hops };
}

function where(r: { table?: number; metric?: number }): { table?: number; metric?: number } {
  return { ...(r.table !== undefined ? { table: r.table } : {}), ...(r.metric !== undefined ? { metric: r.metric } : {}) };
}

function view(v: RouteView): unknown {
  return {
    prefix: formatPrefix(v.prefix), table: v.table, metric: v.metric, inSync: v.inSync, pending: v.pending,
    desired: v.desired ? (v.desired.blackhole ? 'blackhole' : v.desired.hops.length) : null,
    kernel: v.kernel ? { type: v.kernel.type, hops: v.kernel.hops.map((h) => ({ gw: h.gateway ? formatAddress(h.gateway) : null, ifindex: h.ifindex, weight: h.weight })) } : null,
    failure: v.failure ? { code: v.failure.code, message: v.failure.message, attempts: v.failure.attempts } : null,
  };
}

function hop(gw: string): [4 | 6, Uint8Array] {
  const a = parseAddress(gw, gw.includes(':') ? 6 : 4);
  return [a.length === 4 ? 4 : 6, a];
}

function need(): Programmer {
  if (!fib) throw new Error('not started');
  return fib;
}

async function handle(cmd: Record<string, unknown>): Promise<unknown> {
  switch (cmd.op) {
    case 'start': {
      fib = new Programmer((cmd.opts ?? {}) as ConstructorParameters<typeof Programmer>[0]);
      fib.on('failure', (v) => out({ event: 'failure', view: view(v) }));
      fib.on('resync', (reason) => out({ event: 'resync', reason }));
      fib.on('batch', (b) => {
        batches.count++;
        batches.routes += b.routes;
        batches.failed += b.failed;
        batches.maxLatency = Math.max(batches.maxLatency, b.latencySeconds);
        if (b.latencySeconds < b.kernelSeconds || b.kernelSeconds < 0) batches.inconsistent++;
      });
      fib.on('warning', (w) => out({ event: 'warning', message: w.message }));
      await fib.start();
      return checkedStats(fib);
    }
    case 'set': {
      const f = need();
      for (const r of cmd.routes as RouteSpec[]) {
        const p = parsePrefix(r.prefix);
        f.set(p.family, p.addr, p.len, target(r, p.family), where(r));
      }
      return null;
    }
    case 'setRange': {
      // count consecutive host routes (/32 or /128) from base, all to one target (one object: interned once)
      const f = need();
      const r = cmd.range as RangeSpec;
      const p = parsePrefix(r.base);
      const t = target({ prefix: r.base, hops: r.hops }, p.family);
      const a = Uint8Array.from(p.addr);
      for (let i = 0; i < r.count; i++) {
        f.set(p.family, a, p.len, t);
        for (let j = a.length - 1; j >= 0; j--) if (++a[j]! <= 255) break; else a[j] = 0;
      }
      return null;
    }
    case 'remove': {
      const f = need();
      for (const r of cmd.routes as { prefix: string; table?: number; metric?: number }[]) {
        const p = parsePrefix(r.prefix);
        f.remove(p.family, p.addr, p.len, where(r));
      }
      return null;
    }
    case 'flush':
      await need().flush();
      return checkedStats(need());
    case 'markSynced':
      await need().markSynced();
      return checkedStats(need());
    case 'resync':
      await need().resync('agent');
      return checkedStats(need());
    case 'stats':
      return checkedStats(need());
    case 'batches':
      return batches;
    case 'lookup': {
      const r = cmd.route as { prefix: string; table?: number; metric?: number };
      const p = parsePrefix(r.prefix);
      const v = need().lookup(p.family, p.addr, p.len, where(r));
      return v ? view(v) : null;
    }
    case 'turn': {
      // several commands in one turn of the event loop, as skeind does on a BFD Down (withdrawals, then the object)
      const sent: number[] = [];
      const pending: Promise<unknown>[] = [];
      for (const sub of cmd.ops as Record<string, unknown>[]) {
        // set/setRange/remove run synchronously inside handle() (no await before they return)
        if (sub.op === 'nextHopDown') sent.push(need().nextHopDown(...hop(sub.gw as string)));
        else pending.push(handle(sub));
      }
      await Promise.all(pending);
      return sent;
    }
    case 'nextHopDown':
      return need().nextHopDown(...hop(cmd.gw as string));
    case 'writeNow':
      // write what is queued now, inside this turn (in a 'turn': before the next command of the same turn)
      need().writeNow();
      return null;
    case 'prepare':
      need().prepare();
      return checkedStats(need());
    case 'block': {
      // hold this thread for `ms` (a long turn of skeind's loop): the request thread's replies pile up meanwhile
      const until = performance.now() + (cmd.ms as number);
      while (performance.now() < until) { /* busy */ }
      return null;
    }
    case 'failures':
      return [...need().failures()].map(view);
    case 'close':
      await fib?.close();
      setImmediate(() => process.exit(0));
      return null;
    default:
      throw new Error(`unknown op ${String(cmd.op)}`);
  }
}

// Commands run one after another, in arrival order.
serveJsonLines({
  handle,
  sequential: true,
  errorText: (e) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)),
  onClose: () => fib?.close(),
});

/**
 * stats(), after checking that the counts kept as entries change (Programmer.counts(), read by the metrics sampler)
 * equal what stats() finds by walking every entry: every fib test that reads stats checks them in passing.
 */
function checkedStats(f: Programmer): ReturnType<Programmer['stats']> {
  const s = f.stats();
  const c = f.counts();
  let failed = 0;
  for (const n of Object.values(s.failuresByReason)) failed += n;
  if (c.desired !== s.desired || c.installed !== s.installed || c.failed !== failed) {
    throw new Error(`Programmer.counts() ${JSON.stringify(c)} differs from stats() ${JSON.stringify({ desired: s.desired, installed: s.installed, failed })}`);
  }
  return s;
}
