// V8's tiering, tuned for a daemon that mostly waits. Imported first by skeind (src/skeind.ts), before any module
// whose functions it concerns has run.
//
// V8 optimizes a function with TurboFan once it has used up an "interrupt budget" of bytecode executed (and at once
// for a small function that got hot). A host's skeind sees a trickle of events, a workload's UPDATE or route now
// and then, so its handlers cross that line one by one for hours, and each compile costs 1-60 ms on a helper thread:
// in the 10-host convergence bench (`CONVERGE_HOSTS=10 CONVERGE_TOPOLOGIES=mesh CONVERGE_DAEMONS=skein-learn
// CONVERGE_WORKLOADS=600 node dist/bench/convergence.js`), TurboFan's compiles were 38% of skeind's CPU in the
// workload phase even after 600 warm-up workloads (perf), and `--no-turbofan` used less CPU per workload than the
// default (0.89 vs 1.07-1.11 ms). Four times the default budget (67,584) leaves the lukewarm handlers in the
// baseline tier (Sparkplug), which is good enough for code that runs a few times a second, while a hot loop (a
// million routes arriving) uses up even this budget in microseconds: 0.85 ms per workload, and 8x or 16x gave
// nothing more (0.84, 0.88). docs/performance.md has the runs.
import { setFlagsFromString } from 'node:v8';

/** the interrupt budget skeind runs with (V8's default is 66 KiB of bytecode) */
export const INTERRUPT_BUDGET = 4 * 67_584;

setFlagsFromString(`--interrupt-budget=${INTERRUPT_BUDGET}`);
