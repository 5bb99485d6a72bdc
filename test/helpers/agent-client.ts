// The test side of test/helpers/speaker-agent.ts: a speaker running in another network namespace, driven over
// its stdin/stdout as JSON lines ({id, cmd, ...args} in; {id, ok, result | error} or {event, ...} out).
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { PeerJson, RouteJson } from '../../bgp/index.js';
import { nsSpawn } from './netns.js';

/** The agent's entry point, built by `npm run build` (pretest). */
export const AGENT = 'dist/test/helpers/speaker-agent.js';

interface Reply {
  id?: number;
  ok?: boolean;
  result?: unknown;
  error?: string;
  event?: string;
}

export class AgentClient {
  /** Start an agent in network namespace ns; it is killed when the test ends (also when it fails). */
  static spawn(t: { teardown: (fn: () => unknown) => void }, ns: string): AgentClient {
    const proc = nsSpawn(ns, process.execPath, [AGENT]);
    t.teardown(() => {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    });
    return new AgentClient(proc);
  }

  private next = 1;
  private readonly waiting = new Map<number, (m: Reply) => void>();
  /** every event line the agent printed, and its stderr, for failure messages */
  readonly events: { event: string; [k: string]: unknown }[] = [];

  constructor(readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let m: Reply;
      try {
        m = JSON.parse(line) as Reply;
      } catch {
        return; // not a protocol line
      }
      if (m.event !== undefined) {
        this.events.push(m as { event: string });
        return;
      }
      const w = m.id !== undefined ? this.waiting.get(m.id) : undefined;
      if (!w) return;
      this.waiting.delete(m.id as number);
      w(m);
    });
    proc.stderr?.on('data', (d: Buffer) => this.events.push({ event: 'stderr', text: d.toString() }));
  }

  /** One command; rejects on the agent's error or after 10 s without an answer. */
  call<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`agent did not answer ${cmd}`));
      }, 10_000);
      this.waiting.set(id, (m) => {
        clearTimeout(timer);
        if (m.ok) resolve(m.result as T);
        else reject(new Error(m.error ?? 'agent error'));
      });
      this.proc.stdin?.write(`${JSON.stringify({ id, cmd, ...args })}\n`);
    });
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
