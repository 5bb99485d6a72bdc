// UPDATE codec: hand-built hex vectors for every attribute and for whole
// UPDATEs (layouts retyped from RFC 4271 §4.3, RFC 4760 §3-4, RFC 1997, RFC 4360,
// RFC 4456, RFC 6793, RFC 7911, RFC 8092, RFC 8950), asserted both ways; the
// RFC 7606 outcomes with their NOTIFICATION code, subcode and data; RFC 6793
// AS path reconstruction; and fast-check properties (round trips, decoder
// totality, the packer splitting exactly at the limit), and tshark's BGP
// dissector agreeing field by field with what we encode.
import t from 'tap';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import { BgpError } from '../../bgp/wire/errors.js';
import { AS_TRANS, IPV4_UNICAST, IPV6_UNICAST } from '../../bgp/wire/constants.js';
import { DEFAULT_CONTEXT } from '../../bgp/wire/types.js';
import type { AsPathSegment, CodecContext, MpReach, MpUnreach, PathAttributes, PrefixList, UpdateMessage } from '../../bgp/wire/types.js';
import { ipv4ToString, ipv6ToString, parseIpv6, parsePrefix4, parsePrefix6, prefix4, prefix4Addr, prefix4Len, prefix6Addr, prefix6Len, prefix6FromBytes } from '../../bgp/wire/prefix.js';
import { decodeUpdate, encodeUpdate, endOfRib, isEndOfRib, packUpdates, packWithdrawals } from '../../bgp/wire/update.js';
import { countAsns, fromAs2, toAs2 } from '../../bgp/wire/as4.js';
import { prefixListSize } from '../../bgp/wire/nlri.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s|]+/g, ''), 'hex');
const h2 = (n: number): string => n.toString(16).padStart(4, '0');
const MARKER = 'ff'.repeat(16);

const C4: CodecContext = DEFAULT_CONTEXT; // 4-octet AS session
const C2: CodecContext = { ...DEFAULT_CONTEXT, as4: false }; // 2-octet AS session (RFC 6793 "OLD" peer)
const CAP: CodecContext = { ...DEFAULT_CONTEXT, addPathRx: new Set([IPV4_UNICAST, IPV6_UNICAST]), addPathTx: new Set([IPV4_UNICAST, IPV6_UNICAST]) };

const L4 = (...ps: string[]): PrefixList => ({ afi: 1, safi: 1, prefixes: ps.map(parsePrefix4), pathIds: null });
const L6 = (...ps: string[]): PrefixList => ({ afi: 2, safi: 1, prefixes: ps.map(parsePrefix6), pathIds: null });
const E4 = L4();

/** An UPDATE body (RFC 4271 §4.3): withdrawn length, withdrawn, attribute length, attributes, NLRI. */
function body(attrs: string, nlri = '', withdrawn = ''): string {
  const a = hex(attrs).toString('hex');
  const w = hex(withdrawn).toString('hex');
  return h2(w.length / 2) + w + h2(a.length / 2) + a + hex(nlri).toString('hex');
}
const whole = (b: string): string => MARKER + h2(19 + hex(b).length) + '02' + hex(b).toString('hex');

type Shape = Omit<UpdateMessage, 'type'>;
const upd = (s: Partial<Shape>): UpdateMessage => ({ type: 'UPDATE', withdrawn: E4, attributes: {}, nlri: E4, ...s });

/** Assert both directions: decode(body) is the shape, encode(shape) is the whole message. */
type Asserts = Pick<typeof t, 'strictSame' | 'equal'>;
function both(tt: Asserts, name: string, ctx: CodecContext, b: string, shape: UpdateMessage, encodedBody = b): void {
  tt.strictSame(decodeUpdate(hex(b), ctx), shape, `${name}: decode`);
  tt.equal(encodeUpdate(shape, ctx).toString('hex'), hex(whole(encodedBody)).toString('hex'), `${name}: encode`);
}

// a valid base: ORIGIN IGP, AS_PATH (4-octet) SEQ [65001], NEXT_HOP 192.0.2.1
const ORIGIN = '40 01 01 00';
const ASPATH4 = '40 02 06 | 02 01 0000fde9';
const NH = '40 03 04 c0000201';
const BASE = ORIGIN + ASPATH4 + NH;
const BASE_ATTRS: PathAttributes = { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '192.0.2.1' };
const NLRI = '18 0a0001'; // 10.0.1.0/24

t.test('prefix helpers', async (t) => {
  t.equal(parsePrefix4('10.1.2.3/24'), prefix4(0x0a010200, 24), 'host bits cleared');
  t.equal(ipv4ToString(0xc0000201), '192.0.2.1');
  t.equal(parsePrefix6('FD00:0001:0:0:0:0:0:5/64'), 'fd00:1::/64', 'RFC 5952 text, host bits cleared');
  t.equal(parsePrefix6('2001:db8:0:0:1:0:0:1/128'), '2001:db8::1:0:0:1/128', 'first longest zero run shortened');
  t.throws(() => parsePrefix4('10.0.0.0/33'));
  t.throws(() => parsePrefix4('010.0.0.0/8'), 'leading zero refused (octal ambiguity)');
  t.throws(() => parsePrefix6('fd00::1::/64'));
  // strict IPv6 text (RFC 4291 §2.2), on both the allocation-free path and the dotted-quad one
  const good = ['::', '::1', '1::', '2001:db8::1', 'fd00:1:2:3:4:5:6:7', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '::ffff:1.2.3.4', '64:ff9b::192.0.2.1', 'FE80::ABCD'];
  const bad = ['', ':', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8', 'g::', '12345::', ':1::', '1::2:', '1:2:3:4:5:6:7', '::1.2.3', '1.2.3.4', '::ffff:1.2.3.04'];
  for (const s of good) t.doesNotThrow(() => parseIpv6(s), `accepts ${s}`);
  for (const s of bad) t.throws(() => parseIpv6(s), `refuses ${JSON.stringify(s)}`);
  // RFC 5952 §4.2: a single zero group is not shortened; the longest run is
  t.equal(ipv6ToString(parseIpv6('1:2:3:4:5:6:7::')), '1:2:3:4:5:6:7:0');
  t.equal(ipv6ToString(parseIpv6('2001:db8:0:0:1:0:0:0')), '2001:db8:0:0:1::');
  t.equal(ipv6ToString(parseIpv6('64:ff9b::c000:201')), '64:ff9b::c000:201', 'only ::ffff:0:0/96 gets the dotted form (§5)');
  t.equal(ipv6ToString(parseIpv6('::ffff:c000:201')), '::ffff:192.0.2.1');
});

t.test('NLRI field vectors (RFC 4271 §4.3, RFC 7911 §3)', async (t) => {
  // 0.0.0.0/0 is just a zero length octet; /25 needs four octets; /23 two
  both(t, 'three IPv4 prefixes', C4, body(BASE, '00 | 19 c0000280 | 17 0a0100'), upd({ attributes: BASE_ATTRS, nlri: L4('0.0.0.0/0', '192.0.2.128/25', '10.1.0.0/23') }));
  // trailing bits are irrelevant (RFC 4271 §4.3): 10.1.1.0/23 decodes to 10.1.0.0/23 and encodes as such
  t.strictSame(decodeUpdate(hex(body(BASE, '17 0a0101')), C4).nlri, L4('10.1.0.0/23'), 'host bits cleared on decode');
  // ADD-PATH: a 4-octet path identifier before each prefix
  both(
    t,
    'ADD-PATH IPv4',
    CAP,
    body(BASE, '00000001 18 0a0001 | 00000002 18 0a0001', '00000007 10 0a09'),
    upd({
      withdrawn: { afi: 1, safi: 1, prefixes: [parsePrefix4('10.9.0.0/16')], pathIds: [7] },
      attributes: BASE_ATTRS,
      nlri: { afi: 1, safi: 1, prefixes: [parsePrefix4('10.0.1.0/24'), parsePrefix4('10.0.1.0/24')], pathIds: [1, 2] },
    }),
  );
});

t.test('attribute vectors, each both ways', async (t) => {
  const one = (name: string, ctx: CodecContext, attr: string, attributes: PathAttributes, encoded = attr): void =>
    both(t, name, ctx, body(attr), upd({ attributes }), body(encoded));
  one('ORIGIN INCOMPLETE', C4, '40 01 01 02', { origin: 2 });
  one('AS_PATH 4-octet', C4, '40 02 0e | 02 03 0000fde8 0000fde9 fa56ea00', { asPath: [{ type: 2, asns: [65000, 65001, 4200000000] }] });
  one('AS_PATH 2-octet', C2, '40 02 06 | 02 02 fde8 fde9', { asPath: [{ type: 2, asns: [65000, 65001] }] });
  one('AS_PATH empty (iBGP)', C4, '40 02 00', { asPath: [] });
  one(
    'AS_PATH every segment type (RFC 4271 §4.3, RFC 5065 §3)',
    C4,
    '40 02 20 | 03 01 0000fc00 | 04 02 0000fc01 0000fc02 | 02 01 0000fde8 | 01 02 00000001 00000002',
    {
      asPath: [
        { type: 3, asns: [64512] },
        { type: 4, asns: [64513, 64514] },
        { type: 2, asns: [65000] },
        { type: 1, asns: [1, 2] },
      ],
    },
  );
  one('NEXT_HOP', C4, NH, { nextHop: '192.0.2.1' });
  one('MULTI_EXIT_DISC', C4, '80 04 04 00000064', { med: 100 });
  one('LOCAL_PREF', C4, '40 05 04 000000c8', { localPref: 200 });
  one('ATOMIC_AGGREGATE', C4, '40 06 00', { atomicAggregate: true });
  one('AGGREGATOR 4-octet', C4, 'c0 07 08 0000fde8 c0000201', { aggregator: { asn: 65000, address: '192.0.2.1' } });
  one('AGGREGATOR 2-octet', C2, 'c0 07 06 fde8 c0000201', { aggregator: { asn: 65000, address: '192.0.2.1' } });
  one('COMMUNITIES', C4, 'c0 08 08 fde80064 ffffff01', { communities: [0xfde80064, 0xffffff01] });
  one('ORIGINATOR_ID', C4, '80 09 04 0a000001', { originatorId: 0x0a000001 });
  one('CLUSTER_LIST', C4, '80 0a 08 0a000001 0a000002', { clusterList: [0x0a000001, 0x0a000002] });
  one('EXTENDED_COMMUNITIES', C4, 'c0 10 10 0002fde800000064 0102c00002010064', {
    extendedCommunities: [hex('0002fde800000064'), hex('0102c00002010064')],
  });
  one('LARGE_COMMUNITY', C4, 'c0 20 18 fa56ea00 00000001 00000002 | 0000fde8 00000003 00000004', {
    largeCommunities: [
      [4200000000, 1, 2],
      [65000, 3, 4],
    ],
  });
  // RFC 6793 §4.2.2: on a 2-octet session the 4-octet ASNs go out as AS_TRANS (0x5ba0) and the real path in AS4_PATH
  one('AS_PATH + AS4_PATH on a 2-octet session', C2, '40 02 08 | 02 03 fde8 5ba0 5ba0 | c0 11 0e | 02 03 0000fde8 fa56ea00 fa56ea01', {
    asPath: [{ type: 2, asns: [65000, 4200000000, 4200000001] }],
  });
  one('AGGREGATOR + AS4_AGGREGATOR on a 2-octet session', C2, 'c0 07 06 5ba0 c0000201 | c0 12 08 fa56ea00 c0000201', {
    aggregator: { asn: 4200000000, address: '192.0.2.1' },
  });
  // RFC 4271 §5: an unknown optional transitive attribute is kept and passed on with Partial (0x20) set
  one('unknown optional transitive', C4, 'c0 63 03 010203', { unknown: [{ flags: 0xc0, type: 0x63, value: hex('010203') }] }, 'e0 63 03 010203');
  // ... an unknown optional non-transitive one is quietly dropped
  t.strictSame(decodeUpdate(hex(body('80 63 01 ff')), C4), upd({}), 'unknown optional non-transitive dropped');
  // Extended Length (0x10) accepted on any attribute; re-encoded short when it fits
  one('extended length on receipt', C4, '50 01 0001 01', { origin: 1 }, '40 01 01 01');
  const many = Array.from({ length: 70 }, (_, i) => 0xfde80000 + i);
  one('extended length when over 255 octets', C4, 'd0 08 0118' + many.map((c) => c.toString(16)).join(''), { communities: many });
});

t.test('MP_REACH_NLRI / MP_UNREACH_NLRI vectors (RFC 4760, RFC 2545, RFC 8950)', async (t) => {
  const OA = ORIGIN + '40 02 00'; // ORIGIN IGP, empty AS_PATH
  const OA_ATTRS: PathAttributes = { origin: 0, asPath: [] };
  // AFI 2 SAFI 1, next hop length 16, fd00::1, reserved, fd00:1::/64, 2001:db8:1::/48; skein writes MP_* with Extended Length
  const reach6 = '90 0e 0025 | 0002 01 10 fd000000000000000000000000000001 00 | 40 fd00000100000000 | 30 20010db80001';
  both(
    t,
    'MP_REACH IPv6, one next hop',
    C4,
    body(reach6 + OA),
    upd({ attributes: OA_ATTRS, mpReach: { afi: 2, safi: 1, nextHops: ['fd00::1'], nlri: L6('fd00:1::/64', '2001:db8:1::/48') } }),
  );
  // RFC 2545 §3: global followed by link-local, 32 octets
  const reach6ll = '90 0e 002e | 0002 01 20 fd000000000000000000000000000001 fe800000000000000000000000000001 00 | 40 fd00000100000000';
  both(
    t,
    'MP_REACH IPv6, global + link-local',
    C4,
    body(reach6ll + OA),
    upd({ attributes: OA_ATTRS, mpReach: { afi: 2, safi: 1, nextHops: ['fd00::1', 'fe80::1'], nlri: L6('fd00:1::/64') } }),
  );
  // RFC 8950 §3: IPv4 NLRI over an IPv6 next hop
  both(
    t,
    'MP_REACH IPv4 NLRI, IPv6 next hop (extended next hop advertised)',
    { ...C4, extendedNextHopRx: new Set([IPV4_UNICAST]) },
    body('90 0e 0019 | 0001 01 10 fd000000000000000000000000000001 00 | 18 0a0001' + OA),
    upd({ attributes: OA_ATTRS, mpReach: { afi: 1, safi: 1, nextHops: ['fd00::1'], nlri: L4('10.0.1.0/24') } }),
  );
  both(
    t,
    'MP_REACH IPv4 with IPv4 next hop',
    C4,
    body('90 0e 000d | 0001 01 04 c0000201 00 | 18 0a0001' + OA),
    upd({ attributes: OA_ATTRS, mpReach: { afi: 1, safi: 1, nextHops: ['192.0.2.1'], nlri: L4('10.0.1.0/24') } }),
  );
  both(t, 'MP_UNREACH IPv6', C4, body('90 0f 000c | 0002 01 | 40 fd00000100000000'), upd({ mpUnreach: { afi: 2, safi: 1, withdrawn: L6('fd00:1::/64') } }));
  // ADD-PATH in MP attributes, keyed by family (RFC 7911 §3)
  both(
    t,
    'MP_UNREACH IPv6 with ADD-PATH',
    CAP,
    body('90 0f 0010 | 0002 01 | 00000009 40 fd00000100000000'),
    upd({
      withdrawn: { ...E4, pathIds: [] }, // with ADD-PATH on, an empty list still has (no) path ids
      nlri: { ...E4, pathIds: [] },
      mpUnreach: { afi: 2, safi: 1, withdrawn: { afi: 2, safi: 1, prefixes: ['fd00:1::/64'], pathIds: [9] } },
    }),
  );
  // RFC 7606 §5.1: MP_REACH_NLRI goes first even though the other attributes have lower type codes
  const encoded = encodeUpdate(upd({ attributes: OA_ATTRS, mpReach: { afi: 2, safi: 1, nextHops: ['fd00::1'], nlri: L6('fd00::/8') } }), C4);
  t.equal(encoded[19 + 4 + 1], 14, 'MP_REACH_NLRI is the first attribute');
});

t.test('a whole UPDATE both ways', async (t) => {
  // withdraw 10.9.0.0/16; ORIGIN IGP, AS_PATH SEQ [65001], NEXT_HOP 192.0.2.1, MED 0; announce 10.0.1.0/24 and 192.0.2.128/25
  const b = body(BASE + '80 04 04 00000000', NLRI + '19 c0000280', '10 0a09');
  const full =
    MARKER + '003e 02' + // header: length 62, type UPDATE
    '0003 10 0a09' + // Withdrawn Routes Length 3: 10.9.0.0/16
    '001b' + // Total Path Attribute Length 27
    '40 01 01 00' + // ORIGIN IGP
    '40 02 06 02 01 0000fde9' + // AS_PATH AS_SEQUENCE [65001]
    '40 03 04 c0000201' + // NEXT_HOP 192.0.2.1
    '80 04 04 00000000' + // MULTI_EXIT_DISC 0
    '18 0a0001 19 c0000280'; // NLRI 10.0.1.0/24, 192.0.2.128/25
  t.equal(whole(b), hex(full).toString('hex'), 'the test helper builds the same bytes as the hand-written message');
  both(t, 'withdrawn + attributes + NLRI', C4, b, upd({ withdrawn: L4('10.9.0.0/16'), attributes: { ...BASE_ATTRS, med: 0 }, nlri: L4('10.0.1.0/24', '192.0.2.128/25') }));
  // attributes are written in ascending type order whatever the object order (RFC 4271 §5)
  const shuffled: PathAttributes = { med: 0, nextHop: '192.0.2.1', asPath: [{ type: 2, asns: [65001] }], origin: 0 };
  t.equal(encodeUpdate(upd({ attributes: shuffled }), C4).toString('hex'), hex(whole(body(BASE + '80 04 04 00000000'))).toString('hex'));
});

t.test('End-of-RIB (RFC 4724 §2)', async (t) => {
  const eor4 = endOfRib(1, 1, C4);
  t.equal(eor4.toString('hex'), MARKER + '0017' + '02' + '00000000', 'IPv4: an empty UPDATE');
  t.strictSame(isEndOfRib(decodeUpdate(eor4.subarray(19), C4)), { afi: 1, safi: 1 });
  const eor6 = endOfRib(2, 1, C4);
  t.equal(eor6.toString('hex'), MARKER + '001e' + '02' + '0000 0007 900f0003000201'.replace(/\s/g, ''), 'IPv6: an empty MP_UNREACH_NLRI');
  t.strictSame(isEndOfRib(decodeUpdate(eor6.subarray(19), C4)), { afi: 2, safi: 1 });
  t.strictSame(isEndOfRib(decodeUpdate(hex('0000 0006 800f03 000201'), C4)), { afi: 2, safi: 1 }, 'short-length form from other speakers');
  t.equal(isEndOfRib(decodeUpdate(hex(body(BASE, NLRI)), C4)), undefined, 'an announcement is not');
  t.equal(isEndOfRib(decodeUpdate(hex(body('40 01 01 00')), C4)), undefined, 'attributes without NLRI are not');
  t.equal(isEndOfRib(decodeUpdate(hex(body('90 0f 0004 0002 01 00')), C4)), undefined, 'a withdrawal of ::/0 is not');
});

t.test('encodeUpdate refuses to exceed the negotiated maximum', async (t) => {
  const prefixes = Array.from({ length: 1100 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  const big = upd({ attributes: BASE_ATTRS, nlri: L4(...prefixes) });
  t.throws(() => encodeUpdate(big, C4), /exceeds the 4096-octet maximum/);
  t.ok(encodeUpdate(big, { ...C4, extendedMessage: true }).length > 4096, 'fits with RFC 8654 extended messages');
  t.throws(() => encodeUpdate(upd({ nlri: L6('fd00::/8') }), C4), /IPv4 prefixes only/);
});

// ---------------------------------------------------------------- RFC 7606

interface Outcome {
  action: string;
  code: number;
  subcode: number;
  data: string;
  count: number;
}
function outcome(b: string, ctx: CodecContext = C4): Outcome | undefined {
  try {
    const m = decodeUpdate(hex(b), ctx);
    if (m.errorAction === undefined) return undefined;
    const e = m.errors![0]!;
    return { action: m.errorAction, code: e.code, subcode: e.subcode, data: e.data.toString('hex'), count: m.errors!.length };
  } catch (e) {
    if (!(e instanceof BgpError)) throw e;
    return { action: e.action, code: e.code, subcode: e.subcode, data: e.data.toString('hex'), count: 1 };
  }
}

t.test('RFC 8950: an IPv6 next hop for IPv4 NLRI is accepted only where the extended next hop capability was advertised', async (t) => {
  const b = body('90 0e 0019 0001 01 10 fd000000000000000000000000000001 00 18 0a0001' + ORIGIN + ASPATH4);
  const enh: CodecContext = { ...C4, extendedNextHopRx: new Set([IPV4_UNICAST]) };
  const m = decodeUpdate(hex(b), enh);
  t.equal(m.errorAction, undefined, 'no error with the capability');
  t.strictSame(m.mpReach?.nextHops, ['fd00::1'], 'the IPv6 next hop is kept');
  t.strictSame(m.mpReach?.nlri.prefixes, [parsePrefix4('10.0.1.0/24')], 'the IPv4 NLRI is read');
  t.equal(outcome(b, { ...C4, extendedNextHopRx: new Set([IPV6_UNICAST]) })?.action, 'session-reset', 'advertised for another family only: still a reset');
});

t.test('RFC 7606 and RFC 4271 §6.3 outcomes', async (t) => {
  const cases: [string, string, CodecContext, string, number, string][] = [
    // [name, body, ctx, action, subcode, data]
    ['§7.1 ORIGIN undefined value', body('40 01 01 03' + ASPATH4 + NH, NLRI), C4, 'treat-as-withdraw', 6, '40010103'],
    ['§7.1 ORIGIN wrong length', body('40 01 02 0000' + ASPATH4 + NH, NLRI), C4, 'treat-as-withdraw', 5, '4001020000'],
    ['§7.2 AS_PATH zero-length segment', body(ORIGIN + '40 02 02 0200' + NH, NLRI), C4, 'treat-as-withdraw', 11, ''],
    ['§7.2 AS_PATH unknown segment type', body(ORIGIN + '40 02 06 0501 0000fde9' + NH, NLRI), C4, 'treat-as-withdraw', 11, ''],
    ['§7.2 AS_PATH segment overrun', body(ORIGIN + '40 02 06 0202 0000fde9' + NH, NLRI), C4, 'treat-as-withdraw', 11, ''],
    ['§7.2 AS_PATH single octet left', body(ORIGIN + '40 02 07 0201 0000fde9 02' + NH, NLRI), C4, 'treat-as-withdraw', 11, ''],
    ['§7.2 AS_PATH odd length on a 2-octet session', body(ORIGIN + '40 02 05 0202 fde9 01' + NH, NLRI), C2, 'treat-as-withdraw', 11, ''],
    ['§7.3 NEXT_HOP wrong length', body(ORIGIN + ASPATH4 + '40 03 05 c000020100', NLRI), C4, 'treat-as-withdraw', 5, '400305c000020100'],
    ['§7.4 MED wrong length', body(BASE + '80 04 03 000001', NLRI), C4, 'treat-as-withdraw', 5, '800403000001'],
    ['§7.5 LOCAL_PREF wrong length', body(BASE + '40 05 02 0001', NLRI), C4, 'treat-as-withdraw', 5, '4005020001'],
    ['§7.6 ATOMIC_AGGREGATE non-zero length', body(BASE + '40 06 01 00', NLRI), C4, 'attribute-discard', 5, '40060100'],
    ['§7.7 AGGREGATOR 6 octets on a 4-octet session', body(BASE + 'c0 07 06 fde8c0000201', NLRI), C4, 'attribute-discard', 5, 'c00706fde8c0000201'],
    ['§7.7 AGGREGATOR 8 octets on a 2-octet session', body(ORIGIN + '40 02 04 0201fde9' + NH + 'c0 07 08 0000fde8c0000201', NLRI), C2, 'attribute-discard', 5, 'c007080000fde8c0000201'],
    ['§7.8 COMMUNITIES not a multiple of 4', body(BASE + 'c0 08 05 0000000001', NLRI), C4, 'treat-as-withdraw', 9, 'c008050000000001'],
    ['§7.8 COMMUNITIES empty', body(BASE + 'c0 08 00', NLRI), C4, 'treat-as-withdraw', 9, 'c00800'],
    ['§7.9 ORIGINATOR_ID wrong length', body(BASE + '80 09 03 0a0000', NLRI), C4, 'treat-as-withdraw', 5, '8009030a0000'],
    ['§7.10 CLUSTER_LIST not a multiple of 4', body(BASE + '80 0a 06 0a0000010a00', NLRI), C4, 'treat-as-withdraw', 5, '800a060a0000010a00'],
    ['§7.10 CLUSTER_LIST empty', body(BASE + '80 0a 00', NLRI), C4, 'treat-as-withdraw', 5, '800a00'],
    ['§7.14 EXTENDED_COMMUNITIES not a multiple of 8', body(BASE + 'c0 10 07 00000000000000', NLRI), C4, 'treat-as-withdraw', 9, 'c0100700000000000000'],
    ['RFC 8092 §6 LARGE_COMMUNITY not a multiple of 12', body(BASE + 'c0 20 0b 0000000000000000000000', NLRI), C4, 'treat-as-withdraw', 9, 'c0200b0000000000000000000000'],
    ['RFC 6793 §6 malformed AS4_PATH', body(ORIGIN + '40 02 04 0201 5ba0' + NH + 'c0 11 02 0200', NLRI), C2, 'attribute-discard', 9, 'c0110202' + '00'],
    ['RFC 6793 §6 AS4_AGGREGATOR wrong length', body(BASE.replace(ASPATH4, '40 02 04 0201fde9') + 'c0 07 06 5ba0c0000201 c0 12 06 fde8c0000201', NLRI), C2, 'attribute-discard', 9, 'c01206fde8c0000201'],
    ['§3.c ORIGIN with the Optional bit', body('c0 01 01 00' + ASPATH4 + NH, NLRI), C4, 'treat-as-withdraw', 4, 'c0010100'],
    ['§3.c MED marked transitive', body(BASE + 'c0 04 04 00000001', NLRI), C4, 'treat-as-withdraw', 4, 'c00404' + '00000001'],
    ['§3.c AS4_PATH marked well-known', body(ORIGIN + '40 02 04 0201fde9' + NH + '40 11 06 0201 0000fde9', NLRI), C2, 'attribute-discard', 4, '4011060201' + '0000fde9'],
    ['§3.c MP_REACH_NLRI with wrong flags', body('50 0e 000d 0001 01 04 c0000201 00 180a0001' + ORIGIN + ASPATH4), C4, 'session-reset', 4, '500e000d000101' + '04c000020100180a0001'],
    ['RFC 4271 §6.3 unrecognized well-known attribute', body(BASE + '40 63 01 00', NLRI), C4, 'session-reset', 2, '40630100'],
    ['§3.g MP_UNREACH_NLRI twice', body('90 0f 0003 000201 90 0f 0003 000201'), C4, 'session-reset', 1, ''],
    ['§3.d missing NEXT_HOP with IPv4 NLRI', body(ORIGIN + ASPATH4, NLRI), C4, 'treat-as-withdraw', 3, '03'],
    ['§3.d missing ORIGIN with MP_REACH_NLRI', body('90 0e 000d 0001 01 04 c0000201 00 180a0001' + ASPATH4), C4, 'treat-as-withdraw', 3, '01'],
    ['§4 attribute overruns the section, IPv4 NLRI present', body(BASE + '40 05 08 00000064', NLRI), C4, 'treat-as-withdraw', 5, '40050800000064'],
    ['§4 two octets left, IPv4 NLRI present', body(BASE + '4001', NLRI), C4, 'treat-as-withdraw', 1, ''],
    ['§4 overrun after MP_UNREACH_NLRI (first, §5.1)', body('90 0f 0006 000201 10 fd00 | 40 05 08 00000064'), C4, 'treat-as-withdraw', 5, '40050800000064'],
    ['§4 + §3.i overrun with no NLRI located', body(ORIGIN + '40 05 08 00000064'), C4, 'session-reset', 5, '40050800000064'],
    ['§5.3 NLRI length over 32', body(BASE, '21 0a000001 00'), C4, 'session-reset', 10, ''],
    ['§5.3 NLRI prefix past the end', body(BASE, '18 0a00'), C4, 'session-reset', 10, ''],
    ['§5.3 withdrawn prefix past the end', body('', '', '18 0a00'), C4, 'session-reset', 10, ''],
    ['§5.3 ADD-PATH id cut short', body(BASE, '000000'), CAP, 'session-reset', 10, ''],
    ['§7.11 MP_REACH IPv6 next hop length 12', body('90 0e 0011 0002 01 0c 000000000000000000000000 00' + ORIGIN + ASPATH4), C4, 'session-reset', 9, '900e0011000201' + '0c' + '00'.repeat(13)],
    ['§5.3 MP_REACH IPv6 prefix length 129', body('90 0e 0016 0002 01 10 fd000000000000000000000000000001 00 81' + ORIGIN + ASPATH4), C4, 'session-reset', 9, '900e0016000201' + '10fd000000000000000000000000000001' + '0081'],
    ['§5.3 MP_UNREACH prefix past the end', body('90 0f 0005 000201 40fd'), C4, 'session-reset', 9, '900f0005000201' + '40fd'],
    ['§7.11 + RFC 8950 §3 IPv6 next hop for IPv4 NLRI, extended next hop not negotiated', body('90 0e 0019 0001 01 10 fd000000000000000000000000000001 00 18 0a0001' + ORIGIN + ASPATH4), C4, 'session-reset', 9, '900e0019000101' + '10fd000000000000000000000000000001' + '00180a0001'],
    ['§7.11 + RFC 8950 §3 32-octet next hop for IPv4 NLRI, not negotiated', body('90 0e 0029 0001 01 20 fd000000000000000000000000000001 fe800000000000000000000000000001 00 18 0a0001' + ORIGIN + ASPATH4), C4, 'session-reset', 9, '900e0029000101' + '20fd000000000000000000000000000001fe800000000000000000000000000001' + '00180a0001'],
    ['§7.11 IPv4 MP_REACH next hop length 5', body('90 0e 000e 0001 01 05 c000020101 00 18 0a0001' + ORIGIN + ASPATH4), C4, 'session-reset', 9, '900e000e000101' + '05c000020101' + '00180a0001'],
    ['§7.11 MP_REACH too short', body('90 0e 0003 000201'), C4, 'session-reset', 9, '900e0003000201'],
    ['MP_REACH of a family skein does not speak', body('90 0e 0005 0019 46 00 00' + ORIGIN + ASPATH4), C4, 'attribute-discard', 9, '900e0005001946' + '0000'],
    ['RFC 4271 §6.3 Withdrawn Routes Length too large', '0010 0000', C4, 'session-reset', 1, ''],
    ['RFC 4271 §6.3 Total Attribute Length too large', '0000 0010 400101', C4, 'session-reset', 1, ''],
  ];
  for (const [name, b, ctx, action, subcode, data] of cases) {
    const o = outcome(b, ctx);
    t.ok(o, `${name}: an error`);
    if (!o) continue;
    t.strictSame(
      { action: o.action, code: o.code, subcode: o.subcode, data: o.data },
      { action, code: 3, subcode, data: hex(data).toString('hex') },
      name,
    );
  }

  // what survives: attribute discard keeps the rest, treat-as-withdraw still reports the NLRI to withdraw
  const discard = decodeUpdate(hex(body(BASE + '40 06 01 00', NLRI)), C4);
  t.strictSame(discard.attributes, BASE_ATTRS, 'ATOMIC_AGGREGATE dropped, the rest kept');
  t.strictSame(discard.nlri, L4('10.0.1.0/24'));
  const taw = decodeUpdate(hex(body('40 01 01 07' + ASPATH4 + NH, NLRI)), C4);
  t.strictSame(taw.nlri, L4('10.0.1.0/24'), 'treat-as-withdraw: the prefixes are still there for the caller to withdraw');
  t.equal(taw.errors?.[0]?.code, 3);
  // §3.h: the strongest action wins
  const mixed = decodeUpdate(hex(body('40 01 01 07' + ASPATH4 + NH + '40 06 01 00', NLRI)), C4);
  t.equal(mixed.errorAction, 'treat-as-withdraw');
  t.equal(mixed.errors?.length, 2, 'both errors reported');
  // §3.g: a repeated attribute other than MP_* is discarded, the first kept, no error
  const dup = decodeUpdate(hex(body(BASE + '40 01 01 01', NLRI)), C4);
  t.equal(dup.attributes.origin, 0);
  t.equal(dup.errors, undefined);
  // RFC 6793 §6: AS4_PATH from a 4-octet speaker is ignored, not an error
  const as4on4 = decodeUpdate(hex(body(BASE + 'c0 11 06 0201 0000fde8', NLRI)), C4);
  t.strictSame(as4on4.attributes, BASE_ATTRS);
  t.equal(as4on4.errors, undefined);
  // AS4_PATH discarded: the AS_PATH stands
  const bad4 = decodeUpdate(hex(body(ORIGIN + '40 02 04 0201 5ba0' + NH + 'c0 11 02 0200', NLRI)), C2);
  t.strictSame(bad4.attributes.asPath, [{ type: 2, asns: [AS_TRANS] }]);
});

// ---------------------------------------------------------------- RFC 6793

t.test('RFC 6793 §4.2.3 reconstruction and §4.2.2 sending', async (t) => {
  const SEQ = (...a: number[]): AsPathSegment => ({ type: 2, asns: a });
  const SET = (...a: number[]): AsPathSegment => ({ type: 1, asns: a });
  const CSEQ = (...a: number[]): AsPathSegment => ({ type: 3, asns: a });
  const X = 4200000000;
  const Y = 4200000001;
  const T = AS_TRANS;
  t.equal(countAsns([CSEQ(1, 2), SEQ(3, 4), SET(5, 6, 7)]), 3, 'confed counts 0, a set 1');
  t.strictSame(fromAs2([SEQ(65001, T, T)], undefined, [SEQ(65001, X, Y)], undefined).asPath, [SEQ(65001, X, Y)], 'same length: AS4_PATH wins');
  t.strictSame(fromAs2([SEQ(100, 200, T, T)], undefined, [SEQ(X, Y)], undefined).asPath, [SEQ(100, 200, X, Y)], 'OLD speakers prepended 100 and 200');
  t.strictSame(fromAs2([SEQ(100, T)], undefined, [SEQ(1, X, Y)], undefined).asPath, [SEQ(100, T)], 'AS4_PATH longer than AS_PATH: ignored');
  t.strictSame(
    fromAs2([SEQ(100, T)], { asn: 300, address: '192.0.2.1' }, [SEQ(100, X)], { asn: X, address: '192.0.2.9' }),
    { asPath: [SEQ(100, T)], aggregator: { asn: 300, address: '192.0.2.1' } },
    'AGGREGATOR not AS_TRANS: AS4_PATH and AS4_AGGREGATOR ignored',
  );
  t.strictSame(
    fromAs2([SEQ(100, T)], { asn: T, address: '192.0.2.1' }, [SEQ(100, X)], { asn: X, address: '192.0.2.9' }),
    { asPath: [SEQ(100, X)], aggregator: { asn: X, address: '192.0.2.9' } },
    'AGGREGATOR is AS_TRANS: both taken from the AS4 attributes',
  );
  t.strictSame(fromAs2([CSEQ(64512), SEQ(100, T)], undefined, [SEQ(100, X)], undefined).asPath, [CSEQ(64512), SEQ(100, X)], 'a leading confed segment is kept');
  t.strictSame(fromAs2([SEQ(100), SET(200, 300), SEQ(T)], undefined, [SEQ(X)], undefined).asPath, [SEQ(100), SET(200, 300), SEQ(X)], 'a set counts as one');
  t.strictSame(fromAs2([SEQ(T)], undefined, [CSEQ(1), SEQ(X)], undefined).asPath, [SEQ(X)], 'confed segments in AS4_PATH dropped (RFC 6793 §6)');
  t.strictSame(toAs2([CSEQ(64512), SEQ(65001, X)], { asn: X, address: '192.0.2.1' }), {
    as4Path: [SEQ(65001, X)],
    as4Aggregator: { asn: X, address: '192.0.2.1' },
  });
  t.strictSame(toAs2([SEQ(65001, 65002)], { asn: 65001, address: '192.0.2.1' }), {}, 'nothing to add when every AS fits 2 octets');
  // on the wire, an OLD speaker's prepend (AS_PATH longer than AS4_PATH)
  const b = body(ORIGIN + '40 02 0a 0204 0064 00c8 5ba0 5ba0' + NH + 'c0 11 0a 0202 fa56ea00 fa56ea01', NLRI);
  t.strictSame(decodeUpdate(hex(b), C2).attributes.asPath, [SEQ(100, 200, X, Y)]);
  // RFC 6793's rule that a 2-octet AGGREGATOR voids AS4_PATH also bites our own encoding: documented, not "fixed"
  const agg2 = encodeUpdate(upd({ attributes: { asPath: [SEQ(X)], aggregator: { asn: 300, address: '192.0.2.1' } } }), C2);
  t.strictSame(decodeUpdate(agg2.subarray(19), C2).attributes.asPath, [SEQ(T)], 'aggregated by a 2-octet AS: AS4_PATH ignored by the receiver');
});

// ---------------------------------------------------------------- properties

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const ipv4 = u32.map(ipv4ToString);
const p4 = fc.tuple(u32, fc.integer({ min: 0, max: 32 })).map(([a, l]) => prefix4(a, l));
const p6 = fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 })).map(([b, l]) => prefix6FromBytes(b, l));
const ipv6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => prefix6FromBytes(b, 128).replace('/128', ''));
const KNOWN_TYPES = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32]);
const unknownType = fc.integer({ min: 11, max: 255 }).filter((x) => !KNOWN_TYPES.has(x));

function listOf(afi: 1 | 2, addPath: boolean, maxLength: number): fc.Arbitrary<PrefixList> {
  const ps = afi === 1 ? fc.array(p4, { maxLength }) : fc.array(p6, { maxLength });
  return ps.chain((prefixes) =>
    (addPath ? fc.array(u32, { minLength: prefixes.length, maxLength: prefixes.length }) : fc.constant(null)).map(
      (pathIds) => ({ afi, safi: 1, prefixes, pathIds }) as PrefixList,
    ),
  );
}

function pathArb(asn: fc.Arbitrary<number>, confedAsn: fc.Arbitrary<number>): fc.Arbitrary<AsPathSegment[]> {
  const seg = fc.record({ type: fc.constantFrom<1 | 2>(1, 2), asns: fc.array(asn, { minLength: 1, maxLength: 8 }) }, { noNullPrototype: true });
  const confed = fc.record({ type: fc.constantFrom<3 | 4>(3, 4), asns: fc.array(confedAsn, { minLength: 1, maxLength: 4 }) }, { noNullPrototype: true });
  // confederation segments only lead a path (RFC 5065 §5.3)
  return fc.tuple(fc.array(confed, { maxLength: 2 }), fc.array(seg, { maxLength: 4 })).map(([c, s]) => [...c, ...s]);
}

function attrsArb(as4: boolean): fc.Arbitrary<PathAttributes> {
  const anyAsn = fc.oneof(fc.integer({ min: 0, max: 0xffff }), u32);
  return fc
    .record(
      {
        origin: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
        asPath: pathArb(anyAsn, as4 ? anyAsn : fc.integer({ min: 0, max: 0xffff })),
        nextHop: ipv4,
        med: u32,
        localPref: u32,
        atomicAggregate: fc.constant(true),
        aggregator: fc.record({ asn: anyAsn, address: ipv4 }, { noNullPrototype: true }),
        communities: fc.array(u32, { minLength: 1, maxLength: 6 }),
        originatorId: u32,
        clusterList: fc.array(u32, { minLength: 1, maxLength: 4 }),
        extendedCommunities: fc.array(fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b)), { minLength: 1, maxLength: 3 }),
        largeCommunities: fc.array(fc.tuple(u32, u32, u32), { minLength: 1, maxLength: 3 }),
        unknown: fc
          .uniqueArray(unknownType, { minLength: 1, maxLength: 3 })
          .chain((types) =>
            fc.tuple(...types.sort((a, b) => a - b).map((type) => fc.uint8Array({ maxLength: 300 }).map((v) => ({ flags: 0xe0, type, value: Buffer.from(v) })))),
          ),
      },
      { requiredKeys: [], noNullPrototype: true },
    )
    .map((a) => {
      // RFC 6793 §4.2.3: an AGGREGATOR other than AS_TRANS voids AS4_PATH; on a
      // 2-octet session keep the generated aggregator 4-octet when the path needs AS4_PATH
      if (!as4 && a.aggregator && a.aggregator.asn <= 0xffff && a.asPath?.some((s) => s.asns.some((x) => x > 0xffff))) {
        return { ...a, aggregator: { ...a.aggregator, asn: a.aggregator.asn + 0x10000 } };
      }
      return a;
    });
}

function updateArb(ctx: CodecContext): fc.Arbitrary<UpdateMessage> {
  const ap4 = ctx.addPathTx.has(IPV4_UNICAST);
  const ap6 = ctx.addPathTx.has(IPV6_UNICAST);
  const reach: fc.Arbitrary<MpReach> = fc.oneof(
    fc.record({ nh: fc.array(ipv6, { minLength: 1, maxLength: 2 }), nlri: listOf(2, ap6, 10) }).map(({ nh, nlri }) => ({ afi: 2, safi: 1, nextHops: nh, nlri })),
    fc.record({ nh: fc.oneof(fc.array(ipv6, { minLength: 1, maxLength: 2 }), ipv4.map((a) => [a])), nlri: listOf(1, ap4, 10) }).map(({ nh, nlri }) => ({ afi: 1, safi: 1, nextHops: nh, nlri })),
  );
  const unreach: fc.Arbitrary<MpUnreach> = fc.oneof(listOf(2, ap6, 10), listOf(1, ap4, 10)).map((w) => ({ afi: w.afi, safi: 1, withdrawn: w }));
  return fc
    .record(
      { withdrawn: listOf(1, ap4, 10), attributes: attrsArb(ctx.as4), nlri: listOf(1, ap4, 10), mpReach: reach, mpUnreach: unreach },
      { requiredKeys: ['withdrawn', 'attributes', 'nlri'], noNullPrototype: true },
    )
    .map((u) => {
      // valid UPDATEs carry the mandatory attributes whenever they announce (RFC 4271 §5, RFC 4760 §3)
      let a = u.attributes;
      const announces = u.nlri.prefixes.length > 0 || (u.mpReach?.nlri.prefixes.length ?? 0) > 0;
      if (announces) a = { origin: 0, asPath: [], ...a };
      if (u.nlri.prefixes.length > 0) a = { nextHop: '192.0.2.1', ...a };
      return { type: 'UPDATE', ...u, attributes: a } as UpdateMessage;
    });
}

t.test('property: decode(encode(x)) equals x', async (t) => {
  const contexts: [string, CodecContext][] = [
    ['4-octet AS', { ...C4, extendedMessage: true }],
    ['2-octet AS', { ...C2, extendedMessage: true }],
    ['4-octet AS + ADD-PATH', { ...CAP, extendedMessage: true }],
    ['2-octet AS + ADD-PATH', { ...CAP, as4: false, extendedMessage: true }],
  ];
  for (const [name, ctx0] of contexts) {
    // the generator makes IPv4 NLRI with IPv6 next hops too: as if we had advertised RFC 8950 for IPv4
    const ctx: CodecContext = { ...ctx0, extendedNextHopRx: new Set([IPV4_UNICAST]) };
    fc.assert(
      fc.property(updateArb(ctx), (u) => {
        const wire = encodeUpdate(u, ctx);
        assert.equal(wire.readUInt16BE(16), wire.length);
        assert.deepStrictEqual(decodeUpdate(wire.subarray(19), ctx), u);
      }),
      { numRuns: 400 },
    );
    t.pass(`round trip, ${name}`);
  }
});

t.test('property: RFC 6793 §4.2.3 recovers the path after OLD speakers prepend', async (t) => {
  const asn = fc.oneof(fc.integer({ min: 1, max: 0xffff }), u32);
  const old = fc.integer({ min: 1, max: 0xffff }).filter((a) => a !== AS_TRANS);
  const mapped = (segs: readonly AsPathSegment[]): AsPathSegment[] => segs.map((s) => ({ type: s.type, asns: s.asns.map((a) => (a > 0xffff ? AS_TRANS : a)) }));
  /** what an OLD speaker does: put its AS at the front of the leading AS_SEQUENCE, or start one (RFC 4271 §5.1.2) */
  const prepend = (q: number[], segs: readonly AsPathSegment[]): AsPathSegment[] =>
    segs[0]?.type === 2 ? [{ type: 2, asns: [...q, ...segs[0].asns] }, ...segs.slice(1)] : [{ type: 2, asns: q }, ...segs];
  fc.assert(
    fc.property(pathArb(asn, asn), fc.array(old, { minLength: 1, maxLength: 5 }), (p, q) => {
      const path = p.filter((s) => s.type <= 2); // what a NEW speaker puts in AS4_PATH: no confed segments
      const { as4Path } = toAs2(path, undefined);
      const got = fromAs2(prepend(q, mapped(path)), undefined, as4Path, undefined).asPath;
      // without any 4-octet AS there is no AS4_PATH and the AS_PATH is exact already
      assert.deepStrictEqual(got, prepend(q, as4Path === undefined ? mapped(path) : path));
    }),
    { numRuns: 1000 },
  );
  t.pass('prepended 2-octet ASNs in front of the exact path');
});

t.test('property: the decoder is total (a value or a BgpError)', async (t) => {
  const ctxs = [C4, C2, CAP];
  const total = (b: Uint8Array, ctx: CodecContext): void => {
    try {
      const m = decodeUpdate(Buffer.from(b), ctx);
      assert.equal(m.type, 'UPDATE');
    } catch (e) {
      if (!(e instanceof BgpError)) throw e;
      assert.equal(e.code, 3);
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(...ctxs), (b, ctx) => total(b, ctx)),
    { numRuns: 3000 },
  );
  t.pass('arbitrary bytes');
  // mutate valid UPDATEs: flip octets, truncate, splice in garbage
  const ctx = { ...CAP, extendedMessage: true };
  fc.assert(
    fc.property(
      updateArb(ctx),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      fc.constantFrom(...ctxs),
      (u, flips, cut, rctx) => {
        const b = Buffer.from(encodeUpdate(u, ctx).subarray(19));
        for (const [at, v] of flips) b[at % b.length] = v;
        total(b, rctx);
        total(b.subarray(0, cut % (b.length + 1)), rctx);
      },
    ),
    { numRuns: 1500 },
  );
  t.pass('mutated valid UPDATEs');
});

t.test('property: the packer fills each message to the limit, in order', async (t) => {
  const attrsMp: PathAttributes = { origin: 0, asPath: [{ type: 2, asns: [65001, 4200000000] }], communities: [1, 2, 3] };
  const attrs: PathAttributes = { ...attrsMp, nextHop: '192.0.2.1' };
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
      fc.integer({ min: 150, max: 4096 }),
      fc.integer({ min: 0, max: 400 }),
      fc.nat(),
      (v6, addPath, withdraw, maxLen, n, seed) => {
        const ctx = addPath ? CAP : C4;
        const list: PrefixList = fc.sample(listOf(v6 ? 2 : 1, addPath, n), { numRuns: 1, seed })[0]!;
        const msgs = withdraw ? packWithdrawals(list, ctx, maxLen) : packUpdates(attrs, list, ctx, maxLen, v6 ? ['fd00::1'] : undefined);
        const got: (string | number)[] = [];
        const ids: number[] = [];
        let sent = 0;
        for (const [i, m] of msgs.entries()) {
          assert.ok(m.length <= maxLen, `message ${i} is ${m.length} > ${maxLen}`);
          assert.equal(m.readUInt16BE(16), m.length);
          const d = decodeUpdate(m.subarray(19), ctx);
          assert.equal(d.errors, undefined);
          const l = withdraw ? (v6 ? d.mpUnreach!.withdrawn : d.withdrawn) : v6 ? d.mpReach!.nlri : d.nlri;
          // RFC 4760 §3: no NEXT_HOP when the routes travel in MP_REACH_NLRI
          if (!withdraw) assert.deepStrictEqual(d.attributes, v6 ? attrsMp : attrs);
          got.push(...l.prefixes);
          if (l.pathIds) ids.push(...l.pathIds);
          sent += l.prefixes.length;
          // exactness: the next prefix would not have fitted
          if (i < msgs.length - 1) {
            const next = prefixListSize(list, addPath, sent, sent + 1);
            assert.ok(m.length + next > maxLen, `message ${i} (${m.length}) could have held the next prefix (${next})`);
          }
        }
        assert.deepStrictEqual(got, list.prefixes);
        if (addPath) assert.deepStrictEqual(ids, list.pathIds);
        assert.equal(msgs.length === 0, list.prefixes.length === 0);
      },
    ),
    { numRuns: 500 },
  );
  t.pass('packUpdates / packWithdrawals');
  t.throws(() => packUpdates({ origin: 0, asPath: [] }, L4('10.0.0.0/8'), C4), /without NEXT_HOP/, 'refuses an announcement the receiver would treat-as-withdraw');
  t.throws(() => packUpdates(BASE_ATTRS, L6('fd00::/8'), C4), /next hop/, 'IPv6 needs the MP_REACH_NLRI next hop');
  t.strictSame(packUpdates(BASE_ATTRS, E4, C4), [], 'nothing to announce, no message');
  // the negotiated limits themselves
  const many = L4(...Array.from({ length: 5000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`));
  const small = packUpdates(BASE_ATTRS, many, C4);
  t.ok(small.every((m) => m.length <= 4096) && small.slice(0, -1).every((m) => m.length > 4096 - 4), 'split at 4096');
  const big = packUpdates(BASE_ATTRS, many, { ...C4, extendedMessage: true });
  t.ok(big.every((m) => m.length <= 65535) && big.length === 1, `one 65535-octet-bounded message with RFC 8654 (${big[0]!.length})`);
});

// ---------------------------------------------------------------- tshark

/**
 * Messages as a libpcap file, each in one TCP segment to port 179 over
 * Ethernet/IPv4 (checksums left zero; tshark does not verify them by default).
 */
function pcap(messages: readonly Buffer[]): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0); // libpcap magic (microseconds)
  head.writeUInt16LE(2, 4); // version 2.4
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(0x40000, 16); // snapshot length
  head.writeUInt32LE(1, 20); // Ethernet
  const out = [head];
  let seq = 1;
  for (const [i, m] of messages.entries()) {
    const f = Buffer.alloc(54 + m.length);
    f.writeUInt16BE(0x0800, 12); // EtherType IPv4 (MACs zero)
    f[14] = 0x45; // IPv4, 20-octet header
    f.writeUInt16BE(40 + m.length, 16);
    f[22] = 64; // TTL
    f[23] = 6; // TCP
    f.set([192, 0, 2, 1, 192, 0, 2, 2], 26);
    f.writeUInt16BE(50179, 34); // source port
    f.writeUInt16BE(179, 36); // BGP
    f.writeUInt32BE(seq, 38);
    f[46] = 0x50; // data offset 5 words
    f[47] = 0x18; // PSH, ACK
    f.writeUInt16BE(0xffff, 48);
    m.copy(f, 54);
    seq += m.length;
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(1_800_000_000 + i, 0);
    rec.writeUInt32LE(f.length, 8);
    rec.writeUInt32LE(f.length, 12);
    out.push(rec, f);
  }
  return Buffer.concat(out);
}

const ORACLE_FIELDS = [
  'bgp.withdrawn_prefix',
  'bgp.nlri_prefix',
  'bgp.prefix_length',
  'bgp.mp_reach_nlri_ipv6_prefix',
  'bgp.mp_reach_nlri_ipv4_prefix',
  'bgp.mp_unreach_nlri_ipv6_prefix',
  'bgp.mp_unreach_nlri_ipv4_prefix',
  'bgp.update.path_attribute.mp_reach_nlri.afi',
  'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv4',
  'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6',
  'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local',
  'bgp.update.path_attribute.mp_unreach_nlri.afi',
  'bgp.update.path_attribute.origin',
  'bgp.update.path_attribute.as_path_segment.type',
  'bgp.update.path_attribute.as_path_segment.as4',
  'bgp.update.path_attribute.next_hop',
  'bgp.update.path_attribute.multi_exit_disc',
  'bgp.update.path_attribute.local_pref',
  'bgp.update.path_attribute.aggregator_as',
  'bgp.update.path_attribute.aggregator_origin',
  'bgp.update.path_attribute.community_as',
  'bgp.update.path_attribute.community_value',
  'bgp.update.path_attribute.originator_id',
  'bgp.path_attribute.cluster_id',
  'bgp.ext_com.type',
  'bgp.large_communities.ga',
  'bgp.large_communities.ldp1',
  'bgp.large_communities.ldp2',
] as const;

/** What Wireshark should report for an UPDATE we encoded, field by field, in wire order. */
function expectedFields(u: UpdateMessage): Record<string, string[]> {
  const e: Record<string, string[]> = {};
  const add = (k: string, ...v: (string | number)[]): void => {
    if (v.length > 0) (e[k] ??= []).push(...v.map(String));
  };
  const a = u.attributes;
  const v4 = (l: PrefixList): number[] => l.prefixes as number[];
  const v6 = (l: PrefixList): string[] => l.prefixes as string[];
  // prefix lengths in wire order: withdrawn, MP_REACH, MP_UNREACH (first attributes, RFC 7606 §5.1), NLRI
  const lens = (l: PrefixList): number[] => (l.afi === 1 ? v4(l).map(prefix4Len) : v6(l).map(prefix6Len));
  add('bgp.withdrawn_prefix', ...v4(u.withdrawn).map((p) => ipv4ToString(prefix4Addr(p))));
  add('bgp.prefix_length', ...lens(u.withdrawn));
  if (u.mpReach) {
    const r = u.mpReach;
    add('bgp.update.path_attribute.mp_reach_nlri.afi', r.afi);
    if (r.nextHops[0]!.includes('.')) add('bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv4', r.nextHops[0]!);
    else {
      add('bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6', r.nextHops[0]!);
      if (r.nextHops[1] !== undefined) add('bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local', r.nextHops[1]);
    }
    if (r.afi === 2) add('bgp.mp_reach_nlri_ipv6_prefix', ...v6(r.nlri).map(prefix6Addr));
    else add('bgp.mp_reach_nlri_ipv4_prefix', ...v4(r.nlri).map((p) => ipv4ToString(prefix4Addr(p))));
    add('bgp.prefix_length', ...lens(r.nlri));
  }
  if (u.mpUnreach) {
    const w = u.mpUnreach;
    add('bgp.update.path_attribute.mp_unreach_nlri.afi', w.afi);
    if (w.afi === 2) add('bgp.mp_unreach_nlri_ipv6_prefix', ...v6(w.withdrawn).map(prefix6Addr));
    else add('bgp.mp_unreach_nlri_ipv4_prefix', ...v4(w.withdrawn).map((p) => ipv4ToString(prefix4Addr(p))));
    add('bgp.prefix_length', ...lens(w.withdrawn));
  }
  if (a.origin !== undefined) add('bgp.update.path_attribute.origin', a.origin);
  for (const seg of a.asPath ?? []) {
    for (let i = 0; i < seg.asns.length; i += 255) add('bgp.update.path_attribute.as_path_segment.type', seg.type);
    add('bgp.update.path_attribute.as_path_segment.as4', ...seg.asns);
  }
  if (a.nextHop !== undefined) add('bgp.update.path_attribute.next_hop', a.nextHop);
  if (a.med !== undefined) add('bgp.update.path_attribute.multi_exit_disc', a.med);
  if (a.localPref !== undefined) add('bgp.update.path_attribute.local_pref', a.localPref);
  if (a.aggregator) {
    add('bgp.update.path_attribute.aggregator_as', a.aggregator.asn);
    add('bgp.update.path_attribute.aggregator_origin', a.aggregator.address);
  }
  for (const c of a.communities ?? []) {
    add('bgp.update.path_attribute.community_as', c >>> 16);
    add('bgp.update.path_attribute.community_value', c & 0xffff);
  }
  if (a.originatorId !== undefined) add('bgp.update.path_attribute.originator_id', ipv4ToString(a.originatorId));
  add('bgp.path_attribute.cluster_id', ...(a.clusterList ?? []).map(ipv4ToString));
  add('bgp.ext_com.type', ...(a.extendedCommunities ?? []).map((c) => '0x' + c[0]!.toString(16).padStart(2, '0')));
  for (const [g, l1, l2] of a.largeCommunities ?? []) {
    add('bgp.large_communities.ga', g);
    add('bgp.large_communities.ldp1', l1);
    add('bgp.large_communities.ldp2', l2);
  }
  add('bgp.nlri_prefix', ...v4(u.nlri).map((p) => ipv4ToString(prefix4Addr(p))));
  add('bgp.prefix_length', ...lens(u.nlri));
  return e;
}

t.test('tshark agrees with our UPDATE encoding (random UPDATEs, 4-octet AS)', async (t) => {
  if (!requires(t as never, { commands: ['tshark'] })) return;
  const ctx: CodecContext = { ...C4, extendedMessage: false };
  // Wireshark interprets some attribute types skein treats as unknown, and
  // decodes extended communities by type; keep to what both sides read the same:
  // no unknown attributes, route-target extended communities (type 0x00 subtype
  // 0x02), and no community in the well-known 0xffff range (shown differently).
  // Wireshark 4.0 guesses whether NLRI carry ADD-PATH ids and counts a /0 as
  // two octets while guessing, which makes it misread fields with a /0 in
  // them: leave /0 out.
  const noDefault = (l: PrefixList): PrefixList =>
    l.afi === 1 ? { ...l, prefixes: l.prefixes.filter((p) => prefix4Len(p) > 0) } : { ...l, prefixes: l.prefixes.filter((p) => prefix6Len(p) > 0) };
  const sample = fc
    .sample(updateArb(ctx), { numRuns: 120, seed: 7606 })
    .map((u): UpdateMessage => {
      const { unknown: _u, ...a } = u.attributes;
      return {
        ...u,
        withdrawn: noDefault(u.withdrawn),
        nlri: noDefault(u.nlri),
        ...(u.mpReach && { mpReach: { ...u.mpReach, nlri: noDefault(u.mpReach.nlri) } }),
        ...(u.mpUnreach && { mpUnreach: { ...u.mpUnreach, withdrawn: noDefault(u.mpUnreach.withdrawn) } }),
        attributes: {
          ...a,
          ...(a.communities && { communities: a.communities.map((c) => (c >>> 16 === 0xffff || c >>> 16 === 0 ? (c & 0xffff) + 0x10000 : c)) }),
          ...(a.extendedCommunities && { extendedCommunities: a.extendedCommunities.map((c) => Buffer.concat([hex('0002'), c.subarray(2)])) }),
        },
      };
    })
    .filter((u) => {
      try {
        encodeUpdate(u, ctx);
        return true;
      } catch {
        return false;
      }
    });
  t.ok(sample.length > 80, `${sample.length} UPDATEs fit 4096 octets`);
  const dir = mkdtempSync(join(tmpdir(), 'skein-update-oracle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'updates.pcap');
  writeFileSync(file, pcap(sample.map((u) => encodeUpdate(u, ctx))));
  const out = execFileSync('tshark', ['-o', 'bgp.asn_len:4', '-r', file, '-T', 'json', ...ORACLE_FIELDS.flatMap((f) => ['-e', f])], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const packets = (JSON.parse(out) as { _source: { layers: Record<string, string[]> } }[]).map((p) => p._source.layers);
  t.equal(packets.length, sample.length, 'one packet per UPDATE');
  let agreed = 0;
  for (const [i, u] of sample.entries()) {
    const got = packets[i] ?? {};
    const want = expectedFields(u);
    // Wireshark writes IPv6 in RFC 5952 form, as we do
    const gotSome: Record<string, string[]> = {};
    for (const k of ORACLE_FIELDS) if (got[k] !== undefined) gotSome[k] = got[k];
    try {
      assert.deepStrictEqual(gotSome, want);
      agreed++;
    } catch (e) {
      t.fail(`UPDATE ${i}: ${(e as Error).message.slice(0, 2000)}`);
    }
  }
  t.equal(agreed, sample.length, 'every field of every UPDATE agrees');
});

t.test('tshark reads our 2-octet AS encoding: AS_TRANS in AS_PATH/AGGREGATOR, the real ASNs in AS4_PATH/AS4_AGGREGATOR', async (t) => {
  if (!requires(t as never, { commands: ['tshark'] })) return;
  const X = 4200000000;
  const u = upd({
    attributes: {
      origin: 0,
      asPath: [
        { type: 3, asns: [64512] },
        { type: 2, asns: [65001, X, 65002] },
        { type: 1, asns: [X + 1, 300] },
      ],
      nextHop: '192.0.2.1',
      aggregator: { asn: X + 2, address: '192.0.2.9' },
    },
    nlri: L4('10.0.1.0/24'),
  });
  const dir = mkdtempSync(join(tmpdir(), 'skein-update-oracle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'as2.pcap');
  writeFileSync(file, pcap([encodeUpdate(u, C2)]));
  const fields = [
    'bgp.update.path_attribute.as_path_segment.type',
    'bgp.update.path_attribute.as_path_segment.as2',
    'bgp.update.path_attribute.as_path_segment.as4',
    'bgp.update.path_attribute.aggregator_as',
    'bgp.update.path_attribute.aggregator_origin',
  ];
  const out = execFileSync('tshark', ['-o', 'bgp.asn_len:2', '-r', file, '-T', 'json', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const got = (JSON.parse(out) as { _source: { layers: Record<string, string[]> } }[])[0]!._source.layers;
  t.strictSame(got['bgp.update.path_attribute.as_path_segment.type'], ['3', '2', '1', '2', '1'], 'AS_PATH segments, then AS4_PATH without the confed one (RFC 6793 §4.2.2)');
  t.strictSame(got['bgp.update.path_attribute.as_path_segment.as2'], ['64512', '65001', String(AS_TRANS), '65002', String(AS_TRANS), '300']);
  t.strictSame(got['bgp.update.path_attribute.as_path_segment.as4'], ['65001', String(X), '65002', String(X + 1), '300']);
  t.strictSame(got['bgp.update.path_attribute.aggregator_as'], [String(AS_TRANS), String(X + 2)], 'AGGREGATOR with AS_TRANS, AS4_AGGREGATOR with the real AS');
  t.strictSame(got['bgp.update.path_attribute.aggregator_origin'], ['192.0.2.9', '192.0.2.9']);
  // and our decoder rebuilds the original
  t.strictSame(decodeUpdate(encodeUpdate(u, C2).subarray(19), C2), u);
});
