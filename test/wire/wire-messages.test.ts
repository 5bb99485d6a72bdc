// OPEN, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH and the framer: hand-built hex
// vectors (field layouts retyped from the RFCs, each piece commented) asserted
// both ways, the RFC 4271 §6.1 header errors with their exact NOTIFICATION,
// and fast-check properties: round trips, decoder totality, framer splits.
import t from 'tap';
import fc from 'fast-check';
import {
  BgpError,
  DEFAULT_CONTEXT,
  Framer,
  decodeCapabilities,
  decodeMessage,
  decodeNotification,
  decodeOpen,
  encodeCapability,
  encodeMessage,
  encodeNotification,
  errorSubcodeName,
  hardResetCause,
  messageToJson,
  jsonToText,
  openAsn,
  shutdownCommunication,
  validateOpen,
  type Capability,
  type Message,
  type NotificationMessage,
  type OpenMessage,
  type UpdateMessage,
  ipv4ToString,
  prefix4,
  prefix6FromBytes,
} from '../../bgp/wire/index.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s|]+/g, ''), 'hex');
const MARKER = 'ffffffffffffffffffffffffffffffff';
/** A header for a message of `len` octets of `type` (RFC 4271 §4.1). */
const hdr = (len: number, type: number): string => MARKER + len.toString(16).padStart(4, '0') + type.toString(16).padStart(2, '0');

/** The assertions the helpers below use (a subtest has them all). */
type Asserts = Pick<typeof t, 'strictSame' | 'same' | 'equal' | 'fail'>;

/** Decode via decodeMessage and assert both directions against the vector. */
function both(t: Asserts, name: string, bytes: Buffer, shape: Message): void {
  t.strictSame(decodeMessage(bytes), shape, `${name}: decode`);
  t.equal(encodeMessage(shape).toString('hex'), bytes.toString('hex'), `${name}: encode`);
}

function expectError(t: Asserts, fn: () => unknown, code: number, subcode: number, data?: string, name = ''): void {
  try {
    fn();
    t.fail(`${name}: expected BgpError ${code}/${subcode}`);
  } catch (e) {
    if (!(e instanceof BgpError)) {
      t.fail(`${name}: not a BgpError: ${String(e)}`);
      return;
    }
    t.same([e.code, e.subcode], [code, subcode], `${name}: ${e.reason}`);
    if (data !== undefined) t.equal(e.data.toString('hex'), data, `${name}: NOTIFICATION data`);
  }
}

// ---------------------------------------------------------------- capabilities

// Each capability as its TLV (code, length, value; RFC 5492 §4) and its shape.
const CAPABILITY_VECTORS: readonly [string, string, Capability][] = [
  // RFC 4760 §8: AFI 2 (IPv6), reserved 0, SAFI 1
  ['multiprotocol', '01 04 | 0002 00 01', { code: 1, name: 'multiprotocol', afi: 2, safi: 1 }],
  // RFC 2918 §2: empty
  ['route-refresh', '02 00', { code: 2, name: 'route-refresh' }],
  // RFC 8950 §3: IPv4 unicast NLRI with IPv6 next hop: 0001 0001 0002
  ['extended-next-hop', '05 06 | 0001 0001 0002', { code: 5, name: 'extended-next-hop', entries: [{ afi: 1, safi: 1, nextHopAfi: 2 }] }],
  // RFC 8654 §3: empty
  ['extended-message', '06 00', { code: 6, name: 'extended-message' }],
  // RFC 9234 §4.1: role 3 = customer
  ['bgp-role', '09 01 | 03', { code: 9, name: 'bgp-role', role: 3 }],
  // RFC 4724 §3 + RFC 8538 §2: R=1 N=1, restart time 120 (0xc000 | 0x078), IPv4/unicast F=1, IPv6/unicast F=0
  [
    'graceful-restart',
    '40 0a | c078 | 0001 01 80 | 0002 01 00',
    {
      code: 64,
      name: 'graceful-restart',
      restarting: true,
      notification: true,
      restartTime: 120,
      families: [
        { afi: 1, safi: 1, forwardingState: true },
        { afi: 2, safi: 1, forwardingState: false },
      ],
    },
  ],
  // RFC 4724 §3: helper-only form, no families, time 0
  ['graceful-restart (no families)', '40 02 | 0000', { code: 64, name: 'graceful-restart', restarting: false, notification: false, restartTime: 0, families: [] }],
  // RFC 6793 §3: AS 4200000000 = 0xfa56ea00
  ['4-octet-as', '41 04 | fa56ea00', { code: 65, name: '4-octet-as', asn: 4200000000 }],
  // RFC 7911 §4: IPv4/unicast both (3), IPv6/unicast receive (1)
  [
    'add-path',
    '45 08 | 0001 01 03 | 0002 01 01',
    { code: 69, name: 'add-path', families: [{ afi: 1, safi: 1, sendReceive: 3 }, { afi: 2, safi: 1, sendReceive: 1 }] },
  ],
  // RFC 7313 §3.1: empty
  ['enhanced-route-refresh', '46 00', { code: 70, name: 'enhanced-route-refresh' }],
  // RFC 9494 §3: IPv4/unicast F=1 stale 3600 (0x000e10), IPv6/unicast F=0 stale 86400 (0x015180)
  [
    'long-lived-graceful-restart',
    '47 0e | 0001 01 80 000e10 | 0002 01 00 015180',
    {
      code: 71,
      name: 'long-lived-graceful-restart',
      families: [
        { afi: 1, safi: 1, forwardingState: true, staleTime: 3600 },
        { afi: 2, safi: 1, forwardingState: false, staleTime: 86400 },
      ],
    },
  ],
  // draft-walton-bgp-hostname-capability: 6 "host-a", 3 "lab"
  ['fqdn', '49 0b | 06 686f73742d61 | 03 6c6162', { code: 73, name: 'fqdn', hostname: 'host-a', domainName: 'lab' }],
  // an unassigned code (0xd0 = 208) with 3 octets of value: kept whole
  ['unknown', 'd0 03 | 010203', { code: 208, name: 'unknown', value: hex('010203') }],
];

/** An OPEN around one capabilities parameter: version 4, AS 65001, hold 90, id 192.0.2.1. */
function openAround(capsHex: string): Buffer {
  const caps = hex(capsHex);
  const param = Buffer.concat([Buffer.from([2, caps.length]), caps]);
  const body = Buffer.concat([hex('04 fde9 005a c0000201'), Buffer.from([param.length]), param]);
  return Buffer.concat([hex(hdr(19 + body.length, 1)), body]);
}

t.test('every capability decodes and encodes per its RFC layout', async (t) => {
  for (const [name, h, shape] of CAPABILITY_VECTORS) {
    const out: Capability[] = [];
    decodeCapabilities(hex(h), out);
    t.strictSame(out, [shape], `${name}: decode`);
    t.equal(encodeCapability(shape).toString('hex'), hex(h).toString('hex'), `${name}: encode`);
    const open: OpenMessage = { type: 'OPEN', version: 4, myAs: 65001, holdTime: 90, bgpId: 0xc0000201, capabilities: [shape] };
    both(t, `${name} in an OPEN`, openAround(h), open);
  }
});

t.test('malformed capabilities are OPEN Message Errors with the TLV as data', async (t) => {
  const cases: [string, string][] = [
    ['multiprotocol too short', '01 03 000101'],
    ['route refresh with a value', '02 01 00'],
    ['extended next hop not a multiple of 6', '05 04 00010001'],
    ['extended message with a value', '06 01 00'],
    ['role with 2 octets', '09 02 0001'],
    ['graceful restart with a partial family', '40 04 0078 0001'],
    ['4-octet AS with 2 octets', '41 02 fde9'],
    ['ADD-PATH with send/receive 0', '45 04 0001 01 00'],
    ['ADD-PATH with send/receive 4', '45 04 0001 01 04'],
    ['ADD-PATH empty', '45 00'],
    ['enhanced route refresh with a value', '46 01 00'],
    ['LLGR not a multiple of 7', '47 05 0001018000'],
    ['FQDN hostname overruns', '49 03 05 6162'],
    ['FQDN domain length wrong', '49 04 01 61 05 62'],
    ['FQDN empty', '49 00'],
  ];
  for (const [name, h] of cases) {
    expectError(t, () => decodeCapabilities(hex(h), []), 2, 0, hex(h).toString('hex'), name);
  }
  // TLV framing errors inside the parameter
  expectError(t, () => decodeCapabilities(hex('41'), []), 2, 0, '41', 'truncated capability header');
  expectError(t, () => decodeCapabilities(hex('41 04 0000'), []), 2, 0, '41040000', 'capability overruns the parameter');
});

t.test('a full OPEN with every capability, as one hand-built vector', async (t) => {
  const capsHex = CAPABILITY_VECTORS.filter(([n]) => !n.includes('no families')).map(([, h]) => h).join(' ');
  // lengths by hand: caps 6+2+8+2+3+12+6+10+2+16+13+5 = 85 (0x55); parameter 2+85 = 87 (0x57); body 10+87 = 97; message 116 (0x74)
  const bytes = hex(`${MARKER} 0074 01 | 04 fde9 005a c0000201 | 57 | 02 55 ${capsHex}`);
  const shape: OpenMessage = {
    type: 'OPEN',
    version: 4,
    myAs: 65001,
    holdTime: 90,
    bgpId: 0xc0000201,
    capabilities: CAPABILITY_VECTORS.filter(([n]) => !n.includes('no families')).map(([, , c]) => c),
  };
  both(t, 'full OPEN', bytes, shape);
  t.equal(openAsn(shape), 4200000000, 'the 4-octet AS capability wins over My AS');
  const j = messageToJson(decodeMessage(bytes), bytes.length);
  t.equal(j.asn, 4200000000);
  t.equal(j.bgpId, '192.0.2.1');
  t.equal(j.holdTime, 90);
  t.same(
    (j.capabilities as { code: number; name: string }[]).map((c) => `${c.code}:${c.name}`),
    ['1:multiprotocol', '2:route-refresh', '5:extended-next-hop', '6:extended-message', '9:bgp-role', '64:graceful-restart', '65:4-octet-as', '69:add-path', '70:enhanced-route-refresh', '71:long-lived-graceful-restart', '73:fqdn', '208:unknown'],
  );
  t.match(jsonToText(j), /OPEN \(116 octets\)/);
});

t.test('OPEN optional parameters: several parameters, other types, RFC 9072 extended form', async (t) => {
  // RFC 5492 §4 allows one capability per parameter: 02 06 <MP> 02 02 <RR>; decoded as one list.
  const split = hex(`${MARKER} 0029 01 | 04 fde9 00b4 0a000001 | 0c | 02 06 01 04 0001 0001 | 02 02 02 00`);
  const open = decodeOpen(split.subarray(19));
  t.same(open.capabilities.map((c) => c.name), ['multiprotocol', 'route-refresh']);
  t.equal(open.holdTime, 180);
  // Re-encoding groups the capabilities into one parameter: 2 octets shorter, same meaning.
  t.same(decodeMessage(encodeMessage(open)), open);

  // A parameter that is not capabilities (type 1, deprecated authentication) is kept and rejected by validateOpen.
  const auth = hex(`${MARKER} 0020 01 | 04 fde9 00b4 0a000001 | 03 | 01 01 00`);
  const a = decodeOpen(auth.subarray(19));
  t.same(a.otherParameters, [{ type: 1, value: hex('00') }]);
  const err = validateOpen(a);
  t.same([err?.code, err?.subcode, err?.data.toString('hex')], [2, 4, '01'], 'Unsupported Optional Parameter (RFC 4271 §6.2)');

  // RFC 9072 §2: 50 multiprotocol capabilities (300 octets) need the extended form:
  // Non-Ext OP Len 255, Non-Ext OP Type 255, Extended Opt. Parm. Length 0x012f (3 + 300), then 02 012c <caps>.
  const many: Capability[] = Array.from({ length: 50 }, (_, i) => ({ code: 1, name: 'multiprotocol', afi: 1, safi: i + 1 }) as const);
  const capsHex = many.map((c) => `01 04 0001 00 ${(c as { safi: number }).safi.toString(16).padStart(2, '0')}`).join(' ');
  // message length: 19 + 10 + 3 + 303 = 335 = 0x014f
  const ext = hex(`${MARKER} 014f 01 | 04 fde9 005a c0000201 | ff ff 012f | 02 012c ${capsHex}`);
  const shape: OpenMessage = { type: 'OPEN', version: 4, myAs: 65001, holdTime: 90, bgpId: 0xc0000201, capabilities: many };
  both(t, 'RFC 9072 extended optional parameters', ext, shape);
  // Exactly 255 octets of parameters still fit the classic form: parameter header 2 + 41 MP caps (246)
  // + role (3) + route refresh (2) + extended message (2) = 255.
  const fit: OpenMessage = {
    ...shape,
    capabilities: [...many.slice(0, 41), { code: 9, name: 'bgp-role', role: 4 }, { code: 2, name: 'route-refresh' }, { code: 6, name: 'extended-message' }],
  };
  const fitBytes = encodeMessage(fit);
  t.equal(fitBytes[28], 255, 'classic length octet 255');
  t.equal(fitBytes[29], 2, 'first parameter is capabilities, not the 255 marker');
  t.same(decodeMessage(fitBytes), fit);

  expectError(t, () => decodeOpen(hex('04 fde9 005a c0000201 05 0200')), 2, 0, undefined, 'parameter length beyond the message');
  expectError(t, () => decodeOpen(hex('04 fde9 005a c0000201 02 0203 00')), 2, 0, undefined, 'parameters shorter than the rest');
  expectError(t, () => decodeOpen(hex('04 fde9 005a c0000201 03 02 05 00')), 2, 0, undefined, 'parameter overruns');
  expectError(t, () => decodeOpen(hex('04 fde9 005a c0000201 ff ff')), 2, 0, undefined, 'extended length truncated');
});

t.test('encodeOpen refuses values that do not fit', async (t) => {
  const base: OpenMessage = { type: 'OPEN', version: 4, myAs: 65001, holdTime: 90, bgpId: 1, capabilities: [] };
  t.throws(() => encodeMessage({ ...base, myAs: 4200000000 }), RangeError, 'a 4-octet AS in My AS');
  t.throws(() => encodeMessage({ ...base, holdTime: 70000 }), RangeError);
  t.throws(() => encodeMessage({ ...base, otherParameters: [{ type: 255, value: Buffer.alloc(1) }] }), RangeError, 'the RFC 9072 marker');
});

t.test('validateOpen: version, hold time, identifier, AS 0', async (t) => {
  const base: OpenMessage = { type: 'OPEN', version: 4, myAs: 65001, holdTime: 90, bgpId: 1, capabilities: [] };
  t.equal(validateOpen(base), undefined);
  t.equal(validateOpen({ ...base, holdTime: 0 }), undefined, 'hold time 0 is allowed (RFC 4271 §4.2)');
  t.equal(validateOpen({ ...base, holdTime: 3 }), undefined);
  const v = validateOpen({ ...base, version: 3 });
  t.same([v?.code, v?.subcode, v?.data.toString('hex')], [2, 1, '0004'], 'version: data is the version we support');
  for (const h of [1, 2]) t.same([validateOpen({ ...base, holdTime: h })?.subcode], [6], `hold time ${h}`);
  t.same([validateOpen({ ...base, bgpId: 0 })?.subcode], [3], 'BGP identifier 0');
  t.equal(validateOpen({ ...base, bgpId: 0xe0000001 }), undefined, 'RFC 6286: any non-zero identifier, even a multicast address');
  t.same([validateOpen({ ...base, myAs: 0 })?.subcode], [2], 'AS 0 (RFC 7607)');
  t.same([validateOpen({ ...base, myAs: 23456, capabilities: [{ code: 65, name: '4-octet-as', asn: 0 }] })?.subcode], [2]);
});

// ---------------------------------------------------------------- NOTIFICATION

t.test('NOTIFICATION vectors: names, RFC 9003 text, RFC 8538 hard reset', async (t) => {
  // Message Header Error / Bad Message Length, data = the length field 0x0010
  both(t, 'bad message length', hex(`${hdr(23, 3)} 01 02 0010`), { type: 'NOTIFICATION', code: 1, subcode: 2, data: hex('0010') });
  // Hold Timer Expired, no data
  both(t, 'hold timer expired', hex(`${hdr(21, 3)} 04 00`), { type: 'NOTIFICATION', code: 4, subcode: 0, data: Buffer.alloc(0) });
  // Cease / Administrative Shutdown with RFC 9003 text "bye" (length 3)
  both(t, 'shutdown communication', hex(`${hdr(25, 3)} 06 02 03 627965`), {
    type: 'NOTIFICATION',
    code: 6,
    subcode: 2,
    data: hex('03627965'),
    message: 'bye',
  });
  // Cease / Administrative Reset with UTF-8 text "maintenance ✓" (e2 9c 93): 15 octets
  const text = Buffer.from('maintenance ✓', 'utf8');
  both(t, 'UTF-8 reset text', hex(`${hdr(21 + 1 + text.length, 3)} 06 04 ${text.length.toString(16).padStart(2, '0')} ${text.toString('hex')}`), {
    type: 'NOTIFICATION',
    code: 6,
    subcode: 4,
    data: Buffer.concat([Buffer.from([text.length]), text]),
    message: 'maintenance ✓',
  });
  // RFC 9003 §4 handling: invalid UTF-8 (c3 28) or a length beyond the data keeps the data, no text.
  both(t, 'invalid UTF-8', hex(`${hdr(24, 3)} 06 02 02 c328`), { type: 'NOTIFICATION', code: 6, subcode: 2, data: hex('02c328') });
  both(t, 'length beyond data', hex(`${hdr(24, 3)} 06 02 09 6279`), { type: 'NOTIFICATION', code: 6, subcode: 2, data: hex('096279') });
  t.equal(shutdownCommunication(hex('00')), undefined, 'zero-length text is no text');
  // Text only on Cease 2/4: the same bytes under Cease 3 are plain data.
  t.equal(decodeNotification(hex('0603 03627965')).message, undefined);
  // RFC 8538 §3: Hard Reset carrying Hold Timer Expired (04 00)
  const hr = decodeNotification(hex('0609 0400'));
  t.same(hardResetCause(hr), { code: 4, subcode: 0, data: Buffer.alloc(0) });
  // Hard Reset wrapping Administrative Shutdown with text: the text is exposed too.
  const hrs = decodeNotification(hex('0609 0602 03627965'));
  t.equal(hrs.message, 'bye');
  const j = messageToJson(hrs, 27);
  t.same(j.hardReset, { code: 6, subcode: 2, codeName: 'Cease', subcodeName: 'Administrative Shutdown', data: '03627965' });
  t.same(
    [j.codeName, j.subcodeName, j.data, j.message],
    ['Cease', 'Hard Reset', '060203627965', 'bye'],
  );
  // Building data from a message; over-long text is cut at 255 octets on a character boundary.
  const built = encodeNotification({ code: 6, subcode: 2, data: Buffer.alloc(0), message: 'é'.repeat(200) });
  t.equal(built[21], 254, '127 two-octet characters fit, the 128th would split');
  t.equal(decodeNotification(built.subarray(19)).message, 'é'.repeat(127));
});

t.test('every code and subcode in constants has a name', async (t) => {
  const known: [number, number[]][] = [
    [1, [1, 2, 3]],
    [2, [1, 2, 3, 4, 6, 7, 11]],
    [3, [1, 2, 3, 4, 5, 6, 8, 9, 10, 11]],
    [5, [0, 1, 2, 3]],
    [6, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]],
    [7, [1]],
  ];
  for (const [code, subs] of known) for (const s of subs) t.notMatch(errorSubcodeName(code, s), /^Unknown/, `${code}/${s}`);
  t.equal(errorSubcodeName(4, 0), 'Unspecific');
  t.equal(errorSubcodeName(6, 99), 'Unknown subcode 99');
});

// ---------------------------------------------------------------- KEEPALIVE, ROUTE-REFRESH

t.test('KEEPALIVE and ROUTE-REFRESH vectors', async (t) => {
  both(t, 'keepalive', hex(hdr(19, 4)), { type: 'KEEPALIVE' });
  // RFC 2918 §3 / RFC 7313 §3: AFI, subtype, SAFI
  both(t, 'refresh IPv4 unicast', hex(`${hdr(23, 5)} 0001 00 01`), { type: 'ROUTE-REFRESH', afi: 1, safi: 1, subtype: 0 });
  both(t, 'BoRR IPv6 unicast', hex(`${hdr(23, 5)} 0002 01 01`), { type: 'ROUTE-REFRESH', afi: 2, safi: 1, subtype: 1 });
  both(t, 'EoRR IPv6 unicast', hex(`${hdr(23, 5)} 0002 02 01`), { type: 'ROUTE-REFRESH', afi: 2, safi: 1, subtype: 2 });
  // RFC 7313 §5: any other length is ROUTE-REFRESH Message Error / Invalid Message Length, data = the whole message.
  const long = hex(`${hdr(24, 5)} 0001 01 01 00`);
  expectError(t, () => decodeMessage(long), 7, 1, long.toString('hex'), 'refresh of 24 octets');
  const j = messageToJson(decodeMessage(hex(`${hdr(23, 5)} 0002 01 01`)), 23);
  t.same(j, { type: 'ROUTE-REFRESH', length: 23, afi: 2, safi: 1, subtype: 1, subtypeName: 'BoRR' });
});

// ---------------------------------------------------------------- UPDATE errors in JSON

t.test('an UPDATE with RFC 7606 errors: JSON reports the error that set the action', async (t) => {
  // attrs: ORIGIN IGP | AS_PATH SEQ [65001] | NEXT_HOP 192.0.2.1 | ATOMIC_AGGREGATE with 1 octet (RFC 7606 §7.6:
  // attribute discard) | COMMUNITIES with 3 octets (RFC 7606 §7.8: treat-as-withdraw) = 4+9+7+4+6 = 30 (0x1e);
  // NLRI 10.1.0.0/24; message 19 + 2 + 2 + 30 + 4 = 57 (0x39)
  const bytes = hex(`${hdr(57, 2)} 0000 001e | 40010100 | 40020602 01 0000fde9 | 400304 c0000201 | 40060100 | c00803 000001 | 18 0a0100`);
  const m = decodeMessage(bytes);
  const j = messageToJson(m, bytes.length);
  const err = j.error as { code: number; subcode: number; action: string; reason: string };
  t.same([err.code, err.action], [3, 'treat-as-withdraw']);
  t.match(err.reason, /COMMUNITIES/);
  t.equal((j.errors as unknown[]).length, 2, 'both errors listed');
  t.same(j.nlri, ['10.1.0.0/24'], 'the prefixes are still reported (to be withdrawn)');
});

// ---------------------------------------------------------------- header checks

t.test('header errors: RFC 4271 §6.1 codes, subcodes and data', async (t) => {
  const cases: [string, string, number, number, string][] = [
    ['marker not all ones', `${'ff'.repeat(15)}fe 0013 04`, 1, 1, ''],
    ['length 18', `${MARKER} 0012 04`, 1, 2, '0012'],
    ['length 4097', `${MARKER} 1001 02`, 1, 2, '1001'],
    ['type 0', `${MARKER} 0013 00`, 1, 3, '00'],
    ['type 6', `${MARKER} 0013 06`, 1, 3, '06'],
    ['OPEN of 28', `${MARKER} 001c 01`, 1, 2, '001c'],
    ['UPDATE of 22', `${MARKER} 0016 02`, 1, 2, '0016'],
    ['NOTIFICATION of 20', `${MARKER} 0014 03`, 1, 2, '0014'],
    ['KEEPALIVE of 20', `${MARKER} 0014 04`, 1, 2, '0014'],
  ];
  for (const [name, h, code, sub, data] of cases) {
    const head = hex(h);
    const len = head.readUInt16BE(16);
    // pad to the claimed length so only the header rule can fail
    const bytes = Buffer.concat([head, Buffer.alloc(Math.max(0, Math.min(len, 4200) - 19))]);
    expectError(t, () => decodeMessage(bytes), code, sub, data, `decodeMessage: ${name}`);
    const f = new Framer();
    expectError(t, () => f.feed(bytes), code, sub, data, `framer: ${name}`);
    // the framer judges the header as soon as its 19 octets are in, before the body arrives
    expectError(t, () => new Framer().feed(head), code, sub, data, `framer, header only: ${name}`);
    expectError(t, () => f.feed(hex(hdr(19, 4))), code, sub, data, `framer stays failed: ${name}`);
  }
  // RFC 8654: with extended messages, UPDATE may be 4097..65535 but OPEN may not (§4).
  const bigUpdateHeader = hex(`${MARKER} 1001 02`);
  const fx = new Framer({ extendedMessage: true });
  t.same(fx.feed(bigUpdateHeader), [], 'a 4097-octet UPDATE header is accepted, body awaited');
  t.equal(fx.buffered, 19);
  expectError(t, () => new Framer({ extendedMessage: true }).feed(hex(`${MARKER} 1001 01`)), 1, 2, '1001', 'OPEN above 4096 with RFC 8654');
  const fl = new Framer();
  fl.extendedMessage = true;
  t.equal(fl.extendedMessage, true);
  t.same(fl.feed(hex(`${MARKER} ffff 02`)), [], '65535 accepted once negotiated');
  expectError(t, () => decodeMessage(hex(hdr(20, 4) + '00')), 1, 2, '0014', 'decodeMessage KEEPALIVE of 20');
  expectError(t, () => decodeMessage(hex(hdr(19, 4) + '00')), 1, 2, '0013', 'buffer longer than the length field');
  expectError(t, () => decodeMessage(hex('ffff')), 1, 2, '', 'shorter than a header');
  // A framed ROUTE-REFRESH of the wrong length fails once complete, with the whole message as data.
  const rr = hex(`${hdr(25, 5)} 0001 00 01 0000`);
  expectError(t, () => new Framer().feed(rr), 7, 1, rr.toString('hex'), 'framer: refresh of 25 octets');
});

t.test('framer: RFC 8654 extended messages split across chunks', async (t) => {
  // two 20000-octet UPDATE-typed frames (the framer checks headers only) and a KEEPALIVE, cut into uneven chunks
  const big = (fill: number): Buffer => {
    const b = Buffer.alloc(20000, fill);
    b.fill(0xff, 0, 16);
    b.writeUInt16BE(20000, 16);
    b[18] = 2;
    return b;
  };
  const msgs = [big(1), hex(hdr(19, 4)), big(2)];
  const stream = Buffer.concat(msgs);
  const f = new Framer({ extendedMessage: true });
  const got: Buffer[] = [];
  for (const [a, b] of [[0, 7], [7, 9000], [9000, 20005], [20005, 20030], [20030, stream.length]] as const) got.push(...f.feed(stream.subarray(a, b)));
  t.same(got.map((g) => g.toString('hex')), msgs.map((m) => m.toString('hex')));
  // without the capability the same stream is a Bad Message Length with the length field as data
  expectError(t, () => new Framer().feed(stream.subarray(0, 19)), 1, 2, '4e20', 'no RFC 8654: 20000 is too long');
});

t.test('framer: bound on buffered octets, views without copies', async (t) => {
  const f = new Framer({ maxBuffered: 100 });
  f.push(Buffer.alloc(60, 0xff));
  expectError(t, () => f.push(Buffer.alloc(41, 0xff)), 6, 8, '', 'Cease / Out of Resources past the bound');
  // One chunk with three messages: each is a view into it (same ArrayBuffer, no copy).
  const chunk = Buffer.concat([hex(hdr(19, 4)), hex(`${hdr(23, 5)} 0001 00 01`), hex(hdr(19, 4))]);
  const msgs = new Framer().feed(chunk);
  t.equal(msgs.length, 3);
  t.ok(msgs.every((m) => m.buffer === chunk.buffer), 'zero-copy subarrays');
  t.same(msgs.map((m) => m.length), [19, 23, 19]);
  // split across two chunks: copied once into one buffer
  const g = new Framer();
  t.same(g.feed(chunk.subarray(0, 25)), [chunk.subarray(0, 19)]);
  t.same(g.feed(chunk.subarray(25)), [chunk.subarray(19, 42), chunk.subarray(42)]);
  t.equal(g.buffered, 0);
});

// ---------------------------------------------------------------- properties

/** records with a plain prototype, so strictSame compares them with decoded values */
const rec: typeof fc.record = ((m: never, c?: object) => fc.record(m, { ...c, noNullPrototype: true } as never)) as never;
const u8 = fc.integer({ min: 0, max: 255 });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const afi = fc.constantFrom(1, 2, 25, 16388);
// any Unicode text or plain ASCII; two of them must fit one 255-octet capability
const text = fc
  .oneof(fc.string({ unit: 'grapheme', maxLength: 20 }), fc.string({ unit: 'grapheme-ascii', maxLength: 20 }))
  .filter((s) => Buffer.byteLength(s) <= 120);
const KNOWN = new Set([1, 2, 5, 6, 9, 64, 65, 69, 70, 71, 73]);

export const capabilityArb: fc.Arbitrary<Capability> = fc.oneof(
  rec({ code: fc.constant(1 as const), name: fc.constant('multiprotocol' as const), afi, safi: u8 }),
  fc.constant({ code: 2 as const, name: 'route-refresh' as const }),
  rec({
    code: fc.constant(5 as const),
    name: fc.constant('extended-next-hop' as const),
    entries: fc.array(rec({ afi, safi: u16, nextHopAfi: afi }), { minLength: 1, maxLength: 4 }),
  }),
  fc.constant({ code: 6 as const, name: 'extended-message' as const }),
  rec({ code: fc.constant(9 as const), name: fc.constant('bgp-role' as const), role: u8 }),
  rec({
    code: fc.constant(64 as const),
    name: fc.constant('graceful-restart' as const),
    restarting: fc.boolean(),
    notification: fc.boolean(),
    restartTime: fc.integer({ min: 0, max: 4095 }),
    families: fc.array(rec({ afi, safi: u8, forwardingState: fc.boolean() }), { maxLength: 4 }),
  }),
  rec({ code: fc.constant(65 as const), name: fc.constant('4-octet-as' as const), asn: u32 }),
  rec({
    code: fc.constant(69 as const),
    name: fc.constant('add-path' as const),
    families: fc.array(rec({ afi, safi: u8, sendReceive: fc.constantFrom(1 as const, 2 as const, 3 as const) }), { minLength: 1, maxLength: 4 }),
  }),
  fc.constant({ code: 70 as const, name: 'enhanced-route-refresh' as const }),
  rec({
    code: fc.constant(71 as const),
    name: fc.constant('long-lived-graceful-restart' as const),
    families: fc.array(rec({ afi, safi: u8, forwardingState: fc.boolean(), staleTime: fc.integer({ min: 0, max: 0xffffff }) }), { maxLength: 4 }),
  }),
  rec({ code: fc.constant(73 as const), name: fc.constant('fqdn' as const), hostname: text, domainName: text }),
  rec({
    code: u8.filter((c) => !KNOWN.has(c)),
    name: fc.constant('unknown' as const),
    value: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  }),
);

export const openArb: fc.Arbitrary<OpenMessage> = fc
  .record({
    version: fc.oneof(fc.constant(4), u8),
    myAs: u16,
    holdTime: u16,
    bgpId: u32,
    // up to 70 capabilities: past 255 octets the RFC 9072 form is exercised
    capabilities: fc.oneof(fc.array(capabilityArb, { maxLength: 8 }), fc.array(capabilityArb, { minLength: 40, maxLength: 70 })),
    other: fc.array(
      rec({ type: u8.filter((x) => x !== 2 && x !== 255), value: fc.uint8Array({ maxLength: 10 }).map((a) => Buffer.from(a)) }),
      { maxLength: 2 },
    ),
  })
  .map(({ other, ...o }) => (other.length ? { type: 'OPEN' as const, ...o, otherParameters: other } : { type: 'OPEN' as const, ...o }));

export const notificationArb: fc.Arbitrary<NotificationMessage> = fc.oneof(
  // any code/subcode without text semantics, any data
  fc
    .record({ code: u8, subcode: u8, data: fc.uint8Array({ maxLength: 60 }).map((a) => Buffer.from(a)) })
    .filter((n) => !(n.code === 6 && (n.subcode === 2 || n.subcode === 4 || n.subcode === 9)))
    .map((n) => ({ type: 'NOTIFICATION' as const, ...n })),
  // RFC 9003: Cease 2/4 with a shutdown communication
  fc
    .record({ subcode: fc.constantFrom(2, 4), message: text.filter((s) => s.length > 0) })
    .map(({ subcode, message }) => {
      const b = Buffer.from(message, 'utf8');
      return { type: 'NOTIFICATION' as const, code: 6, subcode, data: Buffer.concat([Buffer.from([b.length]), b]), message };
    }),
);

// UPDATEs through decodeMessage/encodeMessage (update.ts has the exhaustive UPDATE properties; here they
// exercise the dispatch and the framer): IPv4 NLRI with the common attributes, or IPv6 in MP_REACH_NLRI.
const p4Arb = fc.tuple(u32, fc.integer({ min: 0, max: 32 })).map(([a, l]) => prefix4(a, l));
const p6Arb = fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 })).map(([b, l]) => prefix6FromBytes(b, l));
const updateArb: fc.Arbitrary<UpdateMessage> = rec({
  v6: fc.boolean(),
  p4: fc.array(p4Arb, { minLength: 1, maxLength: 20 }),
  p6: fc.array(p6Arb, { minLength: 1, maxLength: 20 }),
  withdrawn: fc.array(p4Arb, { maxLength: 5 }),
  asns: fc.array(u32, { maxLength: 6 }),
  nextHop: u32.map(ipv4ToString),
  med: u32,
  communities: fc.array(u32, { minLength: 1, maxLength: 4 }),
}).map((g) => {
  const none4 = { afi: 1 as const, safi: 1, prefixes: [] as number[], pathIds: null };
  const attributes = { origin: 0 as const, asPath: g.asns.length ? [{ type: 2 as const, asns: g.asns }] : [], med: g.med, communities: g.communities };
  return g.v6
    ? {
        type: 'UPDATE' as const,
        withdrawn: none4,
        attributes,
        nlri: none4,
        mpReach: { afi: 2, safi: 1, nextHops: ['fd00::1'], nlri: { afi: 2 as const, safi: 1, prefixes: g.p6, pathIds: null } },
      }
    : {
        type: 'UPDATE' as const,
        withdrawn: { ...none4, prefixes: g.withdrawn },
        attributes: { ...attributes, nextHop: g.nextHop },
        nlri: { ...none4, prefixes: g.p4 },
      };
});

const messageArb: fc.Arbitrary<Message> = fc.oneof(
  openArb,
  updateArb,
  notificationArb,
  fc.constant({ type: 'KEEPALIVE' as const }),
  rec({ type: fc.constant('ROUTE-REFRESH' as const), afi: u16, safi: u8, subtype: u8 }),
);

t.test('property: decode(encode(x)) equals x for OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH', async (t) => {
  fc.assert(
    fc.property(messageArb, (m) => {
      const bytes = encodeMessage(m);
      t.strictSame(decodeMessage(bytes), m);
      // and the bytes are canonical: encoding the decoded value gives them back
      return encodeMessage(decodeMessage(bytes)).equals(bytes);
    }),
    { numRuns: 400 },
  );
});

function totality(bytes: Buffer): true {
  try {
    decodeMessage(bytes, DEFAULT_CONTEXT);
  } catch (e) {
    if (!(e instanceof BgpError)) throw new Error(`decoder threw ${String(e)} for ${bytes.toString('hex')}`, { cause: e });
  }
  return true;
}

t.test('property: the decoder returns a message or throws a BgpError, nothing else', async (t) => {
  // arbitrary bytes
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a)), totality), { numRuns: 500 });
  // a valid header around arbitrary bodies, for every type, so the body decoders are reached
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5 }), fc.uint8Array({ maxLength: 120 }), (type, body) =>
      totality(Buffer.concat([hex(hdr(19 + body.length, type)), body])),
    ),
    { numRuns: 2000 },
  );
  // valid messages with a few octets changed, truncated or extended (length field kept consistent)
  fc.assert(
    fc.property(
      messageArb,
      fc.array(fc.tuple(fc.nat(), u8), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: -8, max: 8 }),
      (m, edits, grow) => {
        const b = encodeMessage(m);
        const len = Math.max(19, b.length + grow);
        const out = Buffer.alloc(len);
        b.copy(out, 0, 0, Math.min(b.length, len));
        for (const [at, v] of edits) if (len > 19) out[19 + (at % (len - 19))] = v;
        out.writeUInt16BE(len, 16);
        return totality(out);
      },
    ),
    { numRuns: 1000 },
  );
  t.pass('no other exception');
});

t.test('property: the framer yields the same messages however the stream is split', async (t) => {
  const streamArb = fc.array(messageArb, { minLength: 1, maxLength: 8 }).map((ms) => ms.map((m) => encodeMessage(m)));
  fc.assert(
    fc.property(streamArb, fc.array(fc.nat(), { maxLength: 12 }), (msgs, cuts) => {
      const stream = Buffer.concat(msgs);
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
      const f = new Framer();
      const got: Buffer[] = [];
      let prev = 0;
      for (const p of [...points, stream.length]) {
        got.push(...f.feed(stream.subarray(prev, p)));
        prev = p;
      }
      t.same(got.map((b) => b.toString('hex')), msgs.map((b) => b.toString('hex')));
      return f.buffered === 0;
    }),
    { numRuns: 300 },
  );
  // exhaustively: one byte at a time, and a single cut at every offset of a fixed stream
  const msgs = [
    encodeMessage({ type: 'OPEN', version: 4, myAs: 65001, holdTime: 90, bgpId: 1, capabilities: CAPABILITY_VECTORS.map(([, , c]) => c) }),
    encodeMessage({ type: 'KEEPALIVE' }),
    encodeMessage({ type: 'NOTIFICATION', code: 6, subcode: 2, data: hex('03627965'), message: 'bye' }),
  ];
  const stream = Buffer.concat(msgs);
  const f1 = new Framer();
  const bytewise: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) bytewise.push(...f1.feed(stream.subarray(i, i + 1)));
  t.same(bytewise, msgs, 'one octet at a time');
  let ok = 0;
  for (let cut = 0; cut <= stream.length; cut++) {
    const f = new Framer();
    const got = [...f.feed(stream.subarray(0, cut)), ...f.feed(stream.subarray(cut))];
    if (got.length === 3 && got.every((g, i) => g.equals(msgs[i] as Buffer))) ok++;
  }
  t.equal(ok, stream.length + 1, 'every single cut');
});
