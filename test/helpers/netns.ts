// Network namespaces for tests. Every name carries a per-process tag so test
// files running in parallel never collide, and every namespace and link made
// here is removed on teardown, on process exit, and by sweep() for leftovers
// of a run that was killed. Nothing here ever touches the root namespace's
// routes or addresses: links are created directly inside a namespace, or as a
// veth pair whose both ends are moved into namespaces at once.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

const TAG = `sk${(process.pid % 46656).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const live = new Set<string>();
let counter = 0;

export function ip(args: readonly string[], opts: { input?: string } = {}): string {
  return execFileSync('ip', args, { encoding: 'utf8', input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Run a command inside a namespace and return its stdout. Throws with stderr on failure. */
export function nsExec(ns: string, cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], {
      encoding: 'utf8',
      input: opts.input,
      timeout: opts.timeoutMs ?? 30_000,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`[${ns}] ${cmd} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`, { cause: e });
  }
}

/** Start a long-running process inside a namespace; killed on cleanup. */
export function nsSpawn(ns: string, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: 'pipe', ...opts });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

const children = new Set<ChildProcess>();

export class Lab {
  readonly namespaces: string[] = [];
  #ifCounter = 0;

  /** Short unique prefix for this lab's interface names (IFNAMSIZ is 15). */
  readonly id = `${TAG}${(counter++).toString(36)}`;

  /**
   * Calico hosts on one L2 segment: a fabric namespace with bridge br0, and per host a namespace (labelled by the
   * name's last character) whose eth0 has `ip`/24, forwarding on and 169.254.1.1 on lo (the next hop Calico gives
   * its workloads). Returns host name -> namespace.
   */
  bridgedHosts(hosts: readonly { name: string; ip: string }[]): Map<string, string> {
    const fabric = this.ns('fab');
    nsExec(fabric, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    nsExec(fabric, 'ip', ['link', 'set', 'br0', 'up']);
    const out = new Map<string, string>();
    for (const [i, h] of hosts.entries()) {
      const ns = this.ns(h.name.slice(-1));
      out.set(h.name, ns);
      this.link(fabric, ns, `p${i}`, 'eth0');
      nsExec(fabric, 'ip', ['link', 'set', `p${i}`, 'master', 'br0']);
      this.addr(ns, 'eth0', `${h.ip}/24`);
      nsExec(ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      nsExec(ns, 'ip', ['addr', 'add', '169.254.1.1/32', 'dev', 'lo']);
    }
    return out;
  }

  /** A fresh namespace with loopback up. */
  ns(label: string): string {
    const name = `${this.id}-${label}`;
    ip(['netns', 'add', name]);
    live.add(name);
    this.namespaces.push(name);
    nsExec(name, 'ip', ['link', 'set', 'lo', 'up']);
    return name;
  }

  /**
   * A veth pair between two namespaces (or one namespace with both ends), named
   * so that names stay unique and within 15 characters. Returns the names.
   */
  link(nsA: string, nsB: string, nameA?: string, nameB?: string): [string, string] {
    const n = (this.#ifCounter++).toString(36);
    const a = nameA ?? `v${n}a`;
    const b = nameB ?? `v${n}b`;
    // Create both ends inside nsA, then move one: nothing is ever created in the root namespace.
    nsExec(nsA, 'ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
    if (nsB !== nsA) nsExec(nsA, 'ip', ['link', 'set', b, 'netns', nsB]);
    nsExec(nsA, 'ip', ['link', 'set', a, 'up']);
    nsExec(nsB, 'ip', ['link', 'set', b, 'up']);
    return [a, b];
  }

  addr(ns: string, dev: string, cidr: string): void {
    const v6 = cidr.includes(':');
    nsExec(ns, 'ip', [...(v6 ? ['-6'] : []), 'addr', 'add', cidr, 'dev', dev, ...(v6 ? ['nodad'] : [])]);
  }

  /** Remove every namespace of this lab; killing a namespace removes its veths too. */
  destroy(): void {
    for (const name of this.namespaces.splice(0)) deleteNs(name);
  }
}

function deleteNs(name: string): void {
  // Processes still inside would keep the namespace's links alive; kill them first.
  try {
    const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  } catch {
    /* namespace already gone */
  }
  try {
    ip(['netns', 'del', name]);
  } catch {
    /* already gone */
  }
  live.delete(name);
}

function cleanupAll(): void {
  for (const c of children) c.kill('SIGKILL');
  for (const name of [...live]) deleteNs(name);
}
process.once('exit', cleanupAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    cleanupAll();
    process.exit(130);
  });
}

/** Remove namespaces left by test processes that no longer exist (a killed run). */
export function sweep(): void {
  let names: string[];
  try {
    names = ip(['netns', 'list']).split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => /^sk[0-9a-z]+-/.test(n));
  } catch {
    return;
  }
  for (const name of names) if (!live.has(name) && !name.startsWith(TAG)) {
    try {
      const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).trim();
      if (pids === '') deleteNs(name);
    } catch {
      /* ignore */
    }
  }
}

/** Poll until fn returns a truthy value or the deadline passes; bounded in time and count. */
export async function until<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000, stepMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < Math.ceil(timeoutMs / stepMs) + 1; i++) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}
