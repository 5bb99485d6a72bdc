// The file datastore: one YAML file of Calico resources, watched.
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Worker } from 'node:worker_threads';
import { formatIssue, type Issue } from './errors.js';
import { keepFor, loadResourcesText, modelOfScan, type FileDiff, type ReadStats } from './filesource.js';
import type { ToWorker, WorkerInit } from './fileworker.js';
import { Base, type DatastoreScope } from './dsbase.js';
import { Model } from './model.js';
import { KINDS, resourceId, type Kind, type Resource } from './resources.js';

/** One read of the file: its hash, and (unless unchanged) what it holds: a whole new Model, or the differences. */
type Parsed =
  | { same: true; hash: string }
  | ({ same: false; hash: string; issues: Issue[]; syntaxError: boolean; total: number; stats?: ReadStats } & (
    | { model: Model; fromWorker: boolean; fallbacks: { kind: Kind; id: string }[] }
    | { upserts: Resource[]; deletes: { kind: Kind; id: string }[] }));

type WorkerMsg =
  | { t: 'same'; hash: string }
  | { t: 'error'; message: string }
  | { t: 'chunk'; resources: Resource[] }
  | ({ t: 'done'; hash: string } & Omit<FileDiff, 'upserts'>);

// The worker module beside this one: .ts when run from source (tests, through the TypeScript loader the worker
// inherits with execArgv), .js when built.
// Files from this size on are parsed in the worker. It was 1 MiB; parsed here, files of 0.17-0.5 MiB blocked the
// loop for 0.5-1.4 s at load 25-30 (in the worker: 44-250 ms, against 26-51 ms for an idle loop in the same runs),
// and a worker's start costs the main thread far less than a parse of a few dozen KiB.
const WORKER_BYTES = 32 * 1024;
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './fileworker.ts' : './fileworker.js', import.meta.url);

/** `workloadEndpoints: false` (DatastoreScope): no WorkloadEndpoint document is kept, and most are dropped unparsed. */
export interface FileDatastoreOptions extends DatastoreScope {
  path: string;
  /** quiet time after the last change event before re-reading (ms) */
  debounceMs?: number;
  /** longest a re-read waits after the first change event of a burst (ms); default twice debounceMs */
  maxWaitMs?: number;
  /** safety net: re-check the file this often even without events (ms); 0 = never */
  pollMs?: number;
  /** this node's name: a file without its Node is held (see holdReason) */
  nodeName?: string | undefined;
  /** a held file that stays the same this long is applied after all (ms) */
  settleMs?: number | undefined;
  /** a file at least this big (bytes) is read, parsed and validated in a worker thread; default 32 KiB */
  workerBytes?: number | undefined;
  /** resources per message from the worker (one message per event-loop turn); default 1000 */
  chunk?: number | undefined;
  /** about how many characters of the file one group of documents holds (config/fileindex.ts); default 32 KiB */
  groupChars?: number | undefined;
}

/**
 * Watches the file's directory (so an atomic rename over the file, an editor's
 * delete-and-create, or a Kubernetes ConfigMap's symlink swap are all seen),
 * debounces, re-reads, and turns the difference into change events.
 */
export class FileDatastore extends Base {
  private watcher?: FSWatcher;
  private timer: NodeJS.Timeout | undefined;
  /** when the first change event of the pending burst came */
  private pendingSince = 0;
  private poll?: NodeJS.Timeout;
  private lastHash: string | undefined;
  private reported = new Set<string>();
  private loading: Promise<void> = Promise.resolve();
  /** the held file's hash and when it was first seen */
  private held: { hash: string; since: number } | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  /** valid resources in the file in force, this node's or not (the shrink rule's base) */
  private total = 0;
  private worker: Worker | undefined;
  /** where the worker's messages go during a reload */
  private onWorker: ((m: WorkerMsg) => void) | undefined;
  /** how much of the file the last read parsed (a worker's read; FileIndex) */
  lastRead: ReadStats | undefined;
  /** what a reload is doing now (for tests and `skeinctl status`): reading, or parsing in a worker, or taking its results */
  phase: 'reading' | 'parsing' | 'receiving' | undefined;
  /** resources received from the worker so far in this reload */
  received = 0;

  constructor(private readonly opts: FileDatastoreOptions) {
    super();
  }

  start(): this {
    try {
      this.watcher = watch(dirname(this.opts.path), { persistent: true }, () => this.schedule());
      this.watcher.on('error', (e) => this.setStatus(this.snapshotTaken ? 'disconnected' : 'connecting', { lastError: `watching ${dirname(this.opts.path)}: ${e.message}` }));
    } catch (e) {
      this.setStatus('connecting', { lastError: `cannot watch ${dirname(this.opts.path)}: ${(e as Error).message}` });
    }
    const pollMs = this.opts.pollMs ?? 30_000;
    if (pollMs > 0) {
      this.poll = setInterval(() => this.schedule(), pollMs);
      this.poll.unref();
    }
    // reload() never rejects (it records a failure in the status): nothing to wait for here
    void this.reload();
    return this;
  }

  private schedule(): void {
    if (this.closed) return;
    const now = Date.now();
    if (this.timer) clearTimeout(this.timer);
    else this.pendingSince = now;
    // A quiet period of debounceMs, but never later than maxWaitMs after the burst's first event: a writer
    // that keeps the file busy (workloads created one after another) must not postpone every re-read.
    const debounce = this.opts.debounceMs ?? 100;
    const deadline = this.pendingSince + (this.opts.maxWaitMs ?? 2 * debounce);
    // void: reload() never rejects (it records a failure in the status)
    this.timer = setTimeout(() => { this.timer = undefined; void this.reload(); }, Math.max(0, Math.min(debounce, deadline - now)));
  }

  /** Re-read now (also what a SIGHUP reload calls); resolves when applied. */
  reload(): Promise<void> {
    this.loading = this.loading.then(() => this.load()).catch((e: unknown) => {
      // a bug, not bad input: keep the state, say so
      this.setStatus(this.snapshotTaken ? 'disconnected' : 'connecting', { lastError: `reading ${this.opts.path}: ${String(e)}` });
    });
    return this.loading;
  }

  private async load(): Promise<void> {
    if (this.closed) return;
    const file = this.opts.path;
    let p: Parsed;
    try {
      this.phase = 'reading';
      const { size } = await stat(file);
      p = size >= (this.opts.workerBytes ?? WORKER_BYTES) ? await this.parseInWorker() : await this.parseHere();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      this.setStatus(this.snapshotTaken ? 'disconnected' : 'connecting', { lastError: `cannot read ${file}: ${code}` });
      return;
    } finally {
      this.phase = undefined;
    }
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may have run while the file was read
    if (this.closed) return;
    const hash = p.hash;
    if (p.same) return;
    this.lastHash = hash;
    const { issues, syntaxError, total } = p;
    if (p.stats !== undefined) this.lastRead = p.stats;
    // Report each problem once while it persists.
    const now = new Set(issues.map(formatIssue));
    for (const i of issues) if (!this.reported.has(formatIssue(i))) this.report(i);
    this.reported = now;
    if (syntaxError) {
      // A half-written or broken file: keep what we have.
      this.setStatus(this.snapshotTaken ? 'synced' : 'connecting', { lastError: issues.map(formatIssue)[0] ?? 'syntax error' });
      return;
    }
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may have run while the file was read
    if (this.closed) return;
    // Applied only when whole. An editor writing in place (`: > f; cat saved > f`) or a copy still in flight shows
    // a valid but partial file for a moment: applied as is, everything missing would count as deleted, this node's
    // own identity included (every session restarts). Such a file is held until it settles: the same content for
    // settleMs means the operator meant it.
    const node = this.opts.nodeName;
    const nodeGone = node !== undefined && this.model.node(node) !== undefined
      && ('model' in p ? p.model.node(node) === undefined : p.deletes.some((d) => d.kind === 'Node' && d.id === node));
    const why = this.snapshotTaken ? this.holdReason(nodeGone, total) : undefined;
    if (why !== undefined) {
      const settleMs = this.opts.settleMs ?? 5000;
      if (this.held?.hash !== hash) this.held = { hash, since: Date.now() };
      const waited = Date.now() - this.held.since;
      if (waited < settleMs) {
        this.lastHash = undefined; // read it again even if unchanged
        if (this.settleTimer) clearTimeout(this.settleTimer);
        this.settleTimer = setTimeout(() => { this.settleTimer = undefined; void this.reload(); }, settleMs - waited + 50);
        this.setStatus('synced', {
          lastError: `${file}: ${why}: held, the last complete version stays in force`,
          held: `${why}; held since ${new Date(this.held.since).toISOString()}, applied if unchanged for ${settleMs} ms`,
        });
        return;
      }
    }
    this.held = undefined;
    if (this.status.held !== undefined) {
      // no longer held: the held message goes too (setStatus below then sees a change and reports it)
      const { held: _held, lastError: _lastError, ...rest } = this.status;
      this.status = rest;
    }
    this.total = total;
    const keyOf = (kind: Kind, id: string): string => `${file}#${kind}/${id}`;
    if ('model' in p) {
      this.install(p.model, keyOf);
      if (!p.fromWorker) {
        // applied from this thread's parse: the worker's version in force is stale, a fresh one starts from nothing
        void this.worker?.terminate();
        this.worker = undefined;
      } else {
        // the last good versions this thread kept for invalid documents are in force too
        const resolved: Resource[] = [];
        for (const f of p.fallbacks) {
          const r = this.model.get(f.kind, f.id);
          if (r !== undefined) resolved.push(r);
        }
        this.post({ t: 'commit', resolved });
      }
    } else {
      this.applyDiff(p.upserts, p.deletes, keyOf);
      this.post({ t: 'commit', resolved: [] });
    }
    const errs = issues.filter((i) => i.severity === 'error');
    this.setStatus('synced', errs.length > 0 ? { lastError: formatIssue(errs[0] as Issue) } : {});
  }

  /** The differences from the worker applied to the model in force: deletions first, each group in kind order, ids sorted (as Model.diff). */
  private applyDiff(upserts: Resource[], deletes: { kind: Kind; id: string }[], keyOf: (kind: Kind, id: string) => string): void {
    const rank = new Map<Kind, number>(KINDS.map((k, i) => [k, i]));
    const order = (a: { kind: Kind; id: string }, b: { kind: Kind; id: string }): number =>
      (rank.get(a.kind) as number) - (rank.get(b.kind) as number) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    const ups = upserts.map((r) => ({ kind: r.kind, id: resourceId(r), r })).sort(order);
    for (const d of deletes.sort(order)) this.emitChange(this.model.delete(d.kind, d.id, keyOf(d.kind, d.id)));
    for (const u of ups) this.emitChange(this.model.set(u.r, keyOf(u.kind, u.id)));
  }

  private get scope(): DatastoreScope {
    return { workloadEndpoints: this.opts.workloadEndpoints };
  }

  /**
   * Read and parse on this thread (small files: a worker's start-up would cost more than the parse). Documents of a
   * kind the scope leaves out are dropped unparsed here as in the worker; other nodes' are parsed and then dropped,
   * as they always were on this thread.
   */
  private async parseHere(): Promise<Parsed> {
    const text = await readFile(this.opts.path, 'utf8');
    const hash = createHash('sha256').update(text).digest('hex');
    if (hash === this.lastHash && this.status.state === 'synced') return { same: true, hash };
    const keep = keepFor(this.opts.nodeName, this.scope);
    return { same: false, hash, fromWorker: false, fallbacks: [], ...loadResourcesText(text, this.opts.path, this.snapshotTaken ? this.model : undefined, keep, this.scope) };
  }

  private post(m: ToWorker): void {
    this.worker?.postMessage(m);
  }

  /** The parse worker, started on first use and kept: it holds what the file's documents parsed to (fileworker.ts). */
  private startWorker(): Worker {
    const init: WorkerInit = {
      path: this.opts.path, nodeName: this.opts.nodeName, workloadEndpoints: this.opts.workloadEndpoints, chunk: this.opts.chunk ?? 1000, groupChars: this.opts.groupChars,
    };
    // A read at 100k endpoints grew the worker's young generation to its 32 MiB, all of it touched and kept while the
    // worker idles (V8 shrinks it only at a collection under a low allocation rate): skeind's RSS +42 MiB. At 2 MiB
    // the worker costs ~13 MiB, and the read no longer (it allocates mostly short-lived pieces and the file's text).
    const w = new Worker(WORKER_URL, { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: 2 } });
    // idle between reloads, it must not keep the process alive (a reload refs it while it runs)
    w.unref();
    const gone = (e: Error): void => {
      if (this.worker === w) this.worker = undefined;
      this.onWorker?.({ t: 'error', message: e.message });
    };
    w.on('message', (m: WorkerMsg) => this.onWorker?.(m));
    w.on('error', gone);
    w.on('exit', (code) => gone(new Error(this.closed ? 'closed' : `the parse worker exited (${code})`)));
    return w;
  }

  /**
   * Read, hash, parse and validate in the worker thread, which parses only the documents that changed since its last
   * read and sends only the resources new or changed since the version in force (or, its first time, all of them),
   * in chunks, one per event-loop turn, so the loop keeps turning however large the file or the change is.
   */
  private parseInWorker(): Promise<Parsed> {
    const w = this.worker ?? (this.worker = this.startWorker());
    this.phase = 'parsing';
    this.received = 0;
    w.ref();
    // a full read becomes a new Model; a diff's upserts, each compared with the model in force as it comes
    const model = new Model();
    const upserts: Resource[] = [];
    return new Promise<Parsed>((resolve, reject) => {
      let settled = false;
      const end = (f: () => void): void => {
        if (settled) return;
        settled = true;
        this.onWorker = undefined;
        w.unref();
        f();
      };
      const ask = (): void => { setImmediate(() => { if (!settled) w.postMessage({ t: 'next' } satisfies ToWorker); }); };
      this.onWorker = (m: WorkerMsg): void => {
        switch (m.t) {
          case 'same': end(() => resolve({ same: true, hash: m.hash })); return;
          case 'error': end(() => reject(Object.assign(new Error(m.message), { code: m.message }))); return;
          case 'chunk':
            this.phase = 'receiving';
            // Compared with the model in force here, a chunk per turn, not all at once in install()'s diff (at
            // 2 MiB, 5,000 endpoints, that diff alone blocked the loop for 80-180 ms at load 26): an unchanged
            // resource is taken as the object already in force (a full read), or dropped (a diff).
            for (const r of m.resources) {
              const prev = this.snapshotTaken ? this.model.get(r.kind, resourceId(r)) : undefined;
              const same = prev !== undefined && isDeepStrictEqual(prev, r);
              model.set(same ? prev : r);
              if (!same) upserts.push(r);
            }
            this.received += m.resources.length;
            ask();
            return;
          case 'done': {
            const common = { same: false as const, hash: m.hash, issues: m.issues, syntaxError: m.syntaxError, total: m.total, stats: m.stats };
            if (m.full) {
              modelOfScan({ resources: [], fallbacks: m.fallbacks }, this.snapshotTaken ? this.model : undefined, model);
              end(() => resolve({ ...common, model, fromWorker: true, fallbacks: m.fallbacks }));
            } else end(() => resolve({ ...common, upserts, deletes: m.deletes }));
          }
        }
      };
      w.postMessage({ t: 'load', lastHash: this.status.state === 'synced' ? this.lastHash : undefined } satisfies ToWorker);
      ask();
    });
  }

  /** Why a new version of the file looks partial, compared with the model in force. */
  private holdReason(nodeGone: boolean, nextTotal: number): string | undefined {
    if (nodeGone) return `it drops this node's own Node ${this.opts.nodeName ?? ''}`;
    // Shrinking to under half in one write, by more than a handful of records: a truncated or half-copied file.
    const before = this.total;
    if (before - nextTotal > 10 && nextTotal < before / 2) return `it shrinks from ${before} to ${nextTotal} resources in one write`;
    return undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.watcher?.close();
    void this.worker?.terminate();
    if (this.timer) clearTimeout(this.timer);
    if (this.poll) clearInterval(this.poll);
    await this.loading;
  }
}

