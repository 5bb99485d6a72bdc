// The etcd datastore read for one node (issue #16: memory that does not grow with other hosts' workloads), against a
// real etcd on loopback: other nodes' WorkloadEndpoints and affinities, and IPAM blocks, are dropped by their key and
// never decoded (a broken record of another node raises no issue), in the list and in the watch; this node's are
// read exactly as an unscoped datastore reads them; a name not in Calico's form is kept.
import t from 'tap';
import fc from 'fast-check';
import { requires } from '../helpers/env.js';
import { startEtcd, until } from '../helpers/etcd.js';
import { affinityKey, affinityValue, blockKey, fullBlock, nodeKey, putSmallCluster, wepKey, wepName, wepValue } from '../helpers/calico-gen.js';
import { EtcdDatastore, wepNodeOfName, keyConcernsNode, type ChangeEvent, type Issue, type Model } from '../../config/index.js';
import { nodeKeyFilter } from '../../config/keys.js';

// Ports of this file: 24371-24372.
const ME = 'scope-node-1';
const OTHERS = ['scope-node-2', 'scope-node-10', 'scope-node-1-b'];

t.test('wepNodeOfName: the node segment of Calico endpoint names', async (t) => {
  t.equal(wepNodeOfName(wepName('node-1', 'pod-a')), 'node-1');
  t.equal(wepNodeOfName(wepName('a', 'web-7d9f-x2')), 'a');
  t.equal(wepNodeOfName('host--a-openstack-vm--1-tap1234'), 'host-a');
  t.equal(wepNodeOfName('h-libnetwork-libnetwork-ep1'), 'h');
  t.equal(wepNodeOfName('just-a-name'), undefined, 'three segments: not Calico form');
  t.equal(wepNodeOfName('myvm'), undefined);
  t.equal(wepNodeOfName('a-b-c-d-e'), undefined, 'five segments');
  // "node-1" and "node-1-b" escape to "node--1" and "node--1--b": neither is a prefix match of the other's segment
  const k = (node: string): string => wepKey(node, 'ns', 'p');
  t.equal(keyConcernsNode(k('node-1'), 'node-1'), true);
  t.equal(keyConcernsNode(k('node-1-b'), 'node-1'), false);
  t.equal(keyConcernsNode(k('node-10'), 'node-1'), false);
  t.equal(keyConcernsNode('/calico/resources/v3/projectcalico.org/workloadendpoints/ns/myvm', 'node-1'), true, 'unknown form: read, spec.node decides');
  t.equal(keyConcernsNode(affinityKey('node-1', 3), 'node-1'), true);
  t.equal(keyConcernsNode(affinityKey('node-10', 3), 'node-1'), false);
  t.equal(keyConcernsNode(blockKey(3), 'node-1'), false);
  t.equal(keyConcernsNode(nodeKey('node-10'), 'node-1'), true, 'other Nodes are peers: read');
});

t.test('nodeKeyFilter (the key as etcd sends it, bytes) answers as keyConcernsNode (the key as a string)', async (t) => {
  const f = nodeKeyFilter('node-1');
  const k = (node: string): Buffer => Buffer.from(wepKey(node, 'ns', 'p'));
  t.equal(f(k('node-1')), true);
  t.equal(f(k('node-1-b')), false, 'a node whose name starts with ours and a dash');
  t.equal(f(k('node-10')), false);
  t.equal(f(k('node')), false, 'a node whose name is a prefix of ours');
  t.equal(f(Buffer.from('/calico/resources/v3/projectcalico.org/workloadendpoints/ns/myvm')), true, 'not Calico form: read');
  t.equal(f(Buffer.from(affinityKey('node-1', 3))), true);
  t.equal(f(Buffer.from(affinityKey('node-10', 3))), false);
  t.equal(f(Buffer.from(blockKey(3))), false);
  t.equal(f(Buffer.from(nodeKey('node-10'))), true);
  // generated keys: node names as Calico allows them (RFC 1123 subdomains, lib/names), endpoint names from a few
  // segments of letters, dashes and non-ASCII text, under each prefix the rule looks at and some it does not
  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?$/);
  const nodeName = fc.array(label, { minLength: 1, maxLength: 2 }).map((a) => a.join('.'));
  const piece = fc.constantFrom('a', 'b', '1', '-', '--', '---', 'é', '\u00ff', '/', '.', 'k8s', 'node-1', 'node--1');
  const text = fc.array(piece, { maxLength: 10 }).map((a) => a.join(''));
  const prefix = fc.constantFrom('/calico/resources/v3/projectcalico.org/workloadendpoints/', '/calico/resources/v3/projectcalico.org/workloadendpoints/ns/',
    '/calico/ipam/v2/host/', '/calico/ipam/v2/assignment/ipv4/block/', '/calico/resources/v3/projectcalico.org/nodes/', '/calico/ipam/v2/handle/', '/other/');
  fc.assert(fc.property(nodeName, prefix, text, fc.boolean(), (node, pre, rest, ownFirst) => {
    const key = `${pre}${ownFirst ? `${node.replaceAll('-', '--')}-` : ''}${rest}`;
    return nodeKeyFilter(node)(Buffer.from(key)) === keyConcernsNode(key, node);
  }), { numRuns: 20_000 });
  // bytes that are not UTF-8 in a name: the string form has U+FFFD for them, the answer is the same
  for (const bad of [[0xff], [0xc3], [0xe2, 0x82], [0x80, 0x2d]]) {
    const key = Buffer.concat([Buffer.from('/calico/resources/v3/projectcalico.org/workloadendpoints/ns/node--1'), Buffer.from(bad), Buffer.from('-k8s-p-eth0')]);
    t.equal(nodeKeyFilter('node-1')(key), keyConcernsNode(key.toString(), 'node-1'), `bytes ${bad.join(',')}`);
  }
});

/** The part of a full model that concerns one node, as the scoped datastore should hold it. */
function scopedView(m: Model, node: string): unknown {
  const j = m.toJSON();
  const keep = (kind: string, pred: (r: { spec: { node?: string } }) => boolean): void => {
    const o = j[kind] as Record<string, { spec: { node?: string } }>;
    for (const [id, r] of Object.entries(o)) if (!pred(r)) delete o[id];
  };
  keep('WorkloadEndpoint', (r) => r.spec.node === node);
  keep('BlockAffinity', (r) => r.spec.node === node);
  keep('IPAMBlock', () => false);
  return j;
}

t.test('etcd datastore scoped to one node: list and watch', async (t) => {
  if (!requires(t as unknown as Parameters<typeof requires>[0], { commands: ['etcd'] })) return;
  const etcd = await startEtcd(24371, 24372);
  t.teardown(() => etcd.stop());
  const c = etcd.client;
  const all = [ME, ...OTHERS];
  await putSmallCluster(c, all, 5);
  // Another node's broken record: never decoded, so never reported.
  await c.put(wepKey('scope-node-2', 'ns-0', 'broken')).value('{not json');
  // A name not in Calico's form, on this node: read, kept.
  const odd = JSON.parse(wepValue(ME, 'ns-0', 'x', '10.64.0.99')) as { metadata: { name: string } };
  odd.metadata.name = 'myvm';
  await c.put('/calico/resources/v3/projectcalico.org/workloadendpoints/ns-0/myvm').value(JSON.stringify(odd));

  const full = new EtcdDatastore({ endpoints: [etcd.endpoint], backoffMinMs: 50, backoffMaxMs: 500 });
  const ds = new EtcdDatastore({ endpoints: [etcd.endpoint], backoffMinMs: 50, backoffMaxMs: 500, nodeName: ME, pageSize: 3 });
  t.teardown(() => full.close());
  t.teardown(() => ds.close());
  const issues: Issue[] = [];
  const fullIssues: Issue[] = [];
  const changes: ChangeEvent[] = [];
  ds.on('invalid', (i) => issues.push(i));
  full.on('invalid', (i) => fullIssues.push(i));
  ds.on('change', (e) => changes.push(e));
  full.start();
  ds.start();
  await Promise.race([Promise.all([ds.synced(), full.synced()]), until(() => false, 'first sync', 30_000)]);

  await t.test('the list holds exactly this node\'s share', async (t) => {
    t.equal(ds.model.workloadEndpoints(ME).length, 6, 'five pods and the odd name');
    t.equal(ds.model.list('WorkloadEndpoint').length, 6, 'no other node\'s endpoint');
    t.equal(ds.model.list('BlockAffinity').length, 1);
    t.equal(ds.model.list('IPAMBlock').length, 0, 'no IPAM block');
    t.equal(ds.model.nodes().length, all.length, 'every Node (they are BGP peers)');
    t.same(ds.model.toJSON(), scopedView(full.model, ME), 'equal to the full read, filtered');
    t.ok(fullIssues.some((i) => i.source === wepKey('scope-node-2', 'ns-0', 'broken')), 'the unscoped read does report the broken record');
    t.same(issues, [], 'the scoped read never decodes it');
  });

  await t.test('the watch: other nodes\' changes are dropped, this node\'s applied', async (t) => {
    changes.length = 0;
    await c.put(wepKey('scope-node-10', 'ns-0', 'new')).value(wepValue('scope-node-10', 'ns-0', 'new', '10.64.2.50'));
    await c.put(wepKey('scope-node-2', 'ns-0', 'broken2')).value('{still not json');
    await c.put(affinityKey('scope-node-2', 40)).value(affinityValue());
    await c.put(blockKey(0)).value(fullBlock(0, ME, 100));
    await c.delete().key(wepKey('scope-node-1-b', 'ns-0', 'pod-0'));
    // then one of ours: the watch is ordered, so once it arrives everything before it was seen
    await c.put(wepKey(ME, 'ns-1', 'late')).value(wepValue(ME, 'ns-1', 'late', '10.64.0.60'));
    await until(() => changes.some((e) => e.id === `ns-1/${wepName(ME, 'late')}`), 'own change', 20_000);
    await c.delete().key(wepKey(ME, 'ns-0', 'pod-0'));
    await until(() => changes.some((e) => e.type === 'deleted'), 'own delete', 20_000);
    t.same(changes.map((e) => `${e.type} ${e.kind} ${e.id}`), [
      `added WorkloadEndpoint ns-1/${wepName(ME, 'late')}`,
      `deleted WorkloadEndpoint ns-0/${wepName(ME, 'pod-0')}`,
    ], 'only this node\'s changes, in order');
    t.same(issues, [], 'nothing of other nodes decoded');
    t.equal(ds.model.get('WorkloadEndpoint', `ns-0/${wepName('scope-node-10', 'new')}`), undefined, 'another node\'s new endpoint is not in the model');
    t.ok(ds.model.get('WorkloadEndpoint', `ns-0/${wepName('scope-node-1-b', 'pod-0')}`) === undefined && ds.model.list('WorkloadEndpoint').length === 6,
      'the model holds this node\'s endpoints only: five pods and the odd name, less pod-0, plus late');
    // another node's events, dropped, still move the revision the model reflects (and a resumed watch starts from)
    const before = BigInt(ds.status.revision ?? 0);
    const put = await c.put(wepKey('scope-node-2', 'ns-1', 'last')).value(wepValue('scope-node-2', 'ns-1', 'last', '10.64.1.90'));
    const rev = BigInt(put.header.revision);
    t.ok(rev > before);
    await until(() => BigInt(ds.status.revision ?? 0) >= rev, 'the revision of another node\'s put', 20_000);
    t.equal(ds.status.revision, rev.toString(), 'status.revision is that of the last event, dropped or not');
    t.same(changes.length, 2, 'and no change event for it');
    await until(() => BigInt(full.status.revision ?? 0) >= BigInt(ds.status.revision ?? 0), 'the full read caught up', 20_000);
    t.same(ds.model.toJSON(), scopedView(full.model, ME), 'still equal to the full read, filtered');
  });

  await t.test('a re-list (SIGHUP, or after compaction) keeps the scope', async (t) => {
    await c.put(wepKey('scope-node-2', 'ns-0', 'more')).value(wepValue('scope-node-2', 'ns-0', 'more', '10.64.1.77'));
    await ds.reload();
    await until(() => BigInt(full.status.revision ?? 0) >= BigInt(ds.status.revision ?? 0), 'the full read caught up', 20_000);
    t.equal(ds.status.state, 'synced');
    t.same(ds.model.toJSON(), scopedView(full.model, ME));
    t.same(issues, []);
  });
});
