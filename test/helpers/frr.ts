// FRR's bgpd alone in a test namespace (no zebra: -Z; as root: -S), with its own vty socket directory, asked
// through vtysh for JSON. The process is killed on stop() and, through nsSpawn, when the test process exits.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { nsExec, nsSpawn, until } from './netns.js';
import { stopProcess } from './run.js';

export const BGPD = '/usr/lib/frr/bgpd';

export interface FrrNeighbor {
  bgpState: string;
  /** ms since the session came up */
  bgpTimerUpMsec?: number;
  bgpTimerUpEstablishedEpoch?: number;
  connectionsEstablished?: number;
}

export class Frr {
  readonly dir = mkdtempSync(join(tmpdir(), 'skein-frr-'));
  private proc: ChildProcess | null = null;
  private out = '';

  constructor(readonly ns: string) {}

  async start(config: string): Promise<void> {
    const conf = join(this.dir, 'bgpd.conf');
    writeFileSync(conf, config);
    this.proc = nsSpawn(this.ns, BGPD, [
      '-Z', '-S', '-f', conf, '-i', join(this.dir, 'bgpd.pid'), '--vty_socket', this.dir, '-P', '0', '--log', 'stdout',
    ]);
    const keep = (d: Buffer): void => {
      this.out = (this.out + d.toString()).slice(-20_000);
    };
    this.proc.stdout?.on('data', keep);
    this.proc.stderr?.on('data', keep);
    await until(() => {
      if (this.proc?.exitCode !== null) throw new Error(`bgpd exited: ${this.out}`);
      try {
        this.vtysh('show bgp summary json');
        return true;
      } catch {
        return false;
      }
    }, 'bgpd vty', 15_000, 200);
  }

  vtysh(...commands: string[]): string {
    return nsExec(this.ns, 'vtysh', ['--vty_socket', this.dir, '-d', 'bgpd', ...commands.flatMap((c) => ['-c', c])], { timeoutMs: 10_000 });
  }

  json<T>(command: string): T {
    return JSON.parse(this.vtysh(command)) as T;
  }

  neighbor(address: string): FrrNeighbor | undefined {
    const all = this.json<Record<string, FrrNeighbor>>(`show bgp neighbors ${address} json`);
    return all[address];
  }

  /** `show bgp <afi> unicast json`: the prefixes held, with their paths. */
  routes(afi: 'ipv4' | 'ipv6'): Record<string, FrrPath[]> {
    const r = this.json<{ routes?: Record<string, FrrPath[]> }>(`show bgp ${afi} unicast json`);
    return r.routes ?? {};
  }

  /** One prefix with every attribute (`show bgp <afi> unicast <prefix> json`). */
  route(afi: 'ipv4' | 'ipv6', prefix: string): FrrDetail | undefined {
    const r = this.json<{ paths?: FrrDetail['paths'] }>(`show bgp ${afi} unicast ${prefix} json`);
    return r.paths === undefined ? undefined : { paths: r.paths };
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    await stopProcess(p);
    rmSync(this.dir, { recursive: true, force: true });
  }

  get log(): string {
    return this.out;
  }
}

export interface FrrPath {
  valid?: boolean;
  bestpath?: boolean;
  path?: string;
  peerId?: string;
  nexthops?: { ip: string }[];
}

export interface FrrDetail {
  paths: {
    aspath?: { string: string };
    community?: { string: string };
    largeCommunity?: { string: string };
    peer?: { peerId: string };
  }[];
}
