// Two backends, one change stream. A Datastore emits
//   'snapshot' (model)  once, when it has first read everything;
//   'change'   (event)  for every resource added, updated or deleted after that
//                       (a resync after a lost watch emits the differences);
//   'invalid'  (issue)  for a record that fails validation: reported, skipped,
//                       the last good version of it (if any) stays in force;
//   'status'   (status) on every state change (connecting / synced / resyncing /
//                       disconnected, with the last error and last change time).
// While the source is unreachable the last known model stays in force.
import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Etcd3, type IOptions, type Watcher, type IKeyValue } from 'etcd3';
import type { DaemonConfig, EtcdConfig } from './daemon.js';
import { DatastoreError, formatIssue, type Issue } from './errors.js';
import { ETCD_PREFIX, decodeEtcd, etcdKey, parseKey, keyId } from './keys.js';
import { Model, type ChangeEvent } from './model.js';
import { loadResourcesText } from './filesource.js';
import type { Kind } from './resources.js';

export type SyncState = 'connecting' | 'synced' | 'resyncing' | 'disconnected';

export interface DatastoreStatus {
  state: SyncState;
  /** when this state was entered */
  since: Date;
  /** the last error seen (kept after recovery, for `skeinctl status`) */
  lastError?: string;
  /** when the model last changed */
  lastChange?: Date;
  /** etcd: the revision the model reflects */
  revision?: string;
}

export interface DatastoreEvents {
  snapshot: [model: Model];
  change: [event: ChangeEvent];
  invalid: [issue: Issue];
  status: [status: DatastoreStatus];
}

export interface Datastore {
  on<E extends keyof DatastoreEvents>(event: E, listener: (...args: DatastoreEvents[E]) => void): this;
  once<E extends keyof DatastoreEvents>(event: E, listener: (...args: DatastoreEvents[E]) => void): this;
  off<E extends keyof DatastoreEvents>(event: E, listener: (...args: DatastoreEvents[E]) => void): this;
  /** the current resources (do not modify) */
  readonly model: Model;
  readonly status: DatastoreStatus;
  /** resolves with the model at the first snapshot */
  synced(): Promise<Model>;
  /** read everything again now and emit the differences (SIGHUP) */
  reload(): Promise<void>;
  close(): Promise<void>;
}

abstract class Base extends EventEmitter<DatastoreEvents> implements Datastore {
  model = new Model();
  status: DatastoreStatus = { state: 'connecting', since: new Date() };
  protected closed = false;
  private hasSnapshot = false;
  private readonly syncedPromise: Promise<Model>;
  private resolveSynced!: (m: Model) => void;

  constructor() {
    super();
    this.syncedPromise = new Promise((res) => { this.resolveSynced = res; });
  }

  synced(): Promise<Model> {
    return this.syncedPromise;
  }

  abstract close(): Promise<void>;
  abstract reload(): Promise<void>;

  protected setStatus(state: SyncState, patch: { lastError?: string; revision?: string } = {}): void {
    const next: DatastoreStatus = { ...this.status, ...patch };
    if (next.state !== state) { next.state = state; next.since = new Date(); }
    const changed = next.state !== this.status.state || next.lastError !== this.status.lastError || next.revision !== this.status.revision;
    this.status = next;
    if (changed && !this.closed) this.emit('status', { ...next });
  }

  protected report(issue: Issue): void {
    if (!this.closed) this.emit('invalid', issue);
  }

  /** Install a full new model: the first time as a snapshot, later as the differences. */
  protected install(next: Model, keyOf: (kind: Kind, id: string) => string): void {
    if (!this.hasSnapshot) {
      this.model = next;
      this.hasSnapshot = true;
      this.status = { ...this.status, lastChange: new Date() };
      this.emit('snapshot', next);
      this.resolveSynced(next);
      return;
    }
    const changes = Model.diff(this.model, next, keyOf);
    this.model = next;
    if (changes.length > 0) this.status = { ...this.status, lastChange: new Date() };
    for (const ev of changes) this.emit('change', ev);
  }

  protected emitChange(ev: ChangeEvent | undefined): void {
    if (ev === undefined) return;
    this.status = { ...this.status, lastChange: new Date() };
    this.emit('change', ev);
  }

  protected get snapshotTaken(): boolean {
    return this.hasSnapshot;
  }
}

// ---------------------------------------------------------------------------
// file

export interface FileDatastoreOptions {
  path: string;
  /** quiet time after the last change event before re-reading (ms) */
  debounceMs?: number;
  /** longest a re-read waits after the first change event of a burst (ms); default twice debounceMs */
  maxWaitMs?: number;
  /** safety net: re-check the file this often even without events (ms); 0 = never */
  pollMs?: number;
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
  private lastHash?: string;
  private reported = new Set<string>();
  private loading: Promise<void> = Promise.resolve();

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
    this.reload();
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
    this.timer = setTimeout(() => { this.timer = undefined; this.reload(); }, Math.max(0, Math.min(debounce, deadline - now)));
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
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      this.setStatus(this.snapshotTaken ? 'disconnected' : 'connecting', { lastError: `cannot read ${file}: ${code}` });
      return;
    }
    const hash = createHash('sha256').update(text).digest('hex');
    if (hash === this.lastHash && this.status.state === 'synced') return;
    this.lastHash = hash;
    const { model, issues, syntaxError } = loadResourcesText(text, file, this.snapshotTaken ? this.model : undefined);
    // Report each problem once while it persists.
    const now = new Set(issues.map(formatIssue));
    for (const i of issues) if (!this.reported.has(formatIssue(i))) this.report(i);
    this.reported = now;
    if (syntaxError) {
      // A half-written or broken file: keep what we have.
      this.setStatus(this.snapshotTaken ? 'synced' : 'connecting', { lastError: issues.map(formatIssue)[0] ?? 'syntax error' });
      return;
    }
    if (this.closed) return;
    this.install(model, (kind, id) => `${file}#${kind}/${id}`);
    const errs = issues.filter((i) => i.severity === 'error');
    this.setStatus('synced', errs.length > 0 ? { lastError: formatIssue(errs[0] as Issue) } : {});
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    if (this.timer) clearTimeout(this.timer);
    if (this.poll) clearInterval(this.poll);
    await this.loading;
  }
}

// ---------------------------------------------------------------------------
// etcd

export interface EtcdDatastoreOptions extends Partial<Pick<EtcdConfig, 'tls' | 'username' | 'password' | 'passwordFile'>> {
  endpoints: string[];
  dialTimeoutMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** deadline for one unary request (a page of the initial list) (ms) */
  requestTimeoutMs?: number;
  /** keys per page of the initial list */
  pageSize?: number;
}

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** Exponential back-off with a cap, in the shape etcd3's watch manager asks for. */
class CappedBackoff {
  constructor(readonly duration: number, private readonly max: number) {}
  next(): CappedBackoff {
    return new CappedBackoff(Math.min(this.duration * 2, this.max), this.max);
  }
}

/**
 * Calico's etcd v3 datastore: one list of /calico/ with its revision, then a
 * watch from revision+1. A watch that fails (compacted revision, cancelled,
 * broken stream that cannot resume) leads to a full resync; failures back off
 * exponentially. While disconnected, the last model stays in force.
 */
export class EtcdDatastore extends Base {
  private client: Etcd3;
  private watcher: Watcher | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoff: number;
  private generation = 0;
  private running?: Promise<void>;
  private readonly pageSize: number;

  constructor(private readonly opts: EtcdDatastoreOptions) {
    super();
    this.backoff = opts.backoffMinMs ?? 200;
    this.pageSize = opts.pageSize ?? 500;
    const requestTimeout = opts.requestTimeoutMs ?? 10_000;
    const o: IOptions = {
      hosts: opts.endpoints,
      dialTimeout: opts.dialTimeoutMs ?? 5000,
      // A deadline on unary calls only: the watch stream lives as long as it can.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + requestTimeout }),
      faultHandling: {
        watchBackoff: new CappedBackoff(opts.backoffMinMs ?? 200, opts.backoffMaxMs ?? 30_000) as unknown as WatchBackoff,
      },
    };
    const read = (file: string, what: string): Buffer => {
      try {
        return readFileSync(file);
      } catch (e) {
        throw new DatastoreError('DATASTORE_CREDENTIALS', `cannot read the etcd ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
      }
    };
    if (opts.tls !== undefined && (opts.tls.ca !== undefined || opts.tls.cert !== undefined)) {
      // Without a CA file, the system's trusted roots are used.
      const creds: NonNullable<IOptions['credentials']> = { rootCertificate: opts.tls.ca !== undefined ? read(opts.tls.ca, 'CA file') : Buffer.alloc(0) };
      if (opts.tls.key !== undefined) creds.privateKey = read(opts.tls.key, 'key file');
      if (opts.tls.cert !== undefined) creds.certChain = read(opts.tls.cert, 'certificate file');
      o.credentials = creds;
    }
    if (opts.username !== undefined) {
      const password = opts.password ?? (opts.passwordFile !== undefined ? read(opts.passwordFile, 'password file').toString('utf8').replace(/\r?\n$/, '') : '');
      o.auth = { username: opts.username, password };
    }
    this.client = new Etcd3(o);
  }

  start(): this {
    this.running = this.sync();
    return this;
  }

  /** A full resync now (list, diff, re-watch), e.g. on SIGHUP. */
  async reload(): Promise<void> {
    if (this.closed) return;
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = undefined; }
    await this.running?.catch(() => undefined);
    await this.stopWatch();
    this.running = this.sync();
    await this.running;
  }

  private keyOf = (kind: Kind, id: string): string => {
    const r = this.model.get(kind, id);
    return r !== undefined ? etcdKey(r) : `${kind}/${id}`;
  };

  private scheduleResync(reason: string): void {
    if (this.closed) return;
    void this.stopWatch();
    this.setStatus(this.snapshotTaken ? 'disconnected' : 'connecting', { lastError: reason });
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const delay = this.backoff * (0.8 + Math.random() * 0.4);
    this.backoff = Math.min(this.backoff * 2, this.opts.backoffMaxMs ?? 30_000);
    this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.running = this.sync(); }, delay);
  }

  private stopWatch(): Promise<void> {
    const w = this.watcher;
    this.watcher = undefined;
    this.generation++;
    if (!w) return Promise.resolve();
    w.removeAllListeners();
    w.on('error', () => undefined);
    return w.cancel().catch(() => undefined);
  }

  /** List everything, install it, and watch from the next revision. */
  private async sync(): Promise<void> {
    if (this.closed) return;
    if (this.snapshotTaken) this.setStatus('resyncing');
    const next = new Model();
    let revision: string;
    try {
      revision = await this.list(next);
    } catch (e) {
      this.scheduleResync(`listing ${ETCD_PREFIX}: ${(e as Error).message}`);
      return;
    }
    if (this.closed) return;
    this.install(next, this.keyOf);
    this.startWatch(revision);
    this.backoff = this.opts.backoffMinMs ?? 200;
    this.setStatus('synced', { revision });
  }

  /**
   * List /calico/ in pages, every page read at the revision of the first, so
   * the result is one consistent snapshot however large the datastore is (a
   * single response is capped by gRPC's message size, 4 MiB by default).
   * Returns that revision.
   */
  private async list(into: Model): Promise<string> {
    const end = Buffer.from(ETCD_PREFIX);
    end[end.length - 1] = (end[end.length - 1] as number) + 1; // "/calico0": just past every "/calico/..." key
    let start: Buffer = Buffer.from(ETCD_PREFIX);
    let revision: string | undefined;
    for (;;) {
      let q = this.client.getAll().inRange({ start, end }).limit(this.pageSize);
      if (revision !== undefined) q = q.revision(revision);
      const res = await q.exec();
      revision ??= String(res.header.revision);
      for (const kv of res.kvs) this.decodeInto(into, kv);
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || last === undefined || this.closed) return revision;
      start = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  private decodeInto(m: Model, kv: IKeyValue): void {
    const key = kv.key.toString();
    const d = decodeEtcd(key, kv.value.toString());
    if (d === undefined) return;
    for (const i of d.issues) this.report(i);
    if (d.resource !== undefined) m.set(d.resource, key);
    else if (d.kind !== undefined && d.id !== undefined) {
      // invalid: keep the last good version, if there is one
      const old = this.model.get(d.kind, d.id);
      if (old !== undefined) m.set(old, key);
    }
  }

  private startWatch(revision: string): void {
    const gen = ++this.generation;
    const start = String(BigInt(revision) + 1n);
    // watcher() (not create()) hands the Watcher over at once, so it can always
    // be cancelled: one left attached when the client closes would make etcd3
    // retry its stream forever.
    const w = this.client.watch().prefix(ETCD_PREFIX).startRevision(start).watcher();
    this.watcher = w;
    w.on('put', (kv) => this.onPut(kv));
    w.on('delete', (kv) => this.onDelete(kv));
    w.on('disconnected', (e: Error) => {
      if (gen === this.generation) this.setStatus('disconnected', { lastError: `watch: ${e.message}` });
    });
    w.on('connected', (r: { header?: { revision?: string } }) => {
      if (gen === this.generation) this.setStatus('synced', { revision: String(r.header?.revision ?? this.status.revision) });
    });
    // A cancelled watch (e.g. its start revision was compacted) cannot resume: list again.
    w.on('error', (e: Error) => {
      if (gen === this.generation) this.scheduleResync(`watch cancelled by etcd (its start revision may have been compacted), resyncing: ${e.message}`);
    });
  }

  private onPut(kv: IKeyValue): void {
    if (this.closed) return;
    const key = kv.key.toString();
    const d = decodeEtcd(key, kv.value.toString());
    if (d === undefined) return;
    for (const i of d.issues) this.report(i);
    const revision = String(kv.mod_revision);
    this.status = { ...this.status, revision };
    if (d.resource === undefined) return; // invalid: keep what we had
    const ev = this.model.set(d.resource, key);
    if (ev) ev.revision = revision;
    this.emitChange(ev);
  }

  private onDelete(kv: IKeyValue): void {
    if (this.closed) return;
    const key = kv.key.toString();
    let info;
    try {
      info = parseKey(key);
    } catch {
      return;
    }
    if (info === undefined) return;
    const { kind, id } = keyId(info);
    const revision = String(kv.mod_revision);
    this.status = { ...this.status, revision };
    const ev = this.model.delete(kind, id, key);
    if (ev) ev.revision = revision;
    this.emitChange(ev);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    // Let the cancel reach etcd before closing the client: a watcher still
    // registered when the stream dies makes etcd3 try to reconnect forever.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.stopWatch(), new Promise((r) => { timer = setTimeout(r, 1000); })]);
    if (timer) clearTimeout(timer);
    await this.running?.catch(() => undefined);
    this.client.close();
  }
}

/** Open the datastore skein.yaml names, and start reading it. */
export function openDatastore(cfg: DaemonConfig['datastore']): Datastore {
  if (cfg.type === 'etcd') {
    const e = cfg.etcd;
    if (e === undefined) throw new Error('datastore.type is etcd but datastore.etcd is missing');
    const o: EtcdDatastoreOptions = { endpoints: e.endpoints, dialTimeoutMs: e.dialTimeoutMs, backoffMinMs: e.backoffMinMs, backoffMaxMs: e.backoffMaxMs };
    if (e.tls !== undefined) o.tls = e.tls;
    if (e.username !== undefined) o.username = e.username;
    if (e.password !== undefined) o.password = e.password;
    if (e.passwordFile !== undefined) o.passwordFile = e.passwordFile;
    return new EtcdDatastore(o).start();
  }
  return new FileDatastore({ path: cfg.path, debounceMs: cfg.debounceMs }).start();
}


