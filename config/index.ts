// The public surface of config/, by name: what src/, the benchmarks and the tests use of skein.yaml, Calico's
// resource model, and the datastore (a YAML file or Calico's etcd v3 layout) as one change stream. Anything else
// is private to config/; a new user adds the name here.
export {
  parseSelector, printSelector, evaluateSelector, matches, SelectorSyntaxError, type SelectorNode, type Selector,
} from './selector.js';
export { parseASNumber, parseDuration, formatDuration, parseCIDR, ValueError } from './values.js';
export { ConfigError, DatastoreError, formatIssue, type Issue } from './errors.js';
export { parseDaemonConfig, loadDaemonConfig, ENV, type DaemonConfig } from './daemon.js';
export { Secret, resolvePassword, type BGPPassword } from './secrets.js';
export {
  validateResource,
  type Resource, type BGPConfiguration, type CalicoNode, type BGPPeer, type IPPool, type BGPFilter,
  type WorkloadEndpoint, type BFDConfiguration,
} from './resources.js';
export { parsePeerIP } from './resources-bgp.js';
export { blockAllocations } from './resources-ipam.js';
export type { BGPFilterRule } from './resources-filter.js';
export type { LiveMigrationRef } from './resources-workload.js';
export { Model, type ChangeEvent } from './model.js';
export { decodeEtcd, etcdKey, etcdValueOf, wepNodeOfName, keyConcernsNode } from './keys.js';
export { loadResourcesText, FileIndex, type FileDiff, type ReadStats } from './filesource.js';
export { GroupIndex, type Group, type GroupStats } from './fileindex.js';
export {
  openDatastore, FileDatastore, EtcdDatastore, type Datastore, type DatastoreScope, type DatastoreStatus, type EtcdDatastoreOptions,
} from './datastore.js';
export { bfdSettingsFor, interfaceMatches, BFD_DEFAULTS, type BFDInterface } from './bfd.js';
