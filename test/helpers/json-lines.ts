// The "agent over JSON lines" pattern, both ends, once. A test that needs a library object inside a network
// namespace (a Node process cannot switch namespace itself) runs a small agent there
// (`ip netns exec NS node dist/test/...-agent.js`) and drives it over stdin/stdout:
//   in:  {"id":1,"<verb>":"name",...args}      one command a line (the verb key is "cmd" or "op")
//   out: {"id":1,"ok":true,"result":...}       or {"id":1,"ok":false,"error":"..."}: one answer per command
//        {"event":"...",...}                   unasked, whenever the agent has something to report
// Agents: test/helpers/speaker-agent.ts, test/helpers/bfd-agent.ts, test/fib/agent.ts (serveJsonLines); the
// event-only ones (test/helpers/ds-agent.ts, test/native/agent.ts, test/max-prefix-peer.ts) write with emit. Test
// sides: test/helpers/agent-client.ts and test/fib/client.ts (JsonLinesAgent).
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

// ----- the agent's end

export interface ServeOptions {
  /** runs one command; what it resolves to is the answer's result, what it throws its error */
  handle: (cmd: Record<string, unknown>) => Promise<unknown>;
  /** true: commands run one after another, in arrival order; default: each as it arrives */
  sequential?: boolean;
  /** the error text of a failed command (default: the Error's message) */
  errorText?: (e: unknown) => string;
  /** stdin closed (the test side went away): release what the agent holds; the process exits afterwards */
  onClose: () => unknown;
}

/** Writes one JSON line on stdout. */
export function emit(o: unknown): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

/** Serves commands from stdin until it closes, then calls onClose and exits. */
export function serveJsonLines(o: ServeOptions): void {
  const errorText = o.errorText ?? ((e: unknown): string => (e instanceof Error ? e.message : String(e)));
  let chain: Promise<void> = Promise.resolve();
  const one = async (line: string): Promise<void> => {
    let cmd: Record<string, unknown>;
    try {
      cmd = JSON.parse(line) as Record<string, unknown>;
    } catch (e) {
      emit({ id: null, ok: false, error: `bad JSON: ${String(e)}` });
      return;
    }
    try {
      emit({ id: cmd.id, ok: true, result: await o.handle(cmd) });
    } catch (e) {
      emit({ id: cmd.id, ok: false, error: errorText(e) });
    }
  };
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (o.sequential === true) chain = chain.then(() => one(line));
    else void one(line);
  }).on('close', () => {
    void chain.then(() => o.onClose()).finally(() => process.exit(0));
  });
}

// ----- the test's end

export interface AgentEvent { event: string; [k: string]: unknown }

interface Reply { id?: number; ok?: boolean; result?: unknown; error?: string; event?: string }

export interface AgentOptions {
  /** the key that names the command: "cmd" or "op" */
  verb: 'cmd' | 'op';
  /** a call without an answer for this long rejects (default: none; a call still rejects when the agent exits) */
  timeoutMs?: number;
}

/** The test side of an agent: calls, answers matched by id, events collected, stderr kept for failure messages. */
export class JsonLinesAgent {
  /** every event line the agent printed */
  readonly events: AgentEvent[] = [];
  /** resolves with the exit code once the agent has exited */
  readonly exited: Promise<number | null>;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #o: AgentOptions;
  #next = 0;
  #stderr = '';

  constructor(readonly proc: ChildProcess, o: AgentOptions) {
    this.#o = o;
    proc.stderr?.on('data', (d: Buffer) => {
      this.#stderr += d.toString();
    });
    this.exited = new Promise((resolve) => proc.once('exit', (code) => {
      for (const p of this.#pending.values()) p.reject(new Error(`agent exited (${code}): ${this.#stderr}`));
      this.#pending.clear();
      resolve(code);
    }));
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let m: Reply;
      try {
        m = JSON.parse(line) as Reply;
      } catch {
        return; // not a protocol line
      }
      if (m.event !== undefined) {
        this.events.push(m as AgentEvent);
        return;
      }
      const p = m.id !== undefined ? this.#pending.get(m.id) : undefined;
      if (!p) return;
      this.#pending.delete(m.id!);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(m.error ?? 'agent error'));
    });
  }

  /** One command; resolves with its result, rejects with the agent's error (or a timeout, or the agent's exit). */
  call<T = unknown>(name: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#next;
    return new Promise<T>((resolve, reject) => {
      const timer = this.#o.timeoutMs === undefined ? undefined : setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`agent did not answer ${name}`));
      }, this.#o.timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.stdin?.write(`${JSON.stringify({ id, [this.#o.verb]: name, ...args })}\n`);
    });
  }

  /** What the agent wrote on stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }
}
