// What one etcd watch event costs the process that receives it, with nothing else in the way: several watcher
// processes watch the same etcd prefix at once and each reports its own CPU (process.cpuUsage) between two marker
// puts, so every watcher sees the same puts at the same moments and the same machine load. Each put is awaited before
// the next (one event a wakeup, as Calico's CNI plugin writes one pod at a time).
// A watcher is skeind's etcd client (config/etcdclient.ts with etcdwatch.ts, no datastore) of a build: this one, or
// another checkout's (ROOTS, e.g. a worktree of main, to compare builds side by side); the watcher `tcp` is the floor:
// a plain TCP socket fed one 1 KB message per put by this process, read and dropped.
// Run: node dist/bench/etcd-watchers.js   (needs `etcd`; env N puts a repetition (2000), REPS (5), TLS=1 for etcd
// over TLS with client certificates, ROOTS: space-separated repository roots with a dist/, and `tcp`; default: this
// build and tcp). Ports 24365/24366.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTls, startEtcd, type TestTls } from '../test/helpers/etcd.js';
import type * as ClientModule from '../config/etcdclient.js';
import type * as WatchModule from '../config/etcdwatch.js';

const ME = fileURLToPath(import.meta.url);
const THIS_ROOT = resolve(ME, '..', '..', '..');

type Msg = { t: 'ready' } | { t: 'mark'; cpu: number };

/** One watcher process: report ready, then the CPU used so far at every marker event. */
async function watcher(root: string, endpoint: string): Promise<void> {
  const send = (m: Msg): void => { process.send?.(m); };
  const cpu = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  process.on('message', (m: { t: string }) => { if (m.t === 'exit') process.exit(0); });
  if (root === 'tcp') {
    const sock = connect(Number(endpoint), '127.0.0.1');
    sock.on('data', (d: Buffer) => { for (let i = 0; i < d.length; i += 1024) if (d[i] === 0x6d) send({ t: 'mark', cpu: cpu() }); });
    sock.on('connect', () => { send({ t: 'ready' }); });
    return;
  }
  const { EtcdClient } = await import(join(root, 'dist', 'config', 'etcdclient.js')) as typeof ClientModule;
  const { WatchStream } = await import(join(root, 'dist', 'config', 'etcdwatch.js')) as typeof WatchModule;
  const tf = process.env.WATCHERS_TLS !== undefined ? JSON.parse(process.env.WATCHERS_TLS) as TestTls : undefined;
  const client = new EtcdClient({ endpoints: [endpoint], ...(tf !== undefined ? { tls: { ca: readFileSync(tf.ca), cert: readFileSync(tf.clientCert), key: readFileSync(tf.clientKey) } } : {}) });
  const ws = new WatchStream(client, [{ key: Buffer.from('/w/'), end: Buffer.from('/w0'), startRevision: 0n }], {
    created: () => { send({ t: 'ready' }); },
    events: (_range, events) => { for (const e of events) if (e.kv.key[3] === 0x6d) send({ t: 'mark', cpu: cpu() }); },
    end: (e) => { console.error(`${root}: the watch ended: ${JSON.stringify(e)}`); process.exit(1); },
  });
  await ws.start();
}

async function main(): Promise<void> {
  const N = Number(process.env.N ?? 2000);
  const REPS = Number(process.env.REPS ?? 5);
  const roots = (process.env.ROOTS ?? `${THIS_ROOT} tcp`).split(/\s+/).filter((r) => r !== '');
  const dir = mkdtempSync(join(tmpdir(), 'skein-watchers-'));
  const tls = process.env.TLS === '1' ? makeTls(dir) : undefined;
  const etcd = await startEtcd(24365, 24366, tls !== undefined ? { tls } : {});
  const socks: Socket[] = [];
  const feed = createServer((s) => { socks.push(s); s.on('error', () => undefined); }).listen(0, '127.0.0.1');
  await once(feed, 'listening');
  const kids: { root: string; child: ChildProcess; inbox: Msg[]; wake?: (() => void) | undefined }[] = [];
  try {
    for (const root of roots) {
      const child = fork(ME, ['--watcher', root, root === 'tcp' ? String((feed.address() as AddressInfo).port) : etcd.endpoint], {
        env: { ...process.env, ...(tls !== undefined ? { WATCHERS_TLS: JSON.stringify(tls) } : {}) },
      });
      const k = { root, child, inbox: [] as Msg[], wake: undefined as (() => void) | undefined };
      child.on('message', (m: Msg) => { k.inbox.push(m); k.wake?.(); });
      kids.push(k);
    }
    const next = async (k: (typeof kids)[number], t: Msg['t']): Promise<Msg> => {
      for (let i = 0; i < 1_000_000; i++) {
        const at = k.inbox.findIndex((m) => m.t === t);
        if (at >= 0) return k.inbox.splice(at, 1)[0]!;
        await Promise.race([new Promise<void>((r) => { k.wake = r; }), new Promise((r) => setTimeout(r, 1000))]);
        if (k.child.exitCode !== null) throw new Error(`watcher ${k.root} exited`);
      }
      throw new Error(`no ${t} from ${k.root}`);
    };
    for (const k of kids) await next(k, 'ready');
    const poke = (mark: boolean): void => { const b = Buffer.alloc(1024, 0x61); if (mark) b[0] = 0x6d; for (const s of socks) s.write(b); };
    const c = etcd.client;
    const value = JSON.stringify({ kind: 'WorkloadEndpoint', spec: { node: 'n', ipNetworks: ['10.0.0.1/32'], pad: 'x'.repeat(900) } });
    const figures = kids.map(() => [] as string[]);
    const loads: string[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      loads.push(loadavg()[0]!.toFixed(1));
      await c.put(`/w/mark-a${rep}`).value('m');
      poke(true);
      const a = await Promise.all(kids.map((k) => next(k, 'mark')));
      for (let i = 0; i < N; i++) { await c.put(`/w/k${i % 100}`).value(value); poke(false); }
      await c.put(`/w/mark-b${rep}`).value('m');
      poke(true);
      const b = await Promise.all(kids.map((k) => next(k, 'mark')));
      kids.forEach((_k, j) => { figures[j]!.push((((b[j] as { cpu: number }).cpu - (a[j] as { cpu: number }).cpu) / (N + 1) * 1000).toFixed(1)); });
    }
    console.log(`µs of CPU per watch event, one put at a time (${N} puts x ${REPS}${tls !== undefined ? ', etcd over TLS' : ''}; load at each repetition ${loads.join(' ')}):`);
    kids.forEach((k, j) => { console.log(`  ${k.root === 'tcp' ? 'plain TCP, 1 KB a put (the floor)' : k.root}: ${figures[j]!.join(' ')}`); });
  } finally {
    for (const k of kids) { k.child.send({ t: 'exit' }); }
    await Promise.all(kids.filter((k) => k.child.exitCode === null).map((k) => once(k.child, 'exit')));
    for (const s of socks) s.destroy();
    feed.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--watcher') watcher(process.argv[3] as string, process.argv[4] as string).catch((e: unknown) => { console.error(e); process.exit(1); });
else main().catch((e: unknown) => { console.error(e); process.exit(1); });
