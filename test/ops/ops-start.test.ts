// An operator's start: deployment mistakes exit 2 (a control.group that does not exist, a missing capability), and
// readiness that means it — systemd's STATUS= says what the start waits for, READY=1 only once started, and a route
// the kernel keeps refusing shows in /readyz, `skeinctl status` and skein_fib_persistent_failures (real skeind in a
// network namespace, a real sd_notify socket).
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CAP, effectiveCaps, hasCap, missingCaps, neededCaps } from '../../src/daemon/capabilities.js';
import { ReadinessGate } from '../../src/http.js';
import { requires } from '../helpers/env.js';
import { Lab, until } from '../helpers/netns.js';
import { runCommand } from '../helpers/run.js';

const root = join(`${import.meta.dirname}/..`, '..');
const skeind = join(root, 'dist/src/skeind.js');
const skeinctl = join(root, 'dist/src/skeinctl.js');

function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ops-start-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const CFG = (over: { fib?: boolean; group?: string; socket: string; resources: string; metrics?: string }): string => [
  'nodeName: host-a',
  `datastore: { type: file, path: ${over.resources} }`,
  'bgp: { listen: { port: 1790 } }',
  `fib: { enabled: ${over.fib ?? false} }`,
  `control: { socket: ${over.socket}${over.group !== undefined ? `, group: ${over.group}` : ''} }`,
  `metrics: { listen: ${over.metrics ?? 'false'} }`,
  '',
].join('\n');

t.test('capabilities: parsing /proc status and what a configuration needs', async (t) => {
  t.equal(effectiveCaps('Name:\tnode\nCapEff:\t0000003fffffffff\n'), 0x3fffffffffn);
  t.equal(effectiveCaps('Name:\tnode\n'), undefined, 'no CapEff line: unknown, not "none"');
  const all = 0x3fffffffffn;
  const noAdmin = all & ~(1n << BigInt(CAP.NET_ADMIN));
  t.ok(hasCap(all, 'NET_ADMIN'));
  t.notOk(hasCap(noAdmin, 'NET_ADMIN'));
  const cfg = { fib: { enabled: true }, bgp: { listen: { port: 179 } }, metrics: { listen: { host: '127.0.0.1', port: 9180 } } } as Parameters<typeof neededCaps>[0];
  t.same(neededCaps(cfg, 1024).map((n) => n.cap), ['NET_ADMIN', 'NET_BIND_SERVICE']);
  t.same(neededCaps(cfg, 0).map((n) => n.cap), ['NET_ADMIN'], 'ip_unprivileged_port_start 0: no bind capability needed');
  const off = { ...cfg, fib: { enabled: false }, bgp: { listen: { port: 1790 } } } as Parameters<typeof neededCaps>[0];
  t.same(neededCaps(off, 1024), [], 'no FIB, high ports: nothing needed');
  t.same(missingCaps(neededCaps(cfg, 1024), noAdmin).map((n) => n.cap), ['NET_ADMIN']);
  t.same(missingCaps(neededCaps(cfg, 1024), all), []);
});

t.test('readiness: a soft blocker fails /readyz but does not hold back the start', async (t) => {
  let now = 0;
  const g = new ReadinessGate({ now: () => now, startupWindowMs: 1000 });
  const seen: { ready: boolean; started: boolean | undefined }[] = [];
  g.onChange((r) => seen.push({ ready: r.ready, started: r.started }));
  g.setDatastoreSynced(true);
  g.setFibReconciled(true);
  t.same(seen, [{ ready: true, started: true }]);
  g.setBlocker('fib-failures', '1 route refused by the kernel', { soft: true });
  t.same(g.check(), { ready: false, missing: ['1 route refused by the kernel'], started: true });
  g.setBlocker('cluster', 'cluster datastore not ready');
  t.equal(g.check().started, false, 'a hard blocker holds the start back');
  g.setBlocker('cluster', undefined);
  g.setBlocker('fib-failures', undefined);
  t.same(g.check(), { ready: true, missing: [], started: true });
  g.setPeers(['192.0.2.1']);
  t.match(g.check(), { ready: false, started: false, missing: ['waiting for peers: 192.0.2.1'] });
  now = 2000;
  t.match(g.check(), { ready: true, started: true }, 'after the start-up window the peer no longer counts');
});

t.test('control.group that does not exist: exit 2, one line naming the field, nothing started', async (t) => {
  const dir = tmp();
  const resources = join(dir, 'resources.yaml');
  writeFileSync(resources, '');
  const cfg = join(dir, 'skein.yaml');
  writeFileSync(cfg, CFG({ socket: join(dir, 'skein.sock'), resources, group: 'opsnosuchgroup' }));
  const r = spawnSync('node', [skeind, '--config', cfg], { encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 2, 'exit 2: RestartPreventExitStatus=2 stops systemd from restarting it');
  const lines = r.stderr.split('\n').filter(Boolean);
  t.equal(lines.length, 1, `one line: ${r.stderr}`);
  t.match(lines[0], /control\.group: no group named "opsnosuchgroup".*groupadd --system opsnosuchgroup/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.notOk(spawnSync('test', ['-e', join(dir, 'skein.sock')]).status === 0, 'no control socket was created');
  // An existing group (root's, gid 0) starts fine: the check is not rejecting everything.
  writeFileSync(cfg, CFG({ socket: join(dir, 'skein.sock'), resources, group: '0' }));
  const child = spawn('node', [skeind, '--config', cfg], { stdio: 'pipe' });
  t.teardown(() => void child.kill('SIGKILL'));
  await until(() => spawnSync('test', ['-S', join(dir, 'skein.sock')]).status === 0, 'the control socket', 15_000);
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((res) => child.once('exit', (c) => res(c)));
  t.equal(code, 0);
});

t.test('without CAP_NET_ADMIN and fib.enabled: exit 2 naming the capability', async (t) => {
  if (!requires(t, { root: true, commands: ['setpriv'] })) return;
  const dir = tmp();
  const resources = join(dir, 'resources.yaml');
  writeFileSync(resources, '');
  const cfg = join(dir, 'skein.yaml');
  writeFileSync(cfg, CFG({ socket: join(dir, 'skein.sock'), resources, fib: true }));
  const drop = ['--inh-caps=-net_admin', '--ambient-caps=-net_admin', '--bounding-set=-net_admin'];
  const r = spawnSync('setpriv', [...drop, 'node', skeind, '--config', cfg], { encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 2, `exit 2: ${r.stderr}`);
  t.match(r.stderr, /^skeind: cannot start: missing capability CAP_NET_ADMIN \(writing routes to the kernel \(fib\.enabled\)\)/);
  t.equal(r.stderr.split('\n').filter(Boolean).length, 1);
  // Without the FIB the same drop is fine: the check asks only for what the configuration uses.
  writeFileSync(cfg, CFG({ socket: join(dir, 'skein.sock'), resources, fib: false }));
  const child = spawn('setpriv', [...drop, 'node', skeind, '--config', cfg], { stdio: 'pipe' });
  t.teardown(() => void child.kill('SIGKILL'));
  await until(() => spawnSync('test', ['-S', join(dir, 'skein.sock')]).status === 0, 'the control socket', 15_000);
  child.kill('SIGTERM');
  t.equal(await new Promise<number | null>((res) => child.once('exit', (c) => res(c))), 0);
});

/** Calico resources: host-a with one affine block and a workload on `ifname`; host-b (a mesh peer) if asked. */
function resourcesText(o: { peer: boolean; ifname: string }): string {
  const docs: object[] = [
    { kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    { kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: true } },
    { kind: 'IPPool', metadata: { name: 'pods' }, spec: { cidr: '10.66.0.0/16', blockSize: 26 } },
    { kind: 'Node', metadata: { name: 'host-a' }, spec: { bgp: { ipv4Address: '10.0.0.1/24' } } },
    { kind: 'BlockAffinity', metadata: { name: 'host-a-10-66-0-0-26' }, spec: { node: 'host-a', cidr: '10.66.0.0/26', state: 'confirmed', deleted: 'false' } },
    {
      kind: 'WorkloadEndpoint',
      metadata: { name: 'host--a-k8s-p1-eth0', namespace: 'default', labels: { 'projectcalico.org/namespace': 'default', 'projectcalico.org/orchestrator': 'k8s' } },
      spec: { orchestrator: 'k8s', node: 'host-a', pod: 'p1', endpoint: 'eth0', interfaceName: o.ifname, ipNetworks: ['10.66.0.2/32'] },
    },
  ];
  if (o.peer) docs.push({ kind: 'Node', metadata: { name: 'host-b' }, spec: { bgp: { ipv4Address: '10.0.0.99/24' } } });
  return docs.map((d) => `---\n${JSON.stringify({ apiVersion: 'projectcalico.org/v3', ...d })}\n`).join('');
}

t.test('STATUS= while waiting for a peer, READY=1 with a refused route, and the refusal in /readyz, status, /metrics', async (t) => {
  if (!requires(t, { root: true, commands: ['python3', 'curl'] })) return;
  const lab = new Lab();
  const dir = tmp();
  const procs: ChildProcess[] = [];
  t.teardown(() => {
    for (const p of procs) p.kill('SIGKILL');
    lab.destroy();
  });
  const ns = lab.ns('ops');
  lab.link(ns, ns, 'eth0', 'opsx0');
  lab.addr(ns, 'eth0', '10.0.0.1/24');

  // The sd_notify socket: a datagram socket, as systemd's; every message on its own line.
  const sock = join(dir, 'notify.sock');
  const notify = spawn('python3', ['-u', '-c', [
    'import socket,sys',
    's=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    `s.bind(${JSON.stringify(sock)})`,
    'print("bound", flush=True)',
    'while True:',
    '  m=s.recv(65536).decode()',
    '  print(m.replace("\\n"," | "), flush=True)',
  ].join('\n')], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(notify);
  const messages: string[] = [];
  let buf = '';
  notify.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    messages.push(...lines);
  });
  await until(() => messages.includes('bound'), 'the notify socket', 10_000);

  const resources = join(dir, 'resources.yaml');
  writeFileSync(resources, resourcesText({ peer: true, ifname: 'caliopsmissing' }));
  const cfg = join(dir, 'skein.yaml');
  const ctlSock = join(dir, 'skein.sock');
  writeFileSync(cfg, CFG({ socket: ctlSock, resources, fib: true, metrics: '"127.0.0.1:9187"' }));
  const log: string[] = [];
  const child = spawn('ip', ['netns', 'exec', ns, 'node', skeind, '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: sock } });
  procs.push(child);
  child.stdout!.on('data', (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean)));
  child.stderr!.on('data', (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean)));

  // The peer 10.0.0.99 never answers: the start says so and does not claim to be ready.
  await until(() => messages.some((m) => /^STATUS=starting: .*waiting for peers: 10\.0\.0\.99/.test(m)), 'STATUS= naming the peer', 20_000);
  t.ok(log.some((l) => /"msg":"starting: waiting".*10\.0\.0\.99/.test(l)), 'the log says the same');
  await new Promise((r) => setTimeout(r, 2000));
  t.notOk(messages.some((m) => m.startsWith('READY=1')), 'no READY=1 while the start-up peer is down');

  // The peer goes away (its Node is deleted): nothing holds the start back but the refused device route.
  writeFileSync(resources, resourcesText({ peer: false, ifname: 'caliopsmissing' }));
  await until(() => messages.some((m) => m.startsWith('READY=1')), 'READY=1', 30_000);
  const ready = messages.find((m) => m.startsWith('READY=1'))!;
  t.match(ready, /STATUS=(ready|running; not ready: .*refused by the kernel)/, 'READY=1 carries a STATUS');

  const sh = (c: string): Promise<{ code: number | null; out: string }> => runCommand('ip', ['netns', 'exec', ns, 'sh', '-c', c], { timeoutMs: 15_000 });
  // A route failing for 10 s is a persistent failure (sampled every 5 s).
  const readyz = await until(async () => {
    const r = await sh('curl -s -w " %{http_code}" http://127.0.0.1:9187/readyz');
    return / 503$/.test(r.out) && /refused by the kernel/.test(r.out) ? r.out : undefined;
  }, '/readyz reporting the refused route', 30_000);
  t.match(readyz, /not ready: 1 route refused by the kernel \(10\.66\.0\.2\/32: ENODEV/);
  const st = await runCommand('node', [skeinctl, '--socket', ctlSock, 'status', '--json'], { timeoutMs: 15_000 });
  const status = JSON.parse(st.out) as { ready: boolean; notReady?: string[] };
  t.equal(status.ready, false);
  t.match(status.notReady?.join(';'), /1 route refused by the kernel/);
  const metrics = (await sh('curl -s http://127.0.0.1:9187/metrics')).out;
  t.match(metrics, /^skein_fib_persistent_failures 1$/m);
  t.match(messages.filter((m) => m.startsWith('STATUS=')).at(-1), /not ready: 1 route refused by the kernel/, 'systemd status follows');

  // The interface appears: the route goes in and everything clears.
  lab.link(ns, ns, 'caliopsmissing', 'opsx1');
  await until(async () => / 200$/.test((await sh('curl -s -w " %{http_code}" http://127.0.0.1:9187/readyz')).out), '/readyz 200', 30_000);
  t.match((await sh('curl -s http://127.0.0.1:9187/metrics')).out, /^skein_fib_persistent_failures 0$/m);
  t.match(messages.filter((m) => m.startsWith('STATUS=')).at(-1), /^STATUS=ready$/);
  child.kill('SIGTERM');
  t.equal(await new Promise<number | null>((res) => child.once('exit', (c) => res(c))), 0);
});

t.test('an etcd CA file named in skein.yaml that does not exist: exit 2 (not restarted by systemd), one line', async (t) => {
  const dir = tmp();
  const cfg = join(dir, 'skein.yaml');
  writeFileSync(cfg, [
    'nodeName: host-a',
    `datastore: { type: etcd, etcd: { endpoints: [https://192.0.2.5:2379], tls: { ca: ${join(dir, 'missing-ca.pem')} } } }`,
    'bgp: { listen: { port: 1790 } }',
    'fib: { enabled: false }',
    `control: { socket: ${join(dir, 'skein.sock')} }`,
    'metrics: { listen: false }',
    '',
  ].join('\n'));
  const r = spawnSync('node', [skeind, '--config', cfg], { encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 2, `exit 2: ${r.stderr}`);
  t.match(r.stderr, /^skeind: cannot start: cannot read the etcd CA file .*missing-ca\.pem: ENOENT\n$/);
});
