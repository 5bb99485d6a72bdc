// Convergence (issue #8): how long from a workload appearing until its route is in the kernel of every other
// host, for 10, 25 and 50 hosts in a full iBGP mesh and with two route reflectors; skeind's memory and CPU per
// host; and, beside it in the same run, the same measurement with BIRD 2 configured as Calico's confd does.
// What each figure includes is in bench/converge/harness.ts's header and printed under the table.
//
// Run: npm run bench -- convergence     (root; the defaults take a few minutes)
//      node dist/bench/convergence.js --hosts 10,25,50 --topologies mesh,rr --daemons skein,skein-learn,bird \
//           --datastores etcd,file --workloads 300 --rate 20 [--warmup 500] [--debounce 100] [--json out.json]
// --warmup N: N workloads first, made the same way but not measured (a long-running host's code is warm; a fresh
// skeind compiles its hot paths during its first hundreds of events).
// Every option can also be given as an environment variable (CONVERGE_HOSTS=10,25 ...), which is the way
// through `npm run bench`.
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { cannotRun, maxWorkloads, runScenario, type BenchTopology, type Daemon, type Datastore, type ResourceFigures, type ScenarioResult, type Summary } from './converge/harness.js';

interface Args {
  hosts: number[];
  topologies: BenchTopology[];
  daemons: Daemon[];
  datastores: Datastore[];
  workloads: number;
  rate: number;
  debounceMs: number | undefined;
  /** workloads made before the measured ones, not counted (a long-running host's warm code) */
  warmup: number;
  json: string | undefined;
}

const DEFAULTS: Record<string, string> = {
  hosts: '10,25,50',
  topologies: 'mesh,rr',
  daemons: 'skein,skein-learn,bird',
  datastores: 'etcd',
  workloads: '200',
  rate: '20',
  warmup: '0',
};

function parseArgs(argv: readonly string[]): Args {
  const raw: Record<string, string> = { ...DEFAULTS };
  for (const k of ['hosts', 'topologies', 'daemons', 'datastores', 'workloads', 'rate', 'warmup', 'debounce', 'json']) {
    const v = process.env[`CONVERGE_${k.toUpperCase()}`];
    if (v !== undefined && v !== '') raw[k] = v;
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(a);
    if (m === null || !(m[1]! in { ...DEFAULTS, debounce: 1, json: 1 })) throw new Error(`unknown argument "${a}"`);
    const v = m[2] ?? argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    raw[m[1]!] = v;
  }
  const list = <T extends string>(k: string, allowed: readonly T[]): T[] => {
    const out = raw[k]!.split(',').map((x) => x.trim()).filter((x) => x !== '');
    for (const x of out) if (!allowed.includes(x as T)) throw new Error(`--${k}: "${x}" is not one of ${allowed.join(', ')}`);
    return out as T[];
  };
  const num = (k: string): number => {
    const n = Number(raw[k]);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${k}: "${raw[k]}" is not a positive number`);
    return n;
  };
  return {
    hosts: raw.hosts!.split(',').map((x) => {
      const n = Number(x);
      if (!Number.isInteger(n) || n < 2) throw new Error(`--hosts: "${x}" is not a host count (2 or more)`);
      return n;
    }),
    topologies: list('topologies', ['mesh', 'rr'] as const),
    daemons: list('daemons', ['skein', 'skein-learn', 'bird'] as const),
    datastores: list('datastores', ['etcd', 'file'] as const),
    workloads: Math.round(num('workloads')),
    rate: num('rate'),
    debounceMs: raw.debounce !== undefined ? num('debounce') : undefined,
    warmup: raw.warmup === '0' ? 0 : Math.round(num('warmup')),
    json: raw.json,
  };
}

const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(x < 10 ? 1 : 0) : '-');
const mib = (x: number | undefined): string => (x !== undefined && Number.isFinite(x) ? x.toFixed(0) : '-');
const sec = (x: number | undefined): string => (x !== undefined && Number.isFinite(x) ? x.toFixed(2) : '-');

function row(r: ScenarioResult): string[] {
  // CPU per workload: the run's CPU seconds over the workloads, in ms (mean and max process).
  const per = (x: number): string => (Number.isFinite(x) ? ((x * 1000) / r.options.workloads).toFixed(2) : '-');
  const res = (f: ResourceFigures | undefined): string => (f === undefined ? '-' : `${mib(f.rssMeanMiB)}/${mib(f.rssMaxMiB)} MiB, ${per(f.cpuWorkMeanS)}/${per(f.cpuWorkMaxS)} ms`);
  const s = (x: Summary): string => `${ms(x.p50)} / ${ms(x.p99)} / ${ms(x.max)}`;
  return [
    r.options.daemon,
    r.options.datastore === 'kernel' ? 'kernel route' : r.options.datastore.startsWith('kernel+') ? `kernel route (${r.options.datastore.slice(7)})` : `${r.options.datastore} WEP`,
    r.options.topology === 'rr' ? `2 RRs` : 'mesh',
    String(r.options.hosts),
    `${r.last.n}/${r.options.workloads}`,
    s(r.last),
    `${ms(r.first.p50)} / ${ms(r.first.p99)}`,
    `${ms(r.local.p50)} / ${ms(r.local.p99)}`,
    (r.setupMs / 1000).toFixed(1),
    res(r.hostsRes),
    res(r.rrRes),
    `${r.loadBefore.toFixed(2)} → ${r.loadAfter.toFixed(2)}`,
  ];
}

function table(rows: string[][]): string {
  const head = ['daemon', 'trigger', 'topology', 'hosts', 'complete', 'LAST host p50/p99/max ms', 'first host p50/p99', 'own host p50/p99', 'set-up s', 'per host: RSS mean/max, CPU per workload mean/max', 'per RR: same', 'load 1m'];
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(w[i]!)).join(' | ')} |`;
  return [line(head), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

async function main(): Promise<number> {
  let a: Args;
  try {
    a = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`convergence: ${(e as Error).message}\n`);
    return 2;
  }
  const why = cannotRun('skein');
  if (why !== undefined) {
    console.log(`convergence: skipped: ${why}`);
    return 0;
  }
  console.log(`convergence: hosts ${a.hosts.join(',')}, ${a.topologies.join(',')}, ${a.daemons.join(',')}, skein datastore ${a.datastores.join(',')}, ${a.workloads} workloads at ${a.rate}/s${a.warmup > 0 ? ` after ${a.warmup} not measured (warm-up)` : ''}; ${cpus().length} CPUs, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const results: ScenarioResult[] = [];
  const failures: string[] = [];
  for (const hosts of a.hosts) {
    for (const topology of a.topologies) {
      const runs: { daemon: Daemon; datastore?: Datastore }[] = [];
      for (const d of a.daemons) {
        if (d === 'bird') runs.push({ daemon: 'bird' });
        else for (const ds of a.datastores) runs.push({ daemon: d, datastore: ds });
      }
      for (const r of runs) {
        const label = `${r.daemon}${r.datastore ? `/${r.datastore}` : ''} ${topology} ${hosts} hosts`;
        const skip = cannotRun(r.daemon, r.datastore);
        if (skip !== undefined) {
          console.log(`${label}: skipped: ${skip}`);
          continue;
        }
        const workloads = Math.min(a.workloads, maxWorkloads(hosts));
        const t = Date.now();
        try {
          const res = await runScenario({
            daemon: r.daemon, topology, hosts, workloads, rate: a.rate, ...(r.datastore ? { datastore: r.datastore } : {}),
            ...(a.debounceMs !== undefined ? { debounceMs: a.debounceMs } : {}),
            ...(a.warmup > 0 ? { warmup: a.warmup } : {}),
            log: (m) => console.log(`  [${label}] ${m}`),
          });
          results.push(res);
          console.log(`${label}: last host p50 ${ms(res.last.p50)} ms, p99 ${ms(res.last.p99)} ms (${res.last.n}/${workloads} complete, ${res.missingPairs} pairs missing) in ${((Date.now() - t) / 1000).toFixed(0)} s`);
        } catch (e) {
          failures.push(`${label}: ${(e as Error).message}`);
          console.log(`${label}: FAILED: ${(e as Error).message}`);
        }
      }
    }
  }
  console.log(`\n${table(results.map(row))}\n`);
  console.log([
    'LAST host: per workload, ms from its trigger until its /32 was in the kernel of the last of the other hosts',
    '  (the issue\'s figure; p99 target 250 ms at 50 hosts); first host: the first of them; own host: skein: until',
    '  the workload\'s device route on its own host (the datastore watch + skeind\'s own work), BIRD: until `ip route add`',
    '  took effect. Times come from `ip -ts monitor route` in each host (CLOCK_REALTIME, µs).',
    'trigger "etcd WEP" / "file WEP": a WorkloadEndpoint written to etcd (put sent) or to the shared resources file',
    '  (renamed into place; skeind\'s default 100 ms debounce is part of the time). skein reads the datastore itself.',
    'trigger "kernel route": BIRD cannot read Calico\'s datastore (confd/Felix do); its time starts when the workload\'s',
    '  route is in its own host\'s kernel (what Felix writes) and covers kernel learn + BGP + the peers\' kernel writes only.',
    'skein-learn: skeind beside Felix with fib.learn (reads no WorkloadEndpoints; learns the route from its kernel as BIRD',
    '  does), timed as BIRD is; "kernel route (etcd)": its datastore for everything else is etcd.',
    'Workload addresses are borrowed (outside their host\'s block), so each needs its own /32 over BGP.',
    'RSS: resident set after the run; CPU per workload: user+system CPU of the workload phase, less the process\'s',
    '  idle use (measured for 3 s before), over the number of workloads (mean/max over the hosts; the RRs apart).',
    `Route reflectors are 2 extra namespaces (not among the hosts). ${cpus().length} CPUs shared by every daemon: the load column matters.`,
  ].join('\n'));
  if (a.json !== undefined) {
    writeFileSync(a.json, `${JSON.stringify(results.map((r) => ({ ...r, samples: undefined })), null, 1)}\n`);
    console.log(`figures written to ${a.json}`);
  }
  for (const r of results) {
    console.log(`${r.options.daemon} ${r.options.topology} ${r.options.hosts} hosts idle (settled, before the workloads): RSS per host mean ${r.idleHosts.rssMeanMiB.toFixed(1)} / max ${r.idleHosts.rssMaxMiB.toFixed(1)} MiB, CPU per host mean ${r.idleHosts.cpuMsPerSMean.toFixed(1)} / max ${r.idleHosts.cpuMsPerSMax.toFixed(1)} ms/s`);
    if (r.etcdRes !== undefined) console.log(`etcd (${r.options.topology}, ${r.options.hosts} hosts): RSS ${mib(r.etcdRes.rssMeanMiB)} MiB, CPU ${sec(r.etcdRes.cpuRunMeanS)} s in the workload phase`);
  }
  for (const f of failures) console.log(`FAILED ${f}`);
  return failures.length > 0 ? 1 : 0;
}

process.exitCode = await main();
