// Shipping: `npm run deb` builds a Debian package that needs no Node, Python or compiler on the host (its own
// Node runtime, the prebuilt native addon and netlink binding, production dependencies only), with the unit, the
// rt_protos.d entry, the example skein.yaml as a conffile and a postinst that creates the `skein` group; the
// packaged skeind runs from an unpacked copy with nothing but its own files. `npm pack` ships neither tests, benches
// nor CI. Building the package takes 1–2 minutes (copying and pruning node_modules), so this file builds it once.
import t, { type Test } from 'tap';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { inCI, missing, requires, type Needs } from '../helpers/env.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';
import { Bird } from '../helpers/bird.js';
import { debianRoot, DEBIAN_ROOT, type DebRoot } from '../../scripts/debian-root.mjs';
import { buildImage, IMAGE_ROOT } from '../../scripts/build-image.mjs';
import { Container } from '../helpers/nspawn.js';
import { runCommand } from '../helpers/run.js';

const root = join(`${import.meta.dirname}/..`, '..');
const tap = t;
// Two package-sized builds (the .deb, the image), two debootstrapped roots on a fresh machine and two containers:
// more than the suite's 300 s per file when the machine is busy (281 s seen at load 15).
t.setTimeout(900_000);
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
  t.match(info, /^ Depends: .*\biproute2\b/m, 'iproute2 is a dependency: skeind runs ip -j route get for BFD');
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
  // skeind's launcher gives V8 8 MiB semi-spaces (scripts/build-deb.mjs says why, with the measurement)
  t.match(readFileSync(join(x, 'usr/bin/skeind'), 'utf8'), /^#!\/bin\/sh\nexec \/usr\/lib\/skein\/node --max-semi-space-size=8 \/usr\/lib\/skein\/app\/dist\/src\/skeind\.js "\$@"\n$/);
  t.equal(readFileSync(join(x, 'lib/systemd/system/skein.service'), 'utf8'), readFileSync(join(root, 'systemd/skein.service'), 'utf8'));
  t.equal(readFileSync(join(x, 'lib/systemd/system/skein-bfd.service'), 'utf8'), readFileSync(join(root, 'systemd/skein-bfd.service'), 'utf8'));
});

// The OCI image (scripts/build-image.mjs): the package installed in a debootstrapped minbase root, written by umoci.
// Its root is made while the package builds, as the systemd test's is.
const IMAGE: Needs = { root: true, commands: ['debootstrap', 'umoci', 'skopeo', 'systemd-nspawn', 'chroot', 'ip'] };
const imageRoot: Promise<DebRoot | Error> | undefined = missing(IMAGE) === undefined
  ? debianRoot(IMAGE_ROOT).catch((e: unknown) => e as Error)
  : undefined;

t.test('an OCI image from the package: its config, no toolchain in it, and skeind routing from it in a namespace', async (t) => {
  if (!requires(t, IMAGE)) return;
  if (!deb) return void t.fail('no package: the npm run deb test above failed');
  const ir = await imageRoot!;
  if (ir instanceof Error) return void unavailable(t, `debootstrap cannot make the image's root here: ${ir.message}`);
  const dir = mkdtempSync(join(tmpdir(), 'ops-image-'));
  const lab = new Lab();
  const running: { box?: ChildProcess } = {};
  t.teardown(async () => {
    const box = running.box;
    if (box && box.exitCode === null && box.signalCode === null) {
      box.kill('SIGTERM');
      await new Promise((res) => { const k = setTimeout(() => { box.kill('SIGKILL'); res(undefined); }, 10_000); box.once('exit', () => { clearTimeout(k); res(undefined); }); });
    }
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const started = Date.now();
  const img = await buildImage({ deb, out: join(dir, 'oci'), tag: pkg.version });
  t.comment(`image built in ${((Date.now() - started) / 1000).toFixed(0)} s (root ${ir.cached ? 'cached' : `debootstrapped in ${ir.seconds.toFixed(0)} s`})`);
  const cfg = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci:${img.ref}`], { encoding: 'utf8' })) as {
    architecture: string; os: string; config: { Entrypoint: string[]; Cmd: string[]; Labels: Record<string, string> };
  };
  t.equal(cfg.os, 'linux');
  t.equal(cfg.architecture, { x64: 'amd64', arm64: 'arm64' }[process.arch as 'x64' | 'arm64']);
  t.same(cfg.config.Entrypoint, ['/usr/bin/skeind'], 'entrypoint: the packaged skeind');
  t.same(cfg.config.Cmd, ['--config', '/etc/skein/skein.yaml'], 'its config where the DaemonSet mounts the ConfigMap');
  t.equal(cfg.config.Labels['org.opencontainers.image.version'], pkg.version);

  const bundle = join(dir, 'bundle');
  execFileSync('umoci', ['unpack', '--image', img.ref, bundle], { timeout: 300_000 });
  const rootfs = join(bundle, 'rootfs');
  const inImage = (cmd: string, ...args: string[]): { status: number | null; out: string } => {
    // env -i inside: tap's process-info hook puts its NODE_OPTIONS into every child's environment
    const r = spawnSync('chroot', [rootfs, '/usr/bin/env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', cmd, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };
  t.same(inImage('/usr/bin/skeind', '--version'), { status: 0, out: `skeind ${pkg.version}\n` }, 'skeind runs on the packaged runtime in the image');
  t.equal(inImage('/usr/bin/skeinctl', '--help').status, 0, 'skeinctl too');
  t.match(inImage('getent', 'group', 'skein').out, /^skein:x:\d+:/, 'the skein group exists (postinst ran)');
  for (const tool of ['gcc', 'python3', 'make', 'npm', 'systemctl']) t.not(inImage('sh', '-c', `command -v ${tool}`).status, 0, `no ${tool} in the image`);
  t.notOk(existsSync(join(rootfs, 'etc/dpkg/dpkg.cfg.d/skein-test-unsafe-io')), 'none of the test root\'s shortcuts');

  // Run it as a container runtime would: the image's root, a network namespace of its own with NET_ADMIN, the
  // config mounted at /etc/skein; its routes reach that namespace's kernel.
  const ns = lab.ns('img');
  lab.link(ns, ns, 'eth0', 'imgpeer0');
  lab.addr(ns, 'eth0', '10.0.0.1/24');
  lab.link(ns, ns, 'calisd1', 'sdpod1');
  const etc = join(dir, 'etc');
  mkdirSync(etc);
  writeFileSync(join(etc, 'skein.yaml'), SKEIN_YAML());
  writeFileSync(join(etc, 'resources.yaml'), resources({ peer: false }));
  const box = spawn('systemd-nspawn', ['--quiet', '--register=no', '--keep-unit', '--as-pid2', '--setenv=NODE_OPTIONS=', `--network-namespace-path=/run/netns/${ns}`, '--capability=CAP_NET_ADMIN',
    '-D', rootfs, `--bind=${etc}:/etc/skein`, ...cfg.config.Entrypoint, ...cfg.config.Cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.box = box;
  let out = '';
  box.stdout.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-20_000); });
  box.stderr.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-20_000); });
  const kernel = (): string => execFileSync('ip', ['-n', ns, 'route', 'show', 'proto', '171'], { encoding: 'utf8' });
  const routed = await until(() => {
    if (box.exitCode !== null) throw new Error(`the container exited (${box.exitCode}): ${out}`);
    const k = kernel();
    return /^blackhole 10\.66\.0\.0\/26 /m.test(k) && /^10\.66\.0\.2 dev calisd1 /m.test(k) ? k : undefined;
  }, 'routes from the image\'s skeind', 60_000, 250).catch((e: unknown) => e as Error);
  t.notOk(routed instanceof Error, `the affine block's blackhole and the workload route, written by skeind from the image (${routed instanceof Error ? routed.message : ''})`);
  // ready comes once the start-up sweep is done, a moment after the routes
  t.ok(await until(() => /"msg":"ready"/.test(out) || undefined, 'ready in the log', 30_000, 250).catch(() => undefined), `it logged ready (${out.slice(-300)})`);
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
const SKEIN_YAML = (o: { level?: string; group?: string; typo?: boolean; drainSeconds?: number } = {}): string => [
  'nodeName: host-a',
  'datastore: { type: file, path: /etc/skein/resources.yaml }',
  o.drainSeconds !== undefined ? `bgp: { listen: { port: 179 }, shutdownDrainSeconds: ${o.drainSeconds} }` : 'bgp: { listen: { port: 179 } }',
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

  // --- systemctl restart with bgp.shutdownDrainSeconds set: a restart, not a node leaving, so no drain (skeind finds
  // systemd's restart job, src/daemon/systemd-job.ts); and a skeinctl drain outlives the restart (drain.json in
  // StateDirectory=skein)
  await box.write('/etc/skein/skein.yaml', SKEIN_YAML({ drainSeconds: 20 }));
  t.equal((await sh('systemctl reload skein')).code, 0, 'bgp.shutdownDrainSeconds: 20 applied by a reload');
  t.equal((await sh('stat -c "%a %U" /var/lib/skein')).out.trim(), '750 root', 'StateDirectory=skein made /var/lib/skein');
  const newPid = async (old: string): Promise<Record<string, string>> => (await until(async () => {
    const s = await show();
    return s.ActiveState === 'active' && s.MainPID !== old && s.MainPID !== '0' ? s : undefined;
  }, 'skeind active again under a new process', 90_000, 250))!;
  const r0 = await show();
  t.equal((await sh('systemctl restart skein')).code, 0, 'systemctl restart');
  const r1 = await newPid(r0.MainPID!);
  const jr = await journal();
  t.match(jr, /systemd is restarting skeind, so it does not drain/, 'skeind saw the restart job and did not drain');
  t.notMatch(jr, /graceful shutdown: draining/, 'no drain began');
  t.notMatch(jr, /"stop: .* failed"/, 'no stop step failed');
  const dr = await sh('skeinctl drain --seconds 1 --wait');
  t.equal(dr.code, 0, `skeinctl drain: ${dr.err}`);
  t.match((await sh('cat /var/lib/skein/drain.json')).out, /"state":"drained"/, 'drain.json holds the drain');
  t.equal((await sh('systemctl restart skein')).code, 0, 'systemctl restart while drained');
  await newPid(r1.MainPID!);
  t.match((await sh('skeinctl status')).out, /Graceful shutdown:\s+drained/, 'the new skeind is still drained');
  t.match(await journal(), /drain state from before the restart kept/);
  t.equal((await sh('skeinctl undrain')).code, 0);
  t.not((await sh('test -e /var/lib/skein/drain.json')).code, 0, 'undrain removed drain.json');
  await box.write('/etc/skein/skein.yaml', SKEIN_YAML());
  t.equal((await sh('systemctl reload skein')).code, 0);

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
  t.notOk(own.some((l) => /cannot read next-hop reachability/.test(String(l.MESSAGE))), 'every next-hop reachability read (rtnetlink, in-process) succeeded under the unit\'s sandbox');

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

// The package as a cluster runs it: the Calico datastore in etcd, a top-of-rack router (BIRD 2) as eBGP peer. etcd
// runs in the container's network namespace (so skeind reaches it on 127.0.0.1 as on a host with a local member),
// BIRD in a second namespace behind a veth this test makes; both go on teardown.
const ETCD_AT = 'http://127.0.0.1:23379';
const RES = '/calico/resources/v3/projectcalico.org';
const SKEIN_ETCD_YAML = [
  'nodeName: host-a',
  `datastore: { type: etcd, etcd: { endpoints: [${ETCD_AT}] } }`,
  'bgp: { listen: { port: 179 } }',
  'fib: { enabled: true, table: main, protocol: skein }',
  'control: { socket: /run/skein/skein.sock, group: skein }',
  'metrics: { listen: "127.0.0.1:9180" }',
  '',
].join('\n');
const v3 = (kind: string, name: string, spec: object, namespace?: string): string =>
  JSON.stringify({ kind, apiVersion: 'projectcalico.org/v3', metadata: { name, ...(namespace ? { namespace } : {}), uid: `u-${name}`, creationTimestamp: '2026-12-05T10:00:00Z' }, spec });

t.test('under a real systemd with an etcd datastore and a BGP peer: routes both ways, live datastore changes, restart and etcd outage keep them', async (t) => {
  if (!requires(t, { ...NSPAWN, commands: [...(NSPAWN.commands ?? []), 'etcd', 'etcdctl', 'bird', 'birdc'] })) return;
  if (!deb) return void t.fail('no package: the npm run deb test above failed');
  const r = await debRoot!;
  if (r instanceof Error) return void unavailable(t, `debootstrap cannot make a Debian root here: ${r.message}`);
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'ops-etcd-'));
  let c: Container | undefined;
  let etcd: ChildProcess | undefined;
  const bird = new Bird(lab.ns('tor'));
  t.teardown(async () => {
    try {
      await c?.stop();
    } finally {
      etcd?.kill('SIGKILL');
      await bird.stop().catch(() => undefined);
      lab.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  const ns = lab.ns('sde');
  const [ha, tb] = lab.link(ns, bird.ns, 'eth0', 'tor0');
  lab.addr(ns, ha, '10.0.1.1/24');
  lab.addr(bird.ns, tb, '10.0.1.2/24');
  lab.link(ns, ns, 'calisd1', 'sdpod1');

  const startEtcd = async (): Promise<void> => {
    etcd = nsSpawn(ns, 'etcd', ['--name', 'm', '--data-dir', join(dir, 'etcd'), '--listen-client-urls', ETCD_AT, '--advertise-client-urls', ETCD_AT,
      '--listen-peer-urls', 'http://127.0.0.1:23380', '--initial-advertise-peer-urls', 'http://127.0.0.1:23380', '--initial-cluster', 'm=http://127.0.0.1:23380']);
    etcd.stdout?.resume();
    etcd.stderr?.resume();
    await until(() => { try { nsExec(ns, 'etcdctl', ['--endpoints', ETCD_AT, 'endpoint', 'health'], { timeoutMs: 3000 }); return true; } catch { return false; } }, 'etcd up', 30_000, 200);
  };
  const put = (key: string, value: string): void => { nsExec(ns, 'etcdctl', ['--endpoints', ETCD_AT, 'put', key], { timeoutMs: 10_000, input: value }); };
  const del = (key: string): void => { nsExec(ns, 'etcdctl', ['--endpoints', ETCD_AT, 'del', key], { timeoutMs: 10_000 }); };
  await startEtcd();
  // What calicoctl / calico-node write for one host with one block and one pod, and a global eBGP peer (the ToR).
  put(`${RES}/clusterinformations/default`, v3('ClusterInformation', 'default', { datastoreReady: true }));
  put(`${RES}/bgpconfigurations/default`, v3('BGPConfiguration', 'default', { asNumber: 64512, nodeToNodeMeshEnabled: true }));
  put(`${RES}/ippools/pods`, v3('IPPool', 'pods', { cidr: '10.66.0.0/16', blockSize: 26, natOutgoing: true, nodeSelector: 'all()' }));
  put(`${RES}/nodes/host-a`, v3('Node', 'host-a', { bgp: { ipv4Address: '10.0.1.1/24' } }));
  put(`${RES}/bgppeers/tor`, v3('BGPPeer', 'tor', { peerIP: '10.0.1.2', asNumber: 65001 }));
  put('/calico/ipam/v2/host/host-a/ipv4/block/10.66.0.0-26', JSON.stringify({ state: 'confirmed', deleted: false }));
  put(`${RES}/workloadendpoints/default/host--a-k8s-p1-eth0`, v3('WorkloadEndpoint', 'host--a-k8s-p1-eth0',
    { orchestrator: 'k8s', node: 'host-a', pod: 'p1', endpoint: 'eth0', interfaceName: 'calisd1', ipNetworks: ['10.66.0.2/32'] }, 'default'));

  await bird.start(`
router id 10.0.1.2;
protocol device { scan time 1; }
protocol static s4 { ipv4; route 10.77.0.0/24 blackhole; }
protocol bgp host {
  local 10.0.1.2 as 65001;
  neighbor 10.0.1.1 as 64512;
  hold time 30;
  connect retry time 1;
  error wait time 1, 2;
  graceful restart on;
  ipv4 { import all; export where proto = "s4"; };
}
`);

  try {
    c = await Container.boot({ root: r.dir, netns: `/run/netns/${ns}`, bindRo: { [dirname(deb)]: '/mnt/skein-deb' }, consoleLog: join(dir, 'console.log') });
  } catch (e) {
    return void unavailable(t, `systemd-nspawn cannot boot a container here: ${(e as Error).message}`);
  }
  const box = c;
  const sh = async (cmd: string): Promise<{ code: number | null; out: string; err: string }> => box.exec('sh', ['-c', cmd], { timeoutMs: 90_000 });
  const active = async (): Promise<{ state: string; pid: string }> => {
    const o = (await sh('systemctl show skein -p ActiveState -p MainPID')).out;
    return { state: /ActiveState=(\S+)/.exec(o)?.[1] ?? '', pid: /MainPID=(\d+)/.exec(o)?.[1] ?? '0' };
  };
  const status = async (): Promise<StatusJsonLike> => JSON.parse((await sh('skeinctl status --json')).out) as StatusJsonLike;
  const kernel = (): string => execFileSync('ip', ['-n', ns, 'route', 'show', 'proto', '171'], { encoding: 'utf8' });
  const atBird = (): string[] => bird.routes('protocol', 'host').map((x) => x.prefix).sort();

  t.equal((await sh(`dpkg -i /mnt/skein-deb/${basename(deb)}`)).code, 0, 'dpkg -i');
  await box.write('/etc/skein/skein.yaml', SKEIN_ETCD_YAML);
  t.equal((await sh('systemctl start skein')).code, 0, 'systemctl start returns once skeind is READY');
  const up = await active();
  t.equal(up.state, 'active');

  const est = await until(() => bird.protocol('host').bgpState === 'Established' || undefined, 'BIRD: session with skeind Established', 60_000, 250).catch(() => undefined);
  t.ok(est, `BIRD's session with the packaged skeind is Established (${bird.protocol('host').text.split('\n').slice(0, 3).join(' | ')})`);
  t.same(await until(() => atBird().includes('10.66.0.0/26') ? atBird() : undefined, 'the block at BIRD', 30_000, 250).catch(() => atBird()),
    ['10.66.0.0/26'], 'BIRD learns the affine block from etcd, and nothing else (no /32 of a pod inside its own block)');
  const learned = await until(() => /^10\.77\.0\.0\/24 (nhid \d+ )?via 10\.0\.1\.2 dev eth0 /m.test(kernel()) || undefined, 'the ToR\'s route in the kernel', 30_000, 250).catch(() => undefined);
  t.ok(learned, `the ToR's route is in the kernel via the ToR, protocol skein (${kernel().replace(/\n/g, ' | ')})`);
  const st = await status();
  t.equal(st.datastore?.type, 'etcd');
  t.equal(st.datastore?.state, 'synced', 'skeinctl status: the datastore is synced');
  t.same(st.peers.map((p) => [p.address, p.state]), [['10.0.1.2', 'Established']], 'skeinctl status: the ToR, Established');

  // A second block becomes affine (calico-ipam on a new pod): announced; and released again: withdrawn.
  put('/calico/ipam/v2/host/host-a/ipv4/block/10.66.0.64-26', JSON.stringify({ state: 'confirmed', deleted: false }));
  t.ok(await until(() => atBird().includes('10.66.0.64/26') || undefined, 'second block at BIRD', 30_000, 250).catch(() => undefined), 'a block made affine in etcd reaches the ToR');
  t.match(kernel(), /^blackhole 10\.66\.0\.64\/26 /m, 'with its local blackhole');
  del('/calico/ipam/v2/host/host-a/ipv4/block/10.66.0.64-26');
  t.ok(await until(() => !atBird().includes('10.66.0.64/26') || undefined, 'second block gone at BIRD', 30_000, 250).catch(() => undefined), 'released in etcd: withdrawn from the ToR');
  t.notMatch(kernel(), /10\.66\.0\.64\/26/, 'and its blackhole removed');
  t.ok(atBird().includes('10.66.0.0/26'), 'the first block is still announced');

  // etcd goes away: skeind keeps routing on what it has, says so, and catches up when etcd is back.
  etcd?.kill('SIGKILL');
  await new Promise((res) => setTimeout(res, 6000));
  t.equal((await active()).state, 'active', 'etcd down: skeind keeps running');
  t.ok(atBird().includes('10.66.0.0/26'), 'etcd down: the block is still announced');
  t.match(kernel(), /^10\.77\.0\.0\/24 (nhid \d+ )?via 10\.0\.1\.2 /m, 'etcd down: the ToR\'s route is still in the kernel');
  t.match(kernel(), /^10\.66\.0\.2 dev calisd1 /m, 'etcd down: the workload route is still in the kernel');
  const ds = await until(async () => { const d = (await status()).datastore; return d && d.state !== 'synced' ? d : undefined; }, 'status to say the datastore is not synced', 30_000, 500).catch(() => undefined);
  t.ok(ds, `skeinctl status says the datastore is not synced (${JSON.stringify(ds)})`);
  await startEtcd();
  put('/calico/ipam/v2/host/host-a/ipv4/block/10.66.0.128-26', JSON.stringify({ state: 'confirmed', deleted: false }));
  t.ok(await until(() => atBird().includes('10.66.0.128/26') || undefined, 'a change made while reconnecting', 60_000, 250).catch(() => undefined), 'etcd back: a change made there reaches the ToR');
  t.equal((await until(async () => (await status()).datastore?.state === 'synced' || undefined, 'synced again', 30_000, 500).catch(() => false)), true, 'synced again');

  // systemctl restart: the ToR keeps our routes through it (graceful restart), the kernel keeps the ToR's.
  const birdUpSince = /^host\s+BGP\s+\S+\s+up\s+(\S+)/m.exec(bird.birdc('show', 'protocols'))?.[1];
  t.equal((await sh('systemctl restart skein')).code, 0, 'systemctl restart');
  const after = await active();
  t.equal(after.state, 'active');
  t.not(after.pid, up.pid, 'a new process');
  t.ok(atBird().includes('10.66.0.0/26'), 'right after the restart the ToR still has the block (graceful restart)');
  t.match(kernel(), /^10\.77\.0\.0\/24 (nhid \d+ )?via 10\.0\.1\.2 /m, 'and the kernel the ToR\'s route');
  t.ok(await until(() => bird.protocol('host').bgpState === 'Established' || undefined, 'session back', 60_000, 250).catch(() => undefined), 'the session is back');
  t.same(await until(() => { const b = atBird(); return b.length === 2 ? b : undefined; }, 'both blocks again', 30_000, 250).catch(() => atBird()), ['10.66.0.0/26', '10.66.0.128/26'], 'both blocks announced by the new process');
  t.ok(birdUpSince !== undefined, 'BIRD reported the protocol up before the restart');
  t.comment(`journal tail: ${(await sh('journalctl -u skein -o cat --no-pager | tail -n 5')).out.replace(/\n/g, ' | ').slice(0, 800)}`);
});

interface StatusJsonLike {
  peers: { address: string; state: string }[];
  datastore?: { type: string; state: string };
}
