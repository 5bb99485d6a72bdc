// Live migration: the LiveMigration resource in both datastores, the roles Felix gives endpoints
// (felix/calc/live_migration_calculator.go), its per-endpoint state machine (felix/dataplane/linux/live_migration.go)
// and what a node routes and announces in each state (endpoint_mgr.go calculateRoutes; confd bgp_processor.go
// export/import filters). src/controller/migration.ts cites the rules.
import t from 'tap';
import fc from 'fast-check';
import { decodeEtcd, etcdValueOf, formatIssue, loadResourcesText, validateResource, type Model, type Resource } from '../../config/index.js';
import {
  BIRD_INT_MAX, MigrationTracker, NodeController, deriveOriginations, migrationRoles, type MigrationState,
} from '../../src/controller/index.js';
import { resourceYaml as y } from '../helpers/model.js';

function load(text: string): Model {
  const r = loadResourcesText(text, 'test.yaml');
  // Errors and warnings alike: what Calico's own clients write must load without a word.
  if (r.issues.length > 0) throw new Error(r.issues.map(formatIssue).join('\n'));
  return r.model;
}

// As networking-calico writes them (endpoints.py endpoint_spec, live_migration_spec): the WEP name is
// <host>-openstack-<device_id>-<port_id>, the LiveMigration is named after the destination WEP.
const VM = 'vm-1';
const PORT = 'port-1';
const vmWep = (host: string, ifname: string, extra = ''): string => y('WorkloadEndpoint', `${host}-openstack-${VM}-${PORT}`,
  `{ orchestrator: openstack, workload: ${VM}, node: ${host}, endpoint: ${PORT}, interfaceName: ${ifname}, mac: "fa:16:3e:00:00:01", ipNetworks: ["10.70.0.5/32"]${extra} }`,
  ', namespace: openstack');
const ref = (host: string): string => `{ hostname: ${host}, orchestratorID: openstack, workloadID: openstack/${VM}, endpointID: ${PORT} }`;
const lm = (from: string, to: string): string => y('LiveMigration', `${to}-openstack-${VM}-${PORT}`,
  `{ source: { workloadEndpoint: ${ref(from)} }, target: { workloadEndpoint: ${ref(to)} } }`, ', namespace: openstack');

const BASE = y('BGPConfiguration', 'default', '{ asNumber: 64512 }')
  + y('IPPool', 'vms', '{ cidr: 10.70.0.0/16 }')
  + y('Node', 'h1', '{ bgp: { ipv4Address: 10.0.0.1/24 } }')
  + y('Node', 'h2', '{ bgp: { ipv4Address: 10.0.0.2/24 } }');

const NORMAL_LP = BIRD_INT_MAX - 1024;
const ELEVATED_LP = BIRD_INT_MAX - 512;

t.test('config: LiveMigration and FelixConfiguration in a file and in etcd give equal resources', async (t) => {
  const m = load(BASE + lm('h1', 'h2') + y('FelixConfiguration', 'default', '{ ipv4ElevatedRoutePriority: 256, liveMigrationRouteConvergenceTime: 45s, bpfEnabled: false, logSeverityScreen: Info }'));
  const fromFile = m.liveMigrations();
  t.equal(fromFile.length, 1);
  t.same(fromFile[0]!.spec.target?.workloadEndpoint, { hostname: 'h2', orchestratorID: 'openstack', workloadID: `openstack/${VM}`, endpointID: PORT });
  t.same(m.felixConfiguration('h1'), { ipv4ElevatedRoutePriority: 256, liveMigrationRouteConvergenceTime: 45000 }, 'only the live-migration fields, Felix\'s others pass without a warning');

  // etcd: the key networking-calico's datamodel_v3.put writes.
  const key = `/calico/resources/v3/projectcalico.org/livemigrations/openstack/h2-openstack-${VM}-${PORT}`;
  const value = etcdValueOf({ kind: 'LiveMigration', metadata: { name: `h2-openstack-${VM}-${PORT}`, namespace: 'openstack', uid: 'u-1', creationTimestamp: '2026-01-01T00:00:00Z' }, spec: { source: { workloadEndpoint: { hostname: 'h1', orchestratorID: 'openstack', workloadID: `openstack/${VM}`, endpointID: PORT } }, target: { workloadEndpoint: { hostname: 'h2', orchestratorID: 'openstack', workloadID: `openstack/${VM}`, endpointID: PORT } } } });
  const d = decodeEtcd(key, value)!;
  t.same(d.issues, [], 'no warning');
  t.equal(d.kind, 'LiveMigration');
  t.equal(d.id, `openstack/h2-openstack-${VM}-${PORT}`);
  t.same(d.resource, fromFile[0]);
  const fc1 = decodeEtcd('/calico/resources/v3/projectcalico.org/felixconfigurations/node.h1', etcdValueOf({ kind: 'FelixConfiguration', metadata: { name: 'node.h1' }, spec: { liveMigrationRouteConvergenceTime: '5s', reportingInterval: '0s' } }))!;
  t.same(fc1.issues, []);
  t.same((fc1.resource as Resource & { spec: object }).spec, { liveMigrationRouteConvergenceTime: 5000 });

  // KubeVirt shape: workload source, selector target.
  const kv = validateResource({ apiVersion: 'projectcalico.org/v3', kind: 'LiveMigration', metadata: { name: 'm', namespace: 'vms' }, spec: { source: { workload: { orchestratorID: 'k8s', workloadID: 'vms/virt-launcher-a' } }, target: { selector: "kubevirt.io/migrationJobUID == 'x'" } } });
  t.ok(kv.resource, 'workload + selector accepted');
  // Early in a migration the source may be missing.
  t.ok(validateResource({ apiVersion: 'projectcalico.org/v3', kind: 'LiveMigration', metadata: { name: 'm', namespace: 'vms' }, spec: { target: { selector: 'a == "b"' } } }).resource);
});

t.test('config: bad LiveMigrations are specific errors, not crashes', async (t) => {
  const bad = (spec: unknown): string[] => {
    const v = validateResource({ apiVersion: 'projectcalico.org/v3', kind: 'LiveMigration', metadata: { name: 'm', namespace: 'openstack' }, spec });
    t.notOk(v.resource);
    return v.checker.problems.filter((p) => p.severity === 'error').map((p) => `${p.path.join('.')}: ${p.reason}`);
  };
  t.match(bad({ target: { selector: 'a == "b"', workloadEndpoint: { workloadID: 'x/y' } } }), [/target: exactly one of selector, workloadEndpoint/]);
  t.match(bad({ source: { workloadEndpoint: { hostname: 'h1' } } }), [/workloadID: is required/]);
  t.match(bad({ target: { selector: 'a ==' } }), [/selector/]);
  t.match(bad({ source: 'h1' }), [/source: expected a mapping/]);
  const noNs = validateResource({ apiVersion: 'projectcalico.org/v3', kind: 'LiveMigration', metadata: { name: 'm' }, spec: {} });
  t.notOk(noNs.resource, 'namespaced: a namespace is required');
  const d = decodeEtcd('/calico/resources/v3/projectcalico.org/livemigrations/only-name', '{}')!;
  t.match(d.issues[0]?.reason, /livemigrations\/<namespace>\/<name>/, 'a key without a namespace names the layout');
});

t.test('roles: as Felix correlates LiveMigrations with local endpoints', async (t) => {
  const m = load(BASE + vmWep('h1', 'tap-a') + vmWep('h2', 'tap-b') + lm('h1', 'h2'));
  t.same([...migrationRoles(m, 'h1')], [[`openstack/h1-openstack-${VM}-${PORT}`, 'source']]);
  t.same([...migrationRoles(m, 'h2')], [[`openstack/h2-openstack-${VM}-${PORT}`, 'target']]);

  // OpenStack references carry the host: the same VM on another host is not named.
  const other = load(BASE + vmWep('h1', 'tap-a') + lm('h3', 'h2'));
  t.same([...migrationRoles(other, 'h1')], [], 'source on h3 does not name h1\'s endpoint');

  // Kubernetes: the hostname does not count; a workload-level source names every endpoint of the pod; a selector
  // target matches labels in the migration's namespace.
  const pod = (node: string, name: string, labels = ''): string => y('WorkloadEndpoint', `${node}-k8s-${name}-eth0`,
    `{ orchestrator: k8s, node: ${node}, pod: ${name}, endpoint: eth0, interfaceName: cali${name.slice(-4)}, ipNetworks: ["10.70.1.5/32"] }`, `, namespace: vms${labels}`);
  const kv = load(BASE + pod('h1', 'launcher-a') + pod('h2', 'launcher-b', ', labels: { kubevirt.io/migrationJobUID: j1 }')
    + y('LiveMigration', 'mig', `{ source: { workload: { hostname: elsewhere, orchestratorID: k8s, workloadID: vms/launcher-a } }, target: { selector: "kubevirt.io/migrationJobUID == 'j1'" } }`, ', namespace: vms'));
  t.same([...migrationRoles(kv, 'h1')], [['vms/h1-k8s-launcher-a-eth0', 'source']]);
  t.same([...migrationRoles(kv, 'h2')], [['vms/h2-k8s-launcher-b-eth0', 'target']]);
  const otherNs = load(BASE + pod('h2', 'launcher-b', ', labels: { kubevirt.io/migrationJobUID: j1 }')
    + y('LiveMigration', 'mig', `{ target: { selector: "kubevirt.io/migrationJobUID == 'j1'" } }`, ', namespace: elsewhere'));
  t.same([...migrationRoles(otherNs, 'h2')], [['vms/h2-k8s-launcher-b-eth0', 'target']], 'a selector is not limited to the migration\'s namespace (Felix\'s computed selector is not)');
  const otherJob = load(BASE + pod('h2', 'launcher-b', ', labels: { kubevirt.io/migrationJobUID: j2 }')
    + y('LiveMigration', 'mig', `{ target: { selector: "kubevirt.io/migrationJobUID == 'j1'" } }`, ', namespace: vms'));
  t.same([...migrationRoles(otherJob, 'h2')], [], 'another job\'s pod is not a target');

  // Target wins when one endpoint is named both ways (transient overlap of two migrations).
  const both = load(BASE + vmWep('h1', 'tap-a') + lm('h1', 'h2') + lm('h2', 'h1').replace(`h1-openstack-${VM}`, `zz-h1-openstack-${VM}`));
  t.equal(migrationRoles(both, 'h1').get(`openstack/h1-openstack-${VM}-${PORT}`), 'target');
});

t.test('state machine: Felix\'s table', async (t) => {
  let now = 1000;
  const id = 'ns/w';
  const present = new Set([id]);
  const mk = (): MigrationTracker => new MigrationTracker(30_000, () => now);
  const role = (tr: MigrationTracker, r?: 'source' | 'target'): boolean => tr.setRoles(new Map(r ? [[id, r]] : []), present);

  const a = mk();
  t.notOk(role(a, 'source'), 'Base + source: nothing');
  t.equal(a.state(id), undefined);
  t.ok(role(a, 'target'), 'role target');
  t.equal(a.state(id), 'target');
  t.same([...a.watching(new Map([[id, 'tap-b']]))], [[id, 'tap-b']], 'Target: the interface is watched');
  t.ok(a.announced(id));
  t.equal(a.state(id), 'live', 'GARP/RARP: Live');
  t.same([...a.watching(new Map([[id, 'tap-b']]))], [], 'no longer watched');
  t.notOk(a.announced(id), 'a second GARP changes nothing');
  t.ok(role(a), 'LiveMigration gone');
  t.equal(a.state(id), 'timeWait');
  t.equal(a.nextDeadline(), 31_000);
  now = 30_999;
  t.notOk(a.tick(), 'not yet');
  now = 31_000;
  t.ok(a.tick());
  t.equal(a.state(id), undefined, 'Base after the convergence time');
  t.equal(a.nextDeadline(), undefined);

  const b = mk();
  role(b, 'target');
  t.ok(role(b), 'Target + no role (GARP missed)');
  t.equal(b.state(id), 'timeWait');

  const c = mk();
  role(c, 'target');
  t.ok(role(c, 'source'), 'Target + source');
  t.equal(c.state(id), undefined, 'Base');

  const d = mk();
  role(d, 'target');
  d.announced(id);
  t.ok(d.setRoles(new Map([[id, 'target']]), new Set()), 'endpoint deleted');
  t.equal(d.state(id), undefined);
  t.same([...d.states], []);

  const e = mk();
  t.notOk(e.announced(id), 'GARP in Base: nothing');
  t.notOk(e.tick());
});

t.test('state machine: invariants over random input sequences', async (t) => {
  type In = { k: 'role'; r: 'source' | 'target' | undefined } | { k: 'garp' } | { k: 'time'; ms: number } | { k: 'delete' };
  const input: fc.Arbitrary<In> = fc.oneof(
    fc.record({ k: fc.constant('role' as const), r: fc.constantFrom('source' as const, 'target' as const, undefined) }),
    fc.record({ k: fc.constant('garp' as const) }),
    fc.record({ k: fc.constant('time' as const), ms: fc.integer({ min: 0, max: 40_000 }) }),
    fc.record({ k: fc.constant('delete' as const) }),
  );
  fc.assert(fc.property(fc.array(input, { maxLength: 40 }), (ins) => {
    let now = 0;
    const id = 'ns/w';
    const tr = new MigrationTracker(30_000, () => now);
    let role: 'source' | 'target' | undefined;
    let exists = true;
    let lastGarpInTarget = false;
    for (const i of ins) {
      const before = tr.state(id);
      if (i.k === 'role') {
        role = i.r;
        exists = true;
        tr.setRoles(new Map(role ? [[id, role]] : []), new Set([id]));
      } else if (i.k === 'garp') {
        lastGarpInTarget = before === 'target';
        tr.announced(id);
      } else if (i.k === 'time') {
        now += i.ms;
        tr.tick();
      } else {
        exists = false;
        tr.setRoles(new Map(), new Set());
      }
      const s = tr.state(id);
      // Never a state for an endpoint that is gone; a source endpoint is always in Base.
      if (!exists && s !== undefined) return false;
      if (role === 'source' && s !== undefined && i.k === 'role') return false;
      // Live only ever follows Target through a GARP.
      if (s === 'live' && before !== 'live' && !(i.k === 'garp' && lastGarpInTarget)) return false;
      // With the role still target, Target and Live never fall back to Base by time alone.
      if (i.k === 'time' && (before === 'target' || before === 'live') && s !== before) return false;
      // TimeWait never outlives its deadline by a tick.
      const dl = tr.nextDeadline();
      if (s === 'timeWait' && (dl === undefined || dl <= now)) return false;
    }
    return true;
  }), { numRuns: 300, seed: 13 });
  t.pass('300 sequences');
});

t.test('originations: no route in Target, elevated route and LOCAL_PREF in Live and TimeWait', async (t) => {
  const id = `openstack/h2-openstack-${VM}-${PORT}`;
  const m = load(BASE + vmWep('h2', 'tap-b'));
  const at = (s?: MigrationState): ReturnType<typeof deriveOriginations> => deriveOriginations(m, 'h2', s ? new Map([[id, s]]) : undefined);

  const normal = at();
  t.same(normal.deviceRoutes.map((r) => [r.prefix, r.elevated]), [['10.70.0.5/32', undefined]]);
  t.same(normal.announce.map((o) => [o.prefix, o.localPref]), [['10.70.0.5/32', NORMAL_LP]]);

  const target = at('target');
  t.same(target.deviceRoutes, [], 'Target: Felix suppresses the route');
  t.same(target.announce, [], 'so nothing is announced');

  for (const s of ['live', 'timeWait'] as const) {
    const o = at(s);
    t.same(o.deviceRoutes.map((r) => [r.prefix, r.elevated]), [['10.70.0.5/32', true]], `${s}: elevated route`);
    t.same(o.announce.map((a) => [a.prefix, a.localPref, a.sources]), [['10.70.0.5/32', ELEVATED_LP, [`WorkloadEndpoint/${id} (live migration)`]]]);
  }

  // Inside the node's own block the /32 is normally aggregated away; an elevated one escapes (calico_aggr).
  const inBlock = load(BASE + y('BlockAffinity', 'h2-10-70-0-0-26', '{ node: h2, cidr: "10.70.0.0/26", state: confirmed, deleted: "false" }') + vmWep('h2', 'tap-b'));
  t.same(deriveOriginations(inBlock, 'h2').announce.map((o) => o.prefix), ['10.70.0.0/26']);
  t.same(deriveOriginations(inBlock, 'h2', new Map([[id, 'live']])).announce.map((o) => [o.prefix, o.localPref]), [['10.70.0.0/26', NORMAL_LP], ['10.70.0.5/32', ELEVATED_LP]]);

  // FelixConfiguration's elevated priority and BGPConfiguration's normal one set the LOCAL_PREFs.
  const tuned = load(BASE.replace('{ asNumber: 64512 }', '{ asNumber: 64512, ipv4NormalRoutePriority: 2000 }') + y('FelixConfiguration', 'node.h2', '{ ipv4ElevatedRoutePriority: 100 }') + vmWep('h2', 'tap-b'));
  t.same(deriveOriginations(tuned, 'h2').announce.map((o) => o.localPref), [BIRD_INT_MAX - 2000]);
  t.same(deriveOriginations(tuned, 'h2', new Map([[id, 'live']])).announce.map((o) => o.localPref), [BIRD_INT_MAX - 100]);
  // A floating IP of a migrating VM moves with it.
  const fip = load(BASE + vmWep('h2', 'tap-b', ', ipNATs: [{ internalIP: 10.70.0.5, externalIP: 10.70.9.9 }]'));
  t.same(deriveOriginations(fip, 'h2', new Map([[id, 'target']])).announce, []);
  t.same(deriveOriginations(fip, 'h2', new Map([[id, 'live']])).announce.map((o) => [o.prefix, o.localPref]), [['10.70.0.5/32', ELEVATED_LP], ['10.70.9.9/32', ELEVATED_LP]]);
});

t.test('a whole migration on two controllers: the /32 moves once and ends announced by one host', async (t) => {
  let now = 0;
  const h1 = new NodeController('h1', () => now);
  const h2 = new NodeController('h2', () => now);
  const tgtId = `openstack/h2-openstack-${VM}-${PORT}`;
  const step = (text: string): void => {
    const m = load(text);
    h1.update(m);
    h2.update(m);
  };
  const ann = (c: NodeController): [string, number][] => c.state.announce.filter((o) => o.prefix === '10.70.0.5/32').map((o) => [o.prefix, o.localPref]);
  const dev = (c: NodeController): string[] => c.state.deviceRoutes.map((r) => `${r.interface}${r.elevated ? ' elevated' : ''}`);
  // Which host the rest of the cluster picks: the highest LOCAL_PREF (RFC 4271 §9.1.2.2 a); ties never arise here.
  const winner = (): string | undefined => {
    const c = [['h1', ann(h1)[0]?.[1]], ['h2', ann(h2)[0]?.[1]]].filter(([, lp]) => lp !== undefined) as [string, number][];
    c.sort((a, b) => b[1] - a[1]);
    t.not(c[0]?.[1], c[1]?.[1], 'never two equal claims');
    return c[0]?.[0];
  };

  step(BASE + vmWep('h1', 'tap-a'));
  t.same(ann(h1), [['10.70.0.5/32', NORMAL_LP]]);
  t.same(ann(h2), []);
  t.equal(winner(), 'h1');

  // networking-calico: LiveMigration first, then the destination endpoint (mech_calico.py syncs LMs first).
  step(BASE + vmWep('h1', 'tap-a') + lm('h1', 'h2'));
  step(BASE + vmWep('h1', 'tap-a') + lm('h1', 'h2') + vmWep('h2', 'tap-b'));
  t.equal(h2.migration.state(tgtId), 'target');
  t.same(dev(h2), [], 'target: no route yet');
  t.same(ann(h2), [], 'target: nothing announced');
  t.same([...h2.migrationWatches()], [[tgtId, 'tap-b']]);
  t.equal(winner(), 'h1', 'the VM still runs on h1');

  // The VM resumes on h2 and sends its RARP: the /32 moves.
  const d = h2.migrationAnnounced(tgtId);
  t.same(d.announce.added.map((o) => o.localPref), [ELEVATED_LP]);
  t.same(dev(h2), ['tap-b elevated']);
  t.equal(winner(), 'h2', 'moved at the announcement');
  t.same(ann(h1), [['10.70.0.5/32', NORMAL_LP]], 'h1 still has its endpoint (it loses on LOCAL_PREF)');

  // Completion: the LiveMigration and the source endpoint are deleted.
  step(BASE + vmWep('h2', 'tap-b'));
  t.same(ann(h1), [], 'h1 announces nothing');
  t.same(dev(h1), []);
  t.equal(h2.migration.state(tgtId), 'timeWait');
  t.same(ann(h2), [['10.70.0.5/32', ELEVATED_LP]], 'still elevated while routes converge');
  now += 30_000;
  const back = h2.migrationTick();
  t.same(back.announce.changed.map((c) => c.fields), [['localPref', 'sources']]);
  t.same(ann(h2), [['10.70.0.5/32', NORMAL_LP]], 'normal priority again');
  t.same(dev(h2), ['tap-b']);
  t.equal(winner(), 'h2');

  // The GARP-missed path: the target goes straight to TimeWait when the migration completes.
  const h3 = new NodeController('h2', () => now);
  h3.update(load(BASE + vmWep('h1', 'tap-a') + lm('h1', 'h2') + vmWep('h2', 'tap-b')));
  t.same(h3.state.announce, []);
  h3.update(load(BASE + vmWep('h2', 'tap-b')));
  t.same(h3.state.announce.map((o) => o.localPref), [ELEVATED_LP]);
});
