// Calico's selector language: evaluation against label sets, syntax errors
// with position and expectation, and print/parse round trips.
import t from 'tap';
import fc from 'fast-check';
import {
  parseSelector, printSelector, evaluateSelector, SelectorSyntaxError, type SelectorNode,
} from '../../config/index.js';

const rackA = { rack: 'r1', tor: 'tor-1', zone: 'eu-west-1a', 'kubernetes.io/hostname': 'host-a' };
const rackB = { rack: 'r2', zone: 'eu-west-1b' };
const none = {};

t.test('expressions against label sets', (t) => {
  // [selector, matches rackA, matches rackB, matches none]
  const table: [string, boolean, boolean, boolean][] = [
    ['', true, true, true],
    ['all()', true, true, true],
    ['global()', true, true, true],
    ['has(tor)', true, false, false],
    ['!has(tor)', false, true, true],
    ['!!has(tor)', true, false, false],
    ["rack == 'r1'", true, false, false],
    ['rack == "r1"', true, false, false],
    ["rack != 'r1'", false, true, true],
    ["rack in {'r1', 'r3'}", true, false, false],
    ["rack in {'r1','r2',}", true, true, false],
    ['rack in {}', false, false, false],
    ["rack not in {'r1'}", false, true, true],
    ["zone starts with 'eu-west'", true, true, false],
    ["zone ends with '1b'", false, true, false],
    ["zone contains 'west-1'", true, true, false],
    ["rack == 'r1' && has(tor)", true, false, false],
    ["rack == 'r1' || rack == 'r2'", true, true, false],
    ["!(rack == 'r1' || rack == 'r2')", false, false, true],
    ["has(rack) && !(zone ends with '1a')", false, true, false],
    ["kubernetes.io/hostname == 'host-a'", true, false, false],
    ["(rack == 'r2' || has(tor)) && zone contains 'eu'", true, true, false],
    ["rack == 'r2' || has(tor) && zone contains 'nope'", false, true, false],
  ];
  for (const [sel, a, b, n] of table) {
    const ast = parseSelector(sel);
    t.same(
      [evaluateSelector(ast, rackA), evaluateSelector(ast, rackB), evaluateSelector(ast, new Map(Object.entries(none)))],
      [a, b, n],
      JSON.stringify(sel),
    );
  }
  t.end();
});

t.test('&& binds tighter than ||', (t) => {
  t.same(parseSelector("a == 'x' || b == 'y' && has(c)"), {
    op: 'or',
    operands: [
      { op: '==', label: 'a', value: 'x' },
      { op: 'and', operands: [{ op: '==', label: 'b', value: 'y' }, { op: 'has', label: 'c' }] },
    ],
  });
  t.end();
});

t.test('syntax errors name the position and what was expected', (t) => {
  const cases: [string, number, RegExp][] = [
    ["rack = 'r1'", 5, /"=="/],
    ["rack == r1", 8, /quoted string/],
    ["rack == 'r1", 11, /closing '/],
    ["rack in ('a')", 8, /"\{"/],
    ["rack in {'a' 'b'}", 13, /",".*"\}"/],
    ['has(rack', 8, /"\)" to close has/],
    ['has()', 4, /label name inside has/],
    ["(rack == 'a'", 12, /"\)"/],
    ["rack == 'a' & has(b)", 12, /"&&"/],
    ["rack == 'a' has(b)", 12, /"&&", "\|\|" or the end/],
    ['rack', 4, /an operator/],
    ["rack is 'a'", 5, /an operator/],
    ["zone starts 'a'", 12, /"starts with"/],
    ['&& has(a)', 0, /a label name, has/],
    ['all(x)', 4, /"\)" to close all/],
    ["rack == 'a' ||", 14, /a label name/],
    ['rack == #', 8, /a label name/],
  ];
  for (const [sel, pos, expected] of cases) {
    try {
      parseSelector(sel);
      t.fail(`${sel} parsed`);
    } catch (e) {
      t.type(e, SelectorSyntaxError, sel);
      const err = e as SelectorSyntaxError;
      t.equal(err.position, pos, `${sel}: position`);
      t.match(err.message, expected, `${sel}: ${err.message}`);
      t.match(err.message, new RegExp(`^at position ${pos}: expected .*, found `), sel);
    }
  }
  t.end();
});

// Arbitrary selector trees built from what the grammar can express: labels in
// Calico's alphabet, values without both quote kinds, sets sorted and unique
// (the parser's canonical form), and no directly nested negations (they
// collapse when parsed).
const labelArb = fc.stringMatching(/^[a-zA-Z0-9_./-]{1,12}$/)
  .filter((l) => !['in', 'contains', 'not', 'starts', 'ends'].includes(l));
const valueArb = fc.oneof(fc.stringMatching(/^[a-z0-9 ._/-]{0,8}$/), fc.constant("it's"), fc.constant('say "hi"'));
const leaf: fc.Arbitrary<SelectorNode> = fc.oneof(
  fc.constant({ op: 'all' } as SelectorNode),
  fc.constant({ op: 'global' } as SelectorNode),
  labelArb.map((label) => ({ op: 'has', label }) as SelectorNode),
  fc.tuple(fc.constantFrom('==', '!=', 'contains', 'starts with', 'ends with'), labelArb, valueArb)
    .map(([op, label, value]) => ({ op, label, value }) as SelectorNode),
  fc.tuple(fc.constantFrom('in', 'not in'), labelArb, fc.uniqueArray(valueArb, { maxLength: 4 }))
    .map(([op, label, values]) => ({ op, label, values: [...values].sort() }) as SelectorNode),
);
const tree = fc.letrec<{ node: SelectorNode }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    tie('node').map((operand) => ({ op: 'not', operand }) as SelectorNode),
    fc.tuple(fc.constantFrom('and', 'or'), fc.array(tie('node'), { minLength: 2, maxLength: 3 }))
      .map(([op, operands]) => ({ op, operands }) as SelectorNode),
  ),
})).node;

t.test('print(parse(s)) reparses to an equal tree', (t) => {
  fc.assert(fc.property(tree, (ast) => {
    const text = printSelector(ast);
    const again = parseSelector(text);
    if (JSON.stringify(again) !== JSON.stringify(ast)) throw new Error(`${text} -> ${JSON.stringify(again)}`);
    // and printing is stable
    if (printSelector(again) !== text) throw new Error(`unstable print: ${text}`);
  }), { numRuns: 500 });
  t.pass('round trips held');
  t.end();
});

t.test('parse never throws anything but a SelectorSyntaxError', (t) => {
  fc.assert(fc.property(fc.string({ unit: fc.constantFrom(...'ab()!&|=\'"{},. \tinotsaheglwc'.split('')), maxLength: 24 }), (s) => {
    try {
      const ast = parseSelector(s);
      // whatever parses must also survive a print/parse round trip
      const again = parseSelector(printSelector(ast));
      if (JSON.stringify(again) !== JSON.stringify(ast)) throw new Error(`round trip of ${JSON.stringify(s)}`);
    } catch (e) {
      if (!(e instanceof SelectorSyntaxError)) throw e;
      if (e.position < 0 || e.position > s.length) throw new Error(`position ${e.position} outside ${JSON.stringify(s)}`, { cause: e });
    }
  }), { numRuns: 2000 });
  t.pass('held');
  t.end();
});
