import { defineConfig } from 'vitest/config';

// Two projects: unit tests beside the code (fake clock, MemoryStore, no I/O) and
// integration tests against real etcd and Consul servers that the integration
// project's globalSetup starts as child processes.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts'],
          environment: 'node',
          // Unit tests first, then the integration tests with their own worker limit.
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test-integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test-integration/harness/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Each file starts its own servers on free ports; two cores, so keep it small.
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
