// src/jit.ts: skeind raises V8's interrupt budget before its modules run, so that handlers which run a few times a
// second stay in the baseline tier instead of being compiled by TurboFan one after another. What is checked is the
// mechanism on this Node: a function needs more calls before V8 optimizes it once the module has run (counts, not
// times; V8 compiles on the calling thread for the count, so the machine's load cannot change it), and skeind's entry
// imports it first.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const jit = fileURLToPath(new URL('../../dist/src/jit.js', import.meta.url));
const entry = fileURLToPath(new URL('../../src/skeind.ts', import.meta.url));

// calls until V8 reports the function optimized (%GetOptimizationStatus bit 4, kOptimized), at most 200,000
const PROBE = `
if (process.argv[2] === 'jit') await import(process.argv[3]);
function f(a) { let s = 0; for (let i = 0; i < 20; i++) { s += a * i; if (s > 1e12) s = s % 7; } return s; }
let k = 0;
for (; k < 200000; k++) { f(k); if (%GetOptimizationStatus(f) & 16) break; }
process.stdout.write(String(k));
`;

t.test('with src/jit.ts loaded, V8 optimizes a warm function later', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-jit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const probe = join(dir, 'probe.mjs');
  writeFileSync(probe, PROBE);
  // Compiled on the calling thread: with V8's background compiles the count also holds the calls made while the
  // compile thread waited for a CPU, which on a loaded machine made the default run count more than the tuned one.
  const run = (...args: string[]): number => Number(execFileSync(process.execPath, ['--allow-natives-syntax', '--no-concurrent-recompilation', probe, ...args], { encoding: 'utf8', timeout: 30_000 }));
  const plain = run();
  const tuned = run('jit', jit);
  t.ok(plain > 0 && plain < 200_000, `V8's default optimizes it after ${plain} calls`);
  t.ok(tuned < 200_000, `optimized with the tuning too, after ${tuned} calls (hot code still reaches TurboFan)`);
  t.ok(tuned > 1.5 * plain, 'but later');
  t.end();
});

t.test('skeind imports it before anything else', (t) => {
  const imports = readFileSync(entry, 'utf8').split('\n').filter((l) => l.startsWith('import '));
  t.equal(imports[0], "import './jit.js';", 'the first import of src/skeind.ts');
  t.end();
});
