// The parts of the chaos run that need no servers: the schedule a seed draws,
// and the guard that fails a run that proved nothing.
import { describe, expect, it } from 'vitest';
import { FAULTS, faultSchedule, unexercised, type ChaosReport, type PlannedFault, type ScheduleOptions } from './chaos.js';

const take = (seed: number, options: ScheduleOptions, n: number): PlannedFault[] => {
  const schedule = faultSchedule(seed, options);
  return Array.from({ length: n }, () => schedule.next().value);
};
const etcd: ScheduleOptions = { backend: 'etcd', kinds: FAULTS.etcd, candidates: 5, ttl: 3 };

describe('chaos: the fault schedule a seed replays', () => {
  it('is the same for the same seed and differs for another', () => {
    expect(take(12345, etcd, 60)).toEqual(take(12345, etcd, 60));
    expect(take(12345, etcd, 60)).not.toEqual(take(12346, etcd, 60));
  });

  it('takes the same draws for every fault whatever it is used for: the kinds do not depend on the aiming', () => {
    // Aiming everything at the leader, or nothing, uses the draws differently but
    // takes as many: the kinds, slots and durations stay the same, fault for fault.
    const strip = (plans: PlannedFault[]): Omit<PlannedFault, 'atLeader'>[] => plans.map(({ atLeader: _, ...rest }) => rest);
    const always = take(7, { ...etcd, preferLeader: 1 }, 60);
    const never = take(7, { ...etcd, preferLeader: 0 }, 60);
    expect(strip(always)).toEqual(strip(never));
    expect(strip(take(7, etcd, 60))).toEqual(strip(never));
    const aimed = (plan: PlannedFault): boolean => ['kill', 'pause', 'cut', 'stall'].includes(plan.kind);
    expect(always.filter(aimed).every((plan) => plan.atLeader)).toBe(true);
    // With preferLeader 0 only the first pause is aimed at the leader.
    expect(never.filter((plan) => plan.atLeader)).toEqual([never.find((plan) => plan.kind === 'pause')]);
  });

  it('aims the first pause at the leader for every seed, and the faults of the store at nobody', () => {
    for (let seed = 0; seed < 200; seed++) {
      for (const backend of ['etcd', 'consul'] as const) {
        const plans = take(seed, { backend, kinds: FAULTS[backend], candidates: 5, ttl: 3, preferLeader: 0 }, 20);
        expect(plans.find((plan) => plan.kind === 'pause')?.atLeader, `seed ${seed}, ${backend}`).toBe(true);
        expect(plans.filter((plan) => ['restart', 'member', 'quorum'].includes(plan.kind)).some((plan) => plan.atLeader)).toBe(false);
      }
    }
  });

  it('draws every kind once per round, within the documented bounds', () => {
    const plans = take(99, etcd, FAULTS.etcd.length * 20);
    for (let round = 0; round < 20; round++) {
      const kinds = plans.slice(round * FAULTS.etcd.length, (round + 1) * FAULTS.etcd.length).map((plan) => plan.kind);
      expect([...kinds].sort()).toEqual([...FAULTS.etcd].sort());
    }
    for (const plan of plans) {
      expect(plan.slot).toBeGreaterThanOrEqual(0);
      expect(plan.slot).toBeLessThan(5);
      expect(plan.gapMs).toBeGreaterThanOrEqual(500);
      expect(plan.gapMs).toBeLessThanOrEqual(2000);
      // A pause outlasts the server's expiry of a silent holder (etcd: ttl), so that the paused leader is replaced.
      if (plan.kind === 'pause') expect(plan.ms).toBeGreaterThanOrEqual(1.2 * 3000);
      if (plan.kind === 'member') expect(plan.members).toHaveLength(1);
      if (plan.kind === 'quorum') {
        expect(plan.members).toHaveLength(2);
        expect(plan.members[0]).not.toBe(plan.members[1]);
      }
      for (const member of plan.members) expect([0, 1, 2]).toContain(member);
    }
    // Consul's sessions may live up to 2 x ttl, and then the lock delay (ttl): its pauses are three times as long.
    const consul = take(99, { backend: 'consul', kinds: FAULTS.consul, candidates: 5, ttl: 3 }, 50).filter((plan) => plan.kind === 'pause');
    expect(consul.length).toBeGreaterThan(0);
    for (const plan of consul) expect(plan.ms).toBeGreaterThanOrEqual(1.2 * 9000);
  });
});

describe('chaos: the guard against a run that proves nothing (npm test and npm run chaos alike)', () => {
  const report = (changes: Partial<ChaosReport> = {}): ChaosReport => ({
    backend: 'consul',
    seed: 1,
    candidates: 5,
    ttl: 3,
    faultWindowMs: 90_000,
    faults: { kill: 2, pause: 2, cut: 2, stall: 2, restart: 2 } as ChaosReport['faults'],
    faultLog: [],
    terms: 8,
    writes: { accepted: 300, refused: 1, late: 0 },
    longestGapMs: 5000,
    recoveryMs: 0,
    recoveryBoundMs: 23_000,
    lateDeselects: { count: 2, maxMs: 4000 },
    pausedLeaders: { hit: 2, replaced: 1 },
    violations: [],
    log: [],
    ...changes,
  });

  it('passes a run that did it all', () => {
    expect(unexercised(report())).toEqual([]);
  });

  it('fails a run without accepted writes, with fewer than 3 terms, or with a kind of fault that never happened', () => {
    expect(unexercised(report({ writes: { accepted: 0, refused: 0, late: 0 } }))).toEqual(['the fenced resource accepted no write: no leader did its work']);
    expect(unexercised(report({ terms: 2 }))).toEqual([expect.stringMatching(/^only 2 term\(s\): leadership must change hands at least twice/)]);
    expect(unexercised(report({ faults: { kill: 2, pause: 2, cut: 0, stall: 2, restart: 2 } as ChaosReport['faults'] }))).toEqual(['no fault of kind cut happened']);
  });

  it('fails a run whose pauses never caught a leader that was replaced while stopped, unless it had no pauses', () => {
    expect(unexercised(report({ pausedLeaders: { hit: 2, replaced: 0 } }))).toEqual([
      'no paused leader was replaced while stopped and announced its deselect after SIGCONT (2 of 2 pauses hit the leader): the paused-leader case did not happen',
    ]);
    // A run of stalls only (the unsafe-candidates test) pauses nobody: nothing to ask of it there.
    expect(unexercised(report({ faults: { stall: 3 } as ChaosReport['faults'], pausedLeaders: { hit: 0, replaced: 0 } }))).toEqual([]);
  });
});
