// Lint: typescript-eslint with type information, plus the import boundaries of the architecture:
// worker/ never imports manager/ and manager/ never imports worker/; both may import proto/ and common/.
// common/ and proto/ import neither side.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const boundary = (forbidden, why) => ({
  'no-restricted-imports': [
    'error',
    { patterns: forbidden.map((dir) => ({ group: [`**/${dir}/**`, `**/${dir}`], message: why })) },
  ],
});

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'proto/gen/**', 'native/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
    },
  },
  { files: ['worker/**/*.ts'], rules: boundary(['manager'], 'worker/ must not import manager/: they meet over the wire (proto/).') },
  { files: ['manager/**/*.ts'], rules: boundary(['worker'], 'manager/ must not import worker/: they meet over the wire (proto/).') },
  {
    files: ['common/**/*.ts', 'proto/**/*.ts'],
    rules: boundary(['manager', 'worker', 'cli'], 'common/ and proto/ are shared by both sides and import neither.'),
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
);
