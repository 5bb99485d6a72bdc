// ADD-PATH send (RFC 7911) in the route-processing core: a route reflector
// with two clients that announce the same PREFIXES prefixes (different next
// hops, so two paths per prefix), and PEERS further clients that receive
// them. Scenario "plain": the receivers have no ADD-PATH (the best only, the
// reference measured in the same run); "all": every receiver has ADD-PATH
// send all (two paths per prefix each). Measured: the time to load the table
// while every receiver's queue is drained, the time of a receiver's initial
// dump (peerUp + nextBatch until empty), and the heap the receivers' Adj-RIB-Out
// costs once all is sent.
//
// Run: npm run build && node dist/bench/addpath.js   (PREFIXES=n, PEERS=n)
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { performance } from 'node:perf_hooks';
import { IPV4_UNICAST, RibCore } from '../bgp/index.js';
import type { AddPathSend, PrefixList, SessionTerms, UpdateMessage } from '../bgp/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const N = Number(process.env.PREFIXES ?? 200_000);
const PEERS = Number(process.env.PEERS ?? 10);
const GROUP = 300;
const AS = 64512;
const MiB = 1024 * 1024;
const v4 = (prefixes: number[]): PrefixList => ({ afi: 1, safi: 1, prefixes, pathIds: null });

function updates(nextHop: string): UpdateMessage[] {
  const out: UpdateMessage[] = [];
  for (let start = 0, g = 0; start < N; start += GROUP, g++) {
    const prefixes: number[] = [];
    for (let i = start; i < Math.min(N, start + GROUP); i++) prefixes.push((0x0a000000 + i * 256) * 64 + 24);
    out.push({
      type: 'UPDATE',
      withdrawn: v4([]),
      attributes: { origin: 0, asPath: [], nextHop, localPref: 100, communities: [(65001 << 16) | (g % 100)] },
      nlri: v4(prefixes),
    });
  }
  return out;
}

const terms = (peerId: number, addPathTx: boolean): SessionTerms => ({
  peerId, ibgp: true, families: [IPV4_UNICAST], addPathRx: new Set(), addPathTx: new Set(addPathTx ? [IPV4_UNICAST] : []), enhancedRouteRefresh: false,
});

function drain(core: RibCore, id: number): number {
  let n = 0;
  for (let b = core.nextBatch(id, 2048); b; b = core.nextBatch(id, 2048)) if (b.kind === 'announce') n += b.prefixes.length;
  return n;
}

function heap(): number {
  gc();
  return process.memoryUsage().heapUsed / MiB;
}

function run(mode: AddPathSend | null): { load: number; dump: number; sent: number; heapOut: number } {
  const core = new RibCore({ localAs: AS, routerId: 0x0a0000fe });
  core.setBestTracking(false);
  const a = core.addPeer({ address: '192.0.2.1', asn: AS, routeReflectorClient: true });
  const b = core.addPeer({ address: '192.0.2.2', asn: AS, routeReflectorClient: true });
  core.peerUp(a, terms(1, false));
  core.peerUp(b, terms(2, false));
  const rx: number[] = [];
  for (let i = 0; i < PEERS; i++) {
    const id = core.addPeer({ address: `192.0.2.${10 + i}`, asn: AS, routeReflectorClient: true, ...(mode ? { addPathSend: mode } : {}) });
    core.peerUp(id, terms(10 + i, mode !== null));
    rx.push(id);
  }
  const ua = updates('192.0.2.1');
  const ub = updates('192.0.2.2');
  const h0 = heap();
  let sent = 0;
  const t0 = performance.now();
  for (let i = 0; i < ua.length; i++) {
    core.applyUpdate(a, ua[i] as UpdateMessage);
    core.applyUpdate(b, ub[i] as UpdateMessage);
    for (const id of rx) sent += drain(core, id);
  }
  const load = performance.now() - t0;
  const heapOut = heap() - h0;
  // one receiver's session restarts: its whole Adj-RIB-Out again
  const last = rx[rx.length - 1] as number;
  core.peerDown(last);
  const t1 = performance.now();
  core.peerUp(last, terms(99, mode !== null));
  const again = drain(core, last);
  const dump = performance.now() - t1;
  if (again * PEERS !== sent) throw new Error(`dump sent ${again}, load sent ${sent / PEERS} per peer`);
  return { load, dump, sent: again, heapOut };
}

const f = (n: number): string => n.toFixed(0);
console.log(`ADD-PATH send: ${N} prefixes x 2 paths (two clients), ${PEERS} receiving clients`);
for (const [name, mode] of [['plain (reference)', null], ['add-path all', { mode: 'all' }], ['add-path best 1', { mode: 'best', count: 1 }]] as const) {
  const r = run(mode);
  console.log(
    `${name.padEnd(18)} load+send ${f(r.load)} ms (${f((N * 2) / (r.load / 1000))} paths/s in), one peer's dump ${f(r.dump)} ms for ${r.sent} (prefix, path) pairs, heap after load +${f(r.heapOut)} MiB`,
  );
}
