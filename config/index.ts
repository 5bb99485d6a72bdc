// The public surface of config/: skein.yaml, Calico's resource model, and the
// datastore (a YAML file or Calico's etcd v3 layout) as one change stream.
export {
  parseSelector, printSelector, evaluateSelector, compileSelector, matches, SelectorSyntaxError,
  type SelectorNode, type Selector, type Labels,
} from './selector.js';
export {
  parseASNumber, parseDuration, formatDuration, parseIP, parseIPWithPrefix, parseCIDR, parseCommunity,
  cidrToKeyPart, keyPartToCidr, cidrFamily, ValueError, MAX_ASN, type Prefix, type Family,
} from './values.js';
export { ConfigError, DatastoreError, formatIssue, type Issue } from './errors.js';
export {
  parseDaemonConfig, loadDaemonConfig, ENV, DEFAULT_FIB_PROTOCOL,
  type DaemonConfig, type EtcdConfig, type LogLevel, type AddPathsSend, type MaxPrefixesConfig,
} from './daemon.js';
export { Secret, SecretError, resolvePassword, secretPath, type BGPPassword, type SecretKeyRef } from './secrets.js';
export {
  KINDS, API_VERSION, validateResource, resourceId, parsePeerIP, workloadEndpointName, escapeNamePart, blockAllocations,
  ipamName,
  type Kind, type Resource, type ResourceOf, type Metadata,
  type BGPConfiguration, type BGPConfigurationSpec, type CalicoNode, type NodeSpec, type NodeBGPSpec,
  type BGPPeer, type BGPPeerSpec, type PeerAddress, type IPPool, type IPPoolSpec, type EncapMode,
  type BGPFilter, type BGPFilterSpec, type BGPFilterRule, type FilterOperation,
  type WorkloadEndpoint, type WorkloadEndpointSpec, type ClusterInformation, type ClusterInformationSpec,
  type BlockAffinity, type BlockAffinitySpec, type AffinityState, type IPAMBlock, type IPAMBlockSpec,
  type AllocationAttribute, type LogSeverity,
  type LiveMigration, type LiveMigrationSpec, type LiveMigrationRef, type FelixConfiguration, type FelixConfigurationSpec,
} from './resources.js';
export { Model, type ChangeEvent, type ChangeType } from './model.js';
export {
  PLURALS, ETCD_PREFIX, parseKey, decodeEtcd, etcdKey, etcdValueOf, wepNodeOfName, keyConcernsNode, type KeyInfo, type Decoded,
} from './keys.js';
export { loadResourcesText, type FileLoad } from './filesource.js';
export {
  openDatastore, FileDatastore, EtcdDatastore,
  type Datastore, type DatastoreEvents, type DatastoreStatus, type SyncState,
  type FileDatastoreOptions, type EtcdDatastoreOptions,
} from './datastore.js';
export {
  bfdSettingsFor, interfaceMatches, BFD_DEFAULTS, type BFDInterface, type BFDConfigurationSpec,
} from './bfd.js';
export type { BFDConfiguration } from './resources.js';
