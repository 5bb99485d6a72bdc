// Pieces the beside-Felix tests share (test/interop/calico-felix*.test.ts): a one-shot ping, skeinctl's JSON, the
// routes of one protocol in a namespace, and the Felix stand-ins (test/helpers/felix-standin.sh) with their output.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { runCommand } from './run.js';
import { nsExec, nsSpawn } from './netns.js';

const root = join(import.meta.dirname, '..', '..');
const skeinctl = join(root, 'dist/src/skeinctl.js');
const standin = join(root, 'test/helpers/felix-standin.sh');

/** One echo request from `ns` to `to`, answered within a second. */
export function pingOnce(ns: string, to: string): boolean {
  try {
    nsExec(ns, 'ping', ['-c', '1', '-W', '1', to], { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** `skeinctl --socket SOCK ARGS --json`, parsed (exit 1 is an answer too: a prefix with no route, a peer down). */
export async function ctlJson(sock: string, ...args: string[]): Promise<Record<string, unknown>> {
  const r = await runCommand('node', [skeinctl, '--socket', sock, ...args, '--json'], { timeoutMs: 15_000 });
  if (r.code !== 0 && r.code !== 1) throw new Error(`skeinctl ${args.join(' ')}: exit ${r.code}: ${r.err}`);
  return JSON.parse(r.out) as Record<string, unknown>;
}

export interface KRoute { dst: string; gateway?: string; dev?: string; type?: string; protocol?: string; metric?: number }

/** `ip -j route show proto PROTO` in a namespace. */
export const routesOf = (ns: string, proto: string): KRoute[] => JSON.parse(nsExec(ns, 'ip', ['-j', 'route', 'show', 'proto', proto])) as KRoute[];

/**
 * A Felix stand-in per host, writing `routes(host)` (address, device, address, device...) every 300 ms, at most 1500
 * sweeps. `sweeps` counts each host's sweeps; `out` keeps what else it printed (restore, delete, error lines).
 */
export function startFelixStandins(hosts: readonly string[], nsOf: (host: string) => string, routes: (host: string) => string[],
  procs: ChildProcess[]): { sweeps: Map<string, number>; out: Map<string, string[]> } {
  const sweeps = new Map<string, number>();
  const out = new Map<string, string[]>();
  for (const h of hosts) {
    const p = nsSpawn(nsOf(h), 'bash', [standin, '1500', '0.3', ...routes(h)]);
    procs.push(p);
    const lines: string[] = [];
    out.set(h, lines);
    sweeps.set(h, 0);
    let buf = '';
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const got = buf.split('\n');
      buf = got.pop()!;
      for (const l of got) {
        if (l.startsWith('sweep ')) sweeps.set(h, Number(l.slice(6)));
        else lines.push(l);
      }
    });
    p.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString().trim()}`));
  }
  return { sweeps, out };
}
