// An ESLint rule that keeps the four rooms of docs/architecture.md apart:
// bgp/, fib/ and config/ are libraries and never import each other or src/;
// src/ may import any of them, but only through the library's index.ts (its
// public surface, exported by name). test/, scripts/ and bench/ may import anything.
// Resolving the specifier against the importing file (instead of matching the
// text of the specifier) means no spelling of a relative path gets around it.
import { dirname, relative, resolve, sep } from 'node:path';

const LIBRARIES = new Set(['bgp', 'fib', 'config']);
const ROOMS = new Set(['bgp', 'fib', 'config', 'src']);

/** The library whose public surface (<root>/<lib>/index.ts, imported as index.js) this file is, if any. */
function isSurface(root, file) {
  const rel = relative(root, file).split(sep);
  return rel.length === 2 && LIBRARIES.has(rel[0]) && (rel[1] === 'index.js' || rel[1] === 'index.ts');
}

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
    docs: { description: 'bgp/, fib/ and config/ import neither each other nor src/; src/ imports them through their index.ts' },
    schema: [{ type: 'object', properties: { root: { type: 'string' } }, additionalProperties: false }],
    messages: {
      crossing: "{{from}}/ must not import from {{to}}/ ('{{spec}}'): the libraries are independent; wire them together in src/",
      deep: "src/ must import {{to}}/ through {{to}}/index.js, not '{{spec}}': export the name from {{to}}/index.ts",
    },
  },
  create(context) {
    const root = context.options[0]?.root ?? context.cwd;
    const from = roomOf(root, context.filename);
    if (from === undefined) return {};
    const check = (node, spec) => {
      if (typeof spec !== 'string' || !spec.startsWith('.')) return;
      const target = resolve(dirname(context.filename), spec);
      const to = roomOf(root, target);
      if (to === undefined || to === from) return;
      if (LIBRARIES.has(from)) context.report({ node, messageId: 'crossing', data: { from, to, spec } });
      else if (LIBRARIES.has(to) && !isSurface(root, target)) context.report({ node, messageId: 'deep', data: { to, spec } });
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
