// Calico's workload resources, typed and validated: WorkloadEndpoint (api/pkg/apis/projectcalico/v3
// workloadendpoint.go), and for live migration LiveMigration and the FelixConfiguration fields it reads.
// config/resources.ts holds the kinds, their metadata and the dispatch to these readers.
import { int, ip, selector, set, str, type Checker, type Obj, type Path } from './check.js';
import type { Selector } from './selector.js';
import { ValueError, parseCIDR, parseDuration, parseIPWithPrefix } from './values.js';

export interface WorkloadEndpointSpec {
  orchestrator?: string;
  workload?: string;
  node: string;
  containerID?: string;
  pod?: string;
  endpoint?: string;
  interfaceName: string;
  mac?: string;
  /** canonical "address/len", one per address of the workload */
  ipNetworks: string[];
  ipNATs: { internalIP: string; externalIP: string }[];
  ipv4Gateway?: string;
  ipv6Gateway?: string;
  /** OpenStack allowed-address pairs */
  allowedIps: string[];
  profiles: string[];
}

/**
 * Names one workload (endpointID absent) or one of its endpoints, as Felix matches them against its
 * WorkloadEndpoint keys (felix/calc/live_migration_calculator.go): hostname is the node (ignored for orchestrator
 * "k8s", where namespace/pod is unique already), workloadID is "<namespace>/<workload or pod>".
 */
export interface LiveMigrationRef {
  hostname: string;
  orchestratorID: string;
  workloadID: string;
  endpointID: string;
}

/**
 * A live migration in progress (libcalico-go/lib/apis/internalapi/livemigration.go; etcd key
 * /calico/resources/v3/projectcalico.org/livemigrations/<namespace>/<name>). networking-calico writes one per
 * migrating Neutron port, named after the destination WorkloadEndpoint, with both sides given as workloadEndpoint
 * (networking-calico endpoints.py live_migration_spec); KubeVirt clusters give a workload source and a selector
 * target instead. Exactly one field is set on each side; a side may be absent early in a migration.
 */
export interface LiveMigrationSpec {
  source?: { workload?: LiveMigrationRef; workloadEndpoint?: LiveMigrationRef };
  target?: { selector?: Selector; workloadEndpoint?: LiveMigrationRef };
}

/**
 * The few FelixConfiguration fields that decide how a live migration is routed (felix/config/config_params.go):
 * the kernel metric of a migrated workload's routes while the move settles, and how long it stays elevated after
 * the migration completes. Every other field is Felix's and not read.
 */
export interface FelixConfigurationSpec {
  ipv4ElevatedRoutePriority?: number;
  ipv6ElevatedRoutePriority?: number;
  /** milliseconds */
  liveMigrationRouteConvergenceTime?: number;
}

/** networking-calico / libcalico-go escape "-" inside each name component by doubling it. */
export const escapeNamePart = (s: string): string => s.replace(/-/g, '--');

/** The WorkloadEndpoint name Calico derives from its identifiers. */
export function workloadEndpointName(node: string, orchestrator: string, workload: string, endpoint: string): string {
  return [node, orchestrator, workload, endpoint].map(escapeNamePart).join('-');
}

export function workloadEndpointSpec(c: Checker, s: Obj, path: Path, meta: { readonly namespace?: string }): WorkloadEndpointSpec {
  c.object(s, path, [
    'orchestrator', 'workload', 'node', 'containerID', 'pod', 'endpoint', 'serviceAccountName', 'ipNetworks',
    'ipNATs', 'ipv4Gateway', 'ipv6Gateway', 'profiles', 'interfaceName', 'mac', 'ports', 'allowedIps',
    'allowSpoofedSourcePrefixes', 'qosControls', 'qosPolicyExemptions', 'awsElasticIPs', 'hostNetwork',
    'attachmentID', 'externalNetworkNames', 'egressGateway',
  ]);
  const out: WorkloadEndpointSpec = {
    node: c.req(s, 'node', path, str) ?? '',
    interfaceName: c.req(s, 'interfaceName', path, (v) => {
      const t = str(v);
      // Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
      if (t.length > 15 || /[\s/]/.test(t)) throw new ValueError(`"${t}" is not a Linux interface name (at most 15 characters, no "/" or spaces)`);
      return t;
    }) ?? '',
    ipNetworks: c.list(s, 'ipNetworks', path, (v, p) => c.value(v, p, (y) => {
      const pr = parseIPWithPrefix(typeof y === 'string' && !y.includes('/') ? `${y}/${y.includes(':') ? 128 : 32}` : y);
      return `${pr.network}/${pr.length}`;
    })),
    ipNATs: c.list(s, 'ipNATs', path, (v, p) => {
      const x = c.object(v, p, ['internalIP', 'externalIP']);
      const internalIP = c.req(x, 'internalIP', p, ip);
      const externalIP = c.req(x, 'externalIP', p, ip);
      return internalIP === undefined || externalIP === undefined ? undefined : { internalIP, externalIP };
    }),
    allowedIps: c.list(s, 'allowedIps', path, (v, p) => c.value(v, p, (y) => {
      const t = str(y);
      return t.includes('/') ? parseCIDR(t) : parseCIDR(`${t}/${t.includes(':') ? 128 : 32}`);
    })),
    profiles: c.list(s, 'profiles', path, (v, p) => c.value(v, p, str)),
  };
  for (const k of ['orchestrator', 'workload', 'containerID', 'pod', 'endpoint', 'mac'] as const) {
    set(out, k, c.opt(s, k, path, str));
  }
  set(out, 'ipv4Gateway', c.opt(s, 'ipv4Gateway', path, ip));
  set(out, 'ipv6Gateway', c.opt(s, 'ipv6Gateway', path, ip));
  // Names and namespaces as the orchestrators write them.
  if (out.orchestrator === 'openstack') {
    const ns = meta.namespace ?? '';
    if (ns !== 'openstack' && !/^openstack-region-[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) {
      c.error(['metadata', 'namespace'], `an OpenStack WorkloadEndpoint lives in namespace "openstack" or "openstack-region-<region>", not "${ns}"`);
    }
    if (out.workload === undefined || out.endpoint === undefined) {
      c.error([...path, out.workload === undefined ? 'workload' : 'endpoint'], 'is required for an OpenStack endpoint (the VM and the Neutron port)');
    }
  }
  // The name is not checked against <node>-<orchestrator>-<workload>-<endpoint>: Calico's own clients do not insist
  // on the canonical form (libcalico-go's names package only builds it; the CNI plugin and networking-calico store
  // what they were given), and skein keys endpoints by namespace and name whatever their form.
  return out;
}

function liveMigrationRef(c: Checker, v: unknown, path: Path, workloadOnly: boolean): LiveMigrationRef {
  const x = c.object(v, path, workloadOnly ? ['hostname', 'orchestratorID', 'workloadID'] : ['hostname', 'orchestratorID', 'workloadID', 'endpointID']);
  const ref: LiveMigrationRef = {
    hostname: c.opt(x, 'hostname', path, str) ?? '',
    orchestratorID: c.opt(x, 'orchestratorID', path, str) ?? '',
    workloadID: c.opt(x, 'workloadID', path, str) ?? '',
    endpointID: workloadOnly ? '' : c.opt(x, 'endpointID', path, str) ?? '',
  };
  if (ref.workloadID === '') c.error([...path, 'workloadID'], 'is required to name the migrating workload');
  return ref;
}

/** LiveMigrationSource/Target: the CRD marks each ExactlyOneOf; two set is an error, none is a side not yet known. */
export function liveMigrationSpec(c: Checker, s: Obj, path: Path): LiveMigrationSpec {
  c.object(s, path, ['source', 'target']);
  const out: LiveMigrationSpec = {};
  const one = (side: Obj, p: Path, keys: string[]): void => {
    const set = keys.filter((k) => side[k] !== undefined && side[k] !== null);
    if (set.length > 1) c.error(p, `exactly one of ${keys.join(', ')} may be set, not ${set.join(' and ')}`);
  };
  if (s.source !== undefined && s.source !== null) {
    const p = [...path, 'source'];
    const src = c.object(s.source, p, ['workload', 'workloadEndpoint']);
    one(src, p, ['workload', 'workloadEndpoint']);
    out.source = {};
    if (src.workload != null) out.source.workload = liveMigrationRef(c, src.workload, [...p, 'workload'], true);
    if (src.workloadEndpoint != null) out.source.workloadEndpoint = liveMigrationRef(c, src.workloadEndpoint, [...p, 'workloadEndpoint'], false);
  }
  if (s.target !== undefined && s.target !== null) {
    const p = [...path, 'target'];
    const tgt = c.object(s.target, p, ['selector', 'workloadEndpoint']);
    one(tgt, p, ['selector', 'workloadEndpoint']);
    out.target = {};
    set(out.target, 'selector', c.opt(tgt, 'selector', p, selector));
    if (tgt.workloadEndpoint != null) out.target.workloadEndpoint = liveMigrationRef(c, tgt.workloadEndpoint, [...p, 'workloadEndpoint'], false);
  }
  return out;
}

const routePriority = int(1, 2147483646);

/** Only the live-migration fields are read; the rest of FelixConfiguration is Felix's own and passes unchecked. */
export function felixConfigurationSpec(c: Checker, s: Obj, path: Path): FelixConfigurationSpec {
  c.object(s, path, Object.keys(s));
  const out: FelixConfigurationSpec = {};
  set(out, 'ipv4ElevatedRoutePriority', c.opt(s, 'ipv4ElevatedRoutePriority', path, routePriority));
  set(out, 'ipv6ElevatedRoutePriority', c.opt(s, 'ipv6ElevatedRoutePriority', path, routePriority));
  set(out, 'liveMigrationRouteConvergenceTime', c.opt(s, 'liveMigrationRouteConvergenceTime', path, parseDuration));
  return out;
}
