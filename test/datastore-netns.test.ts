// The etcd datastore against failures only a real network shows (issue #14): a half-open connection, where the
// etcd host vanishes without closing anything (its link deleted and the member killed), must be detected and
// reported within a bounded time (progress requests, not a 40 s keepalive), and the stream must resume once the
// member is back on the same address. etcd and the client (test/helpers/ds-agent.ts) run in two namespaces joined
// by a veth this test creates (10.99.0.0/24), removed on teardown.
import t from 'tap';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { requires } from './helpers/env.js';
import { Lab, nsExec, nsSpawn, until } from './helpers/netns.js';

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
