// The datastore soak (issue #14): a real etcd under continuous churn of WorkloadEndpoints, IPAM blocks and BGPPeers,
// with compactions and etcd restarts (SIGKILL, same data dir) every so often, read by two datastores (one scoped to a
// node as skeind reads it, one reading everything). Every checkEveryMs the churn pauses and each datastore's model must
// equal what etcd holds, decoded independently (scoped: filtered to the node), within settleMs. RSS and open fds of
// this process are sampled at every check. Used by `npm run soak` (bench/soak.ts) and test/datastore-soak.test.ts.
// Not covered here (see the report): a skeind's kernel routes and Loc-RIB against the same truth.
import { readdirSync } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import { EtcdDatastore, Model, decodeEtcd, keyConcernsNode, type Datastore } from '../../config/index.js';
import { startEtcd } from './etcd.js';
import { affinityKey, affinityValue, blockKey, fullBlock, nodeKey, nodeValue, wepKey, wepValue } from './calico-gen.js';

export interface SoakOptions {
  seconds: number;
  clientPort: number;
  peerPort: number;
  /** changes per second (default 50) */
  rate?: number;
  checkEveryMs?: number;
  compactEveryMs?: number;
  restartEveryMs?: number;
  log?: (line: string) => void;
}

export interface SoakResult {
  ops: number;
  checks: number;
  /** checks at which a datastore did not equal etcd within settleMs: what differed */
  mismatches: string[];
  restarts: number;
  compactions: number;
  rss: number[];
  fds: number[];
  /** per check: how many etcd restarts had happened by then */
  restartsBy: number[];
}

const NODES = 20;
const ME = 'soak-node-0';
const fds = (): number => readdirSync('/proc/self/fd').length;

/** What etcd holds under /calico/, decoded independently of the datastores (pages of 200 keys). */
async function truth(client: Etcd3, node?: string): Promise<Model> {
  const m = new Model();
  let start = Buffer.from('/calico/');
  for (let i = 0; i < 100_000; i++) {
    const res = await client.getAll().inRange({ start, end: Buffer.from('/calico0') }).limit(200).exec();
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      if (node !== undefined && !keyConcernsNode(key, node)) continue;
      const d = decodeEtcd(key, kv.value.toString());
      if (d?.resource) m.set(d.resource);
    }
    const last = res.kvs[res.kvs.length - 1];
    if (!res.more || last === undefined) break;
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
  return m;
}

function peerValue(i: number): string {
  return JSON.stringify({ kind: 'BGPPeer', apiVersion: 'projectcalico.org/v3', metadata: { name: `soak-peer-${i}` }, spec: { peerIP: `192.0.2.${100 + i}`, asNumber: 64600 + i } });
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const log = o.log ?? ((): void => undefined);
  const rate = o.rate ?? 50;
  const etcd = await startEtcd(o.clientPort, o.peerPort);
  const res: SoakResult = { ops: 0, checks: 0, mismatches: [], restarts: 0, compactions: 0, rss: [], fds: [], restartsBy: [] };
  const stores: { ds: Datastore & { close(): Promise<void> }; node?: string }[] = [];
  try {
    const c = etcd.client;
    const pods = new Map<string, string>(); // key -> value
    for (let k = 0; k < NODES; k++) {
      const node = `soak-node-${k}`;
      await c.put(nodeKey(node)).value(nodeValue(node, `192.0.2.${k + 1}`));
      await c.put(blockKey(k)).value(fullBlock(k, node));
      await c.put(affinityKey(node, k)).value(affinityValue());
    }
    const scoped = new EtcdDatastore({ endpoints: [etcd.endpoint], nodeName: ME, backoffMinMs: 50, backoffMaxMs: 1000, staleMs: 5000, progressMs: 1000 });
    const full = new EtcdDatastore({ endpoints: [etcd.endpoint], backoffMinMs: 50, backoffMaxMs: 1000, staleMs: 5000, progressMs: 1000 });
    stores.push({ ds: scoped, node: ME }, { ds: full });
    for (const s of stores) (s.ds as EtcdDatastore).start();
    await Promise.all(stores.map((s) => s.ds.synced()));
    const t0 = Date.now();
    const end = t0 + o.seconds * 1000;
    let nextCheck = t0 + (o.checkEveryMs ?? 10_000);
    let nextCompact = t0 + (o.compactEveryMs ?? 25_000);
    let nextRestart = t0 + (o.restartEveryMs ?? 45_000);
    let seq = 0;
    const op = async (): Promise<void> => {
      const r = Math.random();
      const k = Math.random() < 0.2 ? 0 : Math.floor(Math.random() * NODES);
      const node = `soak-node-${k}`;
      seq++;
      if (r < 0.6) {
        const pod = `pod-${Math.floor(Math.random() * 40)}`;
        const key = wepKey(node, `ns-${k % 3}`, pod);
        if (pods.has(key) && Math.random() < 0.4) { await c.delete().key(key); pods.delete(key); } else {
          const v = wepValue(node, `ns-${k % 3}`, pod, `10.${64 + k}.0.${(seq % 250) + 1}`);
          await c.put(key).value(v);
          pods.set(key, v);
        }
      } else if (r < 0.85) {
        await c.put(blockKey(k)).value(fullBlock(k, node, seq));
      } else {
        const i = Math.floor(Math.random() * 5);
        if (Math.random() < 0.3) await c.delete().key(`/calico/resources/v3/projectcalico.org/bgppeers/soak-peer-${i}`);
        else await c.put(`/calico/resources/v3/projectcalico.org/bgppeers/soak-peer-${i}`).value(peerValue(i));
      }
    };
    for (let loop = 0; loop < 10_000_000 && Date.now() < end; loop++) {
      const now = Date.now();
      if (now >= nextRestart) {
        nextRestart = now + (o.restartEveryMs ?? 45_000);
        log('soak: etcd killed and restarted');
        await etcd.kill();
        await new Promise((r) => setTimeout(r, 1000));
        await etcd.start();
        res.restarts++;
      }
      if (now >= nextCompact) {
        nextCompact = now + (o.compactEveryMs ?? 25_000);
        try {
          const rev = (await c.get('x').exec()).header.revision;
          await c.kv.compact({ revision: rev, physical: true });
          res.compactions++;
        } catch (e) { log(`soak: compaction failed: ${(e as Error).message}`); }
      }
      if (now >= nextCheck) {
        nextCheck = now + (o.checkEveryMs ?? 10_000);
        await check(c, stores, res, log);
      }
      try {
        await op();
        res.ops++;
      } catch {
        // etcd down or restarting: the change is not made; the truth is whatever etcd holds
      }
      const due = t0 + (res.ops * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    await check(c, stores, res, log);
    return res;
  } finally {
    for (const s of stores) await s.ds.close();
    await etcd.stop();
  }
}

async function check(c: Etcd3, stores: { ds: Datastore; node?: string }[], res: SoakResult, log: (l: string) => void): Promise<void> {
  res.checks++;
  for (const s of stores) {
    let want: Model | undefined;
    let same = false;
    // settle: each datastore catches up with etcd within 20 s
    const deadline = Date.now() + 20_000;
    for (let i = 0; i < 400 && !same && Date.now() < deadline; i++) {
      try {
        want = await truth(c, s.node);
        same = s.ds.model.equals(want);
      } catch { /* etcd restarting */ }
      if (!same) await new Promise((r) => setTimeout(r, 50));
    }
    if (!same) {
      const have = s.ds.model.toJSON();
      const w = want?.toJSON() ?? {};
      const diffs: string[] = [];
      for (const kind of Object.keys(w)) {
        for (const id of new Set([...Object.keys(w[kind] ?? {}), ...Object.keys(have[kind] ?? {})])) {
          if (JSON.stringify(w[kind]?.[id]) !== JSON.stringify(have[kind]?.[id])) diffs.push(`${kind}/${id}`);
        }
      }
      res.mismatches.push(`check ${res.checks} (${s.node ?? 'all nodes'}, ${s.ds.status.state}): ${diffs.slice(0, 5).join(', ')}${diffs.length > 5 ? ` and ${diffs.length - 5} more` : ''}`);
    }
  }
  (globalThis as { gc?: () => void }).gc?.();
  res.rss.push(process.memoryUsage().rss);
  res.fds.push(fds());
  res.restartsBy.push(res.restarts);
  log(`soak: check ${res.checks}: ${res.ops} changes so far, ${res.mismatches.length} mismatches, RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB, ${fds()} fds`);
}
