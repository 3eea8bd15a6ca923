// A herd: many followers, each on a ConsulStore of its own (as many processes
// would be), on one key of a dev agent at its default limits. Every handover
// elects exactly one of them, every other one sees who, and nobody reports an
// error: the transactions that lose are answered as plain refusals.
import { Candidate } from '@vip/core';
import { ConsulStore } from '@vip/consul';
import { afterEach, describe, expect, it } from 'vitest';
import { startConsul, uniqueConsulPrefix } from '../harness/index.js';
import { until } from '../harness/vip-cli.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close().catch(() => {});
});

describe('consul: a herd of followers on one key', () => {
  it('30 followers on stores of their own: each of 5 handovers elects exactly one, the others follow it, no errors', async () => {
    const FOLLOWERS = 30;
    const agent = await startConsul(); // default limits
    cleanup.push(() => agent.close());
    const key = `${uniqueConsulPrefix('herd')}job`;
    const errors: string[] = [];
    const deselects: string[] = [];
    const nodes = Array.from({ length: FOLLOWERS + 1 }, (_, i) => {
      const store = new ConsulStore(agent.connectionString);
      const candidate = new Candidate(store, { path: key, id: `n${i}`, ttl: 10 });
      candidate.on('error', (error: Error) => errors.push(`n${i}: ${error.message}`));
      candidate.on('deselect', (reason: string) => deselects.push(`n${i}: ${reason}`));
      cleanup.push(
        () => store.close(),
        () => candidate.stop(),
      );
      return { candidate, store };
    });
    // Two leaders at once would be seen here: sampled every 5 ms for the whole test.
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, nodes.filter((node) => node.candidate.isSelected()).length);
    }, 5);
    cleanup.push(async () => clearInterval(sampler));
    await nodes[0]!.candidate.start();
    await nodes[0]!.candidate.whenSelected();
    await Promise.all(nodes.slice(1).map((node) => node.candidate.start()));
    await until(() => nodes.every((node) => node.candidate.id() === 'n0'), 'every follower to see the first leader', 30_000);
    const leaders = ['n0'];
    let live = nodes.slice();
    for (let handover = 0; handover < 5; handover++) {
      const leader = live.find((node) => node.candidate.isSelected())!;
      await leader.candidate.stop();
      live = live.filter((node) => node !== leader);
      const next = await until(() => live.find((node) => node.candidate.isSelected()), `handover ${handover + 1}: a follower to lead`, 30_000);
      const id = next.candidate.id()!;
      leaders.push(id);
      await until(() => live.every((node) => node.candidate.id() === id), `handover ${handover + 1}: every follower to see ${id}`, 30_000);
    }
    clearInterval(sampler);
    expect(most).toBe(1);
    expect(new Set(leaders).size).toBe(leaders.length);
    expect(errors).toEqual([]);
    expect(deselects).toEqual(leaders.slice(0, -1).map((id) => `${id}: stopped`));
  }, 120_000);
});
