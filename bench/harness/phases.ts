// Event-loop delay and CPU of the DUT over time, preloaded into it through the adapter's SKEIN_NODE_FLAGS
// (bench/skeind.ts does this for every skein run):
//
//   SKEIN_NODE_FLAGS="--import $SKEIN/dist/bench/harness/phases.js" SKEIN_PHASE_LOG=/tmp/phases.jsonl ./bench.py ...
//
// A 10 ms timer chain records how late each firing was (the quantity skeind exports as
// skein_event_loop_delay_seconds, src/daemon/runtime.ts, sampled the same way); every 100 ms, and at exit, the samples
// since the last line are appended to SKEIN_PHASE_LOG as one JSON line with the time (ms since the process
// started, when the last sample was taken) and the CPU used so far, tagged with the harness's run directory name
// (RUN). bench/skeind.ts cuts the announce and withdraw phases out of that with the run's timeline.
// Raw samples rather than a histogram per line: percentiles of a phase cannot be put together from percentiles of
// its parts.
import { appendFileSync } from 'node:fs';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

const log = process.env['SKEIN_PHASE_LOG'];
// --import also runs in worker threads (fib/ may start one): only the main thread's loop is the daemon's.
if (log !== undefined && log !== '' && isMainThread) {
  const run = basename(process.env['RUN'] ?? '');
  const TICK = 10;
  let late: number[] = [];
  let lastAt = 0;
  let expected = performance.now() + TICK;
  const tick = (): void => {
    const now = performance.now();
    late.push(Math.round(Math.max(0, now - expected) * 10) / 10);
    lastAt = now;
    expected = now + TICK;
    setTimeout(tick, TICK).unref();
  };
  setTimeout(tick, TICK).unref();
  const flush = (): void => {
    if (late.length === 0) return;
    const c = process.cpuUsage();
    appendFileSync(log, `${JSON.stringify({ run, t: Math.round(lastAt), cpuMs: Math.round((c.user + c.system) / 1000), rssMiB: Math.round(process.memoryUsage.rss() / 1048576), late })}\n`);
    late = [];
  };
  setInterval(flush, 100).unref();
  process.on('exit', flush);
}
