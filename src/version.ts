// The package version, for `skeinctl --version` and skeind's start-up line (read from package.json at run time,
// so a build never carries a stale number).
import { readFileSync } from 'node:fs';

export const VERSION: string = (() => {
  // dist/src/version.js when built, src/version.ts when run from source
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'skein' && pkg.version !== undefined) return pkg.version;
    } catch {
      // try the next place
    }
  }
  return 'unknown';
})();
