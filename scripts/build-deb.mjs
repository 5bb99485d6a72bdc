// npm run deb: a Debian package that runs on a host with neither Node nor a compiler. It carries a pinned Node
// runtime (the build machine's own `node` binary, whose version is recorded in the package), the compiled dist/,
// the prebuilt native addon and patched netlink binding, and only the production node_modules. It installs the
// systemd unit, the rt_protos.d entry, an example /etc/skein/skein.yaml (a conffile) and, in postinst, the `skein`
// system group the unit's Group= names. Built with dpkg-deb; nothing is downloaded.
//   node scripts/build-deb.mjs [--out DIR]     -> DIR/skein_<version>_<arch>.deb (default DIR: build/)
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const root = dirname(import.meta.dirname);
const args = process.argv.slice(2);
const outDir = args[0] === '--out' && args[1] ? args[1] : join(root, 'build');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch];
if (!arch) throw new Error(`build-deb: unsupported architecture ${process.arch}`);
const need = ['dist/src/skeind.js', 'bgp/native/build/Release/skein_native.node', 'node_modules/netlink/build/Release/netlink_binding.node'];
for (const f of need) if (!existsSync(join(root, f))) throw new Error(`build-deb: ${f} is missing: run npm ci && npm run build first`);

// A node linked against a shared libnode (Debian's own nodejs package) would not run without it: refuse.
const libs = execFileSync('ldd', [process.execPath], { encoding: 'utf8' });
if (/libnode\.so/.test(libs)) throw new Error(`build-deb: ${process.execPath} needs libnode.so; build with a self-contained node binary (e.g. the official builds)`);
const stage = mkdtempSync(join(tmpdir(), 'skein-deb-'));
const lib = join(stage, 'usr/lib/skein');
const app = join(lib, 'app');
try {
  mkdirSync(app, { recursive: true });
  // The runtime: a copy of the node binary that built and tested this tree.
  cpSync(process.execPath, join(lib, 'node'));
  chmodSync(join(lib, 'node'), 0o755);
  for (const f of ['package.json', 'package-lock.json', 'LICENSE', 'README.md']) if (existsSync(join(root, f))) cpSync(join(root, f), join(app, f));
  cpSync(join(root, 'dist'), join(app, 'dist'), { recursive: true, filter: (s) => !s.includes(`${join('dist', 'test')}`) && !s.includes(`${join('dist', 'bench')}`) });
  mkdirSync(join(app, 'bgp/native/build/Release'), { recursive: true });
  cpSync(join(root, 'bgp/native/build/Release/skein_native.node'), join(app, 'bgp/native/build/Release/skein_native.node'));
  // Production dependencies only: copy, then let npm drop the dev tree (offline: prune reads the lock file).
  cpSync(join(root, 'node_modules'), join(app, 'node_modules'), { recursive: true, verbatimSymlinks: true });
  execFileSync('npm', ['prune', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--offline'], { cwd: app, stdio: ['ignore', 'ignore', 'inherit'] });
  rmSync(join(app, 'package-lock.json'), { force: true });
  // skeind's V8 young generation: semi-spaces of 8 MiB instead of V8's default 16. Measured with
  // `SKEIN_REF_ROOT=$PWD SKEIN_REF_NODE_FLAGS=--max-semi-space-size=N SKEIND_BENCH_DUTS=skein,skein-ref,bird2
  // SKEIND_BENCH_REPEAT=3 node dist/bench/skeind.js` (issue 16; medians of 3, load 13-19): peak RSS at 100k routes
  // 122 -> 113 MiB with 8 (119 -> 107 with 4), at 1M 292 -> 296 MiB with 8 (within the repetitions' spread:
  // 273-301) but 288 -> 298 with 4 (every repetition higher: more objects live long enough to be promoted); CPU
  // unchanged. A host daemon holds far fewer routes than a reflector, so the smaller young generation is the
  // better default; 8 keeps the 1M case where it was. The same setting is in bench/duts/skein's command line.
  const nodeFlags = { skeind: ' --max-semi-space-size=8' };
  for (const [name, entry] of [['skeind', 'skeind.js'], ['skeinctl', 'skeinctl.js'], ['skein-bfdd', 'skein-bfdd.js']]) {
    const bin = join(stage, 'usr/bin', name);
    mkdirSync(dirname(bin), { recursive: true });
    writeFileSync(bin, `#!/bin/sh\nexec /usr/lib/skein/node${nodeFlags[name] ?? ''} /usr/lib/skein/app/dist/src/${entry} "$@"\n`);
    chmodSync(bin, 0o755);
  }
  const put = (path, from, mode = 0o644) => {
    mkdirSync(dirname(join(stage, path)), { recursive: true });
    cpSync(join(root, from), join(stage, path));
    chmodSync(join(stage, path), mode);
  };
  put('lib/systemd/system/skein.service', 'systemd/skein.service');
  // The BFD companion: skein.service Wants= it, so it has no enablement of its own.
  put('lib/systemd/system/skein-bfd.service', 'systemd/skein-bfd.service');
  put('etc/iproute2/rt_protos.d/skein.conf', 'fib/skein.conf');
  put('etc/skein/skein.yaml', 'config/examples/k8s-openstack-mesh/skein.yaml', 0o640);

  const deb = join(stage, 'DEBIAN');
  mkdirSync(deb);
  const sizeKb = Number(execFileSync('du', ['-sk', '--exclude=DEBIAN', stage], { encoding: 'utf8' }).split('\t')[0]);
  writeFileSync(join(deb, 'control'), [
    'Package: skein',
    `Version: ${pkg.version}`,
    `Architecture: ${arch}`,
    'Maintainer: skein maintainers <skein@localhost>',
    'Section: net',
    'Priority: optional',
    `Installed-Size: ${sizeKb}`,
    // The bundled Node links only against the C library and the C++ runtime. iproute2 is a hard dependency: skeind
    // runs `ip -j route get` for the way to each BFD peer (src/daemon/bfd.ts, kernelRouteTo); without it no BFD
    // session is set up. (Next-hop reachability, src/daemon/reachability.ts, reads over rtnetlink in-process and no
    // longer needs it.) adduser: postinst's addgroup.
    'Depends: libc6 (>= 2.28), libstdc++6, libgcc-s1, adduser, iproute2',
    `Description: ${pkg.description}`,
    ` skeind, skeinctl and skein-bfdd (the BFD companion) with their own Node.js ${process.version} runtime (/usr/lib/skein/node): no Node.js,`,
    ' Python or compiler needed on the host. Reads Calico resources (etcd v3 or a file).',
    '',
  ].join('\n'));
  writeFileSync(join(deb, 'conffiles'), '/etc/skein/skein.yaml\n/etc/iproute2/rt_protos.d/skein.conf\n');
  writeFileSync(join(deb, 'postinst'), `#!/bin/sh
set -e
if [ "$1" = configure ]; then
  # The unit's Group=: members may use skeinctl (the control socket is root:skein 0660).
  getent group skein >/dev/null || addgroup --system skein >/dev/null
  chgrp skein /etc/skein/skein.yaml || true
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    # An upgrade (configure with the version before as $2, Debian policy 6.5): a running skeind is restarted so the
    # new code runs, as dh_installsystemd's restart-after-upgrade does; a stopped one stays stopped (try-restart).
    # The stop keeps the routes and the new process adopts them (graceful restart), so forwarding goes on.
    # The BFD companion first: its stop sends AdminDown (no failure for the peers), and the restarted skeind finds
    # the new one and gives it every session back.
    if [ -n "$2" ]; then systemctl try-restart skein-bfd.service skein.service >/dev/null || true; fi
  fi
fi
exit 0
`);
  // Removal (not an upgrade: prerm is then called with "upgrade"): stop skeind before its files go, as
  // dh_installsystemd's prerm does. Its routes stay in the kernel, as on every stop.
  writeFileSync(join(deb, 'prerm'), `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then systemctl stop skein.service skein-bfd.service >/dev/null || true; fi
exit 0
`);
  // purge: dpkg itself deletes the conffiles (/etc/skein/skein.yaml, rt_protos.d/skein.conf); what is left is an
  // enablement link an operator made with `systemctl enable skein`. The group stays: files may still carry it
  // (Debian policy 9.2.2 leaves system groups in place), and so do routes still in the kernel.
  writeFileSync(join(deb, 'postrm'), `#!/bin/sh
set -e
if [ "$1" = purge ]; then rm -f /etc/systemd/system/multi-user.target.wants/skein.service; fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
exit 0
`);
  chmodSync(join(deb, 'postinst'), 0o755);
  chmodSync(join(deb, 'prerm'), 0o755);
  chmodSync(join(deb, 'postrm'), 0o755);
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, `skein_${pkg.version}_${arch}.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '-z1', '--build', stage, out], { stdio: ['ignore', 'ignore', 'inherit'] });
  process.stdout.write(`${out}\n`);
} finally {
  rmSync(stage, { recursive: true, force: true });
}
