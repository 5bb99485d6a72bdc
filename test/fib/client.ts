// The test side of test/fib/agent.ts: starts the agent inside a namespace and calls it.
import { fileURLToPath } from 'node:url';
import { JsonLinesAgent } from '../helpers/json-lines.js';
import { nsExec, nsSpawn } from '../helpers/netns.js';

// the agent always runs compiled (`npm test` builds dist/ first), whether this file runs from test/ or dist/test/
const AGENT = fileURLToPath(import.meta.url.includes('/dist/test/fib/')
  ? new URL('./agent.js', import.meta.url)
  : new URL('../../dist/test/fib/agent.js', import.meta.url));

export type { AgentEvent } from '../helpers/json-lines.js';

/** The fib agent in namespace ns (commands by "op", json-lines.ts); a call rejects when the agent exits. */
export class Agent extends JsonLinesAgent {
  constructor(readonly ns: string) {
    super(nsSpawn(ns, process.execPath, [agentPath()], { stdio: ['pipe', 'pipe', 'pipe'] }), { verb: 'op' });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Stop the agent the hard way (kill -9 of the node process inside `ip netns exec`). */
  kill(): void {
    this.proc.kill('SIGKILL');
  }
}

function agentPath(): string {
  return AGENT;
}

/** `ip -j [-6] route show ...` in the namespace, parsed. */
export interface IpRoute {
  dst: string;
  type?: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  metric?: number;
  flags?: string[];
  table?: string;
  nexthops?: { gateway?: string; dev?: string; weight?: number; flags?: string[] }[];
  [k: string]: unknown;
}

export function routes(ns: string, family: 4 | 6, ...filter: string[]): IpRoute[] {
  const txt = nsExec(ns, 'ip', ['-j', family === 6 ? '-6' : '-4', 'route', 'show', ...filter]);
  return txt.trim() === '' ? [] : (JSON.parse(txt) as IpRoute[]);
}
