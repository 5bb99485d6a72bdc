// Calico's address management resources, typed and validated: IPPool, BlockAffinity and IPAMBlock (api/pkg/apis/
// projectcalico/v3 ippool.go, libcalico-go/lib/backend/model block.go and block_affinity.go), in the shapes both the
// CRD/file form and the etcd model give. config/resources.ts holds the kinds and the dispatch to these readers.
import { bool, int, oneOf, selector, set, str, stringMap, type Checker, type Obj, type Path } from './check.js';
import { compileSelector, type Selector } from './selector.js';
import { ValueError, cidrFamily, parseCIDR, describe } from './values.js';

export type EncapMode = 'Never' | 'Always' | 'CrossSubnet';

export interface IPPoolSpec {
  cidr: string;
  blockSize: number;
  ipipMode: EncapMode;
  vxlanMode: EncapMode;
  natOutgoing: boolean;
  disabled: boolean;
  disableBGPExport: boolean;
  nodeSelector: Selector;
  allowedUses: ('Workload' | 'Tunnel' | 'LoadBalancer')[];
  assignmentMode?: 'Automatic' | 'Manual';
}

export type AffinityState = 'confirmed' | 'pending' | 'pendingDeletion';

export interface BlockAffinitySpec {
  node: string;
  cidr: string;
  /** an empty etcd value (very old data) reads as confirmed */
  state: AffinityState;
  deleted: boolean;
}

export interface AllocationAttribute {
  handleId?: string;
  secondary: Record<string, string>;
}

export interface IPAMBlockSpec {
  cidr: string;
  /** "host:<node>" or null */
  affinity: string | null;
  /** one slot per address of the block: null = free, else an index into attributes */
  allocations: (number | null)[];
  unallocated: number[];
  attributes: AllocationAttribute[];
  sequenceNumber: number;
  deleted: boolean;
}

export function ipPoolSpec(c: Checker, s: Obj, path: Path): IPPoolSpec {
  c.object(s, path, [
    'cidr', 'blockSize', 'ipipMode', 'vxlanMode', 'natOutgoing', 'disabled', 'disableBGPExport', 'nodeSelector',
    'namespaceSelector', 'allowedUses', 'assignmentMode', 'ipip', 'nat-outgoing', 'awsSubnetID',
  ]);
  const cidr = c.req(s, 'cidr', path, parseCIDR) ?? '0.0.0.0/0';
  const fam = cidrFamily(cidr);
  const mode = oneOf(['Never', 'Always', 'CrossSubnet'] as const);
  const out: IPPoolSpec = {
    cidr,
    blockSize: c.opt(s, 'blockSize', path, fam === 4 ? int(20, 32) : int(116, 128)) ?? (fam === 4 ? 26 : 122),
    ipipMode: c.opt(s, 'ipipMode', path, mode) ?? 'Never',
    vxlanMode: c.opt(s, 'vxlanMode', path, mode) ?? 'Never',
    natOutgoing: c.opt(s, 'natOutgoing', path, bool) ?? false,
    disabled: c.opt(s, 'disabled', path, bool) ?? false,
    disableBGPExport: c.opt(s, 'disableBGPExport', path, bool) ?? false,
    nodeSelector: (s.nodeSelector === '' ? undefined : c.opt(s, 'nodeSelector', path, selector)) ?? compileSelector('all()'),
    allowedUses: c.list(s, 'allowedUses', path, (v, p) => c.value(v, p, oneOf(['Workload', 'Tunnel', 'LoadBalancer'] as const))),
  };
  if (out.allowedUses.length === 0) out.allowedUses = ['Workload', 'Tunnel'];
  set(out, 'assignmentMode', c.opt(s, 'assignmentMode', path, oneOf(['Automatic', 'Manual'] as const)));
  const prefixLen = Number(cidr.split('/')[1]);
  if (prefixLen > out.blockSize) c.error([...path, 'blockSize'], `must not be smaller than the pool (pool is /${prefixLen}, blockSize ${out.blockSize})`);
  if (fam === 6 && out.ipipMode !== 'Never') c.error([...path, 'ipipMode'], 'IPIP is IPv4 only; an IPv6 pool must use Never');
  if (out.ipipMode !== 'Never' && out.vxlanMode !== 'Never') c.error([...path, 'vxlanMode'], 'cannot be enabled together with ipipMode');
  return out;
}

export const affinityState = (v: unknown): AffinityState => oneOf(['confirmed', 'pending', 'pendingDeletion'] as const)(v);

/** BlockAffinity.spec.deleted is a string ("true"/"false") in the CRD, a bool in the etcd model. */
export const deletedFlag = (v: unknown): boolean => {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  if (v === '') return false;
  throw new ValueError(`expected true or false, got ${describe(v)}`);
};

export function blockAffinitySpec(c: Checker, s: Obj, path: Path): BlockAffinitySpec {
  c.object(s, path, ['state', 'node', 'cidr', 'deleted', 'type']);
  const type = c.opt(s, 'type', path, str);
  if (type !== undefined && type !== '' && type !== 'host') c.warn([...path, 'type'], `affinity type "${type}" is not a host affinity; skein only uses host affinities`);
  return {
    node: c.req(s, 'node', path, str) ?? '',
    cidr: c.req(s, 'cidr', path, parseCIDR) ?? '',
    state: (s.state === '' ? undefined : c.opt(s, 'state', path, affinityState)) ?? 'confirmed',
    deleted: c.opt(s, 'deleted', path, deletedFlag) ?? false,
  };
}

/** The block value as libcalico-go's AllocationBlock (etcd) or IPAMBlock.spec (CRD/file) holds it. */
export function ipamBlockSpec(c: Checker, s: Obj, path: Path): IPAMBlockSpec {
  c.object(s, path, [
    // affinityClaimTime in the CRD, affinity_claim_time in etcd (libcalico-go/lib/backend/model/block.go): when the
    // affinity was claimed, which skein does not need.
    'cidr', 'affinity', 'affinityClaimTime', 'affinity_claim_time', 'allocations', 'unallocated', 'attributes', 'sequenceNumber',
    'sequenceNumberForAllocation', 'deleted', 'strictAffinity', 'hostAffinity',
  ]);
  const cidr = c.req(s, 'cidr', path, parseCIDR) ?? '0.0.0.0/32';
  const hostBits = (cidrFamily(cidr) === 4 ? 32 : 128) - Number(cidr.split('/')[1]);
  const size = hostBits > 16 ? Infinity : 2 ** hostBits;
  let affinity: string | null = c.opt(s, 'affinity', path, (v) => {
    const t = str(v);
    if (!t.startsWith('host:') && !t.startsWith('virtual:')) throw new ValueError(`expected "host:<node>", got "${t}"`);
    return t;
  }) ?? null;
  if (affinity === null && typeof s.hostAffinity === 'string' && s.hostAffinity !== '') affinity = `host:${s.hostAffinity}`;
  const attributes = c.list(s, 'attributes', path, (v, p) => {
    // releasedAt: the allocation is in its cool-down after release (libcalico-go/lib/backend/model/block.go
    // AllocationAttribute); alternateOwnerAttrs: the other pod of a live migration.
    const x = c.object(v, p, ['handle_id', 'secondary', 'alternateOwnerAttrs', 'releasedAt']);
    const a: AllocationAttribute = { secondary: c.opt(x, 'secondary', p, stringMap) ?? {} };
    set(a, 'handleId', c.opt(x, 'handle_id', p, str));
    return a;
  });
  const allocations = c.list(s, 'allocations', path, (v, p): (number | null)[] | undefined => {
    if (v === null) return [null];
    const n = c.value(v, p, int(0, 2 ** 31));
    if (n !== undefined && n >= attributes.length) c.error(p, `refers to attribute ${n}, but the block has ${attributes.length}`);
    return n === undefined ? undefined : [n];
  }).flat();
  if (allocations.length > size) c.error([...path, 'allocations'], `has ${allocations.length} slots, more than the ${size} addresses of ${cidr}`);
  const unallocated = c.list(s, 'unallocated', path, (v, p) => c.value(v, p, int(0, Number.isFinite(size) ? size - 1 : 2 ** 31)));
  return {
    cidr,
    affinity,
    allocations,
    unallocated,
    attributes,
    sequenceNumber: c.opt(s, 'sequenceNumber', path, int(0, Number.MAX_SAFE_INTEGER)) ?? 0,
    deleted: c.opt(s, 'deleted', path, bool) ?? false,
  };
}

/** The addresses in use in a block, with their attributes (handle, pod/namespace/node...). */
export function blockAllocations(block: IPAMBlockSpec): { ordinal: number; attribute?: AllocationAttribute }[] {
  const out: { ordinal: number; attribute?: AllocationAttribute }[] = [];
  block.allocations.forEach((a, ordinal) => {
    if (a === null) return;
    const attribute = block.attributes[a];
    out.push(attribute === undefined ? { ordinal } : { ordinal, attribute });
  });
  return out;
}
