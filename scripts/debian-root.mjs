// The minimal Debian root test/ops/packaging.test.ts boots under systemd-nspawn: debootstrap --variant=minbase plus
// systemd, dbus and the package's dependencies minbase lacks (adduser, iproute2). It is cached in
// /var/tmp/skein-debroot/<key>/root, the key a hash of everything that decides its contents, so a machine pays for
// debootstrap once; .ci/run starts it in the background while `npm ci` runs. Only Node's built-in modules are
// used: it runs before node_modules exists.
//   node scripts/debian-root.mjs        -> prints the root's path (made now, or found in the cache)
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Bump when the recipe changes in a way the key does not see. */
const RECIPE = 2;
export const DEBIAN_ROOT = { suite: 'bookworm', include: ['systemd', 'dbus', 'adduser', 'iproute2'] };

function cacheDir() {
  return process.env.SKEIN_DEBROOT_CACHE ?? '/var/tmp/skein-debroot';
}

/**
 * The first Debian archive URI of this host's apt sources that serves `suite` with `main` (so the mirror the machine
 * is configured with is used), or undefined for debootstrap's own default.
 * @param {string} suite
 * @returns {string | undefined}
 */
export function hostMirror(suite) {
  const texts = [];
  if (existsSync('/etc/apt/sources.list')) texts.push(readFileSync('/etc/apt/sources.list', 'utf8'));
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) for (const f of readdirSync(dir)) if (/\.(list|sources)$/.test(f)) texts.push(readFileSync(join(dir, f), 'utf8'));
  for (const text of texts) {
    // one-line format: deb [options] URI SUITE COMPONENT...
    for (const line of text.split('\n')) {
      const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+.*\bmain\b/.exec(line);
      if (m && m[2] === suite) return m[1];
    }
    // deb822 format: stanzas separated by blank lines
    for (const stanza of text.split(/\n\s*\n/)) {
      const field = (k) => (new RegExp(`^${k}:\\s*(.*)$`, 'mi').exec(stanza)?.[1] ?? '').split(/\s+/).filter(Boolean);
      if (field('Types').includes('deb') && field('Suites').includes(suite) && field('Components').includes('main')) return field('URIs')[0];
    }
  }
  return undefined;
}

/**
 * A debootstrapped root, from the cache when one made the same way exists. The .debs are kept beside it
 * (debootstrap --cache-dir) and seeded with links to what apt already has on this host, so a changed recipe
 * downloads only what is new.
 * @param {{ suite: string; include: readonly string[] }} o
 * @returns {Promise<{ dir: string; cached: boolean; seconds: number; log: string }>}
 */
export async function debianRoot(o = DEBIAN_ROOT) {
  const mirror = hostMirror(o.suite);
  const version = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'debootstrap'], { encoding: 'utf8' }).stdout ?? '';
  const key = createHash('sha256')
    .update(JSON.stringify({ RECIPE, suite: o.suite, include: [...o.include].sort(), mirror: mirror ?? '', version, arch: process.arch }))
    .digest('hex').slice(0, 16);
  const base = join(cacheDir(), key);
  const dir = join(base, 'root');
  const log = join(base, 'debootstrap.log');
  if (existsSync(join(base, 'complete'))) return { dir, cached: true, seconds: 0, log };
  const started = Date.now();
  const debs = join(cacheDir(), 'debs');
  mkdirSync(debs, { recursive: true });
  // debootstrap checks each cached .deb's checksum and replaces one that does not match (rm, then download), so
  // linking apt's own cache here never changes apt's files.
  const apt = '/var/cache/apt/archives';
  if (existsSync(apt)) {
    for (const f of readdirSync(apt)) {
      if (!f.endsWith('.deb') || existsSync(join(debs, f))) continue;
      try {
        symlinkSync(join(apt, f), join(debs, f));
      } catch {
        /* a dangling link of an earlier run: debootstrap replaces it */
      }
    }
  }
  const work = `${base}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  // Most of debootstrap's time goes to dpkg syncing every file it unpacks; a throwaway test root does not need
  // that safety. dpkg reads this from the target's dpkg.cfg.d, which debootstrap leaves in place.
  mkdirSync(join(work, 'root/etc/dpkg/dpkg.cfg.d'), { recursive: true });
  writeFileSync(join(work, 'root/etc/dpkg/dpkg.cfg.d/skein-test-unsafe-io'), 'force-unsafe-io\n');
  const args = ['--variant=minbase', `--include=${o.include.join(',')}`, `--cache-dir=${debs}`, o.suite, join(work, 'root'), ...(mirror ? [mirror] : [])];
  const fd = openSync(join(work, 'debootstrap.log'), 'w');
  const child = spawn('debootstrap', args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const code = await new Promise((res) => {
    child.once('exit', (c) => res(c));
    child.once('error', (e) => res(e.message));
  });
  if (code !== 0) {
    const tail = existsSync(join(work, 'debootstrap.log')) ? readFileSync(join(work, 'debootstrap.log'), 'utf8').split('\n').slice(-15).join('\n') : '';
    rmSync(work, { recursive: true, force: true });
    throw new Error(`debootstrap ${args.join(' ')} exited ${code}:\n${tail}`);
  }
  writeFileSync(join(work, 'complete'), `${new Date().toISOString()} debootstrap ${args.join(' ')}\n`);
  // Another run may have finished the same root meanwhile: keep theirs.
  try {
    renameSync(work, base);
  } catch {
    rmSync(work, { recursive: true, force: true });
  }
  return { dir, cached: false, seconds: (Date.now() - started) / 1000, log };
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  try {
    const r = await debianRoot();
    process.stdout.write(`${r.dir}\n`);
    process.stderr.write(`debian-root: ${r.cached ? 'cached' : `debootstrap took ${r.seconds.toFixed(0)} s`}\n`);
  } catch (e) {
    process.stderr.write(`debian-root: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
