// Model.workloadEndpoints(node) reads a per-node index (config/model.ts) instead of filtering every endpoint of
// the cluster: for any sequence of adds, updates (including an endpoint moving to another node), deletes and
// clones, each node's list equals the filter of all endpoints by spec.node, in id order, and a caller changing
// the returned array does not change what the next call returns.
import t from 'tap';
import fc from 'fast-check';
import { Model, validateResource, type Resource } from '../../config/index.js';

function wep(ns: string, name: string, node: string, ip: number): Resource {
  const v = validateResource({
    apiVersion: 'projectcalico.org/v3', kind: 'WorkloadEndpoint', metadata: { name, namespace: ns },
    spec: { orchestrator: 'k8s', node, pod: name, endpoint: 'eth0', interfaceName: `cali${ip}`, ipNetworks: [`10.65.0.${ip}/32`] },
  });
  if (v.resource === undefined) throw new Error('invalid test endpoint');
  return v.resource;
}

const NODES = ['a', 'b', 'c'];
const op = fc.oneof(
  fc.record({ op: fc.constant('set' as const), ns: fc.constantFrom('default', 'kube-system'), name: fc.constantFrom('p1', 'p2', 'p3', 'p4'), node: fc.constantFrom(...NODES), ip: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ op: fc.constant('delete' as const), ns: fc.constantFrom('default', 'kube-system'), name: fc.constantFrom('p1', 'p2', 'p3', 'p4') }),
  fc.record({ op: fc.constant('clone' as const) }),
  fc.record({ op: fc.constant('read' as const), node: fc.constantFrom(...NODES, 'none') }),
);

t.test('per-node endpoints equal the filtered list after any sequence of changes and clones', (t) => {
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
    let m = new Model();
    let clones = 0;
    for (const o of ops) {
      if (o.op === 'set') m.set(wep(o.ns, o.name, o.node, o.ip));
      else if (o.op === 'delete') m.delete('WorkloadEndpoint', `${o.ns}/${o.name}`);
      else if (o.op === 'clone') {
        const c = m.clone();
        // the clone is independent: changing it leaves the original's index alone
        const only = `clone-${clones++}`;
        c.set(wep('default', only, 'a', 9));
        if (m.workloadEndpoints('a').some((w) => w.metadata.name === only)) throw new Error('clone shares the index');
        if (!c.workloadEndpoints('a').some((w) => w.metadata.name === only)) throw new Error('clone misses its own change');
        m = c;
      } else {
        const got = m.workloadEndpoints(o.node);
        got.pop(); // callers may change what they get
      }
      for (const n of [...NODES, 'none']) {
        const want = m.workloadEndpoints().filter((w) => w.spec.node === n).map((w) => `${w.metadata.namespace}/${w.metadata.name}`);
        const got = m.workloadEndpoints(n).map((w) => `${w.metadata.namespace}/${w.metadata.name}`);
        if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`node ${n}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
      }
    }
  }), { numRuns: 300 });
  t.pass('index = filter');
  t.end();
});
