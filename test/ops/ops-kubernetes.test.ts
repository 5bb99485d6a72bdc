// deploy/: the Kubernetes manifests and the image definition, validated offline (no cluster here): every document
// parses, has apiVersion/kind/metadata, and the DaemonSet has what skeind needs — hostNetwork, exactly the two
// capabilities skeind checks for at start, liveness/readiness probes on /livez and /readyz at the metrics port, the
// config from the ConfigMap (which skeind's own parser accepts) and the etcd credentials from the Secret. Each
// document is also validated against the Kubernetes API's OpenAPI schema as the `kubernetes-models` package carries
// it (generated from the official OpenAPI spec; its validate() checks types, required fields and formats).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { parseDaemonConfig } from '../../config/index.js';
import { neededCaps } from '../../src/daemon/capabilities.js';

const root = join(`${import.meta.dirname}/..`, '..');
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- walking parsed YAML

t.test('deploy/kubernetes/daemonset.yaml', async (t) => {
  const docs = parseAllDocuments(readFileSync(join(root, 'deploy/kubernetes/daemonset.yaml'), 'utf8'));
  for (const d of docs) t.same(d.errors, [], 'parses');
  const objs = docs.map((d) => d.toJS() as Obj);
  for (const o of objs) {
    t.ok(typeof o.apiVersion === 'string' && typeof o.kind === 'string' && typeof o.metadata?.name === 'string', `${o.kind}/${o.metadata?.name}: apiVersion, kind, name`);
    t.match(o.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a DNS-1123 name');
  }
  const find = (kind: string): Obj => objs.find((o) => o.kind === kind)!;
  const ds = find('DaemonSet');
  const cm = find('ConfigMap');
  const secret = find('Secret');
  t.equal(ds.apiVersion, 'apps/v1');
  t.same(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels, 'the selector matches the pod labels');
  const pod = ds.spec.template.spec;
  t.equal(pod.hostNetwork, true, 'hostNetwork: routes and sessions are the host\'s');
  const c = pod.containers[0];
  t.same(c.securityContext.capabilities.drop, ['ALL']);
  const cfgText = cm.data['skein.yaml'] as string;
  const env = { NODENAME: 'node-1' };
  const cfg = parseDaemonConfig(cfgText, '/etc/skein/skein.yaml', env);
  t.equal(cfg.nodeName, 'node-1', 'nodeName from NODENAME');
  t.equal(c.env.find((e: Obj) => e.name === 'NODENAME')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
  t.same([...c.securityContext.capabilities.add].sort(), neededCaps(cfg, 1024).map((n) => n.cap).sort(), 'exactly the capabilities skeind checks for');
  t.notOk(c.securityContext.privileged, 'not privileged');
  const port = cfg.metrics.listen!.port;
  t.match(c.livenessProbe.httpGet, { path: '/livez', port });
  t.match(c.readinessProbe.httpGet, { path: '/readyz', port });
  t.equal(cfg.metrics.listen!.host, c.readinessProbe.httpGet.host, 'the probes ask the address skeind listens on');
  const mounts = new Map<string, Obj>(c.volumeMounts.map((m: Obj) => [m.name, m]));
  const volumes = new Map<string, Obj>(pod.volumes.map((v: Obj) => [v.name, v]));
  for (const name of mounts.keys()) t.ok(volumes.has(name), `volume ${name} exists`);
  t.equal(volumes.get(mounts.get('config')!.name)!.configMap.name, cm.metadata.name, 'config from the ConfigMap');
  t.equal(mounts.get('config')!.mountPath, c.args[c.args.indexOf('--config') + 1]);
  t.equal(volumes.get('etcd')!.secret.secretName, secret.metadata.name, 'etcd credentials from the Secret');
  const tls = cfg.datastore.etcd!.tls!;
  for (const f of [tls.ca, tls.cert, tls.key]) {
    t.ok(f!.startsWith(`${mounts.get('etcd')!.mountPath}/`), `${f} is in the Secret's mount`);
    t.ok(f!.split('/').pop()! in secret.stringData, `${f} is a key of the Secret`);
  }
  t.equal(mounts.get('run')!.mountPath, cfg.control.socket.slice(0, cfg.control.socket.lastIndexOf('/')), 'the control socket on a host path');
  for (const o of objs.filter((x) => x.kind !== 'Namespace')) t.equal(o.metadata.namespace, 'skein');
});

const MODELS: Readonly<Record<string, new (o: Obj) => { validate(): void }>> = { DaemonSet, ConfigMap, Namespace, Secret };

/** The schema's verdict on one object: undefined when valid, else the validator's message. */
function schemaError(o: Obj): string | undefined {
  const Model = MODELS[o.kind];
  if (Model === undefined) return `no schema for kind ${o.kind}`;
  try {
    new Model(o).validate();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

t.test('deploy/kubernetes/daemonset.yaml against the Kubernetes OpenAPI schema (kubernetes-models)', async (t) => {
  const objs = parseAllDocuments(readFileSync(join(root, 'deploy/kubernetes/daemonset.yaml'), 'utf8')).map((d) => d.toJS() as Obj);
  t.same(objs.map((o) => o.kind).sort(), ['ConfigMap', 'DaemonSet', 'Namespace', 'Secret'], 'the kinds the manifest holds');
  for (const o of objs) t.equal(schemaError(o), undefined, `${o.kind}/${o.metadata.name} is valid`);
  // The validator can fail: each edit below breaks the schema and must be reported.
  const ds = objs.find((o) => o.kind === 'DaemonSet')!;
  const broken: [string, (d: Obj) => void, RegExp][] = [
    ['a port that is neither a number nor a name', (d) => { d.spec.template.spec.containers[0].livenessProbe.httpGet.port = { a: 1 }; }, /port/],
    ['no selector', (d) => { delete d.spec.selector; }, /selector/],
    ['a container without a name', (d) => { delete d.spec.template.spec.containers[0].name; }, /name/],
    ['hostNetwork as text', (d) => { d.spec.template.spec.hostNetwork = 'yes'; }, /hostNetwork/],
    ['capabilities as one string', (d) => { d.spec.template.spec.containers[0].securityContext.capabilities.add = 'NET_ADMIN'; }, /capabilities\/add/],
  ];
  for (const [what, edit, re] of broken) {
    const d = structuredClone(ds);
    edit(d);
    const err = schemaError(d);
    t.ok(err !== undefined, `${what}: rejected`);
    t.match(err ?? '', re, `${what}: the message names the field (${(err ?? '').slice(0, 160)})`);
  }
});

t.test('deploy/Containerfile', async (t) => {
  const text = readFileSync(join(root, 'deploy/Containerfile'), 'utf8');
  const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  t.equal(lines.filter((l) => /^FROM /.test(l)).length, 2, 'a build stage and a runtime stage');
  t.match(text, /^ENTRYPOINT \["node", "\/usr\/lib\/skein\/app\/dist\/src\/skeind\.js"\]$/m);
  t.match(text, /skein_native\.node/, 'the native addon is copied');
  for (const l of lines) t.match(l, /^(FROM|WORKDIR|COPY|RUN|ENTRYPOINT|CMD|ENV|ARG|LABEL|USER|EXPOSE) |^\s/, `an instruction: ${l.slice(0, 40)}`);
});
