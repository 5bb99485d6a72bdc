// The datastore: a YAML file or Calico's etcd v3 layout, as one change stream
// (the events and states are described in dsbase.ts). The backends live in
// filestore.ts and etcdstore.ts; this module keeps the public surface.
import type { DaemonConfig } from './daemon.js';
import type { Datastore, DatastoreScope } from './dsbase.js';
import { FileDatastore } from './filestore.js';
import { EtcdDatastore, type EtcdDatastoreOptions } from './etcdstore.js';

export { Base, type Datastore, type DatastoreEvents, type DatastoreScope, type DatastoreStatus, type SyncState } from './dsbase.js';
export { FileDatastore, type FileDatastoreOptions } from './filestore.js';
export { EtcdDatastore, type EtcdDatastoreOptions } from './etcdstore.js';

/**
 * Open the datastore skein.yaml names, and start reading it: for node `nodeName` only its share (keys.ts
 * keyConcernsNode), and without what `scope` leaves out (dsbase.ts DatastoreScope).
 */
export function openDatastore(cfg: DaemonConfig['datastore'], nodeName?: string, scope: DatastoreScope = {}): Datastore {
  const workloadEndpoints = scope.workloadEndpoints !== false;
  if (cfg.type === 'etcd') {
    const e = cfg.etcd;
    if (e === undefined) throw new Error('datastore.type is etcd but datastore.etcd is missing');
    const o: EtcdDatastoreOptions = { endpoints: e.endpoints, dialTimeoutMs: e.dialTimeoutMs, backoffMinMs: e.backoffMinMs, backoffMaxMs: e.backoffMaxMs, workloadEndpoints };
    if (e.tls !== undefined) o.tls = e.tls;
    if (e.username !== undefined) o.username = e.username;
    if (e.password !== undefined) o.password = e.password;
    if (e.passwordFile !== undefined) o.passwordFile = e.passwordFile;
    // skeind reads only what concerns its own node (keyConcernsNode in keys.ts)
    if (nodeName !== undefined) o.nodeName = nodeName;
    return new EtcdDatastore(o).start();
  }
  return new FileDatastore({ path: cfg.path, debounceMs: cfg.debounceMs, nodeName, workloadEndpoints }).start();
}


