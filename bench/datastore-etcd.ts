// The etcd datastore at Calico scale (issue #14's target): 1,000 nodes, 100,000 WorkloadEndpoints (100 per node),
// Calico's default /26 IPAM blocks (two per node, full and half full), their affinities, and the 100,000 IPAM
// handles Calico writes (which skein does not list). One EtcdDatastore against a real etcd on loopback:
// time to the first snapshot, RSS before and after, and the latency of single changes (put -> 'change' event).
// Run: npm run bench -- datastore-etcd   (needs `etcd` on PATH; env NODES, PODS_PER_NODE to scale)
import { EtcdDatastore } from '../config/index.js';
import { startEtcd } from '../test/helpers/etcd.js';
import { affinityKey, affinityValue, blockKey, inParallel, nodeKey, nodeValue, wepKey, wepValue, block26 } from '../test/helpers/calico-gen.js';

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
    // idle: the process with etcd3 loaded (one client connected) and nothing listed
    await c.get('x').exec();
    const idle = rss();
    const ds = new EtcdDatastore({ endpoints: [etcd.endpoint], requestTimeoutMs: 60_000 });
    const s0 = performance.now();
    ds.start();
    const model = await ds.synced();
    const ready = performance.now() - s0;
    const after = rss();
    console.log(`ready (first snapshot, ${model.size} resources of ${keys} keys) in ${(ready / 1000).toFixed(2)} s; RSS idle ${mib(idle)}, after sync ${mib(after)} (+${mib(after - idle)}), heap used ${mib(heap())}`);

    const lat: number[] = [];
    for (let i = 0; i < 50; i++) {
      const node = `bench-node-${i}`;
      const pod = `extra-${i}`;
      const id = `ns-x/${wepKey(node, 'ns-x', pod).split('/').pop()}`;
      const seen = new Promise<void>((res) => { const f = (e: { id: string }): void => { if (e.id === id) { ds.off('change', f); res(); } }; ds.on('change', f); });
      const p0 = performance.now();
      await c.put(wepKey(node, 'ns-x', pod)).value(wepValue(node, 'ns-x', pod, `10.127.0.${i}`));
      await seen;
      lat.push(performance.now() - p0);
    }
    lat.sort((a, b) => a - b);
    console.log(`change latency (etcd put -> change event, 50 WorkloadEndpoints one at a time): median ${lat[25]!.toFixed(1)} ms, max ${lat[49]!.toFixed(1)} ms; RSS ${mib(rss())}`);
    await ds.close();
  } finally {
    await etcd.stop();
  }
}

main().catch((e: unknown) => { console.error(e); process.exit(1); });
