// Calico's BGPFilter resource, typed and validated (api/pkg/apis/projectcalico/v3 bgpfilter.go): import and export
// rules per family, as confd renders them into BIRD filters. config/resources.ts holds the kinds and the dispatch.
import { int, oneOf, set, str, type Checker, type Obj, type Path } from './check.js';
import { ValueError, cidrFamily, parseASNumber as asn, parseCIDR, parseCommunity } from './values.js';

export type FilterOperation =
  | { addCommunity: { value: string } }
  | { prependASPath: { prefix: number[] } }
  | { setPriority: { value: number } };

export interface BGPFilterRule {
  action: 'Accept' | 'Reject';
  cidr?: string;
  matchOperator?: 'Equal' | 'NotEqual' | 'In' | 'NotIn';
  prefixLength?: { min?: number; max?: number };
  source?: 'RemotePeers';
  interface?: string;
  peerType?: 'eBGP' | 'iBGP';
  communities?: { values: string[] };
  asPathPrefix?: number[];
  priority?: number;
  operations: FilterOperation[];
}

export interface BGPFilterSpec {
  exportV4: BGPFilterRule[];
  importV4: BGPFilterRule[];
  exportV6: BGPFilterRule[];
  importV6: BGPFilterRule[];
}

function filterRule(c: Checker, v: unknown, path: Path, family: 4 | 6, exportRule: boolean): BGPFilterRule | undefined {
  const x = c.object(v, path, [
    'action', 'cidr', 'matchOperator', 'prefixLength', 'source', 'interface', 'peerType', 'communities',
    'asPathPrefix', 'priority', 'operations',
  ]);
  const action = c.req(x, 'action', path, oneOf(['Accept', 'Reject'] as const));
  const rule: BGPFilterRule = { action: action ?? 'Reject', operations: [] };
  set(rule, 'cidr', c.opt(x, 'cidr', path, (y) => {
    const cidr = parseCIDR(y);
    if (cidrFamily(cidr) !== family) throw new ValueError(`"${cidr}" is not an IPv${family} CIDR (this is a V${family} rule list)`);
    return cidr;
  }));
  set(rule, 'matchOperator', c.opt(x, 'matchOperator', path, oneOf(['Equal', 'NotEqual', 'In', 'NotIn'] as const)));
  if ((x.cidr === undefined) !== (x.matchOperator === undefined)) c.error([...path, x.cidr === undefined ? 'cidr' : 'matchOperator'], 'cidr and matchOperator must be set together');
  if (x.prefixLength !== undefined && x.prefixLength !== null) {
    const pp = [...path, 'prefixLength'];
    const pl = c.object(x.prefixLength, pp, ['min', 'max']);
    const max = family === 4 ? 32 : 128;
    const r: NonNullable<BGPFilterRule['prefixLength']> = {};
    set(r, 'min', c.opt(pl, 'min', pp, int(0, max)));
    set(r, 'max', c.opt(pl, 'max', pp, int(0, max)));
    if (r.min !== undefined && r.max !== undefined && r.min > r.max) c.error([...pp, 'min'], `min ${r.min} is larger than max ${r.max}`);
    if (rule.cidr === undefined) c.error(pp, 'requires cidr');
    rule.prefixLength = r;
  }
  set(rule, 'source', c.opt(x, 'source', path, oneOf(['RemotePeers'] as const)));
  if (rule.source !== undefined && !exportRule) c.error([...path, 'source'], 'is only valid in export rules');
  set(rule, 'interface', c.opt(x, 'interface', path, (y) => {
    const t = str(y);
    if (t.length > 15) throw new ValueError(`interface pattern "${t}" is longer than 15 characters (IFNAMSIZ)`);
    return t;
  }));
  set(rule, 'peerType', c.opt(x, 'peerType', path, oneOf(['eBGP', 'iBGP'] as const)));
  if (x.communities !== undefined && x.communities !== null) {
    const cp = [...path, 'communities'];
    const co = c.object(x.communities, cp, ['values']);
    const values = c.list(co, 'values', cp, (y, p) => c.value(y, p, parseCommunity));
    if (values.length !== 1) c.error([...cp, 'values'], `must hold exactly one community, got ${values.length}`);
    rule.communities = { values };
  }
  if (x.asPathPrefix !== undefined && x.asPathPrefix !== null) {
    rule.asPathPrefix = c.list(x, 'asPathPrefix', path, (y, p) => c.value(y, p, asn));
  }
  set(rule, 'priority', c.opt(x, 'priority', path, int(0, 2147483646)));
  rule.operations = c.list(x, 'operations', path, (y, p): FilterOperation | undefined => {
    const o = c.object(y, p, ['addCommunity', 'prependASPath', 'setPriority']);
    const keys = Object.keys(o).filter((k) => ['addCommunity', 'prependASPath', 'setPriority'].includes(k));
    if (keys.length !== 1) { c.error(p, 'each operation sets exactly one of addCommunity, prependASPath, setPriority'); return undefined; }
    if (o.addCommunity !== undefined) {
      const ap = [...p, 'addCommunity'];
      const value = c.req(c.object(o.addCommunity, ap, ['value']), 'value', ap, parseCommunity);
      return value === undefined ? undefined : { addCommunity: { value } };
    }
    if (o.prependASPath !== undefined) {
      const pp = [...p, 'prependASPath'];
      const prefix = c.list(c.object(o.prependASPath, pp, ['prefix']), 'prefix', pp, (z, zp) => c.value(z, zp, asn));
      if (prefix.length === 0) c.error([...pp, 'prefix'], 'must list at least one AS number');
      return { prependASPath: { prefix } };
    }
    const sp = [...p, 'setPriority'];
    const value = c.req(c.object(o.setPriority, sp, ['value']), 'value', sp, int(1, 2147483646));
    return value === undefined ? undefined : { setPriority: { value } };
  });
  if (rule.operations.length > 10) c.error([...path, 'operations'], `at most 10 operations, got ${rule.operations.length}`);
  if (rule.operations.length > 0 && rule.action !== 'Accept') c.error([...path, 'operations'], 'operations are only allowed with action Accept');
  return action === undefined ? undefined : rule;
}

export function bgpFilterSpec(c: Checker, s: Obj, path: Path): BGPFilterSpec {
  c.object(s, path, ['exportV4', 'importV4', 'exportV6', 'importV6']);
  return {
    exportV4: c.list(s, 'exportV4', path, (v, p) => filterRule(c, v, p, 4, true)),
    importV4: c.list(s, 'importV4', path, (v, p) => filterRule(c, v, p, 4, false)),
    exportV6: c.list(s, 'exportV6', path, (v, p) => filterRule(c, v, p, 6, true)),
    importV6: c.list(s, 'importV6', path, (v, p) => filterRule(c, v, p, 6, false)),
  };
}
