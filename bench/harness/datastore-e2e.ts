// The end-to-end half of bench/datastore-etcd and bench/datastore-file (issue #14): the real skeind against a real
// etcd or a resources file, timed from its start to "ready" (its log line: first snapshot in force, FIB started, BGP
// listening) and to its own pod routes in the kernel (`ip -4 monitor route`, the time a line is read here), and its
// RSS once settled (/proc/<pid>/status). Runs only inside the benchmark's own network namespace (runInNamespace): the
// routes skeind writes are in that namespace's kernel, never the root namespace's.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const SKEIND = join(import.meta.dirname, '..', '..', 'src', 'skeind.js');
const MEMSTAT = join(import.meta.dirname, 'memstat.js');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `ip -4 monitor route` in the current namespace: when each prefix was first added (performance.now() ms). */
export class RouteWatch {
  readonly child: ChildProcess;
  readonly added = new Map<string, number>();
  #waiters: (() => void)[] = [];

  constructor(dev: string) {
    this.child = spawn('ip', ['-4', 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      if (l.startsWith('Deleted') || !l.includes(` dev ${dev} `)) return;
      const p = l.split(' ')[0] as string;
      const prefix = p.includes('/') ? p : `${p}/32`;
      if (!this.added.has(prefix)) this.added.set(prefix, performance.now());
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  forget(prefix: string): void {
    this.added.delete(prefix);
  }

  /** resolves with the time the last of `prefixes` was added, or rejects after timeoutMs */
  async all(prefixes: readonly string[], timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (let i = 0; i < 1_000_000; i++) {
      let last = 0;
      let missing = 0;
      for (const p of prefixes) {
        const t = this.added.get(p);
        if (t === undefined) missing++;
        else if (t > last) last = t;
      }
      if (missing === 0) return last;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${missing} of ${prefixes.length} routes not in the kernel after ${timeoutMs} ms`);
      await Promise.race([new Promise<void>((r) => this.#waiters.push(r)), sleep(Math.min(left, 500))]);
    }
    throw new Error('route watch: loop bound');
  }

  close(): void {
    this.child.kill('SIGTERM');
  }
}

export interface SkeindStart {
  /** ms from spawn to the "ready" log line */
  readyMs: number;
  /** ms from spawn to the last of its own pod routes in the kernel */
  routesMs: number;
  /** RSS (and its high-water mark) once settled: 5 s after both (skeind releases the list's memory 3 s after it, src/daemon/memory.ts) of the above, bytes */
  rss: number;
  hwm: number;
  /** after a full collection: where the memory is (memstat.ts) */
  mem: MemStat | undefined;
  child: ChildProcess;
  stop(): Promise<void>;
}

export interface MemStat { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number; spaces: Record<string, number> }

const mib = (n: number): string => `${(n / 1048576).toFixed(0)}`;
/** "RSS r MiB after a collection: V8 h (new n, old o, ...), heap used u, external e, outside V8 x" */
export function memText(m: MemStat): string {
  const sp = Object.entries(m.spaces).filter(([, v]) => v >= 1 << 20).map(([k, v]) => `${k} ${mib(v)}`).join(', ');
  return `RSS ${mib(m.rss)} MiB after a full GC: V8 spaces ${mib(m.heapTotal)} (${sp}), heap used ${mib(m.heapUsed)}, external ${mib(m.external)}, the rest (code, stacks, C++ allocations) ${mib(m.rss - m.heapTotal - m.external)}`;
}

export function procMem(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/**
 * The CPU time each thread of a process has run so far (ns, by thread id): /proc/<pid>/task/<tid>/schedstat's first
 * field. /proc/<pid>/stat's utime and stime count in clock ticks (10 ms), too coarse for a few ms of work.
 */
export function procThreadsNs(pid: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      m.set(tid, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]));
    } catch { /* the thread exited between the listing and the read */ }
  }
  return m;
}

/**
 * The CPU a process used between two procThreadsNs readings (ms): per thread, so a thread that exits in between takes
 * only its time since `a` with it (not all it ever ran), and a thread started in between counts from zero.
 */
export function cpuBetween(a: Map<string, number>, b: Map<string, number>): number {
  let ns = 0;
  for (const [tid, t] of b) ns += t - (a.get(tid) ?? 0);
  return ns / 1e6;
}

/** skeind.yaml's datastore line for etcd at `endpoint` */
export const etcdDatastore = (endpoint: string): string => `{ type: etcd, etcd: { endpoints: [${JSON.stringify(endpoint)}] } }`;
/** skeind.yaml's datastore line for a resources file */
export const fileDatastore = (path: string): string => `{ type: file, path: ${JSON.stringify(path)} }`;

/**
 * Start skeind for `node` on `datastore` (etcdDatastore, fileDatastore) and wait for ready and for every prefix of
 * `own` in the kernel. `metrics`: its /metrics address (default none); `skeind`: another build's src/skeind.js.
 */
export async function startSkeind(o: { datastore: string; node: string; dir: string; own: readonly string[]; routes: RouteWatch; timeoutMs: number; settleMs?: number; metrics?: string; skeind?: string;
  /** more skein.yaml lines (e.g. `fib: { ... }`) */
  extra?: readonly string[] }): Promise<SkeindStart> {
  const cfg = join(o.dir, `${o.node}.yaml`);
  writeFileSync(cfg, [
    `nodeName: ${o.node}`,
    `datastore: ${o.datastore}`,
    `control: { socket: ${JSON.stringify(join(o.dir, `${o.node}.sock`))} }`,
    `metrics: { listen: ${o.metrics !== undefined ? JSON.stringify(o.metrics) : 'false'} }`,
    'log: { level: info }',
    ...(o.extra ?? []),
    '',
  ].join('\n'));
  const t0 = performance.now();
  const flags = (process.env.SKEIND_NODE_FLAGS ?? '').split(' ').filter((x) => x !== '');
  const child = spawn(process.execPath, [...flags, '--import', MEMSTAT, o.skeind ?? SKEIND, '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  let readyAt: number | undefined;
  const readyWaiters: (() => void)[] = [];
  let mem: MemStat | undefined;
  const onLine = (l: string): void => {
    if (l.startsWith('{"memstat"')) { mem = (JSON.parse(l) as { memstat: MemStat }).memstat; return; }
    tail = `${tail}\n${l}`.slice(-4000);
    if (readyAt === undefined && l.includes('"msg":"ready"')) {
      readyAt = performance.now();
      for (const w of readyWaiters.splice(0)) w();
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const exited = once(child, 'exit').then(([code, sig]) => { throw new Error(`skeind exited (${String(code ?? sig)}): ${tail}`); });
  exited.catch(() => undefined);
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = once(child, 'exit');
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    // bounded: SIGKILL after 10 s, and the exit awaited at most 5 s more (a process in uninterruptible sleep)
    await Promise.race([gone, sleep(15_000)]);
    clearTimeout(t);
  };
  try {
    const routesAt = await Promise.race([o.routes.all(o.own, o.timeoutMs), exited]).catch((e: unknown) => {
      throw new Error(`skeind ${readyAt === undefined ? 'not ready and ' : ''}its own routes not all in the kernel: ${(e as Error).message}; its last lines:${tail}`);
    });
    if (readyAt === undefined) {
      // bounded, and its timer cleared either way: a timer left behind kept a finished run's process alive
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`skeind not ready ${o.timeoutMs} ms after its own routes were in the kernel; its last lines:${tail}`)), o.timeoutMs);
      });
      try {
        await Promise.race([new Promise<void>((r) => readyWaiters.push(r)), exited, late]);
      } finally {
        clearTimeout(timer);
      }
    }
    await sleep(o.settleMs ?? 5000);
    const m = procMem(child.pid!);
    child.kill('SIGUSR2');
    for (let i = 0; i < 100 && mem === undefined; i++) await sleep(50);
    return { readyMs: (readyAt as number) - t0, routesMs: routesAt - t0, rss: m.rss, hwm: m.hwm, mem, child, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** the load average, as each figure's companion */
export const loadAvg = (): string => loadavg().map((x) => x.toFixed(1)).join(' ');

/** Print a result table: a title line, then markdown with the header and rows given. */
export function printTable(title: string, head: readonly string[], rows: readonly string[][]): void {
  console.log(`\n${title}`);
  console.log(`| ${head.join(' | ')} |`);
  console.log(`|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

/**
 * As root, a benchmark runs inside a network namespace of its own (made here, deleted at the end): skeind's routes in
 * its kernel, cali0 (a veth pair with both ends inside) for this node's workloads, the node's own address
 * (10.100.0.1, its Node's bgp.ipv4Address) on the other end. `script` is run again inside with `envVar` set to the
 * namespace's name; returns its exit status.
 */
export function runInNamespace(prefix: string, envVar: string, script: string): number {
  const ns = `${prefix}-${process.pid}`;
  const ip = (...a: string[]): void => { const r = spawnSync('ip', a, { stdio: 'inherit' }); if (r.status !== 0) throw new Error(`ip ${a.join(' ')} failed`); };
  ip('netns', 'add', ns);
  try {
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'link', 'add', 'cali0', 'type', 'veth', 'peer', 'name', 'cali0p');
    ip('-n', ns, 'link', 'set', 'cali0', 'up');
    ip('-n', ns, 'link', 'set', 'cali0p', 'up');
    ip('-n', ns, 'addr', 'add', '10.100.0.1/32', 'dev', 'cali0p');
    // The run inside is bounded by its own waits; this bound is the last resort (a run that never finished once, when
    // skeind did not become ready): killed after BENCH_MAX_S (default 1 h), with a message saying so.
    const maxS = Number(process.env.BENCH_MAX_S ?? 3600);
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, ...process.execArgv, script], { stdio: 'inherit', env: { ...process.env, [envVar]: ns }, timeout: maxS * 1000, killSignal: 'SIGKILL' });
    if (r.error !== undefined || r.signal !== null) console.error(`${prefix}: the run inside ${ns} did not finish within ${maxS} s (BENCH_MAX_S) or was killed: ${r.error?.message ?? r.signal ?? ''}`);
    return r.status ?? 1;
  } finally {
    // whatever the run left in its namespace (a skeind whose parent was killed) goes with it
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter((x) => /^\d+$/.test(x));
    for (const pid of pids) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone already */ }
    }
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'inherit' });
  }
}

/**
 * skeind leaves its routes in the kernel when it stops (for the next start to adopt): clear them, and forget them,
 * so the next start is timed to its own writes.
 */
export function flushRoutes(routes: RouteWatch, own: readonly string[]): void {
  spawnSync('ip', ['-4', 'route', 'flush', 'proto', '171'], { stdio: 'inherit' });
  for (const p of own) routes.forget(p);
}
