// What a skeind that does nothing is made of (issue #16, "the per-host footprint"): the resident memory of a bare
// node process (the reference, measured in the same run), of node after importing each dependency on its own, of
// node after importing the daemon's whole module graph, and of a running skeind with a file datastore holding
// only its own Node (no peers, FIB off) once idle — with its V8 heap and off-heap parts as it reports them.
// Each figure is one fresh process after a full GC, median of 3. With `etcd` on PATH, also a running skeind on an
// etcd datastore (a local etcd holding its own Node), which is how most hosts run.
//
// Run: npm run bench -- footprint
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEtcd, type TestEtcd } from '../test/helpers/etcd.js';

const root = resolve(import.meta.dirname, '..', '..');
const mib = (b: number): string => (b / 1048576).toFixed(1);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

interface Mem { rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number }

/** RSS and heap of a fresh node after importing `spec` (nothing: '') and a full GC. */
function imported(spec: string): Mem {
  const code = `${spec === '' ? '' : `await import(${JSON.stringify(spec)});`} globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); globalThis.gc(); process.stdout.write(JSON.stringify(process.memoryUsage()));`;
  const runs: Mem[] = [];
  for (let i = 0; i < 3; i++) {
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`import ${spec}: ${r.stderr}`);
    runs.push(JSON.parse(r.stdout) as Mem);
  }
  const pick = (k: keyof Mem): number => median(runs.map((m) => m[k]));
  return { rss: pick('rss'), heapUsed: pick('heapUsed'), heapTotal: pick('heapTotal'), external: pick('external'), arrayBuffers: pick('arrayBuffers') };
}

const rows: [string, string][] = [
  ['node, nothing imported (reference)', ''],
  ['prom-client', 'prom-client'],
  ['etcd3 (and gRPC)', 'etcd3'],
  ['@grpc/grpc-js alone', '@grpc/grpc-js'],
  ['yaml', 'yaml'],
  ['netlink', 'netlink'],
  ['ip-address', 'ip-address'],
  ['bgp/ (the engine)', join(root, 'dist', 'bgp', 'index.js')],
  ['fib/', join(root, 'dist', 'fib', 'index.js')],
  ['config/', join(root, 'dist', 'config', 'index.js')],
  ['src/daemon.js (every module skeind loads)', join(root, 'dist', 'src', 'daemon.js')],
];
console.log('| what is imported | RSS MiB | over bare node | V8 heap used MiB | external MiB |');
console.log('|---|---:|---:|---:|---:|');
let base = 0;
for (const [what, spec] of rows) {
  const m = imported(spec);
  if (spec === '') base = m.rss;
  console.log(`| ${what} | ${mib(m.rss)} | ${spec === '' ? '—' : `+${mib(m.rss - base)}`} | ${mib(m.heapUsed)} | ${mib(m.external)} |`);
}

// A running skeind, idle: its own Node only, file datastore, FIB off, no /metrics listener.
const dir = mkdtempSync(join(tmpdir(), 'skein-footprint-'));
try {
  writeFileSync(join(dir, 'resources.yaml'), [
    'kind: BGPConfiguration\nmetadata: { name: default }\nspec: { asNumber: 64512, nodeToNodeMeshEnabled: false }',
    'kind: Node\nmetadata: { name: fp }\nspec: { bgp: { ipv4Address: 127.0.0.1/8 } }',
  ].map((d) => `---\n${d}\n`).join(''));
  const withMetrics = (on: boolean): string => [
    'nodeName: fp',
    `datastore: { type: file, path: ${join(dir, 'resources.yaml')} }`,
    `bgp: { listen: { address: 127.0.0.1, port: ${on ? 18180 : 18179} } }`,
    'fib: { enabled: false }',
    `control: { socket: ${join(dir, on ? 'm.sock' : 's.sock')} }`,
    `metrics: { listen: ${on ? '"127.0.0.1:19181"' : '""'} }`,
    'log: { level: warn }',
  ].join('\n');
  let etcd: TestEtcd | undefined;
  if (spawnSync('etcd', ['--version']).status === 0) {
    etcd = await startEtcd(24371, 24372);
    await etcd.client.put('/calico/resources/v3/projectcalico.org/bgpconfigurations/default').value(JSON.stringify({ kind: 'BGPConfiguration', apiVersion: 'projectcalico.org/v3', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: false } }));
    await etcd.client.put('/calico/resources/v3/projectcalico.org/nodes/fp').value(JSON.stringify({ kind: 'Node', apiVersion: 'projectcalico.org/v3', metadata: { name: 'fp' }, spec: { bgp: { ipv4Address: '127.0.0.1/8' } } }));
  }
  const runs: [string, boolean][] = [['file', false], ['file', true], ...(etcd !== undefined ? [['etcd', false] as [string, boolean]] : [])];
  for (const [store, metrics] of runs) {
    const cfg = join(dir, `skein-${store}-${metrics}.yaml`);
    writeFileSync(cfg, store === 'etcd' && etcd !== undefined
      ? withMetrics(metrics).replace(/^datastore: .*$/m, `datastore: { type: etcd, etcd: { endpoints: [${etcd.endpoint}] } }`).replace('s.sock', 'e.sock')
      : withMetrics(metrics));
    const rss: number[] = [];
    const settled: number[] = [];
    const vmRss = (pid: number | undefined): number => {
      const st = existsSync(`/proc/${pid}/status`) ? readFileSync(`/proc/${pid}/status`, 'utf8') : '';
      return Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? NaN) * 1024;
    };
    for (let i = 0; i < 3; i++) {
      const p = spawn(process.execPath, [join(root, 'dist', 'src', 'skeind.js'), '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const exited = new Promise((r) => p.once('exit', r));
      const sock = join(dir, store === 'etcd' ? 'e.sock' : metrics ? 'm.sock' : 's.sock');
      for (let k = 0; k < 100 && !existsSync(sock); k++) await sleep(50);
      await sleep(3000); // start-up garbage collected, timers settled
      const early = vmRss(p.pid);
      // src/daemon/memory.ts collects again ~6 s after the first list so V8 can shrink its young generation: the
      // second reading is what a host that has been up a while holds.
      await sleep(9000);
      const late = vmRss(p.pid);
      p.kill('SIGTERM');
      await exited;
      if (!Number.isFinite(early) || !Number.isFinite(late)) throw new Error(`skeind did not run: ${err}`);
      rss.push(early);
      settled.push(late);
    }
    const what = `skeind running, idle, ${store} datastore, no peers, FIB off, /metrics ${metrics ? 'on' : 'off'}`;
    console.log(`| ${what}, 3 s after start | ${mib(median(rss))} | +${mib(median(rss) - base)} | — | — |`);
    console.log(`| ${what}, 12 s after start | ${mib(median(settled))} | +${mib(median(settled) - base)} | — | — |`);
  }
  await etcd?.stop();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`\n(node ${process.version}; each row one fresh process after a full GC, median of 3; skeind rows: VmRSS 3 s and 12 s after start)`);
