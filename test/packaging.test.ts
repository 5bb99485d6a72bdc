// Shipping: `npm run deb` builds a Debian package that needs no Node, Python or compiler on the host (its own
// Node runtime, the prebuilt native addon and netlink binding, production dependencies only), with the unit, the
// rt_protos.d entry, the example skein.yaml as a conffile and a postinst that creates the `skein` group; the
// packaged skeind runs from an unpacked copy with nothing but its own files. `npm pack` ships neither tests, benches
// nor CI. Building the package takes 1–2 minutes (copying and pruning node_modules), so this file builds it once.
import t, { type Test } from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { inCI, missing, requires, type Needs } from './helpers/env.js';
import { Lab, until } from './helpers/netns.js';
import { debianRoot, DEBIAN_ROOT, type DebRoot } from '../scripts/debian-root.mjs';
import { Container } from './helpers/nspawn.js';
import { runCommand } from './helpers/run.js';

const root = join(import.meta.dirname, '..');
const tap = t;
/** the package `npm run deb` built in this run, for the systemd test */
let deb: string | undefined;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

// The systemd test's Debian root is made (or taken from its cache) while the package builds: both take minutes on
// a first run, and debootstrap mostly waits on the network.
const NSPAWN: Needs = { root: true, commands: ['debootstrap', 'systemd-nspawn', 'nsenter', 'dpkg-deb', 'ip', 'curl'] };
const debRoot: Promise<DebRoot | Error> | undefined = missing(NSPAWN) === undefined
  ? debianRoot(DEBIAN_ROOT).catch((e: unknown) => e as Error)
  : undefined;

t.test('npm pack ships no tests, benches or CI', async (t) => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  t.equal(r.status, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  t.same(files.filter((f) => /^(test|bench|\.ci|dist\/test|dist\/bench)\//.test(f)), [], 'none of test/, bench/, .ci/');
  t.same(files.filter((f) => f.includes('native/build/')), [], 'no build products of this machine (postinstall builds them)');
  for (const f of ['dist/src/skeind.js', 'dist/src/skeinctl.js', 'dist/src/skein-bfdd.js', 'systemd/skein-bfd.service', 'scripts/build-native.mjs', 'scripts/patch-netlink.mjs', 'bgp/native/binding.gyp', 'systemd/skein.service', 'fib/skein.conf']) {
    t.ok(files.includes(f), `ships ${f}`);
  }
});

t.test('npm run deb: contents, metadata, and the packaged skeind runs on its own runtime', async (t) => {
  if (!requires(t, { commands: ['dpkg-deb', 'ldd'] })) return;
  const out = mkdtempSync(join(tmpdir(), 'ops-deb-'));
  // Kept until this file ends: the systemd test below installs the same package.
  tap.teardown(() => rmSync(out, { recursive: true, force: true }));
  const started = Date.now();
  const built = execFileSync('node', [join(root, 'scripts/build-deb.mjs'), '--out', out], { encoding: 'utf8', timeout: 600_000 }).trim();
  t.comment(`npm run deb: ${((Date.now() - started) / 1000).toFixed(0)} s (load ${loadavg().map((l) => l.toFixed(1)).join(' ')})`);
  deb = built;
  t.match(built, new RegExp(`skein_${pkg.version.replace(/\./g, '\\.')}_(amd64|arm64)\\.deb$`));

  const info = execFileSync('dpkg-deb', ['-I', built], { encoding: 'utf8' });
  t.match(info, /^ Package: skein$/m);
  t.match(info, new RegExp(`^ Version: ${pkg.version.replace(/\./g, '\\.')}$`, 'm'));
  t.match(info, /^ Depends: .*libc6/m);
  t.match(info, /^ Depends: .*\biproute2\b/m, 'iproute2 is a dependency: skeind runs ip -j for next-hop reachability');
  t.notMatch(info, /Depends:.*nodejs/, 'no Node from the distribution');
  t.equal(execFileSync('dpkg-deb', ['-f', built, 'Package'], { encoding: 'utf8' }).trim(), 'skein');
  const postinst = execFileSync('sh', ['-c', 'dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./postinst', 'sh', built], { encoding: 'utf8' });
  t.match(postinst, /addgroup --system skein/, 'postinst creates the skein group');
  t.match(execFileSync('sh', ['-c', 'dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./conffiles', 'sh', built], { encoding: 'utf8' }), /^\/etc\/skein\/skein\.yaml$/m);

  const list = execFileSync('dpkg-deb', ['-c', built], { encoding: 'utf8', maxBuffer: 64 << 20 }).split('\n');
  const has = (path: string): boolean => list.some((l) => l.endsWith(` .${path}`) || l.includes(` .${path} -> `));
  for (const p of ['/usr/bin/skeind', '/usr/bin/skeinctl', '/usr/bin/skein-bfdd', '/lib/systemd/system/skein-bfd.service', '/usr/lib/skein/node', '/lib/systemd/system/skein.service', '/etc/iproute2/rt_protos.d/skein.conf',
    '/etc/skein/skein.yaml', '/usr/lib/skein/app/bgp/native/build/Release/skein_native.node', '/usr/lib/skein/app/node_modules/netlink/build/Release/netlink_binding.node',
    '/usr/lib/skein/app/dist/src/skeind.js', '/usr/lib/skein/app/node_modules/prom-client/package.json']) t.ok(has(p), `has ${p}`);
  for (const dev of ['tap', 'typescript', 'eslint', 'fast-check']) t.notOk(list.some((l) => l.includes(`/node_modules/${dev}/`)), `no dev dependency ${dev}`);
  t.notOk(list.some((l) => /\/app\/(test|bench|\.ci)\//.test(l) || /\/dist\/(test|bench)\//.test(l)), 'no tests or benches');

  // Unpacked, with PATH emptied: nothing from this machine's Node or node_modules is used.
  const x = join(out, 'x');
  execFileSync('dpkg-deb', ['-x', built, x]);
  const node = join(x, 'usr/lib/skein/node');
  const run = (args: string[]): { status: number | null; out: string } => {
    const r = spawnSync(node, args, { encoding: 'utf8', timeout: 60_000, env: { PATH: '/nonexistent' } });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };
  t.same(run([join(x, 'usr/lib/skein/app/dist/src/skeind.js'), '--version']), { status: 0, out: `skeind ${pkg.version}\n` });
  t.equal(run([join(x, 'usr/lib/skein/app/dist/src/skeinctl.js'), '--help']).status, 0);
  t.same(run([join(x, 'usr/lib/skein/app/dist/src/skein-bfdd.js'), '--version']), { status: 0, out: `skein-bfdd ${pkg.version}\n` });
  const addon = run(['--input-type=module', '-e', `const m = await import(${JSON.stringify(join(x, 'usr/lib/skein/app/dist/bgp/net/native.js'))}); process.stdout.write(typeof m.native().sdNotify)`]);
  t.same(addon, { status: 0, out: 'function' }, 'the packaged native addon loads in the packaged runtime');
  t.match(readFileSync(join(x, 'usr/bin/skeind'), 'utf8'), /^#!\/bin\/sh\nexec \/usr\/lib\/skein\/node \/usr\/lib\/skein\/app\/dist\/src\/skeind\.js "\$@"\n$/);
  t.equal(readFileSync(join(x, 'lib/systemd/system/skein.service'), 'utf8'), readFileSync(join(root, 'systemd/skein.service'), 'utf8'));
  t.equal(readFileSync(join(x, 'lib/systemd/system/skein-bfd.service'), 'utf8'), readFileSync(join(root, 'systemd/skein-bfd.service'), 'utf8'));
});

const UPGRADE_VERSION = `${pkg.version}+upgrade1`;

/** The same package under a higher version, next to it (so the container's bind mount sees it). */
async function repackWithVersion(built: string, version: string): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'ops-repack-'));
  try {
    const x = join(work, 'x');
    let r = await runCommand('dpkg-deb', ['-R', built, x], { timeoutMs: 180_000 });
    if (r.code !== 0) throw new Error(`dpkg-deb -R: ${r.err}`);
    const control = join(x, 'DEBIAN/control');
    writeFileSync(control, readFileSync(control, 'utf8').replace(/^Version: .*$/m, `Version: ${version}`));
    const out = join(dirname(built), `skein_${version}_upgrade.deb`);
    // No compression: this copy only travels to the container next door.
    r = await runCommand('dpkg-deb', ['--root-owner-group', '-Znone', '--build', x, out], { timeoutMs: 180_000 });
    if (r.code !== 0) throw new Error(`dpkg-deb --build: ${r.err}`);
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Outside CI: skip with the reason printed; under CI: fail (as requires() does for a missing command). */
function unavailable(t: Test, why: string): void {
  if (inCI()) t.fail(`CI is set but ${why}`);
  else {
    t.comment(`skipping: ${why}`);
    // a skipped placeholder, as requires() records it
    (t as unknown as { skip(m: string): void }).skip(why);
  }
}

// The configuration the systemd test runs: a file datastore, the FIB on (table main, protocol skein), BGP on
// port 179 (so CAP_NET_BIND_SERVICE is used), the control socket for group skein, /readyz on loopback.
const SKEIN_YAML = (o: { level?: string; group?: string; typo?: boolean } = {}): string => [
  'nodeName: host-a',
  'datastore: { type: file, path: /etc/skein/resources.yaml }',
  'bgp: { listen: { port: 179 } }',
  o.typo ? 'fib: { enabeld: true }' : 'fib: { enabled: true, table: main, protocol: skein }',
  `control: { socket: /run/skein/skein.sock, group: ${o.group ?? 'skein'} }`,
  'metrics: { listen: "127.0.0.1:9180" }',
  `log: { level: ${o.level ?? 'info'} }`,
  '',
].join('\n');

/** host-a with one affine block and a workload on calisd1; host-b (a mesh peer that never answers) if asked. */
function resources(o: { peer: boolean }): string {
  const docs: object[] = [
    { kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    { kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: true } },
    { kind: 'IPPool', metadata: { name: 'pods' }, spec: { cidr: '10.66.0.0/16', blockSize: 26 } },
    { kind: 'Node', metadata: { name: 'host-a' }, spec: { bgp: { ipv4Address: '10.0.0.1/24' } } },
    { kind: 'BlockAffinity', metadata: { name: 'host-a-10-66-0-0-26' }, spec: { node: 'host-a', cidr: '10.66.0.0/26', state: 'confirmed', deleted: 'false' } },
    {
      kind: 'WorkloadEndpoint',
      metadata: { name: 'host--a-k8s-p1-eth0', namespace: 'default', labels: { 'projectcalico.org/namespace': 'default', 'projectcalico.org/orchestrator': 'k8s' } },
      spec: { orchestrator: 'k8s', node: 'host-a', pod: 'p1', endpoint: 'eth0', interfaceName: 'calisd1', ipNetworks: ['10.66.0.2/32'] },
    },
  ];
  if (o.peer) docs.push({ kind: 'Node', metadata: { name: 'host-b' }, spec: { bgp: { ipv4Address: '10.0.0.99/24' } } });
  return docs.map((d) => `---\n${JSON.stringify({ apiVersion: 'projectcalico.org/v3', ...d })}\n`).join('');
}

t.test('under a real systemd: dpkg -i, start/READY, reload verdicts, crash restart, exit 2 not restarted, stop keeps routes, upgrade, remove, purge', async (t) => {
  if (!requires(t, NSPAWN)) return;
  const began = Date.now();
  const load = (): string => loadavg().map((l) => l.toFixed(1)).join(' ');
  if (!deb) return void t.fail('no package: the npm run deb test above failed');
  const r = await debRoot!;
  if (r instanceof Error) return void unavailable(t, `debootstrap cannot make a Debian root here: ${r.message}`);
  t.comment(`Debian root: ${r.cached ? 'from the cache' : `debootstrap took ${r.seconds.toFixed(0)} s`} (${r.dir}; load ${load()})`);

  // Version B for the upgrade step, repacked (not rebuilt: that copies node_modules again) while the container runs.
  const upgradeDeb = repackWithVersion(deb, UPGRADE_VERSION);
  upgradeDeb.catch(() => undefined);
  const lab = new Lab();
  let c: Container | undefined;
  t.teardown(async () => {
    try {
      await c?.stop();
    } finally {
      lab.destroy();
    }
  });
  const ns = lab.ns('sd');
  lab.link(ns, ns, 'eth0', 'sdpeer0');
  lab.addr(ns, 'eth0', '10.0.0.1/24');
  lab.link(ns, ns, 'calisd1', 'sdpod1');
  const dir = mkdtempSync(join(tmpdir(), 'ops-nspawn-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bootStart = Date.now();
  try {
    c = await Container.boot({ root: r.dir, netns: `/run/netns/${ns}`, bindRo: { [dirname(deb)]: '/mnt/skein-deb' }, consoleLog: join(dir, 'console.log') });
  } catch (e) {
    return void unavailable(t, `systemd-nspawn cannot boot a container here: ${(e as Error).message}`);
  }
  t.comment(`container booted in ${((Date.now() - bootStart) / 1000).toFixed(1)} s`);
  const box = c;
  const sh = async (cmd: string, input?: string): Promise<{ code: number | null; out: string; err: string }> =>
    box.exec('sh', ['-c', cmd], { timeoutMs: 90_000, ...(input !== undefined ? { input } : {}) });
  const show = async (): Promise<Record<string, string>> => {
    const o = await sh('systemctl show skein -p ActiveState -p SubState -p StatusText -p MainPID -p NRestarts -p ExecMainStatus -p Result');
    return Object.fromEntries(o.out.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  };
  const journal = async (): Promise<string> => (await sh('journalctl -u skein -o cat --no-pager')).out;
  const kernelRoutes = (): string => execFileSync('ip', ['-n', ns, 'route', 'show', 'proto', '171'], { encoding: 'utf8' });
  const readyz = async (): Promise<string> => (await runCommand('ip', ['netns', 'exec', ns, 'curl', '-s', '-w', ' %{http_code}', 'http://127.0.0.1:9180/readyz'], { timeoutMs: 15_000 })).out;

  // --- dpkg -i and postinst, in a system that never had Node
  t.not((await sh('command -v node')).code, 0, 'no Node.js in the container');
  const inst = await sh(`dpkg -i /mnt/skein-deb/${basename(deb)}`);
  t.equal(inst.code, 0, `dpkg -i: ${inst.out}${inst.err}`);
  t.match((await sh('getent group skein')).out, /^skein:x:\d+:/, 'postinst created the skein group');
  t.equal((await sh('stat -c "%U:%G %a" /etc/skein/skein.yaml')).out.trim(), 'root:skein 640', 'the example skein.yaml is readable by the group only');
  t.match((await sh('cat /etc/iproute2/rt_protos.d/skein.conf')).out, /^171\s+skein$/m);
  t.equal((await sh('systemctl show skein -p LoadState --value')).out.trim(), 'loaded', 'systemd knows the unit (postinst ran daemon-reload)');
  t.equal((await sh('skeind --version')).out, `skeind ${pkg.version}\n`);

  // The operator's first mistake: starting the shipped example before editing it. Its etcd CA file does not exist:
  // a configuration error, exit 2, and systemd must not restart it every RestartSec (RestartPreventExitStatus=2).
  t.not((await sh('systemctl start skein')).code, 0, 'the unedited example does not start');
  const ex1 = await show();
  t.equal(ex1.ExecMainStatus, '2', 'an unreadable etcd CA file named in skein.yaml is a configuration error: exit 2');
  await new Promise((res) => setTimeout(res, 5000)); // more than two RestartSec=2s intervals
  const ex2 = await show();
  t.equal(ex2.ActiveState, 'failed', 'not restarted');
  t.equal(ex2.NRestarts, ex1.NRestarts, 'NRestarts does not climb');
  t.match(await journal(), /cannot read the etcd CA file \/etc\/skein\/etcd\/ca\.pem: ENOENT/, 'the journal names the file');
  t.equal((await sh('systemctl reset-failed skein')).code, 0);

  await box.write('/etc/skein/resources.yaml', resources({ peer: true }));
  await box.write('/etc/skein/skein.yaml', SKEIN_YAML());

  // --- start: STATUS= says what it waits for, and no READY while the start-up peer is silent
  t.equal((await sh('systemctl start --no-block skein')).code, 0);
  const waiting = (await until(async () => {
    const s = await show();
    return /waiting for peers: 10\.0\.0\.99/.test(s.StatusText ?? '') ? s : undefined;
  }, 'STATUS= naming the silent peer', 60_000, 250))!;
  t.equal(waiting.ActiveState, 'activating', `not active while waiting (${waiting.StatusText})`);
  await new Promise((res) => setTimeout(res, 2000));
  t.equal((await show()).ActiveState, 'activating', 'still not READY two seconds later: the peer is still silent');
  t.match(await journal(), /"msg":"starting: waiting".*10\.0\.0\.99/, 'the journal says what the start waits for');
  // The peer's Node goes: nothing holds the start back any more.
  await box.write('/etc/skein/resources.yaml', resources({ peer: false }));
  const up = (await until(async () => {
    const s = await show();
    return s.ActiveState === 'active' ? s : undefined;
  }, 'the unit to become active (READY=1)', 60_000, 250))!;
  t.equal(up.SubState, 'running');
  t.equal(up.StatusText, 'ready');
  t.match(await readyz(), / 200$/, '/readyz answers 200 once systemd has READY');
  const routes = kernelRoutes();
  t.match(routes, /^blackhole 10\.66\.0\.0\/26 /m, 'the affine block\'s blackhole is in the kernel');
  t.match(routes, /^10\.66\.0\.2 dev calisd1 /m, 'the workload route is in the kernel');

  // --- the process as systemd runs it: capabilities, group, no new privileges
  const pid = up.MainPID!;
  const status = (await sh(`cat /proc/${pid}/status`)).out;
  const capLine = (name: string): bigint => BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1] ?? 'ffffffffffffffff'}`);
  const wanted = (1n << 12n) | (1n << 10n); // CAP_NET_ADMIN (12), CAP_NET_BIND_SERVICE (10)
  t.equal(capLine('CapEff').toString(16), wanted.toString(16), 'CapEff: CAP_NET_ADMIN and CAP_NET_BIND_SERVICE only');
  t.equal(capLine('CapBnd').toString(16), wanted.toString(16), 'CapBnd: nothing more can be gained');
  t.match(status, /^NoNewPrivs:\s*1$/m);
  const skeinGid = (await sh('getent group skein | cut -d: -f3')).out.trim();
  t.match(status, new RegExp(`^Gid:\\s+${skeinGid}\\s`, 'm'), 'runs with group skein (Group=)');
  t.equal((await sh(`readlink /proc/${pid}/exe`)).out.trim(), '/usr/lib/skein/node', 'the packaged runtime');
  t.equal((await sh('stat -c "%a %U:%G" /run/skein/skein.sock')).out.trim(), '660 root:skein', 'control socket for the skein group');
  const ctl = await sh('skeinctl status');
  t.equal(ctl.code, 0, `skeinctl talks to it: ${ctl.err}`);

  // --- the BFD companion, pulled in by skein.service's Wants=: running, unprivileged, its socket private
  t.equal((await sh('systemctl is-active skein-bfd')).out.trim(), 'active', 'skein-bfd.service started with skein');
  const bfddPid = (await sh('systemctl show skein-bfd -p MainPID --value')).out.trim();
  const bfddStatus = (await sh(`cat /proc/${bfddPid}/status`)).out;
  t.match(bfddStatus, /^CapEff:\s*0+$/m, 'skein-bfdd has no capabilities');
  t.match(bfddStatus, /^Uid:\s+[1-9]\d*\s/m, 'and runs as an unprivileged (dynamic) user');
  t.equal((await sh('stat -c "%a" /run/skein-bfd/bfd.sock')).out.trim(), '600', 'its socket is private (root reaches it)');

  // --- reload returns the daemon's verdict
  await box.write('/etc/skein/skein.yaml', SKEIN_YAML({ typo: true }));
  const bad = await sh('systemctl reload skein');
  t.not(bad.code, 0, `a broken skein.yaml makes systemctl reload fail (${bad.err.trim()})`);
  const afterBad = await show();
  t.equal(afterBad.ActiveState, 'active', 'the daemon keeps running on its last good configuration');
  t.equal(afterBad.MainPID, pid, 'same process');
  t.match(await journal(), /enabeld/, 'the journal names the mistake');
  await box.write('/etc/skein/skein.yaml', SKEIN_YAML({ level: 'debug' }));
  const good = await sh('systemctl reload skein');
  t.equal(good.code, 0, `a good skein.yaml reloads (${good.err.trim()})`);
  t.match(await journal(), /"msg":"reloaded".*log\.level: info -> debug/);

  // --- crash: kill -9 -> systemd starts it again; the routes never left the kernel
  t.equal((await sh(`kill -9 ${pid}`)).code, 0);
  const afterKill = kernelRoutes();
  t.match(afterKill, /^blackhole 10\.66\.0\.0\/26 /m, 'routes stay after kill -9');
  const again = (await until(async () => {
    const s = await show();
    return s.ActiveState === 'active' && s.MainPID !== pid && s.MainPID !== '0' ? s : undefined;
  }, 'systemd to restart skeind after kill -9', 60_000, 250))!;
  t.equal(again.NRestarts, '1', 'one automatic restart');
  t.match(await journal(), /"msg":"fib started: routes already in the kernel were adopted".*"adopted":2/, 'the new process adopted both routes');

  // --- stop: clean exit, routes stay, no NOTIFICATION claimed
  const stop = await sh('systemctl stop skein');
  t.equal(stop.code, 0);
  const stopped = await show();
  t.equal(stopped.ActiveState, 'inactive');
  t.equal(stopped.Result, 'success');
  const kept = kernelRoutes();
  t.match(kept, /^blackhole 10\.66\.0\.0\/26 /m, 'the blackhole stays after stop (graceful restart)');
  t.match(kept, /^10\.66\.0\.2 dev calisd1 /m, 'the workload route stays after stop');
  const j = await journal();
  t.match(j, /stopped; routes left in the kernel/);
  t.notMatch(j, /NOTIFICATION Cease/, 'a stop sends no NOTIFICATION and says none');

  // --- a configuration error exits 2 and is NOT restarted (RestartPreventExitStatus=2)
  await box.write('/etc/skein/skein.yaml', SKEIN_YAML({ group: 'opsnosuchgroup' }));
  const failed = await sh('systemctl start skein');
  t.not(failed.code, 0, 'systemctl start fails');
  const f1 = await show();
  t.equal(f1.ExecMainStatus, '2', 'exit status 2');
  t.equal(f1.ActiveState, 'failed');
  // Two restart intervals (RestartSec=2s): a restart would have happened by now.
  await new Promise((res) => setTimeout(res, 5000));
  const f2 = await show();
  t.equal(f2.ActiveState, 'failed', 'still failed: not restarted');
  t.equal(f2.NRestarts, f1.NRestarts, 'NRestarts does not climb');
  t.match(await journal(), /control\.group: no group named "opsnosuchgroup"/, 'the journal names the mistake');

  // --- the journal: JSON lines of skeind under its SyslogIdentifier
  const lines = (await sh('journalctl -u skein -o json --no-pager')).out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const own = lines.filter((l) => l.SYSLOG_IDENTIFIER === 'skeind');
  t.ok(own.length > 10, `skeind's lines are in the journal (${own.length})`);
  t.ok(own.some((l) => /"msg":"skeind starting"/.test(String(l.MESSAGE))), 'including its start');
  t.notOk(own.some((l) => /cannot read next-hop reachability/.test(String(l.MESSAGE))), 'ip (iproute2, a dependency) was there for every reachability read');

  // --- upgrade, remove, purge (Debian policy 6.5/6.6), in the same container: version B is the same package
  // repacked with a higher version, made while the steps above ran.
  const debB = await upgradeDeb;
  await box.write('/etc/skein/skein.yaml', SKEIN_YAML());
  t.equal((await sh('systemctl reset-failed skein; systemctl start skein')).code, 0, 'started again before the upgrade');
  const beforeUp = await show();
  t.equal(beforeUp.ActiveState, 'active');
  const up2 = await sh(`dpkg -i /mnt/skein-deb/${basename(debB)}`);
  t.equal(up2.code, 0, `dpkg -i of version B: ${up2.out}${up2.err}`);
  t.equal((await sh("dpkg-query -W -f '${Version}' skein")).out, UPGRADE_VERSION, 'version B is installed');
  const afterUp = (await until(async () => {
    const s = await show();
    return s.ActiveState === 'active' && s.MainPID !== beforeUp.MainPID && s.MainPID !== '0' ? s : undefined;
  }, 'the upgrade to restart skeind', 60_000, 250))!;
  t.equal(afterUp.StatusText, 'ready', 'the restarted skeind is ready');
  t.notOk((await sh(`test -d /proc/${beforeUp.MainPID}`)).code === 0, 'the old process is gone');
  t.equal((await sh('cat /etc/skein/skein.yaml')).out, SKEIN_YAML(), 'the edited skein.yaml (a conffile) is kept');
  const upRoutes = kernelRoutes();
  t.match(upRoutes, /^blackhole 10\.66\.0\.0\/26 /m, 'the block\'s blackhole stays across the upgrade');
  t.match(upRoutes, /^10\.66\.0\.2 dev calisd1 /m, 'the workload route stays across the upgrade');

  // remove: prerm stops skeind before its files go; the configuration stays (only purge removes it).
  const rm = await sh('apt-get remove -y -q skein');
  t.equal(rm.code, 0, `apt-get remove: ${rm.err}`);
  t.not((await sh('systemctl is-active skein')).out.trim(), 'active', 'skeind is not running after remove');
  t.not((await sh('systemctl is-active skein-bfd')).out.trim(), 'active', 'nor is skein-bfdd');
  t.not((await sh(`test -d /proc/${afterUp.MainPID}`)).code, 0, 'its process is gone (prerm stopped it)');
  t.not((await sh('test -e /usr/bin/skeind')).code, 0, 'the program is gone');
  t.match((await sh("dpkg-query -W -f '${Status}' skein")).out, /deinstall ok config-files/, 'dpkg keeps the configuration');
  t.equal((await sh('cat /etc/skein/skein.yaml')).out, SKEIN_YAML(), 'skein.yaml stays after remove');
  t.match(kernelRoutes(), /^blackhole 10\.66\.0\.0\/26 /m, 'routes stay after remove, as after every stop (README: flush them by hand)');

  // purge: the conffiles go; what the operator added beside them (resources.yaml) stays.
  const purge = await sh('apt-get purge -y -q skein');
  t.equal(purge.code, 0, `apt-get purge: ${purge.err}`);
  t.not((await sh('test -e /etc/skein/skein.yaml')).code, 0, 'skein.yaml is removed on purge');
  t.not((await sh('test -e /etc/iproute2/rt_protos.d/skein.conf')).code, 0, 'the rt_protos.d entry is removed on purge');
  t.equal((await sh('test -e /etc/skein/resources.yaml')).code, 0, 'a file the operator added is not removed');
  t.notMatch((await sh("dpkg-query -W -f '${Status}' skein 2>/dev/null")).out, /installed|config-files/, 'dpkg no longer knows the package');
  t.comment(`systemd test: ${((Date.now() - began) / 1000).toFixed(0)} s after the package was built (load ${load()})`);
});
