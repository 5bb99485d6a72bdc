// The etcd backend against a real etcd holding keys and values as Calico
// writes them: snapshot, ordered change stream, bad records, etcd killed and
// restarted, a compacted revision while the client was cut off, and the file
// backend producing the same Model for the same resources.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { requires } from '../helpers/env.js';
import { makeTls, startEtcd, startProxy, until } from '../helpers/etcd.js';
import {
  EtcdDatastore, Model, decodeEtcd, loadResourcesText, openDatastore, parseDaemonConfig, type ChangeEvent, type DatastoreStatus, type Issue,
} from '../../config/index.js';

const DATA = join(`${import.meta.dirname}/..`, 'data', 'config');
// Ports of this file, 24311-24315 (each test file has its own; 2379/2380 stay free for a system etcd).
const CLIENT_PORT = 24311;
const PEER_PORT = 24312;
const PROXY_PORT = 24313;

const fixture = JSON.parse(readFileSync(join(DATA, 'calico-etcd.json'), 'utf8')) as { key: string; value: unknown }[];

async function load(client: Etcd3): Promise<void> {
  for (const { key, value } of fixture) await client.put(key).value(JSON.stringify(value));
}

/** The model etcd holds right now, decoded independently of the datastore. */
async function etcdModel(client: Etcd3): Promise<Model> {
  const m = new Model();
  const kvs = await client.getAll().prefix('/calico/').strings();
  for (const [key, value] of Object.entries(kvs)) {
    const d = decodeEtcd(key, value);
    if (d?.resource) m.set(d.resource);
  }
  return m;
}

const WEP_POD = '/calico/resources/v3/projectcalico.org/workloadendpoints/default/host--a-k8s-nginx--7d9f8-eth0';
const PEER = '/calico/resources/v3/projectcalico.org/bgppeers/tor-r1';

t.test('etcd datastore', async (t) => {
  // (env.ts's gate is typed loosely against tap's overloaded skip)
  if (!requires(t as unknown as Parameters<typeof requires>[0], { commands: ['etcd'] })) return;
  const etcd = await startEtcd(CLIENT_PORT, PEER_PORT);
  t.teardown(() => etcd.stop());
  await load(etcd.client);
  // one record Calico would never accept: reported, skipped
  await etcd.client.put('/calico/resources/v3/projectcalico.org/bgppeers/broken').value(JSON.stringify({
    kind: 'BGPPeer', apiVersion: 'projectcalico.org/v3', metadata: { name: 'broken' }, spec: { peerIP: '192.0.2.300', asNumber: 65001 },
  }));

  const proxy = await startProxy(PROXY_PORT, CLIENT_PORT);
  t.teardown(() => proxy.close());
  // pages of 4 keys: the initial list takes several pages at one revision
  const ds = new EtcdDatastore({ endpoints: [proxy.endpoint], backoffMinMs: 50, backoffMaxMs: 500, dialTimeoutMs: 1000, requestTimeoutMs: 2000, pageSize: 4 });
  t.teardown(() => ds.close());
  const changes: ChangeEvent[] = [];
  const issues: Issue[] = [];
  const statuses: DatastoreStatus[] = [];
  ds.on('change', (e) => changes.push(e));
  ds.on('invalid', (i) => issues.push(i));
  ds.on('status', (s) => statuses.push(s));
  ds.start();
  const snap = await ds.synced();

  await t.test('the snapshot equals the same resources read from YAML', async (t) => {
    const file = loadResourcesText(readFileSync(join(DATA, 'resources.yaml'), 'utf8'), 'resources.yaml');
    t.same(file.issues, [], 'YAML fixture is valid, no warnings either');
    t.same(issues.filter((i) => !i.source.endsWith('/bgppeers/broken')), [], 'Calico-written values raise no issues');
    t.same(snap.toJSON(), file.model.toJSON(), 'file and etcd give the same Model');
    t.equal(snap.size, 17, 'every Calico resource and IPAM record, and nothing else (profiles, handles, felix status)');
    t.equal(snap.blockAffinities('host-a').map((a) => a.spec.state).join(','), 'confirmed,pendingDeletion,pending,confirmed');
    t.equal(snap.get('Node', 'host-b')?.spec.bgp?.asNumber, 65546, 'asdot "1.10" read as 65546');
    t.equal(snap.get('BGPPeer', 'tor-r1')?.spec.maxRestartTime, 90_000, '"1m30s" read as 90 s');
    t.equal(snap.workloadEndpoints('host-b')[0]?.spec.interfaceName, 'tap2b4c6d8e-0f', 'OpenStack VM endpoint');
    t.ok(snap.datastoreReady(), 'ClusterInformation.datastoreReady');
    t.equal(ds.status.state, 'synced');
  });

  await t.test('a bad record is reported with key and field, and skipped', async (t) => {
    const bad = issues.find((i) => i.source.endsWith('/bgppeers/broken'));
    t.ok(bad, 'reported');
    t.equal(bad?.field, 'spec.peerIP');
    t.match(bad?.reason, /IP address/);
    t.equal(snap.get('BGPPeer', 'broken'), undefined, 'not in the model');
  });

  await t.test('updates and deletes arrive in order, typed, with keys', async (t) => {
    changes.length = 0;
    const peer = fixture.find((f) => f.key === PEER)?.value as { spec: Record<string, unknown> };
    await etcd.client.put(PEER).value(JSON.stringify({ ...peer, spec: { ...peer.spec, asNumber: 65002 } }));
    await etcd.client.delete().key(WEP_POD);
    await etcd.client.put('/calico/ipam/v2/host/host-a/ipv4/block/10.65.0.64-26').value('{"state":"confirmed","deleted":false}');
    await etcd.client.put('/calico/resources/v3/projectcalico.org/ippools/extra').value(JSON.stringify({
      kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name: 'extra' }, spec: { cidr: '10.66.0.0/16', disableBGPExport: true },
    }));
    await until(() => changes.length >= 4, '4 changes');
    t.same(changes.map((c) => [c.type, c.kind, c.id]), [
      ['updated', 'BGPPeer', 'tor-r1'],
      ['deleted', 'WorkloadEndpoint', 'default/host--a-k8s-nginx--7d9f8-eth0'],
      ['updated', 'BlockAffinity', 'host-a/10.65.0.64/26'],
      ['added', 'IPPool', 'extra'],
    ]);
    t.equal(changes[0]?.key, PEER);
    t.equal((changes[0]?.resource as { spec: { asNumber: number } }).spec.asNumber, 65002);
    t.equal((changes[0]?.previous as { spec: { asNumber: number } }).spec.asNumber, 65001);
    const revs = changes.map((c) => BigInt(c.revision ?? '0'));
    t.ok(revs.every((r, i) => i === 0 || r > (revs[i - 1] as bigint)), 'revisions increase');
    t.same(ds.model.toJSON(), (await etcdModel(etcd.client)).toJSON(), 'model equals etcd');
  });

  await t.test('an invalid update keeps the last good version', async (t) => {
    changes.length = 0;
    issues.length = 0;
    await etcd.client.put(PEER).value('{"kind":"BGPPeer","apiVersion":"projectcalico.org/v3","metadata":{"name":"tor-r1"},"spec":{"peerIP":"192.0.2.1","asNumber":"sixty"}}');
    await until(() => issues.length > 0, 'the issue');
    t.equal(issues[0]?.source, PEER);
    t.equal(issues[0]?.field, 'spec.asNumber');
    t.equal(ds.model.get('BGPPeer', 'tor-r1')?.spec.asNumber, 65002, 'still the last good one');
    t.equal(changes.length, 0, 'no change event');
    // put a good one back: later tests compare with etcd's (valid) contents
    const peer = fixture.find((f) => f.key === PEER)?.value as { spec: Record<string, unknown> };
    await etcd.client.put(PEER).value(JSON.stringify({ ...peer, spec: { ...peer.spec, asNumber: 65002 } }));
  });

  await t.test('etcd killed and restarted on the same data: the stream resumes and ends as etcd is', async (t) => {
    await etcd.kill();
    await until(() => ds.status.state === 'disconnected', 'disconnected status');
    t.ok(ds.status.lastError, `last error kept: ${ds.status.lastError}`);
    t.equal(ds.model.get('BGPPeer', 'tor-r1')?.spec.asNumber, 65002, 'last known state stays in force');
    await etcd.start();
    await etcd.client.put('/calico/resources/v3/projectcalico.org/ippools/after-restart').value(JSON.stringify({
      kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name: 'after-restart' }, spec: { cidr: '10.67.0.0/16' },
    }));
    await etcd.client.delete().key('/calico/resources/v3/projectcalico.org/ippools/extra');
    const want = await etcdModel(etcd.client);
    await until(() => ds.model.equals(want), 'model to equal etcd after restart', 30_000);
    t.equal(ds.status.state, 'synced');
    t.ok(ds.model.get('IPPool', 'after-restart'));
  });

  await t.test('a compacted revision while cut off triggers a full resync', async (t) => {
    statuses.length = 0;
    proxy.cut();
    await until(() => ds.status.state === 'disconnected', 'disconnected status');
    // Meanwhile others write, delete and compact the history the client would need.
    await etcd.client.put(PEER).value(JSON.stringify(fixture.find((f) => f.key === PEER)?.value));
    await etcd.client.delete().key('/calico/resources/v3/projectcalico.org/ippools/after-restart');
    await etcd.client.delete().prefix('/calico/ipam/v2/host/host-a/');
    await etcd.client.put('/calico/resources/v3/projectcalico.org/nodes/host-c').value(JSON.stringify({
      kind: 'Node', apiVersion: 'projectcalico.org/v3', metadata: { name: 'host-c', labels: { rack: 'r1' } }, spec: { bgp: { ipv4Address: '192.0.2.12/24' } },
    }));
    const rev = (await etcd.client.get('x').exec()).header.revision;
    await etcd.client.kv.compact({ revision: rev, physical: true });
    proxy.resume();
    const want = await etcdModel(etcd.client);
    await until(() => ds.model.equals(want) && ds.status.state === 'synced', 'resync to etcd contents', 30_000);
    t.ok(statuses.some((s) => s.state === 'resyncing'), 'went through a full resync');
    t.match(statuses.map((s) => s.lastError ?? '').join('\n'), /watch from revision \d+ compacted .*resyncing/, 'the reason names the compacted revision');
    t.equal(ds.model.blockAffinities('host-a').length, 0, 'deleted affinities are gone');
    t.equal(ds.model.get('BGPPeer', 'tor-r1')?.spec.asNumber, 65001);
    t.ok(ds.model.get('Node', 'host-c'));
  });

  await t.test('reload() lists again and emits only the differences', async (t) => {
    changes.length = 0;
    await ds.reload();
    t.same(changes, [], 'nothing changed, nothing emitted');
    t.equal(ds.status.state, 'synced');
    await etcd.client.delete().key('/calico/resources/v3/projectcalico.org/nodes/host-c');
    await until(() => changes.length === 1, 'the delete');
    t.same(changes.map((c) => [c.type, c.kind, c.id]), [['deleted', 'Node', 'host-c']], 'the new watch works');
  });
});

t.test('etcd with TLS (client certificates) and username/password', async (t) => {
  if (!requires(t as unknown as Parameters<typeof requires>[0], { commands: ['etcd', 'openssl'] })) return;
  const dir = mkdtempSync(join(tmpdir(), 'skein-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tls = makeTls(dir);
  const etcd = await startEtcd(24314, 24315, { tls });
  t.teardown(() => etcd.stop());
  await load(etcd.client);
  // Turn on etcd authentication with a root user.
  await etcd.client.user('root').create('s3cret-root');
  await etcd.client.user('root').addRole('root');
  await etcd.client.auth.authEnable({});
  writeFileSync(join(dir, 'etcd-password'), 's3cret-root\n');

  const cfg = parseDaemonConfig(
    `nodeName: host-a\ndatastore:\n  type: etcd\n  etcd:\n    endpoints: ${etcd.endpoint}\n    tls: { ca: ${tls.ca}, cert: ${tls.clientCert}, key: ${tls.clientKey} }\n    username: root\n    passwordFile: ${join(dir, 'etcd-password')}\n    backoff: { min: 50ms, max: 500ms }\n`,
    'skein.yaml', {});
  const ds = openDatastore(cfg.datastore);
  t.teardown(() => ds.close());
  const model = await ds.synced();
  t.equal(model.size, 17, 'read everything over TLS with a password');
  t.equal(ds.status.state, 'synced');

  const wrong = new EtcdDatastore({ endpoints: [etcd.endpoint], tls: { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey }, username: 'root', password: 'nope', backoffMinMs: 50, backoffMaxMs: 200 }).start();
  t.teardown(() => wrong.close());
  await until(() => (wrong.status.lastError ?? '') !== '', 'an error status');
  t.equal(wrong.status.state, 'connecting', 'never synced');
  t.match(wrong.status.lastError, /auth|password|invalid/i, `says why: ${wrong.status.lastError}`);
  t.throws(() => new EtcdDatastore({ endpoints: [etcd.endpoint], tls: { ca: join(dir, 'missing.pem') } }), { name: 'DatastoreError', message: /cannot read the etcd CA file .*missing\.pem: ENOENT/ });
});
