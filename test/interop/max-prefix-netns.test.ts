// Maximum prefixes against skeind, the kernel and a real BIRD 2 session in network namespaces (issue 15; RFC 4486
// §4; test/engine/max-prefix.test.ts checks the RIB itself). A flooding peer (skein's own speaker in its own namespace,
// test/max-prefix-peer.ts) announces 1M /32s; skeind's bgp.maxPrefixes is 100k. Asserted: the session ends with a
// NOTIFICATION Cease / Maximum Number of Prefixes Reached whose data is AFI 1, SAFI 1 and the limit, as tshark
// decodes it off the wire; the kernel (watched with ip monitor from before the flood) never held more than 100k of
// the flood's routes at once nor saw more than 100k distinct ones added, and holds none once the session is down;
// BIRD's session is never reset and its routes stay in the kernel.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { callControl } from '../../src/control/index.js';
import { requires } from '../helpers/env.js';
import { startSkeind, twoPeerLab } from '../helpers/two-peer-lab.js';
import { nsExec, nsSpawn, until } from '../helpers/netns.js';
import { runCommand } from '../helpers/run.js';
import { Bird } from '../helpers/bird.js';

const root = join(`${import.meta.dirname}/..`, '..');
const floodPeer = join(root, 'dist/test/max-prefix-peer.js');
const N = 1_000_000;
const LIMIT = 100_000;
const STEADY = [0, 1, 2, 3, 4].map((i) => `10.3.${i}.0/24`);

const birdSteady = `
router id 10.0.2.2;
protocol device { scan time 1; }
protocol static s4 { ipv4; ${STEADY.map((p) => `route ${p} blackhole;`).join(' ')} }
protocol bgp sk {
  local 10.0.2.2 as 65020; neighbor 10.0.2.1 as 64512;
  hold time 30; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export all; };
}
`;

function resources(withFlood: boolean): string {
  const docs = [
    { apiVersion: 'projectcalico.org/v3', kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: false } },
    { apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: 'mp-a' }, spec: { bgp: { ipv4Address: '10.0.1.1/24' } } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'steady' }, spec: { peerIP: '10.0.2.2', asNumber: 65020 } },
    ...(withFlood ? [{ apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'flood' }, spec: { peerIP: '10.0.1.2', asNumber: 65001 } }] : []),
  ];
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

/** a flood route: a /32 in 10.128.0.0/9 (ip monitor prints host routes without the /32) */
const isFlood = (dst: string): boolean => /^10\.(1[3-9]\d|2[0-5]\d|128)\.\d+\.\d+(\/32)?$/.test(dst) && Number(dst.split('.')[1]) >= 128;

interface PeerRow { address: string; state: string; since: string; notifications: { in: Record<string, number>; out: Record<string, number> } }

t.test(`1M routes against bgp.maxPrefixes 100k: Cease/1 on the wire, never more than the limit in the kernel, BIRD undisturbed`, async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc', 'tshark'] })) return;
  const l = twoPeerLab(t, 'mp');
  const { dir, procs, lines, host: ns, a: nsF, b: nsB, ifA: sf } = l;

  const steady = new Bird(nsB);
  t.teardown(() => steady.stop());
  await steady.start(birdSteady);

  const { resFile, sock } = startSkeind(l, { node: 'mp-a', resources: resources(false), metrics: '127.0.0.1:29983', config: [`bgp: { maxPrefixes: { limit: ${LIMIT} } }`, 'log: { level: info }'] });
  const peers = async (): Promise<PeerRow[]> => ((await callControl(sock, 'peers')) as { peers: PeerRow[] }).peers;
  const kernel = (): { dst: string; protocol?: string }[] => JSON.parse(nsExec(ns, 'ip', ['-j', 'route', 'show', 'table', 'main'], { timeoutMs: 30_000 })) as { dst: string; protocol?: string }[];
  const diag = (): void => t.comment(`skeind log (last lines):\n${lines.slice(-30).join('\n')}`);

  try {
    await until(async () => (await peers()).find((p) => p.address === '10.0.2.2')?.state === 'Established' || undefined, 'BIRD Established', 60_000, 300);
    await until(() => STEADY.every((p) => kernel().some((r) => r.dst === p)) || undefined, 'BIRD\'s routes in the kernel', 30_000, 300);
    const steadySince = (await peers()).find((p) => p.address === '10.0.2.2')!.since;
    const birdBefore = steady.protocol('sk');

    // watch the kernel and the wire from before the flood
    const pcap = join(dir, 'flood.pcap');
    const cap = nsSpawn(ns, 'tshark', ['-i', sf, '-f', 'tcp and src host 10.0.1.1', '-w', pcap]);
    procs.push(cap);
    let capErr = '';
    cap.stderr!.on('data', (d: Buffer) => (capErr += d.toString()));
    await until(() => /Capturing on/.test(capErr) || undefined, 'tshark capturing', 20_000, 100);
    const mon = nsSpawn(ns, 'ip', ['-o', 'monitor', 'route']);
    procs.push(mon);
    const inKernel = new Set<string>();
    const everAdded = new Set<string>();
    let most = 0;
    createInterface({ input: mon.stdout! }).on('line', (line) => {
      const deleted = line.startsWith('Deleted ');
      const dst = (deleted ? line.slice(8) : line).split(' ')[0] ?? '';
      if (!isFlood(dst)) return;
      if (deleted) inKernel.delete(dst);
      else {
        inKernel.add(dst);
        everAdded.add(dst);
        most = Math.max(most, inKernel.size);
      }
    });
    await new Promise((r) => setTimeout(r, 300)); // the monitor subscribes

    // the flood: its peer is configured once skeind is up and running (not a start-up peer it waits for)
    writeFileSync(resFile, resources(true));
    const flood = spawn('ip', ['netns', 'exec', nsF, 'node', floodPeer], { env: { ...process.env, NEIGHBOR: '10.0.1.1', ADDR: '10.0.1.2', N: String(N) }, stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(flood);
    const events: { event: string; state?: string; info?: string }[] = [];
    createInterface({ input: flood.stdout! }).on('line', (l) => events.push(JSON.parse(l) as { event: string }));
    await until(() => events.some((e) => e.state === 'Established') || undefined, 'the flood session Established', 120_000, 200);
    const closed = await until(() => events.find((e, i) => i > events.findIndex((x) => x.state === 'Established') && e.event === 'peer' && e.state !== 'Established'), 'the flood session closed by skeind', 120_000, 200);
    t.match(closed!.info, /Cease|prefix/i, `the flooding peer was told why: ${closed!.info}`);
    const fp = await until(async () => {
      const p = (await peers()).find((x) => x.address === '10.0.1.2');
      return p !== undefined && p.state !== 'Established' ? p : undefined;
    }, 'skeind shows the flood peer down', 30_000, 300);
    t.equal(fp!.notifications.out['6/1'], 1, 'skeind sent one Cease / Maximum Number of Prefixes Reached');
    t.ok(lines.some((l) => /maximum ipv4-unicast prefixes exceeded/.test(l)), 'and logged it');

    // the kernel lets go of everything of the flood
    await until(() => (kernel().some((r) => isFlood(r.dst)) ? undefined : true), 'no flood route left in the kernel', 60_000, 500);
    await new Promise((r) => setTimeout(r, 500)); // the monitor's last lines
    t.ok(most <= LIMIT, `at most ${most.toLocaleString('en')} flood routes in the kernel at once (limit ${LIMIT.toLocaleString('en')})`);
    t.ok(everAdded.size <= LIMIT, `${everAdded.size.toLocaleString('en')} distinct flood routes ever added to the kernel, none beyond the limit`);

    // the wire: tshark's reading of what skeind sent to the flooding peer
    cap.kill('SIGINT');
    await until(() => cap.exitCode !== null || cap.signalCode !== null || undefined, 'tshark finished', 20_000, 100);
    const r = await runCommand('tshark', ['-r', pcap, '-Y', 'bgp.type == 3', '-T', 'fields', '-e', 'bgp.notify.major_error', '-e', 'bgp.notify.minor_error_cease', '-e', 'bgp.notify.minor_data'], { timeoutMs: 60_000 });
    const rows = r.out.trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
    t.equal(rows.length, 1, 'one NOTIFICATION on the wire');
    t.equal(rows[0]?.[0], '6', 'Cease');
    t.equal(rows[0]?.[1], '1', 'Maximum Number of Prefixes Reached');
    t.equal(rows[0]?.[2]?.replace(/:/g, ''), `000101${LIMIT.toString(16).padStart(8, '0')}`, 'data: AFI 1, SAFI 1, limit 100,000 (RFC 4486 §4)');

    // BIRD: same session, routes still in the kernel
    const sp = (await peers()).find((p) => p.address === '10.0.2.2')!;
    t.equal(sp.state, 'Established', 'BIRD still Established');
    t.equal(sp.since, steadySince, 'its session was never reset');
    t.equal(steady.protocol('sk').state, birdBefore.state, 'BIRD agrees');
    t.ok(STEADY.every((p) => kernel().some((x) => x.dst === p)), 'BIRD\'s routes stay in the kernel');
    t.notOk(lines.some((l) => /10\.0\.2\.2/.test(l) && /down|NOTIFICATION|Hold/i.test(l)), 'nothing logged against BIRD');
  } catch (e) {
    diag();
    throw e;
  }
});
