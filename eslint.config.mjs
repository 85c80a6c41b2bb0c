import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import moduleBoundaries from './eslint/module-boundaries.mjs';

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      'coverage/',
      '.cache/',
      'models/',
      'reports/',
      'eslint.config.mjs',
      'eslint/',
      'jest.config.js',
    ],
  },
  eslint.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  ...tseslint.configs.stylisticTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-extraneous-class': ['error', { allowWithDecorator: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'off',
      '@typescript-eslint/parameter-properties': 'off',
      // Code-first GraphQL types are returned as plain objects by design.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { recsys: { rules: { 'module-boundaries': moduleBoundaries } } },
    rules: {
      'recsys/module-boundaries': 'error',
      // Only repositories (and src/infra, which creates the clients) talk to the drivers.
      'no-restricted-imports': [
        'error',
        {
          paths: ['pg', 'redis', 'kafkajs'].map((name) => ({
            name,
            message: 'drivers are imported only by *.repository.ts files and src/infra',
            allowTypeImports: true,
          })),
        },
      ],
    },
  },
  {
    files: ['src/**/*.repository.ts', 'src/infra/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // The console's browser script: plain JavaScript, no build step, Chart.js as a global.
    files: ['src/modules/console/public/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      sourceType: 'script',
      globals: { ...globals.browser, Chart: 'readonly' },
    },
  },
);
