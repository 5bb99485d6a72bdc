// The route path's warm-up (bgp/speaker/warm.ts): a private table through import, export, encoding and withdrawal,
// dropped after. What it must do: run every prefix out to the other peer; what it must not: leave work behind.
import t from 'tap';
import { warmUp } from '../../bgp/speaker/warm.js';

t.test('warm-up: every prefix goes out to the other peer, each round; nothing is left running', async (t) => {
  t.equal(warmUp(1000, 2), 2000, 'each round exports all its prefixes');
  t.equal(warmUp(1, 1), 1, 'a single prefix');
  t.equal(warmUp(0, 1), 0, 'none');
  // no timer or immediate left behind: the process would otherwise be kept alive past the test
  const handles = (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo();
  t.notOk(handles.includes('Timeout'), 'no timer left');
});
