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
import type { Issue } from './errors.js';
import { Model, type ChangeEvent } from './model.js';
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
  /** file: why the file's current content is held back (looks partial), while it is */
  held?: string;
}

/**
 * What a datastore leaves out, whatever its backend (openDatastore's third argument).
 *
 * `workloadEndpoints: false` reads no WorkloadEndpoint at all, this node's own included: for a speaker that learns the
 * workload routes from the kernel, where Felix programs them, as Calico's BIRD does (`protocol kernel { learn; }`).
 * Calico's BGP side reads none either: its syncer watches every kind it needs and no WorkloadEndpoints
 * (libcalico-go lib/backend/syncersv1/bgpsyncer/bgpsyncer.go). Without it, every endpoint change in the cluster reaches
 * every node's reader, as the endpoint keys begin with the namespace (keys.ts). Default true.
 */
export interface DatastoreScope {
  workloadEndpoints?: boolean | undefined;
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

export abstract class Base extends EventEmitter<DatastoreEvents> implements Datastore {
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

  protected setStatus(state: SyncState, patch: { lastError?: string; revision?: string; held?: string } = {}): void {
    const next: DatastoreStatus = { ...this.status, ...patch };
    if (next.state !== state) { next.state = state; next.since = new Date(); }
    const changed = next.state !== this.status.state || next.lastError !== this.status.lastError || next.revision !== this.status.revision || next.held !== this.status.held;
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

