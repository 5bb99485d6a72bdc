// skeinctl against two real skeind Daemons (in-process, FIB off) peering over loopback: `watch` shows the session
// coming up, the learned best path and the kernel write it causes, and stops costing anything once its client
// leaves; `routes --peer X --received|--advertised` show a peer's Adj-RIB-In and Adj-RIB-Out; `routes` shows each
// path's age; `peers` shows timers, the local address, the router ID and the negotiated capabilities; `runtime`
// reports the event-loop delay.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDaemonConfig } from '../../config/index.js';
import { streamControl } from '../../src/control/client.js';
import { callControl } from '../../src/control/index.js';
import { EXIT, runCtlCommand, type CtlIo } from '../../src/ctl/index.js';
import { renderWatchEvent } from '../../src/ctl/watch.js';
import { Daemon } from '../../src/daemon.js';
import { until } from '../helpers/netns.js';

const dir = mkdtempSync(join(tmpdir(), 'skc-daemon-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const port = 33000 + (process.pid % 2000);
const resources = [
  `kind: BGPConfiguration\nmetadata: { name: default }\nspec: { asNumber: 64512, listenPort: ${port}, bindMode: NodeIP }`,
  'kind: IPPool\nmetadata: { name: pods }\nspec: { cidr: 10.65.0.0/16, blockSize: 26 }',
  'kind: Node\nmetadata: { name: node-1 }\nspec: { bgp: { ipv4Address: 127.0.0.1/8 } }',
  'kind: Node\nmetadata: { name: node-2 }\nspec: { bgp: { ipv4Address: 127.0.0.2/8 } }',
  'kind: BlockAffinity\nmetadata: { name: node-1-10-65-0-0-26 }\nspec: { node: node-1, cidr: 10.65.0.0/26, state: confirmed, deleted: "false" }',
  'kind: BlockAffinity\nmetadata: { name: node-2-10-65-0-64-26 }\nspec: { node: node-2, cidr: 10.65.0.64/26, state: confirmed, deleted: "false" }',
].map((d) => `---\napiVersion: projectcalico.org/v3\n${d}\n`).join('');

function memoryIo(): CtlIo & { out: string; err: string } {
  const io = { out: '', err: '', env: {}, now: () => new Date(), stdout(s: string) { io.out += s; }, stderr(s: string) { io.err += s; } };
  return io;
}

t.test('watch, per-peer views, path age, peer details on a live daemon', async (t) => {
  mkdirSync(join(dir, 'run'));
  const res = join(dir, 'resources.yaml');
  writeFileSync(res, resources);
  const daemons: Daemon[] = [];
  t.teardown(async () => {
    for (const d of daemons) await d.stop('test over');
  });
  const sock = (n: string): string => join(dir, 'run', `${n}.sock`);
  for (const n of ['node-1', 'node-2']) {
    const file = join(dir, `${n}.yaml`);
    writeFileSync(file, [`nodeName: ${n}`, `datastore: { type: file, path: ${res}, debounce: 20ms }`, 'fib: { enabled: false }',
      `control: { socket: ${sock(n)} }`, 'metrics: { listen: "" }', 'log: { level: warn }', ''].join('\n'));
    const d = new Daemon(loadDaemonConfig(file, {}), { logSink: () => undefined, env: {} });
    daemons.push(d);
    await d.start();
    // watch node-1 from before node-2 exists
    if (n === 'node-1') {
      const events: Record<string, unknown>[] = [];
      const ac = new AbortController();
      const watching = streamControl(sock(n), 'watch', {}, { onRows: (r) => void events.push(...(r as Record<string, unknown>[])) }, { signal: ac.signal }).catch((e: Error) => e);
      t.teardown(() => ac.abort());
      (t.context as { events: typeof events; ac: AbortController; watching: Promise<unknown> }) = { events, ac, watching };
    }
  }
  const [d1] = daemons as [Daemon, Daemon];
  const { events, ac, watching } = t.context as { events: Record<string, unknown>[]; ac: AbortController; watching: Promise<unknown> };
  await until(() => d1.routesJson('10.65.0.64/26').routes.length === 1, 'node-1 learns node-2\'s block', 15_000, 50);
  await until(() => events.some((e) => e.type === 'fib' && e.prefix === '10.65.0.64/26'), 'the watch shows the kernel write', 10_000, 50);

  t.equal(d1.speaker!.rib.trackBest, true, 'a watcher: the speaker records best-path changes for it');
  const peerUp = events.find((e) => e.type === 'peer' && e.peer === '127.0.0.2' && e.state === 'Established');
  t.ok(peerUp, 'watch: the session coming up');
  const best = events.find((e) => e.type === 'best' && e.prefix === '10.65.0.64/26');
  t.match(best, { from: '127.0.0.2', nextHops: ['127.0.0.2'], gone: false }, 'watch: the learned best path');
  t.match(events.find((e) => e.type === 'fib' && e.prefix === '10.65.0.64/26'), { action: 'set', kind: 'bgp', nextHops: ['127.0.0.2'] }, 'watch: the route handed to the kernel');
  t.ok(events.every((e) => typeof e.time === 'string'), 'every event has a time');
  t.match(renderWatchEvent(best!), /best {3}10\.65\.0\.64\/26 from 127\.0\.0\.2 via 127\.0\.0\.2$/);
  t.match(renderWatchEvent(peerUp!), /peer {3}127\.0\.0\.2 \w+ -> Established/);
  t.ok(d1.watch.active, 'a watcher is registered');
  ac.abort();
  await watching;
  await until(() => !d1.watch.active, 'the watcher to be gone once its client left', 5000, 20);
  t.equal(d1.speaker!.rib.trackBest, false, 'fib.enabled false: best-path changes are recorded only while someone watches');
  t.pass('the watch ends with its client');

  const ctl = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    const io = memoryIo();
    const code = await runCtlCommand(['--socket', sock('node-1'), ...argv], io);
    return { code, out: io.out, err: io.err };
  };
  const rows = (s: string): Record<string, unknown>[] => s.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

  const rx = await ctl(['routes', '--peer', '127.0.0.2', '--received', '--jsonl']);
  t.equal(rx.code, EXIT.OK, rx.err);
  t.match(rows(rx.out), [{ prefix: '10.65.0.64/26', peer: '127.0.0.2', paths: [{ from: '127.0.0.2', accepted: true, best: true }] }], 'Adj-RIB-In of node-2');
  t.equal(rows(rx.out).length, 1, 'only what node-2 sent');
  const tx = await ctl(['routes', '--peer', '127.0.0.2', '--advertised', '--jsonl']);
  t.equal(tx.code, EXIT.OK, tx.err);
  t.match(rows(tx.out), [{ prefix: '10.65.0.0/26', peer: '127.0.0.2', paths: [{ reason: 'advertised' }] }], 'Adj-RIB-Out to node-2: our own block');
  t.match((await ctl(['routes', '--peer', '127.0.0.2', '--advertised'])).out, /^10\.65\.0\.0\/26 {2}advertised to 127\.0\.0\.2, 1 path\n/);
  const unknown = await ctl(['routes', '--peer', '192.0.2.99', '--advertised']);
  t.equal(unknown.code, EXIT.DAEMON_ERROR);
  t.match(unknown.err, /no configured peer 192\.0\.2\.99/);

  const all = rows((await ctl(['routes', '--jsonl'])).out);
  const learned = all.find((r) => r.prefix === '10.65.0.64/26') as { paths: { since: string }[] };
  t.ok(Date.now() - Date.parse(learned.paths[0]!.since) < 60_000, 'each path says when it was announced');
  t.match((await ctl(['routes', '10.65.0.64/26'])).out, /AGE\n/, 'the text shows its age');

  const peers = (await callControl(sock('node-1'), 'peers')) as { peers: Record<string, unknown>[] };
  const p2 = peers.peers.find((p) => p.address === '127.0.0.2')!;
  t.match(p2, {
    state: 'Established', localAddress: '127.0.0.1', routerId: '127.0.0.2', holdTime: Number, keepaliveTime: Number, configuredHoldTime: Number,
    capabilities: { families: ['ipv4-unicast'], fourOctetAs: true, addPath: { receive: Array, send: Array } },
  }, 'timers, local address, router ID and capabilities');
  const text = await ctl(['peers']);
  t.match(text.out, /Hold time: +\d+s, keepalive \d+s \(configured \d+s\)/);
  t.match(text.out, /Capabilities: +4-octet AS/);
  t.match(text.out, /Local address: +127\.0\.0\.1 port \d+/);

  const rt = (await callControl(sock('node-1'), 'runtime', { reset: true })) as { eventLoopDelay: { p99: number; samples: number }; control: { active: number } };
  t.ok(rt.eventLoopDelay.samples > 0 && rt.eventLoopDelay.p99 >= 0, 'runtime: event-loop delay measured');
  t.equal(rt.control.active, 0);
  const bad = await ctl(['watch', '--kinds', 'nonsense']);
  t.equal(bad.code, EXIT.DAEMON_ERROR);
  t.match(bad.err, /unknown event type "nonsense"/);
});
