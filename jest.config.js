/**
 * Two projects: fast unit tests, and integration tests that start real servers.
 *
 * The model-upload dispatcher's Octokit packages ship only as ES modules; Jest's CommonJS
 * runtime loads them natively only from Node 24.9 on, so on older Node they are compiled to
 * CommonJS like the tests (allowJs) instead of being left untransformed.
 */
const ESM_ONLY = [
  '@octokit',
  'before-after-hook',
  'content-type',
  'json-with-bigint',
  'universal-github-app-jwt',
  'universal-user-agent',
];
const shared = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', diagnostics: false }],
    '^.+\\.js$': [
      'ts-jest',
      { tsconfig: { allowJs: true, module: 'commonjs', target: 'ES2022' }, diagnostics: false },
    ],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${ESM_ONLY.join('|')})/)`],
};

module.exports = {
  // Integration tests start real servers and run the bundled actions as child processes.
  testTimeout: 120000,
  projects: [
    { ...shared, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...shared,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
    },
  ],
};
