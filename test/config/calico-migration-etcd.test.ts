// The LiveMigration resource through a real etcd, written where and as networking-calico writes it
// (datamodel_v3.put: /calico/resources/v3/projectcalico.org/livemigrations/<namespace>/<name>, the destination
// endpoint's name), read by skein's etcd datastore with no warning and followed by the node controller: the target
// endpoint is in Felix's Target state while the resource exists and goes to TimeWait when it is deleted.
import t from 'tap';
import { EtcdDatastore, etcdValueOf, type ChangeEvent, type Issue } from '../../config/index.js';
import { NodeController } from '../../src/controller/index.js';
import { requires } from '../helpers/env.js';
import { startEtcd, until } from '../helpers/etcd.js';

const R = '/calico/resources/v3/projectcalico.org';
const DEVICE = 'f00dcafe-0000-4000-8000-000000000001';
const PORT = '5c0ffee0-aa11-4b22-8c33-d44e55f66a77';
const esc = (s: string): string => s.replace(/-/g, '--');
const wepName = (host: string): string => `${esc(host)}-openstack-${esc(DEVICE)}-${esc(PORT)}`;
const ref = (host: string): object => ({ hostname: host, orchestratorID: 'openstack', workloadID: `openstack/${DEVICE}`, endpointID: PORT });
const wep = (host: string): string => etcdValueOf({
  kind: 'WorkloadEndpoint',
  metadata: { name: wepName(host), namespace: 'openstack', uid: `u-${host}`, creationTimestamp: '2026-12-05T05:00:00Z', labels: { 'projectcalico.org/namespace': 'openstack', 'projectcalico.org/orchestrator': 'openstack' } },
  spec: { orchestrator: 'openstack', workload: DEVICE, node: host, endpoint: PORT, interfaceName: host === 'host-a' ? 'tap5c0ffee0-aa' : 'tap5c0ffee0-bb', mac: 'fa:16:3e:12:34:56', ipNetworks: ['10.66.0.5/32'] },
});

t.test('LiveMigration in etcd: read without a warning, followed by the controller', async (t) => {
  if (!requires(t as unknown as Parameters<typeof requires>[0], { commands: ['etcd'] })) return;
  const base = 24600 + (process.pid % 200) * 2;
  const etcd = await startEtcd(base, base + 1);
  t.teardown(() => etcd.stop());
  const c = etcd.client;
  await c.put(`${R}/bgpconfigurations/default`).value(etcdValueOf({ kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512 } }));
  await c.put(`${R}/ippools/openstack`).value(etcdValueOf({ kind: 'IPPool', metadata: { name: 'openstack' }, spec: { cidr: '10.66.0.0/16', ipipMode: 'Never', vxlanMode: 'Never' } }));
  await c.put(`${R}/felixconfigurations/default`).value(etcdValueOf({ kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: { liveMigrationRouteConvergenceTime: '45s', bpfEnabled: false, reportingInterval: '0s' } }));
  for (const h of ['host-a', 'host-b']) await c.put(`${R}/workloadendpoints/openstack/${wepName(h)}`).value(wep(h));

  const ds = new EtcdDatastore({ endpoints: [etcd.endpoint], backoffMinMs: 50, backoffMaxMs: 500 });
  t.teardown(() => ds.close());
  const issues: Issue[] = [];
  const changes: ChangeEvent[] = [];
  ds.on('invalid', (i) => issues.push(i));
  ds.on('change', (e) => changes.push(e));
  ds.start();
  const snap = await ds.synced();
  const b = new NodeController('host-b');
  b.update(snap);
  t.same(b.state.announce.map((o) => o.prefix), ['10.66.0.5/32'], 'before the migration resource: an ordinary endpoint');

  const lmKey = `${R}/livemigrations/openstack/${wepName('host-b')}`;
  await c.put(lmKey).value(etcdValueOf({ kind: 'LiveMigration', metadata: { name: wepName('host-b'), namespace: 'openstack', uid: 'lm-1', creationTimestamp: '2026-12-05T05:01:00Z' }, spec: { source: { workloadEndpoint: ref('host-a') }, target: { workloadEndpoint: ref('host-b') } } }));
  await until(() => changes.some((e) => e.kind === 'LiveMigration'), 'the LiveMigration arrives');
  t.same(issues, [], 'nothing Calico writes raised a warning');
  const added = changes.find((e) => e.kind === 'LiveMigration')!;
  t.same([added.type, added.id, added.key], ['added', `openstack/${wepName('host-b')}`, lmKey]);
  b.applyChanges(changes.splice(0));
  t.equal(b.migration.state(`openstack/${wepName('host-b')}`), 'target', 'the destination endpoint is a migration target');
  t.same(b.state.announce, [], 'and is neither announced');
  t.same(b.state.deviceRoutes, [], 'nor routed');
  t.equal(b.migration.convergenceMs, 45_000, 'FelixConfiguration\'s convergence time');

  await c.delete().key(lmKey);
  await until(() => changes.some((e) => e.kind === 'LiveMigration' && e.type === 'deleted'), 'the deletion arrives');
  b.applyChanges(changes.splice(0));
  t.equal(b.migration.state(`openstack/${wepName('host-b')}`), 'timeWait', 'deleted without an announcement seen: TimeWait (Felix\'s missed-GARP path)');
  t.same(b.state.announce.map((o) => [o.prefix, o.localPref]), [['10.66.0.5/32', 2147483647 - 512]], 'announced at the elevated priority');
  t.same(issues, []);
});
