// Calico's etcd v3 key layout (libcalico-go/lib/backend/model): which keys
// skein reads, how a key names a resource, and decoding one key/value pair
// into a validated resource.
import type { DatastoreScope } from './dsbase.js';
import { issuesFrom, type Issue } from './errors.js';
import {
  API_VERSION, NAMESPACED, ipamName, validateBlockAffinityValue, validateIPAMBlockValue, validateResource,
  type Kind, type Resource, type Validated,
} from './resources.js';
import { ValueError, cidrToKeyPart, keyPartToCidr } from './values.js';

export const ETCD_PREFIX = '/calico/';
export const RESOURCES_PREFIX = '/calico/resources/v3/projectcalico.org/';
export const IPAM_PREFIX = '/calico/ipam/v2/';

/** Calico's lower-case plural for each v3 kind (the etcd key segment). */
export const PLURALS: Readonly<Record<Exclude<Kind, 'BlockAffinity' | 'IPAMBlock'>, string>> = {
  BGPConfiguration: 'bgpconfigurations',
  Node: 'nodes',
  BGPPeer: 'bgppeers',
  IPPool: 'ippools',
  BGPFilter: 'bgpfilters',
  WorkloadEndpoint: 'workloadendpoints',
  ClusterInformation: 'clusterinformations',
  BFDConfiguration: 'bfdconfigurations',
  // libcalico-go/lib/backend/model/resource.go registers both under these plurals
  LiveMigration: 'livemigrations',
  FelixConfiguration: 'felixconfigurations',
};
const BY_PLURAL = new Map(Object.entries(PLURALS).map(([k, p]) => [p, k as Kind]));

export type KeyInfo =
  | { kind: Exclude<Kind, 'BlockAffinity' | 'IPAMBlock'>; name: string; namespace?: string }
  | { kind: 'BlockAffinity'; node: string; cidr: string }
  | { kind: 'IPAMBlock'; cidr: string };

/**
 * What a key holds, or undefined for keys skein does not read (other kinds,
 * Felix status, IPAM handles...). Throws ValueError for a key in a watched
 * tree that is malformed (e.g. a bad CIDR).
 */
export function parseKey(key: string): KeyInfo | undefined {
  if (key.startsWith(RESOURCES_PREFIX)) {
    const parts = key.slice(RESOURCES_PREFIX.length).split('/');
    const kind = BY_PLURAL.get(parts[0] ?? '');
    if (kind === undefined || kind === 'BlockAffinity' || kind === 'IPAMBlock') return undefined;
    if (NAMESPACED.has(kind)) {
      if (parts.length !== 3 || !parts[1] || !parts[2]) throw new ValueError(`expected ${RESOURCES_PREFIX}${parts[0]}/<namespace>/<name>`);
      return { kind, namespace: parts[1], name: parts[2] };
    }
    if (parts.length !== 2 || !parts[1]) throw new ValueError(`expected ${RESOURCES_PREFIX}${parts[0]}/<name>`);
    return { kind, name: parts[1] };
  }
  if (key.startsWith(IPAM_PREFIX)) {
    const aff = /^\/calico\/ipam\/v2\/host\/([^/]+)\/ipv([46])\/block\/([^/]+)$/.exec(key);
    if (aff) {
      const cidr = keyPartToCidr(aff[3] as string);
      if (cidr.includes(':') !== (aff[2] === '6')) throw new ValueError(`block ${cidr} is under ipv${aff[2]}`);
      return { kind: 'BlockAffinity', node: aff[1] as string, cidr };
    }
    const blk = /^\/calico\/ipam\/v2\/assignment\/ipv([46])\/block\/([^/]+)$/.exec(key);
    if (blk) {
      const cidr = keyPartToCidr(blk[2] as string);
      if (cidr.includes(':') !== (blk[1] === '6')) throw new ValueError(`block ${cidr} is under ipv${blk[1]}`);
      return { kind: 'IPAMBlock', cidr };
    }
    return undefined;
  }
  return undefined;
}

/** The kind and identity (Model id) a key stands for. */
export function keyId(info: KeyInfo): { kind: Kind; id: string } {
  switch (info.kind) {
    case 'BlockAffinity': return { kind: info.kind, id: `${info.node}/${info.cidr}` };
    case 'IPAMBlock': return { kind: info.kind, id: info.cidr };
    default: return { kind: info.kind, id: info.namespace !== undefined ? `${info.namespace}/${info.name}` : info.name };
  }
}

/** Where Calico stores a resource in etcd. */
export function etcdKey(r: Resource): string {
  switch (r.kind) {
    case 'BlockAffinity':
      return `${IPAM_PREFIX}host/${r.spec.node}/ipv${r.spec.cidr.includes(':') ? 6 : 4}/block/${cidrToKeyPart(r.spec.cidr)}`;
    case 'IPAMBlock':
      return `${IPAM_PREFIX}assignment/ipv${r.spec.cidr.includes(':') ? 6 : 4}/block/${cidrToKeyPart(r.spec.cidr)}`;
    default: {
      const plural = PLURALS[r.kind];
      return r.metadata.namespace !== undefined
        ? `${RESOURCES_PREFIX}${plural}/${r.metadata.namespace}/${r.metadata.name}`
        : `${RESOURCES_PREFIX}${plural}/${r.metadata.name}`;
    }
  }
}

export interface Decoded {
  /** absent when the key itself is malformed */
  kind?: Kind;
  id?: string;
  resource?: Resource;
  issues: Issue[];
}

/**
 * Decode one etcd key/value pair as Calico wrote it. Returns undefined for keys
 * skein does not read. Problems come back as issues naming the key and field;
 * `resource` is absent when the value is unusable.
 */
export function decodeEtcd(key: string, value: string): Decoded | undefined {
  let info: KeyInfo | undefined;
  try {
    info = parseKey(key);
  } catch (e) {
    if (!(e instanceof ValueError)) throw e;
    return { issues: [{ source: key, field: '(key)', reason: e.message, severity: 'error' }] };
  }
  if (info === undefined) return undefined;
  const { kind, id } = keyId(info);
  let raw: unknown = null;
  if (value.trim() !== '') {
    try {
      raw = JSON.parse(value);
    } catch (e) {
      return { kind, id, issues: [{ source: key, field: '(value)', reason: `not valid JSON: ${(e as Error).message}`, severity: 'error', kind }] };
    }
  } else if (info.kind !== 'BlockAffinity') {
    return { kind, id, issues: [{ source: key, field: '(value)', reason: 'empty value', severity: 'error', kind }] };
  }
  let v: Validated;
  if (info.kind === 'BlockAffinity') v = validateBlockAffinityValue(info.node, info.cidr, raw);
  else if (info.kind === 'IPAMBlock') v = validateIPAMBlockValue(info.cidr, raw);
  else {
    v = validateResource(raw);
    const r = v.resource;
    if (r !== undefined) {
      // The key is the identity (what Calico's etcd backend lists and deletes by).
      if (r.kind !== info.kind) {
        v.checker.error(['kind'], `"${r.kind}" stored under the ${PLURALS[info.kind]} key`);
        delete v.resource;
      } else if (r.metadata.name !== info.name || (info.namespace !== undefined && r.metadata.namespace !== info.namespace)) {
        v.checker.warn(['metadata', 'name'], `does not match the key (${info.namespace !== undefined ? `${info.namespace}/` : ''}${info.name}); the key wins`);
        r.metadata.name = info.name;
        if (info.namespace !== undefined) r.metadata.namespace = info.namespace;
      }
    }
  }
  const extra: { kind?: string; name?: string } = { kind };
  const nm = v.name ?? (info.kind === 'BlockAffinity' ? ipamName(info.cidr, info.node) : info.kind === 'IPAMBlock' ? ipamName(info.cidr) : info.name);
  extra.name = nm;
  const out: Decoded = { kind, id, issues: issuesFrom(v.checker, key, undefined, [], extra) };
  if (v.resource !== undefined) out.resource = v.resource;
  return out;
}

/** The value Calico would store for a resource given as a v3 document (for tools and tests). */
export function etcdValueOf(doc: { kind: string; metadata: object; spec?: object }): string {
  return JSON.stringify({ kind: doc.kind, apiVersion: API_VERSION, metadata: doc.metadata, spec: doc.spec ?? {} });
}

/**
 * The node a WorkloadEndpoint's name says it lives on, or undefined when the name is not in Calico's form.
 * libcalico-go lib/names/workloadendpoint.go builds every endpoint name from four dash-joined segments,
 * <node>-<orchestrator>-<workload or pod or container>-<endpoint>, with each segment's own dashes doubled, and its
 * clients refuse a name that does not match the spec (lib/clientv3/workloadendpoint.go assignOrValidateName). So the
 * first single dash ends the node's name. Scans without allocating beyond the result.
 */
export function wepNodeOfName(name: string): string | undefined {
  let parts = 1;
  let firstEnd = -1;
  // a segment never begins or ends with a dash, so a separator is a lone dash (not part of a "--" pair)
  for (let i = 1; i < name.length; i++) {
    if (name.charCodeAt(i) !== 45 /* - */) continue;
    if (name.charCodeAt(i + 1) === 45) { i++; continue; }
    if (firstEnd < 0) firstEnd = i;
    parts++;
  }
  if (parts !== 4 || firstEnd <= 0) return undefined;
  return name.slice(0, firstEnd).replaceAll('--', '-');
}

const WEP_PREFIX = `${RESOURCES_PREFIX}${PLURALS.WorkloadEndpoint}/`;
const HOST_PREFIX = `${IPAM_PREFIX}host/`;
const ASSIGNMENT_PREFIX = `${IPAM_PREFIX}assignment/`;

/**
 * Whether a key can matter to node `node`, decided from the key alone, before its value is read: another node's
 * WorkloadEndpoint (its name carries the node, see wepNodeOfName) or block affinity does not, and no IPAM block does
 * (the node controller derives announcements and blackholes from this node's affinities; src/controller/index.ts
 * `concerns` — as Calico's BGP syncer, which watches only BlockAffinityListOptions{Host: node} and no blocks:
 * libcalico-go lib/backend/syncersv1/bgpsyncer/bgpsyncer.go). A WorkloadEndpoint whose name is not in Calico's form is
 * kept (its spec.node decides later). Every other key: yes. With `scope.workloadEndpoints` false no WorkloadEndpoint
 * key does, this node's own included (dsbase.ts DatastoreScope).
 */
export function keyConcernsNode(key: string, node: string, scope: DatastoreScope = {}): boolean {
  if (key.startsWith(WEP_PREFIX)) {
    if (scope.workloadEndpoints === false) return false;
    const name = key.slice(key.lastIndexOf('/') + 1);
    const owner = wepNodeOfName(name);
    return owner === undefined || owner === node;
  }
  if (key.startsWith(HOST_PREFIX)) return key.startsWith(`${HOST_PREFIX}${node}/`);
  if (key.startsWith(ASSIGNMENT_PREFIX)) return false;
  return true;
}

const WEP_PREFIX_BYTES = Buffer.from(WEP_PREFIX);
const HOST_PREFIX_BYTES = Buffer.from(HOST_PREFIX);
const ASSIGNMENT_PREFIX_BYTES = Buffer.from(ASSIGNMENT_PREFIX);
const startsWith = (key: Uint8Array, prefix: Uint8Array): boolean => key.length >= prefix.length && Buffer.compare(key.subarray(0, prefix.length), prefix) === 0;

/**
 * keyConcernsNode for a key as etcd sends it (bytes), made once per node: the same answer for every key (the test
 * compares the two on generated keys), without turning the key into a string, so another node's event costs no
 * allocation before it is dropped. Byte for byte is the same as character for character here: the rule looks only at
 * '-' and '/', which UTF-8 never uses inside a multi-byte character, and a node name (RFC 1123, libcalico-go
 * lib/names) is ASCII, so a key whose bytes are not UTF-8 never names it either way.
 */
export function nodeKeyFilter(node: string, scope: DatastoreScope = {}): (key: Uint8Array) => boolean {
  // the first segment of an endpoint name in Calico's form is the node's name with each '-' doubled
  // (libcalico-go lib/names/workloadendpoint.go escapeDashes)
  const ownSegment = Buffer.from(node.replaceAll('-', '--'));
  const ownHost = Buffer.from(`${HOST_PREFIX}${node}/`);
  const weps = scope.workloadEndpoints !== false;
  return (key) => {
    if (startsWith(key, WEP_PREFIX_BYTES)) {
      if (!weps) return false;
      const start = key.lastIndexOf(47 /* / */) + 1;
      // wepNodeOfName over the bytes: the lone dashes cut the name into segments; four, the first non-empty
      let parts = 1;
      let firstEnd = -1;
      for (let i = start + 1; i < key.length; i++) {
        if (key[i] !== 45 /* - */) continue;
        if (key[i + 1] === 45) { i++; continue; }
        if (firstEnd < 0) firstEnd = i;
        parts++;
      }
      if (parts !== 4 || firstEnd <= start) return true; // not Calico's form: read, spec.node decides
      return firstEnd - start === ownSegment.length && Buffer.compare(key.subarray(start, firstEnd), ownSegment) === 0;
    }
    if (startsWith(key, HOST_PREFIX_BYTES)) return startsWith(key, ownHost);
    return !startsWith(key, ASSIGNMENT_PREFIX_BYTES);
  };
}

/**
 * The key filter a reader needs, or undefined when it reads every key: nodeKeyFilter for one node; without a node,
 * only the WorkloadEndpoints go, and only when `scope` leaves them out.
 */
export function keyFilter(node: string | undefined, scope: DatastoreScope = {}): ((key: Uint8Array) => boolean) | undefined {
  if (node !== undefined) return nodeKeyFilter(node, scope);
  if (scope.workloadEndpoints !== false) return undefined;
  return (key) => !startsWith(key, WEP_PREFIX_BYTES);
}
