// npm run fuzz [-- MESSAGES [SEED]]: the network fuzz test (test/interop/fuzz-bgp.test.ts: skeind, a BIRD 2 control peer and
// a hostile peer in namespaces; needs root and bird) for a long run: 50,001 mutated UPDATEs by default (the count
// of the issue 15 probe), at most FUZZ_MAX_SECONDS (default 3600). The seed is printed; give it back to repeat.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

const [messages = process.env.FUZZ_MESSAGES ?? '50001', seed = process.env.FUZZ_SEED] = process.argv.slice(2);
if (!/^\d+$/.test(messages) || (seed !== undefined && !/^\d+$/.test(seed))) {
  console.error('usage: npm run fuzz [-- MESSAGES [SEED]]');
  process.exit(2);
}
const env = { ...process.env, FUZZ_MESSAGES: messages, FUZZ_MAX_SECONDS: process.env.FUZZ_MAX_SECONDS ?? '3600' };
if (seed !== undefined) env.FUZZ_SEED = seed;
const r = spawnSync('npx', ['tap', '--timeout=0', '--reporter=tap', 'test/interop/fuzz-bgp.test.ts'], { cwd: resolve(import.meta.dirname, '..'), stdio: 'inherit', env });
process.exit(r.status ?? 1);
