import { Candidate, VipOptionError } from '@vip/core';
import { afterEach, describe, expect, it } from 'vitest';
import { ConsulStore } from './consul-store.js';

// Constructing a store and a candidate contacts no server: these checks run offline.
const stores: ConsulStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
});
const open = (options?: ConstructorParameters<typeof ConsulStore>[1]): ConsulStore => {
  const store = new ConsulStore('consul://127.0.0.1:1', options);
  stores.push(store);
  return store;
};

describe('ConsulStore: the TTL range it declares', () => {
  it("is Consul's default, 10 s to 86400 s, and a candidate outside it is refused when it is created", () => {
    const store = open();
    expect(store.limits).toMatchObject({ minTtl: 10, maxTtl: 86400 });
    expect(() => new Candidate(store, { path: 'job', ttl: 5 })).toThrow(/"ttl".*10/);
    expect(() => new Candidate(store, { path: 'job', ttl: 10 })).not.toThrow();
  });

  it('follows minTtl, for servers whose session_ttl_min was lowered', () => {
    const store = open({ minTtl: 2 });
    expect(store.limits.minTtl).toBe(2);
    expect(() => new Candidate(store, { path: 'job', ttl: 2 })).not.toThrow();
    expect(() => new Candidate(store, { path: 'job', ttl: 1.5 })).toThrow(/"ttl"/);
  });

  it('refuses a minTtl that is not a number of seconds from 1 to 86400, naming the option', () => {
    for (const bad of [0, 0.5, -1, 86401, Number.NaN, '10', null]) {
      expect(() => open({ minTtl: bad as number })).toThrow(VipOptionError);
      expect(() => open({ minTtl: bad as number })).toThrow(/"minTtl".*from 1 to 86400/);
    }
  });

  it("refuses a ttl below the store's minimum at compareAndSwap and refresh too", async () => {
    const store = open({ minTtl: 3 });
    await expect(store.compareAndSwap('job', null, { id: 'a', value: '' }, 2)).rejects.toThrow(/"ttl".*from 3 to 86400/);
    await expect(store.refresh('job', { id: 'a', value: '', token: 1n }, 2)).rejects.toThrow(/"ttl".*from 3 to 86400/);
  });
});
