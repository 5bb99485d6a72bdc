// src/daemon/reachability.ts inside a network namespace, for test/fib/reachability-*.test.ts (a Node process cannot
// enter a namespace; the test runs `ip netns exec NS node dist/test/fib/reach-agent.js`). Commands (json-lines.ts):
//   read {protocols?}       one readReachability(), and whether the kernel filtered the dumps (strict)
//   start {fib?, protocol?} a KernelReachability (poll interval 1 h: only refresh and events read), fed by a
//                           Programmer's events when `fib` is set, as src/daemon.ts wires it
//   changed {protocol}      as the FIB's 'foreignRoute' event of that protocol
//   refresh                 one poll; answers the dumps asked so far and the view
//   state                   the dumps so far, the events applied without one, the view, the views reported, the errors
import { HostReader, Programmer } from '../../fib/index.js';
import { setIntOpt, type Reachability } from '../../bgp/index.js';
import { KernelReachability, readReachability, resolvingProtocols } from '../../src/daemon/reachability.js';
import { serveJsonLines } from '../helpers/json-lines.js';

let fib: Programmer | undefined;
let reach: KernelReachability | undefined;
const views: Reachability[] = [];
const errors: string[] = [];

function state(): unknown {
  return { dumps: reach?.dumps, applied: reach?.applied, current: reach?.current, views: views.length, errors, protocols: reach ? [...reach.protocols] : [] };
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
        await fib.start();
      }
      reach = new KernelReachability({
        intervalMs: 3_600_000, ownProtocol: protocol, ...(fib ? { follow: fib } : {}),
        onChange: (v) => views.push(v), onError: (e) => errors.push(e.message),
      });
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
