import { Candidate } from '@vip/core';
import { ConsulStore } from '@vip/consul';
import { afterEach, describe, expect, it } from 'vitest';
import { startConsul, tcpConnectionsTo, uniqueConsulPrefix, type ConsulAgent } from '../harness/index.js';
import { until } from '../harness/vip-cli.js';

// Many elections on one ConsulStore, against a dev agent with its DEFAULT
// limits: the agent closes a client address's connections past
// limits.http_max_conns_per_client (200). A store that held one connection per
// watched key (one blocking query each) failed here: at 300 elections the
// agent reset its connections and renewals and transactions failed with them.
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close().catch(() => {});
});

async function agent(): Promise<ConsulAgent> {
  const consul = await startConsul(); // default limits, default session_ttl_min (10 s)
  cleanup.push(() => consul.close());
  return consul;
}

function store(consul: ConsulAgent, options?: ConstructorParameters<typeof ConsulStore>[1]): ConsulStore {
  const opened = new ConsulStore(consul.connectionString, options);
  cleanup.push(() => opened.close());
  return opened;
}

/** Samples this process's connections to the agent every 20 ms; `max` is the most seen. */
function sampleConnections(port: number): { max: () => number; stop: () => void } {
  let max = 0;
  const timer = setInterval(() => {
    max = Math.max(max, tcpConnectionsTo(port));
  }, 20);
  return { max: () => max, stop: () => clearInterval(timer) };
}

describe('consul: hundreds of elections on one store, agent at its default limits', () => {
  it('300 leaders and 300 followers in two stores: all lead, hold past a ttl and hand over, with no error, one blocking query per store and at most maxRequests + 1 connections each', async () => {
    const COUNT = 300;
    const consul = await agent();
    const sampler = sampleConnections(consul.ports.http);
    cleanup.push(async () => sampler.stop());
    const leaders = store(consul);
    const followers = store(consul);
    const prefix = `${uniqueConsulPrefix('scale')}jobs/`;
    const errors: string[] = [];
    const deselects: string[] = [];
    const make = (s: ConsulStore, who: string) =>
      Array.from({ length: COUNT }, (_, i) => {
        const candidate = new Candidate(s, { path: `${prefix}job-${i}`, ttl: 10, id: `${who}-${i}` });
        candidate.on('error', (error: Error) => errors.push(`${who}-${i}: ${error.message}`));
        candidate.on('deselect', (reason: string) => deselects.push(`${who}-${i}: ${reason}`));
        cleanup.push(() => candidate.stop());
        return candidate;
      });
    const first = make(leaders, 'a');
    await Promise.all(first.map((candidate) => candidate.start()));
    await until(() => first.every((candidate) => candidate.isSelected()), () => `all ${COUNT} lead (${first.filter((c) => c.isSelected()).length} do)`, 60_000);
    const second = make(followers, 'b');
    await Promise.all(second.map((candidate) => candidate.start()));
    await until(() => second.every((candidate) => candidate.id() !== null), 'every follower sees its leader', 60_000);
    expect(second.some((candidate) => candidate.isSelected())).toBe(false);
    // Past a ttl: every term was refreshed through the one shared session.
    await new Promise((resolve) => setTimeout(resolve, 11_000));
    expect(first.every((candidate) => candidate.isSelected())).toBe(true);
    expect({ leaders: leaders.load.queries, followers: followers.load.queries }).toEqual({ leaders: 1, followers: 1 });
    // Every leader resigns: each follower sees its key free through the shared query and takes it.
    await Promise.all(first.map((candidate) => candidate.stop()));
    await until(() => second.every((candidate) => candidate.isSelected()), () => `all ${COUNT} followers lead (${second.filter((c) => c.isSelected()).length} do)`, 60_000);
    sampler.stop();
    expect(errors).toEqual([]);
    expect(deselects.filter((line) => !line.startsWith('a-') || !line.endsWith(': stopped'))).toEqual([]);
    // Two stores of one process: 16 requests and 1 blocking query each at most.
    expect(sampler.max()).toBeGreaterThan(0);
    expect(sampler.max()).toBeLessThanOrEqual(2 * (16 + 1));
  }, 180_000);
});

describe("consul: keys whose names contain Consul's refusal phrases", () => {
  for (const phrase of ['due to lock delay', 'permission denied', 'invalid session', 'exists']) {
    it(`a key named "… ${phrase}" is held, refused to another store as held, released and taken over like any other`, async () => {
      const consul = await agent();
      const a = store(consul);
      const b = store(consul);
      const key = `${uniqueConsulPrefix('phrases')}${phrase}`;
      const won = await a.compareAndSwap(key, null, { id: 'a', value: 'one' }, 10);
      expect(won).toMatchObject({ ok: true, holder: { id: 'a' } });
      // Refused because the key is held: an answer naming the holder, not a lock delay (holder null) nor a thrown error.
      const refused = await b.compareAndSwap(key, null, { id: 'b', value: 'two' }, 10);
      expect(refused).toMatchObject({ ok: false, holder: { id: 'a', value: 'one' } });
      // A guard on a term that is not b's: refused as such.
      expect(await b.compareAndSwap(key, won.holder, null, 10)).toMatchObject({ ok: false });
      expect(await a.refresh(key, won.holder!, 10)).toEqual(won.holder);
      expect(await a.compareAndSwap(key, won.holder, null, 10)).toEqual({ ok: true, holder: null });
      expect(await b.compareAndSwap(key, null, { id: 'b', value: 'two' }, 10)).toMatchObject({ ok: true, holder: { id: 'b' } });
    });
  }
});
