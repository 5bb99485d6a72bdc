// `skeinctl decode` end to end: the built CLI (dist/src/skeinctl.js) run as a
// child process on good and malformed hex, checking its JSON (docs/contract.md),
// its text rendering and its exit codes (0 ok, 1 malformed message, 2 usage).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { encodeMessage, prefix4, type Message } from '../../bgp/index.js';

const CLI = join(`${import.meta.dirname}/..`, '..', 'dist', 'src', 'skeinctl.js');
const MARKER = 'ff'.repeat(16);

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function skeinctl(args: string[], input?: string): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input, timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json(r: Run): Record<string, unknown> {
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

const hexOf = (m: Message): string => encodeMessage(m).toString('hex');

t.before(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first (npm test does it in pretest)`);
});

t.test('decodes each message type to the contract JSON, exit 0', async (t) => {
  // OPEN: asn comes from the 4-octet AS capability; hex given with spaces
  const open = hexOf({
    type: 'OPEN',
    version: 4,
    myAs: 23456,
    holdTime: 90,
    bgpId: 0xc0000201,
    capabilities: [
      { code: 1, name: 'multiprotocol', afi: 2, safi: 1 },
      { code: 65, name: '4-octet-as', asn: 4200000001 },
    ],
  }).replace(/(..)/g, '$1 ');
  let r = skeinctl(['decode', open, '--json']);
  t.equal(r.status, 0, r.stderr);
  t.same(json(r), {
    type: 'OPEN',
    length: 43,
    version: 4,
    asn: 4200000001,
    myAs: 23456,
    holdTime: 90,
    bgpId: '192.0.2.1',
    capabilities: [
      { code: 1, name: 'multiprotocol', afi: 2, safi: 1, family: 'ipv6-unicast' },
      { code: 65, name: '4-octet-as', asn: 4200000001 },
    ],
  });

  // UPDATE with the attributes docs/contract.md names; hex with colons
  const update = hexOf({
    type: 'UPDATE',
    withdrawn: { afi: 1, safi: 1, prefixes: [prefix4(0x0a090000, 16)], pathIds: null },
    attributes: {
      origin: 0,
      asPath: [{ type: 2, asns: [65001, 4200000000] }, { type: 1, asns: [65010, 65011] }],
      nextHop: '192.0.2.1',
      med: 5,
      localPref: 200,
      communities: [65000 * 65536 + 100],
      largeCommunities: [[65000, 1, 2]],
      extendedCommunities: [Buffer.from('0002fde800000001', 'hex'), Buffer.from('80090102030405ff', 'hex')],
      originatorId: 0xc0000209,
      clusterList: [0x01020304],
    },
    nlri: { afi: 1, safi: 1, prefixes: [prefix4(0x0a010000, 24)], pathIds: null },
  }).replace(/(..)(?!$)/g, '$1:');
  r = skeinctl(['decode', '--json', update]);
  t.equal(r.status, 0, r.stderr);
  const u = json(r);
  t.same([u.type, u.withdrawn, u.nlri], ['UPDATE', ['10.9.0.0/16'], ['10.1.0.0/24']]);
  t.same(u.attributes, {
    origin: 'IGP',
    asPath: [
      { type: 'AS_SEQUENCE', asns: [65001, 4200000000] },
      { type: 'AS_SET', asns: [65010, 65011] },
    ],
    nextHop: '192.0.2.1',
    med: 5,
    localPref: 200,
    communities: ['65000:100'],
    largeCommunities: ['65000:1:2'],
    extendedCommunities: ['rt:65000:1', '80090102030405ff'],
    originatorId: '192.0.2.9',
    clusterList: ['1.2.3.4'],
  });
  t.notOk('endOfRib' in u);

  // IPv6 MP_REACH and an IPv6 End-of-RIB (empty MP_UNREACH), read from stdin with '-'
  const v6 = hexOf({
    type: 'UPDATE',
    withdrawn: { afi: 1, safi: 1, prefixes: [], pathIds: null },
    attributes: { origin: 0, asPath: [{ type: 2, asns: [65001] }] },
    nlri: { afi: 1, safi: 1, prefixes: [], pathIds: null },
    mpReach: { afi: 2, safi: 1, nextHops: ['fd00::1'], nlri: { afi: 2, safi: 1, prefixes: ['fd00:1::/64'], pathIds: null } },
  });
  r = skeinctl(['decode', '-', '--json'], `${v6}\n`);
  t.equal(r.status, 0, r.stderr);
  t.same((json(r).attributes as Record<string, unknown>).mpReach, { afi: 2, safi: 1, nextHops: ['fd00::1'], nlri: ['fd00:1::/64'] });
  const eor6 = hexOf({
    type: 'UPDATE',
    withdrawn: { afi: 1, safi: 1, prefixes: [], pathIds: null },
    attributes: {},
    nlri: { afi: 1, safi: 1, prefixes: [], pathIds: null },
    mpUnreach: { afi: 2, safi: 1, withdrawn: { afi: 2, safi: 1, prefixes: [], pathIds: null } },
  });
  r = skeinctl(['decode', eor6, '--json']);
  t.same(json(r).endOfRib, { afi: 2, safi: 1 });
  r = skeinctl(['decode', `${MARKER}0017020000 0000`, '--json']);
  t.same(json(r).endOfRib, { afi: 1, safi: 1 }, 'IPv4 End-of-RIB: the empty UPDATE');

  // NOTIFICATION with an RFC 9003 shutdown communication
  r = skeinctl(['decode', `${MARKER}0019 03 0602 03627965`, '--json']);
  t.equal(r.status, 0);
  t.same(json(r), {
    type: 'NOTIFICATION',
    length: 25,
    code: 6,
    subcode: 2,
    codeName: 'Cease',
    subcodeName: 'Administrative Shutdown',
    data: '03627965',
    message: 'bye',
  });
  r = skeinctl(['decode', `${MARKER}0013 04`, '--json']);
  t.same(json(r), { type: 'KEEPALIVE', length: 19 });
  r = skeinctl(['decode', `0x${MARKER}0017 05 0002 02 01`, '--json']);
  t.same(json(r), { type: 'ROUTE-REFRESH', length: 23, afi: 2, safi: 1, subtype: 2, subtypeName: 'EoRR' });
});

t.test('--as2 and --add-path change how the bytes are read', async (t) => {
  // AS_PATH with one 2-octet AS (fde9 = 65001): attrs ORIGIN (4) + AS_PATH (7) + NEXT_HOP (7) = 18 (0x12)
  const as2 = `${MARKER} 002d 02 | 0000 0012 | 40010100 | 40020402 01fde9 | 400304 c0000201 | 18 0a0100`.replace(/[ |]/g, '');
  let r = skeinctl(['decode', as2, '--as2', '--json']);
  t.equal(r.status, 0, r.stderr);
  t.same((json(r).attributes as Record<string, unknown>).asPath, [{ type: 'AS_SEQUENCE', asns: [65001] }]);
  // Read as a 4-octet session, the same bytes are a malformed AS_PATH: the error is reported, exit 1.
  r = skeinctl(['decode', as2, '--json']);
  t.equal(r.status, 1);
  const err = json(r).error as Record<string, unknown>;
  t.same([err.code, err.subcode], [3, 11], `Malformed AS_PATH: ${String(err.reason)}`);
  t.ok(typeof err.action === 'string' && typeof err.reason === 'string');

  // RFC 7911 NLRI: path id 1, then 10.1.0.0/24; attrs 4 + 9 + 7 = 20 (0x14); body 2+2+20+8 = 32, message 51 (0x33)
  const ap = `${MARKER} 0033 02 | 0000 0014 | 40010100 | 40020602 01 0000fde9 | 400304 c0000201 | 00000001 18 0a0100`.replace(/[ |]/g, '');
  r = skeinctl(['decode', ap, '--add-path', '--json']);
  t.equal(r.status, 0, r.stderr);
  t.same([json(r).nlri, json(r).nlriPathIds], [['10.1.0.0/24'], [1]]);
});

t.test('malformed messages: error JSON or text, exit 1, no stack trace', async (t) => {
  const cases: [string, string, number, number][] = [
    ['marker', `${'ff'.repeat(15)}fe 0013 04`, 1, 1],
    ['length', `${MARKER} 0012 04`, 1, 2],
    ['type', `${MARKER} 0013 09`, 1, 3],
    ['length field and bytes disagree', `${MARKER} 0014 04`, 1, 2],
    ['OPEN parameter overruns', `${MARKER} 001f 01 04fde9005ac0000201 02 0201`, 2, 0],
    ['bad capability', `${MARKER} 0021 01 04fde9005ac0000201 04 0202 4100`, 2, 0],
    ['refresh of 24', `${MARKER} 0018 05 0001000100`, 7, 1],
  ];
  for (const [name, h, code, subcode] of cases) {
    const r = skeinctl(['decode', h.replace(/ /g, ''), '--json']);
    t.equal(r.status, 1, `${name}: exit 1`);
    const e = json(r).error as Record<string, unknown>;
    t.same([e.code, e.subcode, e.action], [code, subcode, 'session-reset'], `${name}: ${String(e.reason)}`);
    t.notMatch(r.stderr, /\n\s+at /, `${name}: no stack`);
    const text = skeinctl(['decode', h.replace(/ /g, '')]);
    t.equal(text.status, 1);
    t.match(text.stdout, /error:\n\s+code: \d+\n\s+subcode: \d+\n\s+action: session-reset\n\s+reason: /, `${name}: text rendering`);
  }
});

t.test('text rendering of a good message', async (t) => {
  const r = skeinctl(['decode', `${MARKER}0019 03 0602 03627965`]);
  t.equal(r.status, 0);
  t.match(r.stdout, /^NOTIFICATION \(25 octets\)\n/);
  t.match(r.stdout, /subcodeName: Administrative Shutdown/);
  t.match(r.stdout, /message: bye/);
});

t.test('usage errors: exit 2 with one clear line and the usage, no stack', async (t) => {
  const cases: [string, string[], RegExp][] = [
    ['no command', [], /no command given/],
    ['unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['no hex', ['decode'], /usage: skeinctl decode/],
    ['not hex', ['decode', 'xyz'], /not a hex digit: 'x'/],
    ['odd digits', ['decode', 'fff'], /odd number of hex digits/],
    ['unknown option', ['decode', '00', '--frob'], /unknown option --frob/],
    ['two messages', ['decode', '00', '11'], /usage: skeinctl decode/],
    ['--socket without a value', ['--socket'], /--socket needs a value/],
  ];
  for (const [name, args, re] of cases) {
    const r = skeinctl(args);
    t.equal(r.status, 2, `${name}: exit 2`);
    t.match(r.stderr, re, name);
    t.notMatch(r.stderr, /\n\s+at /, `${name}: no stack`);
  }
  const empty = skeinctl(['decode', '-'], '   \n');
  t.equal(empty.status, 2, 'empty stdin');
  const help = skeinctl(['--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /decode/);
});
