// Shipping: `npm run deb` builds a Debian package that needs no Node, Python or compiler on the host (its own
// Node runtime, the prebuilt native addon and netlink binding, production dependencies only), with the unit, the
// rt_protos.d entry, the example skein.yaml as a conffile and a postinst that creates the `skein` group; the
// packaged skeind runs from an unpacked copy with nothing but its own files. `npm pack` ships neither tests, benches
// nor CI. Building the package takes 1–2 minutes (copying and pruning node_modules), so this file builds it once.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from './helpers/env.js';

const root = join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

t.test('npm pack ships no tests, benches or CI', async (t) => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  t.equal(r.status, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  t.same(files.filter((f) => /^(test|bench|\.ci|dist\/test|dist\/bench)\//.test(f)), [], 'none of test/, bench/, .ci/');
  t.same(files.filter((f) => f.includes('native/build/')), [], 'no build products of this machine (postinstall builds them)');
  for (const f of ['dist/src/skeind.js', 'dist/src/skeinctl.js', 'scripts/build-native.mjs', 'scripts/patch-netlink.mjs', 'bgp/native/binding.gyp', 'systemd/skein.service', 'fib/skein.conf']) {
    t.ok(files.includes(f), `ships ${f}`);
  }
});

t.test('npm run deb: contents, metadata, and the packaged skeind runs on its own runtime', async (t) => {
  if (!requires(t, { commands: ['dpkg-deb', 'ldd'] })) return;
  const out = mkdtempSync(join(tmpdir(), 'ops-deb-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const built = execFileSync('node', [join(root, 'scripts/build-deb.mjs'), '--out', out], { encoding: 'utf8', timeout: 600_000 }).trim();
  t.match(built, new RegExp(`skein_${pkg.version.replace(/\./g, '\\.')}_(amd64|arm64)\\.deb$`));

  const info = execFileSync('dpkg-deb', ['-I', built], { encoding: 'utf8' });
  t.match(info, /^ Package: skein$/m);
  t.match(info, new RegExp(`^ Version: ${pkg.version.replace(/\./g, '\\.')}$`, 'm'));
  t.match(info, /^ Depends: .*libc6/m);
  t.notMatch(info, /Depends:.*nodejs/, 'no Node from the distribution');
  t.equal(execFileSync('dpkg-deb', ['-f', built, 'Package'], { encoding: 'utf8' }).trim(), 'skein');
  const postinst = execFileSync('sh', ['-c', 'dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./postinst', 'sh', built], { encoding: 'utf8' });
  t.match(postinst, /addgroup --system skein/, 'postinst creates the skein group');
  t.match(execFileSync('sh', ['-c', 'dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./conffiles', 'sh', built], { encoding: 'utf8' }), /^\/etc\/skein\/skein\.yaml$/m);

  const list = execFileSync('dpkg-deb', ['-c', built], { encoding: 'utf8', maxBuffer: 64 << 20 }).split('\n');
  const has = (path: string): boolean => list.some((l) => l.endsWith(` .${path}`) || l.includes(` .${path} -> `));
  for (const p of ['/usr/bin/skeind', '/usr/bin/skeinctl', '/usr/lib/skein/node', '/lib/systemd/system/skein.service', '/etc/iproute2/rt_protos.d/skein.conf',
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
  const addon = run(['--input-type=module', '-e', `const m = await import(${JSON.stringify(join(x, 'usr/lib/skein/app/dist/bgp/net/native.js'))}); process.stdout.write(typeof m.native().sdNotify)`]);
  t.same(addon, { status: 0, out: 'function' }, 'the packaged native addon loads in the packaged runtime');
  t.match(readFileSync(join(x, 'usr/bin/skeind'), 'utf8'), /^#!\/bin\/sh\nexec \/usr\/lib\/skein\/node \/usr\/lib\/skein\/app\/dist\/src\/skeind\.js "\$@"\n$/);
  t.equal(readFileSync(join(x, 'lib/systemd/system/skein.service'), 'utf8'), readFileSync(join(root, 'systemd/skein.service'), 'utf8'));
});
