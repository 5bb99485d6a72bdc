// The public surface of fib/: the kernel forwarding table programmer.
// src/ feeds it desired routes (bytes and numbers, never strings on the hot path) and reads its state for
// `skeinctl fib` and /metrics; fib/ imports nothing from bgp/, config/ or src/.
export { Programmer, type ProgrammerEvents } from './programmer.js';
export { FibInputError } from './targets.js';
/** The IPv4 prefix table fib/ keys its routes with; src/'s route table keys learned routes the same way. */
export { V4Index } from './v4index.js';
export { formatPrefix, formatAddress } from './format.js';
/** The host's routes of other protocols, addresses and links, for src/'s next-hop reachability. */
export { HostReader, type HostHop, type HostRoute, type SetIntOpt } from './host-routes.js';
// the types of the Programmer's signatures (options, events, views), so callers can name them
export type {
  BatchReport, Family, FibStats, FibWriterStats, KernelHop, KernelRoute, NextHop, Placement, Prefix, ProgrammerOptions, RouteFailure,
  RouteView, Target,
} from './types.js';
