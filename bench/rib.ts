// Micro-benchmark of the route-processing core: 1M IPv4 prefixes from one eBGP
// peer, in UPDATEs of 300 prefixes that share one attribute set (~3.3k sets),
// through Adj-RIB-In, the decision process and Loc-RIB, then withdrawn.
// Decoding is not included (the UPDATEs are built before the clock starts);
// the best-change stream is drained after every UPDATE, as the FIB side would.
// A second run adds one established iBGP peer, so every prefix also goes
// through export, Adj-RIB-Out and the outbound queue, drained by nextBatch()
// (1000 prefixes a batch) after every UPDATE, as a sender that keeps up would.
// Reference in the same run: a bare Map.set / Map.delete of the same keys.
//
// Run: npm run build && node dist/bench/rib.js
// (PREFIXES=n to change the size, ROUNDS=n, ONLY=core|export for one scenario)
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { performance } from 'node:perf_hooks';
import { IPV4_UNICAST, RibCore } from '../bgp/index.js';
import type { PrefixList, UpdateMessage } from '../bgp/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const N = Number(process.env.PREFIXES ?? 1_000_000);
const GROUP = 300;
const MiB = 1024 * 1024;

const v4 = (prefixes: number[]): PrefixList => ({ afi: 1, safi: 1, prefixes, pathIds: null });
const EMPTY = v4([]);

function buildUpdates(): { announce: UpdateMessage[]; withdraw: UpdateMessage[] } {
  const announce: UpdateMessage[] = [];
  const withdraw: UpdateMessage[] = [];
  for (let start = 0, g = 0; start < N; start += GROUP, g++) {
    const prefixes: number[] = [];
    for (let i = start; i < Math.min(N, start + GROUP); i++) {
      // distinct /24s from 1.0.0.0 up: Prefix4 = address * 64 + length
      prefixes.push((0x01000000 + i * 256) * 64 + 24);
    }
    announce.push({
      type: 'UPDATE',
      withdrawn: EMPTY,
      attributes: {
        origin: 0,
        asPath: [{ type: 2, asns: [65001, 3000 + (g % 2000), 64000 + (g % 7)] }],
        nextHop: '192.0.2.1',
        med: g % 3,
        communities: [(65001 << 16) | (g % 100)],
      },
      nlri: v4(prefixes),
    });
    withdraw.push({ type: 'UPDATE', withdrawn: v4(prefixes), attributes: {}, nlri: EMPTY });
  }
  return { announce, withdraw };
}

const mem = (): { heap: number; rss: number; heapTotal: number; buffers: number } => {
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed / MiB, rss: m.rss / MiB, heapTotal: m.heapTotal / MiB, buffers: m.arrayBuffers / MiB };
};
const fmt = (n: number): string => n.toFixed(1);
const rate = (n: number, ms: number): string => `${Math.round((n / ms) * 1000).toLocaleString('en')} prefixes/s`;

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const summary = (label: string, xs: number[]): string =>
  `${label} best ${fmt(Math.min(...xs))} ms (${rate(N, Math.min(...xs))}), median ${fmt(median(xs))} ms`;

function reference(updates: UpdateMessage[]): { set: number; del: number; heap: number } {
  const base = mem();
  const m = new Map<number, object>();
  const v = {};
  let t = performance.now();
  for (const u of updates) for (const p of u.nlri.prefixes as number[]) m.set(p, v);
  const setMs = performance.now() - t;
  const after = mem();
  t = performance.now();
  for (const u of updates) for (const p of u.nlri.prefixes as number[]) m.delete(p);
  const delMs = performance.now() - t;
  return { set: setMs, del: delMs, heap: after.heap - base.heap };
}

interface Figures { heapReserved: number; buffers: number; down: number; ingest: number; withdraw: number; heap: number; heapTotal: number; rss: number; sets: number; loc: number; after: number; setsAfter: number; fib: number; sent: number }

function run(exportPeer: boolean, updates: { announce: UpdateMessage[]; withdraw: UpdateMessage[] }): Figures {
  const base = mem();
  const core = new RibCore({ localAs: 64512, routerId: 0x0a000001, maxPaths: 4 });
  const terms = (peerId: number, ibgp: boolean) => ({
    peerId, ibgp, families: [IPV4_UNICAST], addPathRx: new Set<number>(), addPathTx: new Set<number>(), enhancedRouteRefresh: false,
  });
  const ebgp = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.10' });
  core.peerUp(ebgp, terms(0xc0000201, false));
  let ibgp = 0;
  if (exportPeer) {
    ibgp = core.addPeer({ address: '192.0.2.20', asn: 64512, localAddress: '192.0.2.10' });
    core.peerUp(ibgp, terms(0xc0000214, true));
  }
  let fib = 0;
  let sent = 0;
  const drainOut = (): void => {
    if (!exportPeer) return;
    for (let b = core.nextBatch(ibgp, 1000); b; b = core.nextBatch(ibgp, 1000)) if (b.kind === 'announce' || b.kind === 'withdraw') sent += b.prefixes.length;
  };

  // The FIB side and the sender keep up: both streams drained after every UPDATE.
  let t = performance.now();
  for (const u of updates.announce) {
    core.applyUpdate(ebgp, u);
    fib += core.drainBestChanges().length;
    drainOut();
  }
  const ingestMs = performance.now() - t;
  const after = mem();
  const sets = core.attrs.size;
  const loc = core.locSize;

  t = performance.now();
  for (const u of updates.withdraw) {
    core.applyUpdate(ebgp, u);
    fib += core.drainBestChanges().length;
    drainOut();
  }
  const withdrawMs = performance.now() - t;

  // the same table again, then the session drops: peerDown walks the table
  for (const u of updates.announce) core.applyUpdate(ebgp, u);
  core.drainBestChanges();
  drainOut();
  t = performance.now();
  core.peerDown(ebgp);
  fib += core.drainBestChanges().length;
  const downMs = performance.now() - t;
  drainOut();
  return {
    heapReserved: after.heapTotal, buffers: after.buffers, down: downMs, ingest: ingestMs, withdraw: withdrawMs, heap: after.heap - base.heap, heapTotal: after.heap, rss: after.rss,
    sets, loc, after: core.locSize, setsAfter: core.attrs.size, fib, sent,
  };
}

function report(label: string, rounds: Figures[], exportPeer: boolean): void {
  const last = rounds[rounds.length - 1] as Figures;
  const first = rounds[0] as Figures;
  console.log(`${label} (${rounds.length} rounds):`);
  console.log(`  ${summary('ingest  ', rounds.map((r) => r.ingest))}; Loc-RIB ${last.loc.toLocaleString('en')} prefixes, ${last.sets} attribute sets`);
  console.log(`  ${summary('withdraw', rounds.map((r) => r.withdraw))}; Loc-RIB after ${last.after}, attribute sets after ${last.setsAfter}`);
  console.log(`  ${summary('peer down with the full table (peerDown + FIB drain)', rounds.map((r) => r.down))}`);
  console.log(`  after ingest: heapUsed +${fmt(last.heap)} MiB over the start (${fmt(last.heapTotal)} MiB total, V8 heap reserved ${fmt(first.heapReserved)} MiB, ArrayBuffers ${fmt(first.buffers)} MiB), RSS ${fmt(first.rss)} MiB after the first round, ${fmt(last.rss)} MiB after the last (whole process, with the prebuilt UPDATEs)`);
  console.log(`  per round: FIB changes drained ${last.fib.toLocaleString('en')}${exportPeer ? `, prefixes sent ${last.sent.toLocaleString('en')}` : ''}`);
}

const start = mem();
console.log(`rib bench: ${N.toLocaleString('en')} IPv4 prefixes, ${GROUP} per UPDATE; node ${process.version}; start heap ${fmt(start.heap)} MiB, RSS ${fmt(start.rss)} MiB`);
const updates = buildUpdates();
const built = mem();
console.log(`UPDATEs built (not part of the core): ${updates.announce.length} + ${updates.withdraw.length}, heap ${fmt(built.heap)} MiB, RSS ${fmt(built.rss)} MiB`);
// The core first, so the RSS after its first ingest is that of a fresh process
// holding only the UPDATEs and the core; the bare-Map reference last.
// ONLY=core or ONLY=export runs one scenario, for the RSS of a fresh process.
const only = process.env.ONLY;
const alone = only === 'export' ? [] : Array.from({ length: ROUNDS }, () => run(false, updates));
if (alone.length > 0) report('core, one eBGP peer', alone, false);
const exported = only === 'core' ? [] : Array.from({ length: ROUNDS }, () => run(true, updates));
if (exported.length > 0) report('core, one eBGP peer + export to one iBGP peer', exported, true);
const refs = Array.from({ length: ROUNDS }, () => reference(updates.announce));
console.log(`reference, bare Map<number, object> (${ROUNDS} rounds): ${summary('set', refs.map((r) => r.set))}; ${summary('delete', refs.map((r) => r.del))}; heap +${fmt(refs[0]!.heap)} MiB`);
// On a shared machine absolute times move with the load; the ratio to the
// reference measured in the same run moves much less.
const best = (xs: number[]): number => Math.min(...xs);
const ratio = (x: number[], r: number[]): string => (best(x) / best(r)).toFixed(2);
const parts: string[] = [];
if (alone.length > 0) {
  parts.push(`ingest ${ratio(alone.map((r) => r.ingest), refs.map((r) => r.set))}× Map.set, withdraw ${ratio(alone.map((r) => r.withdraw), refs.map((r) => r.del))}× Map.delete`);
}
if (exported.length > 0) {
  parts.push(`with one export peer: ingest ${ratio(exported.map((r) => r.ingest), refs.map((r) => r.set))}×, withdraw ${ratio(exported.map((r) => r.withdraw), refs.map((r) => r.del))}×`);
}
console.log(`ratios to the reference (best of rounds): ${parts.join('; ')}`);
