// The product's own figures: `skeind` (bench/duts/skein), the bare engine (bench/duts/skein-engine) and BIRD 2
// as route reflectors in the shared BGP benchmark harness (../shared/bench: an injector sends N IPv4 /32s, a
// listener receives them reflected), interleaved in one suite so all three see the same machine. Prints medians per
// (N, FIB mode, daemon), the ratio to BIRD 2 of the same repetition, and for the skein adapters the CPU and
// event-loop delay (p50/p99/max) of the announce and withdraw phases (bench/harness/phases.ts, preloaded into
// the DUT). With FIB runs, `ip -batch` of the same routes is measured in the same run as the kernel reference.
//
// Run (root): npm run bench -- skeind
// Environment: SKEIND_BENCH_N=100000,1000000  SKEIND_BENCH_FIB=off|on|both (off)  SKEIND_BENCH_REPEAT=1
//              SKEIND_BENCH_DUTS=skein,skein-engine,bird2  SKEIND_BENCH_WITHDRAW=withdraw|drop
//              (skein-ref: skeind of the built checkout at SKEIN_REF_ROOT, to measure two builds in one suite)
//              SKEIND_BENCH_OUT=<dir> (keeps the raw records; default a temporary directory)
//              SKEIND_BENCH_NS=<prefix> (the harness's network namespace names, default bgpb: two suites run at
//              once on one machine need different ones, or each tears down the other's namespaces)
//              BENCH_HARNESS=<path to the shared harness> (default ../shared/bench or ../../shared/bench)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..', '..');
const env = (k: string, d: string): string => process.env[k] || d;

const harness = [process.env['BENCH_HARNESS'], join(root, '..', 'shared', 'bench'), join(root, '..', '..', 'shared', 'bench')]
  .find((p): p is string => p !== undefined && p !== '' && existsSync(join(p, 'bench.py')));
if (process.getuid?.() !== 0) {
  console.log('skip: needs root (the harness runs every daemon in network namespaces)');
  process.exit(0);
}
if (harness === undefined) {
  console.log('skip: the shared harness (bench.py) was not found; set BENCH_HARNESS');
  process.exit(0);
}
if (!existsSync(join(root, 'dist', 'src', 'skeind.js'))) {
  console.error('no dist/src/skeind.js: run `npm run build` first');
  process.exit(1);
}

const sizes = env('SKEIND_BENCH_N', '100000,1000000');
const fibMode = env('SKEIND_BENCH_FIB', 'off');
const repeat = env('SKEIND_BENCH_REPEAT', '1');
const duts = env('SKEIND_BENCH_DUTS', 'skein,skein-engine,bird2');
if (duts.split(',').includes('skein-ref') && !existsSync(join(process.env['SKEIN_REF_ROOT'] ?? '/nonexistent', 'dist', 'src', 'skeind.js'))) {
  console.error('skein-ref needs SKEIN_REF_ROOT: a built checkout (its dist/src/skeind.js)');
  process.exit(1);
}
const withdraw = env('SKEIND_BENCH_WITHDRAW', 'withdraw');
const outDir = process.env['SKEIND_BENCH_OUT'] || mkdtempSync(join(tmpdir(), 'skeind-bench-'));
mkdirSync(outDir, { recursive: true }); // a given SKEIND_BENCH_OUT that does not exist yet (the DUT appends its phase log there)
const raw = join(outDir, 'raw.jsonl');
const phases = join(outDir, 'phases.jsonl');
const kernel = join(outDir, 'kernel.jsonl');

const load0 = loadavg();
const started = new Date();
const args = [...(process.env['SKEIND_BENCH_NS'] ? ['--ns-prefix', process.env['SKEIND_BENCH_NS']] : []), 'suite', '--dut', duts, '--fib', fibMode, '--n', sizes, '--repeat', repeat, '--withdraw', withdraw, '--out', raw];
console.log(`harness: ${harness}\n  ./bench.py ${args.join(' ')}`);
const r = spawnSync('python3', [join(harness, 'bench.py'), ...args], {
  cwd: harness,
  stdio: 'inherit',
  env: {
    ...process.env,
    // this checkout's adapters, then any the caller names (colon-separated, as bench.py reads it)
    BENCH_DUTS: [join(root, 'bench', 'duts'), process.env['BENCH_DUTS'] ?? ''].filter((d) => d !== '').join(':'),
    SKEIN_NODE_FLAGS: `${process.env['SKEIN_NODE_FLAGS'] ?? ''} --import ${join(root, 'dist', 'bench', 'harness', 'phases.js')}`.trim(),
    SKEIN_PHASE_LOG: phases,
  },
});
if (r.status !== 0) {
  console.error(`bench.py failed (${r.status ?? r.signal})`);
  process.exit(1);
}
if (fibMode !== 'off') {
  const k = spawnSync('python3', [join(harness, 'bench.py'), 'kernel', '--n', sizes, '--repeat', '1', '--modes', 'ip-batch', '--kernel-out', kernel], { cwd: harness, stdio: 'inherit' });
  if (k.status !== 0) console.error('kernel reference failed');
}
const load1 = loadavg();

// ----- report

interface Rec {
  run: string; timeline?: Record<string, number>; dut: string; n: number; fib: boolean; rep: number; status: string;
  ingest_s?: number; propagate_s?: number; fib_s?: number; wd_rib_s?: number; wd_lis_s?: number; wd_fib_s?: number;
  rss_peak_mib?: number; cpu_announce_total_s?: number; cpu_withdraw_s?: number; error?: string;
}
interface Sample { run: string; t: number; cpuMs: number; late: number[] }

const lines = (f: string): unknown[] => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown) : []);
const recs = lines(raw) as Rec[];
const samplesByRun = new Map<string, Sample[]>();
for (const p of lines(phases) as Sample[]) {
  const l = samplesByRun.get(p.run) ?? [];
  l.push(p);
  samplesByRun.set(p.run, l);
}
/**
 * The DUT's loop-delay samples of one phase, cut with the run's timeline (seconds since the harness started the
 * run; the DUT process starts right after the "topo" mark, and its sample times count from its own start):
 * announce = injector Established ("inj_up") until the DUT was idle again ("idle"); withdraw = from "verified"
 * until all was withdrawn ("withdrawn"), plus 0.3 s for a block that ends just after. Samples come
 * in lines of 100 ms.
 */
function phaseSamples(x: Rec, phase: 'announce' | 'withdraw'): number[] {
  const tl = x.timeline;
  const ss = samplesByRun.get(x.run);
  if (tl === undefined || ss === undefined || tl['topo'] === undefined) return [];
  const [from, to] = phase === 'announce' ? [tl['inj_up'], tl['idle']] : [tl['verified'], tl['withdrawn']];
  if (from === undefined || to === undefined) return [];
  const lo = (from - tl['topo']) * 1000;
  const hi = (to - tl['topo'] + (phase === 'withdraw' ? 0.3 : 0)) * 1000;
  return ss.filter((s) => s.t >= lo && s.t <= hi).flatMap((s) => s.late);
}
const pct = (xs: number[], q: number): number | undefined => {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const median = (xs: number[]): number | undefined => {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1]! + s[m]!) / 2;
};
const f = (v: number | undefined, d = 2): string => (v === undefined ? '—' : v.toFixed(d));
const med = (rs: Rec[], k: keyof Rec): number | undefined => median(rs.map((x) => x[k]).filter((v): v is number => typeof v === 'number'));

const failed = recs.filter((x) => !x.status.startsWith('ok') && x.status !== 'unsupported');
for (const x of failed) console.log(`run ${x.run}: ${x.status}${x.error ? ` (${x.error})` : ''}`);
const keys = [...new Set(recs.map((x) => `${x.n}|${x.fib}`))];
console.log(`\nskeind vs BIRD 2, shared harness, ${started.toISOString()}, load average ${load0.map((l) => l.toFixed(1)).join(' ')} → ${load1.map((l) => l.toFixed(1)).join(' ')}; medians of ${repeat} repetition(s)`);
console.log('(loop delay: p99 / max ms of the DUT\'s event loop during the announce and withdraw phases)\n');
console.log('| N | FIB | daemon | ingest s | propagate s | FIB s | withdraw s (RIB / listener / FIB) | peak RSS MiB | CPU announce s | loop delay announce | loop delay withdraw |');
console.log('|---:|---|---|---:|---:|---:|---|---:|---:|---|---|');
for (const k of keys) {
  const [n, fib] = k.split('|');
  const group = recs.filter((x) => `${x.n}|${x.fib}` === k && x.status.startsWith('ok'));
  for (const dut of [...new Set(group.map((x) => x.dut))]) {
    const rs = group.filter((x) => x.dut === dut);
    // per run: p99 and max of the phase's samples; the table gives the medians of those over the repetitions
    const ld = (phase: 'announce' | 'withdraw'): string => {
      const per = rs.map((x) => phaseSamples(x, phase)).filter((xs) => xs.length > 0);
      const p99 = median(per.map((xs) => pct(xs, 0.99)!));
      const max = median(per.map((xs) => Math.max(...xs)));
      return p99 === undefined ? '—' : `${f(p99, 0)} / ${f(max, 0)} ms`;
    };
    console.log(`| ${n} | ${fib === 'true' ? 'on' : 'off'} | ${dut} | ${f(med(rs, 'ingest_s'), 3)} | ${f(med(rs, 'propagate_s'), 3)} | ${f(med(rs, 'fib_s'), 3)} | ${f(med(rs, 'wd_rib_s'), 3)} / ${f(med(rs, 'wd_lis_s'), 3)} / ${f(med(rs, 'wd_fib_s'), 3)} | ${f(med(rs, 'rss_peak_mib'), 1)} | ${f(med(rs, 'cpu_announce_total_s'))} | ${ld('announce')} | ${ld('withdraw')} |`);
  }
}
// Paired ratios: each repetition's skein figure over BIRD 2's of the same repetition, then the median.
console.log('\nratios to BIRD 2 (median of per-repetition ratios): ingest, propagate, withdraw (listener), peak RSS' + (fibMode !== 'off' ? ', FIB' : ''));
for (const k of keys) {
  const group = recs.filter((x) => `${x.n}|${x.fib}` === k && x.status.startsWith('ok'));
  for (const dut of [...new Set(group.map((x) => x.dut))].filter((d) => d !== 'bird2')) {
    const ratio = (key: keyof Rec): string => {
      const xs: number[] = [];
      for (const a of group.filter((x) => x.dut === dut)) {
        const b = group.find((x) => x.dut === 'bird2' && x.rep === a.rep);
        const va = a[key];
        const vb = b?.[key];
        if (typeof va === 'number' && typeof vb === 'number' && vb > 0) xs.push(va / vb);
      }
      return f(median(xs));
    };
    const [n, fib] = k.split('|');
    console.log(`  ${n} FIB ${fib === 'true' ? 'on' : 'off'} ${dut}: ${ratio('ingest_s')}, ${ratio('propagate_s')}, ${ratio('wd_lis_s')}, ${ratio('rss_peak_mib')}${fib === 'true' ? `, ${ratio('fib_s')}` : ''}`);
  }
}
for (const x of lines(kernel) as { n?: number; mode?: string; add_s?: number; del_s?: number }[]) {
  console.log(`kernel reference: ${x.mode} n=${x.n}: add ${f(x.add_s, 3)} s, delete ${f(x.del_s, 3)} s`);
}
console.log(`\nraw records: ${raw}${existsSync(phases) ? `, phases: ${phases}` : ''}`);
if (failed.length > 0) process.exit(1);
