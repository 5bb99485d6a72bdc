// A datastore that reads no WorkloadEndpoints at all ({ workloadEndpoints: false }, dsbase.ts DatastoreScope): for a
// speaker that learns the workload routes from the kernel, as Calico's BIRD does, so that no endpoint change anywhere
// in the cluster wakes it (Calico's BGP syncer watches none: libcalico-go
// lib/backend/syncersv1/bgpsyncer/bgpsyncer.go). etcd: the endpoint prefix is neither listed nor inside the watch, so
// etcd never sends an endpoint event (seen at the watch's own input), and one that came would not be decoded. File:
// endpoint documents are dropped before they are parsed and never become a change, an issue or a deletion. Every
// other kind is read and changes as before, in order. The default (endpoints read) is covered by the other
// datastore-* tests, unchanged.
import t from 'tap';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import { startEtcd, until } from '../helpers/etcd.js';
import {
  affinityKey, blockKey, clusterYaml, nodeKey, nodeValue, nodeYaml, podName, putSmallCluster, wepKey, wepName, wepValue, wepYaml,
  type ClusterShape,
} from '../helpers/calico-gen.js';
import {
  EtcdDatastore, FileDatastore, FileIndex, etcdValueOf, keyConcernsNode, openDatastore, type ChangeEvent, type Datastore, type Issue,
  type Model,
} from '../../config/index.js';
import { PLURALS, RESOURCES_PREFIX, keyFilter, nodeKeyFilter } from '../../config/keys.js';
import { etcdRanges, watchSpan, type ListRange } from '../../config/etcdstore.js';
import { concernsNode, elsewhere, keepFor, loadResourcesText } from '../../config/filesource.js';
import type { WatchEvent } from '../../config/etcdwire.js';
import type { DaemonConfig } from '../../config/daemon.js';

// Ports of this file: 24375-24376.
const ME = 'nw-node-1';
const OTHERS = ['nw-node-2', 'nw-node-10', 'nw-node-1-b'];
const OFF = { workloadEndpoints: false } as const;
const WEP_PREFIX = `${RESOURCES_PREFIX}${PLURALS.WorkloadEndpoint}/`;
const overlapsWeps = (r: { key: Buffer; end: Buffer }): boolean =>
  Buffer.compare(r.key, Buffer.from(WEP_PREFIX.replace(/\/$/, '0'))) < 0 && Buffer.compare(Buffer.from(WEP_PREFIX), r.end) < 0;
const inRange = (key: string, r: { key: Buffer; end: Buffer }): boolean =>
  Buffer.compare(Buffer.from(key), r.key) >= 0 && Buffer.compare(Buffer.from(key), r.end) < 0;

// ------------------------------------------------------------------ etcd: the ranges, the watch span, the key filter

t.test('etcd ranges and watch span without WorkloadEndpoints: no endpoint key in either', async (t) => {
  // the order the span relies on, stated: workloadendpoints sorts after every other plural skein reads
  const plurals = Object.values(PLURALS);
  t.same([...plurals].sort().at(-1), PLURALS.WorkloadEndpoint, 'workloadendpoints is the last plural');
  for (const node of [undefined, ME, 'zzzz', '~node']) {
    const ranges = etcdRanges(node, OFF);
    t.notOk(ranges.some(overlapsWeps), `no range lists an endpoint (node ${node ?? 'none'})`);
    t.equal(ranges.length, etcdRanges(node).length - 1, 'the endpoint prefix is the only one gone');
    const span = watchSpan(ranges, OFF);
    t.notOk(overlapsWeps(span), `the watch span holds no endpoint key (node ${node ?? 'none'})`);
    t.notOk(inRange(wepKey(ME, 'ns', 'p'), span) || inRange(wepKey('a', '0', 'b'), span), 'not even this node\'s own');
    for (const r of ranges) t.ok(inRange(r.key.toString(), span) && Buffer.compare(r.end, span.end) <= 0, `${r.key.toString()} is in the span`);
    t.ok(inRange(nodeKey('zzzzz'), span), 'the last kind before the endpoints is still watched');
  }
  // the default is as before: the endpoints are listed (keys only for a node) and the span reaches past them
  const all = etcdRanges(ME);
  t.ok(all.some((r) => r.keysOnly === true && r.key.toString() === WEP_PREFIX));
  t.ok(inRange(wepKey(ME, 'ns', 'p'), watchSpan(all)), 'default: the span covers the endpoints');
  t.same(watchSpan(all), { key: all[0]?.key, end: all.at(-1)?.end }, 'default: the same span as before');
  // a kind that sorted after the endpoints would widen the span over them: refused, not done quietly
  const later: ListRange = { key: Buffer.from(`${RESOURCES_PREFIX}zones/`), end: Buffer.from(`${RESOURCES_PREFIX}zones0`) };
  t.throws(() => watchSpan([...etcdRanges(ME, OFF), later], OFF), /covers .*workloadendpoints/);
  t.doesNotThrow(() => watchSpan([...etcdRanges(ME), later]), 'with endpoints read, no check');
});

t.test('keyConcernsNode / nodeKeyFilter / keyFilter without WorkloadEndpoints', async (t) => {
  const k = (node: string): string => wepKey(node, 'ns', 'p');
  for (const key of [k(ME), k('nw-node-10'), `${WEP_PREFIX}ns/myvm`]) {
    t.equal(keyConcernsNode(key, ME, OFF), false, `${key}: no`);
    t.equal(nodeKeyFilter(ME, OFF)(Buffer.from(key)), false, `${key}: no (bytes)`);
    t.equal(keyFilter(undefined, OFF)?.(Buffer.from(key)), false, `${key}: no (no node)`);
  }
  t.equal(keyConcernsNode(k(ME), ME), true, 'default: this node\'s own endpoint is read');
  t.equal(keyFilter(undefined), undefined, 'default without a node: no filter at all');
  for (const key of [nodeKey('nw-node-10'), `${RESOURCES_PREFIX}bgppeers/p`, affinityKey(ME, 3)]) {
    t.equal(keyConcernsNode(key, ME, OFF), true, `${key}: still read`);
    t.equal(nodeKeyFilter(ME, OFF)(Buffer.from(key)), true);
    t.equal(keyFilter(undefined, OFF)?.(Buffer.from(key)), true);
  }
  t.equal(keyFilter(undefined, OFF)?.(Buffer.from(blockKey(3))), true, 'without a node, blocks are read');
  t.equal(nodeKeyFilter(ME, OFF)(Buffer.from(blockKey(3))), false, 'for a node, not');
  // the bytes and the string rules agree with the scope too
  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?$/);
  const piece = fc.constantFrom('a', '1', '-', '--', 'é', '/', 'k8s', 'nw-node-1', 'nw--node--1');
  const text = fc.array(piece, { maxLength: 8 }).map((a) => a.join(''));
  const prefix = fc.constantFrom(WEP_PREFIX, `${WEP_PREFIX}ns/`, '/calico/ipam/v2/host/', '/calico/ipam/v2/assignment/ipv4/block/', `${RESOURCES_PREFIX}nodes/`, '/other/');
  fc.assert(fc.property(label, prefix, text, fc.boolean(), (node, pre, rest, off) => {
    const key = `${pre}${rest}`;
    const scope = { workloadEndpoints: !off };
    return nodeKeyFilter(node, scope)(Buffer.from(key)) === keyConcernsNode(key, node, scope);
  }), { numRuns: 5000 });
});

// ------------------------------------------------------------------ etcd, against a real one

/** `m` as JSON without its WorkloadEndpoints, affinities of other nodes and blocks: what the reader should hold. */
function shareWithoutWeps(m: Model, node: string): unknown {
  const j = m.toJSON() as Record<string, Record<string, { spec: { node?: string } }>>;
  j.WorkloadEndpoint = {};
  j.IPAMBlock = {};
  for (const [id, r] of Object.entries(j.BlockAffinity ?? {})) if (r.spec.node !== node) delete j.BlockAffinity?.[id];
  return j;
}

t.test('etcd datastore without WorkloadEndpoints: none listed, none sent by the watch, the rest as before', async (t) => {
  if (!requires(t as unknown as Parameters<typeof requires>[0], { commands: ['etcd'] })) return;
  const etcd = await startEtcd(24375, 24376);
  t.teardown(() => etcd.stop());
  const c = etcd.client;
  const all = [ME, ...OTHERS];
  await putSmallCluster(c, all, 3);
  // this node's own broken endpoint: with endpoints read it is reported; without, never decoded
  await c.put(wepKey(ME, 'ns-0', 'broken')).value('{not json');

  const base = { endpoints: [etcd.endpoint], backoffMinMs: 50, backoffMaxMs: 500 };
  const full = new EtcdDatastore(base);
  const ds = new EtcdDatastore({ ...base, nodeName: ME, workloadEndpoints: false, pageSize: 3 });
  t.teardown(() => full.close());
  t.teardown(() => ds.close());
  // what reaches the datastore from etcd: every range it lists, every watch event it is sent
  const listed: { key: Buffer; end: Buffer }[] = [];
  const sent: string[] = [];
  const txns: number[] = [];
  const inner = ds as unknown as {
    client: { range(r: { key: Buffer; rangeEnd: Buffer }): Promise<unknown>; txnRanges(k: unknown[]): Promise<unknown> };
    apply(range: number, events: WatchEvent[]): void;
  };
  const range = inner.client.range.bind(inner.client);
  inner.client.range = (r) => { listed.push({ key: r.key, end: r.rangeEnd }); return range(r); };
  const txnRanges = inner.client.txnRanges.bind(inner.client);
  inner.client.txnRanges = (k) => { txns.push(k.length); return txnRanges(k); };
  const apply = inner.apply.bind(ds);
  inner.apply = (i, events) => { for (const e of events) sent.push(Buffer.from(e.kv.key).toString()); apply(i, events); };

  const issues: Issue[] = [];
  const fullIssues: Issue[] = [];
  const changes: ChangeEvent[] = [];
  ds.on('invalid', (i) => issues.push(i));
  full.on('invalid', (i) => fullIssues.push(i));
  ds.on('change', (e) => changes.push(e));
  full.start();
  ds.start();
  await Promise.race([Promise.all([ds.synced(), full.synced()]), until(() => false, 'first sync', 30_000)]);

  await t.test('the list: no endpoint range, no endpoint in the model, everything else of this node\'s share', async (t) => {
    t.ok(listed.length > 0);
    t.notOk(listed.some(overlapsWeps), 'no list request touches the endpoint prefix');
    t.same(txns, [], 'no endpoint values fetched');
    t.equal(ds.model.list('WorkloadEndpoint').length, 0, 'no endpoint, not even this node\'s own');
    t.ok(full.model.workloadEndpoints(ME).length >= 3, 'while the full read has this node\'s endpoints');
    t.equal(ds.model.nodes().length, all.length, 'every Node');
    t.equal(ds.model.list('BlockAffinity').length, 1, 'this node\'s affinity');
    t.same(ds.model.toJSON(), shareWithoutWeps(full.model, ME), 'equal to the full read less endpoints, blocks and other affinities');
    t.ok(fullIssues.some((i) => i.source === wepKey(ME, 'ns-0', 'broken')), 'the full read reports the broken endpoint');
    t.same(issues, [], 'this one never decodes it');
  });

  await t.test('the watch: etcd sends no endpoint event; other kinds still change, in order', async (t) => {
    changes.length = 0;
    sent.length = 0;
    await c.put(wepKey(ME, 'ns-1', 'late')).value(wepValue(ME, 'ns-1', 'late', '10.64.0.60'));
    await c.put(wepKey('nw-node-2', 'ns-0', 'new')).value(wepValue('nw-node-2', 'ns-0', 'new', '10.64.1.50'));
    await c.put(wepKey(ME, 'ns-0', 'broken2')).value('{still not json');
    await c.delete().key(wepKey(ME, 'ns-0', 'pod-0'));
    await c.put(nodeKey('nw-node-2')).value(nodeValue('nw-node-2', '192.0.2.99'));
    await c.put(wepKey(ME, 'ns-0', 'pod-1')).value(wepValue(ME, 'ns-0', 'pod-1', '10.64.0.61'));
    const peer = `${RESOURCES_PREFIX}bgppeers/nw-peer`;
    await c.put(peer).value(etcdValueOf({ kind: 'BGPPeer', metadata: { name: 'nw-peer' }, spec: { peerIP: '192.0.2.200', asNumber: 64512 } }));
    // the peer comes last: once it is applied, everything before it in the watch has been seen
    await until(() => changes.some((e) => e.kind === 'BGPPeer'), 'the peer added', 20_000);
    t.same(changes.map((e) => `${e.type} ${e.kind} ${e.id}`), ['updated Node nw-node-2', 'added BGPPeer nw-peer'], 'only the other kinds, in order');
    t.same(sent, [nodeKey('nw-node-2'), peer], 'etcd sent the Node and the peer, and no endpoint event at all');
    t.same(issues, [], 'nothing decoded');
    t.equal(ds.model.list('WorkloadEndpoint').length, 0);
    // the full read saw the endpoint events (they were written), and the two agree on the rest
    await until(() => full.model.get('BGPPeer', 'nw-peer') !== undefined, 'the full read caught up', 20_000);
    t.ok(full.model.get('WorkloadEndpoint', `ns-1/${wepName(ME, 'late')}`) !== undefined, 'the full read has the new endpoint');
    t.same(ds.model.toJSON(), shareWithoutWeps(full.model, ME));
  });

  await t.test('a re-list keeps them out, and emits nothing for them', async (t) => {
    changes.length = 0;
    listed.length = 0;
    await c.put(wepKey(ME, 'ns-1', 'more')).value(wepValue(ME, 'ns-1', 'more', '10.64.0.77'));
    await ds.reload();
    t.equal(ds.status.state, 'synced');
    t.notOk(listed.some(overlapsWeps));
    t.same(changes, [], 'no change: no endpoint appears or is deleted');
    t.same(txns, []);
    t.same(issues, []);
    t.equal(ds.model.list('WorkloadEndpoint').length, 0);
  });

  await t.test('openDatastore passes the option to etcd', async (t) => {
    const cfg: DaemonConfig['datastore'] = { type: 'etcd', path: '', debounceMs: 50, etcd: { endpoints: [etcd.endpoint], dialTimeoutMs: 2000, backoffMinMs: 50, backoffMaxMs: 500 } };
    const opened: Datastore = openDatastore(cfg, ME, OFF);
    t.teardown(() => opened.close());
    const m = await opened.synced();
    t.equal(m.list('WorkloadEndpoint').length, 0);
    t.equal(m.nodes().length, all.length);
    const dflt = openDatastore(cfg, ME);
    t.teardown(() => dflt.close());
    t.ok((await dflt.synced()).workloadEndpoints(ME).length > 0, 'the default still reads this node\'s endpoints');
  });
});

// ------------------------------------------------------------------ the file datastore

const SHAPE: ClusterShape = {
  nodes: 5,
  perNode: 4,
  head: ['apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool\nspec:\n  cidr: 10.64.0.0/10\n'],
  nodeName: (k) => `nw-node-${k}`,
  nodeAddress: (k) => `192.0.2.${k + 1}/24`,
  pod: (k, p) => ({ ns: `ns-${k % 2}`, ip: `10.64.${k}.${p + 1}`, iface: `cali${k}x${p}` }),
};
const FILE_ME = SHAPE.nodeName(0);
const wep = (k: number, p: number, ip?: string): string => {
  const s = SHAPE.pod(k, p);
  return wepYaml(SHAPE.nodeName(k), s.ns, podName(k, p), ip ?? s.ip, s.iface);
};
const WEPS = SHAPE.nodes * SHAPE.perNode;
const DOCS = 1 + SHAPE.nodes + WEPS;

t.test('elsewhere without WorkloadEndpoints: every endpoint document is dropped by its kind line', (t) => {
  const own = wep(0, 0);
  t.notOk(elsewhere(own, FILE_ME), 'default: this node\'s own endpoint is parsed');
  t.ok(elsewhere(own, FILE_ME, OFF), 'this node\'s own endpoint');
  t.ok(elsewhere(wep(1, 0), FILE_ME, OFF), 'another node\'s');
  t.ok(elsewhere(own.replace(/name: \S+/, 'name: myvm'), FILE_ME, OFF), 'a name not in Calico\'s form');
  t.ok(elsewhere(own, undefined, OFF), 'without a node too');
  t.notOk(elsewhere(own, undefined), 'default without a node: parsed');
  t.notOk(elsewhere(nodeYaml('x', '192.0.2.9/24'), FILE_ME, OFF), 'a Node is parsed');
  const block = 'apiVersion: projectcalico.org/v3\nkind: IPAMBlock\nmetadata:\n  name: 10-64-0-0-26\nspec:\n  cidr: 10.64.0.0/26\n';
  t.ok(elsewhere(block, FILE_ME, OFF), 'a block, for a node');
  t.notOk(elsewhere(block, undefined, OFF), 'a block without a node: every node\'s reader keeps blocks');
  t.notOk(elsewhere(`${own}kind: WorkloadEndpoint\n`, FILE_ME, OFF), 'two kinds: parsed');
  t.notOk(elsewhere(own.replace('spec:', '"spec":'), FILE_ME, OFF), 'a quoted root key: parsed');
  // whatever it drops, the reader would have dropped after parsing it too
  for (const text of [own, wep(1, 0), own.replace(/name: \S+/, 'name: myvm')]) {
    const l = loadResourcesText(text, 'x.yaml');
    t.ok(l.model.size === 1 && l.model.list('WorkloadEndpoint').every((w) => !concernsNode(w, FILE_ME, OFF) && keepFor(undefined, OFF)?.(w) === false));
  }
  t.end();
});

t.test('FileIndex without WorkloadEndpoints: none parsed, none in force, their edits cost nothing', (t) => {
  const text = clusterYaml(SHAPE);
  for (const node of [FILE_ME, undefined]) {
    const idx = new FileIndex('r.yaml', keepFor(node, OFF), node, undefined, undefined, OFF);
    const first = idx.read(text);
    t.match(first.stats, { documents: DOCS, parsed: DOCS - WEPS, skipped: WEPS }, `no endpoint parsed (node ${node ?? 'none'})`);
    t.same(first.upserts.filter((r) => r.kind === 'WorkloadEndpoint'), []);
    t.equal(first.upserts.length, DOCS - WEPS);
    t.equal(first.total, DOCS, 'the shrink rule still counts the whole file');
    idx.commit();
    const d = idx.read(text.replace(wep(0, 1), wep(0, 1, '10.99.0.1')).replace(`${wep(2, 0)}---\n`, ''));
    t.same([d.stats.parsed, d.upserts, d.deletes], [0, [], []], 'an own endpoint edited, another removed: nothing parsed, nothing to apply');
  }
  t.end();
});

/** A FileDatastore without endpoints, reading in its worker or on the main thread. */
function fileCase(name: string, workerBytes: number): void {
  t.test(`FileDatastore without WorkloadEndpoints (${name})`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'skein-ds-noweps-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'resources.yaml');
    const text = clusterYaml(SHAPE);
    writeFileSync(file, text);
    const ds = new FileDatastore({ path: file, debounceMs: 20, pollMs: 0, nodeName: FILE_ME, workloadEndpoints: false, workerBytes, chunk: 3, settleMs: 600_000 });
    t.teardown(() => ds.close());
    const changes: ChangeEvent[] = [];
    const issues: Issue[] = [];
    ds.on('change', (e) => changes.push(e));
    ds.on('invalid', (i) => issues.push(i));
    ds.start();
    await ds.synced();
    t.equal(ds.model.list('WorkloadEndpoint').length, 0, 'no endpoint, not even this node\'s own');
    t.equal(ds.model.nodes().length, SHAPE.nodes);
    t.same(ds.model.toJSON(), loadResourcesText(text, file, undefined, keepFor(FILE_ME, OFF)).model.toJSON(), 'equals a fresh parse of its share');
    if (workerBytes === 1) t.match(ds.lastRead, { documents: DOCS, parsed: DOCS - WEPS, skipped: WEPS }, 'no endpoint parsed');

    // own endpoints edited, added, removed, one broken; then a Node changed, then a pool added: those two only
    const pool2 = 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool2\nspec:\n  cidr: 10.200.0.0/16\n';
    let now = text.replace(wep(0, 0), wep(0, 0, '10.99.0.5')).replace(`${wep(0, 2)}---\n`, '').replace(`${wep(3, 3)}---\n`, '')
      .replace(wep(0, 3), `${wep(0, 3)}---\n${wep(0, 7)}---\n${wep(0, 8).replace(/ipNetworks:\n.*\n/, 'ipNetworks:\n    - not-an-address\n')}`)
      .replace(nodeYaml(SHAPE.nodeName(2), SHAPE.nodeAddress(2)), nodeYaml(SHAPE.nodeName(2), '192.0.2.77/24'));
    now = `${now}---\n${pool2}`;
    writeFileSync(file, now);
    await until(() => changes.length >= 2, 'the edit applied');
    t.same(changes.map((e) => `${e.type} ${e.kind} ${e.id}`), [`updated Node ${SHAPE.nodeName(2)}`, 'added IPPool pool2'], 'the other kinds only, in order');
    t.same(issues, [], 'the broken endpoint is never parsed, so never reported');
    t.equal(ds.status.held, undefined, 'not held');
    t.equal(ds.status.lastError, undefined, 'no error');
    t.equal(ds.model.list('WorkloadEndpoint').length, 0);

    // every endpoint of this node gone (a few of the file's documents): no change, no deletion, nothing held
    changes.length = 0;
    const fewer = [wep(0, 0, '10.99.0.5'), wep(0, 1), wep(0, 3)].reduce((s, w) => s.replace(`${w}---\n`, ''), now);
    t.equal(fewer.length, now.length - wep(0, 0, '10.99.0.5').length - wep(0, 1).length - wep(0, 3).length - 12, 'three endpoints gone');
    writeFileSync(file, `${fewer}---\n${nodeYaml('nw-node-late', '192.0.2.88/24')}`);
    await until(() => changes.length > 0, 'the last edit applied');
    t.same(changes.map((e) => `${e.type} ${e.kind} ${e.id}`), ['added Node nw-node-late'], 'the new Node only; no endpoint deletion');
    t.same(issues, []);
    t.equal(ds.status.lastError, undefined);
  });
}
fileCase('in the worker', 1);
fileCase('on the main thread', 1 << 30);

t.test('openDatastore passes the option to the file datastore', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-ds-noweps-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'resources.yaml');
  writeFileSync(file, clusterYaml(SHAPE));
  const cfg: DaemonConfig['datastore'] = { type: 'file', path: file, debounceMs: 20 };
  const off = openDatastore(cfg, FILE_ME, OFF);
  t.teardown(() => off.close());
  const on = openDatastore(cfg, FILE_ME);
  t.teardown(() => on.close());
  t.equal((await off.synced()).list('WorkloadEndpoint').length, 0);
  t.equal((await on.synced()).workloadEndpoints(FILE_ME).length, SHAPE.perNode, 'the default reads this node\'s endpoints');
});
