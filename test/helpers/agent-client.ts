// The test side of test/helpers/speaker-agent.ts (and bfd-agent.ts): an agent running in another network namespace,
// driven over its stdin/stdout as JSON lines ({id, cmd, ...args} in; {id, ok, result | error} or {event, ...} out;
// json-lines.ts).
import type { ChildProcess } from 'node:child_process';
import type { PeerJson, RouteJson } from '../../bgp/index.js';
import { JsonLinesAgent } from './json-lines.js';
import { nsSpawn } from './netns.js';

/** The agent's entry point, built by `npm run build` (pretest). */
export const AGENT = 'dist/test/helpers/speaker-agent.js';

export class AgentClient extends JsonLinesAgent {
  /** Start an agent in network namespace ns; it is killed when the test ends (also when it fails). */
  static spawn(t: { teardown: (fn: () => unknown) => void }, ns: string): AgentClient {
    const proc = nsSpawn(ns, process.execPath, [AGENT]);
    t.teardown(() => {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    });
    return new AgentClient(proc);
  }

  constructor(proc: ChildProcess) {
    // one command waits 10 s at most; stderr goes into the events too, for failure messages
    super(proc, { verb: 'cmd', timeoutMs: 10_000 });
    proc.stderr?.on('data', (d: Buffer) => this.events.push({ event: 'stderr', text: d.toString() }));
  }

  async peers(): Promise<PeerJson[]> {
    return (await this.call<{ peers: PeerJson[] }>('peers')).peers;
  }

  async peer(): Promise<PeerJson | undefined> {
    return (await this.peers())[0];
  }

  async route(prefix: string): Promise<RouteJson | undefined> {
    return (await this.call<{ routes: RouteJson[] }>('routes')).routes.find((r) => r.prefix === prefix);
  }

  /** Loc-RIB prefixes, sorted. */
  async prefixes(): Promise<string[]> {
    return (await this.call<{ routes: RouteJson[] }>('routes')).routes.map((r) => r.prefix).sort();
  }
}
