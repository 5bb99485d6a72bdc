// Code comments cite docs/contract.md by section: `docs/contract.md, "Section heading"` (or `("Section heading")`).
// Every such citation in the source and tests must name a heading that exists, so a renamed section cannot leave
// comments pointing nowhere. A citation may wrap over comment lines. Reads files only; no processes.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(`${import.meta.dirname}/..`, '..');
const ROOMS = ['src', 'bgp', 'fib', 'config', 'test', 'bench', 'scripts'];

function files(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'build' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) files(p, out);
    else if (/\.(ts|mjs|c)$/.test(e.name)) out.push(p);
  }
  return out;
}

const headings = readFileSync(join(root, 'docs/contract.md'), 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('#'))
  .map((l) => l.replace(/^#+\s*/, '').trim());

// one comment line's continuation ("\n   // ") becomes a space, so a wrapped citation reads whole
const citation = /docs\/contract\.md(?:,\s*|\s*\(\s*)"([^"]+)"/g;

t.test('every section docs/contract.md is cited by exists', async (t) => {
  t.ok(headings.length > 5, `docs/contract.md has headings (${headings.length})`);
  let cited = 0;
  for (const room of ROOMS) {
    for (const f of files(join(root, room))) {
      if (f === join(root, 'test/ops/docs-citations.test.ts')) continue;
      const text = readFileSync(f, 'utf8').replace(/\n\s*(?:\/\/|\*)\s*/g, ' ');
      for (const m of text.matchAll(citation)) {
        cited++;
        const name = m[1]!.replace(/\s+/g, ' ').trim();
        t.ok(headings.includes(name), `${relative(root, f)}: "${name}" is a heading of docs/contract.md`);
      }
    }
  }
  t.ok(cited >= 10, `citations found (${cited}): the pattern still matches how code cites the contract`);
});

t.test('the pattern rejects a section that does not exist', async (t) => {
  const m = [...'see (docs/contract.md, "No such section")'.matchAll(citation)];
  t.equal(m.length, 1);
  t.notOk(headings.includes(m[0]![1]!), 'an invented section is not a heading');
});
