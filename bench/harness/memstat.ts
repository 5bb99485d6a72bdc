// Where a benchmarked skeind's memory is, preloaded into it (`node --import dist/bench/harness/memstat.js`): on
// SIGUSR2 the main thread runs a full collection and writes one JSON line to stderr: RSS, V8's committed spaces
// (the young generation's semi-spaces included), heap used, external and ArrayBuffer memory. RSS minus all of V8's
// is what the C++ side holds (gRPC, libuv, the allocator's free lists). Used by bench/harness/datastore-e2e.ts.
import { getHeapSpaceStatistics } from 'node:v8';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  process.on('SIGUSR2', () => {
    gc();
    const m = process.memoryUsage();
    const spaces: Record<string, number> = {};
    for (const s of getHeapSpaceStatistics()) spaces[s.space_name.replace(/_space$/, '')] = s.space_size;
    process.stderr.write(`${JSON.stringify({ memstat: { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, spaces } })}\n`);
  });
}
