// skeind says it is ready (/readyz 200, sd_notify READY=1, the "ready" log line) only once the datastore's first
// snapshot is in force and the BGP speaker listens (issue #14: with the BGP port taken it logged "ready" and then
// died), and, once ready, a datastore outage does not make it unready: it keeps routing on the last known state, as
// Calico's confd keeps BIRD's configuration, and the outage shows in skein_datastore_state instead. The real skeind
// (dist/), loopback only, FIB disabled (no root needed); ports of this file 24411-24414; a real datagram socket as
// systemd's notify socket.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { until } from '../helpers/etcd.js';

const skeind = join(`${import.meta.dirname}/..`, '..', 'dist/src/skeind.js');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function hold(port: number): Promise<Server> {
  const s = createServer();
  s.listen(port, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

/** A datagram socket standing in for systemd's NOTIFY_SOCKET: each message, its newlines as ' | ', in `messages`. */
async function notifySocket(t: Test, path: string): Promise<string[]> {
  const p = spawn('python3', ['-u', '-c', [
    'import socket',
    's=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    `s.bind(${JSON.stringify(path)})`,
    'print("bound", flush=True)',
    'while True:',
    '  m=s.recv(65536).decode()',
    '  print(m.replace("\\n"," | "), flush=True)',
  ].join('\n')], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => { p.kill('SIGKILL'); });
  const messages: string[] = [];
  createInterface({ input: p.stdout }).on('line', (l) => messages.push(l));
  await until(() => messages.includes('bound'), 'the notify socket', 10_000);
  return messages;
}

/** Every event of a run in the order seen here: log lines by their msg, /readyz answers, notify messages. */
interface Run { child: ChildProcess; events: string[]; stderr: string; exit: Promise<number | null> }

function start(t: Test, config: string, notify: string, metrics: string, messages: string[]): Run {
  const child = spawn(process.execPath, [skeind, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: notify } });
  const run: Run = { child, events: [], stderr: '', exit: once(child, 'exit').then(([c]) => c as number | null) };
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      const j = JSON.parse(l) as { msg?: string; state?: string };
      run.events.push(`log ${j.msg ?? ''}${j.state !== undefined ? ` ${j.state}` : ''}`);
    } catch { run.events.push(`log? ${l}`); }
  });
  child.stderr!.on('data', (d: Buffer) => { run.stderr += d.toString(); });
  // the notify messages and /readyz, sampled into the same order every 20 ms until the process exits (bounded)
  let seen = 0;
  let polling = true;
  void run.exit.then(() => { polling = false; });
  void (async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set when the process exits, while this loop awaits
    for (let i = 0; i < 3000 && polling; i++) {
      for (; seen < messages.length; seen++) if (messages[seen] !== 'bound') run.events.push(`notify ${messages[seen] ?? ''}`);
      try {
        const r = await fetch(`http://${metrics}/readyz`, { signal: AbortSignal.timeout(2000) });
        run.events.push(`readyz ${r.status}`);
      } catch { /* not listening yet, or gone */ }
      await sleep(20);
    }
  })();
  return run;
}

const resources = (node: string): string => [
  'apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata: { name: default }\nspec: { datastoreReady: true }\n',
  `apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: { name: ${node} }\nspec: { bgp: { ipv4Address: 127.0.0.1/8 } }\n`,
].join('---\n');

function config(dir: string, o: { bgpPort: number; metrics: string; name: string }): string {
  const f = join(dir, `${o.name}.yaml`);
  writeFileSync(f, `nodeName: ready-a\ndatastore: { type: file, path: ${join(dir, 'resources.yaml')} }\nbgp: { listen: { address: 127.0.0.1, port: ${o.bgpPort} } }\n`
    + `fib: { enabled: false }\ncontrol: { socket: ${join(dir, `${o.name}.sock`)} }\nmetrics: { listen: "${o.metrics}" }\n`);
  return f;
}

t.test('the BGP port in use: never ready, exit 2 naming the field', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-ready-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'resources.yaml'), resources('ready-a'));
  const messages = await notifySocket(t, join(dir, 'notify.sock'));
  const held = await hold(24412);
  t.teardown(() => held.close());
  const run = start(t, config(dir, { bgpPort: 24412, metrics: '127.0.0.1:24411', name: 'held' }), join(dir, 'notify.sock'), '127.0.0.1:24411', messages);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), 30_000);
  const code = await run.exit;
  clearTimeout(timer);
  await sleep(100);
  t.equal(code, 2, 'a setting to fix: exit 2');
  t.match(run.stderr, /skeind: bgp\.listen\.port: cannot listen on 127\.0\.0\.1:24412: EADDRINUSE/, 'the message names the config field');
  t.ok(run.events.includes('log datastore status synced'), 'the datastore did sync (the moment "ready" used to be said)');
  t.notOk(run.events.some((e) => e === 'log ready'), 'no "ready" log line');
  t.notOk(run.events.some((e) => e.startsWith('notify READY=1')), 'no READY=1 to systemd');
  t.notOk(run.events.includes('readyz 200'), '/readyz never 200');
  // (whether /readyz was asked at all before the exit depends on the machine's load: said, not asserted)
  t.comment(`/readyz answers seen: ${run.events.filter((e) => e.startsWith('readyz')).length}`);
});

t.test('ready only after the snapshot is in force and BGP listens; a datastore outage after that keeps it ready', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-ready-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'resources.yaml');
  writeFileSync(file, resources('ready-a'));
  const messages = await notifySocket(t, join(dir, 'notify.sock'));
  const metrics = '127.0.0.1:24413';
  const run = start(t, config(dir, { bgpPort: 24414, metrics, name: 'ok' }), join(dir, 'notify.sock'), metrics, messages);
  await until(() => run.events.includes('readyz 200'), '/readyz 200', 30_000);
  const at = (e: string): number => run.events.indexOf(e);
  const listening = at('log BGP speaker listening');
  t.ok(listening >= 0, 'the speaker listens');
  t.ok(at('log ready') > listening, 'the "ready" line after the speaker listens');
  t.ok(at('readyz 200') > listening, '/readyz 200 only after it');
  await until(() => run.events.some((e) => e.startsWith('notify READY=1')), 'READY=1', 10_000);
  const ready = run.events.findIndex((e) => e.startsWith('notify READY=1'));
  t.ok(ready > listening, 'READY=1 after it');
  t.notOk(run.events.slice(0, listening).includes('readyz 200'), 'no 200 before');

  // The outage: the file gone (what an unreachable etcd is to the etcd backend). The node keeps its state, says
  // "disconnected" in its metrics and log, and stays ready.
  const mark = run.events.length;
  renameSync(file, `${file}.away`);
  await until(() => run.events.slice(mark).includes('log datastore status disconnected'), 'the datastore disconnected', 40_000);
  const m = await (await fetch(`http://${metrics}/metrics`)).text();
  t.match(m, /skein_datastore_state\{state="disconnected"\} 1/, 'the outage in skein_datastore_state');
  const during = run.events.length;
  await sleep(1000);
  t.notOk(run.events.slice(mark).includes('readyz 503'), '/readyz stayed 200 through the outage');
  t.ok(run.events.slice(during).filter((e) => e === 'readyz 200').length > 0, 'and was asked meanwhile');
  t.notOk(run.events.slice(mark).includes('log not ready'), 'no "not ready" line');
  renameSync(`${file}.away`, file);
  await until(() => run.events.slice(during).includes('log datastore status synced'), 'synced again', 40_000);
  run.child.kill('SIGTERM');
  const timer = setTimeout(() => run.child.kill('SIGKILL'), 15_000);
  t.equal(await run.exit, 0, 'a clean stop');
  clearTimeout(timer);
});
