// The etcd datastore at Calico scale (issue #14's target): 1,000 nodes, 100,000 WorkloadEndpoints (100 per node),
// Calico's default /26 IPAM blocks (two per node, full and half full), their affinities, and the 100,000 IPAM
// handles Calico writes (which skein does not list). One EtcdDatastore against a real etcd on loopback:
// One host's EtcdDatastore (read for its own node, as skeind reads it: nodeName bench-node-0) runs in a child process,
// so its CPU and RSS are its own: time to the first snapshot, RSS idle and after the sync, the CPU each other node's
// WorkloadEndpoint change costs it, and the latency of its own node's changes (etcd put -> 'change' event).
// Then, as root, the real skeind end to end against the same etcd (bench/datastore-e2e.ts): the whole benchmark runs
// in a network namespace of its own (etcd on its loopback, skeind's routes in its kernel); skeind is started once on a
// datastore holding only its own node's records (the reference: its idle RSS, its start) and once on the full one,
// and reports time to ready, to its own pod routes in the kernel, RSS, and the latency from a WorkloadEndpoint put to
// its route in the kernel. The datastore-alone figures above are printed beside it.
// Run: npm run bench -- datastore-etcd   (needs `etcd` on PATH; env NODES, PODS_PER_NODE to scale; SCOPE=all reads
// every node's records as before issue #16; CPU_PROF=dir profiles the host process; SINGLE_PROF=file.cpuprofile
// profiles the host during the one-put-at-a-time phase only (SINGLE_PUTS of them, default 300); E2E=0 skips skeind;
// DS_BENCH_SETTLE_S: seconds from skeind's ready to reading its RSS, default 10; SKEIND_PUTS: other nodes' single
// puts timed on skeind end to end, default 400, at SKEIND_PUT_RATE a second, default 20; DS_BENCH_ROOT: a repository
// root with a dist/ whose EtcdDatastore and skeind are measured instead of this build's, to compare builds with the
// same benchmark)
// skeind's CPU per other node's put: its threads' run time (/proc/<pid>/task/*/schedstat, nanoseconds; /proc/<pid>/stat
// counts in 10 ms ticks, too coarse for ~60 ms of work) over the puts, less its idle rate measured in windows of the
// same length before and after (its timers, the watch's progress requests).
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { getHeapSpaceStatistics } from 'node:v8';
import { PerformanceObserver } from 'node:perf_hooks';
import { Session } from 'node:inspector';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as ConfigModule from '../config/index.js';
import type * as ClientModule from '../config/etcdclient.js';
import { RouteWatch, etcdDatastore, flushRoutes, loadAvg as la, memText, type MemStat, printTable, cpuBetween, procMem, procThreadsNs, runInNamespace, startSkeind, type SkeindStart } from './harness/datastore-e2e.js';
import { startEtcd } from '../test/helpers/etcd.js';
import { affinityKey, affinityValue, blockKey, inParallel, nodeKey, nodeValue, wepKey, wepName, wepValue, block26 } from '../test/helpers/calico-gen.js';

const NODES = Number(process.env.NODES ?? 1000);
const PER_NODE = Number(process.env.PODS_PER_NODE ?? 100);
const mib = (n: number): string => `${(n / 1048576).toFixed(0)} MiB`;
const rss = (): number => { (globalThis as { gc?: () => void }).gc?.(); return process.memoryUsage().rss; };
const heap = (): number => process.memoryUsage().heapUsed;

function blockValue(n: number, node: string, used: number): string {
  const allocations: (number | null)[] = [];
  const attributes: unknown[] = [];
  const unallocated: number[] = [];
  for (let i = 0; i < 64; i++) {
    if (i < used) {
      allocations.push(attributes.length);
      attributes.push({ handle_id: `k8s-pod-network.${n.toString(16).padStart(8, '0')}${i.toString(16).padStart(56, '0')}`, secondary: { namespace: `ns-${n % 50}`, node, pod: `pod-${n}-${i}`, timestamp: '2026-11-20 10:05:00.123456789 +0000 UTC' } });
    } else { allocations.push(null); unallocated.push(i); }
  }
  return JSON.stringify({ cidr: block26(n).cidr, affinity: `host:${node}`, allocations, unallocated, attributes, sequenceNumber: used, sequenceNumberForAllocation: {}, deleted: false });
}

const ME = 'bench-node-0';
// the build measured: this one, or DS_BENCH_ROOT's
const ROOT = process.env.DS_BENCH_ROOT !== undefined ? join(process.env.DS_BENCH_ROOT, 'dist') : join(import.meta.dirname, '..');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Msg =
  | { t: 'idle'; rss: number }
  | { t: 'ready'; ms: number; size: number; rss: number; heap: number; spaces: string }
  | { t: 'seen'; id: string; cpu: number; gcs: number; gcMs: number }
  | { t: 'rss'; rss: number; heap: number }
  | { t: 'prof' };

/** The host process: one datastore, reporting over IPC. */
async function host(endpoint: string): Promise<void> {
  const send = (m: Msg): void => { process.send?.(m); };
  const { EtcdDatastore } = await import(join(ROOT, 'config', 'index.js')) as typeof ConfigModule;
  const { EtcdClient } = await import(join(ROOT, 'config', 'etcdclient.js')) as typeof ClientModule;
  // skeind's own etcd client (config/etcdclient.ts), as the datastore uses it; before issue #16's client, etcd3
  const probe = new EtcdClient({ endpoints: [endpoint] });
  await probe.range({ key: Buffer.from('x') });
  // idle: the client loaded and connected, nothing listed
  send({ t: 'idle', rss: rss() });
  const ds = new EtcdDatastore({ endpoints: [endpoint], requestTimeoutMs: 60_000, ...(process.env.SCOPE === 'all' ? {} : { nodeName: ME }) });
  const s0 = performance.now();
  ds.start();
  const model = await ds.synced();
  const r1 = rss();
  // where the RSS above idle is: V8's spaces as committed (young generation included), against the external
  // (Buffers, gRPC's) and what the allocator holds outside V8
  const spaces = getHeapSpaceStatistics().filter((x) => x.space_size > 1 << 20).map((x) => `${x.space_name.replace('_space', '')} ${mib(x.space_size)}`).join(', ');
  send({ t: 'ready', ms: performance.now() - s0, size: model.size, rss: r1, heap: heap(), spaces: `${spaces}; external ${mib(process.memoryUsage().external)}` });
  // garbage collections so far, their count and pause time: how much of a change's CPU is the collector's
  let gcs = 0;
  let gcMs = 0;
  new PerformanceObserver((l) => { for (const e of l.getEntries()) { gcs++; gcMs += e.duration; } }).observe({ entryTypes: ['gc'] });
  ds.on('change', (e) => { if (e.id.includes('-mark-') || e.id.includes('own-')) send({ t: 'seen', id: e.id, cpu: cpuMs(), gcs, gcMs }); });
  let session: Session | undefined;
  process.on('message', (m: { t: string; file?: string }) => {
    if (m.t === 'rss') send({ t: 'rss', rss: rss(), heap: heap() });
    // a profile of one phase (SINGLE_PROF): started and written on the parent's word
    if (m.t === 'prof-start') {
      const s = new Session();
      session = s;
      s.connect();
      s.post('Profiler.enable', () => s.post('Profiler.setSamplingInterval', { interval: 200 }, () => s.post('Profiler.start', () => send({ t: 'prof' }))));
    }
    if (m.t === 'prof-stop' && session !== undefined) {
      const s = session;
      s.post('Profiler.stop', (err, r) => {
        if (err === null) writeFileSync(m.file as string, JSON.stringify(r.profile));
        s.disconnect();
        send({ t: 'prof' });
      });
    }
    if (m.t === 'exit') void ds.close().then(() => { probe.close(); process.exit(0); });
  });
}

const cpuMs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

/** This node's WorkloadEndpoints use cali0, an interface of the benchmark's namespace, so skeind can route them. */
const ownWep = (node: string, ns: string, pod: string, ip: string): string => wepValue(node, ns, pod, ip).replace(/"interfaceName":"[^"]*"/, '"interfaceName":"cali0"');

/** Every record of node k: its Node, blocks and affinities, WorkloadEndpoints and IPAM handles. */
function nodeRecords(k: number, puts: [string, string][], own: string[]): void {
  const node = `bench-node-${k}`;
  puts.push([nodeKey(node), nodeValue(node, `10.${100 + (k >> 16)}.${(k >> 8) & 255}.${(k & 255) + (k === 0 ? 1 : 0)}`)]);
  for (let b = 0; b < Math.ceil(PER_NODE / 64); b++) {
    const n = k * 2 + b;
    puts.push([blockKey(n), blockValue(n, node, Math.min(64, PER_NODE - b * 64))]);
    puts.push([affinityKey(node, n), affinityValue()]);
  }
  for (let p = 0; p < PER_NODE; p++) {
    const n = k * 2 + (p >> 6);
    const [a, b2, c2, d] = block26(n).base as [number, number, number, number];
    const ip = `${a}.${b2}.${c2}.${d + (p & 63)}`;
    puts.push([wepKey(node, `ns-${k % 50}`, `pod-${k}-${p}`), (k === 0 ? ownWep : wepValue)(node, `ns-${k % 50}`, `pod-${k}-${p}`, ip)]);
    puts.push([`/calico/ipam/v2/handle/k8s-pod-network.${k}-${p}`, `{"block":{"${block26(n).cidr}":1},"deleted":false}`]);
    if (k === 0) own.push(`${ip}/32`);
  }
}

const E2E_NS = process.env.DS_BENCH_NETNS;
const SKEIND = join(ROOT, 'src', 'skeind.js');

/** A process's minor page faults so far, and its live threads' context switches. */
function procEvents(pid: number): { faults: number; switches: number } {
  // /proc/<pid>/stat: the command name in parentheses may hold spaces; minflt is the 8th field after it
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const faults = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
  let switches = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      for (const m of readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8').matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) switches += Number(m[1]);
    } catch { /* the thread exited between the listing and the read */ }
  }
  return { faults, switches };
}

/**
 * skeind's CPU per put of `put(i)`, one at a time at SKEIND_PUT_RATE a second (each put awaited, then the next at its
 * slot): its CPU over the puts (and 300 ms after the last, for it to be read), less its idle rate, which is measured
 * over two windows as long as the puts, one before and one after, so a periodic task (the watch's progress request
 * every 3 s, the metrics sampler) is counted alike on both sides.
 */
async function skeindPerPut(pid: number, put: (i: number) => Promise<void>, o: { idleAfterOnly?: boolean } = {}): Promise<{ ms: number; n: number; rate: number; busy: number; span: number; idleBefore: number; idleAfter: number; threads: string; faults: number; switches: number }> {
  const n = Number(process.env.SKEIND_PUTS ?? 400);
  const rate = Number(process.env.SKEIND_PUT_RATE ?? 20);
  const spanMs = (n / rate) * 1000 + 300;
  // beside the CPU: minor page faults (the process's, /proc/<pid>/stat) and context switches (its threads', voluntary
  // and not, /proc/<pid>/task/*/status): what one wake-up costs besides running code
  const read = (): { ns: Map<string, number>; at: number; faults: number; switches: number } => ({ ns: procThreadsNs(pid), at: performance.now(), ...procEvents(pid) });
  const a = read();
  await sleep(spanMs);
  // SKEIND_PERF=file: `perf record -g` of skeind over the puts (its figure is then perf's too; give skeind
  // SKEIND_NODE_FLAGS=--perf-basic-prof for JavaScript's names)
  const perfOut = process.env.SKEIND_PERF;
  // SKEIND_STRACE=file: `strace -c -f` of skeind over the puts instead (the system calls, so the wake-ups, per put)
  const straceOut = process.env.SKEIND_STRACE;
  const perf = perfOut !== undefined ? spawn('perf', ['record', '-F', '2000', '-g', '-p', String(pid), '-o', perfOut], { stdio: 'ignore' })
    : straceOut !== undefined ? spawn('strace', [...(process.env.SKEIND_STRACE_ARGS ?? '-c -f').split(' '), '-p', String(pid), '-o', straceOut], { stdio: 'ignore' }) : undefined;
  if (perf !== undefined) await sleep(500);
  const b = read();
  for (let i = 0; i < n; i++) {
    // a loaded machine (or perf) can slow etcd's apply past its own request timeout: that put is tried again, a few
    // times at most
    for (let k = 0; ; k++) {
      try { await put(i); break; } catch (e) { if (k >= 4) throw e; await sleep(200); }
    }
    const wait = b.at + ((i + 1) * 1000) / rate - performance.now();
    if (wait > 0) await sleep(wait);
  }
  await sleep(300);
  const c = read();
  if (perf !== undefined) { const gone = once(perf, 'exit'); perf.kill('SIGINT'); await Promise.race([gone, sleep(10_000)]); }
  await sleep(spanMs);
  const d = read();
  const before = cpuBetween(a.ns, b.ns);
  const after = cpuBetween(c.ns, d.ns);
  // the idle windows: both, or (a process that has just started and still settles in the first) the one after
  const idleRate = o.idleAfterOnly === true ? after / (d.at - c.at) : (before + after) / (b.at - a.at + d.at - c.at);
  const busy = cpuBetween(b.ns, c.ns);
  const perPut = (k: 'faults' | 'switches'): number => {
    const idle = o.idleAfterOnly === true ? (d[k] - c[k]) / (d.at - c.at) : (b[k] - a[k] + d[k] - c[k]) / (b.at - a.at + d.at - c.at);
    return (c[k] - b[k] - idle * (c.at - b.at)) / n;
  };
  return {
    ms: (busy - idleRate * (c.at - b.at)) / n, n, rate, busy, span: c.at - b.at, idleBefore: before / ((b.at - a.at) / 1000), idleAfter: after / ((d.at - c.at) / 1000),
    threads: [a, b, c, d].map((x) => x.ns.size).join('/'), faults: perPut('faults'), switches: perPut('switches'),
  };
}
/**
 * The floor under skeind's figure, measured the same way in the same minutes: a bare Node process (no skeind, no etcd
 * client) reading a TCP socket through `onread` as h2client.ts does, woken by one message of `bytes` a put (a watch
 * event's DATA frame as etcd sends it), at the same rate. What is left of skeind's figure above it is skeind's own
 * work; the floor itself is what this machine charges to wake a process for one small read (scheduler, epoll,
 * libuv, one call into JavaScript), and only a message that is never sent avoids it.
 */
async function bareWakePerMessage(bytes: number): Promise<Awaited<ReturnType<typeof skeindPerPut>>> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const conn = once(srv, 'connection') as Promise<[Socket]>;
  const child = fork(fileURLToPath(import.meta.url), ['--floor', String((srv.address() as AddressInfo).port)], { stdio: 'ignore' });
  try {
    const [sock] = await Promise.race([conn, sleep(30_000).then(() => { throw new Error('the floor process did not connect'); })]);
    const msg = Buffer.alloc(bytes, 0x61);
    return await skeindPerPut(child.pid!, async () => { sock.write(msg); }, { idleAfterOnly: true });
  } finally {
    child.kill('SIGKILL');
    srv.close();
  }
}

/** The floor's process: reads its socket into one buffer of its own, as h2client.ts does, and does nothing else. */
function floorProcess(port: number): void {
  let seen = 0;
  connect({ port, host: '127.0.0.1', onread: { buffer: Buffer.allocUnsafe(65536), callback: (n: number): boolean => { seen += n; return true; } } })
    .on('close', () => { process.exit(seen > 0 ? 0 : 1); });
}

// how long after ready (and its routes) skeind's RSS is read (DS_BENCH_SETTLE_S): 10 s, since skeind gives the list's
// memory back in two steps, the second ~7 s after the list (src/daemon/memory.ts); at 5 s it holds the young generation
const settleMs = Number(process.env.DS_BENCH_SETTLE_S ?? 10) * 1000;
const e2e = process.env.E2E !== '0' && process.getuid?.() === 0;

async function main(): Promise<void> {
  const etcd = await startEtcd(24361, 24362);
  const dir = mkdtempSync(join(tmpdir(), 'skein-dsbench-'));
  const routes = E2E_NS !== undefined ? new RouteWatch('cali0') : undefined;
  const out: string[][] = [];
  try {
    const c = etcd.client;
    const own: string[] = [];
    let puts: [string, string][] = [];
    let ownKeys = 0;
    // skeind on its own node's records alone: the reference for its start and its idle RSS
    let small: SkeindStart | undefined;
    // a cluster this size runs with route reflectors, not a 1,000-node mesh: the mesh is off, and no reflector is
    // configured (skeind's BGP side is not what this measures)
    puts.push(['/calico/resources/v3/projectcalico.org/bgpconfigurations/default', JSON.stringify({ kind: 'BGPConfiguration', apiVersion: 'projectcalico.org/v3', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: false } })]);
    if (routes !== undefined) {
      nodeRecords(0, puts, own);
      for (let i = 0; i < puts.length; i += 128) {
        await c.kv.txn({ success: puts.slice(i, i + 128).map(([key, value]) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } })) });
      }
      ownKeys = puts.length;
      puts = [];
      const l0 = la();
      small = await startSkeind({ datastore: etcdDatastore(etcd.endpoint), node: ME, dir, own, routes, timeoutMs: 60_000, settleMs, skeind: SKEIND });
      await small.stop();
      flushRoutes(routes, own);
      out.push([`skeind, etcd holding only its own node (${PER_NODE} WEPs)`, `${(small.readyMs / 1000).toFixed(2)} s`, `${(small.routesMs / 1000).toFixed(2)} s`, `${mib(small.rss)} (peak ${mib(small.hwm)})`, '—', l0]);
    }
    let singleMs = NaN;
    const t0 = Date.now();
    for (let k = routes !== undefined ? 1 : 0; k < NODES; k++) nodeRecords(k, puts, own);
    let batches: [string, string][][] = [];
    for (let i = 0; i < puts.length; i += 128) batches.push(puts.slice(i, i + 128));
    let bytes = 0;
    for (const [k, v] of puts) bytes += k.length + v.length;
    await inParallel(batches, 8, async (batch) => {
      await c.kv.txn({ success: batch.map(([key, value]) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } })) });
    });
    console.log(`loaded ${puts.length} keys (${mib(bytes)}) into etcd in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${NODES} nodes, ${NODES * PER_NODE} WorkloadEndpoints, /26 blocks, ${NODES * PER_NODE} IPAM handles`);

    const keys = puts.length + ownKeys;
    puts = [];
    batches = [];
    const prof = process.env.CPU_PROF;
    const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--host', etcd.endpoint], {
      execArgv: ['--expose-gc', ...(prof !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [])],
    });
    const exited = once(child, 'exit').then(() => { throw new Error('host process exited'); });
    exited.catch(() => undefined);
    const inbox: Msg[] = [];
    const waiters: (() => void)[] = [];
    child.on('message', (m: Msg) => { inbox.push(m); for (const w of waiters.splice(0)) w(); });
    const next = async <T extends Msg['t']>(t: T, pred: (m: Extract<Msg, { t: T }>) => boolean = () => true): Promise<Extract<Msg, { t: T }>> => {
      for (let i = 0; i < 1_000_000; i++) {
        const k = inbox.findIndex((m) => m.t === t && pred(m as Extract<Msg, { t: T }>));
        if (k >= 0) return inbox.splice(k, 1)[0] as Extract<Msg, { t: T }>;
        await Promise.race([new Promise<void>((r) => waiters.push(r)), exited]);
      }
      throw new Error(`no ${t}`);
    };
    const idle = (await next('idle')).rss;
    const r = await next('ready');
    console.log(`scope ${process.env.SCOPE === 'all' ? 'all nodes' : ME}: ready (first snapshot, ${r.size} resources of ${keys} keys) in ${(r.ms / 1000).toFixed(2)} s; RSS idle ${mib(idle)}, after sync ${mib(r.rss)} (+${mib(r.rss - idle)}), heap used ${mib(r.heap)} (V8 spaces: ${r.spaces})`);
    const refLoad = la();

    // CPU per other node's WorkloadEndpoint change: N puts on other nodes, then one on this node as a marker (the
    // watch is ordered: when the marker is seen, all N were received); the host's CPU between two markers.
    const N = 5000;
    let gcAt: { gcs: number; gcMs: number } = { gcs: 0, gcMs: 0 };
    const mark = async (i: number): Promise<number> => {
      const pod = `bench-mark-${i}`;
      await c.put(wepKey(ME, 'ns-x', pod)).value(wepValue(ME, 'ns-x', pod, `10.126.0.${i}`));
      const m = await next('seen', (x) => x.id.endsWith(wepKey(ME, 'ns-x', pod).split('/').pop() as string));
      gcAt = m;
      return m.cpu;
    };
    const cpu0 = await mark(1);
    const empty = (await mark(2)) - cpu0; // a marker alone
    const others: [string, string][] = [];
    for (let i = 0; i < N; i++) {
      const k = 1 + (i % (NODES - 1));
      const node = `bench-node-${k}`;
      const pod = `pod-${k}-${i % PER_NODE}`;
      const n = k * 2 + ((i % PER_NODE) >> 6);
      const [a, b2, c2, d] = block26(n).base as [number, number, number, number];
      others.push([wepKey(node, `ns-${k % 50}`, pod), wepValue(node, `ns-${k % 50}`, pod, `${a}.${b2}.${c2}.${d + ((i + 1) & 63)}`)]);
    }
    const cpuA = await mark(3);
    for (let i = 0; i < others.length; i += 100) {
      await c.kv.txn({ success: others.slice(i, i + 100).map(([key, value]) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } })) });
    }
    const cpuB = await mark(4);
    console.log(`CPU per other node's WorkloadEndpoint change: ${((cpuB - cpuA - empty) / N).toFixed(4)} ms (${N} changes, ${(cpuB - cpuA).toFixed(0)} ms host CPU incl. one marker of ${empty.toFixed(1)} ms)`);
    // The same one put at a time, as Calico's CNI plugin writes a pod: each change its own revision and its own watch
    // message, so the per-message cost (gRPC framing, one decode and one apply each) is not shared by 100.
    const S = Math.min(N, Number(process.env.SINGLE_PUTS ?? 300));
    const singleProf = process.env.SINGLE_PROF;
    if (singleProf !== undefined) { child.send({ t: 'prof-start' }); await next('prof'); }
    const cpuC = await mark(5);
    const gcC = gcAt;
    for (let i = 0; i < S; i++) {
      const [key, value] = others[i]!;
      await c.put(key).value(value.replace(/"ipNetworks":\["([0-9.]+)\.(\d+)\/32"\]/, (_m, net: string, last: string) => `"ipNetworks":["${net}.${(Number(last) + 1) & 63}/32"]`));
    }
    const cpuD = await mark(6);
    if (singleProf !== undefined) { child.send({ t: 'prof-stop', file: singleProf }); await next('prof'); }
    singleMs = (cpuD - cpuC - empty) / S;
    console.log(`CPU per other node's WorkloadEndpoint change, one put at a time: ${singleMs.toFixed(4)} ms (${S} changes, ${(cpuD - cpuC).toFixed(0)} ms host CPU incl. one marker; ${gcAt.gcs - gcC.gcs} garbage collections, ${(gcAt.gcMs - gcC.gcMs).toFixed(1)} ms of pauses)`);
    // The same datastore at skeind's pace (SKEIND_PUTS at SKEIND_PUT_RATE, measured as skeind is): the puts above come
    // back to back, so the process is barely asleep between two; at 20 a second each one wakes it from sleep.
    let paced: Awaited<ReturnType<typeof skeindPerPut>> | undefined;
    if (e2e) {
      paced = await skeindPerPut(child.pid!, async (i) => {
        const [key, value] = others[(i + S) % others.length]!;
        await c.put(key).value(value.replace(/"ipNetworks":\["([0-9.]+)\.(\d+)\/32"\]/, (_m, net: string, last: string) => `"ipNetworks":["${net}.${(Number(last) + 3) & 63}/32"]`));
      });
      console.log(`the same, one put at a time at ${paced.rate}/s (${paced.n}), measured as skeind is below: ${paced.ms.toFixed(4)} ms (idle ${paced.idleBefore.toFixed(2)} / ${paced.idleAfter.toFixed(2)} ms/s; per put ${paced.switches.toFixed(2)} context switches, ${paced.faults.toFixed(2)} minor page faults; load ${la()})`);
    }

    const lat: number[] = [];
    for (let i = 0; i < 100; i++) {
      const pod = `own-${i}`;
      const p0 = performance.now();
      await c.put(wepKey(ME, 'ns-x', pod)).value(wepValue(ME, 'ns-x', pod, `10.127.0.${i}`));
      await next('seen', (m) => m.id.endsWith(wepName(ME, pod)));
      lat.push(performance.now() - p0);
    }
    lat.sort((a, b) => a - b);
    child.send({ t: 'rss' });
    const end = await next('rss');
    console.log(`own node's change latency (etcd put -> change event in the host, 100 WorkloadEndpoints one at a time): median ${lat[50]!.toFixed(1)} ms, p99 ${lat[98]!.toFixed(1)} ms, max ${lat[99]!.toFixed(1)} ms; host RSS ${mib(end.rss)} (idle + ${mib(end.rss - idle)})`);
    const gone = once(child, 'exit');
    child.send({ t: 'exit' });
    await gone;
    out.push([`the datastore alone (EtcdDatastore for ${ME} in a process of its own: no BGP, no FIB)`, `${(r.ms / 1000).toFixed(2)} s`, '—', `${mib(r.rss)}: idle ${mib(idle)} + ${mib(r.rss - idle)}`, `p99 ${lat[98]!.toFixed(1)} ms (put -> change event)`, refLoad]);
    // the reference's own endpoints (interfaces that do not exist) are not for skeind
    await c.delete().prefix(wepKey(ME, 'ns-x', 'x').replace(/[^/]*$/, ''));

    let bigMem: MemStat | undefined;
    if (routes !== undefined && small !== undefined) {
      const l1 = la();
      const big = await startSkeind({ datastore: etcdDatastore(etcd.endpoint), node: ME, dir, own, routes, timeoutMs: 120_000, settleMs, skeind: SKEIND });
      bigMem = big.mem;
      try {
        // a WorkloadEndpoint of this node written to etcd -> its route in the kernel, 100 one at a time
        const e2eLat: number[] = [];
        for (let i = 0; i < 100; i++) {
          const pod = `e2e-${i}`;
          const prefix = `10.125.0.${i + 1}/32`;
          const p0 = performance.now();
          await c.put(wepKey(ME, 'ns-y', pod)).value(ownWep(ME, 'ns-y', pod, prefix.slice(0, -3)));
          e2eLat.push((await routes.all([prefix], 10_000)) - p0);
        }
        e2eLat.sort((a, b) => a - b);
        const m = procMem(big.child.pid!);
        const l2 = la();
        const per = await skeindPerPut(big.child.pid!, async (i) => {
          const [key, value] = others[i % others.length]!;
          await c.put(key).value(value.replace(/"ipNetworks":\["([0-9.]+)\.(\d+)\/32"\]/, (_m, net: string, last: string) => `"ipNetworks":["${net}.${(Number(last) + 2) & 63}/32"]`));
        });
        console.log(`CPU per other node's WorkloadEndpoint put, one at a time (${per.n} at ${per.rate}/s): skeind end to end ${per.ms.toFixed(4)} ms, the datastore alone ${singleMs.toFixed(4)} ms (skeind: ${per.busy.toFixed(1)} ms of CPU over the ${(per.span / 1000).toFixed(1)} s of puts, idle ${per.idleBefore.toFixed(2)} ms/s before and ${per.idleAfter.toFixed(2)} after; threads ${per.threads}; per put ${per.switches.toFixed(2)} context switches, ${per.faults.toFixed(2)} minor page faults; load ${l2})`);
        // the same count at the same rate into a bare process, messages of a watch event's size (its DATA frame: the
        // key and value, ~64 bytes of HTTP/2, gRPC and protobuf framing around them; strace saw 821-byte reads here)
        const [k0, v0] = others[0]!;
        const l3 = la();
        const floor = await bareWakePerMessage(Buffer.byteLength(k0) + Buffer.byteLength(v0) + 64);
        console.log(`the floor: a bare Node process woken for one message of that size on TCP, same count and rate: ${floor.ms.toFixed(4)} ms (${floor.busy.toFixed(1)} ms of CPU over the puts, idle ${floor.idleBefore.toFixed(2)} / ${floor.idleAfter.toFixed(2)} ms/s, the one after subtracted; per message ${floor.switches.toFixed(2)} context switches, ${floor.faults.toFixed(2)} minor page faults; load ${l3})`);
        const perRow = [`CPU per other node's put, one at a time`, '—', '—', '—', `skeind ${per.ms.toFixed(4)} ms; the datastore alone ${singleMs.toFixed(4)} ms back to back${paced !== undefined ? `, ${paced.ms.toFixed(4)} ms at skeind's pace` : ''}; a bare process woken per message ${floor.ms.toFixed(4)} ms`, l2];
        out.push(['skeind, the full datastore', `${(big.readyMs / 1000).toFixed(2)} s`, `${(big.routesMs / 1000).toFixed(2)} s`, `${mib(big.rss)} (peak ${mib(big.hwm)}): ${mib(small.rss)} + ${mib(big.rss - small.rss)}; after 100 changes ${mib(m.rss)}`, `median ${e2eLat[50]!.toFixed(1)} ms, p99 ${e2eLat[98]!.toFixed(1)} ms, max ${e2eLat[99]!.toFixed(1)} ms (put -> route in the kernel)`, l1]);
        out.push(perRow);
      } finally {
        await big.stop();
      }
      // Beside Felix with fib.learn (src/daemon/kernel-learn.ts): skeind reads no WorkloadEndpoints, as Calico's
      // confd reads none (Felix programs the workload routes and BIRD learns them from the kernel). Its own pods'
      // routes are Felix's to write here, so there are none to wait for; the figure is what another node's put costs.
      const l4 = la();
      const learn = await startSkeind({ datastore: etcdDatastore(etcd.endpoint), node: ME, dir, own: [], routes, timeoutMs: 120_000, settleMs, skeind: SKEIND,
        extra: ['fib: { workloadRoutes: false, learn: true }'] });
      try {
        const l5 = la();
        const per = await skeindPerPut(learn.child.pid!, async (i) => {
          const [key, value] = others[i % others.length]!;
          await c.put(key).value(value.replace(/"ipNetworks":\["([0-9.]+)\.(\d+)\/32"\]/, (_m, net: string, last: string) => `"ipNetworks":["${net}.${(Number(last) + 5) & 63}/32"]`));
        });
        // etcd sends it nothing, so what is left is noise around its idle rate: a negative figure reads as none
        const perText = per.ms <= 0 ? `0 (${per.ms.toFixed(4)} ms: at or below its idle rate)` : `${per.ms.toFixed(4)} ms`;
        console.log(`beside Felix (fib.learn): CPU per other node's WorkloadEndpoint put ${perText} (${per.busy.toFixed(1)} ms of CPU over the ${(per.span / 1000).toFixed(1)} s of puts, idle ${per.idleBefore.toFixed(2)} / ${per.idleAfter.toFixed(2)} ms/s; load ${l5})`);
        out.push(['skeind beside Felix (fib.learn: reads no WorkloadEndpoints)', `${(learn.readyMs / 1000).toFixed(2)} s`, '— (Felix writes them)', `${mib(learn.rss)} (peak ${mib(learn.hwm)}): ${mib(small.rss)} ${learn.rss >= small.rss ? '+' : '-'} ${mib(Math.abs(learn.rss - small.rss))}`, `CPU per other node's put: ${perText}`, l4]);
      } finally {
        await learn.stop();
      }
      printTable(`skeind end to end (${NODES} nodes, ${NODES * PER_NODE} WorkloadEndpoints of which ${PER_NODE} on ${ME}; node-to-node mesh off and no BGP peer), beside the datastore alone in the same run; load average at each start:`,
        ['what', 'ready', 'own pod routes in the kernel', 'RSS once settled', 'own WorkloadEndpoint change', 'load'], out);
      if (small.mem !== undefined) console.log(`skeind, own node only: ${memText(small.mem)}`);
      if (bigMem !== undefined) console.log(`skeind, full datastore: ${memText(bigMem)}`);
      console.log(`ready: from spawn to the "ready" log line; routes: from spawn until the last of its own workloads' /32s was seen by \`ip monitor route\`; RSS: /proc VmRSS ${settleMs / 1000} s after both. The reference for RSS is skeind on a datastore holding only its own node's records (the issue's "idle RSS"). BIRD+confd cannot read this datastore: no Calico reference runs here.`);
    }
  } finally {
    routes?.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--host') host(process.argv[3] as string).catch((e: unknown) => { console.error(e); process.exit(1); });
else if (process.argv[2] === '--floor') floorProcess(Number(process.argv[3]));
else if (e2e && E2E_NS === undefined) process.exit(runInNamespace('skds-bench', 'DS_BENCH_NETNS', fileURLToPath(import.meta.url)));
else main().catch((e: unknown) => { console.error(e); process.exit(1); });
