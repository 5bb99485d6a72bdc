// The file datastore's parse worker: reads resources.yaml, hashes it, parses and validates it off the main thread
// (issue #14: at 100k WorkloadEndpoints a synchronous parse blocked the event loop for most of a minute, so /livez
// failed). One worker per reload, ended after it: its heap (the YAML documents) goes with it.
//
// Protocol (FileDatastore.parseInWorker): workerData is a ParseJob. The worker posts
//   { t: 'same' }                     the file's hash equals job.lastHash: nothing to do;
//   { t: 'error', message }           the file could not be read;
//   { t: 'chunk', resources }         up to job.chunk valid resources (repeated), each sent only after the main
//                                     thread asked for it with a 'next' message, so it takes one chunk per turn of
//                                     its event loop instead of draining the whole queue in one;
//   { t: 'done', hash, issues, fallbacks, syntaxError, total }.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { concernsNode, scanResourcesText } from './filesource.js';

export interface ParseJob {
  path: string;
  lastHash?: string | undefined;
  nodeName?: string | undefined;
  chunk: number;
}

async function run(job: ParseJob): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  let text: string;
  try {
    text = await readFile(job.path, 'utf8');
  } catch (e) {
    port.postMessage({ t: 'error', message: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
    return;
  }
  const hash = createHash('sha256').update(text).digest('hex');
  if (hash === job.lastHash) { port.postMessage({ t: 'same', hash }); return; }
  const node = job.nodeName;
  const scan = scanResourcesText(text, job.path, node !== undefined ? (r) => concernsNode(r, node) : undefined);
  const asked = (): Promise<void> => new Promise((res) => port.once('message', () => res()));
  for (let i = 0; i < scan.resources.length; i += job.chunk) {
    await asked();
    port.postMessage({ t: 'chunk', resources: scan.resources.slice(i, i + job.chunk) });
  }
  await asked();
  port.postMessage({ t: 'done', hash, issues: scan.issues, fallbacks: scan.fallbacks, syntaxError: scan.syntaxError, total: scan.total });
}

void run(workerData as ParseJob);
