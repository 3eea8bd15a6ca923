/**
 * The short chaos run of `npm test`, shared by the etcd and Consul test files
 * (one file each, so that vitest runs them side by side).
 *
 * VIP_CHAOS_SECONDS sets how long faults go on (default 90); VIP_CHAOS_SEED
 * replays the fault schedule of a seed printed by an earlier run (the faults,
 * their targets and durations; not the machine's timing: see chaos.ts).
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runChaos, summary, unexercised, type Backend } from './chaos.js';

export function chaosTest(backend: Backend): void {
  const seconds = Number(process.env.VIP_CHAOS_SECONDS ?? 90);
  const seed = process.env.VIP_CHAOS_SEED ? Number(process.env.VIP_CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
  it('5 candidates under seeded random faults: never two leaders, tokens increase, the fence decides right, a paused leader replaced, a settled leader after the faults', async () => {
    console.log(`chaos ${backend}: seed ${seed} (replay: VIP_CHAOS_SEED=${seed} npm test -- test-integration/chaos/${backend}.test.ts)`);
    const progress: string[] = [];
    const report = await runChaos({ backend, seed, durationMs: seconds * 1000, onProgress: (line) => progress.push(line) });
    const text = summary(report);
    console.log(text);
    const unproven = unexercised(report);
    if (report.violations.length > 0 || unproven.length > 0) {
      const file = join(tmpdir(), `vip-chaos-${backend}-${seed}.jsonl`);
      writeFileSync(file, report.log.map((line) => JSON.stringify(line)).join('\n'));
      console.log(`faults:\n  ${progress.join('\n  ')}\nevent log: ${file}`);
    }
    expect(report.violations, text).toEqual([]);
    // The run did what it says (the same guard as the long run's, main.ts):
    // every kind of fault, several terms, real writes, a paused leader replaced.
    expect(unproven, text).toEqual([]);
  }, (seconds + 240) * 1000);
}
