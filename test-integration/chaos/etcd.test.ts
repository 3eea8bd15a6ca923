import { describe, expect, it } from 'vitest';
import { runChaos, summary } from './chaos.js';
import { chaosTest } from './run-test.js';

describe('chaos: etcd, a 3-member cluster', () => {
  chaosTest('etcd');

  // The run above can only pass if the checker can fail. Here the candidates are
  // made unsafe on purpose (fixtures/candidate.mjs, VIP_UNSAFE_TTL_FACTOR): they
  // ask etcd for leases half as long as the TTL they believe in, so a leader whose
  // connection stalls keeps believing for 4.8 s while etcd frees its key after 3 s.
  it('catches a real split brain: candidates whose leases are shorter than they believe', async () => {
    const report = await runChaos({
      backend: 'etcd',
      durationMs: 20_000,
      ttl: 6,
      faults: ['stall'],
      preferLeader: 1,
      candidateEnv: { VIP_UNSAFE_TTL_FACTOR: '0.5' },
    });
    console.log(summary(report));
    expect(report.faults.stall).toBeGreaterThan(0);
    expect(report.violations).toContainEqual(expect.stringMatching(/^two leaders at once/));
  }, 120_000);
});
