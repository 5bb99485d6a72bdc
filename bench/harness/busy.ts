// CPU time of the DUT per busy period, for a machine too loaded for wall
// times to mean much. Preloaded into the DUT through the adapter's
// SKEIN_NODE_FLAGS:
//
//   SKEIN_NODE_FLAGS="--import $SKEIN/dist/bench/harness/busy.js" SKEIN_BUSY_LOG=/tmp/busy.log ./bench.py run ...
//
// Every 50 ms it reads process.cpuUsage(); a busy period starts when a tick
// used more than 3 ms of CPU and ends after 300 ms of ticks below that. Each
// period of more than 50 ms is appended to SKEIN_BUSY_LOG as one line: start
// (ms since the process started) and CPU ms (user + system). In a harness
// run the first period is the announce phase and the second the withdrawal.
import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const log = process.env['SKEIN_BUSY_LOG'];
if (log !== undefined && log !== '') {
  let last = process.cpuUsage();
  let busy = 0;
  let quiet = 0;
  let start = 0;
  setInterval(() => {
    const d = process.cpuUsage(last);
    last = process.cpuUsage();
    const ms = (d.user + d.system) / 1000;
    if (ms > 3) {
      if (busy === 0) start = performance.now();
      busy += ms;
      quiet = 0;
    } else if (busy > 0 && (quiet += 50) >= 300) {
      if (busy > 50) appendFileSync(log, `busy from ${start.toFixed(0)} ms: cpu ${busy.toFixed(0)} ms\n`);
      busy = 0;
    }
  }, 50).unref();
}
