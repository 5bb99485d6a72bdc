// Runs inside a benchmark namespace (spawned by bench/fib.ts with `ip netns exec`): installs and withdraws N
// routes with fib/'s Programmer, several cycles, and prints one JSON line of timings and RSS per cycle.
import { Programmer, type Target } from '../../fib/index.js';

interface Args { n: number; family: 4 | 6; cycles: number; dev: string; batch: number }

function parseArgs(argv: readonly string[]): Args {
  const get = (k: string, d: string): string => {
    const i = argv.indexOf(`--${k}`);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : d;
  };
  const family = Number(get('family', '4'));
  if (family !== 4 && family !== 6) throw new Error('--family 4|6');
  return { n: Number(get('n', '100000')), family, cycles: Number(get('cycles', '3')), dev: get('dev', 'veth0'), batch: Number(get('batch', '1000')) };
}

/** The same workload as the anchor benchmark: /32s (/128s) from a base, via 4 on-link gateways, 800 per gateway in turn. */
function targets(family: 4 | 6, dev: string): Target[] {
  const gws = family === 4
    ? [[10, 77, 0, 1], [10, 77, 0, 11], [10, 77, 0, 12], [10, 77, 0, 13]]
    : [1, 0x11, 0x12, 0x13].map((x) => [0xfd, 0, 0, 0, 0, 0, 0, 0x77, ...new Array<number>(7).fill(0), x]); // fd00:0:0:77::x
  return gws.map((g) => ({ hops: [{ gateway: Uint8Array.from(g), dev }] }));
}

function dst(family: 4 | 6, i: number, out: Uint8Array): Uint8Array {
  if (family === 4) {
    const n = (0x0a800000 + i) >>> 0; // 10.128.0.0 upwards
    out[0] = n >>> 24; out[1] = (n >>> 16) & 255; out[2] = (n >>> 8) & 255; out[3] = n & 255;
  } else {
    // fd00:128::<i> (i in the last 32 bits), as bench/fib.ts writes them for ip -batch
    out.set([0xfd, 0, 0x01, 0x28]);
    out[12] = i >>> 24; out[13] = (i >>> 16) & 255; out[14] = (i >>> 8) & 255; out[15] = i & 255;
  }
  return out;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const fib = new Programmer({ batchSize: a.batch });
  const t00 = performance.now();
  if (process.env.FIB_DEBUG) {
    fib.on('resync', (why) => process.stderr.write(`${((performance.now() - t00) / 1000).toFixed(3)} resync: ${why}\n`));
    fib.on('overrun', (w) => process.stderr.write(`${((performance.now() - t00) / 1000).toFixed(3)} overrun ${w} ${JSON.stringify(fib.stats().pending)}\n`));
    fib.on('warning', (w) => process.stderr.write(`${((performance.now() - t00) / 1000).toFixed(3)} warning: ${w.message}\n`));
  }
  await fib.start();
  const tg = targets(a.family, a.dev);
  const buf = new Uint8Array(a.family === 4 ? 4 : 16);
  const len = a.family === 4 ? 32 : 128;
  const cycles: unknown[] = [];
  for (let c = 0; c < a.cycles; c++) {
    let t0 = performance.now();
    for (let i = 0; i < a.n; i++) fib.set(a.family, dst(a.family, i, buf), len, tg[Math.floor(i / 800) % 4]!);
    const setS = (performance.now() - t0) / 1000;
    if (process.env.FIB_DEBUG) process.stderr.write(`${((performance.now() - t00) / 1000).toFixed(3)} set() done in ${((performance.now() - t0) / 1000).toFixed(3)}\n`);
    await fib.flush('writes');
    const addAckS = (performance.now() - t0) / 1000; // every route acknowledged by the kernel
    await fib.flush();
    const addS = (performance.now() - t0) / 1000; // and the verification dump after the bulk write done
    const s1 = fib.stats();
    const rssAfterAdd = process.memoryUsage().rss;
    t0 = performance.now();
    for (let i = 0; i < a.n; i++) fib.remove(a.family, dst(a.family, i, buf), len);
    await fib.flush('writes');
    const delAckS = (performance.now() - t0) / 1000;
    await fib.flush();
    const delS = (performance.now() - t0) / 1000;
    const s2 = fib.stats();
    // heap after a full collection (the worker runs with --expose-gc): what is really retained between cycles
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const heapAfterDelMiB = process.memoryUsage().heapUsed / 2 ** 20;
    cycles.push({ heapAfterDelMiB, setS, addAckS, addS, delAckS, delS, installed: s1.installed, inSync: s1.inSync, left: s2.installed, errors: s2.errors, resyncs: s2.resyncs,
      overruns: s2.overruns, rssAfterAddMiB: rssAfterAdd / 2 ** 20, rssAfterDelMiB: process.memoryUsage().rss / 2 ** 20 });
  }
  await fib.close();
  process.stdout.write(`${JSON.stringify({ n: a.n, family: a.family, cycles })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
