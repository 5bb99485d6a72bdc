// A large file datastore (issue #14): resources.yaml with thousands of WorkloadEndpoints is read, parsed and
// validated in a worker thread and taken back in chunks, one per event-loop turn, so the loop keeps turning while a
// big file reloads (the test's own code runs mid-parse and between chunks: impossible with a synchronous parse);
// the result equals a fresh synchronous parse; one appended record is one change event; the partial-write rules
// (own Node dropped, implausible shrink) still hold when the datastore keeps only its node's share.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { until } from '../helpers/etcd.js';
import { FileDatastore, loadResourcesText, type ChangeEvent } from '../../config/index.js';
import { concernsNode } from '../../config/filesource.js';
import { clusterYaml, podName, wepYaml, type ClusterShape } from '../helpers/calico-gen.js';

const NODES = 50;
const PER_NODE = 100;
const ME = 'big-node-0';

// 50 nodes of 100 pods: over 1 MiB of YAML
const SHAPE: ClusterShape = {
  nodes: NODES,
  perNode: PER_NODE,
  head: ['apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool\nspec:\n  cidr: 10.64.0.0/10\n'],
  nodeName: (i) => `big-node-${i}`,
  nodeAddress: (i) => `192.0.2.${i + 1}/24`,
  pod: (i, p) => ({ ns: `ns-${i % 7}`, ip: `10.${64 + (i >> 8)}.${i & 255}.${p + 1}`, iface: `cali${(i * 1000 + p).toString(16).padStart(11, '0')}` }),
};

function wepDoc(i: number, p: number): string {
  const { ns, ip, iface } = SHAPE.pod(i, p);
  return wepYaml(SHAPE.nodeName(i), ns, podName(i, p), ip, iface);
}

const bigFile = (): string => clusterYaml(SHAPE);

/** Watch a datastore's reload from the test's own turns of the event loop (bounded). */
function observe(ds: FileDatastore): { stop: () => { phases: Set<string>; receivedSeen: Set<number>; turns: number } } {
  const phases = new Set<string>();
  const receivedSeen = new Set<number>();
  let turns = 0;
  let on = true;
  const tick = (): void => {
    if (!on || turns > 10_000_000) return;
    turns++;
    if (ds.phase !== undefined) phases.add(ds.phase);
    if (ds.phase === 'receiving') receivedSeen.add(ds.received);
    setImmediate(tick);
  };
  setImmediate(tick);
  return { stop: () => { on = false; return { phases, receivedSeen, turns }; } };
}

t.test('file datastore: a large file is parsed off the event loop and equals a fresh parse', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-ds-large-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'resources.yaml');
  let text = bigFile();
  writeFileSync(file, text);
  t.ok(text.length > 1024 * 1024, `the file is ${(text.length / 1048576).toFixed(1)} MiB: over the worker threshold`);

  const ds = new FileDatastore({ path: file, debounceMs: 50, pollMs: 0, chunk: 250 });
  t.teardown(() => ds.close());
  const changes: ChangeEvent[] = [];
  ds.on('change', (e) => changes.push(e));
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const o = observe(ds);
  ds.start();
  await ds.synced();
  let seen = o.stop();
  t.ok(seen.phases.has('parsing'), 'the test ran while the worker parsed');
  t.ok(seen.receivedSeen.size >= 2, `the test ran between chunks (${seen.receivedSeen.size} distinct counts seen)`);
  t.same(ds.model.toJSON(), loadResourcesText(text, file).model.toJSON(), 'equals a fresh synchronous parse');
  t.equal(ds.model.workloadEndpoints().length, NODES * PER_NODE);

  // one appended record: one change
  const o2 = observe(ds);
  const added = wepDoc(3, 200);
  text += `---\n${added}`;
  appendFileSync(file, `---\n${added}`);
  await until(() => changes.length > 0, 'the appended endpoint', 60_000);
  seen = o2.stop();
  t.ok(seen.phases.has('parsing'), 'the reload too');
  t.same(changes.map((c) => `${c.type} ${c.kind} ${c.id}`), ['added WorkloadEndpoint ns-3/big--node--3-k8s-pod--3--200-eth0']);
  t.same(ds.model.toJSON(), loadResourcesText(text, file).model.toJSON(), 'equals a fresh parse after the change');
  h.disable();
  t.comment(`event-loop delay during the test: p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms, max ${(h.max / 1e6).toFixed(1)} ms (not asserted)`);
});

t.test('file datastore for one node: its share only, and the partial-write rules count the whole file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-ds-large-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'resources.yaml');
  const text = bigFile();
  writeFileSync(file, text);
  const ds = new FileDatastore({ path: file, debounceMs: 50, pollMs: 0, nodeName: ME, settleMs: 600_000 });
  t.teardown(() => ds.close());
  const changes: ChangeEvent[] = [];
  ds.on('change', (e) => changes.push(e));
  ds.start();
  await ds.synced();
  t.same(ds.model.toJSON(), loadResourcesText(text, file, undefined, (r) => concernsNode(r, ME)).model.toJSON(), 'equals a fresh parse of its share');
  t.equal(ds.model.list('WorkloadEndpoint').length, PER_NODE, 'this node\'s endpoints only');
  t.equal(ds.model.nodes().length, NODES, 'every Node');

  // Only other nodes' endpoints cut (this node's share unchanged): still an implausible shrink of the file.
  const cut = text.slice(0, Math.floor(text.length * 0.3));
  writeFileSync(file, cut.slice(0, cut.lastIndexOf('---\n')));
  await until(() => ds.status.held !== undefined, 'the cut file held', 60_000);
  t.match(ds.status.held, /shrinks from 5051 to \d+ resources/);
  // An in-place truncation: drops this node's Node.
  writeFileSync(file, '');
  await until(() => /drops this node's own Node/.test(ds.status.held ?? ''), 'the empty file held', 60_000);
  writeFileSync(file, text);
  await until(() => ds.status.held === undefined, 'whole again', 60_000);
  t.same(changes, [], 'nothing applied from the partial files');
});
