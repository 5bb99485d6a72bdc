// The room boundaries of docs/architecture.md are enforced by lint: check that the
// rule really rejects a crossing and accepts what is allowed, and that the
// tree as committed has no crossing.
import t, { type Test } from 'tap';
import { ESLint } from 'eslint';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
// The cases below lint text for files that do not exist; the type-aware rules need a file the TypeScript project
// holds, so for them the project service is off (the boundaries rule reads imports only, it needs no types).
const eslint = new ESLint({
  cwd: root,
  overrideConfig: {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: false, project: null } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/no-misused-promises': 'off',
      '@typescript-eslint/await-thenable': 'off',
      '@typescript-eslint/no-unnecessary-condition': 'off',
    },
  },
});

async function lintText(text: string, file: string): Promise<string[]> {
  const [result] = await eslint.lintText(text, { filePath: join(root, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'skein/boundaries').map((m) => m.message);
}

/** Each (file, code) case gets exactly one boundaries error, matching `reason`. */
async function eachRejected(t: Test, cases: readonly [string, string][], reason: RegExp): Promise<void> {
  for (const [file, code] of cases) {
    const msgs = await lintText(`${code}\nexport {};\n`, file);
    t.equal(msgs.length, 1, `${file}: ${code}`);
    t.match(msgs[0] ?? '', reason);
  }
}

t.test('a library importing another library or src/ is an error', async (t) => {
  const cases: [string, string][] = [
    ['bgp/wire/x.ts', "import { a } from '../../fib/index.js';"],
    ['bgp/x.ts', "export * from '../config/index.js';"],
    ['fib/x.ts', "import type { B } from '../bgp/index.js';"],
    ['config/deep/x.ts', "const m = await import('../../src/skeind.js');"],
    ['fib/x.ts', "import { c } from './../config/../src/x.js';"],
  ];
  await eachRejected(t, cases, /must not import/);
});

t.test('imports within a room, from src/, and of packages are allowed', async (t) => {
  const cases: [string, string][] = [
    ['bgp/wire/x.ts', "import { a } from './constants.js';"],
    ['bgp/rib/x.ts', "import { a } from '../wire/index.js';"],
    ['src/x.ts', "import { a } from '../bgp/index.js';\nimport { b } from '../fib/index.js';"],
    ['fib/x.ts', "import { createRtNetlink } from 'netlink';"],
    ['test/x.ts', "import { a } from '../fib/index.js';\nimport { b } from '../bgp/index.js';"],
  ];
  for (const [file, code] of cases) {
    t.same(await lintText(`${code}\nexport {};\n`, file), [], `${file}: ${code}`);
  }
});

t.test('src/ importing a library past its index.ts is an error', async (t) => {
  const cases: [string, string][] = [
    ['src/daemon/x.ts', "import { a } from '../../bgp/wire/prefix.js';"],
    ['src/x.ts', "import type { B } from '../fib/types.js';"],
    ['src/ctl/x.ts', "export { c } from '../../config/resources.js';"],
    ['src/x.ts', "const m = await import('../bgp/net/native.js');"],
  ];
  await eachRejected(t, cases, /through .*index\.js/);
  t.same(await lintText("import { a } from '../../bgp/index.js';\nexport {};\n", 'src/daemon/x.ts'), [], 'through index.js');
});

t.test('the committed tree crosses no boundary', async (t) => {
  const results = await eslint.lintFiles(['bgp', 'fib', 'config', 'src']);
  const crossings = results.flatMap((r) =>
    r.messages.filter((m) => m.ruleId === 'skein/boundaries').map((m) => `${r.filePath}:${m.line} ${m.message}`),
  );
  t.same(crossings, []);
});
