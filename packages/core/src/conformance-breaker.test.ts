import { describe, expect, it } from 'vitest';
import { MemoryBackend, MemoryStore } from './memory-store.js';
import type { Claim, Holder, LockStore, SwapResult } from './store.js';
import { expectHoldLivesTtlFromSend, FaultyStore } from './testing/index.js';

/**
 * The kit must be able to fail a store: this one breaks promise 3 (its holds
 * live ttl/2 from the write, and refresh confirms without extending anything),
 * and the kit's lifetime check refuses it, for compareAndSwap and for refresh.
 */
class HalfLifeStore implements LockStore {
  constructor(readonly inner: LockStore) {}
  compareAndSwap(key: string, expected: Holder | null, next: Claim | null, ttl: number, signal?: AbortSignal): Promise<SwapResult> {
    return this.inner.compareAndSwap(key, expected, next, ttl / 2, signal);
  }
  async refresh(): Promise<Holder | null> {
    throw new Error('unused');
  }
  watch(key: string, signal: AbortSignal): AsyncIterable<Holder | null> {
    return this.inner.watch(key, signal);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const TTL = 0.4;

function setup(broken: boolean) {
  const backend = new MemoryBackend();
  const inner = new MemoryStore({ backend });
  const faulty = new FaultyStore(broken ? new HalfLifeStore(inner) : inner);
  const cut = { store: faulty, partition: () => void faulty.partition(), heal: () => void faulty.heal() };
  return { cut, observer: new MemoryStore({ backend }) };
}

describe('conformance kit: promise 3 (a hold lives ttl from the send)', () => {
  it('fails a store whose compareAndSwap holds live only ttl/2', async () => {
    const { cut, observer } = setup(true);
    await expect(
      expectHoldLivesTtlFromSend(cut, observer, '/k', TTL, 2, async () => (await cut.store.compareAndSwap('/k', null, { id: 'a', value: 'v' }, TTL)).holder),
    ).rejects.toThrow(/before its ttl/);
  });

  it('fails a store whose refresh confirms without extending the hold', async () => {
    const { cut, observer } = setup(false);
    const held = (await cut.store.compareAndSwap('/k', null, { id: 'a', value: 'v' }, TTL)).holder!;
    await new Promise((resolve) => setTimeout(resolve, (TTL * 1000) / 2));
    // A refresh that answers "still yours" (true: the hold is still there) but extends nothing.
    const extendsNothing = async (): Promise<Holder | null> => held;
    await expect(expectHoldLivesTtlFromSend(cut, observer, '/k', TTL, 2, extendsNothing)).rejects.toThrow(/before its ttl/);
  });

  it('passes MemoryStore, which keeps the promise', async () => {
    const { cut, observer } = setup(false);
    await expectHoldLivesTtlFromSend(cut, observer, '/k', TTL, 2, async () => (await cut.store.compareAndSwap('/k', null, { id: 'a', value: 'v' }, TTL)).holder);
  });
});
