// Run the compiled benchmarks one after another: every dist/bench/*.js, or the
// names given as arguments (`node scripts/bench.mjs codec` runs dist/bench/codec.js).
// Each runs in its own process with --expose-gc so it can measure the heap
// between phases; a failing benchmark makes the whole run fail.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const dir = resolve(import.meta.dirname, '..', 'dist', 'bench');
if (!existsSync(dir)) {
  console.error(`no ${dir}: run \`npm run build\` first (npm run bench does)`);
  process.exit(1);
}
const wanted = process.argv.slice(2).map((n) => n.replace(/\.(ts|js)$/, '').replace(/^.*\//, ''));
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.js'))
  .map((f) => f.slice(0, -3))
  .sort();
const missing = wanted.filter((w) => !all.includes(w));
if (missing.length > 0) {
  console.error(`unknown benchmark(s): ${missing.join(', ')} (have: ${all.join(', ') || 'none'})`);
  process.exit(1);
}
let failed = 0;
for (const name of wanted.length > 0 ? wanted : all) {
  console.log(`\n=== bench ${name} ===`);
  const r = spawnSync(process.execPath, ['--expose-gc', join(dir, `${name}.js`)], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`bench ${name} failed (${r.status ?? r.signal})`);
    failed++;
  }
}
process.exit(failed > 0 ? 1 : 0);
