// BIRD 2 in a test namespace: write a config, run `bird -f` with its own
// control socket, ask it through birdc, and read `show protocols all` and
// `show route all` into plain objects. The process is killed on stop() and,
// through nsSpawn, when the test process exits.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { nsExec, nsSpawn, until } from './netns.js';
import { stopProcess } from './run.js';

export interface BirdChannel {
  state: string;
  imported: number;
  exported: number;
  preferred: number;
}

export interface BirdProtocol {
  name: string;
  /** Proto state column: up / start / down */
  state: string;
  /** "BGP state:" line, e.g. Established */
  bgpState: string;
  channels: Record<string, BirdChannel>;
  /** the whole text, for failure messages */
  text: string;
}

export interface BirdRoute {
  prefix: string;
  /** the protocol it came from */
  from: string;
  primary: boolean;
  via: string | null;
  /** BGP.* attributes as BIRD prints them, key without "BGP." */
  bgp: Record<string, string>;
}

export class Bird {
  readonly dir = mkdtempSync(join(tmpdir(), 'skein-bird-'));
  private proc: ChildProcess | null = null;
  private stderr = '';
  private run = 0;

  constructor(readonly ns: string) {}

  /** The control socket of the current run: a new name per start, so birdc never reaches a killed BIRD's socket. */
  get sock(): string {
    return join(this.dir, `bird${this.run}.ctl`);
  }

  /**
   * Start BIRD (again, after kill(): same directory and config file). `recovery` starts it with -R, BIRD's
   * graceful-restart recovery after a crash (RFC 4724 restarting speaker).
   */
  async start(config: string, opts: { recovery?: boolean } = {}): Promise<void> {
    this.run++;
    const conf = join(this.dir, 'bird.conf');
    writeFileSync(conf, config);
    this.proc = nsSpawn(this.ns, 'bird', ['-f', ...(opts.recovery ? ['-R'] : []), '-c', conf, '-s', this.sock, '-P', join(this.dir, 'bird.pid')]);
    this.proc.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-20_000);
    });
    this.proc.stdout?.resume();
    await until(() => {
      if (this.proc?.exitCode !== null) throw new Error(`bird exited: ${this.stderr}`);
      return /BIRD .* ready/.test(this.birdc('show', 'status'));
    }, 'BIRD control socket', 10_000, 100);
  }

  birdc(...args: string[]): string {
    return nsExec(this.ns, 'birdc', ['-s', this.sock, ...args], { timeoutMs: 10_000 });
  }

  /** Replace the config and `configure` (a soft reconfiguration, as an operator would). */
  reconfigure(config: string): string {
    writeFileSync(join(this.dir, 'bird.conf'), config);
    return this.birdc('configure');
  }

  protocol(name: string): BirdProtocol {
    const text = this.birdc('show', 'protocols', 'all', name);
    const head = new RegExp(`^${name}\\s+\\S+\\s+\\S+\\s+(\\S+)`, 'm').exec(text);
    const bgp = /BGP state:\s+(\S+)/.exec(text);
    const channels: Record<string, BirdChannel> = {};
    // "  Channel ipv4\n    State:          UP\n ... Routes:         1 imported, 2 exported, 1 preferred"
    for (const block of text.split(/\n\s+Channel /).slice(1)) {
      const name = block.split(/\s/)[0] ?? '';
      const state = /State:\s+(\S+)/.exec(block)?.[1] ?? '';
      const routes = /Routes:\s+(\d+) imported, (?:(\d+) filtered, )?(\d+) exported, (\d+) preferred/.exec(block);
      channels[name] = {
        state,
        imported: Number(routes?.[1] ?? 0),
        exported: Number(routes?.[3] ?? 0),
        preferred: Number(routes?.[4] ?? 0),
      };
    }
    return { name, state: head?.[1] ?? '', bgpState: bgp?.[1] ?? '', channels, text };
  }

  /** `show route all [args]` parsed: one entry per route (several per prefix when several exist). */
  routes(...args: string[]): BirdRoute[] {
    const text = this.birdc('show', 'route', 'all', ...args);
    const out: BirdRoute[] = [];
    let prefix = '';
    let cur: BirdRoute | null = null;
    for (const line of text.split('\n')) {
      // "10.20.0.0/16         unicast [sk 04:30:00.123] * (100) [AS65020i]" or a further route of the same prefix, indented
      const m = /^(\S+)?\s+(?:unicast|blackhole|unreachable|prohibit)\s+\[(\S+?)[\s\]]/.exec(line);
      if (m && (m[1] === undefined || m[1].includes('/'))) {
        if (m[1] !== undefined) prefix = m[1];
        cur = { prefix, from: m[2] ?? '', primary: /\]\s+\*/.test(line), via: null, bgp: {} };
        out.push(cur);
        continue;
      }
      if (!cur) continue;
      const via = /^\s+via (\S+)/.exec(line);
      if (via) cur.via = via[1] ?? null;
      const attr = /^\s+BGP\.(\w+):\s?(.*)$/.exec(line);
      if (attr) cur.bgp[attr[1] ?? ''] = (attr[2] ?? '').trim();
    }
    return out;
  }

  /** SIGKILL, as a crash: nothing is said to the peers and the directory stays for a restart. */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (p && p.exitCode === null) {
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGKILL');
      await exited;
    }
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    await stopProcess(p);
    rmSync(this.dir, { recursive: true, force: true });
  }

  get log(): string {
    return this.stderr;
  }
}
