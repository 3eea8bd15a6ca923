import { defineConfig } from 'vitest/config';

// The tests Stryker runs against each mutant of the state machine (see stryker.config.json):
// core's unit tests, which drive Candidate with a fake clock and stores with latency and faults
// (health.test.ts: health(), the store-call diagnostics and watch trouble).
export default defineConfig({
  test: {
    include: ['packages/core/src/candidate.test.ts', 'packages/core/src/decide.test.ts', 'packages/core/src/health.test.ts'],
    environment: 'node',
  },
});
