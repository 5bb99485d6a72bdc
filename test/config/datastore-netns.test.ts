// The etcd datastore against failures only a real network shows (issue #14): a half-open connection, where the
// etcd host vanishes without closing anything (its link deleted and the member killed), must be detected and
// reported within a bounded time (progress requests, not a 40 s keepalive), and the stream must resume once the
// member is back on the same address. etcd and the client (test/helpers/ds-agent.ts) run in two namespaces joined
// by a veth this test creates (10.99.0.0/24), removed on teardown.
// And a member partitioned from the majority of a 3-member cluster: with `hasleader` on the watch, it ends the
// stream instead of serving a silent, stale one; the client says so, and catches up once the partition heals.
// Members on a bridge (10.97.0.0/24, in a namespace of its own), the client reaching member 1 only (10.98.0.0/24).
import t from 'tap';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { requires } from '../helpers/env.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';

const AGENT = 'dist/test/helpers/ds-agent.js';
const ETCD = 'http://10.99.0.2:2379';

interface Line { event: string; state?: string; lastError?: string; kind?: string; id?: string; type?: string; size?: number }

t.test('half-open etcd connection: detected, reported, resumed', async (t) => {
  if (!requires(t as unknown as Parameters<typeof requires>[0], { root: true, commands: ['etcd', 'etcdctl'] })) return;
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const cli = lab.ns('dsc');
  const srv = lab.ns('dse');
  const link = (): void => {
    const [a, b] = lab.link(cli, srv, 'dsv0', 'dsv1');
    lab.addr(cli, a, '10.99.0.1/24');
    lab.addr(srv, b, '10.99.0.2/24');
  };
  link();
  const dir = mkdtempSync(join(tmpdir(), 'skein-dsns-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let etcd: ChildProcess | undefined;
  const startEtcd = async (): Promise<void> => {
    etcd = nsSpawn(srv, 'etcd', ['--name', 'm', '--data-dir', join(dir, 'data'), '--listen-client-urls', ETCD, '--advertise-client-urls', ETCD,
      '--listen-peer-urls', 'http://10.99.0.2:2380', '--initial-advertise-peer-urls', 'http://10.99.0.2:2380', '--initial-cluster', 'm=http://10.99.0.2:2380',
      '--heartbeat-interval', '10', '--election-timeout', '50', '--log-level', 'error', '--logger', 'zap'], { stdio: 'ignore' });
    await until(() => { try { nsExec(srv, 'etcdctl', ['--endpoints', ETCD, 'endpoint', 'health'], { timeoutMs: 3000 }); return true; } catch { return false; } }, 'etcd up', 20_000, 200);
  };
  const put = (name: string): void => {
    nsExec(srv, 'etcdctl', ['--endpoints', ETCD, 'put', `/calico/resources/v3/projectcalico.org/ippools/${name}`,
      JSON.stringify({ kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name }, spec: { cidr: `10.${60 + name.length}.0.0/16` } })]);
  };
  await startEtcd();
  t.teardown(() => { etcd?.kill('SIGKILL'); });
  put('p1');

  const agent = nsSpawn(cli, process.execPath, [AGENT, JSON.stringify([ETCD]), JSON.stringify({ progressMs: 1000, staleMs: 4000, backoffMinMs: 100, backoffMaxMs: 1000, dialTimeoutMs: 2000 })]);
  t.teardown(() => { if (agent.exitCode === null) agent.kill('SIGKILL'); });
  const lines: Line[] = [];
  createInterface({ input: agent.stdout! }).on('line', (l) => { try { lines.push(JSON.parse(l) as Line); } catch { /* not ours */ } });
  const status = (): Line | undefined => lines.filter((l) => l.event === 'status').at(-1);
  await until(() => status()?.state === 'synced', 'the agent synced', 20_000);
  await until(() => lines.some((l) => l.event === 'model' && l.size === 1), 'the pool in the model', 5000);

  // the etcd host vanishes: no FIN, no RST
  nsExec(cli, 'ip', ['link', 'del', 'dsv0']);
  etcd?.kill('SIGKILL');
  // bounded by the progress requests (1 s) and staleMs (4 s); gRPC keepalive alone would take 40 s
  await until(() => status()?.state === 'disconnected', 'the half-open stream reported', 15_000, 100);
  const s = status();
  t.match(s?.lastError, /stale|broken|UNAVAILABLE|deadline/i, `reported: ${s?.lastError}`);

  // back on the same address, with a change made meanwhile (by the restarted member)
  link();
  await startEtcd();
  put('p22');
  await until(() => lines.some((l) => l.event === 'change' && l.id === 'p22' && l.type === 'added'), 'the change after the member came back', 30_000, 100);
  await until(() => status()?.state === 'synced', 'synced again', 15_000);
  t.equal(lines.filter((l) => l.event === 'change' && l.id === 'p22').length, 1, 'once');
  agent.kill('SIGTERM');
});

t.test('a member cut off from the majority: require-leader ends the watch, the client reports it, then catches up', async (t) => {
  if (!requires(t as unknown as Parameters<typeof requires>[0], { root: true, commands: ['etcd', 'etcdctl'] })) return;
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const fab = lab.ns('dsf');
  nsExec(fab, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  nsExec(fab, 'ip', ['link', 'set', 'br0', 'up']);
  const members = [1, 2, 3].map((i) => ({ i, ns: lab.ns(`dsm${i}`), ip: `10.97.0.${i}`, dev: '' }));
  for (const m of members) {
    const [a, b] = lab.link(fab, m.ns);
    nsExec(fab, 'ip', ['link', 'set', a, 'master', 'br0']);
    lab.addr(m.ns, b, `${m.ip}/24`);
    m.dev = b;
  }
  const cli = lab.ns('dsc');
  const m1 = members[0]!;
  const [ca, cb] = lab.link(cli, m1.ns);
  lab.addr(cli, ca, '10.98.0.1/24');
  lab.addr(m1.ns, cb, '10.98.0.2/24');
  const dir = mkdtempSync(join(tmpdir(), 'skein-dspart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cluster = members.map((m) => `m${m.i}=http://${m.ip}:2380`).join(',');
  const procs: ChildProcess[] = [];
  t.teardown(() => { for (const p of procs) p.kill('SIGKILL'); });
  for (const m of members) {
    const client = m.i === 1 ? `http://${m.ip}:2379,http://10.98.0.2:2379` : `http://${m.ip}:2379`;
    procs.push(nsSpawn(m.ns, 'etcd', ['--name', `m${m.i}`, '--data-dir', join(dir, `m${m.i}`), '--listen-client-urls', client, '--advertise-client-urls', `http://${m.ip}:2379`,
      '--listen-peer-urls', `http://${m.ip}:2380`, '--initial-advertise-peer-urls', `http://${m.ip}:2380`, '--initial-cluster', cluster,
      '--initial-cluster-state', 'new', '--heartbeat-interval', '20', '--election-timeout', '200', '--log-level', 'error', '--logger', 'zap'], { stdio: 'ignore' }));
  }
  const ctl = (m: typeof m1, ...args: string[]): string => nsExec(m.ns, 'etcdctl', ['--endpoints', `http://${m.ip}:2379`, '--command-timeout', '3s', ...args], { timeoutMs: 5000 });
  await until(() => { try { ctl(members[1]!, 'put', '/x', 'y'); return true; } catch { return false; } }, 'the cluster has a leader', 30_000, 250);
  const put = (m: typeof m1, name: string): string => ctl(m, 'put', `/calico/resources/v3/projectcalico.org/ippools/${name}`,
    JSON.stringify({ kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name }, spec: { cidr: `10.${60 + name.length}.0.0/16` } }));
  put(members[1]!, 'p1');

  const agent = nsSpawn(cli, process.execPath, [AGENT, JSON.stringify(['http://10.98.0.2:2379']), JSON.stringify({ progressMs: 1000, staleMs: 4000, backoffMinMs: 100, backoffMaxMs: 1000, dialTimeoutMs: 2000 })]);
  t.teardown(() => { if (agent.exitCode === null) agent.kill('SIGKILL'); });
  const lines: Line[] = [];
  createInterface({ input: agent.stdout! }).on('line', (l) => { try { lines.push(JSON.parse(l) as Line); } catch { /* not ours */ } });
  const status = (): Line | undefined => lines.filter((l) => l.event === 'status').at(-1);
  await until(() => status()?.state === 'synced', 'the agent synced', 20_000);

  // cut member 1 off from the others; the client still reaches it
  nsExec(m1.ns, 'ip', ['link', 'set', m1.dev, 'down']);
  await until(() => { try { put(members[1]!, 'p22'); return true; } catch { return false; } }, 'the majority writes on', 20_000, 250);
  await until(() => status()?.state === 'disconnected', 'the lost leader reported', 20_000, 100);
  t.match(status()?.lastError, /leader/i, `says why: ${status()?.lastError}`);
  t.notOk(lines.some((l) => l.event === 'change' && l.id === 'p22'), 'the change on the majority side is not seen yet');
  t.not(status()?.state, 'synced', 'and not reported as synced');

  nsExec(m1.ns, 'ip', ['link', 'set', m1.dev, 'up']);
  await until(() => lines.some((l) => l.event === 'change' && l.id === 'p22'), 'the change once healed', 30_000, 100);
  await until(() => status()?.state === 'synced', 'synced again', 15_000);
  t.equal(lines.filter((l) => l.event === 'change' && l.id === 'p22').length, 1, 'once');
  agent.kill('SIGTERM');
});
