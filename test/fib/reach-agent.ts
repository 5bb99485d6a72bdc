// src/daemon/reachability.ts inside a network namespace, for test/fib/reachability-*.test.ts (a Node process cannot
// enter a namespace; the test runs `ip netns exec NS node dist/test/fib/reach-agent.js`). Commands (json-lines.ts):
//   read {protocols?}       one readReachability(), and whether the kernel filtered the dumps (strict)
//   start {fib?, protocol?, deltas?} a KernelReachability (poll interval 1 h: only refresh and events read), fed by
//                           a Programmer's events when `fib` is set, as src/daemon.ts wires it; with `deltas`, the
//                           route events' changes go to a next-hop table and resolver kept by them (as the daemon's)
//   check {nextHops}        those two answer as fresh ones built from the current view
//   changed {protocol}      as the FIB's 'foreignRoute' event of that protocol
//   refresh                 one poll; answers the dumps asked so far and the view
//   state                   the dumps so far, the events applied without one, the view, the views reported, the errors
import { HostReader, Programmer } from '../../fib/index.js';
import { NextHopResolver, NextHopTable, setIntOpt, type Reachability } from '../../bgp/index.js';
import { KernelReachability, readReachability, resolvingProtocols } from '../../src/daemon/reachability.js';
import { serveJsonLines } from '../helpers/json-lines.js';

let fib: Programmer | undefined;
let reach: KernelReachability | undefined;
const views: Reachability[] = [];
const errors: string[] = [];
// the daemon's consumers, as `deltas` keeps them: whole views and changes
const table = new NextHopTable();
let resolver = new NextHopResolver([]);
let deltas = 0;
// the FIB's resyncs: each makes the reachability poll (a bulk write with the route groups off is one)
let resyncs = 0;
// the protocols whose routes were read by a dump after an event (routeChanged: what the event path left to a dump)
const named: number[] = [];

function state(): unknown {
  return { dumps: reach?.dumps, applied: reach?.applied, deltas, resyncs, named, current: reach?.current, views: views.length, errors, protocols: reach ? [...reach.protocols] : [] };
}

async function handle(cmd: Record<string, unknown>): Promise<unknown> {
  switch (cmd.op) {
    case 'read': {
      const reader = new HostReader(setIntOpt);
      try {
        const protocols = Array.isArray(cmd.protocols) ? new Set(cmd.protocols as number[]) : resolvingProtocols(171);
        return { strict: reader.strict, reach: await readReachability(protocols, reader) };
      } finally {
        reader.close();
      }
    }
    case 'start': {
      const protocol = typeof cmd.protocol === 'number' ? cmd.protocol : 171;
      if (cmd.fib === true) {
        fib = new Programmer({ protocol });
        fib.on('resync', () => resyncs++);
        await fib.start();
      }
      reach = new KernelReachability({
        intervalMs: 3_600_000, ownProtocol: protocol, ...(fib ? { follow: fib } : {}),
        onChange: (v) => {
          views.push(v);
          table.setReachability(v);
          resolver = new NextHopResolver(v.resolving ?? []);
        },
        ...(cmd.deltas === true ? {
          onRoutesChanged: (d: { added: readonly string[]; removed: readonly string[]; addedResolving: Reachability['resolving']; removedResolving: Reachability['resolving'] }) => {
            deltas++;
            table.applyRoutes(d.added, d.removed);
            for (const r of d.removedResolving ?? []) resolver.remove(r);
            for (const r of d.addedResolving ?? []) resolver.add(r);
          },
        } : {}),
        onError: (e) => errors.push(e.message),
      });
      const orig = reach.routeChanged.bind(reach);
      reach.routeChanged = (p: number): void => {
        named.push(p);
        orig(p);
      };
      await reach.start();
      return state();
    }
    case 'set': {
      // skein's own routes (a host route each from base), through the Programmer
      const f = fib!;
      const [a, b, c, d] = (cmd.base as string).split('.').map(Number) as [number, number, number, number];
      const base = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
      const gw = (cmd.gw as string).split('.').map(Number);
      for (let i = 0; i < (cmd.count as number); i++) {
        const x = (base + i) >>> 0;
        f.set(4, Uint8Array.of(x >>> 24, (x >>> 16) & 255, (x >>> 8) & 255, x & 255), 32, { hops: [{ gateway: Uint8Array.from(gw) }] });
      }
      await f.flush();
      return f.stats();
    }
    case 'changed':
      // what the Programmer's 'foreignRoute' event does
      reach!.routeChanged(cmd.protocol as number);
      return null;
    case 'check': {
      // what the events changed reaches the consumers on the view's next compose: wait for it (bounded)
      for (let i = 0; i < 200 && !reach!.idle; i++) await new Promise((r) => setTimeout(r, 10));
      const v = reach!.current!;
      const freshTable = new NextHopTable();
      freshTable.setReachability(v);
      const freshResolver = new NextHopResolver(v.resolving ?? []);
      const diffs: string[] = [];
      for (const nh of cmd.nextHops as string[]) {
        const a = table.check([nh])?.code ?? 'usable';
        const b = freshTable.check([nh])?.code ?? 'usable';
        if (a !== b) diffs.push(`${nh}: ${a} kept, ${b} fresh`);
        const x = JSON.stringify(resolver.resolve(nh));
        const y = JSON.stringify(freshResolver.resolve(nh));
        if (x !== y) diffs.push(`${nh}: via ${x} kept, ${y} fresh`);
      }
      return { diffs, routes: v.routes };
    }
    case 'refresh':
      await reach!.refresh();
      return state();
    case 'state':
      return state();
    default:
      throw new Error(`unknown op ${String(cmd.op)}`);
  }
}

serveJsonLines({
  handle,
  sequential: true,
  onClose: async () => {
    reach?.stop();
    await fib?.close();
  },
});
