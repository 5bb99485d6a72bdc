// Loads the native addon built from bgp/native (scripts/build-native.mjs). The
// addon lives at a fixed place under the package root, so it is found the same
// way from the TypeScript sources (tests) and from dist/ (compiled): walk up
// from this file to the nearest package.json. Loading is lazy, so importing
// bgp/ never fails just because the addon isn't built; the first call that
// needs it does, with a message that says how to build it.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions; each validates its arguments (TypeError) and throws errno-coded Errors. */
export interface NativeAddon {
  socket(family: 4 | 6): number;
  close(fd: number): void;
  bind(fd: number, address: string, port?: number): void;
  setMd5Sig(fd: number, address: string, key: Uint8Array | null, prefixLen?: number): void;
  setIntOpt(fd: number, level: number, name: number, value: number): void;
  getIntOpt(fd: number, level: number, name: number): number;
  socketFamily(fd: number): 4 | 6 | 0;
  sdNotify(socketPath: string, state: string): boolean;
  /** drop datagrams whose TTL / hop limit is below minTtl (1..255), by a BPF socket filter */
  attachMinTtlFilter(fd: number, minTtl: number): void;
  /** glibc's malloc_trim(0): the C allocator's free memory back to the kernel; false when nothing was (or no glibc) */
  mallocTrim(): boolean;
  /**
   * Start V8's incremental marking by a transient report of `bytes` of external memory (taken back before it
   * returns); returns the external memory V8 counts afterwards. Never an atomic collection while `bytes` stays
   * well under half the old generation's maximum (bgp/native/skein_native.c).
   */
  startIncrementalGc(bytes: number): number;
  /**
   * Watch an interface for a live-migrated VM's RARP or gratuitous ARP (bgp/native/announce_watch.c); the callback
   * runs on the main thread per wake-up; 'gone' when the interface was deleted (open a new watch), 'down' when it
   * went down (the watch goes on; ask announceWatchState until it is up). Throws with code ENODEV when the
   * interface does not exist.
   */
  announceWatch(ifname: string, callback: (kind: 'rarp' | 'garp' | 'gone' | 'down') => void): object;
  /** The watched interface now: up, down, or gone (deleted: open a new watch). */
  announceWatchState(handle: object): 'up' | 'down' | 'gone';
  /** Stop a watch (idempotent). */
  announceWatchClose(handle: object): void;
  /** Drain a watch now: the kind of announcement queued, or null. */
  announceWatchPoll(handle: object): 'rarp' | 'garp' | null;
  readonly constants: NativeConstants;
}

/** Socket-option numbers as compiled from the system headers. */
export interface NativeConstants {
  readonly SOL_SOCKET: number;
  readonly SO_REUSEADDR: number;
  readonly IPPROTO_IP: number;
  readonly IPPROTO_IPV6: number;
  readonly IPPROTO_TCP: number;
  readonly IP_TTL: number;
  readonly IP_MINTTL: number;
  readonly IPV6_UNICAST_HOPS: number;
  readonly IPV6_MINHOPCOUNT: number;
  readonly IPV6_V6ONLY: number;
  readonly TCP_NODELAY: number;
  readonly TCP_MD5SIG_MAXKEYLEN: number;
}

const ADDON_RELATIVE = join('bgp', 'native', 'build', 'Release', 'skein_native.node');

/** Directory of the nearest package.json above this module (bgp/net → root, dist/bgp/net → root). */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (let i = 0; i < 32; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new Error(`cannot find the package root (no package.json above ${from})`);
}

/** Absolute path of the built addon. */
export function addonPath(): string {
  return join(packageRoot(), ADDON_RELATIVE);
}

let loaded: NativeAddon | undefined;

/** The addon, loaded on first use. Throws an Error with code ERR_SKEIN_NATIVE_MISSING when it isn't built. */
export function native(): NativeAddon {
  if (loaded) return loaded;
  const path = addonPath();
  if (!existsSync(path)) {
    throw Object.assign(
      new Error(`native addon not built: ${path} is missing; run "node scripts/build-native.mjs" (or "npm rebuild")`),
      { code: 'ERR_SKEIN_NATIVE_MISSING' },
    );
  }
  try {
    loaded = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    throw Object.assign(
      new Error(`native addon ${path} failed to load (${(e as Error).message}); rebuild it with "node scripts/build-native.mjs"`, {
        cause: e,
      }),
      { code: 'ERR_SKEIN_NATIVE_LOAD' },
    );
  }
  return loaded;
}
