// Lint: typescript-eslint's recommended rules plus the room boundaries (scripts/boundaries.mjs), and three
// type-aware rules for the bugs this kind of code has: a promise nobody awaits or catches (a rejected one is an
// unhandled rejection, which ends the process), a promise passed where a callback's result is ignored (an event
// handler, a timer), and awaiting something that is not a promise. A deliberate fire-and-forget is written
// `void p` with a comment saying why and where its errors go.
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
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' } },
  },
);
