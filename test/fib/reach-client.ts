// The test side of test/fib/reach-agent.ts: src/daemon/reachability.ts inside a namespace.
import type { Test } from 'tap';
import { fileURLToPath } from 'node:url';
import { JsonLinesAgent } from '../helpers/json-lines.js';
import { nsSpawn } from '../helpers/netns.js';

// the agent always runs compiled (`npm test` builds dist/ first), whether this file runs from test/ or dist/test/
const AGENT = fileURLToPath(import.meta.url.includes('/dist/test/fib/')
  ? new URL('./reach-agent.js', import.meta.url)
  : new URL('../../dist/test/fib/reach-agent.js', import.meta.url));

/** The agent in namespace `ns`, killed when the test ends. */
export function reachAgent(t: Test, ns: string): JsonLinesAgent {
  const a = new JsonLinesAgent(nsSpawn(ns, process.execPath, [AGENT], { stdio: ['pipe', 'pipe', 'pipe'] }), { verb: 'op', timeoutMs: 60_000 });
  t.teardown(() => a.proc.kill('SIGKILL'));
  return a;
}
