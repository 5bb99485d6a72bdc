// The lab of test/interop/drain-bird and test/interop/drain-traffic: two skein hosts (h1, h2, each skeind in its own namespace with
// the FIB on) both announcing the service range 10.96.100.0/24 (BGPConfiguration serviceExternalIPs) to one BIRD 2
// ToR, iBGP (AS 64512) over a veth each. Both hosts answer 10.96.100.1 (on their lo), so the ToR has two paths to it
// and uses h1's (lower router ID) until h1 drains. The ToR also sends h1 a route carrying GRACEFUL_SHUTDOWN
// (10.52.9.0/24) to see skein honour the community. The ToR pings from 10.43.0.254 (its lo); the hosts route that
// back over their link (a static route inside their namespace).
import type { Test } from 'tap';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bird } from './bird.js';
import { Lab, nsExec, nsSpawn, until } from './netns.js';
import { runCommand } from './run.js';

const root = join(import.meta.dirname, '..', '..');
export const SKEIND = join(root, 'dist/src/skeind.js');
export const SKEINCTL = join(root, 'dist/src/skeinctl.js');
export const SERVICE = '10.96.100.0/24';
export const ANYCAST = '10.96.100.1';
export const GSHUT_NET = '10.52.9.0/24';
export const TOR_LO = '10.43.0.254';

export interface HostDef { name: 'h1' | 'h2'; ip: string; tor: string; link: string }
export const HOSTS: readonly HostDef[] = [
  { name: 'h1', ip: '10.43.1.1', tor: '10.43.1.2', link: 'dr1' },
  { name: 'h2', ip: '10.43.2.1', tor: '10.43.2.2', link: 'dr2' },
];

const res = (kind: string, name: string, spec: unknown): unknown => ({ apiVersion: 'projectcalico.org/v3', kind, metadata: { name }, spec });

function resources(): string {
  return [
    res('ClusterInformation', 'default', { datastoreReady: true }),
    res('BGPConfiguration', 'default', { asNumber: 64512, nodeToNodeMeshEnabled: false, serviceExternalIPs: [{ cidr: SERVICE }], logSeverityScreen: 'Info' }),
    res('IPPool', 'pool4', { cidr: '10.65.0.0/16', blockSize: 26 }),
    ...HOSTS.flatMap((h) => [
      res('Node', h.name, { bgp: { ipv4Address: `${h.ip}/24` } }),
      res('BGPPeer', `tor-${h.name}`, { node: h.name, peerIP: h.tor, asNumber: 64512, sourceAddress: 'None' }),
    ]),
  ].map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

const BIRD_CONF = `
router id ${TOR_LO};
timeformat protocol iso long;
protocol device { scan time 1; }
protocol static gs { ipv4; route ${GSHUT_NET} blackhole; }
protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }
filter to_hosts {
  # RFC 8326 §4.1: a route its sender is about to withdraw carries GRACEFUL_SHUTDOWN
  if proto = "gs" then { bgp_community.add((65535, 0)); accept; }
  reject;
}
template bgp host {
  hold time 30; connect retry time 1; error wait time 1, 2;
  direct; graceful restart on;
  ipv4 { import all; export filter to_hosts; };
}
${HOSTS.map((h) => `protocol bgp ${h.name} from host { local ${h.tor} as 64512; neighbor ${h.ip} as 64512; }`).join('\n')}
`;

export interface DrainLab {
  bird: Bird;
  tor: string;
  ns: Record<'h1' | 'h2', string>;
  /** start (again) skeind on a host, with skein.yaml's bgp.shutdownDrainSeconds */
  startHost(name: 'h1' | 'h2', drainSeconds: number): ChildProcess;
  daemon(name: 'h1' | 'h2'): ChildProcess | undefined;
  ctl(name: 'h1' | 'h2', ...args: string[]): Promise<Record<string, unknown>>;
  ctlText(name: 'h1' | 'h2', ...args: string[]): Promise<{ code: number | null; out: string; err: string }>;
  /** the ToR's kernel route to the service range: the gateway, or '' */
  torVia(): string;
  /** BIRD's "since" of a protocol (changes when the session is re-established) */
  birdSince(name: 'h1' | 'h2'): string;
  /** both sessions up (BIRD and skein) and the ToR's kernel routing the range through h1 */
  waitUp(): Promise<void>;
  diag(t: Test): void;
}

export async function drainLab(t: Test, tag: string): Promise<DrainLab> {
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), `skein-${tag}-`));
  const procs: Partial<Record<'h1' | 'h2', ChildProcess>> = {};
  const logs: Record<'h1' | 'h2', string[]> = { h1: [], h2: [] };
  const bird = new Bird(lab.ns('tor'));
  const ns = { h1: lab.ns('h1'), h2: lab.ns('h2') };
  t.teardown(async () => {
    for (const p of Object.values(procs)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await bird.stop().catch(() => undefined);
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  nsExec(bird.ns, 'ip', ['addr', 'add', `${TOR_LO}/32`, 'dev', 'lo']);
  for (const h of HOSTS) {
    lab.link(ns[h.name], bird.ns, h.link, `t${h.link}`);
    lab.addr(ns[h.name], h.link, `${h.ip}/24`);
    lab.addr(bird.ns, `t${h.link}`, `${h.tor}/24`);
    nsExec(ns[h.name], 'ip', ['addr', 'add', `${ANYCAST}/32`, 'dev', 'lo']);
    nsExec(ns[h.name], 'ip', ['route', 'add', `${TOR_LO}/32`, 'via', h.tor]);
  }
  await bird.start(BIRD_CONF);
  const resFile = join(dir, 'resources.yaml');
  writeFileSync(`${resFile}.tmp`, resources());
  renameSync(`${resFile}.tmp`, resFile);
  const sock = (name: string): string => join(dir, `${name}.sock`);

  const ctlText = (name: string, ...args: string[]): Promise<{ code: number | null; out: string; err: string }> =>
    runCommand('node', [SKEINCTL, '--socket', sock(name), ...args], { timeoutMs: 40_000 });
  const l: DrainLab = {
    bird,
    tor: bird.ns,
    ns,
    startHost(name, drainSeconds) {
      const cfg = join(dir, `${name}.yaml`);
      writeFileSync(cfg, [
        `nodeName: ${name}`,
        `datastore: { type: file, path: ${resFile}, debounce: 50ms }`,
        `control: { socket: ${sock(name)} }`,
        'metrics: { listen: "" }',
        `bgp: { shutdownDrainSeconds: ${drainSeconds} }`,
        'log: { level: info }',
        '',
      ].join('\n'));
      const p = nsSpawn(ns[name], 'node', [SKEIND, '--config', cfg]);
      procs[name] = p;
      p.stdout!.on('data', (d: Buffer) => logs[name].push(...d.toString().split('\n').filter(Boolean)));
      p.stderr!.on('data', (d: Buffer) => logs[name].push(`stderr: ${d.toString()}`));
      return p;
    },
    daemon: (name) => procs[name],
    async ctl(name, ...args) {
      const r = await ctlText(name, ...args, '--json');
      if (r.code !== 0) throw new Error(`skeinctl ${args.join(' ')} on ${name}: exit ${r.code}: ${r.err}`);
      return JSON.parse(r.out) as Record<string, unknown>;
    },
    ctlText,
    torVia() {
      const rs = JSON.parse(nsExec(bird.ns, 'ip', ['-j', 'route', 'show', SERVICE])) as { gateway?: string }[];
      return rs[0]?.gateway ?? '';
    },
    birdSince(name) {
      // "h1         BGP        ---        up     2026-12-05 21:58:01.123  Established"
      return new RegExp(`^${name}\\s+BGP\\s+\\S+\\s+\\S+\\s+(\\S+ \\S+)`, 'm').exec(bird.birdc('show', 'protocols', name))?.[1] ?? '';
    },
    async waitUp() {
      const established = async (name: 'h1' | 'h2'): Promise<boolean> => {
        const st = await l.ctl(name, 'status').catch(() => ({ peers: [] }));
        return (st.peers as { state: string }[]).some((p) => p.state === 'Established');
      };
      await until(async () => bird.protocol('h1').bgpState === 'Established' && bird.protocol('h2').bgpState === 'Established'
        && await established('h1') && await established('h2'), 'both sessions Established', 60_000, 300);
      await until(() => l.torVia() === '10.43.1.1', 'the ToR routes the service range through h1', 20_000, 100);
    },
    diag(t) {
      t.comment(`h1 log:\n${logs.h1.slice(-30).join('\n')}\nh2 log:\n${logs.h2.slice(-15).join('\n')}\nBIRD:\n${bird.birdc('show', 'protocols')}\n${bird.birdc('show', 'route', 'all', SERVICE)}\n${bird.log.slice(-1500)}`);
    },
  };
  return l;
}

/** Pings ANYCAST from the ToR every 50 ms (at most `count`, at most `deadlineS`); stop() ends it and counts. */
export function pinger(tor: string, count: number, deadlineS: number): { stop: () => Promise<{ sent: number; received: number; out: string }> } {
  const p = nsSpawn(tor, 'ping', ['-n', '-I', TOR_LO, '-i', '0.05', '-c', String(count), '-w', String(deadlineS), '-W', '1', ANYCAST]);
  let out = '';
  p.stdout!.on('data', (d: Buffer) => void (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => void (out += d.toString()));
  const done = new Promise<void>((r) => p.once('exit', () => r()));
  return {
    async stop() {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGINT'); // ping prints its summary on SIGINT
      await done;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), out };
    },
  };
}
