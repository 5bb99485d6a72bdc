// The file datastore re-derives only what changed (issue #14): the file is cut into documents without parsing it,
// each document is parsed once and cached by its text's hash, a node drops other nodes' WorkloadEndpoints before
// parsing them (as the etcd datastore drops them by key), and a reload sends and applies only the differences. The
// work is observed through ReadStats (documents parsed), never through time.
import t from 'tap';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '../helpers/etcd.js';
import { clusterYaml, nodeYaml, podName, wepName, wepYaml, type ClusterShape } from '../helpers/calico-gen.js';
import { FileDatastore, FileIndex, loadResourcesText, Model, type ChangeEvent, type Resource } from '../../config/index.js';
import { concernsNode, elsewhere } from '../../config/filesource.js';
import { LineOf, splitDocuments } from '../../config/yamlsource.js';

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

// ------------------------------------------------------------------ the group index (config/fileindex.ts)

/** a larger cluster, and an index with small groups (a few documents each) and small slices, so windows show */
const BIG: ClusterShape = { ...SHAPE, nodes: 12, perNode: 10 };
const BIG_DOCS = 1 + BIG.nodes + BIG.nodes * BIG.perNode;
const bigWep = (k: number, p: number, ip?: string): string => {
  const s = BIG.pod(k, p);
  return wepYaml(BIG.nodeName(k), s.ns, podName(k, p), ip ?? s.ip, s.iface);
};
const GROUP = 1200;

t.test('GroupIndex: only the window that changed is cut; an edit, an append, a put-back file', (t) => {
  const text = clusterYaml(BIG);
  const idx = new FileIndex('r.yaml', undefined, undefined, GROUP, 3000);
  const first = idx.read(text);
  t.match(first.stats, { documents: BIG_DOCS, cut: BIG_DOCS, parsed: BIG_DOCS });
  idx.commit();
  const perGroup = Math.ceil(GROUP / wep(0, 0).length) + 1;

  // an edit in the middle: its group cut again, one document parsed, one change
  const mid = text.replace(bigWep(6, 4), bigWep(6, 4, '10.99.1.1'));
  const d = idx.read(mid);
  t.ok(d.stats.cut <= perGroup, `the edited group's documents only (${d.stats.cut} <= ${perGroup})`);
  t.ok(d.stats.windowBytes < 2 * GROUP, `a window of one group (${d.stats.windowBytes} bytes)`);
  t.equal(d.stats.parsed, 1, 'one document parsed');
  t.same(d.upserts.map((r) => r.metadata.name), [wepName(BIG.nodeName(6), podName(6, 4))]);
  t.same(d.deletes, []);
  idx.commit();

  // an append: the last group and the new document only
  const app = `${mid}---\n${bigWep(0, 20)}`;
  const a = idx.read(app);
  t.ok(a.stats.cut <= perGroup + 1, `the tail only (${a.stats.cut})`);
  t.equal(a.stats.parsed, 1);
  t.equal(a.stats.documents, BIG_DOCS + 1);
  t.same(a.upserts.map((r) => r.metadata.name), [wepName(BIG.nodeName(0), podName(0, 20))]);
  idx.commit();

  // an insert before the first document and a removal in the middle: two windows' worth, nothing else parsed
  const ins = `${nodeYaml('front', '192.0.2.77/24')}---\n${app.replace(`${bigWep(3, 3)}---\n`, '')}`;
  const i = idx.read(ins);
  t.equal(i.stats.parsed, 1, 'the new Node only');
  t.same(i.deletes, [{ kind: 'WorkloadEndpoint', id: `${BIG.pod(3, 3).ns}/${wepName(BIG.nodeName(3), podName(3, 3))}` }]);

  // truncated at a character in the middle of a document (not committed: a held file), then put back whole
  const cut = app.slice(0, Math.floor(app.length / 2));
  const tr = idx.read(cut);
  t.ok(tr.deletes.length > 50, 'the truncated read would delete the rest');
  const back = idx.read(app);
  t.match(back.stats, { cut: 0, parsed: 0, windowBytes: 0 }, 'put back as in force: nothing cut, nothing parsed');
  t.same([back.upserts, back.deletes, back.issues], [[], [], []], 'and nothing to apply');

  // the same bytes hash the same, whatever was read between
  const h = idx.contentHash();
  idx.read(cut);
  idx.read(app);
  t.equal(idx.contentHash(), h);

  // a marker that cannot be cut (a document end `...`) makes the file one piece, still read right
  const odd = app.replace(`${bigWep(9, 9)}---\n`, `${bigWep(9, 9)}...\n---\n`);
  const o = idx.read(odd);
  t.match(o.stats, { documents: 1, cut: 1 });
  // (parsed anew as one piece: its resources are new objects, sent again; the main thread drops the equal ones)
  t.same(o.deletes, [], 'nothing lost');
  t.equal(o.upserts.length, BIG_DOCS + 1, 'every resource, parsed as one piece');
  const again = idx.read(app);
  t.same(again.deletes, [], 'cut again');
  t.equal(again.stats.documents, BIG_DOCS + 1);
  t.end();
});

t.test('FileDatastore with small groups: a truncating write and a file without this node are held; an edit is one change', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-ds-grp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'resources.yaml');
  const me = BIG.nodeName(0);
  const text = clusterYaml(BIG);
  writeFileSync(file, text);
  const ds = new FileDatastore({ path: file, debounceMs: 20, pollMs: 0, nodeName: me, workerBytes: 1, chunk: 3, settleMs: 600_000, groupChars: GROUP });
  t.teardown(() => ds.close());
  const changes: ChangeEvent[] = [];
  ds.on('change', (e) => changes.push(e));
  ds.start();
  await ds.synced();
  // cut in the middle of a document, as an in-place write caught halfway
  writeFileSync(file, text.slice(0, Math.floor(text.length * 0.4)));
  await until(() => ds.status.held !== undefined, 'the truncated file held');
  t.match(ds.status.held, /shrinks from/);
  writeFileSync(file, text);
  await until(() => ds.status.held === undefined, 'whole again');
  t.same(changes, [], 'nothing applied');
  t.match(ds.lastRead, { parsed: 0, cut: 0 }, 'compared with the version in force: nothing cut');
  // this node's own Node gone: held
  writeFileSync(file, text.replace(`${nodeYaml(me, BIG.nodeAddress(0))}---\n`, ''));
  await until(() => ds.status.held !== undefined, 'the file without this node held');
  t.match(ds.status.held, /drops this node's own Node/);
  writeFileSync(file, text.replace(bigWep(0, 5), bigWep(0, 5, '10.99.2.2')));
  await until(() => changes.length > 0, 'the edit applied');
  t.same(changes.map((c) => `${c.type} ${c.kind}`), ['updated WorkloadEndpoint']);
  t.ok((ds.lastRead?.cut ?? Infinity) < BIG_DOCS / 4, `a window, not the file (${ds.lastRead?.cut} documents cut)`);
  t.same(ds.model.toJSON(), loadResourcesText(text.replace(bigWep(0, 5), bigWep(0, 5, '10.99.2.2')), file, undefined, (r) => concernsNode(r, me)).model.toJSON());
});

t.test('GroupIndex: for random edit sequences the applied state equals a from-scratch parse (fast-check)', (t) => {
  // documents to build files from: valid, invalid (its last good version stays), a syntax error, multi-byte text,
  // comments, a CRLF one, an empty one; a separator may carry a comment
  const pool = [
    ...Array.from({ length: 6 }, (_, i) => bigWep(i % 3, i)),
    bigWep(1, 1, '10.99.3.3'),
    bigWep(2, 2).replace(/10\.64\.\d+\.\d+/, 'not-an-ip'),
    nodeYaml('n-a', '192.0.2.10/24'),
    `# é 漢字 ✓\n${nodeYaml('n-b', '192.0.2.11/24')}`,
    nodeYaml('n-a', '192.0.2.12/24'),
    'a: [1, 2\n',
    nodeYaml('n-c', '192.0.2.13/24').replace(/\n/g, '\r\n'),
    '',
    '# only a comment\n',
  ];
  const seps = ['---\n', '--- # sep\n', '---\r\n'];
  type Op = { k: 'set' | 'ins'; at: number; doc: number } | { k: 'del'; at: number } | { k: 'cut'; frac: number } | { k: 'commit' } | { k: 'odd'; at: number } | { k: 'join'; at: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ k: fc.constantFrom('set' as const, 'ins' as const), at: fc.nat(40), doc: fc.nat(pool.length - 1) }),
    fc.record({ k: fc.constant('del' as const), at: fc.nat(40) }),
    fc.record({ k: fc.constant('cut' as const), frac: fc.double({ min: 0, max: 1, noNaN: true }) }),
    fc.record({ k: fc.constant('commit' as const) }),
    fc.record({ k: fc.constant('odd' as const), at: fc.nat(40) }),
    // a separator removed: two documents become one (a back group then follows text that ends in no `---` line)
    fc.record({ k: fc.constant('join' as const), at: fc.nat(40) }),
  );
  fc.assert(fc.property(
    fc.array(fc.nat(pool.length - 1), { minLength: 0, maxLength: 30 }),
    fc.array(fc.nat(seps.length - 1), { minLength: 40, maxLength: 40 }),
    fc.array(op, { minLength: 1, maxLength: 25 }),
    fc.integer({ min: 40, max: 2000 }),
    fc.integer({ min: 1, max: 3000 }),
    fc.boolean(),
    fc.boolean(),
    (start, sepOf, ops, groupChars, sliceBytes, trailingNewline, scoped) => {
      let docs = start.map((i) => pool[i] as string);
      const textOf = (ds: string[]): string => {
        const s = ds.map((d, i) => (i === 0 ? d : `${seps[(sepOf[i] ?? 0) % seps.length] as string}${d}`)).join('');
        return trailingNewline || !s.endsWith('\n') ? s : s.slice(0, -1);
      };
      // scoped: read for node ME, other nodes' endpoints dropped unread (the resources compared are its share)
      const keep = scoped ? (r: Resource): boolean => concernsNode(r, ME) : undefined;
      const idx = new FileIndex('r.yaml', keep, scoped ? ME : undefined, groupChars, sliceBytes);
      let applied: Model | undefined;
      const step = (text: string, commit: boolean): void => {
        const d = idx.read(text);
        const fresh = loadResourcesText(text, 'r.yaml', applied, keep);
        if (d.syntaxError !== fresh.syntaxError && !scoped) throw new Error(`syntax: ${d.syntaxError} vs ${fresh.syntaxError}`);
        // (scoped, another node's broken endpoint is dropped unread, as etcd drops its value: no issue, no syntax error)
        if (scoped && (d.syntaxError || fresh.syntaxError)) return;
        if (!scoped && JSON.stringify(d.issues) !== JSON.stringify(fresh.issues)) throw new Error(`issues differ: ${JSON.stringify(d.issues)} vs ${JSON.stringify(fresh.issues)}`);
        if (d.stats.documents !== splitDocuments(text).length) throw new Error(`documents ${d.stats.documents} vs ${splitDocuments(text).length}`);
        if (d.syntaxError) return;
        if (!scoped && d.total !== fresh.total) throw new Error(`total ${d.total} vs ${fresh.total}`);
        // what applying this read gives, against the fresh parse with the same last good versions
        const m = applied?.clone() ?? new Model();
        if (d.full) {
          for (const r of d.upserts) m.set(r);
        } else {
          for (const x of d.deletes) m.delete(x.kind, x.id);
          for (const r of d.upserts) m.set(r);
        }
        if (JSON.stringify(m.toJSON()) !== JSON.stringify(fresh.model.toJSON())) throw new Error(`state differs for ${JSON.stringify(text)}`);
        if (commit) {
          idx.commit();
          applied = m;
        }
      };
      step(textOf(docs), true);
      for (const o of ops) {
        switch (o.k) {
          case 'set': if (docs.length > 0) docs[o.at % docs.length] = pool[o.doc] as string; break;
          case 'ins': docs.splice(o.at % (docs.length + 1), 0, pool[o.doc] as string); break;
          case 'del': if (docs.length > 0) docs.splice(o.at % docs.length, 1); break;
          case 'odd': docs = docs.map((d, i) => (i === o.at % Math.max(1, docs.length) ? `${d}...\n` : d)); break;
          case 'cut': { const s = textOf(docs); step(s.slice(0, Math.floor(s.length * o.frac)), false); continue; }
          case 'join': if (docs.length > 1) { const i = o.at % (docs.length - 1); docs.splice(i, 2, `${docs[i] ?? ''}${docs[i + 1] ?? ''}`); } break;
          case 'commit': break;
        }
        step(textOf(docs), o.k === 'commit' || o.k === 'set');
      }
    },
  ), { numRuns: 300 });
  t.pass('300 random edit sequences, whole and scoped to one node');
  t.end();
});
