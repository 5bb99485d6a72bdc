// A failed next hop behind many routes (issue 18's target: kernel updated in <= 50 ms, in O(1) netlink messages).
// PART, not end to end: fib/'s Programmer alone in a fresh network namespace, no BGP and no BFD; what a BFD Down
// costs in skeind on top of this is the RIB drain (the withdrawals), which src/daemon.ts runs after nextHopDown.
//
// N routes (/32s) over two next hops (ECMP, one group), then next hop A dies, done the two ways fib/ can:
//  - objects: nextHopDown(A) (one RTM_DELNEXTHOP: the kernel drops A from the group every route points at), then
//    the desired state moves every route to {B} as the RIB drain would; fib/ finds them already right (no writes);
//  - plain (nexthopObjects: false, what kernels < 5.3 get): every route is replaced by one pointing at B.
// Printed: netlink messages and time until the kernel answered (it no longer uses A), the route messages the
// desired-state update still needed, and a check from `ip -j route` that no route uses A afterwards.
// Needs root; prints a skip line otherwise. Options: FIB_FAILOVER_SIZES="50000,100000".
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Programmer, type Target } from '../fib/index.js';
import { Lab, nsExec } from '../test/helpers/netns.js';

const A = Uint8Array.of(10, 78, 0, 1);
const B = Uint8Array.of(10, 78, 1, 1);

interface Result { mode: string; n: number; hopDownMsgs: number; hopDownMs: number; updateMsgs: number; updateMs: number; installMs: number }

function dst(i: number, out: Uint8Array): Uint8Array {
  const n = (0x0a900000 + i) >>> 0; // 10.144.0.0 upwards
  out[0] = n >>> 24; out[1] = (n >>> 16) & 255; out[2] = (n >>> 8) & 255; out[3] = n & 255;
  return out;
}

/** Inside the namespace: install, fail A, report one JSON line. */
async function worker(n: number, objects: boolean): Promise<void> {
  const fib = new Programmer({ nexthopObjects: objects });
  await fib.start();
  const both: Target = { hops: [{ gateway: A }, { gateway: B }] };
  const onlyB: Target = { hops: [{ gateway: B }] };
  const a = new Uint8Array(4);
  let t0 = performance.now();
  for (let i = 0; i < n; i++) fib.set(4, dst(i, a), 32, both);
  await fib.flush();
  const installMs = performance.now() - t0;
  const writes = (): number => {
    const s = fib.stats().sent;
    return s.add + s.replace + s.delete;
  };
  // the failure. skeind does both in one turn (the object first); here the object's answer is awaited before the
  // desired-state update so that the two are timed apart
  const before = writes();
  t0 = performance.now();
  const hopDownMsgs = fib.nextHopDown(4, A);
  if (objects) await fib.flush('writes');
  const hopDownObjMs = performance.now() - t0;
  const t1 = performance.now();
  for (let i = 0; i < n; i++) fib.set(4, dst(i, a), 32, onlyB);
  fib.writeNow();
  await fib.flush('writes');
  // with plain routes the last replace's answer is when the kernel stopped using A everywhere
  const hopDownMs = objects ? hopDownObjMs : performance.now() - t0;
  await fib.flush();
  const updateMs = performance.now() - t1;
  const updateMsgs = writes() - before;
  const st = fib.stats();
  if (st.inSync !== n || st.errors !== 0) throw new Error(`inconsistent: ${JSON.stringify(st)}`);
  await fib.close();
  process.stdout.write(`${JSON.stringify({ mode: objects ? 'objects' : 'plain', n, hopDownMsgs, hopDownMs, updateMsgs, updateMs, installMs } satisfies Result)}\n`);
}

function runCase(n: number, objects: boolean): Result {
  const lab = new Lab();
  try {
    const ns = lab.ns('fofail');
    lab.link(ns, ns, 'fa0', 'fa0p');
    lab.link(ns, ns, 'fa1', 'fa1p');
    lab.addr(ns, 'fa0', '10.78.0.2/24');
    lab.addr(ns, 'fa1', '10.78.1.2/24');
    const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), '--worker', String(n), objects ? 'objects' : 'plain'],
      { encoding: 'utf8', maxBuffer: 1 << 20, timeout: 600_000 });
    const r = JSON.parse(out.trim().split('\n').pop()!) as Result;
    // the kernel's view: nothing may still go through A (one line per route with -o)
    const count = (grep: string): number =>
      Number(nsExec(ns, 'sh', ['-c', `ip -o -4 route show proto 171 | grep -c '${grep}' || true`], { timeoutMs: 120_000 }).trim());
    const total = count('^'), viaA = count('10\\.78\\.0\\.1 ');
    if (total !== n || viaA !== 0) throw new Error(`${r.mode} ${n}: ${total} routes, ${viaA} still via the dead next hop`);
    return r;
  } finally {
    lab.destroy();
  }
}

async function main(): Promise<void> {
  const wi = process.argv.indexOf('--worker');
  if (wi >= 0) return worker(Number(process.argv[wi + 1]), process.argv[wi + 2] === 'objects');
  if (process.getuid?.() !== 0) {
    console.log('fib-failover: skipped (needs root for network namespaces)');
    return;
  }
  const sizes = (process.env.FIB_FAILOVER_SIZES ?? '50000,100000').split(',').map(Number);
  console.log('PART: fib/ Programmer alone in a namespace (no BGP, no BFD); N /32s over an ECMP pair, one next hop dies');
  for (const n of sizes) {
    for (const objects of [true, false]) {
      const r = runCase(n, objects);
      const k = `${n / 1000}k`;
      if (objects) {
        console.log(`${k} routes, nexthop objects: next hop down = ${r.hopDownMsgs} netlink message(s), kernel answered in ${r.hopDownMs.toFixed(1)} ms; ` +
          `then the desired state moved to the survivor: ${r.updateMsgs} route messages, settled ${r.updateMs.toFixed(1)} ms after the failure (install took ${r.installMs.toFixed(0)} ms)`);
      } else {
        console.log(`${k} routes, plain routes:     next hop down = ${r.updateMsgs} route messages (replaces, ${Math.ceil(r.updateMsgs / 1000)} sends), ` +
          `kernel answered the last in ${r.hopDownMs.toFixed(1)} ms, settled ${r.updateMs.toFixed(1)} ms (install took ${r.installMs.toFixed(0)} ms)`);
      }
    }
  }
}

await main();
