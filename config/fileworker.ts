// The file datastore's parse worker: reads resources.yaml, finds the groups of documents that changed (fileindex.ts),
// and parses and validates what changed off the main thread (issue #14: at 100k WorkloadEndpoints a synchronous
// parse blocked the event loop for most of a minute, so /livez failed). One worker per FileDatastore, kept between
// reloads: it holds the FileIndex (its groups' hashes and what their documents parsed to, and the resources in
// force), so a reload cuts and parses only the window of the file that
// changed and sends only the differences; it keeps no copy of the file's text between reloads.
//
// Protocol (FileDatastore.parseInWorker): workerData is a WorkerInit. The main thread posts { t: 'load', lastHash }
// and the worker answers
//   { t: 'same', hash }               the file's hash equals lastHash: nothing to do;
//   { t: 'error', message }           the file could not be read;
//   { t: 'chunk', resources }         up to `chunk` new or changed resources (repeated), each sent only after the main
//                                     thread asked for it with { t: 'next' }, so it takes one chunk per turn of its
//                                     event loop instead of draining the whole queue in one;
//   { t: 'done', hash, full, deletes, issues, fallbacks, syntaxError, total, stats } (see FileDiff).
// When the main thread applies a read, it posts { t: 'commit', resolved } (FileIndex.commit); a read it holds or
// cannot use is never committed, and the next read is compared with the version in force.
import { readFile } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { FileIndex, keepFor } from './filesource.js';
import type { Resource } from './resources.js';

export interface WorkerInit {
  path: string;
  nodeName?: string | undefined;
  /** false: read no WorkloadEndpoints (dsbase.ts DatastoreScope) */
  workloadEndpoints?: boolean | undefined;
  chunk: number;
  /** about how many characters a group of documents holds (fileindex.ts); default 32 KiB */
  groupChars?: number | undefined;
}

export type ToWorker = { t: 'load'; lastHash: string | undefined } | { t: 'next' } | { t: 'commit'; resolved: Resource[] };

const init = workerData as WorkerInit;
const node = init.nodeName;
const scope = { workloadEndpoints: init.workloadEndpoints };
const index = new FileIndex(init.path, keepFor(node, scope), node, init.groupChars, undefined, scope);
const port = parentPort;
// the main thread's 'next' messages not yet used (one may come before the read needs it), and the read waiting for one
let credit = 0;
let asked: (() => void) | undefined;
const next = (): Promise<void> => {
  if (credit > 0) { credit--; return Promise.resolve(); }
  return new Promise((res) => { asked = res; });
};
let loads = Promise.resolve();

// A read leaves the file's text, its Buffer and the documents' pieces as garbage (at 100k endpoints ~100 MiB), and an
// idle worker allocates too little to collect it: skeind's RSS stayed ~70 MiB up (bench/datastore-file). So each read
// ends with one full collection, asked of V8 as src/control/idle-gc.ts asks (--expose-gc set at run time, the gc
// function taken from a fresh context); the daemon's malloc_trim after the list (src/daemon/memory.ts) then returns
// the pages. Where V8 refuses the flag, nothing happens.
type GcFn = (o: { type: 'major'; execution: 'async' }) => unknown;
let gc: GcFn | undefined;
try {
  setFlagsFromString('--expose-gc');
  const f = runInNewContext('gc') as unknown;
  if (typeof f === 'function') gc = f as GcFn;
} catch {
  gc = undefined;
}

async function load(lastHash: string | undefined): Promise<void> {
  if (port === null) return;
  let bytes: Buffer;
  try {
    bytes = await readFile(init.path);
  } catch (e) {
    port.postMessage({ t: 'error', message: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
    return;
  }
  // The bytes, not a decoded text: the index hashes its groups' bytes where they lie and decodes only the window that
  // changed (fileindex.ts). The file's hash is made of the groups' hashes: hashing all 45 MiB again at 100k
  // endpoints would cost as much as the rest of a small change's read.
  const d = index.read(bytes);
  const hash = index.contentHash();
  if (hash === lastHash) { port.postMessage({ t: 'same', hash }); return; }
  for (let i = 0; i < d.upserts.length; i += init.chunk) {
    await next();
    port.postMessage({ t: 'chunk', resources: d.upserts.slice(i, i + init.chunk) });
  }
  await next();
  const { upserts: _sent, ...rest } = d;
  port.postMessage({ t: 'done', hash, ...rest });
}

port?.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'load':
      // the main thread has one load out at a time: a 'next' left from the last one (answered 'same') is void
      credit = 0;
      loads = loads.then(() => load(m.lastHash)).then(() => { gc?.({ type: 'major', execution: 'async' }); });
      return;
    case 'next': {
      const a = asked;
      asked = undefined;
      if (a !== undefined) a();
      else credit++;
      return;
    }
    case 'commit': index.commit(m.resolved);
  }
});
