// Calico Enterprise's BFDConfiguration resource: the documented sample and
// defaults, from a file datastore's YAML and from an etcd key/value as Calico
// would store it, bad values reported by field, and the per-interface choice.
import t from 'tap';
import {
  BFD_DEFAULTS, bfdSettingsFor, decodeEtcd, interfaceMatches, loadResourcesText, validateResource,
} from '../../config/index.js';
import type { BFDConfiguration } from '../../config/index.js';

// The sample of Tigera's reference page, as an operator would apply it.
const SAMPLE = `apiVersion: projectcalico.org/v3
kind: BFDConfiguration
metadata:
  name: default
spec:
  nodeSelector: "all()"
  interfaces:
  - matchPattern: "*"
    minimumRecvInterval: 10ms
    minimumSendInterval: 100ms
    idleSendInterval: 1m
    multiplier: 5
`;

t.test('the documented sample loads from a file datastore', async (t) => {
  const { model, issues } = loadResourcesText(SAMPLE, 'resources.yaml');
  t.same(issues, []);
  const [r] = model.list('BFDConfiguration');
  t.ok(r, 'one BFDConfiguration');
  t.same(r!.spec.interfaces, [
    { matchPattern: '*', minimumRecvIntervalMs: 10, minimumSendIntervalMs: 100, idleSendIntervalMs: 60_000, multiplier: 5 },
  ]);
});

t.test('absent fields take the documented defaults; multiplier may be a string', async (t) => {
  const v = validateResource({
    apiVersion: 'projectcalico.org/v3', kind: 'BFDConfiguration', metadata: { name: 'x' },
    spec: { interfaces: [{ matchPattern: 'eth*' }, { matchPattern: 'ens3', multiplier: '3', minimumSendInterval: '50ms' }] },
  });
  t.ok(v.checker.ok);
  const spec = (v.resource as BFDConfiguration).spec;
  t.same(spec.interfaces[0], { matchPattern: 'eth*', ...BFD_DEFAULTS });
  t.equal(spec.interfaces[1]?.multiplier, 3);
  t.equal(spec.interfaces[1]?.minimumSendIntervalMs, 50);
  t.equal(spec.nodeSelector, undefined, 'no selector: every node');
});

t.test('bad values are reported by field, and the resource is refused', async (t) => {
  const v = validateResource({
    apiVersion: 'projectcalico.org/v3', kind: 'BFDConfiguration', metadata: { name: 'bad' },
    spec: {
      nodeSelector: 'rack ==',
      interfaces: [
        { matchPattern: 'e*th', minimumRecvInterval: '1.5ms', minimumSendInterval: '0s', multiplier: 0, idleSendIntervl: '1s' },
        { minimumRecvInterval: '10ms' },
        'eth0',
      ],
    },
  });
  t.notOk(v.checker.ok);
  t.notOk(v.resource);
  const fields = v.checker.problems.map((p) => p.path.join('.'));
  for (const f of [
    'spec.nodeSelector', 'spec.interfaces.0.matchPattern', 'spec.interfaces.0.minimumRecvInterval',
    'spec.interfaces.0.minimumSendInterval', 'spec.interfaces.0.multiplier', 'spec.interfaces.0.idleSendIntervl',
    'spec.interfaces.1.matchPattern', 'spec.interfaces.2',
  ]) t.ok(fields.includes(f), `${f} reported`);
  t.match(v.checker.problems.find((p) => p.path.join('.') === 'spec.interfaces.0.idleSendIntervl')?.reason, /did you mean "idleSendInterval"/);
});

t.test('from etcd, under Calico’s key layout', async (t) => {
  const d = decodeEtcd('/calico/resources/v3/projectcalico.org/bfdconfigurations/default', JSON.stringify({
    apiVersion: 'projectcalico.org/v3', kind: 'BFDConfiguration', metadata: { name: 'default' },
    spec: { nodeSelector: "rack == 'r1'", interfaces: [{ matchPattern: 'eth0', minimumSendInterval: '300ms' }] },
  }));
  t.equal(d?.kind, 'BFDConfiguration');
  t.same(d?.issues, []);
  t.equal((d?.resource as BFDConfiguration).spec.interfaces[0]?.minimumSendIntervalMs, 300);
});

t.test('which settings a session gets: node selector, interface pattern, name order', async (t) => {
  const { model } = loadResourcesText(`${SAMPLE}---
apiVersion: projectcalico.org/v3
kind: BFDConfiguration
metadata: { name: a-rack1 }
spec:
  nodeSelector: "rack == 'r1'"
  interfaces:
  - { matchPattern: "eth*", minimumSendInterval: 300ms, multiplier: 3 }
`, 'r.yaml');
  const all = model.list('BFDConfiguration');
  t.equal(bfdSettingsFor(all, { rack: 'r1' }, 'eth0')?.minimumSendIntervalMs, 300, 'a-rack1 comes first by name');
  t.equal(bfdSettingsFor(all, { rack: 'r1' }, 'ens3')?.minimumSendIntervalMs, 100, 'no eth*: the default resource');
  t.equal(bfdSettingsFor(all, { rack: 'r2' }, 'eth0')?.minimumSendIntervalMs, 100, 'other rack: the default resource');
  t.equal(bfdSettingsFor(all.filter((r) => r.metadata.name !== 'default'), { rack: 'r2' }, 'eth0'), undefined, 'nothing selects: no BFD');
  t.ok(interfaceMatches('*', 'anything'));
  t.ok(interfaceMatches('eth*', 'eth10'));
  t.notOk(interfaceMatches('eth*', 'veth0'));
  t.notOk(interfaceMatches('eth0', 'eth01'));
});
