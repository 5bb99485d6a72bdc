// FIB programming throughput: fib/'s Programmer vs `ip -batch` doing the same work in the same run.
// For 100k and 1M IPv4 /32s and 100k IPv6 /128s (via 4 on-link gateways, 800 consecutive routes per gateway, as
// in the anchor benchmark), in a fresh network namespace each: time `ip -batch` adding then deleting them, then
// run bench/fib/worker.ts (fib/ inside the namespace) for several install/withdraw cycles and print routes/s and
// RSS after each phase (memory must stay flat across cycles). Needs root; prints a skip line otherwise.
// Options: FIB_BENCH_SIZES="4:100000,4:1000000,6:100000" FIB_BENCH_CYCLES=3
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, nsExec } from '../test/helpers/netns.js';

interface Cycle { heapAfterDelMiB: number; setS: number; addAckS: number; addS: number; delAckS: number; delS: number; installed: number; inSync: number; left: number; errors: number; resyncs: number; overruns: number; rssAfterAddMiB: number; rssAfterDelMiB: number }

const WORKER = fileURLToPath(new URL('./fib/worker.js', import.meta.url));
const GW4 = ['10.77.0.1', '10.77.0.11', '10.77.0.12', '10.77.0.13'];
const GW6 = ['fd00:0:0:77::1', 'fd00:0:0:77::11', 'fd00:0:0:77::12', 'fd00:0:0:77::13'];

function dstText(family: 4 | 6, i: number): string {
  if (family === 4) {
    const n = (0x0a800000 + i) >>> 0;
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  return `fd00:128::${((i >>> 16) & 0xffff).toString(16)}:${(i & 0xffff).toString(16)}`;
}

function timeBatch(ns: string, file: string): number {
  const t0 = performance.now();
  const r = spawnSync('ip', ['netns', 'exec', ns, 'ip', '-batch', file], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`ip -batch failed: ${r.stderr.toString().slice(0, 500)}`);
  return (performance.now() - t0) / 1000;
}

function countProto(ns: string, family: 4 | 6): number {
  return Number(nsExec(ns, 'sh', ['-c', `ip -${family} route show proto 171 | wc -l`], { timeoutMs: 120_000 }).trim());
}

const rate = (n: number, s: number): string => `${Math.round(n / s / 1000)}k/s`;

function runCase(family: 4 | 6, n: number, cycles: number, tmp: string): void {
  const lab = new Lab();
  try {
    const ns = lab.ns('bench');
    lab.link(ns, ns, 'veth0', 'veth0p');
    lab.addr(ns, 'veth0', '10.77.0.2/24');
    lab.addr(ns, 'veth0', 'fd00:0:0:77::2/64');
    // reference: ip -batch, same routes, same next hops
    const gws = family === 4 ? GW4 : GW6;
    const len = family === 4 ? 32 : 128;
    const adds: string[] = [];
    const dels: string[] = [];
    for (let i = 0; i < n; i++) {
      const d = dstText(family, i);
      adds.push(`route add ${d}/${len} via ${gws[Math.floor(i / 800) % 4]} dev veth0 proto 171`);
      dels.push(`route del ${d}/${len} proto 171`);
    }
    const addFile = join(tmp, 'add.batch');
    const delFile = join(tmp, 'del.batch');
    writeFileSync(addFile, adds.join('\n') + '\n');
    writeFileSync(delFile, dels.join('\n') + '\n');
    adds.length = 0;
    dels.length = 0;
    const ipAdd = timeBatch(ns, addFile);
    const ipCount = countProto(ns, family);
    const ipDel = timeBatch(ns, delFile);
    const ipLeft = countProto(ns, family);
    if (ipCount !== n || ipLeft !== 0) throw new Error(`ip -batch installed ${ipCount}, left ${ipLeft}`);

    // fib/ in the same namespace
    const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, '--expose-gc', WORKER, '--n', String(n), '--family', String(family),
      '--cycles', String(cycles), '--dev', 'veth0'], { encoding: 'utf8', maxBuffer: 1 << 20, timeout: 1_800_000 });
    const res = JSON.parse(out.trim().split('\n').pop()!) as { cycles: Cycle[] };
    const label = `IPv${family} ${n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`}`;
    console.log(`\n${label}: ip -batch add ${ipAdd.toFixed(2)} s (${rate(n, ipAdd)}), delete ${ipDel.toFixed(2)} s (${rate(n, ipDel)})`);
    res.cycles.forEach((c, i) => {
      const bad = c.installed !== n || c.inSync !== n || c.left !== 0 || c.errors !== 0 ? '  INCONSISTENT' : '';
      console.log(`${label}: fib/ cycle ${i + 1}: add ${c.addAckS.toFixed(2)} s to the last ACK (${rate(n, c.addAckS)}; set() calls ${c.setS.toFixed(2)} s), ` +
        `${c.addS.toFixed(2)} s settled incl. verification dump (${rate(n, c.addS)}); ` +
        `delete ${c.delAckS.toFixed(2)} s to the last ACK (${rate(n, c.delAckS)}), ${c.delS.toFixed(2)} s settled (${rate(n, c.delS)}); ` +
        `RSS ${c.rssAfterAddMiB.toFixed(0)} MiB after add, ${c.rssAfterDelMiB.toFixed(0)} MiB after delete (JS heap after GC ${c.heapAfterDelMiB.toFixed(0)} MiB); resyncs ${c.resyncs}, overruns ${c.overruns}${bad}`);
    });
    const med = (k: 'addAckS' | 'addS' | 'delAckS' | 'delS'): number =>
      res.cycles.map((c) => c[k]).sort((a, b) => a - b)[Math.floor(res.cycles.length / 2)]!;
    console.log(`${label}: SUMMARY (medians) add fib/ ${rate(n, med('addAckS'))} acked, ${rate(n, med('addS'))} settled vs ip -batch ${rate(n, ipAdd)} | ` +
      `delete fib/ ${rate(n, med('delAckS'))} acked, ${rate(n, med('delS'))} settled vs ip -batch ${rate(n, ipDel)} | ` +
      `after each cycle: RSS ${res.cycles.map((c) => c.rssAfterDelMiB.toFixed(0)).join(' / ')} MiB, heap after GC ${res.cycles.map((c) => c.heapAfterDelMiB.toFixed(0)).join(' / ')} MiB`);
  } finally {
    lab.destroy();
  }
}

function main(): void {
  if (process.getuid?.() !== 0) {
    console.log('bench fib: skipped (needs root for network namespaces)');
    return;
  }
  const sizes = (process.env.FIB_BENCH_SIZES ?? '4:100000,4:1000000,6:100000').split(',').map((s) => {
    const [f, n] = s.split(':');
    return { family: (f === '6' ? 6 : 4) as 4 | 6, n: Number(n) };
  });
  const cycles = Number(process.env.FIB_BENCH_CYCLES ?? '3');
  const tmp = mkdtempSync(join(tmpdir(), 'fib-bench-'));
  console.log(`bench fib: routes/s for fib/ (batched netlink, 1000 routes per send) vs ip -batch; ${cycles} install/withdraw cycles each`);
  console.log(`load average at start: ${execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim()}`);
  try {
    for (const s of sizes) runCase(s.family, s.n, cycles, tmp);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main();
