// Calico Enterprise's BFDConfiguration resource (projectcalico.org/v3), typed.
// There is no public source for its Go type; the field names, units and
// defaults here come from Tigera's public reference page "BFD configuration"
// (docs.tigera.io, calico-enterprise/3.21/reference/resources/bfdconfig):
//   spec.nodeSelector            selector of the nodes this resource applies to
//   spec.interfaces[]            BFDInterface, in order
//     matchPattern               exact name, a prefix ending in "*" ("eth*"), or "*"
//     minimumRecvInterval        duration, whole ms > 0, default 10ms
//     minimumSendInterval        duration, whole ms > 0, default 100ms
//     idleSendInterval           duration, whole ms > 0, default 1m
//     multiplier                 integer, default 5 (the page's schema column says "string";
//                                its sample YAML writes a number: both are accepted)
// These defaults are BIRD's `protocol bfd` options (min rx interval, min tx
// interval, idle tx interval, multiplier), which Calico Enterprise renders.
// What we assumed where the page is silent: an absent nodeSelector selects
// every node (as BGPPeer's does); when several resources select a node, the
// first by name wins, and inside it the first matching interface entry.
import { int, isObj, str, type Checker, type Obj, type Path } from './check.js';
import { compileSelector, matches, type Labels, type Selector } from './selector.js';
import { ValueError, describe, parseDuration } from './values.js';

export interface BFDInterface {
  matchPattern: string;
  /** Required Min RX, ms */
  minimumRecvIntervalMs: number;
  /** Desired Min TX while Up, ms */
  minimumSendIntervalMs: number;
  /** Desired Min TX while not Up, ms (raised to 1 s by RFC 5880 §6.8.3) */
  idleSendIntervalMs: number;
  /** Detect Mult */
  multiplier: number;
}

export interface BFDConfigurationSpec {
  nodeSelector?: Selector;
  interfaces: BFDInterface[];
}

export const BFD_DEFAULTS = {
  minimumRecvIntervalMs: 10,
  minimumSendIntervalMs: 100,
  idleSendIntervalMs: 60_000,
  multiplier: 5,
} as const;

/** "Must be a whole number of milliseconds greater than 0", and within BFD's 32-bit microsecond fields. */
function wholeMs(v: unknown): number {
  const ms = parseDuration(v);
  if (!Number.isInteger(ms) || ms <= 0) throw new ValueError(`${describe(v)} must be a whole number of milliseconds greater than 0`);
  if (ms * 1000 > 0xffffffff) throw new ValueError(`${describe(v)} is longer than BFD can carry (about 71 minutes)`);
  return ms;
}

function multiplier(v: unknown): number {
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : v;
  return int(1, 255)(n);
}

function matchPattern(v: unknown): string {
  const s = str(v);
  if (s === '') throw new ValueError('must not be empty');
  if (s.indexOf('*') !== -1 && s.indexOf('*') !== s.length - 1) {
    throw new ValueError(`"${s}": only a trailing "*" is supported (an exact name, a prefix such as "eth*", or "*")`);
  }
  return s;
}

function bfdInterface(c: Checker, v: unknown, path: Path): BFDInterface | undefined {
  if (!isObj(v)) {
    c.error(path, `expected a mapping, got ${describe(v)}`);
    return undefined;
  }
  c.object(v, path, ['matchPattern', 'minimumRecvInterval', 'minimumSendInterval', 'idleSendInterval', 'multiplier']);
  // Every field is read before giving up, so one pass reports every problem.
  const pattern = c.req(v, 'matchPattern', path, matchPattern);
  const out = {
    minimumRecvIntervalMs: c.opt(v, 'minimumRecvInterval', path, wholeMs) ?? BFD_DEFAULTS.minimumRecvIntervalMs,
    minimumSendIntervalMs: c.opt(v, 'minimumSendInterval', path, wholeMs) ?? BFD_DEFAULTS.minimumSendIntervalMs,
    idleSendIntervalMs: c.opt(v, 'idleSendInterval', path, wholeMs) ?? BFD_DEFAULTS.idleSendIntervalMs,
    multiplier: c.opt(v, 'multiplier', path, multiplier) ?? BFD_DEFAULTS.multiplier,
  };
  return pattern === undefined ? undefined : { matchPattern: pattern, ...out };
}

/** The spec reader resources.ts calls for kind BFDConfiguration. */
export function bfdConfigurationSpec(c: Checker, s: Obj, path: Path): BFDConfigurationSpec {
  c.object(s, path, ['nodeSelector', 'interfaces']);
  const out: BFDConfigurationSpec = { interfaces: c.list(s, 'interfaces', path, (v, p) => bfdInterface(c, v, p)) };
  const sel = s.nodeSelector;
  if (sel !== undefined && sel !== null && sel !== '') {
    const compiled = c.opt(s, 'nodeSelector', path, (v) => compileSelector(str(v)));
    if (compiled) out.nodeSelector = compiled;
  }
  return out;
}

/** matchPattern against an interface name: exact, "prefix*", or "*". */
export function interfaceMatches(pattern: string, ifname: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return ifname.startsWith(pattern.slice(0, -1));
  return pattern === ifname;
}

/**
 * The BFD settings for a BGP session reached over `ifname` on a node with
 * these labels, or undefined (no BFD). Resources are taken in name order.
 */
export function bfdSettingsFor(
  resources: readonly { readonly metadata: { readonly name: string }; readonly spec: BFDConfigurationSpec }[],
  nodeLabels: Labels,
  ifname: string,
): BFDInterface | undefined {
  const sorted = [...resources].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
  for (const r of sorted) {
    if (r.spec.nodeSelector && !matches(r.spec.nodeSelector, nodeLabels)) continue;
    const hit = r.spec.interfaces.find((i) => interfaceMatches(i.matchPattern, ifname));
    if (hit) return hit;
  }
  return undefined;
}
