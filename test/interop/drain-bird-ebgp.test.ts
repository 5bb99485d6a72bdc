// RFC 8326 graceful shutdown toward an eBGP peer, IPv4 and IPv6, against a real BIRD 2 (test/interop/drain-bird covers iBGP
// IPv4 only). Two skein hosts (AS 64512) announce the same service ranges (10.97.100.0/24, fd97:100::/64) to a BIRD
// ToR in AS 65000 over one IPv4 and one IPv6 session each. On `skeinctl drain` of h1, BIRD must see h1's routes of
// both families with GRACEFUL_SHUTDOWN (65535,0) (RFC 8326 §4.1: to an eBGP peer the community is what is sent) and,
// with the import filter §4.2 asks of a receiver (LOCAL_PREF 0 for the community), move to h2's paths, its kernel too.
// Must NOT: send LOCAL_PREF over eBGP (RFC 4271 §5.1.5; BIRD would log "Discarding LOCAL_PREF attribute received from
// EBGP neighbor"), reset any session. `skeinctl undrain` brings BIRD back to h1 without the community.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import { Bird } from '../helpers/bird.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';
import { runCommand } from '../helpers/run.js';

const root = join(`${import.meta.dirname}/..`, '..');
const SKEIND = join(root, 'dist/src/skeind.js');
const SKEINCTL = join(root, 'dist/src/skeinctl.js');
const SVC4 = '10.97.100.0/24';
const SVC6 = 'fd97:100::/64';
const HOSTS = [
  { name: 'h1', v4: '10.44.1.1', tor4: '10.44.1.2', v6: 'fd44:1::1', tor6: 'fd44:1::2', link: 'eb1' },
  { name: 'h2', v4: '10.44.2.1', tor4: '10.44.2.2', v6: 'fd44:2::1', tor6: 'fd44:2::2', link: 'eb2' },
] as const;
type Name = 'h1' | 'h2';

const res = (kind: string, name: string, spec: unknown): string =>
  `---\n${JSON.stringify({ apiVersion: 'projectcalico.org/v3', kind, metadata: { name }, spec })}\n`;

const RESOURCES = [
  res('ClusterInformation', 'default', { datastoreReady: true }),
  res('BGPConfiguration', 'default', { asNumber: 64512, nodeToNodeMeshEnabled: false, serviceExternalIPs: [{ cidr: SVC4 }, { cidr: SVC6 }], logSeverityScreen: 'Info' }),
  res('IPPool', 'pool4', { cidr: '10.66.0.0/16', blockSize: 26 }),
  res('IPPool', 'pool6', { cidr: 'fd66::/48', blockSize: 122 }),
  ...HOSTS.flatMap((h) => [
    res('Node', h.name, { bgp: { ipv4Address: `${h.v4}/24`, ipv6Address: `${h.v6}/64` } }),
    res('BGPPeer', `tor4-${h.name}`, { node: h.name, peerIP: h.tor4, asNumber: 65000 }),
    res('BGPPeer', `tor6-${h.name}`, { node: h.name, peerIP: h.tor6, asNumber: 65000 }),
  ]),
].join('');

// The ToR as an operator configures a receiver of RFC 8326 §4.2: routes with GRACEFUL_SHUTDOWN get LOCAL_PREF 0.
const birdConf = (logFile: string): string => `
log "${logFile}" all;
router id 10.44.0.254;
timeformat protocol iso long;
protocol device { scan time 1; }
protocol kernel k4 { ipv4 { import none; export where source = RTS_BGP; }; }
protocol kernel k6 { ipv6 { import none; export where source = RTS_BGP; }; }
filter gshut_in { if (65535, 0) ~ bgp_community then bgp_local_pref = 0; accept; }
template bgp host { hold time 30; connect retry time 1; error wait time 1, 2; direct; graceful restart on; }
${HOSTS.map((h) => [
  `protocol bgp ${h.name}v4 from host { local ${h.tor4} as 65000; neighbor ${h.v4} as 64512; ipv4 { import filter gshut_in; export none; }; }`,
  `protocol bgp ${h.name}v6 from host { local ${h.tor6} as 65000; neighbor ${h.v6} as 64512; ipv6 { import filter gshut_in; export none; }; }`,
].join('\n')).join('\n')}
`;

t.test('drain toward an eBGP BIRD, IPv4 and IPv6: the community only, BIRD moves to h2 and back, no reset', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return;
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skein-drain-ebgp-'));
  const bird = new Bird(lab.ns('tor'));
  const ns: Record<Name, string> = { h1: lab.ns('h1'), h2: lab.ns('h2') };
  const procs: ChildProcess[] = [];
  const logs: Record<Name, string[]> = { h1: [], h2: [] };
  t.teardown(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await bird.stop().catch(() => undefined);
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const h of HOSTS) {
    lab.link(ns[h.name], bird.ns, h.link, `t${h.link}`);
    lab.addr(ns[h.name], h.link, `${h.v4}/24`);
    lab.addr(bird.ns, `t${h.link}`, `${h.tor4}/24`);
    // nodad: the sessions start at once, not after duplicate address detection
    nsExec(ns[h.name], 'ip', ['-6', 'addr', 'add', `${h.v6}/64`, 'dev', h.link, 'nodad']);
    nsExec(bird.ns, 'ip', ['-6', 'addr', 'add', `${h.tor6}/64`, 'dev', `t${h.link}`, 'nodad']);
  }
  const birdLog = join(dir, 'bird.log');
  await bird.start(birdConf(birdLog));
  const birdLogText = (): string => (existsSync(birdLog) ? readFileSync(birdLog, 'utf8') : '');
  const resFile = join(dir, 'resources.yaml');
  writeFileSync(resFile, RESOURCES);
  const sock = (n: Name): string => join(dir, `${n}.sock`);
  for (const h of HOSTS) {
    const cfg = join(dir, `${h.name}.yaml`);
    writeFileSync(cfg, [`nodeName: ${h.name}`, `datastore: { type: file, path: ${resFile}, debounce: 50ms }`,
      `control: { socket: ${sock(h.name)} }`, 'metrics: { listen: "" }', 'log: { level: info }', ''].join('\n'));
    const p = nsSpawn(ns[h.name], 'node', [SKEIND, '--config', cfg]);
    procs.push(p);
    p.stdout!.on('data', (d: Buffer) => logs[h.name].push(...d.toString().split('\n').filter(Boolean)));
    p.stderr!.on('data', (d: Buffer) => logs[h.name].push(`stderr: ${d.toString()}`));
  }
  const ctl = async (n: Name, ...args: string[]): Promise<Record<string, unknown>> => {
    const r = await runCommand('node', [SKEINCTL, '--socket', sock(n), ...args, '--json'], { timeoutMs: 40_000 });
    if (r.code !== 0) throw new Error(`skeinctl ${args.join(' ')} on ${n}: exit ${r.code}: ${r.err}`);
    return JSON.parse(r.out) as Record<string, unknown>;
  };
  const protos = ['h1v4', 'h1v6', 'h2v4', 'h2v6'];
  const since = (p: string): string => new RegExp(`^${p}\\s+BGP\\s+\\S+\\s+\\S+\\s+(\\S+ \\S+)`, 'm').exec(bird.birdc('show', 'protocols', p))?.[1] ?? '';
  const fromH1 = (svc: string): { community: string; localPref: string; primary: boolean } | undefined => {
    const r = bird.routes(svc).find((x) => x.from.startsWith('h1'));
    return r ? { community: r.bgp.community ?? '', localPref: r.bgp.local_pref ?? '', primary: r.primary } : undefined;
  };
  const primaryFrom = (svc: string): string => bird.routes(svc).find((x) => x.primary)?.from ?? '';
  const torVia = (family: 4 | 6, svc: string): string => {
    const rs = JSON.parse(nsExec(bird.ns, 'ip', ['-j', `-${family}`, 'route', 'show', svc])) as { gateway?: string; nexthops?: { gateway?: string }[] }[];
    return rs[0]?.gateway ?? rs[0]?.nexthops?.[0]?.gateway ?? '';
  };
  try {
    await until(() => protos.every((p) => bird.protocol(p).bgpState === 'Established'), 'all four sessions Established', 60_000, 300);
    await until(() => primaryFrom(SVC4) === 'h1v4' && primaryFrom(SVC6) === 'h1v6' && bird.routes(SVC4).length === 2 && bird.routes(SVC6).length === 2,
      'BIRD has both hosts\' paths of both ranges and uses h1\'s (lower router ID)', 30_000, 200);
    await until(() => torVia(4, SVC4) === HOSTS[0].v4 && torVia(6, SVC6) === HOSTS[0].v6, 'the ToR\'s kernel routes both ranges through h1', 20_000, 100);
    for (const svc of [SVC4, SVC6]) t.notMatch(fromH1(svc)?.community ?? '', /65535, ?0/, `${svc}: no community before the drain`);
    const sinces = Object.fromEntries(protos.map((p) => [p, since(p)]));

    t.equal((await ctl('h1', 'drain', '--seconds', '2')).state, 'draining', 'skeinctl drain: draining');
    await until(() => /65535, ?0/.test(fromH1(SVC4)?.community ?? '') && /65535, ?0/.test(fromH1(SVC6)?.community ?? ''),
      'BIRD sees GRACEFUL_SHUTDOWN on h1\'s routes of both families', 20_000, 100);
    for (const svc of [SVC4, SVC6]) {
      const d = fromH1(svc);
      t.equal(d?.localPref, '0', `${svc}: BIRD's import filter gave it LOCAL_PREF 0 (RFC 8326 §4.2)`);
      t.equal(d?.primary, false, `${svc}: BIRD no longer uses h1's path`);
    }
    t.equal(primaryFrom(SVC4), 'h2v4', 'BIRD uses h2\'s IPv4 path');
    t.equal(primaryFrom(SVC6), 'h2v6', 'BIRD uses h2\'s IPv6 path');
    await until(() => torVia(4, SVC4) === HOSTS[1].v4 && torVia(6, SVC6) === HOSTS[1].v6, 'the ToR\'s kernel routes both ranges through h2', 20_000, 100);
    t.equal((await ctl('h1', 'drain', '--wait')).state, 'drained', 'drained');
    // `log ... all` includes BIRD's "remote" class, which the discarded-attribute message is logged in (proto/bgp/attrs.c)
    t.match(birdLogText(), /<INFO> Started/, 'BIRD\'s log (every class) reaches the test, so a discarded attribute would be seen');
    t.notMatch(birdLogText(), /Discarding LOCAL_PREF/, 'no LOCAL_PREF was sent over eBGP (BIRD discarded none)');

    t.equal((await ctl('h1', 'undrain')).state, 'off', 'skeinctl undrain: off');
    await until(() => primaryFrom(SVC4) === 'h1v4' && primaryFrom(SVC6) === 'h1v6', 'BIRD back on h1\'s paths', 20_000, 100);
    for (const svc of [SVC4, SVC6]) t.notMatch(fromH1(svc)?.community ?? '', /65535, ?0/, `${svc}: the community is gone`);
    await until(() => torVia(4, SVC4) === HOSTS[0].v4 && torVia(6, SVC6) === HOSTS[0].v6, 'the ToR\'s kernel routes both ranges through h1 again', 20_000, 100);
    for (const p of protos) t.equal(since(p), sinces[p], `BIRD's session ${p} was never re-established`);
    t.notMatch(birdLogText(), /Discarding LOCAL_PREF/, 'still no LOCAL_PREF over eBGP');
  } catch (e) {
    t.comment(`h1 log:\n${logs.h1.slice(-30).join('\n')}\nBIRD:\n${bird.birdc('show', 'protocols')}\n${bird.birdc('show', 'route', 'all')}\n${birdLogText().slice(-2000)}`);
    throw e;
  }
});
