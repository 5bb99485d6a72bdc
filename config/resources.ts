// Calico's resources, typed: what skein reads from each kind (docs/contract.md, "The
// datastore: Calico's own resources"), with the field names Calico uses (api/pkg/apis/projectcalico/v3,
// libcalico-go/lib/apis/internalapi, libcalico-go/lib/backend/model), values
// normalised (AS numbers as numbers, durations in ms, CIDRs canonical,
// selectors parsed) so both backends produce equal objects for equal data.
// This file holds the kinds, their metadata and identity, and validateResource, which hands each kind's spec to its
// reader: resources-bgp.ts (BGPConfiguration, Node, BGPPeer), resources-ipam.ts (IPPool, BlockAffinity,
// IPAMBlock), resources-filter.ts (BGPFilter), resources-workload.ts (WorkloadEndpoint, LiveMigration,
// FelixConfiguration), bfd.ts (BFDConfiguration); ClusterInformation is small enough to stay here.
import {
  Checker, bool, isObj, oneOf, resourceName, set, str, stringMap, type Obj, type Path,
} from './check.js';
import { closest } from './suggest.js';
import { bfdConfigurationSpec, type BFDConfigurationSpec } from './bfd.js';
import { ValueError, cidrToKeyPart, describe } from './values.js';
import {
  bgpConfigurationSpec, bgpPeerSpec, nodeSpec, type BGPConfigurationSpec, type BGPPeerSpec, type NodeSpec,
} from './resources-bgp.js';
import { bgpFilterSpec, type BGPFilterSpec } from './resources-filter.js';
import {
  affinityState, blockAffinitySpec, deletedFlag, ipPoolSpec, ipamBlockSpec, type BlockAffinitySpec, type IPAMBlockSpec,
  type IPPoolSpec,
} from './resources-ipam.js';
import {
  felixConfigurationSpec, liveMigrationSpec, workloadEndpointSpec, type FelixConfigurationSpec, type LiveMigrationSpec,
  type WorkloadEndpointSpec,
} from './resources-workload.js';

export const KINDS = [
  'BGPConfiguration', 'Node', 'BGPPeer', 'IPPool', 'BGPFilter', 'WorkloadEndpoint', 'ClusterInformation',
  'BlockAffinity', 'IPAMBlock', 'BFDConfiguration', 'LiveMigration', 'FelixConfiguration',
] as const;

export type Kind = (typeof KINDS)[number];

export interface Metadata {
  name: string;
  namespace?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

interface Res<K extends Kind, S> {
  kind: K;
  metadata: Metadata;
  spec: S;
}

export type BGPConfiguration = Res<'BGPConfiguration', BGPConfigurationSpec>;
export type CalicoNode = Res<'Node', NodeSpec>;
export type BGPPeer = Res<'BGPPeer', BGPPeerSpec>;
export type IPPool = Res<'IPPool', IPPoolSpec>;
export type BGPFilter = Res<'BGPFilter', BGPFilterSpec>;
export type WorkloadEndpoint = Res<'WorkloadEndpoint', WorkloadEndpointSpec>;

export interface ClusterInformationSpec {
  clusterGUID?: string;
  clusterType?: string;
  calicoVersion?: string;
  datastoreReady?: boolean;
}

export type ClusterInformation = Res<'ClusterInformation', ClusterInformationSpec>;
export type BlockAffinity = Res<'BlockAffinity', BlockAffinitySpec>;
export type IPAMBlock = Res<'IPAMBlock', IPAMBlockSpec>;
export type LiveMigration = Res<'LiveMigration', LiveMigrationSpec>;
export type FelixConfiguration = Res<'FelixConfiguration', FelixConfigurationSpec>;

/** Each kind's spec is defined beside its reader (see the top of this file). */
export type Resource =
  | BGPConfiguration | CalicoNode | BGPPeer | IPPool | BGPFilter | WorkloadEndpoint | ClusterInformation
  | BlockAffinity | IPAMBlock | BFDConfiguration | LiveMigration | FelixConfiguration;

/** Calico Enterprise's BFD settings (config/bfd.ts) */
export type BFDConfiguration = Res<'BFDConfiguration', BFDConfigurationSpec>;

export type ResourceOf<K extends Kind> = Extract<Resource, { kind: K }>;

/** Kinds whose metadata.namespace is part of their identity. */
export const NAMESPACED: ReadonlySet<Kind> = new Set<Kind>(['WorkloadEndpoint', 'LiveMigration']);

/**
 * The identity of a resource inside its kind: the name; "namespace/name" for
 * WorkloadEndpoints; "node/cidr" for block affinities and the CIDR for IPAM
 * blocks (their etcd keys carry those, not a name).
 */
export function resourceId(r: Resource): string {
  switch (r.kind) {
    case 'WorkloadEndpoint':
    case 'LiveMigration': return `${r.metadata.namespace ?? ''}/${r.metadata.name}`;
    case 'BlockAffinity': return `${r.spec.node}/${r.spec.cidr}`;
    case 'IPAMBlock': return r.spec.cidr;
    default: return r.metadata.name;
  }
}

/** Calico's name for an IPAM object: the CIDR with "." ":" "/" as "-" (and the node in front for affinities). */
export function ipamName(cidr: string, node?: string): string {
  const c = cidr.replace(/[.:/]/g, '-');
  return node === undefined ? c : `${node}-${c}`;
}

// ---------------------------------------------------------------------------
// Validation

/** ObjectMeta fields Kubernetes and Calico may write; accepted and not used. */
const META_FIELDS = [
  'name', 'namespace', 'labels', 'annotations', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'generateName', 'selfLink', 'ownerReferences', 'finalizers',
  'managedFields',
];

export interface Validated {
  resource?: Resource;
  checker: Checker;
  /** kind and name as far as they could be read, for the report */
  kind?: string;
  name?: string;
}

export const API_VERSION = 'projectcalico.org/v3';

function clusterInformationSpec(c: Checker, s: Obj, path: Path): ClusterInformationSpec {
  c.object(s, path, ['clusterGUID', 'clusterType', 'calicoVersion', 'datastoreReady', 'variant', 'calicoEnterpriseVersion', 'cnxVersion']);
  const out: ClusterInformationSpec = {};
  set(out, 'clusterGUID', c.opt(s, 'clusterGUID', path, str));
  set(out, 'clusterType', c.opt(s, 'clusterType', path, str));
  set(out, 'calicoVersion', c.opt(s, 'calicoVersion', path, str));
  set(out, 'datastoreReady', c.opt(s, 'datastoreReady', path, bool));
  return out;
}

function metadata(c: Checker, v: unknown, kind: Kind): Metadata {
  const m = c.object(v, ['metadata'], META_FIELDS, { required: true });
  const nameParse = kind === 'WorkloadEndpoint' || kind === 'LiveMigration' || kind === 'FelixConfiguration' || kind === 'BlockAffinity' || kind === 'IPAMBlock' || kind === 'BGPConfiguration' || kind === 'Node'
    ? (x: unknown): string => {
      const s = str(x);
      if (s === '' || s.length > 253 || /[/\s]/.test(s)) throw new ValueError(`"${s}" is not a valid name (no "/" or spaces, at most 253 characters)`);
      return s;
    }
    : resourceName;
  const meta: Metadata = {
    name: c.req(m, 'name', ['metadata'], nameParse) ?? '',
    labels: c.opt(m, 'labels', ['metadata'], stringMap) ?? {},
    annotations: c.opt(m, 'annotations', ['metadata'], stringMap) ?? {},
  };
  if (NAMESPACED.has(kind)) {
    meta.namespace = c.req(m, 'namespace', ['metadata'], resourceName) ?? '';
  } else if (m.namespace !== undefined && m.namespace !== '') {
    c.warn(['metadata', 'namespace'], `${kind} is not namespaced; the namespace is ignored`);
  }
  return meta;
}

/**
 * Validate one resource document ({apiVersion, kind, metadata, spec}). Unknown
 * fields are warnings (Calico adds fields between releases); wrong values are
 * errors and the resource is not returned.
 */
export function validateResource(raw: unknown, opts: { unknownKeys?: 'error' | 'warning' } = {}): Validated {
  const c = new Checker(opts.unknownKeys ?? 'warning');
  if (!isObj(raw)) {
    c.error([], `expected a resource (apiVersion, kind, metadata, spec), got ${describe(raw)}`);
    return { checker: c };
  }
  const top = c.object(raw, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const kindText = typeof top.kind === 'string' ? top.kind : undefined;
  const name = isObj(top.metadata) && typeof top.metadata.name === 'string' ? top.metadata.name : undefined;
  const result: Validated = { checker: c };
  if (kindText !== undefined) result.kind = kindText;
  if (name !== undefined) result.name = name;
  if (kindText !== undefined && !(KINDS as readonly string[]).includes(kindText) && closest(kindText, KINDS) === undefined) {
    // Another Calico kind (policy, profile...): the same file may feed calicoctl; not skein's business.
    c.warn(['kind'], `${kindText} is not used by skein; ignored`);
    return result;
  }
  const kind = c.req(top, 'kind', [], oneOf(KINDS));
  const apiVersion = c.req(top, 'apiVersion', [], str);
  if (apiVersion !== undefined && apiVersion !== API_VERSION && !(apiVersion === 'crd.projectcalico.org/v1')) {
    c.error(['apiVersion'], `expected "${API_VERSION}", got "${apiVersion}"`);
  }
  if (kind === undefined) return result;
  const meta = metadata(c, top.metadata, kind);
  const sp: Path = ['spec'];
  const spec = c.object(top.spec, sp, [], { required: kind !== 'ClusterInformation' && kind !== 'BGPConfiguration' && kind !== 'FelixConfiguration' });
  // c.object above reported every key as unknown; drop those, the kind's own reader checks keys.
  for (let i = c.problems.length - 1; i >= 0; i--) {
    const p = c.problems[i];
    if (p?.atKey && p.path.length === 2 && p.path[0] === 'spec') c.problems.splice(i, 1);
  }
  let res: Resource;
  switch (kind) {
    case 'BGPConfiguration': {
      if (meta.name !== 'default' && !meta.name.startsWith('node.')) {
        c.warn(['metadata', 'name'], `only "default" and "node.<nodename>" BGPConfigurations are used; "${meta.name}" is ignored by Calico and skein`);
      }
      res = { kind, metadata: meta, spec: bgpConfigurationSpec(c, spec, sp, meta.name) };
      break;
    }
    case 'Node': res = { kind, metadata: meta, spec: nodeSpec(c, spec, sp) }; break;
    case 'BFDConfiguration': res = { kind, metadata: meta, spec: bfdConfigurationSpec(c, spec, sp) }; break;
    case 'BGPPeer': res = { kind, metadata: meta, spec: bgpPeerSpec(c, spec, sp) }; break;
    case 'IPPool': res = { kind, metadata: meta, spec: ipPoolSpec(c, spec, sp) }; break;
    case 'BGPFilter': res = { kind, metadata: meta, spec: bgpFilterSpec(c, spec, sp) }; break;
    case 'WorkloadEndpoint': res = { kind, metadata: meta, spec: workloadEndpointSpec(c, spec, sp, meta) }; break;
    case 'LiveMigration': res = { kind, metadata: meta, spec: liveMigrationSpec(c, spec, sp) }; break;
    case 'FelixConfiguration': res = { kind, metadata: meta, spec: felixConfigurationSpec(c, spec, sp) }; break;
    case 'ClusterInformation': {
      if (meta.name !== 'default') c.warn(['metadata', 'name'], `only the "default" ClusterInformation is used, not "${meta.name}"`);
      res = { kind, metadata: meta, spec: clusterInformationSpec(c, spec, sp) };
      break;
    }
    case 'BlockAffinity': {
      const s = blockAffinitySpec(c, spec, sp);
      res = { kind, metadata: ipamMeta(ipamName(s.cidr, s.node)), spec: s };
      break;
    }
    case 'IPAMBlock': {
      const s = ipamBlockSpec(c, spec, sp);
      res = { kind, metadata: ipamMeta(ipamName(s.cidr)), spec: s };
      break;
    }
  }
  if (c.ok) result.resource = res;
  return result;
}

/**
 * IPAM objects are identified by node and CIDR, not by the names people give
 * them in a file; their metadata is rebuilt from those so that a file and etcd
 * (whose keys carry no names) give equal objects.
 */
export function ipamMeta(name: string): Metadata {
  return { name, labels: {}, annotations: {} };
}

/** Block affinity from Calico's etcd model: key /calico/ipam/v2/host/<node>/ipvN/block/<cidr>, value {state, deleted}. */
export function validateBlockAffinityValue(node: string, cidr: string, raw: unknown): Validated {
  const c = new Checker('warning');
  const v = raw === null || raw === '' ? {} : raw;
  const o = c.object(v, [], ['state', 'deleted']);
  const spec: BlockAffinitySpec = {
    node,
    cidr,
    state: (o.state === '' ? undefined : c.opt(o, 'state', [], affinityState)) ?? 'confirmed',
    deleted: c.opt(o, 'deleted', [], deletedFlag) ?? false,
  };
  const out: Validated = { checker: c, kind: 'BlockAffinity', name: ipamName(cidr, node) };
  if (c.ok) out.resource = { kind: 'BlockAffinity', metadata: ipamMeta(ipamName(cidr, node)), spec };
  return out;
}

/** IPAM block from Calico's etcd model: key /calico/ipam/v2/assignment/ipvN/block/<cidr>, value an AllocationBlock. */
export function validateIPAMBlockValue(cidr: string, raw: unknown): Validated {
  const c = new Checker('warning');
  const spec = ipamBlockSpec(c, isObj(raw) ? raw : (c.error([], `expected an allocation block object, got ${describe(raw)}`), {}), []);
  if (c.ok && spec.cidr !== cidr) c.error(['cidr'], `"${spec.cidr}" does not match the key's block ${cidr} (${cidrToKeyPart(cidr)})`);
  const out: Validated = { checker: c, kind: 'IPAMBlock', name: ipamName(cidr) };
  if (c.ok) out.resource = { kind: 'IPAMBlock', metadata: ipamMeta(ipamName(cidr)), spec };
  return out;
}
