// Lint: typescript-eslint's recommended rules plus the room boundaries (scripts/boundaries.mjs), and four
// type-aware rules for the bugs this kind of code has: a promise nobody awaits or catches (a rejected one is an
// unhandled rejection, which ends the process), a promise passed where a callback's result is ignored (an event
// handler, a timer), awaiting something that is not a promise, and a condition the types say is always the same.
// A deliberate fire-and-forget is written `void p` with a comment saying why and where its errors go.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import skein from './scripts/boundaries.mjs';

const root = import.meta.dirname;

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tap/**', 'build/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { skein },
    rules: {
      'skein/boundaries': ['error', { root }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: root } },
    rules: {
      // tap queues each t.test() and reports its failure itself: the promise it returns need not be awaited
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }],
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // a check the types say can never matter is either dead code or a type that is too narrow (data from the
      // network, the kernel, a file, another process): widen the type; where only the narrowing is wrong (a flag
      // set by a callback or while an await ran) disable it on that line, saying so
      '@typescript-eslint/no-unnecessary-condition': 'error',
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' } },
  },
);
