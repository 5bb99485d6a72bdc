// The file datastore at Calico scale, end to end (issue #14's targets: ready <= 15 s, one change <= 1 s, event-loop
// delay p99 <= 50 ms throughout): the real skeind on a resources.yaml of NODES Nodes (default 1,000) with PODS_PER_NODE
// WorkloadEndpoints each (default 100: 100k), read for its own node (bench-node-0), as root inside a network namespace
// of its own (skeind's routes in its kernel, cali0 a veth pair inside it for this node's workloads;
// bench/harness/datastore-e2e.ts). Reported: time from spawn to "ready" and to its own pod routes in the kernel, RSS,
// then WorkloadEndpoints of its node appended to the file one at a time (CHANGES, default 5) -> each one's route in
// the kernel, and skeind's event-loop delay (prom-client's p99 and max, read from its /metrics) over the start and
// over the changes. The same start for a file holding only its own node's records (the reference for start and RSS).
// Run: sudo npm run bench -- datastore-file   (env NODES, PODS_PER_NODE, CHANGES; TIMEOUT_S bounds each wait, default
// 300; SKEIND_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR" profiles skeind)
// Before (2026-12-05, load 9-12, the whole file re-parsed in a worker at each change): ready 35.1 s, one appended
// record to its route 39.9 s, event-loop delay p99 30 ms / max 177 ms over the start, 40 / 208 ms over the change.
// Figures since: README.md, "The datastore API".
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clusterYaml, podName, wepYaml, type ClusterShape } from '../test/helpers/calico-gen.js';
import { RouteWatch, fileDatastore, flushRoutes, loadAvg, printTable, procMem, runInNamespace, startSkeind } from './harness/datastore-e2e.js';

const NODES = Number(process.env.NODES ?? 1000);
const PER_NODE = Number(process.env.PODS_PER_NODE ?? 100);
const CHANGES = Number(process.env.CHANGES ?? 5);
const TIMEOUT_MS = Number(process.env.TIMEOUT_S ?? 300) * 1000;
const ME = 'bench-node-0';
const METRICS = '127.0.0.1:24371';
const NETNS = process.env.DSF_BENCH_NETNS;
const mib = (n: number): string => `${(n / 1048576).toFixed(0)} MiB`;

/** node k's pods in 10.64.0.0/10, 100 per /25; this node's on cali0, the namespace's veth */
const shape = (nodes: number): ClusterShape => ({
  nodes,
  perNode: PER_NODE,
  // no mesh: a cluster this size uses reflectors (and skeind's BGP side is not what this measures)
  head: [
    'apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: 64512\n  nodeToNodeMeshEnabled: false\n',
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool\nspec:\n  cidr: 10.64.0.0/10\n',
  ],
  nodeName: (k) => `bench-node-${k}`,
  nodeAddress: (k) => `10.${100 + (k >> 16)}.${(k >> 8) & 255}.${(k & 255) + (k === 0 ? 1 : 0)}/24`,
  pod: (k, p) => ({ ns: `ns-${k % 50}`, ip: `10.${64 + ((k >> 8) & 63)}.${k & 255}.${p + 1}`, iface: k === 0 ? 'cali0' : `cali${(k * 1000 + p).toString(16).padStart(11, '0')}` }),
});

/** the file, and this node's pod prefixes (what its start waits for in the kernel) */
function resources(nodes: number): { text: string; own: string[] } {
  const s = shape(nodes);
  return { text: clusterYaml(s), own: Array.from({ length: PER_NODE }, (_, p) => `${s.pod(0, p).ip}/32`) };
}

/** skeind's event-loop delay since the previous scrape (prom-client resets its histogram at each collection) */
async function loopDelay(): Promise<string> {
  try {
    const r = await fetch(`http://${METRICS}/metrics`, { signal: AbortSignal.timeout(10_000) });
    const text = await r.text();
    const v = (name: string): number => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN) * 1000;
    return `p99 ${v('skein_nodejs_eventloop_lag_p99_seconds').toFixed(0)} ms, max ${v('skein_nodejs_eventloop_lag_max_seconds').toFixed(0)} ms`;
  } catch {
    return 'n/a';
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'skein-dsfbench-'));
  const routes = new RouteWatch('cali0');
  const rows: string[][] = [];
  const start = (file: string, own: readonly string[]): ReturnType<typeof startSkeind> =>
    startSkeind({ datastore: fileDatastore(file), node: ME, dir, own, routes, timeoutMs: TIMEOUT_MS, settleMs: 10_000, metrics: METRICS });
  try {
    // the reference: only its own node's records
    const small = resources(1);
    writeFileSync(join(dir, 'small.yaml'), small.text);
    const l0 = loadAvg();
    const ref = await start(join(dir, 'small.yaml'), small.own);
    await ref.stop();
    flushRoutes(routes, small.own);
    rows.push([`skeind, a file of its own node only (${PER_NODE} WEPs)`, `${(ref.readyMs / 1000).toFixed(2)} s`, `${(ref.routesMs / 1000).toFixed(2)} s`, mib(ref.rss), '—', '—', l0]);

    const g0 = performance.now();
    const big = resources(NODES);
    const file = join(dir, 'resources.yaml');
    writeFileSync(file, big.text);
    console.log(`wrote ${NODES} Nodes and ${NODES * PER_NODE} WorkloadEndpoints (${mib(Buffer.byteLength(big.text))}) in ${((performance.now() - g0) / 1000).toFixed(1)} s`);
    const l1 = loadAvg();
    const run = await start(file, big.own);
    try {
      const startDelay = await loopDelay(); // over the start, the settle included
      // WorkloadEndpoints of this node appended one at a time -> each one's route in the kernel
      const lat: number[] = [];
      for (let i = 0; i < CHANGES; i++) {
        const prefix = `10.125.0.${i + 1}/32`;
        const c0 = performance.now();
        appendFileSync(file, `---\n${wepYaml(ME, 'ns-0', podName(0, PER_NODE + 1 + i), prefix.slice(0, -3), 'cali0')}`);
        lat.push((await routes.all([prefix], TIMEOUT_MS)) - c0);
      }
      const changeDelay = await loopDelay();
      const rss = procMem(run.child.pid!).rss;
      const sorted = [...lat].sort((a, b) => a - b);
      rows.push(['skeind, the full file', `${(run.readyMs / 1000).toFixed(2)} s`, `${(run.routesMs / 1000).toFixed(2)} s`, `${mib(run.rss)}: ${mib(ref.rss)} + ${mib(run.rss - ref.rss)}; after the changes ${mib(rss)}`,
        `${lat.map((x) => (x / 1000).toFixed(2)).join(', ')} s (median ${(sorted[sorted.length >> 1]! / 1000).toFixed(2)} s)`, `start: ${startDelay}; changes: ${changeDelay}`, l1]);
    } finally {
      await run.stop();
    }
    printTable(`skeind on a file datastore (${NODES} nodes, ${NODES * PER_NODE} WorkloadEndpoints, ${PER_NODE} on ${ME}); load average at each start:`,
      ['what', 'ready', 'own pod routes in the kernel', 'RSS 10 s after', `${CHANGES} appended WorkloadEndpoints, one at a time -> each route`, 'event-loop delay', 'load'], rows);
  } finally {
    routes.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.getuid?.() !== 0) {
  console.log('datastore-file: needs root (skeind writes routes in a namespace of its own); skipped');
} else if (NETNS === undefined) process.exit(runInNamespace('skdsf-bench', 'DSF_BENCH_NETNS', fileURLToPath(import.meta.url)));
else {
  // A run ends with a result or an error, never a silent wait: each wait below is bounded by TIMEOUT_S, and the whole
  // run by the watchdog (a stale timer or child once kept a run whose skeind never became ready alive indefinitely).
  const watchdog = setTimeout(() => { console.error(`datastore-file: no result after ${(TIMEOUT_MS * (CHANGES + 6)) / 1000} s; giving up`); process.exit(1); }, TIMEOUT_MS * (CHANGES + 6));
  watchdog.unref();
  main().then(() => process.exit(0), (e: unknown) => { console.error(`datastore-file: ${(e as Error).message}`); process.exit(1); });
}
