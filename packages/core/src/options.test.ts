import { describe, expect, it } from 'vitest';
import { Candidate } from './candidate.js';
import { VipOptionError } from './errors.js';
import { MemoryStore } from './memory-store.js';

describe('a store that cannot use some keys (LockStore.validateKey)', () => {
  // Found by test-integration/consul/values.property.test.ts: a path the store refuses at every call
  // (Consul: "/jobs/../x") made a candidate that started and then reported the same error forever.
  class PickyStore extends MemoryStore {
    validateKey(key: string): string | undefined {
      return key.includes('..') ? 'a path without ".."' : undefined;
    }
  }
  const store = new PickyStore();

  it('refuses such a path at new Candidate(), naming "path" and saying what it must be', () => {
    expect(() => new Candidate(store, { path: '/jobs/../x' })).toThrow(VipOptionError);
    expect(() => new Candidate(store, { path: '/jobs/../x' })).toThrow('Candidate: option "path" must be a path without ".." for this store (got string "/jobs/../x")');
    try {
      new Candidate(store, { path: '/jobs/../x' });
    } catch (error) {
      expect((error as VipOptionError).option).toBe('path');
    }
  });

  it('accepts every other path', () => {
    expect(new Candidate(store, { path: '/jobs/x' }).path()).toBe('/jobs/x');
    expect(new Candidate(new MemoryStore(), { path: '/jobs/../x' }).path()).toBe('/jobs/../x');
  });
});
