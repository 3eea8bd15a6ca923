import { describe, expect, it } from 'vitest';
import { MemoryBackend, MemoryStore } from './memory-store.js';
import { describeLockStore, FaultyStore } from './testing/index.js';

// MemoryStore runs the same conformance kit as the real adapters. Clients share
// one backend, each playing a separate process; a FaultyStore in front of a
// client plays the cut connection.
const backend = new MemoryBackend();

describeLockStore('MemoryStore', () => new MemoryStore({ backend }), {
  ttl: 5,
  expiry: { ttl: 0.3, within: 2 },
  partitionable: async () => {
    const store = new FaultyStore(new MemoryStore({ backend }));
    return { store, partition: () => void store.partition(), heal: () => void store.heal() };
  },
});

describe('MemoryStore: a hold is never freed before its deadline', () => {
  it('a timer that fires early (Node rounds timers to whole ms) does not free the key; it waits out the rest', async () => {
    let now = 0;
    const timers: { at: number; run: () => void }[] = [];
    // A clock whose timers fire half a millisecond before they are due, as Node's can against performance.now().
    const clock = {
      now: () => now,
      setTimeout: (run: () => void, ms: number) => {
        const timer = { at: now + ms - 0.5, run, unref: () => {} };
        timers.push(timer);
        return timer;
      },
      clearTimeout: (handle: unknown) => {
        const at = timers.indexOf(handle as (typeof timers)[number]);
        if (at >= 0) timers.splice(at, 1);
      },
    };
    const store = new MemoryStore({ clock });
    const won = await store.compareAndSwap('k', null, { id: 'a', value: '' }, 1);
    expect(won.ok).toBe(true);
    const fire = (): void => {
      const timer = timers.shift()!;
      now = timer.at;
      timer.run();
    };
    fire(); // at 999.5 ms of a 1,000 ms hold
    expect(store.backend.get('k')).toMatchObject({ id: 'a' });
    fire(); // the rest, due at 1,000 ms
    expect(now).toBeGreaterThanOrEqual(1000);
    expect(timers).toHaveLength(0);
    expect(store.backend.get('k')).toBeNull();
  });
});
