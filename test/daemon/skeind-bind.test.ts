// Every listening socket skeind cannot bind exits 2 with one stderr line naming the config field (issue #14):
// the metrics/health port, the control socket, and the BGP port, which is bound only once the datastore says
// which address and port (so skeind must not log "ready" and then die with 1). Loopback only, ports of this
// file 24351-24354; no root needed (fib disabled).
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const skeind = join(`${import.meta.dirname}/..`, '..', 'dist/src/skeind.js');

async function hold(port: number): Promise<Server> {
  const s = createServer();
  s.listen(port, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

/** Run skeind until it exits (bounded: killed after 20 s). */
async function run(config: string): Promise<{ code: number | null; stderr: string }> {
  const p = spawn(process.execPath, [skeind, '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
  const [code] = (await once(p, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stderr };
}

t.test('a socket that cannot be bound exits 2 naming the field', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-bind-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'resources.yaml'), [
    'apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata: { name: default }\nspec: { datastoreReady: true }\n',
    'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: { name: bind-a }\nspec: { bgp: { ipv4Address: 127.0.0.1/8 } }\n',
  ].join('---\n'));
  const config = (o: { metrics: string; socket: string; bgpPort: number }): string => {
    const f = join(dir, `skein-${o.bgpPort}-${o.metrics.replace(/\W/g, '')}.yaml`);
    writeFileSync(f, `nodeName: bind-a\ndatastore: { type: file, path: ${join(dir, 'resources.yaml')} }\nbgp: { listen: { address: 127.0.0.1, port: ${o.bgpPort} } }\n`
      + `fib: { enabled: false }\ncontrol: { socket: ${o.socket} }\nmetrics: { listen: "${o.metrics}" }\n`);
    return f;
  };
  const metricsHeld = await hold(24351);
  t.teardown(() => metricsHeld.close());
  const bgpHeld = await hold(24352);
  t.teardown(() => bgpHeld.close());

  await t.test('metrics.listen in use', async (t) => {
    const r = await run(config({ metrics: '127.0.0.1:24351', socket: join(dir, 'a.sock'), bgpPort: 24354 }));
    t.equal(r.code, 2);
    t.match(r.stderr, /skeind: metrics\.listen: cannot listen on 127\.0\.0\.1:24351: EADDRINUSE/);
  });
  await t.test('control.socket under a regular file', async (t) => {
    const r = await run(config({ metrics: '127.0.0.1:24353', socket: join(dir, 'resources.yaml', 'b.sock'), bgpPort: 24354 }));
    t.equal(r.code, 2);
    t.match(r.stderr, /skeind: control\.socket: cannot listen on .*b\.sock: (ENOTDIR|ENOENT|EEXIST)/);
  });
  await t.test('the BGP port in use', async (t) => {
    const r = await run(config({ metrics: '127.0.0.1:24353', socket: join(dir, 'c.sock'), bgpPort: 24352 }));
    t.equal(r.code, 2);
    t.match(r.stderr, /skeind: bgp\.listen\.port: cannot listen on 127\.0\.0\.1:24352: EADDRINUSE/);
  });
});
