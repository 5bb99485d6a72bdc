// skeind end to end: three hosts (network namespaces) on one L2 segment (a bridge in a "fabric" namespace), each
// running `skeind` with the file datastore pointing at ONE shared resources.yaml, pods as namespaces behind
// Calico-style veths. Checks the mesh, the kernel routes (remote blocks via their hosts, own block blackholed,
// device routes to local pods), pod-to-pod pings across hosts, a live edit of resources.yaml, a borrowed address
// (/32 announced by the host that has the pod), skeinctl's JSON shapes, and a clean SIGTERM that leaves the routes.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import { runCommand, type RunResult } from '../helpers/run.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';

const root = join(`${import.meta.dirname}/..`, '..');
const skeind = join(root, 'dist/src/skeind.js');
const skeinctl = join(root, 'dist/src/skeinctl.js');

interface Pod { name: string; host: string; ip: string; ifname: string }

const HOSTS = [
  { name: 'host-a', ip: '10.0.0.1', block: '10.65.0.0/26' },
  { name: 'host-b', ip: '10.0.0.2', block: '10.65.0.64/26' },
  { name: 'host-c', ip: '10.0.0.3', block: '10.65.0.128/26' },
] as const;

const PODS: Pod[] = [
  { name: 'a1', host: 'host-a', ip: '10.65.0.2', ifname: 'cali0a1b2c3d4e5' },
  { name: 'a2', host: 'host-a', ip: '10.65.0.3', ifname: 'cali0a2b2c3d4e5' },
  { name: 'b1', host: 'host-b', ip: '10.65.0.66', ifname: 'cali0b1b2c3d4e5' },
  { name: 'c1', host: 'host-c', ip: '10.65.0.130', ifname: 'cali0c1b2c3d4e5' },
  // borrowed: lives on host-c, its address is in host-a's block
  { name: 'c2', host: 'host-c', ip: '10.65.0.10', ifname: 'cali0c2b2c3d4e5' },
];

function ordinal(ip: string, block: string): number {
  const last = (a: string): number => Number(a.split('.')[3]);
  return last(ip) - last(block.split('/')[0]!);
}

/** Calico resources (JSON is YAML) for the given pods. */
function resources(pods: Pod[]): string {
  const docs: unknown[] = [
    { apiVersion: 'projectcalico.org/v3', kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: true, logSeverityScreen: 'Info' } },
    { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'pods' }, spec: { cidr: '10.65.0.0/16', blockSize: 26 } },
  ];
  for (const h of HOSTS) {
    docs.push({ apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: h.name }, spec: { bgp: { ipv4Address: `${h.ip}/24` } } });
    docs.push({
      apiVersion: 'projectcalico.org/v3', kind: 'BlockAffinity', metadata: { name: `${h.name}-${h.block.replace(/[./]/g, '-')}` },
      spec: { node: h.name, cidr: h.block, state: 'confirmed', deleted: 'false' },
    });
    // Addresses of this block, wherever their pods run (a borrowed one is allocated in the lender's block).
    const inBlock = pods.filter((p) => ordinal(p.ip, h.block) >= 0 && ordinal(p.ip, h.block) < 64);
    const allocations: (number | null)[] = new Array<number | null>(64).fill(null);
    const attributes = inBlock.map((p, i) => {
      allocations[ordinal(p.ip, h.block)] = i;
      return { handle_id: `k8s-pod-network.${p.name}`, secondary: { namespace: 'default', node: p.host, pod: p.name } };
    });
    docs.push({
      apiVersion: 'projectcalico.org/v3', kind: 'IPAMBlock', metadata: { name: h.block.replace(/[./]/g, '-') },
      spec: {
        cidr: h.block, affinity: `host:${h.name}`, allocations,
        unallocated: allocations.map((a, i) => (a === null ? i : -1)).filter((i) => i >= 0),
        attributes, sequenceNumber: 1, deleted: false,
      },
    });
  }
  for (const p of pods) {
    docs.push({
      apiVersion: 'projectcalico.org/v3', kind: 'WorkloadEndpoint',
      metadata: { name: `${p.host.replace(/-/g, '--')}-k8s-${p.name}-eth0`, namespace: 'default', labels: { 'projectcalico.org/namespace': 'default', 'projectcalico.org/orchestrator': 'k8s' } },
      spec: { orchestrator: 'k8s', node: p.host, pod: p.name, endpoint: 'eth0', interfaceName: p.ifname, ipNetworks: [`${p.ip}/32`] },
    });
  }
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

interface KRoute { dst: string; gateway?: string; dev?: string; type?: string; protocol?: string; nexthops?: { gateway: string }[] }

function routesOf(ns: string): KRoute[] {
  return JSON.parse(nsExec(ns, 'ip', ['-j', 'route', 'show', 'proto', '171'])) as KRoute[];
}

const run = (cmd: string, args: string[], timeoutMs = 15_000): Promise<RunResult> => runCommand(cmd, args, { timeoutMs });

async function ctl(sock: string, ...args: string[]): Promise<Record<string, unknown>> {
  const r = await run('node', [skeinctl, '--socket', sock, ...args, '--json']);
  if (r.code !== 0) throw new Error(`skeinctl ${args.join(' ')}: exit ${r.code}: ${r.err}`);
  return JSON.parse(r.out) as Record<string, unknown>;
}

function ping(ns: string, to: string): boolean {
  try {
    nsExec(ns, 'ping', ['-c', '1', '-W', '1', to], { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}

t.test('three hosts, one resources.yaml: mesh, routes, pings, live edit, borrowed /32, skeinctl, SIGTERM', async (t) => {
  if (!requires(t, { root: true, commands: ['ping'] })) return;
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skeind-e2e-'));
  const daemons = new Map<string, ChildProcess>();
  const logs = new Map<string, string[]>();
  t.teardown(() => {
    for (const d of daemons.values()) if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  // The fabric: a bridge in its own namespace, one veth per host.
  const fabric = lab.ns('fab');
  nsExec(fabric, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  nsExec(fabric, 'ip', ['link', 'set', 'br0', 'up']);
  const hostNs = new Map<string, string>();
  for (const [i, h] of HOSTS.entries()) {
    const ns = lab.ns(h.name.slice(-1));
    hostNs.set(h.name, ns);
    lab.link(fabric, ns, `p${i}`, 'eth0');
    nsExec(fabric, 'ip', ['link', 'set', `p${i}`, 'master', 'br0']);
    lab.addr(ns, 'eth0', `${h.ip}/24`);
    nsExec(ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    // The pods' gateway 169.254.1.1 is answered by proxy ARP on the cali interface (as with Calico); the host
    // needs a route to it for proxy ARP to answer, which a real host's default route gives.
    nsExec(ns, 'ip', ['addr', 'add', '169.254.1.1/32', 'dev', 'lo']);
  }
  const podNs = new Map<string, string>();
  for (const p of PODS) {
    const host = hostNs.get(p.host)!;
    const ns = lab.ns(p.name);
    podNs.set(p.name, ns);
    lab.link(ns, host, 'eth0', p.ifname);
    nsExec(host, 'sysctl', ['-qw', `net.ipv4.conf.${p.ifname}.proxy_arp=1`]);
    lab.addr(ns, 'eth0', `${p.ip}/32`);
    nsExec(ns, 'ip', ['route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0', 'onlink']);
  }

  const resFile = join(dir, 'resources.yaml');
  const writeResources = (pods: Pod[]): void => {
    // atomic replace, as a ConfigMap update or an editor would
    writeFileSync(`${resFile}.tmp`, resources(pods));
    renameSync(`${resFile}.tmp`, resFile);
  };
  writeResources(PODS);

  const sock = (h: string): string => join(dir, `${h}.sock`);
  const basePort = 29180 + (process.pid % 500) * 3;
  for (const [i, h] of HOSTS.entries()) {
    const cfg = join(dir, `${h.name}.yaml`);
    writeFileSync(cfg, [
      `nodeName: ${h.name}`,
      `datastore: { type: file, path: ${resFile}, debounce: 50ms }`,
      `control: { socket: ${sock(h.name)} }`,
      `metrics: { listen: "127.0.0.1:${basePort + i}" }`,
      'log: { level: info }',
      '',
    ].join('\n'));
    const child = nsSpawn(hostNs.get(h.name)!, 'node', [skeind, '--config', cfg]);
    const lines: string[] = [];
    logs.set(h.name, lines);
    child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    child.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString()}`));
    daemons.set(h.name, child);
  }
  const dumpLogs = (): void => {
    for (const [h, lines] of logs) t.comment(`--- ${h} (last lines)\n${lines.slice(-25).join('\n')}`);
  };

  try {
    // 1. The mesh: every host has its two peers Established.
    for (const h of HOSTS) {
      await until(async () => {
        const s = await ctl(sock(h.name), 'status');
        const peers = s.peers as { state: string; type: string }[];
        return peers.length === 2 && peers.every((p) => p.state === 'Established') ? s : undefined;
      }, `${h.name}: 2 peers Established`, 45_000, 250);
    }
    const status = await ctl(sock('host-a'), 'status');
    t.equal(status.node, 'host-a');
    t.equal(status.routerId, '10.0.0.1', 'router ID is the node IPv4 address');
    t.equal(status.asn, 64512);
    t.same((status.peers as { address: string }[]).map((p) => p.address).sort(), ['10.0.0.2', '10.0.0.3']);
    t.ok((status.peers as { type: string }[]).every((p) => p.type === 'node-to-node mesh'), 'mesh peers are typed as such');

    // 2. Kernel routes on every host.
    for (const h of HOSTS) {
      const ns = hostNs.get(h.name)!;
      const routes = await until(() => {
        const r = routesOf(ns);
        const others = HOSTS.filter((o) => o !== h);
        const ok = others.every((o) => r.some((x) => x.dst === o.block && x.gateway === o.ip))
          && r.some((x) => x.dst === h.block && x.type === 'blackhole')
          && PODS.filter((p) => p.host === h.name).every((p) => r.some((x) => x.dst === p.ip && x.dev === p.ifname));
        return ok ? r : undefined;
      }, `${h.name}: remote blocks via their hosts, own block blackholed, device routes to local pods`, 20_000, 200);
      t.pass(`${h.name}: ${routes?.length ?? 0} routes with proto 171`);
    }

    // 3. Pod to pod across hosts.
    await until(() => ping(podNs.get('a1')!, '10.65.0.66'), 'ping a1 (host-a) -> b1 (host-b)', 15_000, 250);
    await until(() => ping(podNs.get('b1')!, '10.65.0.130'), 'ping b1 (host-b) -> c1 (host-c)', 15_000, 250);
    t.pass('pods on different hosts reach each other');

    // 4. Borrowed address: c2 (on host-c) has 10.65.0.10 from host-a's block.
    for (const h of ['host-a', 'host-b']) {
      await until(() => routesOf(hostNs.get(h)!).some((x) => x.dst === '10.65.0.10' && x.gateway === '10.0.0.3'), `${h}: 10.65.0.10/32 via host-c`, 15_000, 200);
    }
    const onC = routesOf(hostNs.get('host-c')!);
    t.ok(onC.some((x) => x.dst === '10.65.0.10' && x.dev === 'cali0c2b2c3d4e5'), 'host-c routes the borrowed address to its pod');
    await until(() => ping(podNs.get('b1')!, '10.65.0.10'), 'ping b1 -> borrowed c2 on host-c', 15_000, 250);
    await until(() => ping(podNs.get('b1')!, '10.65.0.2'), 'ping b1 -> a1 (rest of host-a block still to host-a)', 15_000, 250);
    await until(() => ping(podNs.get('a1')!, '10.65.0.10'), 'ping a1 -> borrowed c2 (its own block, but the /32 is on host-c)', 15_000, 250);
    t.pass('borrowed /32 is reachable on host-c while the rest of the block goes to host-a');

    // 5. skeinctl JSON shapes (docs/contract.md).
    const peers = (await ctl(sock('host-b'), 'peers')).peers as Record<string, unknown>[];
    t.equal(peers.length, 2);
    for (const p of peers) {
      for (const k of ['address', 'port', 'asn', 'localAsn', 'type', 'state', 'since', 'info', 'families', 'prefixes']) t.ok(k in p, `peer has ${k}`);
      t.same(Object.keys(p.prefixes as object).sort(), ['accepted', 'advertised', 'received']);
      t.ok(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(p.since as string), 'since is ISO 8601');
      t.same(p.families, ['ipv4-unicast']);
    }
    const routes = (await ctl(sock('host-b'), 'routes')).routes as { prefix: string; installed: boolean; best: Record<string, unknown>; paths: unknown[] }[];
    const blockA = routes.find((r) => r.prefix === '10.65.0.0/26');
    t.ok(blockA, 'host-b has host-a block in its Loc-RIB');
    t.equal(blockA?.installed, true, 'and it is in the kernel');
    t.equal(blockA?.best.from, '10.0.0.1');
    t.same(blockA?.best.nextHops, ['10.0.0.1']);
    for (const k of ['from', 'nextHops', 'asPath', 'origin', 'localPref', 'med', 'communities', 'largeCommunities', 'reason']) t.ok(k in blockA!.best, `path has ${k}`);
    const own = routes.find((r) => r.prefix === '10.65.0.64/26');
    t.equal(own?.best.from, 'local', 'own block is a local origination');
    t.equal(own?.installed, true, 'a local block is "in kernel" (its blackhole), as `skeinctl fib` says');
    const fibB = (await ctl(sock('host-b'), 'fib')).routes as { prefix: string; desired: { type: string } | null; state: string }[];
    t.match(fibB.find((r) => r.prefix === '10.65.0.64/26'), { desired: { type: 'blackhole' }, state: 'in-sync' }, 'skeinctl fib agrees');
    const one = (await ctl(sock('host-b'), 'routes', '10.65.0.10')).routes as { prefix: string }[];
    t.same(one.map((r) => r.prefix), ['10.65.0.10/32'], 'routes ADDRESS gives the longest match');
    const fib = await ctl(sock('host-a'), 'fib');
    t.equal(fib.enabled, true);
    t.equal(fib.protocol, 171);
    const fr = fib.routes as { prefix: string; desired: { type: string; nextHops: string[]; dev?: string } | null; kernel: unknown; state: string }[];
    t.equal(fr.find((r) => r.prefix === '10.65.0.0/26')?.desired?.type, 'blackhole');
    t.same(fr.find((r) => r.prefix === '10.65.0.64/26')?.desired, { type: 'unicast', nextHops: ['10.0.0.2'] });
    t.equal(fr.find((r) => r.prefix === '10.65.0.2/32')?.desired?.dev, 'cali0a1b2c3d4e5');
    t.ok(fr.every((r) => r.state === 'in-sync'), 'every route in sync');
    const counts = fib.counts as Record<string, number>;
    t.equal(counts.failed, 0);
    const writer = fib.writer as { requestThreadRunning: unknown; requestThreadStarts: number; errors: number; overruns: number };
    t.equal(typeof writer.requestThreadRunning, 'boolean', 'skeinctl fib: whether the request thread runs');
    t.ok(Number.isInteger(writer.requestThreadStarts) && writer.requestThreadStarts >= 0, `skeinctl fib: request thread starts (${writer.requestThreadStarts})`);
    t.same([writer.errors, writer.overruns], [0, 0], 'skeinctl fib: no refused messages, no overruns');

    // Metrics and readiness, inside host-b's namespace.
    const metrics = nsExec(hostNs.get('host-b')!, 'curl', ['-sf', `http://127.0.0.1:${basePort + 1}/metrics`]);
    t.match(metrics, /skein_bgp_peer_state\{peer="10\.0\.0\.1",state="Established"\} 1/, '/metrics: peer state');
    t.match(metrics, /skein_datastore_synced 1/, '/metrics: datastore synced');
    t.match(metrics, /skein_fib_routes\{state="installed"\} [1-9]/, '/metrics: FIB routes');
    t.match(metrics, /skein_fib_kernel_messages_total\{op="add"\} [1-9]/, '/metrics: route messages sent to the kernel');
    t.match(metrics, /\nskein_fib_request_thread_running [01]\n/, '/metrics: whether the request thread runs');
    t.match(metrics, /\nskein_fib_request_thread_starts_total \d+\n/, '/metrics: request thread starts');
    t.match(metrics, /\nskein_fib_netlink_overruns_total 0\n/, '/metrics: no overruns');
    await until(() => nsExec(hostNs.get('host-b')!, 'curl', ['-s', `http://127.0.0.1:${basePort + 1}/readyz`]).startsWith('ok'), '/readyz ok on host-b', 15_000, 250);

    // SIGHUP: configuration re-read, sessions stay.
    const conns = (await ctl(sock('host-b'), 'peers')).peers as { address: string; connection?: number }[];
    daemons.get('host-b')!.kill('SIGHUP');
    await until(() => logs.get('host-b')!.some((l) => l.includes('"msg":"reloaded"')), 'host-b reloaded on SIGHUP', 10_000, 100);
    const after = (await ctl(sock('host-b'), 'peers')).peers as { address: string; connection?: number; state: string }[];
    t.same(after.map((p) => [p.address, p.connection, p.state]), conns.map((p) => [p.address, p.connection, 'Established']), 'SIGHUP keeps every session');

    // 6. Live edit: a2 goes away -> its device route disappears on host-a, nothing else moves.
    writeResources(PODS.filter((p) => p.name !== 'a2'));
    await until(() => !routesOf(hostNs.get('host-a')!).some((x) => x.dst === '10.65.0.3'), 'host-a: device route of removed a2 gone', 15_000, 200);
    t.ok(routesOf(hostNs.get('host-a')!).some((x) => x.dst === '10.65.0.2' && x.dev === 'cali0a1b2c3d4e5'), 'a1 keeps its route');
    t.ok(ping(podNs.get('a1')!, '10.65.0.66'), 'traffic still flows');
    const still = await ctl(sock('host-a'), 'status');
    t.ok((still.peers as { state: string }[]).every((p) => p.state === 'Established'), 'sessions untouched by the edit');

    // 7. SIGTERM: exit 0, routes stay.
    const nsA = hostNs.get('host-a')!;
    const before = nsExec(nsA, 'ip', ['route', 'show', 'proto', '171']);
    const a = daemons.get('host-a')!;
    const exited = new Promise<number | null>((resolve) => a.once('exit', (code) => resolve(code)));
    a.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000))]);
    t.equal(code, 0, 'skeind exits 0 on SIGTERM');
    t.equal(nsExec(nsA, 'ip', ['route', 'show', 'proto', '171']), before, 'routes stay in the kernel after the stop');
    t.match(before, /10\.65\.0\.64\/26 (nhid \d+ )?via 10\.0\.0\.2/, 'including the learned ones (`nhid N` first when through a nexthop object)');
    t.ok(logs.get('host-a')!.some((l) => l.includes('stopped; routes left in the kernel')), 'logged the clean stop');

    // 8. Start again: the routes in the kernel are adopted, never removed while the state is re-learned, and
    // the node becomes ready once its peers are back and the FIB is reconciled.
    const monitor = nsSpawn(nsA, 'ip', ['-o', 'monitor', 'route']);
    let monitored = '';
    monitor.stdout!.on('data', (d: Buffer) => (monitored += d.toString()));
    await new Promise((r) => setTimeout(r, 200));
    const again = nsSpawn(nsA, 'node', [skeind, '--config', join(dir, 'host-a.yaml')]);
    daemons.set('host-a', again);
    const againLines: string[] = [];
    logs.set('host-a', againLines);
    again.stdout!.on('data', (d: Buffer) => againLines.push(...d.toString().split('\n').filter(Boolean)));
    const back = await until(async () => {
      const s = await ctl(sock('host-a'), 'status');
      return s.ready === true && (s.peers as { state: string }[]).every((p) => p.state === 'Established') ? s : undefined;
    }, 'host-a: ready again with both peers Established', 45_000, 250);
    t.equal((back?.peers as unknown[] | undefined)?.length, 2);
    monitor.kill('SIGTERM');
    const sorted = (x: string): string[] => x.split('\n').filter(Boolean).sort();
    t.same(sorted(nsExec(nsA, 'ip', ['route', 'show', 'proto', '171'])), sorted(before), 'same routes after the restart');
    // on failure, the restarted daemon's log says what it did meanwhile (the sweep's count, next-hop changes)
    t.notMatch(monitored, /^Deleted .*10\.65\./m, 'no route of skein was deleted during the restart', { restartLog: againLines.slice(0, 60) });
    t.ok(againLines.some((l) => l.includes('adopted')), 'the restarted daemon adopted the kernel routes');
    t.ok(ping(podNs.get('a1')!, '10.65.0.66'), 'traffic flows after the restart');

    // 9. kill -9 on host-b: no NOTIFICATION, the sessions just drop. Graceful restart (RFC 4724 §4.2) makes
    // host-a and host-c keep host-b's block while it is away, and host-b's own kernel keeps forwarding to its pod,
    // so traffic never stops; the restarted skeind adopts its routes and the others refresh theirs.
    const watch = ['host-a', 'host-c'].map((h) => {
      const m = nsSpawn(hostNs.get(h)!, 'ip', ['-o', 'monitor', 'route']);
      const seen = { text: '' };
      m.stdout!.on('data', (d: Buffer) => (seen.text += d.toString()));
      return { host: h, m, seen };
    });
    await new Promise((r) => setTimeout(r, 200));
    const b = daemons.get('host-b')!;
    const killed = new Promise<void>((resolve) => b.once('exit', () => resolve()));
    b.kill('SIGKILL');
    await killed;
    await until(async () => {
      const s = await ctl(sock('host-a'), 'status');
      return (s.peers as { address: string; state: string }[]).some((p) => p.address === '10.0.0.2' && p.state !== 'Established');
    }, 'host-a sees the session to host-b drop', 30_000, 100);
    for (const h of ['host-a', 'host-c']) {
      t.ok(routesOf(hostNs.get(h)!).some((x) => x.dst === '10.65.0.64/26' && x.gateway === '10.0.0.2'), `${h} keeps host-b's block while host-b's skeind is dead`);
    }
    t.ok(ping(podNs.get('a1')!, '10.65.0.66'), 'traffic to host-b\'s pod flows while its skeind is dead');
    const bAgain = nsSpawn(hostNs.get('host-b')!, 'node', [skeind, '--config', join(dir, 'host-b.yaml')]);
    daemons.set('host-b', bAgain);
    await until(async () => {
      const s = await ctl(sock('host-b'), 'status');
      return s.ready === true && (s.peers as { state: string }[]).every((p) => p.state === 'Established');
    }, 'host-b: ready again with both peers Established', 45_000, 250);
    await until(async () => {
      const s = await ctl(sock('host-a'), 'status');
      return (s.peers as { state: string }[]).every((p) => p.state === 'Established');
    }, 'host-a: both peers Established again', 30_000, 100);
    for (const w of watch) {
      w.m.kill('SIGTERM');
      t.notMatch(w.seen.text, /^Deleted 10\.65\.0\.64\/26/m, `${w.host} never deleted host-b's block across the kill -9 and restart`);
      t.ok(routesOf(hostNs.get(w.host)!).some((x) => x.dst === '10.65.0.64/26' && x.gateway === '10.0.0.2'), `${w.host} routes host-b's block after the restart`);
    }
    t.ok(ping(podNs.get('a1')!, '10.65.0.66'), 'traffic flows after host-b is back');
  } catch (e) {
    dumpLogs();
    throw e;
  }
});

t.test('two dual-stack hosts with a mesh password: IPv4 and IPv6 sessions signed with TCP-MD5, both families routed', async (t) => {
  if (!requires(t, { root: true })) return;
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skeind-e2e6-'));
  const daemons: ChildProcess[] = [];
  const logs = new Map<string, string[]>();
  t.teardown(() => {
    for (const d of daemons) if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const hosts = [
    { name: 'host-a', v4: '10.0.0.1', v6: 'fd00::1', b4: '10.65.0.0/26', b6: 'fd00:65::/122' },
    { name: 'host-b', v4: '10.0.0.2', v6: 'fd00::2', b4: '10.65.0.64/26', b6: 'fd00:65::40/122' },
  ];
  const [na, nb] = [lab.ns('a'), lab.ns('b')];
  lab.link(na, nb, 'eth0', 'ethb');
  nsExec(nb, 'ip', ['link', 'set', 'ethb', 'down']);
  nsExec(nb, 'ip', ['link', 'set', 'ethb', 'name', 'eth0']);
  nsExec(nb, 'ip', ['link', 'set', 'eth0', 'up']);
  const nsOf = new Map([['host-a', na], ['host-b', nb]]);
  for (const h of hosts) {
    const ns = nsOf.get(h.name)!;
    lab.addr(ns, 'eth0', `${h.v4}/24`);
    lab.addr(ns, 'eth0', `${h.v6}/64`);
  }
  const secrets = join(dir, 'secrets');
  mkdirSync(join(secrets, 'bgp-secrets'), { recursive: true });
  writeFileSync(join(secrets, 'bgp-secrets', 'mesh'), 'tops3cret-mesh\n');
  const docs: unknown[] = [
    { kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeMeshPassword: { secretKeyRef: { name: 'bgp-secrets', key: 'mesh' } } } },
    { kind: 'IPPool', metadata: { name: 'v4' }, spec: { cidr: '10.65.0.0/16', blockSize: 26 } },
    { kind: 'IPPool', metadata: { name: 'v6' }, spec: { cidr: 'fd00:65::/48', blockSize: 122 } },
  ];
  for (const h of hosts) {
    docs.push({ kind: 'Node', metadata: { name: h.name }, spec: { bgp: { ipv4Address: `${h.v4}/24`, ipv6Address: `${h.v6}/64` } } });
    for (const b of [h.b4, h.b6]) {
      docs.push({ kind: 'BlockAffinity', metadata: { name: `${h.name}-${b.replace(/[./:]/g, '-')}` }, spec: { node: h.name, cidr: b, state: 'confirmed', deleted: 'false' } });
    }
  }
  const resFile = join(dir, 'resources.yaml');
  writeFileSync(resFile, docs.map((d) => `---\n${JSON.stringify({ apiVersion: 'projectcalico.org/v3', ...(d as object) })}\n`).join(''));
  const sock = (h: string): string => join(dir, `${h}.sock`);
  // systemd's side of sd_notify for host-a: a datagram socket that prints what it receives.
  const notifyPath = join(dir, 'notify.sock');
  const notify = spawn('python3', ['-c', [
    'import socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    'print("bound", flush=True)',
    's.settimeout(60)',
    'while True: print(s.recv(4096).decode().replace("\\n", " "), flush=True)',
  ].join('\n'), notifyPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => notify.kill('SIGKILL'));
  let notified = '';
  notify.stdout.on('data', (d: Buffer) => (notified += d.toString()));
  await until(() => notified.includes('bound'), 'notify socket bound', 10_000, 50);
  for (const h of hosts) {
    const cfg = join(dir, `${h.name}.yaml`);
    writeFileSync(cfg, `nodeName: ${h.name}\ndatastore: { type: file, path: ${resFile} }\ncontrol: { socket: ${sock(h.name)} }\nmetrics: { listen: "" }\nsecretsDir: ${secrets}\n`);
    const env = h.name === 'host-a' ? { ...process.env, NOTIFY_SOCKET: notifyPath } : process.env;
    const child = nsSpawn(nsOf.get(h.name)!, 'node', [skeind, '--config', cfg], { env });
    const lines: string[] = [];
    logs.set(h.name, lines);
    child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    child.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString()}`));
    daemons.push(child);
  }
  try {
    const st = await until(async () => {
      const s = await ctl(sock('host-a'), 'status');
      const peers = s.peers as { address: string; state: string; families: string[] }[];
      return peers.length === 2 && peers.every((p) => p.state === 'Established') ? peers : undefined;
    }, 'host-a: IPv4 and IPv6 mesh sessions Established', 45_000, 250);
    t.same(st?.map((p) => [p.address, p.families]).sort(), [['10.0.0.2', ['ipv4-unicast']], ['fd00::2', ['ipv6-unicast']]], 'one session per family, as Calico');
    await until(() => {
      const r4 = JSON.parse(nsExec(nb, 'ip', ['-j', 'route', 'show', 'proto', '171'])) as KRoute[];
      const r6 = JSON.parse(nsExec(nb, 'ip', ['-j', '-6', 'route', 'show', 'proto', '171'])) as KRoute[];
      return r4.some((x) => x.dst === '10.65.0.0/26' && x.gateway === '10.0.0.1')
        && r6.some((x) => x.dst === 'fd00:65::/122' && x.gateway === 'fd00::1')
        && r6.some((x) => x.dst === 'fd00:65::40/122' && x.type === 'blackhole');
    }, 'host-b: host-a blocks via host-a in both families, own IPv6 block blackholed', 20_000, 200);
    t.pass('both families routed');
    // The sockets really carry the key: the kernel lists TCP-MD5 on them.
    const ss = nsExec(na, 'ss', ['-tnie', 'state', 'established', '( sport = :179 or dport = :179 )']);
    t.match(ss, /md5/, 'established BGP sockets are TCP-MD5 signed');
    t.notOk([...logs.values()].flat().some((l) => l.includes('tops3cret')), 'the password never appears in the logs');
    await until(() => notified.includes('READY=1'), 'READY=1 sent to NOTIFY_SOCKET once ready', 45_000, 100);
    t.pass('systemd is told READY=1 once the node is ready');
  } catch (e) {
    for (const [h, lines] of logs) t.comment(`--- ${h}\n${lines.slice(-25).join('\n')}`);
    throw e;
  }
});
