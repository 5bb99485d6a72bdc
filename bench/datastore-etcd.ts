// The etcd datastore at Calico scale (issue #14's target): 1,000 nodes, 100,000 WorkloadEndpoints (100 per node),
// Calico's default /26 IPAM blocks (two per node, full and half full), their affinities, and the 100,000 IPAM
// handles Calico writes (which skein does not list). One EtcdDatastore against a real etcd on loopback:
// One host's EtcdDatastore (read for its own node, as skeind reads it: nodeName bench-node-0) runs in a child process,
// so its CPU and RSS are its own: time to the first snapshot, RSS idle and after the sync, the CPU each other node's
// WorkloadEndpoint change costs it, and the latency of its own node's changes (etcd put -> 'change' event).
// Run: npm run bench -- datastore-etcd   (needs `etcd` on PATH; env NODES, PODS_PER_NODE to scale; SCOPE=all reads
// every node's records as before issue #16; CPU_PROF=dir profiles the host process)
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { EtcdDatastore } from '../config/index.js';
import { startEtcd } from '../test/helpers/etcd.js';
import { affinityKey, affinityValue, blockKey, inParallel, nodeKey, nodeValue, wepKey, wepName, wepValue, block26 } from '../test/helpers/calico-gen.js';

const NODES = Number(process.env.NODES ?? 1000);
const PER_NODE = Number(process.env.PODS_PER_NODE ?? 100);
const mib = (n: number): string => `${(n / 1048576).toFixed(0)} MiB`;
const rss = (): number => { (globalThis as { gc?: () => void }).gc?.(); return process.memoryUsage().rss; };
const heap = (): number => process.memoryUsage().heapUsed;

function blockValue(n: number, node: string, used: number): string {
  const allocations: (number | null)[] = [];
  const attributes: unknown[] = [];
  const unallocated: number[] = [];
  for (let i = 0; i < 64; i++) {
    if (i < used) {
      allocations.push(attributes.length);
      attributes.push({ handle_id: `k8s-pod-network.${n.toString(16).padStart(8, '0')}${i.toString(16).padStart(56, '0')}`, secondary: { namespace: `ns-${n % 50}`, node, pod: `pod-${n}-${i}`, timestamp: '2026-11-20 10:05:00.123456789 +0000 UTC' } });
    } else { allocations.push(null); unallocated.push(i); }
  }
  return JSON.stringify({ cidr: block26(n).cidr, affinity: `host:${node}`, allocations, unallocated, attributes, sequenceNumber: used, sequenceNumberForAllocation: {}, deleted: false });
}

const ME = 'bench-node-0';

type Msg =
  | { t: 'idle'; rss: number }
  | { t: 'ready'; ms: number; size: number; rss: number; heap: number }
  | { t: 'seen'; id: string; cpu: number }
  | { t: 'rss'; rss: number; heap: number };

/** The host process: one datastore, reporting over IPC. */
async function host(endpoint: string): Promise<void> {
  const send = (m: Msg): void => { process.send?.(m); };
  const { Etcd3 } = await import('etcd3');
  const probe = new Etcd3({ hosts: [endpoint] });
  await probe.get('x').exec();
  // idle: etcd3 loaded, one client connected, nothing listed
  send({ t: 'idle', rss: rss() });
  const ds = new EtcdDatastore({ endpoints: [endpoint], requestTimeoutMs: 60_000, ...(process.env.SCOPE === 'all' ? {} : { nodeName: ME }) });
  const s0 = performance.now();
  ds.start();
  const model = await ds.synced();
  send({ t: 'ready', ms: performance.now() - s0, size: model.size, rss: rss(), heap: heap() });
  ds.on('change', (e) => { if (e.id.includes('-mark-') || e.id.includes('own-')) send({ t: 'seen', id: e.id, cpu: cpuMs() }); });
  process.on('message', (m: { t: string }) => {
    if (m.t === 'rss') send({ t: 'rss', rss: rss(), heap: heap() });
    if (m.t === 'exit') void ds.close().then(() => { probe.close(); process.exit(0); });
  });
}

const cpuMs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

async function main(): Promise<void> {
  const etcd = await startEtcd(24361, 24362);
  try {
    const c = etcd.client;
    let puts: [string, string][] = [];
    const t0 = Date.now();
    for (let k = 0; k < NODES; k++) {
      const node = `bench-node-${k}`;
      puts.push([nodeKey(node), nodeValue(node, `10.${100 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`)]);
      for (let b = 0; b < Math.ceil(PER_NODE / 64); b++) {
        const n = k * 2 + b;
        puts.push([blockKey(n), blockValue(n, node, Math.min(64, PER_NODE - b * 64))]);
        puts.push([affinityKey(node, n), affinityValue()]);
      }
      for (let p = 0; p < PER_NODE; p++) {
        const n = k * 2 + (p >> 6);
        const [a, b2, c2, d] = block26(n).base as [number, number, number, number];
        puts.push([wepKey(node, `ns-${k % 50}`, `pod-${k}-${p}`), wepValue(node, `ns-${k % 50}`, `pod-${k}-${p}`, `${a}.${b2}.${c2}.${d + (p & 63)}`)]);
        puts.push([`/calico/ipam/v2/handle/k8s-pod-network.${k}-${p}`, `{"block":{"${block26(n).cidr}":1},"deleted":false}`]);
      }
    }
    let batches: [string, string][][] = [];
    for (let i = 0; i < puts.length; i += 128) batches.push(puts.slice(i, i + 128));
    let bytes = 0;
    for (const [k, v] of puts) bytes += k.length + v.length;
    await inParallel(batches, 8, async (batch) => {
      await c.kv.txn({ success: batch.map(([key, value]) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } })) });
    });
    console.log(`loaded ${puts.length} keys (${mib(bytes)}) into etcd in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${NODES} nodes, ${NODES * PER_NODE} WorkloadEndpoints, /26 blocks, ${NODES * PER_NODE} IPAM handles`);

    const keys = puts.length;
    puts = [];
    batches = [];
    const prof = process.env.CPU_PROF;
    const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--host', etcd.endpoint], {
      execArgv: ['--expose-gc', ...(prof !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [])],
    });
    const exited = once(child, 'exit').then(() => { throw new Error('host process exited'); });
    exited.catch(() => undefined);
    const inbox: Msg[] = [];
    const waiters: (() => void)[] = [];
    child.on('message', (m: Msg) => { inbox.push(m); for (const w of waiters.splice(0)) w(); });
    const next = async <T extends Msg['t']>(t: T, pred: (m: Extract<Msg, { t: T }>) => boolean = () => true): Promise<Extract<Msg, { t: T }>> => {
      for (let i = 0; i < 1_000_000; i++) {
        const k = inbox.findIndex((m) => m.t === t && pred(m as Extract<Msg, { t: T }>));
        if (k >= 0) return inbox.splice(k, 1)[0] as Extract<Msg, { t: T }>;
        await Promise.race([new Promise<void>((r) => waiters.push(r)), exited]);
      }
      throw new Error(`no ${t}`);
    };
    const idle = (await next('idle')).rss;
    const r = await next('ready');
    console.log(`scope ${process.env.SCOPE === 'all' ? 'all nodes' : ME}: ready (first snapshot, ${r.size} resources of ${keys} keys) in ${(r.ms / 1000).toFixed(2)} s; RSS idle ${mib(idle)}, after sync ${mib(r.rss)} (+${mib(r.rss - idle)}), heap used ${mib(r.heap)}`);

    // CPU per other node's WorkloadEndpoint change: N puts on other nodes, then one on this node as a marker (the
    // watch is ordered: when the marker is seen, all N were received); the host's CPU between two markers.
    const N = 5000;
    const mark = async (i: number): Promise<number> => {
      const pod = `bench-mark-${i}`;
      await c.put(wepKey(ME, 'ns-x', pod)).value(wepValue(ME, 'ns-x', pod, `10.126.0.${i}`));
      return (await next('seen', (m) => m.id.endsWith(wepKey(ME, 'ns-x', pod).split('/').pop() as string))).cpu;
    };
    const cpu0 = await mark(1);
    const empty = (await mark(2)) - cpu0; // a marker alone
    const others: [string, string][] = [];
    for (let i = 0; i < N; i++) {
      const k = 1 + (i % (NODES - 1));
      const node = `bench-node-${k}`;
      const pod = `pod-${k}-${i % PER_NODE}`;
      const n = k * 2 + ((i % PER_NODE) >> 6);
      const [a, b2, c2, d] = block26(n).base as [number, number, number, number];
      others.push([wepKey(node, `ns-${k % 50}`, pod), wepValue(node, `ns-${k % 50}`, pod, `${a}.${b2}.${c2}.${d + ((i + 1) & 63)}`)]);
    }
    const cpuA = await mark(3);
    for (let i = 0; i < others.length; i += 100) {
      await c.kv.txn({ success: others.slice(i, i + 100).map(([key, value]) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } })) });
    }
    const cpuB = await mark(4);
    console.log(`CPU per other node's WorkloadEndpoint change: ${((cpuB - cpuA - empty) / N).toFixed(4)} ms (${N} changes, ${(cpuB - cpuA).toFixed(0)} ms host CPU incl. one marker of ${empty.toFixed(1)} ms)`);

    const lat: number[] = [];
    for (let i = 0; i < 100; i++) {
      const pod = `own-${i}`;
      const p0 = performance.now();
      await c.put(wepKey(ME, 'ns-x', pod)).value(wepValue(ME, 'ns-x', pod, `10.127.0.${i}`));
      await next('seen', (m) => m.id.endsWith(wepName(ME, pod)));
      lat.push(performance.now() - p0);
    }
    lat.sort((a, b) => a - b);
    child.send({ t: 'rss' });
    const end = await next('rss');
    console.log(`own node's change latency (etcd put -> change event in the host, 100 WorkloadEndpoints one at a time): median ${lat[50]!.toFixed(1)} ms, p99 ${lat[98]!.toFixed(1)} ms, max ${lat[99]!.toFixed(1)} ms; host RSS ${mib(end.rss)} (idle + ${mib(end.rss - idle)})`);
    const gone = once(child, 'exit');
    child.send({ t: 'exit' });
    await gone;
  } finally {
    await etcd.stop();
  }
}

if (process.argv[2] === '--host') host(process.argv[3] as string).catch((e: unknown) => { console.error(e); process.exit(1); });
else main().catch((e: unknown) => { console.error(e); process.exit(1); });
