// An ESLint rule that keeps the four rooms of docs/architecture.md apart:
// bgp/, fib/ and config/ are libraries and never import each other or src/;
// src/ may import any of them. test/, scripts/ and bench/ may import anything.
// Resolving the specifier against the importing file (instead of matching the
// text of the specifier) means no spelling of a relative path gets around it.
import { dirname, relative, resolve, sep } from 'node:path';

const LIBRARIES = new Set(['bgp', 'fib', 'config']);
const ROOMS = new Set(['bgp', 'fib', 'config', 'src']);

function roomOf(root, file) {
  const rel = relative(root, file);
  if (rel.startsWith('..')) return undefined;
  const first = rel.split(sep)[0];
  return ROOMS.has(first) ? first : undefined;
}

/** @type {import('eslint').Rule.RuleModule} */
export const boundariesRule = {
  meta: {
    type: 'problem',
    docs: { description: 'bgp/, fib/ and config/ import neither each other nor src/' },
    schema: [{ type: 'object', properties: { root: { type: 'string' } }, additionalProperties: false }],
    messages: {
      crossing: "{{from}}/ must not import from {{to}}/ ('{{spec}}'): the libraries are independent; wire them together in src/",
    },
  },
  create(context) {
    const root = context.options[0]?.root ?? context.cwd;
    const from = roomOf(root, context.filename);
    if (from === undefined || !LIBRARIES.has(from)) return {};
    const check = (node, spec) => {
      if (typeof spec !== 'string' || !spec.startsWith('.')) return;
      const to = roomOf(root, resolve(dirname(context.filename), spec));
      if (to !== undefined && to !== from) context.report({ node, messageId: 'crossing', data: { from, to, spec } });
    };
    return {
      ImportDeclaration: (n) => check(n, n.source.value),
      ExportAllDeclaration: (n) => check(n, n.source.value),
      ExportNamedDeclaration: (n) => n.source && check(n, n.source.value),
      ImportExpression: (n) => n.source.type === 'Literal' && check(n, n.source.value),
    };
  },
};

export default { rules: { boundaries: boundariesRule } };
