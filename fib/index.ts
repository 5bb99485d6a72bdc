// The public surface of fib/: the kernel forwarding table programmer.
// src/ feeds it desired routes (bytes and numbers, never strings on the hot path) and reads its state for
// `skeinctl fib` and /metrics; fib/ imports nothing from bgp/, config/ or src/.
export { Programmer, type ProgrammerEvents } from './programmer.js';
export { FibInputError } from './targets.js';
export { RTPROT_SKEIN, RT_TABLE_MAIN } from './constants.js';
export { formatPrefix, formatAddress } from './format.js';
export type {
  BatchReport, Family, FibStats, KernelHop, KernelRoute, NextHop, Placement, Prefix, ProgrammerOptions, RouteFailure,
  RouteView, Target,
} from './types.js';
