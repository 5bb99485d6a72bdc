// Messages as the JSON of `skeinctl decode --json` (docs/contract.md: fields may be
// added, never renamed or removed) and as readable text. Display only: nothing
// here is read back, so names and numbers are chosen for people and scripts.
import { ORIGIN_NAMES, SEGMENT_TYPE_NAMES, familyName } from './constants.js';
import type { BgpError, ErrorAction } from './errors.js';
import { errorCodeName, errorSubcodeName, hardResetCause } from './notification.js';
import { openAsn } from './open.js';
import { ipv4ToString, prefix4ToString } from './prefix.js';
import { isEndOfRib } from './update.js';
import type { Capability, Message, PathAttributes, PrefixList, UpdateMessage } from './types.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

export interface JsonError {
  code: number;
  subcode: number;
  action: ErrorAction;
  reason: string;
}

const ip4 = (n: number): string => ipv4ToString(n >>> 0);

/** Prefixes of a list as "10.0.0.0/24" / "fd00::/64" text. */
export function prefixStrings(list: PrefixList): string[] {
  return list.afi === 1 ? list.prefixes.map(prefix4ToString) : [...list.prefixes];
}

function capabilityJson(c: Capability): Obj {
  const base: Obj = { code: c.code, name: c.name };
  switch (c.name) {
    case 'multiprotocol':
      return { ...base, afi: c.afi, safi: c.safi, family: familyName(c.afi, c.safi) };
    case 'extended-next-hop':
      return { ...base, entries: c.entries.map((e) => ({ afi: e.afi, safi: e.safi, nextHopAfi: e.nextHopAfi })) };
    case 'bgp-role':
      return { ...base, role: c.role, roleName: ROLE_NAMES[c.role] ?? `role ${c.role}` };
    case 'graceful-restart':
      return {
        ...base,
        restarting: c.restarting,
        notification: c.notification,
        restartTime: c.restartTime,
        families: c.families.map((f) => ({ afi: f.afi, safi: f.safi, forwardingState: f.forwardingState })),
      };
    case '4-octet-as':
      return { ...base, asn: c.asn };
    case 'add-path':
      return {
        ...base,
        families: c.families.map((f) => ({ afi: f.afi, safi: f.safi, sendReceive: SEND_RECEIVE[f.sendReceive] ?? f.sendReceive })),
      };
    case 'long-lived-graceful-restart':
      return {
        ...base,
        families: c.families.map((f) => ({ afi: f.afi, safi: f.safi, forwardingState: f.forwardingState, staleTime: f.staleTime })),
      };
    case 'fqdn':
      return { ...base, hostname: c.hostname, domainName: c.domainName };
    case 'unknown':
      return { ...base, value: c.value.toString('hex') };
    default:
      return base;
  }
}

/** RFC 9234 §4.1 role values. */
const ROLE_NAMES: Readonly<Record<number, string>> = { 0: 'provider', 1: 'rs', 2: 'rs-client', 3: 'customer', 4: 'peer' };
const SEND_RECEIVE: Readonly<Record<number, string>> = { 1: 'receive', 2: 'send', 3: 'both' };

/**
 * RFC 4360 §3-§5 and RFC 5668 §2: route target (subtype 2) and route origin
 * (subtype 3) of the two-octet AS, IPv4 and four-octet AS types as
 * "rt:65000:1" / "soo:192.0.2.1:7"; anything else as 16 hex digits.
 */
export function extendedCommunityText(b: Buffer): string {
  if (b.length !== 8) return b.toString('hex');
  const type = b[0] as number;
  const sub = b[1] as number;
  const kind = sub === 2 ? 'rt' : sub === 3 ? 'soo' : undefined;
  if (kind !== undefined) {
    if (type === 0x00) return `${kind}:${b.readUInt16BE(2)}:${b.readUInt32BE(4)}`;
    if (type === 0x01) return `${kind}:${ip4(b.readUInt32BE(2))}:${b.readUInt16BE(6)}`;
    if (type === 0x02) return `${kind}:${b.readUInt32BE(2)}:${b.readUInt16BE(6)}`;
  }
  return b.toString('hex');
}

export function communityText(c: number): string {
  return `${Math.floor(c / 65536)}:${c % 65536}`;
}

function attributesJson(a: PathAttributes): Obj {
  const o: Obj = {};
  if (a.origin !== undefined) o.origin = ORIGIN_NAMES[a.origin];
  if (a.asPath !== undefined) o.asPath = a.asPath.map((s) => ({ type: SEGMENT_TYPE_NAMES[s.type] ?? String(s.type), asns: [...s.asns] }));
  if (a.nextHop !== undefined) o.nextHop = a.nextHop;
  if (a.med !== undefined) o.med = a.med;
  if (a.localPref !== undefined) o.localPref = a.localPref;
  if (a.atomicAggregate) o.atomicAggregate = true;
  if (a.aggregator !== undefined) o.aggregator = { asn: a.aggregator.asn, address: a.aggregator.address };
  if (a.communities !== undefined) o.communities = a.communities.map(communityText);
  if (a.largeCommunities !== undefined) o.largeCommunities = a.largeCommunities.map((l) => l.join(':'));
  if (a.extendedCommunities !== undefined) o.extendedCommunities = a.extendedCommunities.map(extendedCommunityText);
  if (a.originatorId !== undefined) o.originatorId = ip4(a.originatorId);
  if (a.clusterList !== undefined) o.clusterList = a.clusterList.map(ip4);
  if (a.unknown !== undefined && a.unknown.length) {
    o.unknown = a.unknown.map((u) => ({ flags: u.flags, type: u.type, value: u.value.toString('hex') }));
  }
  return o;
}

function updateJson(u: UpdateMessage): Obj {
  const o: Obj = {
    withdrawn: prefixStrings(u.withdrawn),
    nlri: prefixStrings(u.nlri),
  };
  if (u.withdrawn.pathIds) o.withdrawnPathIds = [...u.withdrawn.pathIds];
  if (u.nlri.pathIds) o.nlriPathIds = [...u.nlri.pathIds];
  const attributes = attributesJson(u.attributes);
  if (u.mpReach) {
    const r: Obj = { afi: u.mpReach.afi, safi: u.mpReach.safi, nextHops: [...u.mpReach.nextHops], nlri: prefixStrings(u.mpReach.nlri) };
    if (u.mpReach.nlri.pathIds) r.pathIds = [...u.mpReach.nlri.pathIds];
    attributes.mpReach = r;
  }
  if (u.mpUnreach) {
    const r: Obj = { afi: u.mpUnreach.afi, safi: u.mpUnreach.safi, withdrawn: prefixStrings(u.mpUnreach.withdrawn) };
    if (u.mpUnreach.withdrawn.pathIds) r.pathIds = [...u.mpUnreach.withdrawn.pathIds];
    attributes.mpUnreach = r;
  }
  o.attributes = attributes;
  // RFC 4724 §2 End-of-RIB marker
  const eor = isEndOfRib(u);
  if (eor) o.endOfRib = eor;
  if (u.errorAction !== undefined && u.errors?.length) {
    // RFC 7606: decoded, but malformed; the strongest action and every reason.
    // report the error that decided the action (RFC 7606 §3.h: the strongest wins)
    const first = u.errors.find((e) => e.action === u.errorAction) ?? (u.errors[0] as BgpError);
    o.error = { code: first.code, subcode: first.subcode, action: u.errorAction, reason: u.errors.map((e) => e.reason).join('; ') };
    o.errors = u.errors.map((e) => ({ code: e.code, subcode: e.subcode, action: e.action, reason: e.reason, data: e.data.toString('hex') }));
  }
  return o;
}

/** The JSON of one decoded message; `length` is its length in octets, header included. */
export function messageToJson(msg: Message, length: number): Obj {
  const head: Obj = { type: msg.type, length };
  switch (msg.type) {
    case 'OPEN': {
      const o: Obj = {
        ...head,
        version: msg.version,
        asn: openAsn(msg),
        myAs: msg.myAs,
        holdTime: msg.holdTime,
        bgpId: ip4(msg.bgpId),
        capabilities: msg.capabilities.map(capabilityJson),
      };
      if (msg.otherParameters?.length) o.otherParameters = msg.otherParameters.map((p) => ({ type: p.type, value: p.value.toString('hex') }));
      return o;
    }
    case 'UPDATE':
      return { ...head, ...updateJson(msg) };
    case 'NOTIFICATION': {
      const o: Obj = {
        ...head,
        code: msg.code,
        subcode: msg.subcode,
        codeName: errorCodeName(msg.code),
        subcodeName: errorSubcodeName(msg.code, msg.subcode),
        data: msg.data.toString('hex'),
      };
      if (msg.message !== undefined) o.message = msg.message;
      const inner = hardResetCause(msg);
      if (inner) {
        // RFC 8538 §3: the error the Hard Reset stands for.
        o.hardReset = {
          code: inner.code,
          subcode: inner.subcode,
          codeName: errorCodeName(inner.code),
          subcodeName: errorSubcodeName(inner.code, inner.subcode),
          data: inner.data.toString('hex'),
        };
      }
      return o;
    }
    case 'KEEPALIVE':
      return head;
    case 'ROUTE-REFRESH':
      return {
        ...head,
        afi: msg.afi,
        safi: msg.safi,
        subtype: msg.subtype,
        subtypeName: REFRESH_SUBTYPES[msg.subtype] ?? `subtype ${msg.subtype}`,
      };
  }
}

/** RFC 7313 §3 subtype names. */
const REFRESH_SUBTYPES: Readonly<Record<number, string>> = { 0: 'request', 1: 'BoRR', 2: 'EoRR' };

/** The JSON for a message that failed to decode: what the header said, plus the error (docs/contract.md). */
export function errorToJson(err: BgpError, header: { type?: string; length?: number } = {}): Obj {
  const o: Obj = {};
  if (header.type !== undefined) o.type = header.type;
  if (header.length !== undefined) o.length = header.length;
  o.error = { code: err.code, subcode: err.subcode, action: err.action, reason: err.reason };
  o.notification = {
    code: err.code,
    subcode: err.subcode,
    codeName: errorCodeName(err.code),
    subcodeName: errorSubcodeName(err.code, err.subcode),
    data: err.data.toString('hex'),
  };
  return o;
}

// ------------------------------------------------------------------ text

function textLines(v: Json, indent: string, out: string[]): void {
  if (v === null || typeof v !== 'object') return;
  if (Array.isArray(v)) return;
  for (const [k, x] of Object.entries(v)) {
    if (x !== null && typeof x === 'object' && !Array.isArray(x) && Object.keys(x).length === 0) {
      out.push(`${indent}${k}: (none)`);
    } else if (x !== null && typeof x === 'object' && !Array.isArray(x)) {
      out.push(`${indent}${k}:`);
      textLines(x, `${indent}  `, out);
    } else if (Array.isArray(x) && x.some((e) => e !== null && typeof e === 'object')) {
      out.push(`${indent}${k}:`);
      for (const e of x) {
        if (e !== null && typeof e === 'object' && !Array.isArray(e)) out.push(`${indent}  - ${inline(e)}`);
        else out.push(`${indent}  - ${String(e)}`);
      }
    } else if (Array.isArray(x)) {
      out.push(`${indent}${k}: ${x.length ? x.map(String).join(' ') : '(none)'}`);
    } else out.push(`${indent}${k}: ${String(x)}`);
  }
}

function inline(o: Obj): string {
  return Object.entries(o)
    .map(([k, v]) => {
      if (Array.isArray(v)) return `${k}=[${v.map((e) => (e !== null && typeof e === 'object' ? inline(e as Obj) : String(e))).join(', ')}]`;
      if (v !== null && typeof v === 'object') return `${k}={${inline(v)}}`;
      return `${k}=${String(v)}`;
    })
    .join(' ');
}

/** A readable rendering of the JSON form: one field per line, lists of records one per line. */
export function jsonToText(o: Obj): string {
  const out: string[] = [];
  const { type, length, ...rest } = o;
  out.push(`${type === undefined ? 'message' : String(type)}${length === undefined ? '' : ` (${String(length)} octets)`}`);
  textLines(rest, '  ', out);
  return out.join('\n');
}
