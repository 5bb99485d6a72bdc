// Test-side helpers for the native-socket tests: run test/native/agent.ts
// (compiled into dist/) inside a namespace and read its JSON lines, and read
// kernel counters with nstat.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { nsExec, nsSpawn, until } from '../helpers/netns.js';

const here = dirname(fileURLToPath(import.meta.url));
// From test/native (tap) or dist/test/native (compiled): the root is where package.json is.
const root = existsSync(join(here, '..', '..', 'package.json')) ? join(here, '..', '..') : join(here, '..', '..', '..');
export const AGENT = join(root, 'dist', 'test', 'native', 'agent.js');

export const agentBuilt = (): boolean => existsSync(AGENT);

export interface ConnectResult {
  ok: boolean;
  code?: string;
  message?: string;
  localAddress?: string;
  remoteAddress?: string;
  ttl?: number;
  /** bytes received, hex */
  data?: string;
}

export interface Listener {
  child: ChildProcess;
  /** every JSON line printed so far */
  events: Record<string, unknown>[];
  stop(): void;
}

function lines(child: ChildProcess, onLine: (o: Record<string, unknown>) => void): void {
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        onLine(JSON.parse(line) as Record<string, unknown>);
      } catch {
        onLine({ event: 'garbage', line });
      }
    }
  });
}

/** Starts the agent as a listener in `ns`; resolves once it listens (keys and TTLs applied). */
export async function startListener(ns: string, spec: Record<string, unknown>): Promise<Listener> {
  const child = nsSpawn(ns, process.execPath, [AGENT, JSON.stringify({ mode: 'listen', ...spec })]);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const events: Record<string, unknown>[] = [];
  lines(child, (o) => events.push(o));
  const failed = (): boolean => events.some((e) => e.event === 'error') || child.exitCode !== null;
  await until(() => failed() || events.some((e) => e.event === 'listening'), 'the listener agent', 10_000);
  if (failed()) {
    child.kill('SIGKILL');
    throw new Error(`listener agent failed: ${JSON.stringify(events)} ${stderr}`);
  }
  return { child, events, stop: () => child.kill('SIGKILL') };
}

/** Runs the agent as a client in `ns` and returns its one result line. */
export async function runClient(ns: string, spec: Record<string, unknown>): Promise<ConnectResult> {
  const child = nsSpawn(ns, process.execPath, [AGENT, JSON.stringify({ mode: 'connect', ...spec })]);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const results: Record<string, unknown>[] = [];
  lines(child, (o) => results.push(o));
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await new Promise((resolve) => child.once('close', resolve));
  clearTimeout(killer);
  const r = results[0];
  if (!r) throw new Error(`client agent printed nothing (exit ${String(child.exitCode)}): ${stderr}`);
  return r as unknown as ConnectResult;
}

/** Absolute values of kernel SNMP/netstat counters in a namespace (0 when absent). */
export function nstat(ns: string, names: readonly string[]): Record<string, number> {
  const text = nsExec(ns, 'nstat', ['-asz', ...names]);
  const out: Record<string, number> = {};
  for (const n of names) out[n] = 0;
  for (const line of text.split('\n')) {
    const [name, value] = line.trim().split(/\s+/);
    if (name !== undefined && value !== undefined && name in out) out[name] = Number(value);
  }
  return out;
}
