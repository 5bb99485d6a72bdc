// An OCI image of skeind made from the Debian package, with nothing from a container registry: a debootstrapped
// Debian 12 minbase root (scripts/debian-root.mjs, cached) with the .deb installed in it, written as an OCI image
// layout by umoci. The image carries the package's own Node runtime, so it needs no Node base image; the same
// files as a host install, the same `skeind` and `skeinctl`. `deploy/Containerfile` stays for those who build
// with a registry at hand (podman/buildah/docker); this path is the one built and run in the tests.
//   node scripts/build-image.mjs --deb build/skein_X_amd64.deb [--out DIR] [--tag TAG]
//     -> DIR (default build/oci) is an OCI layout holding skein:TAG (default: the package's version);
//        `skopeo copy oci:DIR:TAG docker-daemon:skein:TAG` or `... docker://REGISTRY/skein:TAG` takes it further.
// Needs root (chroot, files owned by root and the skein group), debootstrap and umoci. Only Node's built-in
// modules are used.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { debianRoot } from './debian-root.mjs';

const root = dirname(import.meta.dirname);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
/** What the image's root holds besides minbase: the package's dependencies minbase lacks; no systemd. */
export const IMAGE_ROOT = { suite: 'bookworm', include: ['adduser', 'iproute2'] };

/**
 * Builds the image and returns where it is.
 * @param {{ deb: string; out: string; tag: string }} o
 * @returns {Promise<{ layout: string; tag: string; ref: string }>}
 */
export async function buildImage(o) {
  if (!existsSync(o.deb)) throw new Error(`build-image: ${o.deb} does not exist (npm run deb makes it)`);
  const base = await debianRoot(IMAGE_ROOT);
  const run = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  const work = mkdtempSync(join(tmpdir(), 'skein-image-'));
  try {
    rmSync(o.out, { recursive: true, force: true });
    run('umoci', ['init', '--layout', o.out]);
    run('umoci', ['new', '--image', `${o.out}:${o.tag}`]);
    const bundle = join(work, 'bundle');
    run('umoci', ['unpack', '--image', `${o.out}:${o.tag}`, bundle]);
    const rootfs = join(bundle, 'rootfs');
    // cp -a: owners, modes, links and the device nodes debootstrap made, as they are
    run('cp', ['-a', `${base.dir}/.`, rootfs]);
    // The cached root syncs nothing while dpkg unpacks (a test shortcut, scripts/debian-root.mjs): not in an image.
    rmSync(join(rootfs, 'etc/dpkg/dpkg.cfg.d/skein-test-unsafe-io'), { force: true });
    cpSync(o.deb, join(rootfs, 'tmp', basename(o.deb)));
    // postinst creates the skein group; with no /run/systemd/system it leaves systemd alone.
    run('chroot', [rootfs, 'dpkg', '-i', `/tmp/${basename(o.deb)}`]);
    rmSync(join(rootfs, 'tmp', basename(o.deb)));
    for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
      const p = join(rootfs, d);
      if (existsSync(p)) for (const f of readdirSync(p)) if (f.endsWith('.deb') || f.endsWith('_Packages')) rmSync(join(p, f), { force: true });
    }
    run('umoci', ['repack', '--image', `${o.out}:${o.tag}`, bundle]);
    const ref = `${o.out}:${o.tag}`;
    // What a container runtime reads: skeind on the packaged runtime, the config where the DaemonSet mounts it.
    run('umoci', ['config', '--image', ref,
      '--config.entrypoint', '/usr/bin/skeind', '--config.cmd', '--config', '--config.cmd', '/etc/skein/skein.yaml',
      '--config.workingdir', '/', '--config.env', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
      '--config.label', `org.opencontainers.image.version=${pkg.version}`,
      '--config.label', 'org.opencontainers.image.title=skein',
      '--config.label', `org.opencontainers.image.description=${pkg.description}`,
      '--author', 'skein']);
    run('umoci', ['gc', '--layout', o.out]);
    return { layout: o.out, tag: o.tag, ref };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const args = process.argv.slice(2);
  const opt = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  try {
    const deb = opt('--deb');
    if (!deb) throw new Error('build-image: --deb PATH is required (npm run deb makes the package)');
    const r = await buildImage({ deb: resolve(deb), out: resolve(opt('--out') ?? join(root, 'build/oci')), tag: opt('--tag') ?? pkg.version });
    process.stdout.write(`${r.ref}\n`);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
