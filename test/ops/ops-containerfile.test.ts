// deploy/Containerfile built for real, with no container registry: buildah (Debian's package) builds it FROM two
// local images made from debootstrapped Debian 12 roots (scripts/debian-root.mjs, cached under /var/tmp) with this
// machine's Node copied in — the same Node line as the docker.io/library/node:20-bookworm images the file names by
// default (BUILD_IMAGE / RUNTIME_IMAGE). The build stage runs `npm ci` against the npm registry and compiles the
// netlink binding and the native addon; node-gyp gets the headers from the copied Node (NODEDIR), since it cannot
// download them here. The result must start (`skeind --version`), load its native addon, carry the rt_protos entry,
// hold no compiler, Python or npm, and name skeind as its entrypoint. Root, buildah and debootstrap are needed;
// without them the test skips with the reason (fails under CI). Slow: two debootstraps on a fresh machine, then the
// build (npm ci + tsc in the container), 5–15 min.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { debianRoot } from '../../scripts/debian-root.mjs';
import { inCI, requires } from '../helpers/env.js';

t.setTimeout(40 * 60_000);
const root = join(`${import.meta.dirname}/..`, '..');
const RUNTIME_ROOT = { suite: 'bookworm', include: ['ca-certificates', 'libstdc++6'] };
const BUILD_ROOT = { suite: 'bookworm', include: ['ca-certificates', 'libstdc++6', 'python3', 'make', 'g++'] };

function unavailable(t: Test, why: string): void {
  if (inCI()) t.fail(`CI is set but ${why}`);
  else {
    t.comment(`skipping: ${why}`);
    (t as unknown as { skip(m: string): void }).skip(why);
  }
}

t.test('deploy/Containerfile builds with buildah from local Debian 12 bases and the image runs skeind', async (t) => {
  // Opt-in, also under CI: on a fresh 2-core machine this file costs two more debootstraps and an npm ci + tsc inside
  // the build stage (5-15 min), which would take the CI run too close to its 30 min limit. Run it with
  //   SKEIN_IMAGE_TESTS=1 npx tap --disable-coverage test/ops/ops-containerfile.test.ts
  // (test/ops/packaging builds and runs the OCI image made from the .deb in every run.)
  if (process.env.SKEIN_IMAGE_TESTS !== '1') {
    t.comment('skipping: the Containerfile build is opt-in (SKEIN_IMAGE_TESTS=1), see the comment above');
    (t as unknown as { skip(m: string): void }).skip('SKEIN_IMAGE_TESTS is not 1');
    return;
  }
  if (!requires(t, { root: true, commands: ['buildah', 'debootstrap'] })) return;
  const started = Date.now();
  let roots: [{ dir: string; cached: boolean }, { dir: string; cached: boolean }];
  try {
    roots = await Promise.all([debianRoot(RUNTIME_ROOT), debianRoot(BUILD_ROOT)]);
  } catch (e) {
    return void unavailable(t, `debootstrap cannot make the base roots here: ${(e as Error).message}`);
  }
  t.comment(`roots ${roots.map((r) => (r.cached ? 'cached' : 'made')).join(', ')} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  // buildah's own storage for this run (vfs: no overlay mounts needed), removed afterwards
  const store = mkdtempSync('/var/tmp/skein-buildah-');
  t.teardown(() => {
    spawnSync('buildah', [...storage, 'rm', '--all'], { stdio: 'ignore' });
    rmSync(store, { recursive: true, force: true });
  });
  const storage = ['--storage-driver', 'vfs', '--root', join(store, 'storage'), '--runroot', join(store, 'run')];
  const buildah = (args: string[], timeoutMs = 120_000): { status: number | null; out: string } => {
    const r = spawnSync('buildah', [...storage, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20, env: { ...process.env, BUILDAH_ISOLATION: 'chroot' } });
    return { status: r.status, out: `${r.stdout as string | null ?? ''}${r.stderr as string | null ?? ''}` }; // null when buildah cannot be run
  };
  // A local base image: a debootstrapped root, with this machine's Node (and for the build base npm and the headers).
  const node = process.execPath;
  const prefix = dirname(dirname(node));
  const base = (name: string, dir: string, withNpm: boolean): boolean => {
    const from = buildah(['from', '--name', `${name}-ctr`, 'scratch']);
    if (from.status !== 0) return t.fail(`buildah from scratch: ${from.out}`), false;
    const mnt = buildah(['mount', `${name}-ctr`]).out.trim();
    // cp -a: owners, modes, links and the device nodes debootstrap made, as they are
    const cp = spawnSync('cp', ['-a', `${dir}/.`, mnt], { encoding: 'utf8' });
    if (cp.status !== 0) return t.fail(`cp -a ${dir}: ${cp.stderr}`), false;
    mkdirSync(join(mnt, 'usr/local/bin'), { recursive: true });
    // This machine's trust store: where the registries are reached through a proxy with its own CA, npm in the
    // build stage needs it as the host's npm does (a base image made here carries what this machine trusts).
    const ca = process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';
    if (existsSync(ca)) cpSync(ca, join(mnt, 'etc/ssl/certs/ca-certificates.crt'));
    cpSync(node, join(mnt, 'usr/local/bin/node'));
    if (withNpm) {
      cpSync(join(prefix, 'lib/node_modules/npm'), join(mnt, 'usr/local/lib/node_modules/npm'), { recursive: true, verbatimSymlinks: true });
      symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(mnt, 'usr/local/bin/npm'));
      cpSync(join(prefix, 'include/node'), join(mnt, 'usr/local/include/node'), { recursive: true });
    }
    buildah(['umount', `${name}-ctr`]);
    buildah(['config', '--env', 'NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt', `${name}-ctr`]);
    const c = buildah(['commit', '--quiet', `${name}-ctr`, `localhost/${name}:test`], 600_000);
    buildah(['rm', `${name}-ctr`]);
    return t.equal(c.status, 0, `base image ${name}: ${c.status === 0 ? 'committed' : c.out.slice(-2000)}`);
  };
  if (!base('skein-runtime-base', roots[0].dir, false) || !base('skein-build-base', roots[1].dir, true)) return;

  const b0 = Date.now();
  const build = buildah(['build', '--isolation', 'chroot', '--layers=false', '-f', 'deploy/Containerfile',
    '--build-arg', 'BUILD_IMAGE=localhost/skein-build-base:test', '--build-arg', 'RUNTIME_IMAGE=localhost/skein-runtime-base:test',
    '--build-arg', 'NODEDIR=/usr/local', '-t', 'localhost/skein:containerfile', root], 30 * 60_000);
  t.equal(build.status, 0, `buildah build (${((Date.now() - b0) / 1000).toFixed(0)} s): ${build.status === 0 ? 'ok' : build.out.slice(-4000)}`);
  if (build.status !== 0) return;

  const cfg = JSON.parse(buildah(['inspect', '--type', 'image', 'localhost/skein:containerfile']).out) as { OCIv1: { config: { Entrypoint?: string[]; Cmd?: string[] } } };
  t.same(cfg.OCIv1.config.Entrypoint, ['node', '/usr/lib/skein/app/dist/src/skeind.js']);
  t.same(cfg.OCIv1.config.Cmd, ['--config', '/etc/skein/skein.yaml']);
  const from = buildah(['from', '--name', 'skein-run', 'localhost/skein:containerfile']);
  t.equal(from.status, 0, `a container from the image: ${from.out.trim()}`);
  const run = (cmd: string): { status: number | null; out: string } => buildah(['run', '--isolation', 'chroot', 'skein-run', '--', 'sh', '-c', cmd]);
  const v = run('node /usr/lib/skein/app/dist/src/skeind.js --version');
  t.equal(v.status, 0, v.out);
  t.match(v.out, /\d+\.\d+\.\d+/, `skeind --version: ${v.out.trim()}`);
  const ctl = run('skeinctl --version');
  t.match(ctl.out, /^skeinctl \d+\.\d+\.\d+$/m, 'skeinctl on the PATH');
  const addon = run("cd /usr/lib/skein/app && node -e \"import('../dist/bgp/net/native.js').then((m) => console.log('addon', typeof m.native() === 'object'))\"");
  t.match(addon.out, /addon true/, `the native addon loads: ${addon.out.trim().slice(-300)}`);
  t.match(run('cat /etc/iproute2/rt_protos.d/skein.conf').out, /^171\s+skein/m, 'the rt_protos entry');
  t.match(run('ip -V').out, /ip utility/, 'iproute2 installed by the runtime stage');
  const tools = run('for x in gcc g++ cc python3 make npm; do command -v $x; done; true');
  t.equal(tools.out.trim(), '', `no compiler, Python, make or npm in the image (${tools.out.trim()})`);
  t.comment(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
});
