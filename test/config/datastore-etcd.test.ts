// The etcd datastore never loses an event (issue #14), against a real etcd on
// loopback reached through a TCP proxy the test can pause (a SIGSTOPped or
// slow client) and cut:
//   - a list larger than gRPC's default 4 MiB message syncs (pages sized by bytes);
//   - a watcher paused while over 1,000 revisions and ~20 MiB of changes pile
//     up, then its connection cut in the middle of the catch-up, ends with
//     every change applied exactly once, in order.
import t from 'tap';
import { requires } from '../helpers/env.js';
import { startEtcd, startProxy, until } from '../helpers/etcd.js';
import { affinityKey, affinityValue, blockKey, fullBlock, inParallel, nodeKey, nodeValue, wepKey, wepValue } from '../helpers/calico-gen.js';
import { EtcdDatastore, Model, decodeEtcd, type ChangeEvent } from '../../config/index.js';
import type { Etcd3 } from 'etcd3';

// Ports of this file: 24341-24343.
const CLIENT_PORT = 24341;
const PEER_PORT = 24342;
const PROXY_PORT = 24343;
const BLOCKS = 400;
const NODE = 'ds-host-a';

/** What etcd holds, decoded independently of the datastore (pages of 100 keys: the test's client has gRPC's 4 MiB limit). */
async function etcdModel(client: Etcd3): Promise<Model> {
  const m = new Model();
  let start = Buffer.from('/calico/');
  for (let i = 0; i < 10_000; i++) {
    const res = await client.getAll().inRange({ start, end: Buffer.from('/calico0') }).limit(100).exec();
    for (const kv of res.kvs) {
      const d = decodeEtcd(kv.key.toString(), kv.value.toString());
      if (d?.resource) m.set(d.resource);
    }
    const last = res.kvs[res.kvs.length - 1];
    if (!res.more || last === undefined) break;
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
  return m;
}

t.test('etcd datastore at scale: large list, paused watcher, broken catch-up', async (t) => {
  if (!requires(t as unknown as Parameters<typeof requires>[0], { commands: ['etcd'] })) return;
  const etcd = await startEtcd(CLIENT_PORT, PEER_PORT);
  t.teardown(() => etcd.stop());
  const c = etcd.client;
  await c.put(nodeKey(NODE)).value(nodeValue(NODE, '192.0.2.10'));
  const idx = Array.from({ length: BLOCKS }, (_, i) => i);
  let listBytes = 0;
  await inParallel(idx, 16, async (n) => {
    const v = fullBlock(n, NODE);
    listBytes += v.length;
    await c.put(blockKey(n)).value(v);
    await c.put(affinityKey(NODE, n)).value(affinityValue());
  });
  // IPAM handles skein never reads: not listed (they are in the watch's span, and skipped)
  await c.put('/calico/ipam/v2/handle/k8s-pod-network.x').value('{"block":{"10.64.0.0/26":1}}');

  const proxy = await startProxy(PROXY_PORT, CLIENT_PORT);
  t.teardown(() => proxy.close());
  // pageSize 500: the old fixed page, ~8 MiB of full blocks, twice gRPC's default limit
  const ds = new EtcdDatastore({ endpoints: [proxy.endpoint], backoffMinMs: 50, backoffMaxMs: 500, dialTimeoutMs: 2000, requestTimeoutMs: 20_000, pageSize: 500, staleMs: 10_000 });
  t.teardown(() => ds.close());
  const changes: ChangeEvent[] = [];
  ds.on('change', (e) => changes.push(e));
  ds.start();

  await t.test('a list over 4 MiB syncs', async (t) => {
    t.ok(listBytes > 4 * 1024 * 1024, `the blocks alone are ${(listBytes / 1048576).toFixed(1)} MiB`);
    await Promise.race([ds.synced(), until(() => false, 'first sync', 60_000)]);
    t.equal(ds.model.list('IPAMBlock').length, BLOCKS, 'every block');
    t.equal(ds.model.blockAffinities(NODE).length, BLOCKS, 'every affinity');
    t.equal(ds.status.state, 'synced');
  });

  await t.test('paused watcher, >1000 revisions and ~20 MiB of catch-up, connection cut mid-way: nothing lost', async (t) => {
    changes.length = 0;
    const before = proxy.received;
    proxy.pause();
    // Every block updated three times (1,200 revisions: more than etcd puts in one watch response), then 100 new pods.
    for (let round = 1; round <= 3; round++) await inParallel(idx, 16, async (n) => { await c.put(blockKey(n)).value(fullBlock(n, NODE, round * 100)); });
    const pods = Array.from({ length: 100 }, (_, i) => i);
    await inParallel(pods, 16, async (i) => { await c.put(wepKey(NODE, 'vm', `vm-${i}`)).value(wepValue(NODE, 'vm', `vm-${i}`, `10.64.0.${i}`)); });
    const lastRev = BigInt((await c.get('x').exec()).header.revision);
    const want = await etcdModel(c);
    // let it read again, and break the connection after 6 MiB of the catch-up
    proxy.cutAfter(6 * 1024 * 1024);
    proxy.unpause();
    await until(() => ds.model.equals(want) && ds.status.state === 'synced', 'the datastore to catch up', 90_000);
    t.ok(proxy.received - before > 6 * 1024 * 1024, `the catch-up carried ${((proxy.received - before) / 1048576).toFixed(1)} MiB`);
    t.match(ds.status.lastError ?? '', /watch (broken|stale), resuming from revision \d+/, `the break was seen and resumed: ${ds.status.lastError}`);
    const added = changes.filter((e) => e.kind === 'WorkloadEndpoint');
    t.equal(added.length, 100, 'each new pod once');
    t.equal(new Set(added.map((e) => e.id)).size, 100, 'no pod twice');
    t.ok(added.every((e) => e.type === 'added'));
    const blockUpdates = changes.filter((e) => e.kind === 'IPAMBlock');
    t.ok(blockUpdates.every((e) => e.type === 'updated'), 'blocks only updated');
    const revs = changes.map((e) => BigInt(e.revision ?? '0'));
    t.ok(revs.every((r, i) => i === 0 || r > (revs[i - 1] as bigint)), 'every change once, in revision order (no revision applied twice)');
    t.equal(blockUpdates.length, 3 * BLOCKS, 'every block update applied (no compaction, so none skipped)');
    t.ok(BigInt(ds.status.revision ?? '0') >= lastRev - 1n, `status revision ${ds.status.revision} is etcd's (${lastRev})`);
  });
});
