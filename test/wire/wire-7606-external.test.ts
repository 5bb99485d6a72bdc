// RFC 7606 §7.5, §7.9, §7.10: LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST received from an external peer are
// discarded (attribute discard) whatever their length; from an internal peer a wrong length is treat-as-withdraw.
import t from 'tap';
import { DEFAULT_CONTEXT, decodeUpdate } from '../../bgp/index.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** An UPDATE body: no withdrawn routes, the given attributes after ORIGIN/AS_PATH/NEXT_HOP, NLRI 10.1.2.0/24. */
function body(extra: string): Buffer {
  const attrs = hex(`40 01 01 00  40 02 06 02 01 0000fde8  40 03 04 0a000001 ${extra}`);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(attrs.length);
  return Buffer.concat([hex('0000'), len, attrs, hex('18 0a0102')]);
}
const EXT = { ...DEFAULT_CONTEXT, external: true };
const INT = { ...DEFAULT_CONTEXT, external: false };

const cases: [string, string][] = [
  ['LOCAL_PREF, 3 octets', '40 05 03 000064'],
  ['ORIGINATOR_ID, 3 octets', '80 09 03 0a0000'],
  ['CLUSTER_LIST, 5 octets', '80 0a 05 0a00000101'],
];

for (const [what, attr] of cases) {
  t.test(`${what}`, (t) => {
    const e = decodeUpdate(body(attr), EXT);
    t.equal(e.errorAction, 'attribute-discard', 'external: attribute discard');
    t.equal(e.nlri.prefixes.length, 1, 'the route stands');
    t.equal(e.attributes.localPref, undefined);
    t.equal(e.attributes.originatorId, undefined);
    t.equal(e.attributes.clusterList, undefined);
    const i = decodeUpdate(body(attr), INT);
    t.equal(i.errorAction, 'treat-as-withdraw', 'internal: treat-as-withdraw, as before');
    t.end();
  });
}

t.test('well-formed ones from an external peer are dropped quietly; from an internal peer kept', (t) => {
  const attrs = '40 05 04 00000096  80 09 04 0a000009  80 0a 04 01010101';
  const e = decodeUpdate(body(attrs), EXT);
  t.equal(e.errorAction, undefined, 'no error');
  t.same([e.attributes.localPref, e.attributes.originatorId, e.attributes.clusterList], [undefined, undefined, undefined]);
  const i = decodeUpdate(body(attrs), INT);
  t.same([i.attributes.localPref, i.attributes.originatorId, i.attributes.clusterList], [150, 0x0a000009, [0x01010101]]);
  t.end();
});
