// Builds skein's native addon (bgp/native: TCP MD5 signatures, TTL security,
// sd_notify) into bgp/native/build/Release/skein_native.node. Runs from
// `npm ci` / `npm install` (postinstall) and by hand: node scripts/build-native.mjs
//
// It uses the node-gyp bundled with npm rather than a devDependency: npm
// already ships one (and points lifecycle scripts at it through
// npm_config_node_gyp), the patched netlink build uses the same one, and a
// second copy would add ~100 packages to the lock file for no gain.
//
// The build is offline: node-gyp compiles against the installed Node's headers
// (npm_config_nodedir, e.g. /usr), never downloading them. When nodedir isn't
// configured, the prefix of the running node is used if it has the headers.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const addonDir = join(root, 'bgp', 'native');

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp, // set by npm for lifecycle scripts
    // npm's own copy, beside the node binary's prefix (Debian: /usr/lib/node_modules/npm)
    join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  return undefined;
}

const nodeGyp = findNodeGyp();
if (nodeGyp === undefined) {
  console.error('build-native: cannot find node-gyp (the copy bundled with npm). Run this through npm, or set npm_config_node_gyp.');
  process.exit(1);
}

const env = { ...process.env };
if (!env.npm_config_nodedir) {
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix;
}

try {
  execFileSync(process.execPath, [nodeGyp, 'rebuild', '--loglevel=warn'], { cwd: addonDir, env, stdio: ['ignore', 'inherit', 'inherit'] });
} catch {
  console.error(
    'build-native: building bgp/native failed. It needs a C compiler, make and python3 (Debian: build-essential python3)\n' +
      'and the Node headers (set npm_config_nodedir to the Node prefix that holds include/node).',
  );
  process.exit(1);
}
const out = join(addonDir, 'build', 'Release', 'skein_native.node');
if (!existsSync(out)) {
  console.error(`build-native: node-gyp succeeded but ${out} is missing`);
  process.exit(1);
}
