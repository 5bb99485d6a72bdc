// The test side of test/fib/agent.ts: starts the agent inside a namespace and calls it.
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { nsExec, nsSpawn } from '../helpers/netns.js';

// the agent always runs compiled (`npm test` builds dist/ first), whether this file runs from test/ or dist/test/
const AGENT = fileURLToPath(import.meta.url.includes('/dist/test/fib/')
  ? new URL('./agent.js', import.meta.url)
  : new URL('../../dist/test/fib/agent.js', import.meta.url));

export interface AgentEvent { event: string; [k: string]: unknown }

export class Agent {
  readonly events: AgentEvent[] = [];
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #id = 0;
  #stderr = '';
  readonly #child;
  readonly exited: Promise<number | null>;

  constructor(readonly ns: string) {
    this.#child = nsSpawn(ns, process.execPath, [agentPath()], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr?.on('data', (d: Buffer) => {
      this.#stderr += d.toString();
    });
    this.exited = new Promise((resolve) => this.#child.once('exit', (code) => {
      for (const p of this.#pending.values()) p.reject(new Error(`agent exited (${code}): ${this.#stderr}`));
      this.#pending.clear();
      resolve(code);
    }));
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      let m: { id?: number; ok?: boolean; result?: unknown; error?: string; event?: string };
      try {
        m = JSON.parse(line) as typeof m;
      } catch {
        return;
      }
      if (m.event !== undefined) {
        this.events.push(m as AgentEvent);
        return;
      }
      const p = this.#pending.get(m.id ?? -1);
      if (!p) return;
      this.#pending.delete(m.id!);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(m.error));
    });
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#id;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#child.stdin!.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Stop the agent the hard way (kill -9 of the node process inside `ip netns exec`). */
  kill(): void {
    this.#child.kill('SIGKILL');
  }

  get stderr(): string {
    return this.#stderr;
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
