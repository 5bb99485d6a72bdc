// Types of scripts/debian-root.mjs for the TypeScript tests that import it.
export declare const DEBIAN_ROOT: { suite: string; include: string[] };
export declare function hostMirror(suite: string): string | undefined;
export interface DebRoot {
  /** the root file system */
  dir: string;
  /** true: found in the cache; false: debootstrap ran now */
  cached: boolean;
  seconds: number;
  log: string;
}
export declare function debianRoot(o?: { suite: string; include: readonly string[] }): Promise<DebRoot>;
