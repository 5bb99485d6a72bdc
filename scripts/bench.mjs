// npm run bench: runs every compiled benchmark (dist/bench/*.js) in turn, or only those named as arguments
// (`npm run bench -- fib`). Each benchmark prints its own figures and a reference measured in the same run.
import { readdirSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, basename } from 'node:path';

const dir = join(import.meta.dirname, '..', 'dist', 'bench');
if (!existsSync(dir)) {
  console.error('no dist/bench: run npm run build first');
  process.exit(1);
}
const wanted = process.argv.slice(2).map((a) => basename(a).replace(/\.(ts|js)$/, ''));
const all = readdirSync(dir).filter((f) => f.endsWith('.js')).sort();
const run = wanted.length ? all.filter((f) => wanted.includes(f.replace(/\.js$/, ''))) : all;
if (wanted.length && run.length !== wanted.length) {
  console.error(`unknown benchmark(s): ${wanted.filter((w) => !all.includes(`${w}.js`)).join(', ')}`);
  process.exit(1);
}
let failed = 0;
for (const f of run) {
  console.log(`\n=== bench ${f} ===`);
  const r = spawnSync(process.execPath, [join(dir, f)], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`bench ${f} failed (exit ${r.status ?? r.signal})`);
  }
}
process.exit(failed ? 1 : 0);
