/** Two tiers: unit specs next to the code, integration specs under test/ on the real stack. */
// Type checking is `npm run typecheck`'s job; tests transpile file by file for speed.
const tsJest = ['ts-jest', { tsconfig: 'tsconfig.jest.json', diagnostics: false }];
module.exports = {
  // Integration tests start real services; jest reads this option only at the top level.
  testTimeout: 60000,
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      roots: ['<rootDir>/src', '<rootDir>/bench', '<rootDir>/scripts'],
      testMatch: ['**/*.spec.ts'],
      transform: { '^.+\\.ts$': tsJest },
    },
    {
      displayName: 'integration',
      // Shares typed-array classes with onnxruntime-node (see the file).
      testEnvironment: '<rootDir>/test/support/shared-realm-environment.ts',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.int-spec.ts'],
      transform: { '^.+\\.ts$': tsJest },
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
    },
  ],
};
