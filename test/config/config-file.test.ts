// skein.yaml and the file datastore: validation with file/line/field, every
// resource kind good and bad, the examples, and live edits of a watched file.
import t from 'tap';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { Address4 } from 'ip-address';
import { until } from '../helpers/etcd.js';
import {
  ConfigError, FileDatastore, Model, blockAllocations, formatDuration, parseASNumber, parseDuration, parseCIDR, parsePeerIP, ValueError, Secret, decodeEtcd, loadResourcesText, parseDaemonConfig, resolvePassword,
  validateResource, type ChangeEvent, type IPPool, type Issue,
} from '../../config/index.js';

t.test('value syntaxes: AS numbers, durations, CIDRs, peer addresses', (t) => {
  t.equal(parseASNumber('1.10'), 65546, 'asdot (RFC 5396)');
  t.equal(parseASNumber('4294967295'), 4294967295);
  t.equal(parseASNumber(64512), 64512);
  for (const bad of [0, -1, 4294967296, 1.5, '65536.1', 'AS64512', '', null, true]) {
    t.throws(() => parseASNumber(bad), ValueError, `AS ${JSON.stringify(bad)} rejected`);
  }
  t.equal(parseDuration('1m30s'), 90_000);
  t.equal(parseDuration('1.5h'), 5_400_000);
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration('0'), 0);
  for (const bad of ['90', '-5s', '1 m', 's', '5d', 5]) t.throws(() => parseDuration(bad), ValueError, `duration ${JSON.stringify(bad)} rejected`);
  t.equal(parseCIDR('FD00:0:0::5/64'), 'fd00::/64');
  // IPv4 CIDRs take a fast path (config/values.ts canonicalV4); ip-address, which reads every other form, is the oracle.
  fc.assert(fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), (a, len) => {
    t.equal(parseCIDR(`${a}/${len}`), `${new Address4(`${a}/${len}`).startAddress().correctForm()}/${len}`);
  }), { numRuns: 500 });
  t.equal(parseCIDR('10.65.0.7/26'), '10.65.0.0/26');
  t.equal(parseCIDR('255.255.255.255/1'), '128.0.0.0/1');
  t.equal(parseCIDR('192.0.2.200/0'), '0.0.0.0/0');
  for (const bad of ['01.2.3.4/8', '1.2.3.256/8', '1.2.3.4/33', '1.2.3/8', '1.2.3.4.5/8', '1.2.3.4/-1']) {
    t.throws(() => parseCIDR(bad), ValueError, `CIDR ${JSON.stringify(bad)} rejected`);
  }
  t.same(parsePeerIP('[fd00::1]:1790'), { address: 'fd00::1', family: 6, port: 1790 });
  t.same(parsePeerIP('192.0.2.1:1790'), { address: '192.0.2.1', family: 4, port: 1790 });
  t.throws(() => parsePeerIP('[192.0.2.1]:179'));
  fc.assert(fc.property(fc.integer({ min: 0, max: 10 * 86_400_000 }), (ms) => parseDuration(formatDuration(ms)) === ms));
  fc.assert(fc.property(fc.integer({ min: 1, max: 4294967295 }), (n) =>
    parseASNumber(`${Math.floor(n / 65536)}.${n % 65536}`) === n && parseASNumber(String(n)) === n));
  t.end();
});

const EXAMPLES = join(`${import.meta.dirname}/..`, '..', 'config', 'examples');

function configError(text: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parseDaemonConfig(text, '/etc/skein/skein.yaml', env);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

t.test('skein.yaml: defaults, overrides, errors with file, line and field', (t) => {
  const c = parseDaemonConfig('nodeName: host-a\n', '/x/skein.yaml', {});
  t.same(c.datastore, { type: 'file', path: '/etc/skein/resources.yaml', debounceMs: 100 });
  t.same(c.fib, { enabled: true, table: 254, protocol: 171, workloadRoutes: true, learn: false, nextHopScan: 10 });
  t.equal(parseDaemonConfig('fib: { workloadRoutes: false, learn: true }\n', '/x', {}).fib.learn, true, 'fib.learn beside Felix');
  t.equal(parseDaemonConfig('fib: { nextHopScan: 30s }\n', '/x', {}).fib.nextHopScan, 30, 'fib.nextHopScan as a duration');
  for (const bad of ['0', '-1', '1.5', '2h']) t.throws(() => parseDaemonConfig(`fib: { nextHopScan: ${bad} }\n`, '/x', {}), /nextHopScan/, `fib.nextHopScan ${bad} rejected`);
  t.same(c.bgp, { listen: { address: '::', port: 179 }, keepRefused: 10_000, shutdownDrainSeconds: 0, addPaths: { toClients: { mode: 'off' }, receive: false } });
  t.same(c.metrics.listen, { host: '127.0.0.1', port: 9180 });
  t.equal(c.control.socket, '/run/skein/skein.sock');
  t.equal(c.secretsDir, '/etc/skein/secrets');

  const env = parseDaemonConfig('nodeName: host-a\ndatastore:\n  type: etcd\n  etcd:\n    endpoints: [http://192.0.2.5:2379]\n', '/x', {
    NODENAME: 'host-b', SKEIN_ETCD_ENDPOINTS: 'https://192.0.2.6:2379,https://192.0.2.7:2379', ETCD_ENDPOINTS: 'http://ignored:1',
  });
  t.equal(env.nodeName, 'host-b', 'NODENAME overrides the file');
  t.same(env.datastore.etcd?.endpoints, ['https://192.0.2.6:2379', 'https://192.0.2.7:2379'], 'SKEIN_ETCD_ENDPOINTS wins over ETCD_ENDPOINTS');
  t.equal(parseDaemonConfig('nodeName: a\n', '/x', { SKEIN_NODENAME: 'b', NODENAME: 'c' }).nodeName, 'b');
  t.equal(parseDaemonConfig('fib: { protocol: bird, table: local }\n', '/x', {}).fib.protocol, 12, 'protocol by name');
  t.equal(parseDaemonConfig('metrics: { listen: "" }\n', '/x', {}).metrics.listen, null, 'metrics can be turned off');
  t.same(parseDaemonConfig('metrics: { listen: "[::1]:9100" }\ncontrol: { group: skein }\n', '/x', {}).metrics.listen, { host: '::1', port: 9100 });
  t.equal(parseDaemonConfig('control: { group: 998 }\n', '/x', {}).control.group, 998);
  t.same(parseDaemonConfig('bgp:\n  addPaths: { toClients: all, receive: true }\n', '/x', {}).bgp.addPaths, { toClients: { mode: 'all' }, receive: true });
  t.same(parseDaemonConfig('bgp:\n  addPaths: { toClients: "best 2" }\n', '/x', {}).bgp.addPaths, { toClients: { mode: 'best', count: 2 }, receive: false });
  t.same(parseDaemonConfig('bgp:\n  addPaths: { toClients: "off" }\n', '/x', {}).bgp.addPaths.toClients, { mode: 'off' });
  // refused routes kept per peer
  t.equal(parseDaemonConfig('bgp:\n  keepRefused: 0\n', '/x', {}).bgp.keepRefused, 0);
  t.throws(() => parseDaemonConfig('bgp:\n  keepRefused: -1\n', '/x', {}), /keepRefused/);
  t.same(parseDaemonConfig('bgp:\n  maxPrefixes: { limit: 5000, ipv6: 500, restartAfter: 5m, peers: { "192.0.2.1": 200000, "fd00::0:1": 9 } }\n', '/x', {}).bgp.maxPrefixes,
    { limit: 5000, ipv6: 500, warningThreshold: 75, restartAfter: 300, peers: { '192.0.2.1': 200000, 'fd00::1': 9 } }, 'maxPrefixes: durations, peer addresses normalised');
  t.same(parseDaemonConfig('bgp:\n  maxPrefixes: { limit: 10, warningThreshold: 90, restartAfter: 30 }\n', '/x', {}).bgp.maxPrefixes,
    { limit: 10, warningThreshold: 90, restartAfter: 30, peers: {} });

  const cases: [string, number, string, RegExp][] = [
    ['nodeName: a\nfib:\n  enabeld: true\n', 3, 'fib.enabeld', /unknown field "enabeld" \(did you mean "enabled"\?\)/],
    ['nodeName: a\ndatastor:\n  type: file\n', 2, 'datastor', /did you mean "datastore"/],
    ['nodeName: a\ndatastore:\n  type: etdc\n', 3, 'datastore.type', /expected one of "file", "etcd".*did you mean "etcd"/],
    ['datastore:\n  type: etcd\n', 2, 'datastore.etcd.endpoints', /is required when datastore.type is etcd/],
    ['bgp:\n  listen:\n    port: 70000\n', 3, 'bgp.listen.port', /out of range 1-65535/],
    ['bgp:\n  routerId: "fd00::1"\n', 2, 'bgp.routerId', /IPv4 address \(RFC 6286\)/],
    ['fib:\n  protocol: 2\n', 2, 'fib.protocol', /reserved for the kernel/],
    ['fib:\n  learn: true\n', 2, 'fib.learn', /beside Felix.*workloadRoutes: false/],
    ['fib:\n  enabled: false\n  learn: true\n', 3, 'fib.learn', /needs the kernel/],
    ['bgp:\n  addPaths:\n    toClients: best 0\n', 3, 'bgp.addPaths.toClients', /"off", "all" or "best N"/],
    ['bgp:\n  addPaths:\n    toClients: every\n', 3, 'bgp.addPaths.toClients', /"off", "all" or "best N"/],
    ['bgp:\n  addPaths:\n    send: all\n', 3, 'bgp.addPaths.send', /unknown field "send"/],
    ['bgp:\n  maxPrefixes:\n    ipv4: 100\n', 3, 'bgp.maxPrefixes.limit', /is required/],
    ['bgp:\n  maxPrefixes:\n    limit: 0\n', 3, 'bgp.maxPrefixes.limit', /./],
    ['bgp:\n  maxPrefixes:\n    limit: 10\n    warningThreshold: 150\n', 4, 'bgp.maxPrefixes.warningThreshold', /./],
    ['bgp:\n  maxPrefixes:\n    limit: 10\n    restartAfter: 0\n', 4, 'bgp.maxPrefixes.restartAfter', /at least 1/],
    ['bgp:\n  maxPrefixes:\n    limit: 10\n    peers: { "not-an-ip": 5 }\n', 4, 'bgp.maxPrefixes.peers.not-an-ip', /./],
    ['bgp:\n  maxPrefixes:\n    limt: 10\n', 3, 'bgp.maxPrefixes.limt', /did you mean "limit"/],
    ['fib:\n  protocol: ospfv9\n', 2, 'fib.protocol', /unknown routing protocol name/],
    ['fib:\n  table: 0\n', 2, 'fib.table', /out of range/],
    ['log:\n  level: verbose\n', 2, 'log.level', /expected one of/],
    ['metrics:\n  listen: 9180\n', 2, 'metrics.listen', /expected a string/],
    ['datastore:\n  type: etcd\n  etcd:\n    endpoints: [ftp://x]\n', 4, 'datastore.etcd.endpoints[0]', /must use http:\/\/ or https:\/\//],
    ['secretsDir: secrets\n', 1, 'secretsDir', /absolute path/],
    ['nodeName: Host_A\n', 1, 'nodeName', /not a valid node name/],
    ['datastore:\n  type: etcd\n  etcd:\n    endpoints: [http://x:2379]\n    tls: { cert: /c.pem }\n', 5, 'datastore.etcd.tls', /cert and key must be given together/],
  ];
  for (const [text, line, field, reason] of cases) {
    const e = configError(text);
    const first = e.issues.find((i) => i.severity === 'error') as Issue;
    t.equal(first.field, field, `${field}: field`);
    t.equal(first.line, line, `${field}: line`);
    t.match(first.reason, reason, `${field}: ${first.reason}`);
    t.match(e.message, new RegExp(`^/etc/skein/skein\\.yaml:${line}:\\d+: ${field.replace(/[.[\]]/g, '\\$&')}: `), 'one line: file:line:col: field: reason');
  }
  const syntax = configError('nodeName: a\nfib: [\n');
  t.equal(syntax.issues[0]?.field, '(syntax)');
  t.ok((syntax.issues[0]?.line ?? 0) >= 2, 'syntax error has a line');
  const dup = configError('nodeName: a\nnodeName: b\n');
  t.equal(dup.issues[0]?.line, 2, 'duplicate key reported at its line');
  const badEnv = configError('nodeName: a\n', { ETCD_ENDPOINTS: 'not a url' });
  t.match(badEnv.message, /environment variable ETCD_ENDPOINTS/);
  t.end();
});

const doc = (kind: string, spec: unknown, metadata: Record<string, unknown> = { name: 'x' }): string =>
  `apiVersion: projectcalico.org/v3\nkind: ${kind}\nmetadata: ${JSON.stringify(metadata)}\nspec: ${JSON.stringify(spec)}\n`;

t.test('every kind: good values accepted, bad values reported with line and field', (t) => {
  const good: [string, unknown, Record<string, unknown>?][] = [
    ['BGPConfiguration', { asNumber: '1.10', listenPort: 1790, bindMode: 'NodeIP', nodeMeshMaxRestartTime: '1m30s' }, { name: 'default' }],
    ['Node', { bgp: { ipv4Address: '192.0.2.1/24', routeReflectorClusterID: '224.0.0.1' } }],
    ['BGPPeer', { peerIP: '[fd00::1]:1790', asNumber: 65001, node: 'x', keepaliveTime: '10s' }],
    ['BGPPeer', { nodeSelector: "rack in {'a','b'}", peerSelector: 'has(rr)' }],
    ['IPPool', { cidr: '10.65.0.7/16', ipipMode: 'CrossSubnet' }],
    ['BGPFilter', { exportV6: [{ action: 'Accept', cidr: 'fd00::/8', matchOperator: 'In', prefixLength: { max: 128 } }] }],
    ['ClusterInformation', { datastoreReady: false }, { name: 'default' }],
    ['BlockAffinity', { node: 'h', cidr: '10.65.0.0/26', state: 'pending', deleted: 'false' }],
    ['IPAMBlock', { cidr: '10.65.0.0/30', affinity: 'host:h', allocations: [0, null, null, null], unallocated: [1, 2, 3], attributes: [{ handle_id: 'a', secondary: {} }] }],
    ['WorkloadEndpoint', { node: 'h-1', orchestrator: 'k8s', pod: 'p-0', endpoint: 'eth0', interfaceName: 'cali1', ipNetworks: ['10.65.0.1'] }, { name: 'h--1-k8s-p--0-eth0', namespace: 'ns' }],
    ['WorkloadEndpoint', { node: 'h', orchestrator: 'openstack', workload: 'vm-1', endpoint: 'port-1', interfaceName: 'tapport-1' }, { name: 'h-openstack-vm--1-port--1', namespace: 'openstack-region-west' }],
  ];
  for (const [kind, spec, meta] of good) {
    const r = loadResourcesText(doc(kind, spec, meta), 'good.yaml');
    t.same(r.issues.filter((i) => i.severity === 'error'), [], `${kind} ${JSON.stringify(spec)}`);
    t.equal(r.model.size, 1, `${kind} in the model`);
  }
  t.equal(loadResourcesText(doc('Node', { bgp: { ipv4Address: '192.0.2.1' } }), 'f').model.node('x')?.spec.bgp?.ipv4Address, '192.0.2.1/32', 'a bare node address is a host prefix');
  const cidr = loadResourcesText(doc('IPPool', { cidr: '10.65.0.7/16' }), 'f').model.ipPools()[0]?.spec.cidr;
  t.equal(cidr, '10.65.0.0/16', 'CIDR normalised');

  // [kind, spec, metadata, field, reason]; the error is at line 4 (the spec line) or 3 (metadata)
  const bad: [string, unknown, Record<string, unknown>, string, RegExp][] = [
    ['BGPConfiguration', { asNumber: 0 }, { name: 'default' }, 'spec.asNumber', /RFC 7607/],
    ['BGPConfiguration', { nodeMeshMaxRestartTime: '2 minutes' }, { name: 'default' }, 'spec.nodeMeshMaxRestartTime', /invalid duration/],
    ['BGPConfiguration', { prefixAdvertisements: [{ cidr: '10.0.0.0/8', communities: ['nope'] }] }, { name: 'default' }, 'spec.prefixAdvertisements[0].communities[0]', /neither a community value/],
    ['BGPConfiguration', { communities: [{ name: 'a', value: '70000:1' }] }, { name: 'default' }, 'spec.communities[0].value', /larger than 65535/],
    ['Node', { bgp: { ipv4Address: '192.0.2.1/40' } }, { name: 'x' }, 'spec.bgp.ipv4Address', /prefix length .* must be 0-32/],
    ['Node', { bgp: { ipv6Address: '192.0.2.1/24' } }, { name: 'x' }, 'spec.bgp.ipv6Address', /expected an IPv6 address/],
    ['Node', { bgp: { routeReflectorClusterID: 'fd00::1' } }, { name: 'x' }, 'spec.bgp.routeReflectorClusterID', /RFC 4456/],
    ['BGPPeer', { peerIP: '192.0.2.1', peerSelector: 'all()', asNumber: 1 }, { name: 'x' }, 'spec.peerSelector', /cannot be set together with peerIP/],
    ['BGPPeer', { peerSelector: "rack = 'a'" }, { name: 'x' }, 'spec.peerSelector', /invalid selector: at position 5: expected "=="/],
    ['BGPPeer', { peerIP: '192.0.2.1', asNumber: 1, password: { secretKeyRef: { name: '../etc', key: 'k' } } }, { name: 'x' }, 'spec.password.secretKeyRef.name', /plain name/],
    ['BGPPeer', { peerIP: '192.0.2.1', asNumber: 1, ttlSecurity: 300 }, { name: 'x' }, 'spec.ttlSecurity', /out of range/],
    ['IPPool', { cidr: 'fd00::/64', ipipMode: 'Always' }, { name: 'x' }, 'spec.ipipMode', /IPv4 only/],
    ['IPPool', { cidr: '10.0.0.0/16', blockSize: 19 }, { name: 'x' }, 'spec.blockSize', /out of range 20-32/],
    ['IPPool', { cidr: '10.0.0.0/16', vxlanMode: 'Sometimes' }, { name: 'x' }, 'spec.vxlanMode', /expected one of/],
    ['BGPFilter', { exportV4: [{ action: 'Accept', cidr: 'fd00::/8', matchOperator: 'In' }] }, { name: 'x' }, 'spec.exportV4[0].cidr', /not an IPv4 CIDR/],
    ['BGPFilter', { importV4: [{ action: 'Reject', cidr: '10.0.0.0/8' }] }, { name: 'x' }, 'spec.importV4[0].matchOperator', /set together/],
    ['BGPFilter', { importV4: [{ action: 'Reject', operations: [{ setPriority: { value: 5 } }] }] }, { name: 'x' }, 'spec.importV4[0].operations', /only allowed with action Accept/],
    ['ClusterInformation', { datastoreReady: 'yes' }, { name: 'default' }, 'spec.datastoreReady', /true or false/],
    ['BlockAffinity', { node: 'h', cidr: '10.0.0.0/26', state: 'claimed' }, { name: 'x' }, 'spec.state', /expected one of "confirmed", "pending", "pendingDeletion"/],
    ['IPAMBlock', { cidr: '10.0.0.0/30', allocations: [0, null, null, null, null], attributes: [{}] }, { name: 'x' }, 'spec.allocations', /more than the 4 addresses/],
    ['IPAMBlock', { cidr: '10.0.0.0/30', allocations: [2], attributes: [] }, { name: 'x' }, 'spec.allocations[0]', /refers to attribute 2/],
    ['WorkloadEndpoint', { node: 'h', orchestrator: 'openstack', workload: 'v', endpoint: 'p', interfaceName: 'tapp' }, { name: 'h-openstack-v-p', namespace: 'default' }, 'metadata.namespace', /"openstack" or "openstack-region-<region>"/],
    ['WorkloadEndpoint', { node: 'h', interfaceName: 'averyveryverylongname', ipNetworks: ['10.0.0.1/32'] }, { name: 'w', namespace: 'ns' }, 'spec.interfaceName', /at most 15/],
    ['WorkloadEndpoint', { node: 'h', interfaceName: 'cali1', ipNetworks: ['10.0.0.300/32'] }, { name: 'w', namespace: 'ns' }, 'spec.ipNetworks[0]', /IP address/],
  ];
  for (const [kind, spec, meta, field, reason] of bad) {
    const r = loadResourcesText(`# leading comment\n${doc(kind, spec, meta)}`, '/etc/skein/resources.yaml');
    const err = r.issues.find((i) => i.severity === 'error');
    t.ok(err, `${kind}/${field} reported`);
    t.equal(err?.field, field, `${kind}: field`);
    t.match(err?.reason, reason, `${kind}: ${err?.reason}`);
    t.equal(err?.line, field.startsWith('metadata') ? 4 : 5, `${kind}/${field}: line`);
    t.equal(err?.kind, kind);
    t.equal(r.model.size, 0, `${kind}: skipped`);
  }
  // the same bad value from etcd names the key and the field
  const d = decodeEtcd('/calico/resources/v3/projectcalico.org/bgppeers/p', JSON.stringify({ kind: 'BGPPeer', apiVersion: 'projectcalico.org/v3', metadata: { name: 'p' }, spec: { peerIP: '192.0.2.1', asNumber: 'x.y' } }));
  t.equal(d?.issues[0]?.source, '/calico/resources/v3/projectcalico.org/bgppeers/p');
  t.equal(d?.issues[0]?.field, 'spec.asNumber');
  t.equal(d?.resource, undefined);
  t.equal(decodeEtcd('/calico/ipam/v2/host/h/ipv4/block/10.0.0.0-99', '{}')?.issues[0]?.field, '(key)', 'bad CIDR in a key');
  t.same(decodeEtcd('/calico/ipam/v2/host/h/ipv4/block/10.0.0.0-26', '')?.resource?.spec, { node: 'h', cidr: '10.0.0.0/26', state: 'confirmed', deleted: false }, 'empty affinity value reads as confirmed');
  // unknown fields in a resource are warnings with a suggestion, not errors
  const typo = validateResource({ apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'p' }, spec: { peerIP: '192.0.2.1', asNumber: 1, keepAliveTime: '5s' } });
  t.ok(typo.resource, 'still valid');
  t.match(typo.checker.problems[0]?.reason, /did you mean "keepaliveTime"/);
  t.end();
});

t.test('a List, duplicates, and kind errors in a multi-document file', (t) => {
  const text = `${doc('IPPool', { cidr: '10.0.0.0/16' }, { name: 'a' })}---\napiVersion: projectcalico.org/v3\nkind: List\nitems:\n  - apiVersion: projectcalico.org/v3\n    kind: IPPool\n    metadata: { name: a }\n    spec: { cidr: 10.1.0.0/16 }\n  - apiVersion: projectcalico.org/v3\n    kind: GlobalNetworkPolicy\n    metadata: { name: p }\n    spec: {}\n`;
  const r = loadResourcesText(text, 'f.yaml');
  t.equal(r.model.ipPools()[0]?.spec.cidr, '10.1.0.0/16', 'the later definition wins');
  t.ok(r.issues.some((i) => i.severity === 'warning' && /defined again \(first at line 1\)/.test(i.reason)));
  const other = r.issues.find((i) => i.field === 'kind');
  t.equal(other?.line, 14);
  t.equal(other?.severity, 'warning', 'other Calico kinds are ignored, not errors');
  t.match(other?.reason, /GlobalNetworkPolicy is not used by skein/);
  const typo = loadResourcesText(doc('BGPPear', {}), 'f.yaml').issues.find((i) => i.field === 'kind');
  t.equal(typo?.severity, 'error');
  t.match(typo?.reason, /did you mean "BGPPeer"/);
  t.end();
});

t.test('the examples validate', (t) => {
  for (const dir of readdirSync(EXAMPLES)) {
    const cfg = parseDaemonConfig(readFileSync(join(EXAMPLES, dir, 'skein.yaml'), 'utf8'), `${dir}/skein.yaml`, {});
    t.ok(cfg.nodeName, `${dir}: skein.yaml`);
    const r = loadResourcesText(readFileSync(join(EXAMPLES, dir, 'resources.yaml'), 'utf8'), `${dir}/resources.yaml`);
    t.same(r.issues, [], `${dir}: resources.yaml has no issues`);
    t.ok(r.model.node(cfg.nodeName) ?? dir === 'route-reflectors', `${dir}: this node is described`);
  }
  t.end();
});

t.test('Model: readers, readiness gate, IPAM allocations, diff order', (t) => {
  const fixture = loadResourcesText(readFileSync(join(`${import.meta.dirname}/..`, 'data', 'config', 'resources.yaml'), 'utf8'), 'r').model;
  t.same(fixture.workloadEndpoints('host-a').map((w) => w.spec.interfaceName), ['cali12ab34cd56e']);
  t.same(fixture.blockAffinities('host-b'), []);
  t.equal(fixture.bgpConfiguration('node.host-a')?.spec.listenPort, 1790);
  t.same(fixture.get('BGPConfiguration', 'default')?.spec.prefixAdvertisements, [{ cidr: '10.65.0.0/16', communities: ['65000:100', '65000:1:2'] }], 'community names resolved');
  const block = fixture.ipamBlocks()[0];
  t.same(block && blockAllocations(block.spec).map((a) => [a.ordinal, a.attribute?.secondary.pod ?? a.attribute?.secondary.type]), [[0, 'ipipTunnelAddress'], [5, 'nginx-7d9f8']]);
  t.ok(fixture.datastoreReady());
  const notReady = loadResourcesText(doc('ClusterInformation', { datastoreReady: false }, { name: 'default' }), 'f').model;
  t.notOk(notReady.datastoreReady(), 'ClusterInformation present and not ready');
  t.ok(new Model().datastoreReady(), 'no ClusterInformation: ready');
  const a = loadResourcesText(`${doc('IPPool', { cidr: '10.0.0.0/16' }, { name: 'p1' })}---\n${doc('IPPool', { cidr: '10.1.0.0/16' }, { name: 'p2' })}---\n${doc('Node', {}, { name: 'n1' })}`, 'a').model;
  const b = loadResourcesText(`${doc('IPPool', { cidr: '10.9.0.0/16' }, { name: 'p2' })}---\n${doc('IPPool', { cidr: '10.3.0.0/16' }, { name: 'p3' })}---\n${doc('Node', {}, { name: 'n2' })}`, 'b').model;
  t.same(Model.diff(a, b, (k, id) => `${k}/${id}`).map((c) => [c.type, c.kind, c.id]), [
    ['deleted', 'Node', 'n1'], ['deleted', 'IPPool', 'p1'],
    ['added', 'Node', 'n2'], ['updated', 'IPPool', 'p2'], ['added', 'IPPool', 'p3'],
  ], 'deletions first, then kind order');
  const c = a.clone();
  t.ok(c.equals(a));
  c.delete('Node', 'n1');
  t.notOk(c.equals(a), 'clone is independent');
  t.equal(a.size, 3);
  t.end();
});

t.test('Model.list: the cached sorted view follows every set, delete and clone', (t) => {
  // Model keeps each kind's sorted list until the kind changes; a stale cache
  // would hand the controller a peer or pool that no longer exists.
  const pool = (name: string, n: number): IPPool => loadResourcesText(doc('IPPool', { cidr: `10.${n}.0.0/16` }, { name }), 'p').model.ipPools()[0] as IPPool;
  const op = fc.record({ del: fc.boolean(), name: fc.constantFrom('a', 'b', 'c', 'd', 'e'), n: fc.integer({ min: 0, max: 9 }), clone: fc.boolean() });
  fc.assert(fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
    let m = new Model();
    const expect = new Map<string, number>();
    for (const o of ops) {
      m.list('IPPool');
      if (o.del) { m.delete('IPPool', o.name); expect.delete(o.name); } else { m.set(pool(o.name, o.n)); expect.set(o.name, o.n); }
      if (o.clone) {
        const before = m;
        m = m.clone();
        before.set(pool('zz', 99));
      }
      const got = m.list('IPPool').map((r) => [r.metadata.name, r.spec.cidr]);
      const want = [...expect].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => [k, `10.${n}.0.0/16`]);
      if (JSON.stringify(got) !== JSON.stringify(want)) return false;
      m.list('IPPool').pop();
      if (m.list('IPPool').length !== want.length) return false;
    }
    return true;
  }), { numRuns: 200 });
  t.pass('200 random sequences matched a freshly sorted model');
  t.end();
});

t.test('passwords from secretsDir never print', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-secrets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'bgp-secrets'));
  writeFileSync(join(dir, 'bgp-secrets', 'mesh'), 'hunter2\n');
  const s = await resolvePassword({ secretKeyRef: { name: 'bgp-secrets', key: 'mesh' } }, dir);
  t.equal(s.reveal(), 'hunter2', 'trailing newline dropped');
  t.notMatch(JSON.stringify({ s }), /hunter2/);
  t.notMatch(inspect({ s }), /hunter2/);
  t.notMatch(`${s}`, /hunter2/);
  t.ok(s.equals(new Secret('hunter2')));
  await t.rejects(resolvePassword({ secretKeyRef: { name: 'bgp-secrets', key: 'none' } }, dir), /cannot read BGP password bgp-secrets\/none/);
  await t.rejects(resolvePassword({ secretKeyRef: { name: '..', key: 'x' } }, dir), /plain names/);
});

t.test('file datastore: a writer that never pauses still gets its changes applied (debounce has a maximum wait)', async (t) => {
  // A burst of edits closer together than debounceMs used to postpone the re-read until the burst ended;
  // maxWaitMs bounds that. The writer goes on for 4x maxWait; changes must show up while it is still writing.
  const dir = mkdtempSync(join(tmpdir(), 'skein-file-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'resources.yaml');
  const pool = (i: number): string => doc('IPPool', { cidr: `10.${i}.0.0/16` }, { name: `p${i}` });
  writeFileSync(file, pool(0));
  const ds = new FileDatastore({ path: file, debounceMs: 100, maxWaitMs: 150, pollMs: 0 });
  t.teardown(() => ds.close());
  const changes: ChangeEvent[] = [];
  ds.on('change', (e) => changes.push(e));
  ds.start();
  await ds.synced();
  let text = pool(0);
  let seenWhileWriting = 0;
  for (let i = 1; i <= 24; i++) {
    text += `---\n${pool(i)}`;
    writeFileSync(file, text);
    await new Promise((r) => setTimeout(r, 25)); // 24 x 25 ms = 4x maxWaitMs, each gap well under debounceMs
    if (i < 24) seenWhileWriting = changes.length;
  }
  t.ok(seenWhileWriting > 0, `changes applied during the burst (${seenWhileWriting} of 24 seen before the last write)`);
  await until(() => changes.length === 24, 'every pool added once the burst is over');
  t.same(new Set(changes.map((c) => c.id)).size, 24, 'each pool exactly once');
});

t.test('file datastore: snapshot, then live edits as change events', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-file-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'resources.yaml');
  const pool = (name: string, cidr: string): string => doc('IPPool', { cidr }, { name });
  writeFileSync(file, `${pool('a', '10.0.0.0/16')}---\n${pool('b', '10.1.0.0/16')}`);
  const ds = new FileDatastore({ path: file, debounceMs: 30, pollMs: 0 });
  t.teardown(() => ds.close());
  const changes: ChangeEvent[] = [];
  const issues: Issue[] = [];
  ds.on('change', (e) => changes.push(e));
  ds.on('invalid', (i) => issues.push(i));
  ds.start();
  const snap = await ds.synced();
  t.same(snap.ids('IPPool'), ['a', 'b']);

  // atomic rename over the file
  writeFileSync(join(dir, '.tmp'), `${pool('a', '10.0.0.0/16')}---\n${pool('b', '10.9.0.0/16')}---\n${pool('c', '10.2.0.0/16')}`);
  renameSync(join(dir, '.tmp'), file);
  await until(() => changes.length >= 2, 'two changes after rename');
  t.same(changes.map((c) => [c.type, c.id]), [['updated', 'b'], ['added', 'c']]);
  t.equal(changes[0]?.key, `${file}#IPPool/b`);

  // in-place write
  changes.length = 0;
  writeFileSync(file, pool('c', '10.2.0.0/16'));
  await until(() => changes.length >= 2, 'two deletions after in-place write');
  t.same(changes.map((c) => [c.type, c.id]), [['deleted', 'a'], ['deleted', 'b']]);

  // a bad edit: reported with line and field, last good version kept
  changes.length = 0;
  writeFileSync(file, pool('c', '10.2.0.0/33'));
  await until(() => issues.length > 0, 'the issue');
  t.equal(issues[0]?.field, 'spec.cidr');
  t.equal(issues[0]?.line, 4);
  t.equal(ds.model.get('IPPool', 'c')?.spec.cidr, '10.2.0.0/16', 'last good version in force');
  // a syntax error keeps everything
  writeFileSync(file, 'kind: [\n');
  await until(() => (ds.status.lastError ?? '').includes('(syntax)'), 'syntax error status');
  t.equal(ds.model.size, 1);
  t.equal(changes.length, 0, 'no change from bad edits');
});

t.test('file datastore: a truncated or partly written file is held until it settles', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-file-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'resources.yaml');
  const node = doc('Node', { bgp: { ipv4Address: '192.0.2.10/24' } }, { name: 'host-a' });
  const pools = Array.from({ length: 30 }, (_, i) => doc('IPPool', { cidr: `10.${i}.0.0/16` }, { name: `p${i}` }));
  const full = [node, ...pools].join('---\n');
  writeFileSync(file, full);
  const ds = new FileDatastore({ path: file, debounceMs: 20, pollMs: 0, nodeName: 'host-a', settleMs: 1500 });
  t.teardown(() => ds.close());
  const changes: ChangeEvent[] = [];
  ds.on('change', (e) => changes.push(e));
  ds.start();
  await ds.synced();
  t.equal(ds.model.size, 31);

  // `: > resources.yaml; sleep; cat saved > resources.yaml`: an in-place truncating write
  writeFileSync(file, '');
  await until(() => ds.status.held !== undefined, 'the empty file held');
  t.match(ds.status.held, /drops this node's own Node host-a/);
  t.match(ds.status.lastError, /held, the last complete version stays in force/);
  writeFileSync(file, full);
  await until(() => ds.status.held === undefined, 'released once whole again');
  t.same(changes, [], 'nothing deleted, nothing re-added');
  t.equal(ds.model.size, 31);

  // half the file (this node's Node kept): an implausible shrink, held too
  writeFileSync(file, [node, ...pools.slice(0, 5)].join('---\n'));
  await until(() => ds.status.held !== undefined, 'the shrunken file held');
  t.match(ds.status.held, /shrinks from 31 to 6 resources/);
  t.same(changes, [], 'nothing applied while held');
  // ...and if it stays that way, the operator meant it: applied after settleMs
  await until(() => ds.status.held === undefined && changes.length === 25, 'applied once settled', 10_000);
  t.ok(changes.every((c) => c.type === 'deleted'));
  t.equal(ds.model.size, 6);

  // small edits are applied at once, rename into place included
  changes.length = 0;
  writeFileSync(join(dir, '.tmp'), [node, ...pools.slice(0, 4)].join('---\n'));
  renameSync(join(dir, '.tmp'), file);
  await until(() => changes.length === 1, 'one deletion');
  t.equal(ds.status.held, undefined);
});
