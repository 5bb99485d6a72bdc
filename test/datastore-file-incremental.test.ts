// The file datastore re-derives only what changed (issue #14): the file is cut into documents without parsing it,
// each document is parsed once and cached by its text's hash, a node drops other nodes' WorkloadEndpoints before
// parsing them (as the etcd datastore drops them by key), and a reload sends and applies only the differences. The
// work is observed through ReadStats (documents parsed), never through time.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './helpers/etcd.js';
import { clusterYaml, nodeYaml, podName, wepName, wepYaml, type ClusterShape } from './helpers/calico-gen.js';
import { FileDatastore, loadResourcesText, type ChangeEvent } from '../config/index.js';
import { concernsNode, elsewhere, FileIndex } from '../config/filesource.js';
import { LineOf, splitDocuments } from '../config/yamlsource.js';

const ME = 'inc-node-0';
const SHAPE: ClusterShape = {
  nodes: 6,
  perNode: 5,
  head: ['apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool\nspec:\n  cidr: 10.64.0.0/10\n'],
  nodeName: (k) => `inc-node-${k}`,
  nodeAddress: (k) => `192.0.2.${k + 1}/24`,
  pod: (k, p) => ({ ns: `ns-${k % 3}`, ip: `10.64.${k}.${p + 1}`, iface: `cali${k}x${p}` }),
};
const wep = (k: number, p: number, ip?: string): string => {
  const s = SHAPE.pod(k, p);
  return wepYaml(SHAPE.nodeName(k), s.ns, podName(k, p), ip ?? s.ip, s.iface);
};
/** endpoint p of node k's name */
const nameOf = (k: number, p: number): string => wepName(SHAPE.nodeName(k), podName(k, p));
const DOCS = 1 + SHAPE.nodes + SHAPE.nodes * SHAPE.perNode;

t.test('splitDocuments: cuts at `---` lines only, and gives up (one piece) where a cut is not certain', (t) => {
  t.same(splitDocuments('a: 1\n---\nb: 2\n'), [{ text: 'a: 1\n', at: 0 }, { text: 'b: 2\n', at: 9 }]);
  const text = '---\na: 1\n--- # two\nb: 2';
  const lines = new LineOf(text);
  t.same(splitDocuments(text).map((d) => lines.at(d.at)), [1, 2, 4], 'a leading marker, a comment after one; their lines');
  t.same(splitDocuments('a: |\n  ---\n  x\n---\nb: 2\n').length, 2, 'an indented --- is content');
  for (const whole of ['a: 1\n...\n---\nb: 2\n', '%YAML 1.2\n---\na: 1\n', '--- {a: 1}\n---\nb: 2\n']) {
    t.same(splitDocuments(whole), [{ text: whole, at: 0 }], `kept whole: ${JSON.stringify(whole)}`);
  }
  t.end();
});

t.test('elsewhere: another node\'s endpoint or an IPAM block is judged from its text only when the text is certain', (t) => {
  const other = wep(1, 0);
  t.ok(elsewhere(other, ME), 'another node\'s endpoint');
  t.notOk(elsewhere(wep(0, 0), ME), 'this node\'s endpoint');
  t.notOk(elsewhere(nodeYaml('inc-node-1', '192.0.2.2/24'), ME), 'a Node');
  t.ok(elsewhere('apiVersion: projectcalico.org/v3\nkind: IPAMBlock\nmetadata:\n  name: 10-64-0-0-26\nspec:\n  cidr: 10.64.0.0/26\n', ME), 'an IPAM block');
  t.ok(elsewhere(other.replace(/name: (\S+)/, "name: '$1'"), ME), 'a quoted name');
  t.ok(elsewhere(other.replace(/\n {2}/g, '\n    '), ME), 'another indentation');
  t.ok(elsewhere(other.replace(/\n/g, '\r\n'), ME), 'CRLF line ends');
  t.ok(elsewhere(`# a comment\n${other.replace('  namespace:', '# at column 0\n  namespace:')}`, ME), 'comments');
  const parsed: [string, string][] = [
    ['flow metadata', other.replace(/metadata:\n {2}name: (\S+)\n {2}namespace: (\S+)\n/, 'metadata: {name: $1, namespace: $2}\n')],
    ['a name not in Calico\'s form', other.replace(/name: \S+/, 'name: just-a-name')],
    ['two kinds', `${other}kind: WorkloadEndpoint\n`],
    ['two names', other.replace('  namespace:', '  name: inc--node--0-k8s-x-eth0\n  namespace:')],
    ['two names, a comment between', other.replace('  namespace:', '# c\n  name: inc--node--0-k8s-x-eth0\n  namespace:')],
    ['an alias for the name', other.replace(/name: \S+/, 'name: *n')],
    ['a quoted root key', other.replace('spec:', '"spec":')],
    ['a List', `apiVersion: projectcalico.org/v3\nkind: List\nitems:\n- ${other.replace(/\n/g, '\n  ')}`],
    ['a tab in the metadata', other.replace('  namespace:', '\tnamespace:')],
  ];
  for (const [what, text] of parsed) t.notOk(elsewhere(text, ME), `parsed: ${what}`);
  // whatever elsewhere drops, the parser would have dropped for this node too
  for (const text of [other, ...parsed.map(([, x]) => x)]) {
    if (!elsewhere(text, ME)) continue;
    const l = loadResourcesText(text, 'x.yaml');
    t.ok(l.model.size === 1 && l.model.list('WorkloadEndpoint').every((w) => !concernsNode(w, ME)), 'the parse agrees');
  }
  t.end();
});

t.test('FileIndex: a changed document is the only one parsed again, and only the differences come back', (t) => {
  const text = clusterYaml(SHAPE);
  const all = new FileIndex('r.yaml');
  const first = all.read(text);
  t.equal(first.full, true, 'nothing in force yet: everything');
  t.match(first.stats, { documents: DOCS, parsed: DOCS, skipped: 0, cut: DOCS });
  t.equal(first.upserts.length, DOCS);
  all.commit();
  t.same(all.read(text).stats.parsed, 0, 'the same text: nothing parsed');
  all.commit();

  // one endpoint's address changed, one appended, one removed
  const edited = text.replace(wep(2, 3), wep(2, 3, '10.99.0.1')).replace(`${wep(4, 1)}---\n`, '') + `---\n${wep(5, 9)}`;
  const d = all.read(edited);
  t.equal(d.full, false);
  t.match(d.stats, { documents: DOCS, parsed: 2, skipped: 0 }, 'the changed and the new document only');
  t.same(d.upserts.map((r) => `${r.kind} ${r.metadata.name}`).sort(), [
    `WorkloadEndpoint ${nameOf(2, 3)}`, `WorkloadEndpoint ${nameOf(5, 9)}`,
  ]);
  t.same(d.deletes, [{ kind: 'WorkloadEndpoint', id: `ns-1/${nameOf(4, 1)}` }]);
  t.same(d.total, DOCS);

  // not committed (held): the next read is still compared with the version in force
  const again = all.read(edited);
  t.equal(again.stats.parsed, 0, 'cached since the last read');
  t.equal(again.upserts.length, 2, 'still the differences from the version in force');
  const back = all.read(text);
  t.equal(back.stats.parsed, 0, 'back to the version in force: its documents are still cached');
  t.same([back.upserts, back.deletes], [[], []], 'and nothing differs');
  all.read(edited);
  all.commit();

  // issue lines count in the whole file, as a whole-file parse counts them
  const bad = edited.replace('cidr: 10.64.0.0/10', 'cidr: 10.64.0.0/33');
  const withIssue = all.read(`${nodeYaml('extra', '192.0.2.99/24')}---\n${bad}`);
  const fresh = loadResourcesText(`${nodeYaml('extra', '192.0.2.99/24')}---\n${bad}`, 'r.yaml');
  t.same(withIssue.issues, fresh.issues);
  const cidrLine = `${nodeYaml('extra', '192.0.2.99/24')}---\n${bad}`.split('\n').findIndex((l) => l.includes('10.64.0.0/33')) + 1;
  t.equal(withIssue.issues[0]?.line, cidrLine, 'the pool\'s cidr, counted in the whole file');
  t.same(withIssue.deletes, [], 'the invalid pool keeps its last good version');
  t.end();
});

t.test('FileIndex for one node: other nodes\' endpoints are never parsed, and their changes cost no parse', (t) => {
  const text = clusterYaml(SHAPE);
  const mine = new FileIndex('r.yaml', (r) => concernsNode(r, ME), ME);
  const first = mine.read(text);
  const others = (SHAPE.nodes - 1) * SHAPE.perNode;
  t.match(first.stats, { documents: DOCS, parsed: DOCS - others, skipped: others });
  t.equal(first.total, DOCS, 'the shrink rule still counts the whole file');
  t.same(first.upserts.map((r) => r.kind).filter((k) => k === 'WorkloadEndpoint').length, SHAPE.perNode, 'its own endpoints');
  mine.commit();
  const d = mine.read(text.replace(wep(3, 2), wep(3, 2, '10.99.0.2')));
  t.same(d.stats.parsed, 0, 'another node\'s endpoint changed: nothing parsed');
  t.same([d.upserts, d.deletes], [[], []], 'and nothing to apply');
  const own = mine.read(text.replace(wep(0, 2), wep(0, 2, '10.99.0.3')));
  t.same(own.stats.parsed, 1);
  t.same(own.upserts.map((r) => r.metadata.name), [nameOf(0, 2)]);
  t.end();
});

t.test('FileDatastore in its worker: a one-document edit parses one document and is one change', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-ds-inc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'resources.yaml');
  const text = clusterYaml(SHAPE);
  writeFileSync(file, text);
  // workerBytes 1: this small file goes through the worker, as a large one would
  const ds = new FileDatastore({ path: file, debounceMs: 20, pollMs: 0, nodeName: ME, workerBytes: 1, chunk: 3, settleMs: 600_000 });
  t.teardown(() => ds.close());
  const changes: ChangeEvent[] = [];
  ds.on('change', (e) => changes.push(e));
  ds.start();
  await ds.synced();
  const others = (SHAPE.nodes - 1) * SHAPE.perNode;
  t.match(ds.lastRead, { documents: DOCS, parsed: DOCS - others, skipped: others });
  t.same(ds.model.toJSON(), loadResourcesText(text, file, undefined, (r) => concernsNode(r, ME)).model.toJSON(), 'equals a fresh parse of its share');

  // this node's endpoint edited in place: one document parsed, one change
  let now = text.replace(wep(0, 1), wep(0, 1, '10.99.0.4'));
  writeFileSync(file, now);
  await until(() => changes.length > 0, 'the edit applied');
  t.same(ds.lastRead?.parsed, 1, 'one document parsed');
  t.same(changes.map((c) => `${c.type} ${c.id}`), [`updated ns-0/${nameOf(0, 1)}`]);
  t.same(ds.model.get('WorkloadEndpoint', `ns-0/${nameOf(0, 1)}`)?.spec.ipNetworks, ['10.99.0.4/32']);

  // another node's endpoint removed, an own one added, a Node changed: the differences, deletions first
  changes.length = 0;
  now = now.replace(`${wep(2, 0)}---\n`, '').replace(wep(0, 4), `${wep(0, 4)}---\n${wep(0, 7)}`)
    .replace(nodeYaml('inc-node-1', '192.0.2.2/24'), nodeYaml('inc-node-1', '192.0.2.50/24'));
  writeFileSync(file, now);
  await until(() => changes.length >= 2, 'the second edit applied');
  t.same(ds.lastRead?.parsed, 2, 'the Node and the new endpoint');
  t.same(changes.map((c) => `${c.type} ${c.kind} ${c.id}`), ['updated Node inc-node-1', `added WorkloadEndpoint ns-0/${nameOf(0, 7)}`]);

  // a truncated write is held (nothing applied), and the whole file back again applies nothing and parses nothing
  changes.length = 0;
  writeFileSync(file, now.slice(0, now.indexOf('---\n', 400)));
  await until(() => ds.status.held !== undefined, 'the truncated file held');
  writeFileSync(file, now);
  await until(() => ds.status.held === undefined, 'whole again');
  t.same(changes, [], 'nothing applied');
  t.same(ds.lastRead?.parsed, 0, 'the version in force is still cached');
  t.same(ds.model.toJSON(), loadResourcesText(now, file, undefined, (r) => concernsNode(r, ME)).model.toJSON(), 'equals a fresh parse of its share');
});
