// Types of scripts/build-image.mjs for the TypeScript tests that import it.
export declare const IMAGE_ROOT: { suite: string; include: string[] };
export declare function buildImage(o: { deb: string; out: string; tag: string }): Promise<{ layout: string; tag: string; ref: string }>;
