import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from 'vitest';
import { Candidate } from './candidate.js';
import { STORE_CALL_CHANNEL, type StoreCallMessage } from './diagnostics.js';
import { VipOptionError } from './errors.js';
import { MemoryBackend, MemoryStore } from './memory-store.js';
import type { LockStore, WatchTrouble } from './store.js';
import { FakeClock, FaultyStore } from './testing/index.js';

const TTL = 3; // deadline 2.4 s after a send, refresh every 1 s

const running: { candidate: Candidate; clock: FakeClock; store: FaultyStore }[] = [];
afterEach(async () => {
  for (const { candidate, clock, store } of running.splice(0)) {
    store.heal();
    const stopped = candidate.stop();
    let done = false;
    void stopped.then(() => (done = true));
    for (let i = 0; i < 500 && !done; i++) await clock.advance(10);
    await stopped;
  }
});

function setup(count = 1, clock = new FakeClock()) {
  const backend = new MemoryBackend({ clock });
  return Array.from({ length: count }, (_, i) => {
    const store = new FaultyStore(new MemoryStore({ backend }), { clock });
    const candidate = new Candidate(store, { path: '/job', id: `n${i}`, ttl: TTL, clock, random: () => 0.5 });
    candidate.on('error', () => {});
    running.push({ candidate, clock, store });
    return { candidate, store, clock };
  });
}

describe('Candidate.health()', () => {
  it('is unhealthy while stopped, healthy once leading, with the term facts', async () => {
    const { candidate, clock } = setup()[0]!;
    expect(candidate.health()).toMatchObject({ healthy: false, reason: 'stopped', state: 'stopped', leading: false, leader: null, termStart: null, timeLeft: null });
    const before = Date.now();
    await candidate.start();
    await clock.until(() => candidate.isSelected());
    const health = candidate.health();
    expect(health).toMatchObject({ healthy: true, state: 'leading', leading: true, suspended: false, unreachableFor: null, lastError: null });
    expect(health.reason).toMatch(/^leading \(2\.\d s to the local deadline\)$/);
    expect(health.timeLeft).toBeGreaterThan(2);
    expect(health.timeLeft).toBeLessThanOrEqual(2.4);
    expect(health.leader?.id).toBe('n0');
    expect(health.termStart!.getTime()).toBeGreaterThanOrEqual(before);
    expect(candidate.termStart()).toEqual(health.termStart);
    expect(candidate.leaderSince()).toEqual(health.termStart);
    const stopping = candidate.stop();
    expect(candidate.health()).toMatchObject({ healthy: false, reason: 'stopping', state: 'stopping' });
    await stopping;
    expect(candidate.health().reason).toBe('stopped');
  });

  it('says "starting" until the first read, then follows the leader it sees', async () => {
    const [leader, follower] = setup(2);
    await leader!.candidate.start();
    await leader!.clock.until(() => leader!.candidate.isSelected());
    follower!.store.latency(200, ['watch']);
    void follower!.candidate.start();
    await follower!.clock.advance(10);
    expect(follower!.candidate.health()).toMatchObject({ healthy: true, state: 'starting', reason: 'starting (waiting for the first read of the key)' });
    await follower!.clock.advance(300);
    expect(follower!.candidate.health()).toMatchObject({ healthy: true, state: 'following', reason: 'following (leader n0)', leading: false, timeLeft: null, termStart: null });
    expect(follower!.candidate.leaderSince()).toBeInstanceOf(Date);
    expect(follower!.candidate.termStart()).toBeNull();
  });

  it('turns unhealthy once the store has failed for longer than unreachableAfter (default: ttl), and healthy when it answers again', async () => {
    const { candidate, store, clock } = setup()[0]!;
    await candidate.start();
    await clock.until(() => candidate.isSelected());
    store.failAll(undefined, 'connect ECONNREFUSED');
    await clock.until(() => candidate.health().unreachableFor !== null);
    await clock.advance(50);
    const first = candidate.health();
    expect(first.healthy).toBe(true); // still leading, with time left
    expect(first.lastError).toMatch(/ECONNREFUSED/);
    expect(candidate.health({ unreachableAfter: 0 })).toMatchObject({ healthy: false });
    await clock.until(() => !candidate.isSelected()); // deselected at the deadline: expired
    expect(candidate.health()).toMatchObject({ healthy: true, state: 'following' });
    await clock.until(() => !candidate.health().healthy);
    const down = candidate.health();
    expect(down.unreachableFor).toBeGreaterThan(TTL);
    expect(down.reason).toMatch(/^store unreachable for \d+ s: .*ECONNREFUSED/);
    expect(candidate.health({ unreachableAfter: 60 }).healthy).toBe(true);
    store.heal();
    await clock.until(() => candidate.isSelected());
    expect(candidate.health()).toMatchObject({ healthy: true, unreachableFor: null, lastError: null, state: 'leading' });
  });

  it('counts a follower whose watch keeps failing as unreachable, and clears it when the watch yields', async () => {
    const [leader, follower] = setup(2);
    await leader!.candidate.start();
    await leader!.clock.until(() => leader!.candidate.isSelected());
    follower!.store.failAll(['watch'], 'watch refused');
    void follower!.candidate.start();
    await follower!.clock.until(() => !follower!.candidate.health().healthy);
    expect(follower!.candidate.health().reason).toMatch(/^store unreachable for \d+ s: .*watch refused/);
    expect(leader!.candidate.health().healthy).toBe(true); // its own store is fine
    follower!.store.heal();
    await follower!.clock.until(() => follower!.candidate.health().state === 'following' && follower!.candidate.health().healthy);
    expect(follower!.candidate.health().unreachableFor).toBeNull();
  });


  it('counts a follower whose adapter rides out an outage on its own (watch trouble) as unreachable, reports it on error, and clears it when the store answers', async () => {
    const [leader, follower] = setup(2);
    await leader!.candidate.start();
    await leader!.clock.until(() => leader!.candidate.isSelected());
    await follower!.candidate.start();
    await follower!.clock.until(() => follower!.candidate.health().state === 'following');
    const errors: Error[] = [];
    follower!.candidate.on('error', (error) => errors.push(error));
    follower!.store.disconnect('connect ECONNREFUSED 127.0.0.1:2379');
    // The watch neither yields nor throws: only its trouble callback says anything.
    expect(errors.map((e) => e.message)).toEqual(['watch on "/job" failed: connect ECONNREFUSED 127.0.0.1:2379']);
    expect(follower!.candidate.health()).toMatchObject({ healthy: true, lastError: 'watch on "/job" failed: connect ECONNREFUSED 127.0.0.1:2379' });
    expect(follower!.candidate.health().unreachableFor).toBe(0);
    await follower!.clock.advance(TTL * 1000 + 1);
    expect(follower!.candidate.health()).toMatchObject({ healthy: false, reason: expect.stringMatching(/^store unreachable for 3 s: watch on "\/job" failed: connect ECONNREFUSED/) });
    follower!.store.heal();
    expect(follower!.candidate.health()).toMatchObject({ healthy: true, unreachableFor: null, lastError: null });
    expect(errors).toHaveLength(1);
  });
  it('keeps a leader whose refreshes land healthy while its watch is down; a follower whose watch is down turns unhealthy', async () => {
    const clock = new FakeClock();
    const backend = new MemoryBackend({ clock });
    const troubles = new Map<string, WatchTrouble>();
    const make = (id: string): Candidate => {
      const inner = new MemoryStore({ backend });
      const store: LockStore = {
        compareAndSwap: (...args) => inner.compareAndSwap(...args),
        refresh: (...args) => inner.refresh(...args),
        watch: (key, signal, trouble) => (trouble && troubles.set(id, trouble), inner.watch(key, signal)),
        close: () => inner.close(),
      };
      const candidate = new Candidate(store, { path: '/job', id, ttl: TTL, clock, random: () => 0.5 });
      candidate.on('error', () => {});
      running.push({ candidate, clock, store: new FaultyStore(inner, { clock }) });
      return candidate;
    };
    const leader = make('l');
    const follower = make('f');
    await leader.start();
    await clock.until(() => leader.isSelected());
    await follower.start();
    await clock.until(() => follower.health().state === 'following');
    // A proxy keeps breaking both watch streams; the leader's refreshes still land.
    for (const trouble of troubles.values()) trouble(new Error('stream broke'));
    await clock.advance(2 * TTL * 1000);
    expect(leader.isSelected()).toBe(true);
    expect(leader.health()).toMatchObject({ healthy: true, state: 'leading' });
    expect(follower.health()).toMatchObject({ healthy: false, reason: expect.stringMatching(/^store unreachable for 6 s: watch on "\/job" failed: stream broke/) });
  });

  it('is unhealthy in the leading state past its deadline (an event loop blocked past it)', async () => {
    const { candidate, clock } = setup()[0]!;
    await candidate.start();
    await clock.until(() => candidate.isSelected());
    const reasons: string[] = [];
    candidate.on('deselect', (reason) => reasons.push(reason));
    clock.jump(5_000); // no timer ran: the deadline timer has not announced deselect yet
    const health = candidate.health({ unreachableAfter: 60 });
    expect(health.healthy).toBe(false);
    expect(health.reason).toMatch(/^in the leading state \d+ ms past its local deadline$/);
    expect(health).toMatchObject({ state: 'leading', leading: false });
    expect(health.timeLeft).toBeLessThan(0);
    await clock.advance(1);
    expect(reasons).toEqual(['expired']);
    expect(candidate.health({ unreachableAfter: 60 }).reason).not.toMatch(/past its local deadline/);
  });

  it('rejects a bad unreachableAfter, naming it', () => {
    const { candidate } = setup()[0]!;
    for (const bad of [-1, Number.NaN, '5', null]) {
      expect(() => candidate.health({ unreachableAfter: bad as number })).toThrow(VipOptionError);
      expect(() => candidate.health({ unreachableAfter: bad as number })).toThrow(/unreachableAfter/);
    }
    expect(() => candidate.health(null as never)).toThrow(/options/);
    // The words users act on, exactly (found by mutation testing).
    expect(() => candidate.health({ unreachableAfter: -1 })).toThrow('Candidate.health: option "unreachableAfter" must be a number of seconds >= 0 (got number -1)');
    expect(() => candidate.health(null as never)).toThrow('Candidate.health: option "options" must be an object like { unreachableAfter: 10 } or omitted (got null)');
    expect(() => candidate.health({ unreachable: 1 } as never)).toThrow('Candidate.health: unknown option "unreachable" (valid options: unreachableAfter)');
  });

  it('leaderSince() is null when stopped and before the first read, when this process first saw the term on a follower, the term start on the leader', async () => {
    const [leader, follower] = setup(2);
    expect(leader!.candidate.leaderSince()).toBeNull();
    await leader!.candidate.start();
    await leader!.clock.until(() => leader!.candidate.isSelected());
    expect(leader!.candidate.leaderSince()).toEqual(leader!.candidate.termStart());
    const before = Date.now();
    follower!.store.partition(); // the first read waits: no leader known yet
    void follower!.candidate.start();
    await follower!.clock.advance(10);
    expect(follower!.candidate.health().state).toBe('starting');
    expect(follower!.candidate.leaderSince()).toBeNull();
    follower!.store.heal();
    await follower!.clock.until(() => follower!.candidate.holder()?.id === 'n0');
    expect(follower!.candidate.leaderSince()!.getTime()).toBeGreaterThanOrEqual(before);
    expect(follower!.candidate.termStart()).toBeNull();
  });

  it('ignores watch trouble told after the run ended (stop, or a run before a restart), and a recovery it was never told the trouble of', async () => {
    const clock = new FakeClock();
    const inner = new MemoryStore({ clock });
    const told: WatchTrouble[] = [];
    const store: LockStore = {
      compareAndSwap: (...args) => inner.compareAndSwap(...args),
      refresh: (...args) => inner.refresh(...args),
      watch: (key, signal, trouble) => (trouble && told.push(trouble), inner.watch(key, signal)),
      close: () => inner.close(),
    };
    const candidate = new Candidate(store, { path: '/job', id: 'c', ttl: TTL, clock, random: () => 0.5 });
    const errors: Error[] = [];
    candidate.on('error', (error) => errors.push(error));
    running.push({ candidate, clock, store: new FaultyStore(inner, { clock }) });
    const settle = async (promise: Promise<unknown>): Promise<void> => {
      let done = false;
      void promise.then(() => (done = true));
      for (let i = 0; i < 500 && !done; i++) await clock.advance(10);
      await promise;
    };
    await candidate.start();
    await clock.until(() => candidate.isSelected());
    await settle(candidate.stop());
    told[0]!(new Error('late'));
    expect(errors).toEqual([]);
    expect(candidate.health().reason).toBe('stopped');
    await candidate.start();
    await clock.until(() => candidate.isSelected());
    told[0]!(new Error('from the old run'));
    expect(errors).toEqual([]);
    expect(candidate.health().unreachableFor).toBeNull();
    // A recovery without trouble before it changes nothing.
    told[1]!(null);
    expect(candidate.health()).toMatchObject({ healthy: true, unreachableFor: null });
    told[1]!(new Error('now'));
    expect(errors.map((e) => e.message)).toEqual(['watch on "/job" failed: now']);
    expect(candidate.health().unreachableFor).toBe(0);
    told[1]!(null);
    expect(candidate.health().unreachableFor).toBeNull();
  });
});

describe(`diagnostics channel ${STORE_CALL_CHANNEL}`, () => {
  const messages: StoreCallMessage[] = [];
  const listener = (message: unknown): void => void messages.push(message as StoreCallMessage);
  afterEach(() => {
    unsubscribe(STORE_CALL_CHANNEL, listener);
    messages.length = 0;
  });

  it('publishes each settled call with its purpose, its duration on the candidate clock and its failure', async () => {
    subscribe(STORE_CALL_CHANNEL, listener);
    const { candidate, store, clock } = setup()[0]!;
    store.latency(30, ['compareAndSwap', 'refresh']);
    await candidate.start();
    await clock.until(() => candidate.isSelected());
    await clock.advance(1_100);
    const mine = messages.filter((m) => m.candidate === candidate);
    expect(mine.map((m) => m.purpose).slice(0, 2)).toEqual(['acquire', 'refresh']);
    expect(mine.every((m) => m.path === '/job' && m.error === undefined && m.durationMs === 30)).toBe(true);
    store.failNext(1, ['refresh'], 'boom');
    await clock.advance(1_100);
    const failed = messages.find((m) => m.error);
    expect(failed).toMatchObject({ purpose: 'refresh', candidate });
    expect(failed!.error!.message).toMatch(/boom/);
    const stopping = candidate.stop();
    await clock.until(() => messages.some((m) => m.purpose === 'release'));
    await stopping;
  });

  it('publishes a failed watch as purpose "watch"', async () => {
    subscribe(STORE_CALL_CHANNEL, listener);
    const { candidate, store, clock } = setup()[0]!;
    store.failNext(1, ['watch'], 'watch broke');
    await candidate.start();
    await clock.until(() => messages.some((m) => m.purpose === 'watch'));
    const watch = messages.find((m) => m.purpose === 'watch')!;
    expect(watch).toMatchObject({ candidate, durationMs: 0 });
    expect(watch.error!.message).toMatch(/watch broke/);
  });
});
